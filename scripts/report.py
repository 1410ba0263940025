#!/usr/bin/env python3
# report.py — a stress run's JSON report (idem-stress --json) as one
# self-contained HTML file: inline SVG charts, no script, no network.
#   scripts/report.py REPORT.json OUT.html
# scripts/stress --html OUT.html runs it on the run it just made.
import html
import json
import sys

W, H, PAD = 760, 220, 44


def esc(x):
    return html.escape(str(x), quote=True)


def svg(body, h=H, label=""):
    return (f'<svg class="chart" role="img" aria-label="{esc(label)}" width="{W}" height="{h}" '
            f'viewBox="0 0 {W} {h}" xmlns="http://www.w3.org/2000/svg">{body}</svg>')


def axes(h, ymax, ylabel, xlabel):
    out = [f'<line x1="{PAD}" y1="{h - PAD}" x2="{W - 10}" y2="{h - PAD}" class="axis"/>',
           f'<line x1="{PAD}" y1="10" x2="{PAD}" y2="{h - PAD}" class="axis"/>',
           f'<text x="{PAD - 6}" y="16" class="tick" text-anchor="end">{esc(ymax)}</text>',
           f'<text x="{PAD - 6}" y="{h - PAD}" class="tick" text-anchor="end">0</text>',
           f'<text x="12" y="{(h - PAD) / 2}" class="label" transform="rotate(-90 12 {(h - PAD) / 2})"'
           f' text-anchor="middle">{esc(ylabel)}</text>',
           f'<text x="{(W + PAD) / 2}" y="{h - 8}" class="label" text-anchor="middle">'
           f'{esc(xlabel)}</text>']
    return "".join(out)


def throughput(rep):
    tl = rep.get("timeline") or {}
    counts, bucket = tl.get("closed") or [], tl.get("bucket_s") or 1
    if not counts:
        return "<p>No timeline in this report.</p>"
    rates = [c / bucket for c in counts]
    top = max(rates) or 1
    span = len(counts) * bucket
    x = lambda t: PAD + (W - 10 - PAD) * t / span  # noqa: E731
    y = lambda v: H - PAD - (H - PAD - 10) * v / top  # noqa: E731
    bw = max(1.0, (W - 10 - PAD) / len(counts) - 1)
    bars = "".join(f'<rect class="bar" data-t="{i * bucket:.3f}" x="{x(i * bucket):.1f}" '
                   f'y="{y(r):.1f}" width="{bw:.1f}" height="{H - PAD - y(r):.1f}">'
                   f'<title>{r:.0f} workflows/s at {i * bucket:.2f} s</title></rect>'
                   for i, r in enumerate(rates))
    marks = ""
    for k in rep.get("supervisor_kills") or []:
        at = k.get("at_s", 0)
        back = at + k.get("recovery_ms", 0) / 1000
        marks += (f'<line class="kill" x1="{x(at):.1f}" x2="{x(at):.1f}" y1="10" y2="{H - PAD}">'
                  f'<title>supervisor SIGKILL at {at:.2f} s</title></line>'
                  f'<line class="recovered" x1="{x(back):.1f}" x2="{x(back):.1f}" y1="10" '
                  f'y2="{H - PAD}"><title>answering again at {back:.2f} s '
                  f'({k.get("recovery_ms", 0):.0f} ms)</title></line>')
    ticks = "".join(f'<text x="{x(t):.1f}" y="{H - PAD + 14}" class="tick" text-anchor="middle">'
                    f'{t:.1f}</text>' for t in [span * i / 5 for i in range(6)])
    return svg(axes(H, f"{top:.0f}", "workflows/s", "seconds since the first start") + bars +
               marks + ticks, label="throughput over time")


