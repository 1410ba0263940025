#!/usr/bin/env python3
# powercut.py — power loss, simulated: records a run of the whole system (every process, through libidem_powerlog.so), then for cut points rebuilds the disk a power loss could leave, restarts idem on it, and checks that nothing acknowledged was lost and the checker passes.
"""
  powercut.py --bin BUILD/bin [--sync full|normal] [--workflows N] [--cuts N]
              [--subsets K] [--supervisor-kills N] [--seed S] [--keep]
              [--recording DIR --only CUT:SUBSET] [--expect-loss]

A run: a supervisor (SYNC as given) under fault injection, its workers and
its supplier, all with the recorder preloaded, takes N inventory orders
from clients; every answer a client gets is noted with the recorder's
sequence number at that moment ("told": a start acknowledged, a workflow
completed with its result). The supervisor is SIGKILLed and restarted N
times, with the syncs of the state WAL held (the recorder's DIR/hold) from
just before the kill until the restarted one has run a while: the killed
one leaves commits unsynced, and whatever the next one lets out before a
sync of its own is on the record (the restart window).

A cut at sequence C keeps every operation before C. The disk after a power
loss at C holds, per file, what its last completed fsync/fdatasync covered,
plus none (subset 0), all (subset 1: a process crash, the page cache
survived) or a seeded choice (subsets 2..) of the later writes, each kept
write possibly torn at a 512-byte sector boundary, kept in a seeded order.
A create, rename or unlink lasts only once a sync of its directory covered
it (later ones: none, all, or a seeded prefix).

On each disk, before idem runs: every start told before C must be in the
state DB, every completion told with its result. Then a supervisor (no
faults) recovers and finishes, and the checker (nothing lost or applied
twice, each history adding up, integrity_check) must pass.

Cuts: each restart window at every point where the disk or what was told
changes, then every Nth durability operation, just after answers, and
seeded random ones. Every random choice comes from --seed (printed); a
failing disk prints the command that replays it. Exit 0 when every disk
passes, 1 when one loses what was told or fails after recovery, 2 when
the harness itself cannot run. --expect-loss (the control, for
SYNC=normal) inverts it: 0 only when some disk lost what was told.
"""
import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "scripts"))
from idem_http import call  # noqa: E402

OPEN_CREATE, WRITE, TRUNCATE, FSYNC, DIRSYNC, RENAME, UNLINK = range(1, 8)
HEADER = struct.Struct("<QIIQQII")
SECTOR = 512


def die(why):
    """The harness itself cannot run: exit 2, not 1 (which says idem lost something)."""
    print(why, file=sys.stderr, flush=True)
    sys.exit(2)


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
            "--start-to-close-timeout=2s", "--log-level=" + os.environ.get("POWERCUT_LOG", "warn")]
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

    def start(wait=True):
        p = subprocess.Popen(supervisor_args(o.bin, run_dir, sock_dir, o.sync, True, o.seed),
                             env=env, stdout=log, stderr=subprocess.STDOUT)
        if wait and not wait_socket(sock, p):
            die(f"powercut: the recorded supervisor did not start; see {log.name}")
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
    # SIGKILL and restart the supervisor at even shares of the answers. The
    # page cache survives a process kill, so what the next one reads may
    # never have been synced: the restart window. The recorder holds the
    # syncs of the state WAL (DIR/hold) from a seeded moment before the
    # kill to one after the restart, so that the killed supervisor leaves
    # commits unsynced (starts, results, completions) and the next one has
    # time to let out whatever it would let out before a sync of its own
    # covered them.
    kill_rng = random.Random(f"{o.seed}/kills")
    hold = os.path.join(log_dir, "hold")
    restarts = []
    for k in range(1, o.supervisor_kills + 1):
        while any(t.is_alive() for t in threads) and \
                len(told) < 2 * o.workflows * k // (o.supervisor_kills + 1):
            time.sleep(0.005)
        with open(hold + ".new", "w") as f:  # whole or not at all: an empty
            f.write("/state.db-wal\n")      # hold would hold every sync
        os.rename(hold + ".new", hold)
        time.sleep(kill_rng.uniform(0.01, 0.05))
        sup[0].kill()
        sup[0].wait()
        restarts.append(counter.now() + 1)
        sup[0] = start(wait=False)
        time.sleep(kill_rng.uniform(0.1, 0.3))
        os.unlink(hold)
        if not wait_socket(sock, sup[0]):
            die(f"powercut: the restarted supervisor did not start; see {log.name}")
    for t in threads:
        t.join()
    sup[0].send_signal(signal.SIGTERM)
    sup[0].wait(timeout=30)
    log.close()
    with open(os.path.join(work, "told.json"), "w") as f:
        json.dump({"root": run_dir, "told": told, "restarts": restarts}, f)
    return told, restarts, read_ops(log_dir, run_dir)


