#!/usr/bin/env python3
# bench-report.py — a benchmark run's JSON as one self-contained HTML file:
# inline SVG and CSS, no script, nothing fetched. Each measured row's
# throughput is a horizontal bar drawn against the baseline measured in the
# same run: the baseline's bar first, a vertical line at the baseline, each
# bar's ratio to it printed beside it; the spread, min and max as a whisker
# and in the tables. Reads either document:
#   idem-bench --json=FILE      (scripts/bench): SYNC modes, faults, recovery
#                               after a SIGKILL, WORKERS scaling, memory
#   scripts/bench-pg --json FILE  (scripts/bench --store postgres): its rows
#                               against the pgbench baseline, and its ratios
#   scripts/bench-report.py BENCH.json OUT.html
# scripts/bench --html OUT.html runs it on the run it just made.
import html
import json
import shlex
import sys

W, LBL, ROW, TOP = 800, 210, 26, 26
BARW = W - LBL - 240  # the longest bar; the rest is for its figures


def esc(x):
    return html.escape(str(x), quote=True)


def svg(body, h, label=""):
    return (f'<svg class="chart" role="img" aria-label="{esc(label)}" width="{W}" height="{h}" '
            f'viewBox="0 0 {W} {h}">{body}</svg>')


def num(x):
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) else 0.0


def runs_range(runs, value):
    runs = [num(r) for r in runs or []]
    return (min(runs), max(runs)) if runs else (value, value)


def wfs(v):  # workflows/s as idem-bench prints them
    return f"{v:.0f}"


def ratio(v, base):
    return f"{v / base:.2f}" if base else "–"


class Row:
    """One bar: name (its id), label, value, min, max, the figure printed
    beside it, and extra words after its ratio."""

    def __init__(self, name, label, value, lo=None, hi=None, figure=None, extra="", tip=""):
        self.name, self.label, self.value = name, label, num(value)
        self.lo = self.value if lo is None else num(lo)
        self.hi = self.value if hi is None else num(hi)
        self.figure = figure if figure is not None else f"{wfs(self.value)} wf/s"
        self.extra, self.tip = extra, tip


def bars(cid, title, base, rows):
    """The chart: base (a Row, or None when this run measured none) first,
    then rows, scaled together; a line at the base's value. In three
    layers: each row's name, bar and whisker (<g class="row">), the line,
    then each row's figures (<text class="fig" data-row=...>), so that the
    line crosses the bars but not the figures."""
    every = ([base] if base else []) + rows
    if not every:
        return f"<p>No {esc(title)} in this run.</p>"
    top = max(max(r.hi, r.value) for r in every) or 1
    x = lambda v: LBL + BARW * v / top  # noqa: E731
    h = TOP + ROW * len(every) + 6
    shapes, figures = [], []
    for i, r in enumerate(every):
        y, rid = TOP + i * ROW, f"{esc(cid)}-{esc(r.name)}"
        is_base = base is not None and i == 0
        rt = ratio(r.value, base.value) if base else ""
        shapes.append(f'<g class="row" id="{rid}" data-ratio="{rt}">'
                      f'<text x="{LBL - 6}" y="{y + 13}" class="name" text-anchor="end">'
                      f'{esc(r.label)}</text>'
                      f'<rect class="{"base" if is_base else "bar"}" x="{LBL}" y="{y + 1}" '
                      f'width="{max(x(r.value) - LBL, 1):.1f}" height="16"><title>'
                      f'{esc(r.label)}: {esc(r.figure)}{esc(r.tip)}</title></rect>')
        if r.hi > r.lo:
            shapes.append(f'<line class="range" x1="{x(r.lo):.1f}" x2="{x(r.hi):.1f}" '
                          f'y1="{y + 9}" y2="{y + 9}"><title>min {esc(r.lo)} max {esc(r.hi)}'
                          f'</title></line>'
                          f'<line class="range" x1="{x(r.lo):.1f}" x2="{x(r.lo):.1f}" '
                          f'y1="{y + 4}" y2="{y + 14}"/><line class="range" x1="{x(r.hi):.1f}" '
                          f'x2="{x(r.hi):.1f}" y1="{y + 4}" y2="{y + 14}"/>')
        shapes.append("</g>")
        tail = ""
        if base:
            tail = (f' <tspan class="ratio">{rt} ×</tspan>'
                    + (' <tspan class="note">(baseline)</tspan>' if is_base else ""))
        if r.extra:
            tail += f' <tspan class="note">{esc(r.extra)}</tspan>'
        figures.append(f'<text x="{max(x(r.value), x(r.hi)) + 6:.1f}" y="{y + 13}" class="fig" '
                       f'data-row="{rid}">{esc(r.figure)}{tail}</text>')
    line = ""
    if base:
        bx = x(base.value)
        line = (f'<line class="ref" x1="{bx:.1f}" x2="{bx:.1f}" y1="{TOP - 6}" y2="{h - 2}">'
                f'<title>the baseline: {esc(base.figure)}</title></line>'
                f'<text x="{bx:.1f}" y="{TOP - 10}" class="reflabel" text-anchor="middle">'
                f'baseline {esc(base.figure)}</text>')
    return svg("".join(shapes) + line + "".join(figures), h, label=title)


