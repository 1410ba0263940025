#!/usr/bin/env python3
# test_bench_report.py — the benchmark's HTML page (scripts/bench-report.py,
# as `scripts/bench --html FILE` writes it): a small idem-bench run (300
# workflows, 2 repetitions, every section: SYNC modes, faults, recovery
# after a SIGKILL, WORKERS scaling, memory), then the page checked as a
# person would look at it. Always: every row's figure in the JSON is on the
# page, one bar per row, each chart's baseline bar first with the vertical
# line at its end, each bar's length and printed ratio its figure over the
# baseline's (as the bench prints it, %.2f), the spreads, min and max, the
# latencies, the machine, the parameters and the command that reproduces
# the run; and the page is self-contained (no script, nothing fetched).
# The same on a hand-written scripts/bench-pg document, so that the
# PostgreSQL layout is covered without a cluster. Then, in Debian's
# Chromium headless: both pages load without a console message, and their
# screenshots (written to IDEM_REPORT_OUT as bench-report*.png) show the
# bars and the baseline's line drawn. Without Chromium it says so and exits
# 77, which ctest shows as Skipped.
import html
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import cdp  # noqa: E402  (beside this file: the screenshots' decoder)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(os.environ.get("IDEM_BIN_DIR", os.path.join(ROOT, "build")), "bin")
OUT = os.environ.get("IDEM_REPORT_OUT") or tempfile.mkdtemp(prefix="idem-report-out-")
REPORT = os.path.join(ROOT, "scripts", "bench-report.py")
BENCH_ARGS = ["--workflows", "300", "--reps", "2", "--rss", "300"]
BLUE, ORANGE, RED = (0x4a, 0x78, 0xc2), (0xc2, 0x78, 0x4a), (0xb0, 0x00, 0x20)
failures = []


