#!/usr/bin/env python3
# test_notify.py — the supervisor's word to a service manager
# (supervisor/notify.c), seen from the manager's side:
# - systemd: a datagram socket the test binds is NOTIFY_SOCKET, once a path
#   and once an abstract @name. READY=1 with MAINPID=<the supervisor> must
#   arrive, and when it does the control API must already answer; no child
#   (workers, the helper) may have NOTIFY_SOCKET in its environment;
#   SIGTERM must bring STOPPING=1 and exit 0. A supervisor that cannot
#   start (another one holds the state DB) must not say READY=1.
#   A NOTIFY_SOCKET nobody listens on costs one warning, nothing else.
# - s6: --notify-fd N on a pipe; the newline must come only once the API
#   answers, then EOF while the supervisor runs (no child holds the pipe).
#   A bad --notify-fd exits 2 naming the flag.
# Run by ctest (IDEM_BIN_DIR: the build's bin/ parent).
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from idem_http import call  # noqa: E402
from checks import check, failures  # noqa: E402

BIN = os.path.join(os.environ.get("IDEM_BIN_DIR", os.path.join(ROOT, "build")), "bin")
WAIT = 60  # s: a sanitized build starts slowly
def start(work, env=None, extra=(), pass_fds=(), log_name="supervisor.log", sock_name="idem.sock"):
    """idem-supervisor on work's files; returns (process, socket path) at once."""
    sock = os.path.join(work, sock_name)
    log = open(os.path.join(work, log_name), "w")
    p = subprocess.Popen(
        [os.path.join(BIN, "idem-supervisor"), "--env=/dev/null", f"--socket={sock}",
         f"--database={work}/app.db", f"--state-database={work}/state.db",
         f"--supplier-database={work}/supplier.db", f"--supplier-socket={work}/supplier.sock",
         "--sync=normal", *extra],
        stdout=log, stderr=subprocess.STDOUT, env=env, pass_fds=pass_fds)
    log.close()
    return p, sock


def answers(sock):
    """The control API's health, asked once: the status, or the error."""
    try:
        return call(sock, "GET", "/v1/health", timeout=10)[0]
    except OSError as e:
        return repr(e)


def children(pid):
    """The pids whose parent is pid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(d))
    return out


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def environ(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return None


def wait_workers(pid):
    """The supervisor's children once two idem-workers run (the fork server
    and a worker at least)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        kids = children(pid)
        if sum(comm(k) == "idem-worker" for k in kids) >= 2:
            return kids
        time.sleep(0.05)
    return children(pid)


def fields(datagram):
    return dict(line.split("=", 1) for line in datagram.decode().split("\n") if "=" in line)


def notify_socket_run(work, abstract):
    """One supervisor with NOTIFY_SOCKET on a socket of ours."""
    kind = "abstract" if abstract else "path"
    if abstract:
        name = f"@idem-test-notify-{os.getpid()}-{time.monotonic_ns()}"
        addr = "\0" + name[1:]
    else:
        name = addr = os.path.join(work, "notify.sock")
    mgr = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    mgr.bind(addr)
    mgr.settimeout(WAIT)
    env = dict(os.environ, NOTIFY_SOCKET=name)
    p, sock = start(work, env)
    try:
        try:
            first = mgr.recv(4096)
        except socket.timeout:
            first = b""
        health = answers(sock) if first else None
        f = fields(first)
        check(f"{kind}: READY=1 arrives", f.get("READY") == "1", repr(first))
        check(f"{kind}: MAINPID is the supervisor's pid", f.get("MAINPID") == str(p.pid),
              f"MAINPID={f.get('MAINPID')} pid={p.pid}")
        check(f"{kind}: STATUS names the control socket", sock in f.get("STATUS", ""),
              f.get("STATUS", ""))
        check(f"{kind}: the control API answers when READY=1 arrives", health == 200,
              str(health))
        kids = wait_workers(p.pid)
        named = [k for k in kids if comm(k) in ("idem-worker", "idem-supplier")]
        check(f"{kind}: the supervisor runs its workers and helper",
              {comm(k) for k in named} == {"idem-worker", "idem-supplier"},
              " ".join(f"{k}:{comm(k)}" for k in kids))
        leaked = [k for k in named
                  if any(v.startswith(b"NOTIFY_SOCKET=") for v in environ(k) or [])]
        check(f"{kind}: no child has NOTIFY_SOCKET in its environment", not leaked,
              f"{len(named)} children read; leaked to {leaked}")
        # SIGHUP (ExecReload): RELOADING=1 with MONOTONIC_USEC, then READY=1.
        p.send_signal(signal.SIGHUP)
        got = []
        try:
            got = [fields(mgr.recv(4096)) for _ in range(2)]
        except socket.timeout:
            pass
        check(f"{kind}: SIGHUP brings RELOADING=1, then READY=1",
              len(got) == 2 and got[0].get("RELOADING") == "1" and "MONOTONIC_USEC" in got[0]
              and got[1].get("READY") == "1", repr(got))
        p.send_signal(signal.SIGTERM)
        try:
            second = mgr.recv(4096)
        except socket.timeout:
            second = b""
        check(f"{kind}: SIGTERM brings STOPPING=1", fields(second).get("STOPPING") == "1",
              repr(second))
        rc = p.wait(WAIT)
        check(f"{kind}: the supervisor exits 0 after the drain", rc == 0, f"exit {rc}")
        with open(os.path.join(work, "supervisor.log")) as f:
            log = f.read()
        check(f"{kind}: no warning about the notification", "service manager" not in log)
        return p
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        mgr.close()


