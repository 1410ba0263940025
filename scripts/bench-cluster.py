#!/usr/bin/env python3
# bench-cluster.py — N supervisors sharing one PostgreSQL state DB, driven
# through their sockets: prints workflows/s. scripts/bench-pg runs it for
# N = 1, 2, 3 on the same database server, so that the rows compare.
#   bench-cluster.py BIN_DIR WORK_DIR URL N WORKFLOWS
# Each supervisor: its own socket and 16 workers divided among them (the
# machine's total stays the same), the inventory app with one product of a
# large stock and its app DB a SQLite file they share, SYNC=full, no
# faults. 32 client threads send `POST /v1/workflows?wait=60s` round-robin
# over the supervisors; the time runs from the first start to the last
# answer. Exit 1 when a start fails or a workflow does not complete.
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from idem_http import call  # noqa: E402

CLIENTS = 32
WORKERS_TOTAL = 16


def start(bin_dir, work, url, i, n):
    sock = os.path.join(work, f"s{i}.sock")
    log = open(os.path.join(work, f"sup-{i}.log"), "w")
    p = subprocess.Popen(
        [os.path.join(bin_dir, "idem-supervisor"), "--env=/dev/null", f"--socket={sock}",
         f"--state-database={url}", f"--supervisor-name=bench{i}",
         f"--database={work}/app.db", f"--supplier-database={work}/supplier.db",
         f"--supplier-socket={work}/sup{i}.sock", "--seed-stock=123456:1000000000",
         f"--workers={max(1, WORKERS_TOTAL // n)}", "--log-level=warn"],
        stdout=log, stderr=subprocess.STDOUT)
    for _ in range(1500):
        if p.poll() is not None:
            sys.exit(f"bench-cluster: supervisor {i} exited {p.returncode}; see {log.name}")
        try:
            if call(sock, "GET", "/v1/health", timeout=5)[0] == 200:
                return p, sock
        except OSError:
            time.sleep(0.02)
    sys.exit(f"bench-cluster: supervisor {i} did not answer; see {log.name}")


def main():
    bin_dir, work, url, n, total = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), \
        int(sys.argv[5])
    os.makedirs(work, exist_ok=True)
    sups = []
    try:
        for i in range(1, n + 1):  # one at a time: the first creates the app DB
            sups.append(start(bin_dir, work, url, i, n))
    except SystemExit:
        for p, _ in sups:
            p.terminate()
            p.wait(30)
        raise
    socks = [s for _, s in sups]
    nxt = [0]
    lock = threading.Lock()
    errors = []

    def client():
        while True:
            with lock:
                k = nxt[0]
                nxt[0] += 1
            if k >= total or errors:
                return
            body = {"workflow_id": f"B{k}",
                    "input": {"order_id": f"B{k}", "product_id": "123456", "quantity": 1}}
            try:
                st, r = call(socks[k % n], "POST", "/v1/workflows?wait=60s", body, timeout=90)
            except OSError as e:
                errors.append(f"B{k}: {e}")
                return
            if st not in (200, 201) or (r.get("workflow") or {}).get("status") != "completed":
                errors.append(f"B{k}: {st} {r}")

    t0 = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    for p, _ in sups:
        p.terminate()
    for p, _ in sups:
        p.wait(30)
    if errors:
        sys.exit(f"bench-cluster: {len(errors)} failed, the first: {errors[0]}")
    print("%.1f" % (total / elapsed))


if __name__ == "__main__":
    main()
