#!/usr/bin/env python3
# test_faults_live.py — faults switched on and off on a live supervisor,
# as an operator would: `idemctl faults set --kill-rate R --for D` opens a
# window of kills while orders keep coming, the window closes by itself,
# `faults set` without an end, `faults off`, a SIGHUP that re-reads the
# config's FAULT_* keys (held back while a runtime plan is in force),
# `faults reset`, and requests the supervisor must refuse without
# changing anything. Then, from the state DB: every attempt's "started"
# event names the plan in force (fault_plans), every planned fault hit an
# attempt planned under a plan with faults, the kills of the window fall
# inside it, work ran outside every window without a single fault, the
# counters agree, and the checker says nothing was lost or applied twice.
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from idem_http import UnixHTTP, call  # noqa: E402
from checks import check, failures  # noqa: E402

BIN = os.path.join(os.environ.get("IDEM_BIN_DIR", os.path.join(ROOT, "build")), "bin")
SEED = int(os.environ.get("IDEM_TEST_SEED") or random.SystemRandom().randrange(1, 1 << 31))
WINDOW_MS = 1500
class Run:
    def __init__(self, work):
        self.work = work
        self.sock = os.path.join(work, "idem.sock")
        self.env = os.path.join(work, "idem.env")
        self.n = 0
        self.write_env("")
        self.log = open(os.path.join(work, "supervisor.log"), "w")
        self.p = subprocess.Popen(
            [os.path.join(BIN, "idem-supervisor"), f"--env={self.env}", f"--socket={self.sock}",
             f"--database={work}/app.db", f"--state-database={work}/state.db",
             f"--supplier-database={work}/supplier.db", f"--supplier-socket={work}/sup.sock",
             "--sync=normal", "--retry-initial-interval=5ms",
             f"--seed={SEED}"], stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(500):
            try:
                if call(self.sock, "GET", "/v1/health", timeout=5)[0] == 200:
                    return
            except OSError:
                time.sleep(0.02)
        raise SystemExit("idem-supervisor did not answer; see supervisor.log")

    def write_env(self, text, workers=2):
        with open(self.env, "w") as f:
            f.write(f"WORKERS={workers}\n{text}")

    def ctl(self, *args, stdout_only=False):
        r = subprocess.run([os.path.join(BIN, "idemctl"), "--env=/dev/null",
                            f"--socket={self.sock}", *args], capture_output=True, text=True,
                           timeout=120)
        return r.returncode, r.stdout if stdout_only else r.stdout + r.stderr

    def start(self):
        wid = f"o{self.n:04d}"
        self.n += 1
        st, body = call(self.sock, "POST", "/v1/workflows",
                        {"input": {"order_id": wid, "product_id": "123456", "quantity": 1}})
        if st != 201:
            raise SystemExit(f"start {wid}: {st} {body}")

    def batch(self, n):
        for _ in range(n):
            self.start()
        self.wait()

    def wait(self):
        st, body = call(self.sock, "GET", "/v1/wait?timeout=120s", timeout=130)
        if st != 200 or body.get("timed_out"):
            raise SystemExit(f"the run did not finish: {st} {body}")

    def faults(self):
        st, body = call(self.sock, "GET", "/v1/faults")
        assert st == 200, body
        return body

    def planned(self):
        """(kills, errors, after-commit kills) planned so far."""
        st, body = call(self.sock, "GET", "/v1/stats")
        assert st == 200, body
        f = body["faults"]
        return (f["by_kind"]["kill"], f["by_kind"].get("error", 0),
                f["kills_by_point"].get("after_commit", 0))

    def batch_until(self, n, more):
        """n orders, then ten more at a time until more(before, after)
        says what was planned is there, or 300 more prove it is not."""
        before = self.planned()
        self.batch(n)
        for _ in range(30):
            if more(before, self.planned()):
                return
            self.batch(10)

    def hup(self):
        before = open(self.log.name).read().count("SIGHUP:")
        self.p.send_signal(signal.SIGHUP)
        for _ in range(250):
            if open(self.log.name).read().count("SIGHUP:") > before:
                # the loop answers once the SIGHUP's callback has returned,
                # so every line it logs is in
                self.faults()
                return
            time.sleep(0.02)
        raise SystemExit("the supervisor did not log the SIGHUP")


def refusals(r):
    """Bad changes: each a 400 naming what is wrong, and nothing changed."""
    plan = r.faults()["plan_id"]
    for body, text in [({"kill_rate": 2}, "FAULT_KILL_RATE=2 is out of range"),
                       ({"kil_rate": 0.1}, 'unknown member "kil_rate"'),
                       ({"seed": 1}, "restart with --seed"),
                       ({"vfs": "x"}, "restart"),
                       ({"kill_rate": 0.6, "kill_rate_after_commit": 0.6}, "add up to"),
                       ({"reset": True, "for": "1s"}, '"reset" goes alone'),
                       ({"off": True, "kill_rate": 0.1}, '"off" sets every rate to 0'),
                       ({"kill_rate": 0.1, "for": 5}, '"for" must be a duration'),
                       ({"for": "1s"}, "say which rates"),
                       ({}, "must be a JSON object")]:
        st, got = call(r.sock, "PUT", "/v1/faults", body)
        check(f"PUT /v1/faults {json.dumps(body)} is refused: {text}",
              st == 400 and text in got.get("error", "") and "nothing was changed" in got["error"],
              (st, got))
    check("the refusals changed nothing", r.faults()["plan_id"] == plan)
    rc, out = r.ctl("faults", "set", "--kill-rat", "0.1")
    check("idemctl faults set with a misspelt rate exits 1 naming it",
          rc == 1 and 'unknown member "kill_rat"' in out, (rc, out))
    rc, out = r.ctl("faults", "set", "--for", "1s")
    check("idemctl faults set without a rate is a usage error", rc == 2 and "which rates" in out,
          (rc, out))


def scenario(r):
    r.batch(20)  # the config's plan: no fault

    # Half the attempts die: a slow (sanitized) run starts some 25 in the
    # window, and none dying would fail "kills in the window".
    rc, out = r.ctl("faults", "set", "--kill-rate", "0.5", "--for", f"{WINDOW_MS}ms")
    check("idemctl faults set --for opens a window", rc == 0 and "set at runtime" in out
          and "kill 0.500" in out, (rc, out))
    deadline = time.monotonic() + 30
    while r.faults()["source"] != "config" and time.monotonic() < deadline:
        r.start()
        time.sleep(0.01)
    check("the window closed by itself", r.faults()["source"] == "config")
    r.wait()
    r.batch(20)  # after the window: the config's plan again

    rc, out = r.ctl("faults", "set", "--error-rate", "0.4", "--kill-rate-after-commit", "0.2")
    check("idemctl faults set without --for holds", rc == 0 and "until idemctl faults reset" in out,
          (rc, out))
    # an error and a kill after commit: 30 orders miss the kill about
    # once in 30,000 runs, so more come until both are planned
    r.batch_until(30, lambda b, a: a[1] > b[1] and a[2] > b[2])
    rc, out = r.ctl("faults", "off")
    check("idemctl faults off", rc == 0 and "faults off" in out, (rc, out))
    r.batch(20)

    # A SIGHUP while a runtime plan is in force: the config's new plan
    # waits for it to end (here: reset). WORKERS cannot change live.
    r.write_env("FAULT_KILL_RATE=0.25\n", workers=3)
    r.hup()
    doc = r.faults()
    check("SIGHUP keeps the runtime plan in force", doc["source"] == "off" and not doc["enabled"],
          doc)
    check("SIGHUP read the config's new plan",
          abs(sum(doc["config"]["kill_rate_by_point"].values()) - 0.25) < 1e-9, doc["config"])
    log = open(r.log.name).read()
    check("SIGHUP names the key that needs a restart", 'needs_restart="WORKERS"' in log, log[-800:])
    rc, out = r.ctl("faults", "reset")
    check("idemctl faults reset puts the config's plan back",
          rc == 0 and "the config's" in out and "kill 0.250" in out, (rc, out))
    # One attempt in four planned to die: 30 orders see none about once in
    # 5,000 runs (which ids come here depends on the window's timing).
    r.batch_until(30, lambda b, a: a[0] > b[0])

    r.write_env("FAULT_KILL_RATE=2\n")
    r.hup()
    check("a SIGHUP with a bad config changes nothing",
          r.faults()["plan_id"] == doc["plan_id"] + 1 and r.faults()["enabled"])
    r.write_env("")
    r.hup()
    check("a SIGHUP without faults turns the config's plan off", not r.faults()["enabled"])
    r.batch(20)


def verify(r):
    db = sqlite3.connect(f"file:{r.work}/state.db?mode=ro", uri=True)
    plans = db.execute("SELECT id, ts, action, plan, until FROM fault_plans ORDER BY id").fetchall()
    actions = [p[2] for p in plans]
    check("the plans taken, in order", actions ==
          ["start", "set", "expired", "set", "off", "reset", "reload"], actions)
    if len(plans) != 7:
        return
    by_id = {p[0]: p for p in plans}
    window, expired = plans[1], plans[2]
    check("the window was set for its duration", window[4] - window[1] == WINDOW_MS, window)
    check("the window ended on time", window[4] <= expired[1] <= window[4] + 1000,
          (window[4], expired[1]))

    started = {}
    for wf, seq, attempt, detail in db.execute(
            "SELECT wf, seq, attempt, detail FROM events WHERE kind = 'started'"):
        started[(wf, seq, attempt)] = json.loads(detail).get("fault_plan")
    check("every attempt names a recorded plan",
          started and all(p in by_id for p in started.values()),
          [p for p in started.values() if p not in by_id][:5])
    per_plan = {p[0]: sum(1 for v in started.values() if v == p[0]) for p in plans}
    for pid, n in per_plan.items():
        check(f"attempts ran under plan {pid} ({by_id[pid][2]})", n > 0, per_plan)

    faults = {}
    for wf, seq, attempt, ts, detail in db.execute(
            "SELECT wf, seq, attempt, ts, detail FROM events WHERE kind = 'fault_injected'"):
        pid = started.get((wf, seq, attempt))
        faults.setdefault(pid, []).append((ts, json.loads(detail)))
    with_faults = {plans[1][0], plans[3][0], plans[5][0]}
    check("faults hit only attempts planned under a plan with faults",
          set(faults) <= with_faults, {by_id.get(k, [k, 0, "?"])[2]: len(v)
                                       for k, v in faults.items()})
    kills = [(ts, d) for ts, d in faults.get(window[0], []) if d.get("kind") == "kill"]
    check("kills in the window", len(kills) > 0, faults.get(window[0]))
    # A fault is recorded when it is planned, as its attempt starts. The
    # window's end comes at the loop's next turn after its time, as late
    # as "ended on time" allows.
    check("the window's kills fall inside it",
          all(window[1] <= ts <= window[4] + 1000 for ts, _ in kills),
          [ts for ts, _ in kills if not window[1] <= ts <= window[4] + 1000])
    second = faults.get(plans[3][0], [])
    check("the second plan's errors and after-commit kills",
          any(d.get("kind") == "error" for _, d in second) and
          any(d.get("kind") == "kill" and d.get("point") == "after_commit" for _, d in second) and
          all(d.get("kind") == "error" or d.get("point") == "after_commit" for _, d in second),
          second[:5])
    check("the config's plan after reset killed", any(d.get("kind") == "kill"
                                                      for _, d in faults.get(plans[5][0], [])),
          (per_plan[plans[5][0]], faults.get(plans[5][0])))

    st, stats = call(r.sock, "GET", "/v1/stats")
    check("/v1/stats counts the plans taken", stats["faults"]["plan_changes"] == 6,
          stats["faults"])
    check("/v1/stats counts the kills planned",
          stats["faults"]["by_kind"]["kill"] ==
          sum(1 for v in faults.values() for _, d in v if d.get("kind") == "kill"),
          stats["faults"])
    check("worker deaths by planned kill", stats["workers"]["deaths"]["planned_kill"] > 0,
          stats["workers"])
    c = UnixHTTP(r.sock, 30)
    c.request("GET", "/metrics")
    metrics = c.getresponse().read().decode()
    c.close()
    check("/metrics counts the plans taken", "\nidem_fault_plan_changes_total 6\n" in metrics,
          [ln for ln in metrics.splitlines() if "plan" in ln])
    rc, out = r.ctl("check")
    check("the checker: nothing lost, nothing applied twice", rc == 0 and "OK" in out, out[-1500:])
    rc, out = r.ctl("faults")
    check("idemctl faults lists the latest plans", rc == 0 and "latest plans:" in out
          and out.count("\n  ") >= 7, out)


def keep(r):
    """A runtime plan kept past a restart: `faults env`'s lines in the
    .env, read by a SIGHUP, make the same plan the config's."""
    rc, out = r.ctl("faults", "set", "--error-rate", "0.15", "--kill-rate-after-commit", "0.05",
                    "--async-kill-rate", "0.00002", "--max-attempt", "2")
    check("a plan to keep", rc == 0, (rc, out))
    want = r.faults()["in_force"]
    rc, env = r.ctl("faults", "env", stdout_only=True)
    check("idemctl faults env prints the plan's FAULT_* lines, in the config's decimals",
          rc == 0 and "FAULT_KILL_RATE_AFTER_COMMIT=0.05\n" in env
          and "FAULT_ASYNC_KILL_RATE=0.00002\n" in env and "FAULT_MAX_ATTEMPT=2" in env
          and f"# FAULT_SEED={SEED} " in env, (rc, env))
    r.ctl("faults", "reset")
    check("reset: not the plan to keep", r.faults()["in_force"] != want, r.faults()["in_force"])
    r.write_env(env)
    r.hup()
    doc = r.faults()
    check("after SIGHUP with those lines in the .env the config's plan is the one kept",
          doc["source"] == "config" and doc["config"] == want and doc["in_force"] == want,
          (doc, want))
    # RETRY_INITIAL_INTERVAL is given as a flag (Run): a new value in the
    # .env is named, not taken; RETRY_MAXIMUM_INTERVAL, given nowhere else,
    # is taken.
    r.write_env(env + "RETRY_INITIAL_INTERVAL=40ms\nRETRY_MAXIMUM_INTERVAL=20s\n")
    r.hup()
    log = open(r.log.name).read().splitlines()
    hidden = [ln for ln in log if "a flag of the command line sets them" in ln]
    read = [ln for ln in log if "SIGHUP: configuration read again" in ln]
    check("SIGHUP names a .env change that a flag overrides",
          len(hidden) == 1 and 'keys="RETRY_INITIAL_INTERVAL"' in hidden[0], hidden)
    check("... and takes the one no flag gives",
          read and 'changed="RETRY_MAXIMUM_INTERVAL"' in read[-1], read[-1:])


def main():
    print(f"seed {SEED} (IDEM_TEST_SEED={SEED} replays it)")
    with tempfile.TemporaryDirectory(prefix="idem-faults-") as work:
        r = Run(work)
        try:
            refusals(r)
            scenario(r)
            verify(r)
            keep(r)
        finally:
            r.p.terminate()
            r.p.wait(60)
            if failures:
                print(open(r.log.name).read()[-3000:])
        check("the supervisor stopped cleanly", r.p.returncode == 0, r.p.returncode)
    if failures:
        print(f"{len(failures)} check(s) failed (seed {SEED})")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