def no_ready_when_start_fails(work):
    """A second supervisor on the same state DB exits 2; it must not have
    said READY=1."""
    first, _ = start(work)
    second = None
    mgr = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = os.path.join(work, "notify2.sock")
    mgr.bind(path)
    try:
        for _ in range(WAIT * 20):
            if answers(os.path.join(work, "idem.sock")) == 200:
                break
            time.sleep(0.05)
        env = dict(os.environ, NOTIFY_SOCKET=path)
        second, _ = start(work, env, log_name="second.log", sock_name="other.sock")
        rc = second.wait(WAIT)
        mgr.setblocking(False)
        try:
            got = mgr.recv(4096)
        except BlockingIOError:
            got = b""
        check("a supervisor that cannot start exits 2", rc == 2, f"exit {rc}")
        check("a supervisor that cannot start says nothing to the manager", got == b"",
              repr(got))
    finally:
        if second is not None and second.poll() is None:
            second.kill()
            second.wait()
        first.send_signal(signal.SIGTERM)
        first.wait(WAIT)
        mgr.close()


def unreachable_manager(work):
    """NOTIFY_SOCKET names no socket: the supervisor runs and stops as
    usual, and says so once (READY=1 and STOPPING=1 both fail)."""
    env = dict(os.environ, NOTIFY_SOCKET=os.path.join(work, "nobody.sock"))
    p, sock = start(work, env)
    try:
        for _ in range(WAIT * 20):
            if answers(sock) == 200 or p.poll() is not None:
                break
            time.sleep(0.05)
        check("unreachable NOTIFY_SOCKET: the API answers all the same", answers(sock) == 200)
        p.send_signal(signal.SIGTERM)
        rc = p.wait(WAIT)
        check("unreachable NOTIFY_SOCKET: exit 0 after SIGTERM", rc == 0, f"exit {rc}")
        with open(os.path.join(work, "supervisor.log")) as f:
            warned = [line for line in f if "cannot tell the service manager" in line]
        check("unreachable NOTIFY_SOCKET: one warning naming the socket",
              len(warned) == 1 and "nobody.sock" in warned[0] and "level=warn" in warned[0],
              "".join(warned).strip())
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def notify_fd_run(work):
    """--notify-fd on a pipe: a newline once the API answers, then EOF. On
    the payments example, whose helper is its own command (python3
    service.py), started with every fd the supervisor does not mark
    close-on-exec."""
    r, w = os.pipe()
    app = os.path.join(ROOT, "examples", "payments", "idem.json")
    p, sock = start(work, extra=[f"--app={app}", f"--notify-fd={w}"], pass_fds=(w,))
    os.close(w)
    try:
        ready = select.select([r], [], [], WAIT)[0]
        got = os.read(r, 16) if ready else b""
        health = answers(sock) if got else None
        check("--notify-fd: a newline arrives", got == b"\n", repr(got))
        check("--notify-fd: the control API answers when it does", health == 200, str(health))
        # EOF while the supervisor, its workers and the app's helper run:
        # it closed the fd, and no child holds a copy (FD_CLOEXEC).
        kids = wait_workers(p.pid)
        check("--notify-fd: the app's helper command runs", "python3" in map(comm, kids),
              " ".join(f"{k}:{comm(k)}" for k in kids))
        eof = select.select([r], [], [], 10)[0]
        rest = os.read(r, 16) if eof else None
        check("--notify-fd: then EOF, with the workers and helper running",
              rest == b"" and p.poll() is None,
              f"read {rest!r}, supervisor {'running' if p.poll() is None else 'gone'}")
        p.send_signal(signal.SIGTERM)
        rc = p.wait(WAIT)
        check("--notify-fd: the supervisor exits 0 after SIGTERM", rc == 0, f"exit {rc}")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(r)


def bad_notify_fd(work):
    for arg, why in (("--notify-fd=77", "not open"), ("--notify-fd=abc", "not a number"),
                     ("--notify-fd=1", "stdout")):
        p = subprocess.run(
            [os.path.join(BIN, "idem-supervisor"), "--env=/dev/null",
             f"--socket={work}/bad.sock", arg],
            capture_output=True, text=True, timeout=WAIT, cwd=work)
        check(f"{arg} ({why}): exit 2 naming --notify-fd",
              p.returncode == 2 and "--notify-fd" in p.stderr,
              f"exit {p.returncode}: {p.stderr.strip()}")
    check("a bad --notify-fd starts nothing", not os.path.exists(f"{work}/bad.sock"))


def main():
    top = tempfile.mkdtemp(prefix="idem-notify-")
    for name, run in (("path", lambda w: notify_socket_run(w, False)),
                      ("abstract", lambda w: notify_socket_run(w, True)),
                      ("fail", no_ready_when_start_fails),
                      ("unreachable", unreachable_manager),
                      ("fd", notify_fd_run),
                      ("badfd", bad_notify_fd)):
        work = os.path.join(top, name)
        os.mkdir(work)
        run(work)
    if failures:
        print(f"test_notify: {len(failures)} failed: {failures}; files in {top}")
        return 1
    shutil.rmtree(top, ignore_errors=True)
    print("test_notify: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