def table(tid, head, rows):
    return (f'<table id="{esc(tid)}"><tr>' + "".join(f"<th>{esc(c)}</th>" for c in head) + "</tr>"
            + "".join("<tr>" + "".join(
                f'<td{" class=l" if j == 0 else ""}>{esc(c)}</td>' for j, c in enumerate(r))
                + "</tr>" for r in rows) + "</table>")


def machine_text(m):
    if not m:
        return "not recorded in this JSON document"
    parts = [f"{m['cpus']} CPUs" if m.get("cpus") else "", m.get("cpu", ""), m.get("os", ""),
             m.get("kernel", "")]
    return ", ".join(p for p in parts if p) + (f"; {m['postgres']}" if m.get("postgres") else "")


STYLE = (
    "body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:860px;color:#222}"
    "h1{font-size:20px}h2{font-size:16px;margin-top:28px}code{font-size:12px}"
    ".bar{fill:#4a78c2}.base{fill:#c2784a}.ms{fill:#5a9e6f}.ref{stroke:#b00020;stroke-width:2}"
    ".range{stroke:#222;stroke-width:1.5}.reflabel{font-size:11px;fill:#b00020}"
    ".name,.fig{font-size:11px;fill:#222}.fig{paint-order:stroke;stroke:#fff;stroke-width:3px}"
    ".ratio{font-weight:bold}.note{fill:#555}"
    "table{border-collapse:collapse;margin:8px 0}"
    "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
    "td.l,th:first-child{text-align:left}"
    ".legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;"
    "vertical-align:-1px}"
)

LEGEND = ('<p class="legend">Bars:<span style="background:#c2784a"></span>the baseline'
          '<span style="background:#4a78c2"></span>idem'
          '<span style="background:#b00020;width:2px"></span>the baseline\'s line; '
          'whiskers: min to max of the repetitions; beside each bar its median and its '
          'ratio to the baseline.</p>')


def page(title, body):
    return "\n".join(["<!doctype html><html lang=en><head><meta charset=utf-8>",
                      f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>",
                      f"<h1>{esc(title)}</h1>"] + body + ["</body></html>"])


# ---- idem-bench ----------------------------------------------------------------------

def bench_command(doc, out):
    o = doc.get("options") or {}
    a = ["scripts/bench"]
    if o.get("app", "inventory") != "inventory":
        a += ["--app", o["app"]]
    if o.get("quick"):
        a.append("--quick")
    elif o:
        a += ["--workflows", str(o.get("workflows")), "--reps", str(o.get("reps"))]
        if o.get("skip_scaling"):
            a.append("--skip-scaling")
    if o.get("concurrency", 32) != 32:
        a += ["--concurrency", str(o["concurrency"])]
    workers = o.get("workers", doc.get("workers", 16))
    if workers != 16:
        a += ["--workers", str(workers)]
    if o.get("modes", "full,normal") != "full,normal":
        a += ["--modes", o["modes"]]
    for k in ("skip_faults", "skip_recovery"):
        if o.get(k):
            a.append("--" + k.replace("_", "-"))
    if o.get("rss"):
        a += ["--rss", str(o["rss"])]
    return " ".join(shlex.quote(w) for w in a + ["--html", out])


def mode_rows(mode, m):
    bv, bs = num(m.get("baseline_wf_per_s")), num(m.get("baseline_spread_wf_per_s"))
    iv, isp = num(m.get("idem_wf_per_s")), num(m.get("idem_spread_wf_per_s"))
    blo, bhi = runs_range(m.get("baseline_runs"), bv)
    ilo, ihi = runs_range(m.get("idem_runs"), iv)
    base = Row("baseline", f"baseline in-process, SYNC={mode}", m.get("baseline_wf_per_s"),
               blo, bhi,
               f"{wfs(bv)} ±{wfs(bs)} wf/s", tip=f" (min {wfs(blo)}, max {wfs(bhi)})")
    idem = Row("idem", f"idem end to end, SYNC={mode}", m.get("idem_wf_per_s"), ilo, ihi,
               f"{wfs(iv)} ±{wfs(isp)} wf/s",
               tip=f" (min {wfs(ilo)}, max {wfs(ihi)}); p99 {num(m.get('p99_ms')):.1f} ms")
    return base, idem


