#!/usr/bin/env python3
# powercut.py — power loss, simulated: records a run of the whole system (every process, through libidem_powerlog.so), then for cut points rebuilds the disk a power loss could leave, restarts idem on it, and checks that nothing acknowledged was lost and the checker passes.
"""
  powercut.py --bin BUILD/bin [--sync full|normal] [--workflows N] [--cuts N]
              [--subsets K] [--seed S] [--keep] [--only CUT:SUBSET]

A run: a supervisor (SYNC as given) under fault injection, its workers and
its supplier, all with the recorder preloaded, takes N inventory orders
from clients; every answer a client gets is noted with the recorder's
sequence number at that moment ("told": a start acknowledged, a workflow
completed with its result).

A cut at sequence C keeps every operation before C. The disk after a power
loss at C holds, per file, what its last completed fsync/fdatasync covered,
plus a subset of the writes after it: subset 0 none, subset 1 all of them
(a process crash: the page cache survived), subsets 2.. a seeded choice,
each kept write possibly torn at a 512-byte sector boundary, kept in a
seeded order. On that disk a supervisor (no faults) recovers and finishes;
then every start told before C must exist, every completion told before C
must still be completed with the same result, and the checker (nothing
lost or applied twice, each history adding up, integrity_check) must pass.

Every random choice comes from --seed (printed); --only CUT:SUBSET replays
one disk. Exit 0 when every disk passes, 1 when one loses what was told
(or fails the checker), 2 when the harness itself cannot run.
"""
import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

