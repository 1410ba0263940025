#!/usr/bin/env python3
# test_examples.py — the example apps (examples/shell, examples/payments) under the real idem: a seeded stress with kills at every crash point each activity names, and supervisor kills, passes the guarded versions; the naive versions fail with the duplicates their faults made.
#
# Run by ctest (IDEM_BIN_DIR: the build's bin/ parent). Every run's seed is
# printed with the command that replays it (IDEM_TEST_SEED fixes the seed).
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(os.environ.get("IDEM_BIN_DIR", os.path.join(ROOT, "build")), "bin")
SEED = int(os.environ.get("IDEM_TEST_SEED", random.SystemRandom().randrange(1, 2**63)))

# Kills at every point, no async kill or delay: the faults that decide
# which effects are applied twice are then all in the fault plan.
# (A peer fault kills the payment service, and every charge in flight then
# fails: the naive runs leave peer faults out, the guarded ones keep them.)
DETERMINISTIC = ["--kill-rate", "0.4", "--async-kill-rate", "0", "--delay-rate", "0",
                 "--error-rate", "0.1", "--peer-rate", "0"]


def stress(app, args, name):
    """Runs idem-stress on examples/APP; returns (exit code, report, run directory)."""
    work = tempfile.mkdtemp(prefix=f"idem-ex-{name}-")
    report = os.path.join(work, "report.json")
    run_dir = os.path.join(work, "run")
    cmd = [os.path.join(BIN, "idem-stress"), "--app", os.path.join(ROOT, "examples", app),
           "--seed", str(SEED), "--progress", "0", "--dir", run_dir, "--json", report] + args
    print("test_examples: " + " ".join(cmd), file=sys.stderr)
    t0 = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=600)
    print(f"test_examples: {name}: exit {p.returncode} in {time.monotonic() - t0:.1f} s",
          file=sys.stderr)
    with open(report) as f:
        doc = json.load(f)
    if p.returncode not in (0, 1):
        print(p.stdout, file=sys.stderr)
    return p.returncode, doc, run_dir, work, p.stdout


def after_effect_steps(run_dir, activities):
    """The (workflow, step) whose attempts the plan hit after the command had applied its
    effect: killed at a point after it (or mid-reply), or failed after it on purpose."""
    db = sqlite3.connect(f"file:{os.path.join(run_dir, 'state.db')}?mode=ro", uri=True)
    hit = set()
    for wid, seq, activity, detail in db.execute(
            "SELECT w.workflow_id, e.seq, s.activity, e.detail FROM events e"
            " JOIN workflows w ON w.id = e.wf JOIN steps s ON s.wf = e.wf AND s.seq = e.seq"
            " WHERE e.kind = 'fault_injected'"):
        d = json.loads(detail)
        after = activities.get(activity, ())
        if (d["kind"] == "kill" and (d["point"] in after or d["point"] == "mid_reply")) or \
                (d["kind"] == "error" and d.get("when") == "after_effect"):
            hit.add((wid, seq))
    db.close()
    return hit


def faulted_steps(run_dir):
    """The (workflow, step) any planned fault hit."""
    db = sqlite3.connect(f"file:{os.path.join(run_dir, 'state.db')}?mode=ro", uri=True)
    rows = set(db.execute("SELECT w.workflow_id, e.seq FROM events e JOIN workflows w"
                          " ON w.id = e.wf WHERE e.kind = 'fault_injected'"))
    db.close()
    return rows


class Examples(unittest.TestCase):
    def tearDown(self):
        for w in getattr(self, "work", []):
            if os.environ.get("IDEM_KEEP_TMP"):
                print(f"test_examples: kept {w}", file=sys.stderr)
            else:
                shutil.rmtree(w, ignore_errors=True)

    def keep(self, work):
        self.work = getattr(self, "work", []) + [work]

    def passes(self, app, n, kills, kill_rate="0.4"):
        rc, doc, run_dir, work, out = stress(
            app, ["--workflows", str(n), "--supervisor-kills", str(kills), "--kill-rate",
                  kill_rate], app + "-guarded")
        self.keep(work)
        self.assertEqual(rc, 0, f"seed {SEED}: guarded {app} failed:\n{out}")
        self.assertTrue(doc["check"]["ok"])
        self.assertEqual(doc["workflows"]["completed"] + doc["workflows"]["refused"], n)
        self.assertEqual(len(doc["supervisor_kills"]), kills)
        return doc

    def test_shell_guarded_passes(self):
        doc = self.passes("shell", 80, 2)
        # every point the activity names was hit, and the guard held
        points = doc["history"]["kills_by_point"]
        for p in ("before_append", "after_append"):
            self.assertGreater(points.get(p, 0), 0, f"seed {SEED}: no kill at {p}: {points}")

    def test_shell_naive_caught_exactly(self):
        rc, doc, run_dir, work, out = stress(
            "shell", ["--workflows", "80", "--naive"] + DETERMINISTIC, "shell-naive")
        self.keep(work)
        self.assertEqual(rc, 1, f"seed {SEED}: the naive shell app was not caught:\n{out}")
        # Each step an after-effect fault hit appended its line twice (or more): the
        # check counts one duplicated key per such step, and no other.
        expected = after_effect_steps(run_dir, {"append": ("after_append",)})
        self.assertGreater(len(expected), 0, f"seed {SEED}: no after-effect fault")
        self.assertEqual(doc["check"]["counts"]["duplicated"], len(expected),
                         f"seed {SEED}: {out}")
        listed = {v["message"].split("/")[1] for v in doc["check"]["violations"]
                  if v["kind"] == "duplicated"}
        self.assertEqual(listed, {wid for wid, _ in expected})

    def test_payments_guarded_passes(self):
        # 0.1 a point at 0.4 missed one of the four about once in 10,000
        # runs; 0.15 a point misses once in some billions
        doc = self.passes("payments", 60, 1, kill_rate="0.6")
        points = doc["history"]["kills_by_point"]
        for p in ("before_charge", "after_charge", "before_send", "after_send"):
            self.assertGreater(points.get(p, 0), 0, f"seed {SEED}: no kill at {p}: {points}")

    def test_payments_naive_caught(self):
        rc, doc, run_dir, work, out = stress(
            "payments", ["--workflows", "40", "--naive"] + DETERMINISTIC, "payments-naive")
        self.keep(work)
        self.assertEqual(rc, 1, f"seed {SEED}: the naive payments app was not caught:\n{out}")
        hit = {wid for wid, _ in after_effect_steps(
            run_dir, {"charge": ("after_charge", "after_commit"),
                      "send_receipt": ("after_commit",)})}
        faulted = {wid for wid, _ in faulted_steps(run_dir)}
        flagged = {v["message"].split(":")[0] for v in doc["check"]["violations"]
                   if v["kind"] == "duplicated"}
        # Every payment an after-effect fault hit is a duplicate the check
        # names; it names none that no fault touched (the naive charge also
        # doubles its reservation after a 503 or a kill before the charge).
        self.assertGreater(len(hit), 0, f"seed {SEED}: no after-effect fault")
        self.assertTrue(hit <= flagged, f"seed {SEED}: not flagged: {hit - flagged}\n{out}")
        self.assertTrue(flagged <= faulted, f"seed {SEED}: no fault: {flagged - faulted}\n{out}")
        self.assertEqual(doc["check"]["counts"]["duplicated"], len(flagged))


if __name__ == "__main__":
    print(f"test_examples: seed {SEED} (IDEM_TEST_SEED={SEED} replays it)", file=sys.stderr)
    unittest.main(verbosity=2)