def idem_bench(doc, out):
    o = doc.get("options") or {}
    modes = doc.get("modes") or {}
    workers = o.get("workers", doc.get("workers"))
    app = o.get("app", "inventory")
    reps = o.get("reps")
    body = []
    head = "; ".join(f"SYNC={k}: idem {wfs(num(m.get('idem_wf_per_s')))} wf/s = "
                     f"{num(m.get('ratio')):.2f} × the baseline's "
                     f"{wfs(num(m.get('baseline_wf_per_s')))}" for k, m in modes.items())
    body.append(f'<p id="headline"><b>{esc(head)}</b></p>')
    body.append(
        "<p>The baseline: per workflow, the app's own activity transactions called in-process "
        "plus one durable checkpoint write to a state DB, single-threaded — no processes, no "
        "sockets, no orchestration: the limit of this work on this machine. idem: "
        f"idem-supervisor, {esc(workers)} workers, the control API and "
        f"{esc(o.get('concurrency', '?'))} clients with workflows in flight, every fault off. "
        "Both measured in the same run, so the ratios compare.</p>")
    params = (f"app {app}; {o.get('workflows', '?')} workflows per run, "
              f"{o.get('concurrency', '?')} in flight, {workers} workers, "
              f"{reps if reps is not None else '?'} repetition(s) (the median, ± the spread "
              f"max − min), modes {o.get('modes', ','.join(modes))}")
    body.append(f'<p>Parameters: <span id="params">{esc(params)}</span>.<br>'
                f'Machine: <span id="machine">{esc(machine_text(doc.get("machine")))}</span>.'
                f'<br>Reproduce: <code id="command">{esc(bench_command(doc, out))}</code>'
                + ("" if o else " (with this run's options: its JSON does not record them)")
                + "</p>")
    body.append(LEGEND)

    body.append("<h2>Throughput against the baseline, per SYNC mode</h2>")
    rows = []
    for k, m in modes.items():
        base, idem = mode_rows(k, m)
        body.append(f"<h3>SYNC={esc(k)}</h3>")
        body.append(bars(f"mode-{k}", f"SYNC={k}: idem against the baseline", base, [idem]))
        for r, spread in ((base, m.get("baseline_spread_wf_per_s")),
                          (idem, m.get("idem_spread_wf_per_s"))):
            rows.append([f"{r.label}", wfs(r.value), f"±{wfs(num(spread))}", wfs(r.lo),
                         wfs(r.hi), ratio(r.value, base.value)])
    body.append(table("throughput", ["row", "wf/s (median)", "spread", "min", "max",
                                     "× baseline"], rows))
    act = ("activities/s = 2 × workflows/s: a debit and a credit per workflow"
           if app == "transfer" else "activities/s = workflows/s: one activity per workflow")
    body.append(table("latency", ["SYNC", "idem wf/s", "base wf/s", "ratio", "p50 ms", "p99 ms",
                                  "max ms", "cpu sup ms", "cpu wrk ms"],
                      [[k, wfs(num(m.get("idem_wf_per_s"))), wfs(num(m.get("baseline_wf_per_s"))),
                        f"{num(m.get('ratio')):.2f}", f"{num(m.get('p50_ms')):.1f}",
                        f"{num(m.get('p99_ms')):.1f}", f"{num(m.get('max_ms')):.1f}",
                        f"{num(m.get('cpu_ms_per_wf_supervisor')):.3f}",
                        f"{num(m.get('cpu_ms_per_wf_workers')):.3f}"] for k, m in modes.items()]))
    body.append(f"<p>CPU columns: milliseconds of CPU per workflow, the supervisor's and its "
                f"workers'; {esc(act)}.</p>")

    def mode_base(sync):
        m = modes.get(sync)
        return mode_rows(sync, m)[0] if m else None

    f = doc.get("faults")
    body.append("<h2>Faults</h2>")
    if f:
        sync = "full" if "full" in modes else next(iter(modes), "full")
        base = mode_base(sync)
        lo, hi = runs_range(f.get("faulted_runs"), num(f.get("faulted_wf_per_s")))
        clean = Row("clean", f"idem fault-free, SYNC={sync}", f.get("clean_wf_per_s"))
        if sync in modes and num(f.get("clean_wf_per_s")) == num(modes[sync].get("idem_wf_per_s")):
            clean = mode_rows(sync, modes[sync])[1]  # the same run: its spread too
            clean.name, clean.label = "clean", f"idem fault-free, SYNC={sync}"
        faulted = Row("faulted", f"idem, {num(f.get('faulted_pct')):.1f}% of attempts faulted",
                      f.get("faulted_wf_per_s"), lo, hi,
                      f"{wfs(num(f.get('faulted_wf_per_s')))} "
                      f"±{wfs(num(f.get('faulted_spread_wf_per_s')))} wf/s",
                      extra=f"= {num(f.get('ratio_to_clean')):.2f} × fault-free",
                      tip=f" (min {wfs(lo)}, max {wfs(hi)})")
        body.append(bars("faults", "throughput with faults", base, [clean, faulted]))
        body.append(
            f'<p id="faults-text">{wfs(num(f.get("faulted_wf_per_s")))} '
            f'±{wfs(num(f.get("faulted_spread_wf_per_s")))} wf/s with '
            f'{num(f.get("faulted_pct")):.1f}% of attempts faulted (worker kills at every crash '
            f'point and errors) = <b>{num(f.get("ratio_to_clean")):.2f} × fault-free</b> '
            f'(median of {esc(reps)}; min {wfs(lo)}, max {wfs(hi)}). CPU per workflow: '
            f'supervisor {num(f.get("cpu_ms_per_wf_supervisor")):.3f} ms, workers '
            f'{num(f.get("cpu_ms_per_wf_workers")):.3f} ms; '
            f'{num(f.get("workers_started")):.0f} workers started over '
            f'{esc(o.get("workflows", "?"))} workflows.</p>')
    else:
        body.append("<p>Not measured in this run (--skip-faults).</p>")

    r = doc.get("recovery")
    body.append("<h2>Recovery after a supervisor SIGKILL</h2>")
    if r:
        steps = [("api_ms", "API answering again"), ("requeued_ms", "all re-queued"),
                 ("completed_ms", "all completed")]
        top = max(num(r.get(k)) for k, _ in steps) or 1
        out_ = []
        for i, (k, label) in enumerate(steps):
            v, y = num(r.get(k)), 4 + i * ROW
            wv = max(BARW * v / top, 1)
            out_.append(f'<g class="row" id="recovery-{k}"><text x="{LBL - 6}" y="{y + 13}" '
                        f'class="name" text-anchor="end">{esc(label)}</text>'
                        f'<rect class="ms" x="{LBL}" y="{y + 1}" width="{wv:.1f}" height="16">'
                        f'<title>{esc(label)}: {v:.0f} ms after the restart</title></rect>'
                        f'<text x="{LBL + wv + 6:.1f}" y="{y + 13}" class="fig">{v:.0f} ms'
                        f'</text></g>')
        body.append(svg("".join(out_), 8 + ROW * len(steps), "recovery after a SIGKILL"))
        body.append(f'<p id="recovery-text">{esc(r.get("in_flight"))} workflows in flight'
                    + (f' ({esc(r.get("running_at_kill"))} running at the kill)'
                       if "running_at_kill" in r else "")
                    + f'; the supervisor SIGKILLed and restarted: API back in '
                    f'{num(r.get("api_ms")):.0f} ms, all re-queued in '
                    f'{num(r.get("requeued_ms")):.0f} ms, all completed in '
                    f'{num(r.get("completed_ms")):.0f} ms.</p>')
    else:
        body.append("<p>Not measured in this run (--skip-recovery).</p>")

    body.append("<h2>Scaling with WORKERS</h2>")
    scaled = [(k, "full" if k == "scaling" else "normal") for k in ("scaling", "scaling_normal")
              if doc.get(k)]
    for key, sync in scaled:
        s = doc[key]
        base = mode_base(sync)
        body.append(f"<h3>SYNC={sync}</h3>")
        rows = [Row(f"w{n}", f"idem, WORKERS={n}", v) for n, v in
                sorted(s.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0)]
        if base is None:
            body.append(f"<p>No SYNC={sync} baseline in this run (--modes).</p>")
        body.append(bars(f"scaling-{sync}", f"SYNC={sync}: throughput by WORKERS", base, rows))
    if not scaled:
        body.append("<p>Not measured in this run (--skip-scaling or --quick).</p>")

    mem = doc.get("memory")
    if mem:
        body.append("<h2>Memory</h2>")
        kib = num(mem.get("supervisor_rss_kib"))
        body.append(bars("memory", "the memory run's throughput", mode_base("normal"),
                         [Row("rss", f"idem, {mem.get('workflows')} workflows",
                              mem.get("wf_per_s"))]))
        body.append(f'<p id="memory-text">Supervisor peak RSS <b>{kib / 1024:.1f} MiB</b> '
                    f'({kib:.0f} KiB) after {esc(mem.get("workflows"))} workflows '
                    f'(SYNC=normal), {wfs(num(mem.get("wf_per_s")))} wf/s.</p>')
    title = f"idem benchmark: idem against the physical limit (app {app})"
    return page(title, body)