OPEN_CREATE, WRITE, TRUNCATE, FSYNC, DIRSYNC, RENAME, UNLINK = range(1, 8)
HEADER = struct.Struct("<QIIQQII")
SECTOR = 512


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def call(sock, method, path, body=None, timeout=60):
    c = UnixHTTP(sock, timeout)
    try:
        c.request(method, path, body=json.dumps(body) if body is not None else None,
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        c.close()


def wait_socket(sock, proc, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sock)
            s.close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


class Counter:
    """The recorder's sequence number, read where the driver notes what it was told."""

    def __init__(self, logdir):
        path = os.path.join(logdir, "seq")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if os.fstat(fd).st_size < 8:
            os.ftruncate(fd, 8)
        import mmap
        self.map = mmap.mmap(fd, 8)
        os.close(fd)

    def now(self):
        return struct.unpack("<Q", self.map[:8])[0]


def supervisor_args(bin_dir, run_dir, sock_dir, sync, faults, seed):
    args = [os.path.join(bin_dir, "idem-supervisor"), "--env=/dev/null",
            f"--socket={sock_dir}/idem.sock", f"--database={run_dir}/app.db",
            f"--state-database={run_dir}/state.db", f"--supplier-database={run_dir}/supplier.db",
            f"--supplier-socket={sock_dir}/supplier.sock", "--workers=2", f"--sync={sync}",
            "--seed-stock=P0:40,P1:40,P2:40", "--reorder-threshold=5", "--reorder-quantity=20",
            "--retry-initial-interval=5ms", "--retry-maximum-interval=50ms",
            "--start-to-close-timeout=2s", "--log-level=warn"]
    if faults:
        args += [f"--fault-seed={seed}", "--fault-kill-rate=0.1", "--fault-error-rate=0.1",
                 "--fault-peer-rate=0.1"]
    return args


def record(o, work):
    """The recorded run: returns (told, ops) where told is [(seq, kind, wf, result)]."""
    run_dir, log_dir, sock_dir = (os.path.join(work, d) for d in ("run", "log", "sock"))
    for d in (run_dir, log_dir, sock_dir):
        os.makedirs(d)
    # (A sanitized build: the recorder is not, and loads before ASan's runtime.)
    asan = ":".join(x for x in (os.environ.get("ASAN_OPTIONS"), "verify_asan_link_order=0") if x)
    env = dict(os.environ, LD_PRELOAD=o.preload, IDEM_POWERLOG_DIR=log_dir,
               IDEM_POWERLOG_ROOT=run_dir, ASAN_OPTIONS=asan)
    counter = Counter(log_dir)
    log = open(os.path.join(work, "record.log"), "w")
    sock = os.path.join(sock_dir, "idem.sock")

    def start():
        p = subprocess.Popen(supervisor_args(o.bin, run_dir, sock_dir, o.sync, True, o.seed),
                             env=env, stdout=log, stderr=subprocess.STDOUT)
        if not wait_socket(sock, p):
            raise SystemExit(f"powercut: the recorded supervisor did not start; see {log.name}")
        return p

    sup = [start()]
    told, lock = [], threading.Lock()
    rng = random.Random(o.seed)
    orders = [(f"W{i}", f"P{rng.randrange(3)}", 1 + rng.randrange(3)) for i in range(o.workflows)]

    def ask(method, path, body=None, timeout=60):
        """One exchange, again until the supervisor answers (it may be
        being killed and restarted): a start is idempotent by id."""
        while True:
            try:
                st, reply = call(sock, method, path, body, timeout)
                if st not in (500, 503):
                    return st, reply
            except (OSError, http.client.HTTPException, ValueError):
                pass
            time.sleep(0.02)

    def client(mine):
        for wf, product, qty in mine:
            st, body = ask("POST", "/v1/workflows",
                           {"workflow_id": wf, "input": {"order_id": wf, "product_id": product,
                                                         "quantity": qty}})
            if st in (200, 201):
                with lock:
                    told.append((counter.now(), "start", wf, None))
            while True:
                st, body = ask("GET", f"/v1/workflows/{wf}/wait?timeout=30s", timeout=40)
                w = (body or {}).get("workflow") or {}
                if st == 200 and w.get("status") in ("completed", "failed"):
                    with lock:
                        told.append((counter.now(), w["status"], wf, w.get("result")))
                    break

    threads = [threading.Thread(target=client, args=(orders[k::4],)) for k in range(4)]
    for t in threads:
        t.start()
    # SIGKILL and restart the supervisor at even shares of the answers: the
    # page cache survives a process kill, so what the next one reads may
    # never have been synced (the restart window).
    kill_rng = random.Random(f"{o.seed}/kills")
    for k in range(1, o.supervisor_kills + 1):
        while any(t.is_alive() for t in threads) and \
                len(told) < 2 * o.workflows * k // (o.supervisor_kills + 1):
            time.sleep(0.005)
        # not right after an answer (its commit is synced by then): a
        # seeded moment later, likelier amid a commit not yet synced
        time.sleep(kill_rng.uniform(0, 0.02))
        sup[0].kill()
        sup[0].wait()
        sup[0] = start()
    for t in threads:
        t.join()
    sup[0].send_signal(signal.SIGTERM)
    sup[0].wait(timeout=30)
    log.close()
    with open(os.path.join(work, "told.json"), "w") as f:
        json.dump({"root": run_dir, "told": told}, f)
    return told, read_ops(log_dir, run_dir)


def recorded(work):
    """A kept recording (--recording): what record() returned."""
    with open(os.path.join(work, "told.json")) as f:
        doc = json.load(f)
    return [tuple(t) for t in doc["told"]], read_ops(os.path.join(work, "log"), doc["root"])


def read_ops(log_dir, root):
    ops = []
    for name in os.listdir(log_dir):
        if not name.startswith("ops."):
            continue
        data = open(os.path.join(log_dir, name), "rb").read()
        at = 0
        while at + HEADER.size <= len(data):
            seq, pid, op, off, length, plen, p2len = HEADER.unpack_from(data, at)
            at += HEADER.size
            path = data[at:at + plen].decode()
            at += plen
            path2 = data[at:at + p2len].decode()
            at += p2len
            body = b""
            if op == WRITE:
                body = data[at:at + length]
                at += length
            ops.append((seq, op, os.path.relpath(path, root),
                        os.path.relpath(path2, root) if path2 else "", off, length, body))
    ops.sort()
    return ops


def apply_write(buf, off, body):
    if len(buf) < off:
        buf.extend(b"\0" * (off - len(buf)))
    buf[off:off + len(body)] = body


def apply(buf, off, body):
    if body is None:
        del buf[off:]
    else:
        apply_write(buf, off, body)


def disk_at(ops, cut, subset, seed):
    """The files a power loss at `cut` leaves: {relative path: bytes}."""
    durable, current, pending = {}, {}, {}
    for seq, op, path, path2, off, length, body in ops:
        if seq >= cut:
            break
        if op == OPEN_CREATE:
            current.setdefault(path, bytearray())
            durable.setdefault(path, bytearray())
            pending.setdefault(path, [])
        elif op == WRITE:
            apply_write(current.setdefault(path, bytearray()), off, body)
            pending.setdefault(path, []).append((seq, off, body))
        elif op == TRUNCATE:
            del current.setdefault(path, bytearray())[off:]
            pending.setdefault(path, []).append((seq, off, None))
        elif op == FSYNC:
            # A sync covers what finished before it began (the recorder's
            # len: the counter then); a write racing it (the supervisor's
            # sync thread beside its loop) may be left out.
            buf = durable.setdefault(path, bytearray())
            rest = []
            for w in pending.get(path, []):
                if w[0] <= length:
                    apply(buf, w[1], w[2])
                else:
                    rest.append(w)
            pending[path] = rest
        elif op == RENAME:
            for d in (durable, current, pending):
                if path in d:
                    d[path2] = d.pop(path)
        elif op == UNLINK:
            for d in (durable, current, pending):
                d.pop(path, None)
    rng = random.Random(f"{seed}/{cut}/{subset}")
    files = {}
    for path in set(durable) | set(current):
        buf = bytearray(durable.get(path, b""))
        todo = pending.get(path, [])
        if subset == 1:
            buf = bytearray(current.get(path, b""))
        elif subset >= 2:
            kept = [w for w in todo if rng.random() < 0.5]
            rng.shuffle(kept)
            for _, off, body in kept:
                if body is None:
                    del buf[off:]
                    continue
                if len(body) > SECTOR and rng.random() < 0.3:  # torn at a sector
                    body = body[:SECTOR * rng.randrange(1, (len(body) + SECTOR - 1) // SECTOR)]
                apply_write(buf, off, body)
        files[path] = bytes(buf)
    return files


def verify(o, work, files, told, cut, subset):
    """Restarts idem on the disk; returns a list of problems (empty: it held)."""
    base = os.path.join(work, f"cut-{cut}-{subset}")
    run_dir, sock_dir = os.path.join(base, "run"), os.path.join(base, "sock")
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(run_dir)
    os.makedirs(sock_dir)
    for path, data in files.items():
        full = os.path.join(run_dir, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)
    log = open(os.path.join(base, "supervisor.log"), "w")
    sup = subprocess.Popen(supervisor_args(o.bin, run_dir, sock_dir, "full", False, o.seed),
                           stdout=log, stderr=subprocess.STDOUT)
    sock = os.path.join(sock_dir, "idem.sock")
    problems = []
    try:
        if not wait_socket(sock, sup):
            log.flush()
            return [f"idem did not start on this disk: {open(log.name).read()[-400:]!r}"]
        st, body = call(sock, "GET", "/v1/wait?timeout=30s", timeout=40)
        if st != 200 or (body or {}).get("timed_out"):
            problems.append("workflows still running 30 s after recovery")
        for seq, kind, wf, result in told:
            if seq >= cut:
                continue
            st, body = call(sock, "GET", f"/v1/workflows/{wf}")
            if st != 200:
                problems.append(f"{wf}: its start was acknowledged (seq {seq}) but it is gone")
            elif kind != "start" and body.get("status") != kind:
                problems.append(f"{wf}: told {kind} (seq {seq}), now {body.get('status')}")
            elif kind == "completed" and body.get("result") != result:
                problems.append(f"{wf}: told result {result}, now {body.get('result')}")
        st, report = call(sock, "GET", "/v1/check")
        if st != 200 or not report.get("ok"):
            bad = {k: v for k, v in (report or {}).get("counts", {}).items() if v}
            problems.append(f"the checker failed: {bad or report}")
    finally:
        sup.send_signal(signal.SIGTERM)
        try:
            sup.wait(timeout=20)
        except subprocess.TimeoutExpired:
            sup.kill()
        log.close()
    if not problems and not o.keep:
        shutil.rmtree(base, ignore_errors=True)
    return problems


def cuts_of(ops, told, o):
    """Every Nth durability operation's sequence, the moments just after each
    acknowledgement, and seeded random ones."""
    seqs = [s for s, op, *_ in ops if op in (FSYNC, WRITE, TRUNCATE)]
    if not seqs:
        return []
    rng = random.Random(o.seed)
    every = max(1, len(seqs) // max(1, o.cuts // 2))
    chosen = set(seqs[::every])
    # just after each answer: the likeliest cut to lose what was told
    chosen |= {t[0] + 1 for t in rng.sample(told, min(len(told), o.cuts // 2))}
    while len(chosen) < o.cuts and len(chosen) < len(seqs) + len(told):
        chosen.add(rng.choice(seqs))
    return sorted(chosen)[:o.cuts]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--preload", help="libidem_powerlog.so (default: beside --bin)")
    ap.add_argument("--sync", choices=("full", "normal"), default="full")
    ap.add_argument("--workflows", type=int, default=40)
    ap.add_argument("--cuts", type=int, default=60)
    ap.add_argument("--subsets", type=int, default=3)
    ap.add_argument("--supervisor-kills", type=int, default=1)
    ap.add_argument("--seed", type=int, default=random.SystemRandom().randrange(1, 2**62))
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--only", help="CUT:SUBSET: one disk only")
    ap.add_argument("--recording", help="a kept run's directory: cut it, do not record anew")
    ap.add_argument("--expect-loss", action="store_true",
                    help="the control: exit 0 only when some disk lost what was told")
    o = ap.parse_args()
    o.bin = os.path.abspath(o.bin)
    o.preload = o.preload or os.path.join(os.path.dirname(o.bin), "libidem_powerlog.so")
    replay = (f"tests/powercut.py --bin {o.bin} --sync {o.sync} --workflows {o.workflows} "
              f"--supervisor-kills {o.supervisor_kills} --seed {o.seed}")
    work = o.recording or tempfile.mkdtemp(prefix="idem-powercut-")
    replay += f" --recording {work} --only CUT:SUBSET"
    print(f"powercut: seed {o.seed}, SYNC={o.sync}; one disk again: {replay}", flush=True)
    t0 = time.monotonic()
    told, ops = recorded(work) if o.recording else record(o, work)
    syncs = sum(1 for op in ops if op[1] == FSYNC)
    print(f"powercut: recorded {len(ops)} operations ({syncs} syncs) on "
          f"{len({op[2] for op in ops})} files; {len(told)} answers told", flush=True)
    if o.only:
        plan = [tuple(int(x) for x in o.only.split(":"))]
    else:
        plan = [(c, s) for c in cuts_of(ops, told, o) for s in range(o.subsets)]
    lost_disks, states = [], 0
    for cut, subset in plan:
        problems = verify(o, work, disk_at(ops, cut, subset, o.seed), told, cut, subset)
        states += 1
        if problems:
            lost_disks.append((cut, subset, problems))
            print(f"powercut: cut {cut} subset {subset}: {len(problems)} problem(s): "
                  f"{problems[0]}; again: {replay.replace('CUT:SUBSET', f'{cut}:{subset}')}",
                  flush=True)
    told_lost = sum(len(p) for _, _, p in lost_disks)
    print(f"powercut: SYNC={o.sync}: {len({c for c, _ in plan})} cuts, {states} disks checked, "
          f"{len(lost_disks)} lost or broke something ({told_lost} problems), "
          f"{time.monotonic() - t0:.1f} s", flush=True)
    if not o.keep and not lost_disks and not o.recording:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"powercut: files kept in {work}")
    if o.expect_loss:
        if lost_disks:
            print(f"powercut: SYNC={o.sync} lost acknowledged work after a power loss, as "
                  "documented: the control experiment can fail")
            return 0
        print(f"powercut: SYNC={o.sync} lost nothing: the control did not show the loss it "
              "documents")
        return 1
    return 1 if lost_disks else 0


if __name__ == "__main__":
    sys.exit(main())