def check(what, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {what}{': ' + str(detail) if detail and not ok else ''}")
    if not ok:
        failures.append(what)


# ---- the page, as text ---------------------------------------------------------------

def visible(fragment):
    """What a person reads of an HTML/SVG fragment: no tooltips, no tags."""
    fragment = re.sub(r"<title>.*?</title>", "", fragment, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def attr(tag, name):
    m = re.search(rf'\b{name}="([^"]*)"', tag)
    return m.group(1) if m else None


def charts(text):
    """{chart id: (its svg, [(row id, its bar's and its figures' fragments), ...])},
    the rows in the order drawn."""
    out = {}
    for svg in re.findall(r"<svg\b.*?</svg>", text, flags=re.S):
        rows = re.findall(r'<g class="row" id="([^"]+)"[^>]*>(.*?)</g>', svg, flags=re.S)
        figs = {m.group(1): m.group(0) for m in re.finditer(
            r'<text [^>]*class="fig" data-row="([^"]+)"[^>]*>.*?</text>', svg, flags=re.S)}
        rows = [(gid, frag + figs.get(gid, "")) for gid, frag in rows]  # its figures too
        if rows:
            out[rows[0][0].rsplit("-", 1)[0]] = (svg, rows)
    return out


def check_chart(text, cid, base, rows, figure, what):
    """Chart cid: its baseline bar (base: (name, value)) first and the line
    at its end, then rows [(name, value, extra words)], each with its figure
    and its ratio to the baseline, bars in proportion."""
    found = charts(text).get(cid)
    check(f"{what}: the chart is there", found is not None, cid)
    if found is None:
        return
    svg, got = found
    want = [base] + [(n, v) for n, v, _ in rows]
    check(f"{what}: one bar per row, the baseline's first",
          [g[0] for g in got] == [f"{cid}-{n}" for n, _ in want],
          f"{[g[0] for g in got]} against {[n for n, _ in want]}")
    rects = {gid: re.findall(r"<rect\b[^>]*>", frag) for gid, frag in got}
    check(f"{what}: one rect per row", all(len(r) == 1 for r in rects.values()), rects)
    if len(got) != len(want) or not all(len(r) == 1 for r in rects.values()):
        return
    base_rect = rects[got[0][0]][0]
    check(f"{what}: the baseline's bar is the baseline's colour",
          attr(base_rect, "class") == "base" and
          all(attr(rects[g][0], "class") == "bar" for g, _ in got[1:]))
    bx, bw = float(attr(base_rect, "x")), float(attr(base_rect, "width"))
    refs = re.findall(r'<line class="ref"[^>]*>', svg)
    check(f"{what}: one vertical line at the baseline", len(refs) == 1 and
          attr(refs[0], "x1") == attr(refs[0], "x2") and
          abs(float(attr(refs[0], "x1")) - (bx + bw)) < 0.2, refs)
    extras = {base[0]: ""} | {n: e for n, _, e in rows}
    for (gid, frag), (name, value) in zip(got, want):
        seen = visible(frag)
        r = f"{value / base[1]:.2f}"
        check(f"{what}: {name}'s figure {figure(value).strip()} shown", figure(value) in seen, seen)
        check(f"{what}: {name}'s ratio {r} shown", f"{r} ×" in seen, seen)
        if extras[name]:
            check(f"{what}: {name} says {extras[name]}", extras[name] in seen, seen)
        w = float(attr(rects[gid][0], "width"))
        check(f"{what}: {name}'s bar is {r} of the baseline's",
              abs(w - bw * value / base[1]) < max(1.0, 0.005 * w), f"{w} against {bw}")


def self_contained(text, what):
    low = text.lower()
    check(f"{what}: no script", "<script" not in low and "javascript:" not in low and
          not re.search(r"<[^>]*\son\w+\s*=", low), "a script or an event handler")
    check(f"{what}: nothing fetched", not re.search(
        r"https?://|\b(src|href)\s*=|url\(|@import", low), "an address or a fetch")


def in_table(text, tid, cells):
    m = re.search(rf'<table id="{tid}">.*?</table>', text, flags=re.S)
    rows = [[visible(c) for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", tr)]
            for tr in re.findall(r"<tr>(.*?)</tr>", m.group(0) if m else "", flags=re.S)]
    return any(all(c in r for c in cells) for r in rows)


def check_idem_bench(doc, text, page):
    wfs = lambda v: f"{v:.0f} "  # noqa: E731  (as idem-bench prints them)
    modes = doc["modes"]
    for k, m in modes.items():
        check_chart(text, f"mode-{k}", ("baseline", m["baseline_wf_per_s"]),
                    [("idem", m["idem_wf_per_s"], "")], wfs, f"SYNC={k}")
        check(f"SYNC={k}: the bench's ratio {m['ratio']:.2f} is the chart's",
              f"{m['ratio']:.2f}" == f"{m['idem_wf_per_s'] / m['baseline_wf_per_s']:.2f}")
        for who in ("baseline", "idem"):
            runs, v = m[f"{who}_runs"], m[f"{who}_wf_per_s"]
            check(f"SYNC={k}: {who}'s median, spread, min and max in the table",
                  in_table(text, "throughput", [f"{v:.0f}", f"±{m[who + '_spread_wf_per_s']:.0f}",
                                                f"{min(runs):.0f}", f"{max(runs):.0f}",
                                                f"{v / m['baseline_wf_per_s']:.2f}"]))
        check(f"SYNC={k}: latencies and CPU as the bench prints them",
              in_table(text, "latency", [k, f"{m['ratio']:.2f}", f"{m['p50_ms']:.1f}",
                                         f"{m['p99_ms']:.1f}", f"{m['max_ms']:.1f}",
                                         f"{m['cpu_ms_per_wf_supervisor']:.3f}",
                                         f"{m['cpu_ms_per_wf_workers']:.3f}"]))
    full = modes["full"]
    f = doc["faults"]
    check_chart(text, "faults", ("baseline", full["baseline_wf_per_s"]),
                [("clean", f["clean_wf_per_s"], ""),
                 ("faulted", f["faulted_wf_per_s"], f"= {f['ratio_to_clean']:.2f} × fault-free")],
                wfs, "faults")
    ft = visible(re.search(r'<p id="faults-text">.*?</p>', text, flags=re.S).group(0))
    for s in (f"{f['faulted_pct']:.1f}% of attempts faulted",
              f"±{f['faulted_spread_wf_per_s']:.0f}",
              f"{f['cpu_ms_per_wf_supervisor']:.3f} ms", f"{f['cpu_ms_per_wf_workers']:.3f} ms",
              f"{f['workers_started']:.0f} workers started", f"{f['ratio_to_clean']:.2f} ×"):
        check(f"faults: '{s}' said", s in ft, ft)
    r = doc["recovery"]
    for k in ("api_ms", "requeued_ms", "completed_ms"):
        m = re.search(rf'<g class="row" id="recovery-{k}">(.*?)</g>', text, flags=re.S)
        check(f"recovery: {k} {r[k]:.0f} ms has its bar",
              m is not None and f"{r[k]:.0f} ms" in visible(m.group(1)) and '<rect class="ms"'
              in m.group(1))
    check("recovery: the workflows in flight said",
          f"{r['in_flight']} workflows in flight" in text)
    for key, sync in (("scaling", "full"), ("scaling_normal", "normal")):
        check_chart(text, f"scaling-{sync}", ("baseline", modes[sync]["baseline_wf_per_s"]),
                    [(f"w{n}", v, "") for n, v in sorted(doc[key].items(), key=lambda x:
                                                         int(x[0]))], wfs, f"scaling {sync}")
    mem = doc["memory"]
    check_chart(text, "memory", ("baseline", modes["normal"]["baseline_wf_per_s"]),
                [("rss", mem["wf_per_s"], "")], wfs, "memory")
    check("memory: the peak RSS said", f"{mem['supervisor_rss_kib'] / 1024:.1f} MiB" in text)
    ma, o = doc["machine"], doc["options"]
    check("the machine is shown", all(str(v) in visible(text) for v in
                                      (ma["cpus"], ma["cpu"], ma["os"], ma["kernel"])))
    params = visible(re.search(r'<span id="params">.*?</span>', text).group(0))
    check("the parameters are shown", all(s in params for s in (
        f"{o['workflows']} workflows", f"{o['concurrency']} in flight",
        f"{o['workers']} workers", f"{o['reps']} repetition", o["modes"])), params)
    cmd = shlex.split(visible(re.search(r'<code id="command">.*?</code>', text).group(0)))
    check("the command reproduces the run",
          cmd[0] == "scripts/bench" and " ".join(BENCH_ARGS) in " ".join(cmd) and
          cmd[-2:] == ["--html", page], cmd)
    self_contained(text, "idem-bench page")
    check("the page speaks of idem", "idem benchmark" in text and "temporal" not in text.lower())


PG_DOC = {
    "bench": "postgres", "workflows": 3000, "reps": 3, "sync": "full",
    "command": "scripts/bench --store postgres --workflows 3000 --reps 3",
    "machine": {"cpus": 2, "cpu": "AMD EPYC", "os": "Debian GNU/Linux 12 (bookworm)",
                "kernel": "Linux 6.1.0 x86_64", "postgres": "PostgreSQL 15.10"},
    "rows": [
        {"name": "baseline", "label": "baseline: the store's SQL, one client (pgbench)",
         "short": "baseline, pgbench", "wf_per_s": 797.4, "min": 697.0, "max": 843.2,
         "runs": [697.0, 797.4, 843.2]},
        {"name": "sqlite", "label": "idem, one supervisor, state on SQLite",
         "short": "idem, state on SQLite", "wf_per_s": 2133.1, "min": 1910.5, "max": 2471.9,
         "runs": [1910.5, 2133.1, 2471.9]},
        {"name": "postgres", "label": "idem, one supervisor, state on PostgreSQL",
         "short": "idem, state on PostgreSQL", "wf_per_s": 553.2, "min": 450.0, "max": 578.6,
         "runs": [450.0, 553.2, 578.6]},
        {"name": "supervisors_1", "label": "one supervisor on PostgreSQL, 32 API clients",
         "short": "1 supervisor, API clients", "wf_per_s": 633.0, "min": 469.3, "max": 679.9,
         "runs": [469.3, 633.0, 679.9]},
        {"name": "supervisors_2", "label": "two supervisors on one PostgreSQL",
         "short": "2 supervisors", "wf_per_s": 553.8, "min": 532.1, "max": 615.0,
         "runs": [532.1, 553.8, 615.0]},
        {"name": "supervisors_3", "label": "three supervisors on one PostgreSQL",
         "short": "3 supervisors", "wf_per_s": 431.6, "min": 407.7, "max": 511.2,
         "runs": [407.7, 431.6, 511.2]},
    ],
}
_v = {r["name"]: r["wf_per_s"] for r in PG_DOC["rows"]}
PG_DOC["ratios"] = [
    {"label": lab, "of": a, "to": b, "value": _v[a] / _v[b]} for lab, a, b in (
        ("idem on PostgreSQL / baseline", "postgres", "baseline"),
        ("idem on PostgreSQL / idem on SQLite", "postgres", "sqlite"),
        ("two supervisors / one", "supervisors_2", "supervisors_1"),
        ("three supervisors / one", "supervisors_3", "supervisors_1"))]


def check_pg(doc, text, page):
    rows = doc["rows"]
    check_chart(text, "pg", ("baseline", rows[0]["wf_per_s"]),
                [(r["name"], r["wf_per_s"], "") for r in rows[1:]],
                lambda v: f"{v:.1f} wf/s", "bench-pg")
    base = rows[0]["wf_per_s"]
    for r in rows:
        check(f"bench-pg: {r['name']}'s row, min and max in the table",
              in_table(text, "throughput", [r["label"], f"{r['wf_per_s']:.1f}", f"{r['min']:.1f}",
                                            f"{r['max']:.1f}", f"{r['wf_per_s'] / base:.2f}"]))
    for q in doc["ratios"]:
        check(f"bench-pg: the ratio '{q['label']}' {q['value']:.2f} listed",
              in_table(text, "ratios", [q["label"], f"{q['value']:.2f}"]))
    ma = doc["machine"]
    check("bench-pg: the machine and the server are shown", all(
        html.escape(str(ma[k])) in text for k in ("cpus", "cpu", "os", "kernel", "postgres")))
    check("bench-pg: the parameters are shown",
          f"{doc['workflows']} workflows per run" in text and f"median of {doc['reps']}" in text)
    cmd = visible(re.search(r'<code id="command">.*?</code>', text).group(0))
    check("bench-pg: the command reproduces the run", cmd ==
          f"scripts/bench --store postgres --workflows {doc['workflows']} --reps {doc['reps']} "
          f"--html {page}", cmd)
    self_contained(text, "bench-pg page")


# ---- the page, as seen ----------------------------------------------------------------

def render(chromium, page, shot, height):
    try:
        b = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                            "--disable-dev-shm-usage", "--hide-scrollbars",
                            f"--window-size=900,{height}", "--enable-logging=stderr", "--v=0",
                            f"--screenshot={shot}", "file://" + page],
                           capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        b = subprocess.CompletedProcess([], 1, "", "chromium did not finish within 120 s")
    name = os.path.basename(page)
    check(f"chromium rendered {name}", b.returncode == 0 and os.path.exists(shot),
          b.stderr[-300:])
    console = [ln for ln in b.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    check(f"{name}: no console message", not console, "; ".join(console[:3]))
    if not os.path.exists(shot):
        return
    img = cdp.png_pixels(shot)
    blue, orange, red = cdp.count_colors(img, (BLUE, ORANGE, RED))
    print(f"test_bench_report: {shot}: {img[0]}x{img[1]}, idem-bar pixels {blue}, "
          f"baseline-bar pixels {orange}, baseline-line pixels {red}")
    check(f"{name}: the idem bars are drawn", blue > 500)
    check(f"{name}: the baseline bars are drawn", orange > 500)
    check(f"{name}: the baseline's line is drawn", red > 50)


def main():
    work = tempfile.mkdtemp(prefix="idem-bench-report-")
    os.makedirs(OUT, exist_ok=True)
    js = os.path.join(work, "bench.json")
    page = os.path.join(OUT, "bench-report.html")
    pg_page = os.path.join(OUT, "bench-report-pg.html")
    print(f"test_bench_report: output in {OUT}")
    t0 = time.monotonic()
    r = subprocess.run([os.path.join(BIN, "idem-bench")] + BENCH_ARGS + [f"--json={js}"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       env=dict(os.environ, TMPDIR=work))
    print(f"test_bench_report: idem-bench {' '.join(BENCH_ARGS)} took "
          f"{time.monotonic() - t0:.1f} s")
    check("idem-bench ran", r.returncode == 0 and os.path.exists(js), r.stdout[-500:])
    if r.returncode != 0 or not os.path.exists(js):
        return 1
    print(r.stdout, end="")
    subprocess.run([sys.executable, REPORT, js, page], check=True)
    doc, text = json.load(open(js)), open(page, encoding="utf-8").read()
    check_idem_bench(doc, text, page)

    pg_js = os.path.join(work, "bench-pg.json")
    with open(pg_js, "w") as f:
        json.dump(PG_DOC, f)
    subprocess.run([sys.executable, REPORT, pg_js, pg_page], check=True)
    check_pg(PG_DOC, open(pg_page, encoding="utf-8").read(), pg_page)
    bad = subprocess.run([sys.executable, REPORT, js], capture_output=True)
    check("bench-report.py without OUT.html: a usage error", bad.returncode != 0)

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("test_bench_report: browser part NOT RUN: no chromium here "
              "(scripts/build installs it where the package archive has it)")
        return 1 if failures else 77
    render(chromium, page, os.path.join(OUT, "bench-report.png"), 2600)
    render(chromium, pg_page, os.path.join(OUT, "bench-report-pg.png"), 900)
    if failures:
        print(f"test_bench_report: {len(failures)} failed: {failures}; files in {work}, {OUT}")
        return 1
    shutil.rmtree(work, ignore_errors=True)
    print("test_bench_report: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