def recorded(work):
    """A kept recording (--recording): what record() returned."""
    with open(os.path.join(work, "told.json")) as f:
        doc = json.load(f)
    return ([tuple(t) for t in doc["told"]], doc.get("restarts", []),
            read_ops(os.path.join(work, "log"), doc["root"]))


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
    """The files a power loss at `cut` leaves: {relative path: bytes}.

    Files are inodes with names. An inode's content is what its completed
    syncs covered plus a choice of the later writes. A name (a create, a
    rename, an unlink) is durable once a sync of its directory covered it,
    as POSIX says: syncing a file does not make its name durable. Later
    name changes survive as a seeded prefix per directory (a journaling
    file system keeps their order): none for subset 0, all for subset 1."""
    names, durable_names = {}, {}        # path -> inode, now / on the disk
    name_ops = {}                        # directory -> [(seq, path, inode or None)]
    durable, current, pending = {}, {}, {}  # inode -> content / [(seq, off, body)]
    inodes = iter(range(1, 1 << 62))

    def inode_of(path):
        if path not in names:  # (a file from before the recording: durable)
            ino = next(inodes)
            names[path] = durable_names[path] = ino
            durable[ino], current[ino], pending[ino] = bytearray(), bytearray(), []
        return names[path]

    def rename(changes, seq):
        """Name changes [(path, inode or None)] that last or not together."""
        for path, ino in changes:
            if ino is None:
                names.pop(path, None)
            else:
                names[path] = ino
        for d in {os.path.dirname(path) for path, _ in changes}:
            name_ops.setdefault(d, []).append((seq, changes))

    for seq, op, path, path2, off, length, body in ops:
        if seq >= cut:
            break
        if op == OPEN_CREATE:
            ino = next(inodes)
            durable[ino], current[ino], pending[ino] = bytearray(), bytearray(), []
            rename([(path, ino)], seq)
        elif op == WRITE:
            ino = inode_of(path)
            apply_write(current[ino], off, body)
            pending[ino].append((seq, off, body))
        elif op == TRUNCATE:
            ino = inode_of(path)
            del current[ino][off:]
            pending[ino].append((seq, off, None))
        elif op == FSYNC:
            # A sync covers what finished before it began (the recorder's
            # len: the counter then); a write racing it (the supervisor's
            # sync thread beside its loop) may be left out.
            ino = inode_of(path)
            for w in [w for w in pending[ino] if w[0] <= length]:
                apply(durable[ino], w[1], w[2])
            pending[ino] = [w for w in pending[ino] if w[0] > length]
        elif op == DIRSYNC:
            d = os.path.normpath(path) if path != "." else ""
            todo = name_ops.get(d, [])
            for _, changes in [n for n in todo if n[0] <= length]:
                for name, ino in changes:
                    if os.path.dirname(name) != d:
                        continue  # (the other side of a rename: its own directory)
                    if ino is None:
                        durable_names.pop(name, None)
                    else:
                        durable_names[name] = ino
            name_ops[d] = [n for n in todo if n[0] > length]
        elif op == RENAME:
            ino = inode_of(path)
            if off == 2:  # RENAME_EXCHANGE: the two swap
                rename([(path, inode_of(path2)), (path2, ino)], seq)
            else:
                rename([(path, None), (path2, ino)], seq)
        elif op == UNLINK:
            rename([(path, None)], seq)
    rng = random.Random(f"{seed}/{cut}/{subset}")
    left = dict(durable_names)
    for d, todo in name_ops.items():
        keep = len(todo) if subset == 1 else 0 if subset == 0 else rng.randrange(len(todo) + 1)
        for _, changes in todo[:keep]:
            for name, ino in changes:
                if os.path.dirname(name) != d:
                    continue
                if ino is None:
                    left.pop(name, None)
                else:
                    left[name] = ino
    contents = {}
    for ino in set(left.values()):
        buf = bytearray(durable[ino])
        if subset == 1:
            buf = bytearray(current[ino])
        elif subset >= 2:
            kept = [w for w in pending[ino] if rng.random() < 0.5]
            rng.shuffle(kept)
            for _, off, body in kept:
                if body is None:
                    del buf[off:]
                    continue
                if len(body) > SECTOR and rng.random() < 0.3:  # torn at a sector
                    body = body[:SECTOR * rng.randrange(1, (len(body) + SECTOR - 1) // SECTOR)]
                apply_write(buf, off, body)
        contents[ino] = bytes(buf)
    return {name: contents[ino] for name, ino in left.items()}


def left_on_disk(base, run_dir, told, cut):
    """What the power loss left, read before idem runs on it (a recovered
    workflow that runs again could complete again and hide a lost
    completion): every start told before the cut is in the state DB, every
    completion told is there with its result. Read from a copy, so that
    SQLite's own recovery of the copy changes nothing idem will see."""
    look = os.path.join(base, "inspect")
    os.makedirs(look)
    for name in ("state.db", "state.db-wal"):
        if os.path.exists(os.path.join(run_dir, name)):
            shutil.copy(os.path.join(run_dir, name), look)
    rows = {}
    if os.path.exists(os.path.join(look, "state.db")):
        db = sqlite3.connect(os.path.join(look, "state.db"))
        try:
            rows = {wf: (st, json.loads(res) if res is not None else None) for wf, st, res in
                    db.execute("SELECT workflow_id, status, result FROM workflows "
                               "WHERE namespace = 'default'")}
        except sqlite3.DatabaseError as e:
            # (before the schema was made, nothing was told: no table is fine)
            if any(t[0] < cut for t in told):
                return [f"the state DB left on the disk cannot be read: {e}"]
        finally:
            db.close()
    problems = []
    for seq, kind, wf, result in told:
        if seq >= cut:
            continue
        if wf not in rows:
            problems.append(f"{wf}: its start was acknowledged (seq {seq}); the disk lost it")
        elif kind != "start" and rows[wf][0] != kind:
            problems.append(f"{wf}: told {kind} (seq {seq}); the disk says {rows[wf][0]}")
        elif kind == "completed" and rows[wf][1] != result:
            problems.append(f"{wf}: told result {result} (seq {seq}); the disk has {rows[wf][1]}")
    return problems


def verify(o, work, files, told, cut, subset):
    """Checks what the disk kept, then restarts idem on it: returns (lost,
    broke), the acknowledged starts and completions the power loss took
    back, and what went wrong after (recovery, the checker); both empty:
    it held."""
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
    lost, problems = left_on_disk(base, run_dir, told, cut), []
    gone = {p.split(":")[0] for p in lost}
    log = open(os.path.join(base, "supervisor.log"), "w")
    sup = subprocess.Popen(supervisor_args(o.bin, run_dir, sock_dir, "full", False, o.seed),
                           stdout=log, stderr=subprocess.STDOUT)
    sock = os.path.join(sock_dir, "idem.sock")
    try:
        if not wait_socket(sock, sup):
            log.flush()
            return lost, [f"idem did not start on this disk: {open(log.name).read()[-400:]!r}"]
        st, body = call(sock, "GET", "/v1/wait?timeout=30s", timeout=40)
        if st != 200 or (body or {}).get("timed_out"):
            problems.append("workflows still running 30 s after recovery")
        for seq, kind, wf, result in told:
            if seq >= cut or wf in gone:
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
    if not lost and not problems and not o.keep:
        shutil.rmtree(base, ignore_errors=True)
    return lost, problems


def cuts_of(ops, told, restarts, o):
    """The cuts to try, at most o.cuts: first the restart windows (from
    each restart to its second sync of the state WAL: what a restarted
    supervisor lets out there is where unsynced commits of the killed one
    could leak), at each point where the disk or what was told changes -
    the restart, just before and after each sync, just after each answer -
    and a few seeded writes; then every Nth durability operation, the
    moments just after each acknowledgement, and seeded random ones."""
    seqs = [s for s, op, *_ in ops if op in (FSYNC, DIRSYNC, WRITE, TRUNCATE)]
    if not seqs:
        return []
    rng = random.Random(o.seed)
    aimed = []
    # each window its share of two thirds of the cuts (40 at most); the
    # rest spread over the run
    share = max(1, min(40, o.cuts * 2 // 3 // max(1, len(restarts))))
    for r in restarts:
        end, state_syncs = None, 0
        for s, op, path, *_ in ops:
            if s >= r and op == FSYNC and path.endswith("state.db-wal"):
                state_syncs += 1
                if state_syncs == 2:
                    end = s + 1
                    break
        end = end or seqs[-1] + 1
        window = {r, end}
        window |= {s + d for s, op, *_ in ops if r <= s < end and op in (FSYNC, DIRSYNC)
                   for d in (0, 1)}
        window |= {t[0] + 1 for t in told if r <= t[0] < end}
        writes = [s + 1 for s in seqs if r <= s < end]
        window |= set(rng.sample(writes, min(len(writes), 10)))
        aimed += sorted(window)[:share]
    chosen = set(aimed[:o.cuts])
    rest = max(0, o.cuts - len(chosen))
    every = max(1, len(seqs) // max(1, rest // 2))
    others = set(seqs[::every])
    # just after each answer: the likeliest cut to lose what was told
    others |= {t[0] + 1 for t in rng.sample(told, min(len(told), rest // 2))}
    left = sorted(set(seqs) - others)
    others |= set(rng.sample(left, min(len(left), max(0, rest - len(others)))))
    pick = sorted(others - chosen)
    chosen |= set(rng.sample(pick, min(len(pick), max(0, o.cuts - len(chosen)))))
    return sorted(chosen)


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
    o.preload = os.path.abspath(o.preload or os.path.join(os.path.dirname(o.bin),
                                                          "libidem_powerlog.so"))
    replay = (f"tests/powercut.py --bin {o.bin} --sync {o.sync} --workflows {o.workflows} "
              f"--supervisor-kills {o.supervisor_kills} --seed {o.seed}")
    if o.preload != os.path.join(os.path.dirname(o.bin), "libidem_powerlog.so"):
        replay += f" --preload {o.preload}"
    work = o.recording or tempfile.mkdtemp(prefix="idem-powercut-")
    replay += f" --recording {work} --only CUT:SUBSET"
    print(f"powercut: seed {o.seed}, SYNC={o.sync}; one disk again: {replay}", flush=True)
    t0 = time.monotonic()
    told, restarts, ops = recorded(work) if o.recording else record(o, work)
    syncs = sum(1 for op in ops if op[1] == FSYNC)
    print(f"powercut: recorded {len(ops)} operations ({syncs} syncs) on "
          f"{len({op[2] for op in ops})} files; {len(told)} answers told", flush=True)
    if o.only:
        plan = [tuple(int(x) for x in o.only.split(":"))]
    else:
        plan = [(c, s) for c in cuts_of(ops, told, restarts, o) for s in range(o.subsets)]
    lost_disks, broke_disks, lost_items = 0, 0, 0
    for cut, subset in plan:
        lost, broke = verify(o, work, disk_at(ops, cut, subset, o.seed), told, cut, subset)
        lost_disks += bool(lost)
        broke_disks += bool(broke)
        lost_items += len(lost)
        if lost or broke:
            print(f"powercut: cut {cut} subset {subset}: {len(lost)} acknowledged lost, "
                  f"{len(broke)} other problem(s): {(lost + broke)[0]}; again: "
                  f"{replay.replace('CUT:SUBSET', f'{cut}:{subset}')}", flush=True)
    print(f"powercut: SYNC={o.sync}: {len({c for c, _ in plan})} cuts, {len(plan)} disks checked; "
          f"acknowledged starts and completions lost: {lost_items} (on {lost_disks} disks); "
          f"recovery or the checker failed on {broke_disks} disks; "
          f"{time.monotonic() - t0:.1f} s", flush=True)
    if not o.keep and not lost_disks and not broke_disks and not o.recording:
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
    return 1 if lost_disks or broke_disks else 0


if __name__ == "__main__":
    sys.exit(main())
