# idem_http.py — what the Python scripts beside it share: the control API over its Unix socket, a supervisor started on a run directory, percentiles.
import http.client
import json
import os
import socket
import subprocess
import time


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path, timeout=600):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def call(sock, method, path, body=None, timeout=600):
    """One request: (status, the JSON body or None)."""
    c = UnixHTTP(sock, timeout)
    try:
        c.request(method, path, body=json.dumps(body) if body is not None else None,
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        c.close()


def supervisor(bin_dir, work, extra=(), log_name="supervisor.log", state_db=None):
    """idem-supervisor on work's databases (scripts/stress's names; the state
    DB at state_db when given), SYNC=normal; returns (process, socket) once
    the socket answers."""
    sock = os.path.join(work, "bench.sock")
    log = open(os.path.join(work, log_name), "w")
    p = subprocess.Popen(
        [os.path.join(bin_dir, "idem-supervisor"), "--env=/dev/null", f"--socket={sock}",
         f"--database={work}/app.db", f"--state-database={state_db or work + '/state.db'}",
         f"--supplier-database={work}/supplier.db", f"--supplier-socket={work}/bench-sup.sock",
         "--reorder-threshold=15", "--reorder-quantity=30", "--sync=normal",
         f"--api-token-file={work}/api-token", "--log-level=warn", *extra],
        stdout=log, stderr=subprocess.STDOUT)
    for _ in range(1000):
        if p.poll() is not None:
            raise SystemExit(f"idem-supervisor exited {p.returncode}; see {log.name}")
        try:
            if call(sock, "GET", "/v1/health", timeout=5)[0] == 200:
                return p, sock
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"idem-supervisor did not answer; see {log.name}")


def token(work):
    """The token HTTP_LISTEN asks of the supervisor started on work."""
    with open(os.path.join(work, "api-token")) as f:
        return f.readline().strip()


def free_port():
    """A loopback TCP port free now (for HTTP_LISTEN)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def stop(p):
    p.terminate()
    p.wait(30)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")
