#!/usr/bin/env python3
# test_report.py — the stress run's HTML report (scripts/report.py, as
# `scripts/stress --html FILE` writes it): a seeded faulty run with a
# supervisor kill, then the file checked as a person would look at it.
# Always: its figures are the JSON report's (verdict, replay command, one
# bar per time bucket, one kill marker per supervisor kill, the checker's
# rules), and it is self-contained (no script, nothing fetched). Then, in
# Debian's Chromium headless: the page loads without a console message, and
# its screenshot (written to IDEM_REPORT_OUT, the test's output directory)
# shows the charts drawn: pixels of the throughput bars, of the kill marker
# and of the fault bars. Without Chromium it says so and exits 77, which
# ctest shows as Skipped (scripts/build installs it where it can).
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile

import cdp  # beside this file: the screenshots' decoder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(os.environ.get("IDEM_BIN_DIR", os.path.join(ROOT, "build")), "bin")
OUT = os.environ.get("IDEM_REPORT_OUT") or tempfile.mkdtemp(prefix="idem-report-out-")
SEED = int(os.environ.get("IDEM_TEST_SEED", random.SystemRandom().randrange(1, 2**31)))
failures = []


def check(what, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {what}{': ' + detail if detail and not ok else ''}")
    if not ok:
        failures.append(what)


def main():
    work = tempfile.mkdtemp(prefix="idem-report-")
    js, page = os.path.join(work, "run.json"), os.path.join(OUT, "report.html")
    os.makedirs(OUT, exist_ok=True)
    print(f"test_report: seed {SEED} (IDEM_TEST_SEED={SEED} replays it); output in {OUT}")
    r = subprocess.run([os.path.join(BIN, "idem-stress"), "--workflows", "150",
                        "--supervisor-kills", "1", "--progress", "0", "--seed", str(SEED),
                        "--dir", os.path.join(work, "run"), "--json", js],
                       stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    check("the faulty run passed its checker", r.returncode == 0, f"exit {r.returncode}")
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "report.py"), js, page],
                   check=True)
    rep, text = json.load(open(js)), open(page, encoding="utf-8").read()

    check("the verdict is the checker's", ("OK: nothing lost" in text) == rep["check"]["ok"])
    check("the replay command is shown", rep["replay"] in text.replace("&amp;", "&"))
    bars = len(re.findall(r'<rect class="bar"', text))
    check("one throughput bar per time bucket", bars == len(rep["timeline"]["closed"]),
          f"{bars} bars, {len(rep['timeline']['closed'])} buckets")
    kills = len(re.findall(r'<line class="kill"', text))
    check("one marker per supervisor kill", kills == len(rep["supervisor_kills"]) == 1,
          f"{kills} markers, {len(rep['supervisor_kills'])} kills")
    for kind in rep["history"]["faults_by_kind"]:
        check(f"the fault kind {kind} is charted", f"<title>{kind}: " in text)
    for rule in rep["check"]["counts"]:
        check(f"the checker's rule {rule} is listed", f">{rule}</td>" in text)
    check("self-contained: no script", "<script" not in text.lower())
    check("self-contained: nothing fetched",
          not re.search(r'(src|href)\s*=\s*"(https?:)?//', text), "a src or href to elsewhere")

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("test_report: browser part NOT RUN: no chromium here "
              "(scripts/build installs it where the package archive has it)")
        return 1 if failures else 77
    shot = os.path.join(OUT, "report.png")
    try:
        b = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                            "--disable-dev-shm-usage", "--hide-scrollbars",
                            "--window-size=900,1700", "--enable-logging=stderr", "--v=0",
                            f"--screenshot={shot}", "file://" + page],
                           capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        b = subprocess.CompletedProcess([], 1, "", "chromium did not finish within 120 s")
    check("chromium rendered the page", b.returncode == 0 and os.path.exists(shot),
          b.stderr[-300:])
    console = [ln for ln in b.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    check("no console message", not console, "; ".join(console[:3]))
    if os.path.exists(shot):
        img = cdp.png_pixels(shot)
        blue, red, orange = cdp.count_colors(img,
                             ((0x4a, 0x78, 0xc2), (0xb0, 0x00, 0x20), (0xc2, 0x78, 0x4a)))
        print(f"test_report: screenshot {shot}: {img[0]}x{img[1]}, bar pixels {blue}, "
              f"kill-marker pixels {red}, fault-bar pixels {orange}")
        check("the throughput bars are drawn", blue > 500)
        check("the kill marker is drawn", red > 50)
        check("the fault bars are drawn", orange > 500)
    if failures:
        print(f"test_report: {len(failures)} failed: {failures}; files in {work}, {OUT}")
        return 1
    shutil.rmtree(work, ignore_errors=True)
    print("test_report: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