def bars(title, pairs, unit=""):
    pairs = [(k, v) for k, v in pairs]
    if not pairs:
        return f"<p>No {esc(title)}.</p>"
    top = max(v for _, v in pairs) or 1
    row, h = 22, 22 * len(pairs) + 20
    out = ""
    for i, (k, v) in enumerate(pairs):
        wv = (W - 260) * v / top
        out += (f'<text x="150" y="{14 + i * row}" class="tick" text-anchor="end">{esc(k)}</text>'
                f'<rect class="hbar" x="156" y="{2 + i * row}" width="{wv:.1f}" height="16">'
                f'<title>{esc(k)}: {v}{unit}</title></rect>'
                f'<text x="{160 + wv:.1f}" y="{14 + i * row}" class="tick">{v}{unit}</text>')
    return svg(out, h, label=title)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: report.py REPORT.json OUT.html")
    rep = json.load(open(sys.argv[1], encoding="utf-8"))
    check = rep.get("check") or {}
    ok = bool(check.get("ok"))
    hist = rep.get("history") or {}
    lat = rep.get("latency") or {}
    wf = rep.get("workflows") or {}
    naive = (rep.get("options") or {}).get("naive")
    verdict = ("OK: nothing lost, nothing applied twice, nothing stuck" if ok else
               "VIOLATIONS found" + (" (naive mode: as it must)" if naive else ""))
    kills = rep.get("supervisor_kills") or []
    counts = check.get("counts") or {}
    violations = check.get("violations") or []
    buckets = lat.get("histogram") or []
    while buckets and not buckets[0]["n"]:  # from the fastest bucket that has any
        buckets = buckets[1:]
    lat_pairs = [(f"≤ {b['le_ms']:g} ms", b["n"]) for b in buckets]
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>idem stress report, seed {esc(rep.get('seed'))}</title><style>",
        "body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:820px;color:#222}",
        "h1{font-size:20px}h2{font-size:16px;margin-top:28px}code{font-size:12px}",
        ".ok{color:#176b2c}.bad{color:#b00020}.axis{stroke:#888}.bar{fill:#4a78c2}",
        ".hbar{fill:#c2784a}.kill{stroke:#b00020;stroke-width:2}",
        ".recovered{stroke:#176b2c;stroke-width:2;stroke-dasharray:4 3}",
        ".tick{font-size:11px;fill:#444}.label{font-size:12px;fill:#222}",
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}",
        "</style></head><body>",
        f"<h1>idem stress report: {esc(rep.get('app', ''))}, seed {esc(rep.get('seed'))}</h1>",
        f'<p id="verdict" class="{"ok" if ok else "bad"}"><b>{esc(verdict)}</b></p>',
        f"<p>{esc(wf.get('started', 0))} workflows started, {esc(wf.get('completed', 0))} "
        f"completed, {esc(wf.get('failed', 0))} failed, {esc(wf.get('refused', 0))} refused; "
        f"{rep.get('workflows_per_s', 0):.1f} workflows/s over {rep.get('elapsed_s', 0):.1f} s; "
        f"latency p50 {lat.get('p50_ms', 0):.1f} ms, p99 {lat.get('p99_ms', 0):.1f} ms.</p>",
        f"<p>Replay: <code id=replay>{esc(rep.get('replay', ''))}</code></p>",
        "<h2>Throughput over time</h2><p>Red: a supervisor SIGKILL; dashed green: "
        "answering again.</p>", throughput(rep),
        "<h2>Latency, start to close</h2>", bars("latency histogram", lat_pairs),
        "<h2>Faults by kind</h2>", bars("faults by kind", sorted(
            (hist.get("faults_by_kind") or {}).items())),
        "<h2>Worker kills by crash point</h2>", bars("kills by crash point", sorted(
            (hist.get("kills_by_point") or {}).items())),
        f"<p>{esc(hist.get('attempts', 0))} attempts over {esc(hist.get('steps', 0))} steps, "
        f"{esc(hist.get('retries', 0))} retries, {esc(hist.get('attempts_lost', 0))} lost "
        f"with their worker, {esc(rep.get('worker_respawns', 0))} worker respawns.</p>",
        "<h2>Supervisor kills and recoveries</h2>",
        "<table id=kills><tr><th>#</th><th>at (s)</th><th>closed before</th>"
        "<th>recovery (ms)</th><th>running after</th></tr>" +
        "".join(f"<tr><td>{i + 1}</td><td>{k.get('at_s', 0):.2f}</td>"
                f"<td>{esc(k.get('at_closed', 0))}</td><td>{k.get('recovery_ms', 0):.1f}</td>"
                f"<td>{esc(k.get('running_after', 0))}</td></tr>" for i, k in enumerate(kills)) +
        "</table>" if kills else "<p>No supervisor kill in this run.</p>",
        "<h2>The checker</h2><table id=check><tr><th>rule</th><th>violations</th></tr>" +
        "".join(f'<tr><td style="text-align:left">{esc(k)}</td><td>{esc(v)}</td></tr>'
                for k, v in counts.items()) + "</table>",
        "<ul id=violations>" + "".join(
            f"<li>{esc(v.get('kind'))}: {esc(v.get('message'))}</li>" for v in violations[:50])
        + "</ul>",
        "</body></html>",
    ]
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write("\n".join(parts))


if __name__ == "__main__":
    main()
