"""Measures how long a write on one Keel instance takes to show on another.

Usage: invalidation.py HOST:PORT_A HOST:PORT_B ADMIN_TOKEN PRODUCT_ID [ROUNDS]
Each round changes the product's price through A, then reads it through B (which holds it
in its L1 cache) until the new price shows. Prints "p50_ms p99_ms max_ms rounds".
"""

import http.client
import json
import sys
import time


def main():
    a, b, token, product = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 200
    conn_a = http.client.HTTPConnection(a)
    conn_b = http.client.HTTPConnection(b)
    path = f"/products/{product}"

    def price_on_b():
        conn_b.request("GET", path)
        return json.loads(conn_b.getresponse().read())["price_cents"]

    samples = []
    for n in range(rounds):
        price_on_b()  # make sure B holds the old value in L1
        price = 1000 + n
        body = json.dumps({"price_cents": price})
        started = time.perf_counter()
        conn_a.request("PATCH", path, body, {"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
        response = conn_a.getresponse()
        response.read()
        assert response.status == 200, response.status
        while price_on_b() != price:
            if time.perf_counter() - started > 5:
                sys.exit(f"round {n}: B still stale after 5 s")
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    pick = lambda q: samples[min(len(samples) - 1, int(len(samples) * q))]
    print(f"{pick(0.5):.2f} {pick(0.99):.2f} {samples[-1]:.2f} {rounds}")


if __name__ == "__main__":
    main()