# ---- scripts/bench-pg ------------------------------------------------------------------

def pg_bench(doc, out):
    rows = doc.get("rows") or []
    base = next((r for r in rows if r.get("name") == "baseline"), None)
    body = []

    def row(r):
        v = num(r.get("wf_per_s"))
        return Row(r.get("name"), r.get("short") or r.get("label"), v, r.get("min"), r.get("max"),
                   f"{v:.1f} wf/s ({num(r.get('min', v)):.1f}-{num(r.get('max', v)):.1f})")

    pg = next((r for r in rows if r.get("name") == "postgres"), None)
    if pg and base:
        body.append(f'<p id="headline"><b>idem with its state DB on PostgreSQL: '
                    f'{num(pg.get("wf_per_s")):.1f} wf/s = '
                    f'{ratio(num(pg.get("wf_per_s")), num(base.get("wf_per_s")))} × the '
                    f'baseline\'s {num(base.get("wf_per_s")):.1f}</b></p>')
    body.append(
        "<p>The baseline: the SQL idem's store runs per workflow of the inventory app (a lookup, "
        "the workflow's insert and close, its step's insert and two updates, five events, the "
        "counters), one durable transaction per workflow, through one libpq client (pgbench): "
        "the limit of this path on this machine. Then idem end to end with its state DB on "
        "SQLite and on PostgreSQL, and one, two and three supervisors sharing one PostgreSQL "
        "state DB, 16 workers among them, driven through their sockets by 32 clients.</p>")
    params = (f"{doc.get('workflows', '?')} workflows per run, SYNC={doc.get('sync', 'full')}, "
              f"no faults, median of {doc.get('reps', '?')} (min-max)")
    cmd = " ".join(shlex.quote(w) for w in (doc.get("command") or (
        f"scripts/bench --store postgres --workflows {doc.get('workflows')} "
        f"--reps {doc.get('reps')}")).split() + ["--html", out])
    body.append(f'<p>Parameters: <span id="params">{esc(params)}</span>.<br>'
                f'Machine: <span id="machine">{esc(machine_text(doc.get("machine")))}</span>.'
                f'<br>Reproduce: <code id="command">{esc(cmd)}</code></p>')
    body.append(LEGEND)
    body.append("<h2>Throughput against the baseline</h2>")
    body.append(bars("pg", "the state DB on PostgreSQL against the baseline",
                     row(base) if base else None, [row(r) for r in rows if r is not base]))
    bv = num(base.get("wf_per_s")) if base else 0
    body.append(table("throughput", ["row", "wf/s (median)", "min", "max", "× baseline"],
                      [[r.get("label"), f"{num(r.get('wf_per_s')):.1f}",
                        f"{num(r.get('min', r.get('wf_per_s'))):.1f}",
                        f"{num(r.get('max', r.get('wf_per_s'))):.1f}",
                        ratio(num(r.get("wf_per_s")), bv)] for r in rows]))
    body.append("<h2>Ratios</h2>")
    body.append(table("ratios", ["ratio", "value"],
                      [[q.get("label"), f"{num(q.get('value')):.2f}"]
                       for q in doc.get("ratios") or []]))
    return page("idem benchmark: the state DB on PostgreSQL against its own limit", body)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: bench-report.py BENCH.json OUT.html")
    with open(sys.argv[1], encoding="utf-8") as f:
        doc = json.load(f)
    if not isinstance(doc, dict) or not ("modes" in doc or "rows" in doc):
        sys.exit(f"bench-report.py: {sys.argv[1]}: neither idem-bench's JSON nor bench-pg's")
    text = pg_bench(doc, sys.argv[2]) if "rows" in doc else idem_bench(doc, sys.argv[2])
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
