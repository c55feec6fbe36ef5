#!/usr/bin/env python3
"""Renders a kustomization the way `kubectl kustomize` does, for the subset Keel's manifests
use: resources (files and directories), namespace, images, configMapGenerator (files, no
name hash) and patchesStrategicMerge (maps merged, lists of named items merged by name).

It exists for machines without a kubectl that carries kustomize v4 or later (Debian's
kubernetes-client is v1.20, whose kustomize cannot take a directory as a resource).
`render.py --check DIR` compares its output with `kubectl kustomize DIR`, so where both
exist CI proves them equal.

    render.py DIR            print the rendered documents
    render.py --check DIR    exit 1 if kubectl kustomize renders DIR differently
"""

import copy
import json
import os
import subprocess
import sys

import yaml

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def merge(base, patch):
    """Strategic merge, as far as Keel's patches need it."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(i, dict) and "name" in i for i in base + patch)
    ):
        out = [copy.deepcopy(i) for i in base]
        for item in patch:
            match = next((n for n, b in enumerate(out) if b["name"] == item["name"]), None)
            if match is None:
                out.append(copy.deepcopy(item))
            else:
                out[match] = merge(out[match], item)
        return out
    return copy.deepcopy(patch)


def containers(doc):
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return spec.get("containers", []) + spec.get("initContainers", [])


def render(directory):
    k = load(os.path.join(directory, "kustomization.yaml"))[0]
    docs = []
    for resource in k.get("resources", []):
        path = os.path.join(directory, resource)
        docs += render(path) if os.path.isdir(path) else load(path)
    for generator in k.get("configMapGenerator", []):
        data = {}
        for file in generator.get("files", []):
            with open(os.path.join(directory, file)) as f:
                data[os.path.basename(file)] = f.read()
        docs.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": data}
        )
    for patch_file in k.get("patchesStrategicMerge", []):
        for patch in load(os.path.join(directory, patch_file)):
            key = (patch["kind"], patch["metadata"]["name"])
            for n, doc in enumerate(docs):
                if (doc["kind"], doc["metadata"]["name"]) == key:
                    docs[n] = merge(doc, patch)
    for image in k.get("images", []):
        for doc in docs:
            for container in containers(doc):
                name = container["image"].split(":")[0]
                if name == image["name"]:
                    new = image.get("newName", name)
                    tag = image.get("newTag")
                    container["image"] = f"{new}:{tag}" if tag else new
    if "namespace" in k:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = k["namespace"]
    return docs


def keyed(docs):
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def main():
    args = sys.argv[1:]
    if args[:1] == ["--check"]:
        directory = args[1]
        ours = keyed(render(directory))
        out = subprocess.run(["kubectl", "kustomize", directory], check=True, capture_output=True, text=True)
        theirs = keyed(d for d in yaml.safe_load_all(out.stdout) if d)
        if ours != theirs:
            for key in sorted(set(ours) | set(theirs)):
                if ours.get(key) != theirs.get(key):
                    print(f"{directory}: {key} differs", file=sys.stderr)
                    print(json.dumps(ours.get(key), indent=1, sort_keys=True), file=sys.stderr)
                    print(json.dumps(theirs.get(key), indent=1, sort_keys=True), file=sys.stderr)
            sys.exit(1)
        print(f"{directory}: render.py and kubectl kustomize agree ({len(ours)} documents)")
        return
    print(yaml.safe_dump_all(render(args[0]), sort_keys=False), end="")


if __name__ == "__main__":
    main()
