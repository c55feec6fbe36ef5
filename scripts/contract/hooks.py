"""Schemathesis hooks for Keel's contract run: how a client of Keel authenticates.

KEEL_CONTRACT_BASE, KEEL_CONTRACT_EMAIL and KEEL_CONTRACT_PASSWORD name the instance and the
account the run acts as (a customer or the admin).
"""

import os
import re
import uuid

import requests
import schemathesis

BASE = os.environ["KEEL_CONTRACT_BASE"]
EMAIL = os.environ["KEEL_CONTRACT_EMAIL"]
PASSWORD = os.environ["KEEL_CONTRACT_PASSWORD"]


def login() -> str:
    response = requests.post(
        f"{BASE}/sessions", json={"email": EMAIL, "password": PASSWORD}, timeout=10
    )
    response.raise_for_status()
    return response.json()["token"]


@schemathesis.auth()
class KeelSession:
    """One session for the whole run, except where a request would end it: `DELETE /sessions`
    gets a session of its own, so the run never logs itself out."""

    def get(self, case, ctx):
        return login()

    def set(self, case, data, ctx):
        token = data
        if case.method.upper() == "DELETE" and case.path == "/sessions":
            token = login()
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {token}"


VALID_KEY = re.compile(r"^[!-~]{1,255}$")


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    """An `Idempotency-Key` names one request: a client never sends one key with two bodies
    (that answers 422 `idempotency-key-reused`, as the draft standard says). The generator
    cannot know this, so each well-formed key it makes becomes a fresh one; malformed keys
    are sent as made, to be refused."""
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key" and VALID_KEY.match(str(headers[name])):
            headers[name] = str(uuid.uuid4())


@schemathesis.hook
def after_call(ctx, case, response):
    """An admin's switch is checked by its answer, then put back: a feature left off would
    answer the rest of the run with its 503 (`feature-off`), which is that switch working,
    not a fault of the operations the run goes on to test."""
    if (
        case.method.upper() == "PUT"
        and case.path == "/admin/features/{name}"
        and response.status_code == 200
        and response.json().get("enabled") is False
    ):
        name = response.json()["name"]
        restored = requests.put(
            f"{BASE}/admin/features/{name}",
            json={"enabled": True},
            headers={"Authorization": case.headers["Authorization"]},
            timeout=10,
        )
        restored.raise_for_status()
