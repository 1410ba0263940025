#!/usr/bin/env python3
# test_dashboard.py — the dashboard (supervisor/ui) in Debian's Chromium,
# headless, driven through DevTools (tests/cdp.py), against a live
# supervisor that ran a seeded faulty run. It checks what a person would:
# the overview's counts are /v1/stats's and its fault chart adds up to the
# faults planned; the list pages and searches like /v1/workflows; a
# workflow's timeline shows the kill its history has; the checker's
# verdict shows, OK for a guarded run and FAILED with the duplicates of a
# naive one (kills after the effect's commit); the supervisor SIGKILLed
# under the open page is shown as down, and the page comes back with the
# next one; the transfer app's panel and results, and the panels an
# idem.json app's own commands make (examples/payments). Then, from pages on other origins in the same browser: a
# rebound name is refused and a cross-origin page can neither start a
# workflow nor set stock nor read the API. A screenshot of each page goes
# to IDEM_DASH_OUT. Without Chromium it says so and exits 77 (ctest: Skipped).
import http.server
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from idem_http import UnixHTTP, call, free_port, stop, supervisor  # noqa: E402
import cdp  # noqa: E402
from checks import check, failures  # noqa: E402

BIN = os.path.join(os.environ.get("IDEM_BIN_DIR", os.path.join(ROOT, "build")), "bin")
OUT = os.environ.get("IDEM_DASH_OUT", os.path.join(ROOT, "build", "tests", "dashboard-out"))
SEED = int(os.environ.get("IDEM_TEST_SEED") or random.SystemRandom().randrange(1, 1 << 31))
def start_run(sock, prefix, n):
    for i in range(n):
        wid = f"{prefix}{i:03d}"
        st, body = call(sock, "POST", "/v1/workflows",
                        {"input": {"order_id": wid, "product_id": "123456", "quantity": 1}})
        if st != 201:
            raise SystemExit(f"start {wid}: {st} {body}")
    st, body = call(sock, "GET", "/v1/wait?timeout=120s", timeout=130)
    if st != 200 or body.get("timed_out"):
        raise SystemExit(f"the run did not finish: {st} {body}")


def rows(b, table):
    return b.eval(f"[...document.querySelectorAll('[data-testid={table}] tbody tr')]"
                  ".map(r => r.dataset.workflow || r.dataset.rule || r.dataset.kind || r.innerText)")


def sign_in(b, base, token_file, first=False):
    """The token form the dashboard shows over TCP: a wrong token refused,
    the right one traded for a session cookie the page cannot read, asked
    once."""
    with open(token_file) as f:
        tok = f.readline().strip()
    b.goto(base + "/")
    b.wait_for("!document.getElementById('login').hidden", what="the token form")
    submit = ("document.getElementById('token').value = %s; "
              "document.getElementById('login').requestSubmit(); true")
    if first:
        b.eval(submit % json.dumps("not-the-token-0123456789"))
        err = b.wait_for("document.getElementById('login-error').textContent",
                         what="the refusal")
        check("the page refuses a wrong token", "wrong token" in err, err)
        b.screenshot(os.path.join(OUT, "login.png"), full=False)
    b.eval(submit % json.dumps(tok))
    b.wait_for("document.getElementById('login').hidden && "
               "!!document.querySelector('[data-testid=count-completed]')",
               what="the overview after the token")
    if first:
        cookies = b.eval("document.cookie")
        check("the session's cookie is out of the page's reach (HttpOnly)",
              tok not in cookies and "idem_session" not in cookies, cookies)
        b.goto("about:blank")
        b.goto(base + "/#/workflows")
        b.wait_for("!!document.querySelector('[data-testid=workflows] tbody tr')",
                   what="the workflows page, signed in")
        check("the token is asked once", b.eval("document.getElementById('login').hidden"))
    b.console.clear()  # the 401s before the token


def overview(b, base, sock):
    b.goto(base + "/")
    st = call(sock, "GET", "/v1/stats")[1]
    want = {k: st["workflows"].get(k, 0) for k in ("running", "completed", "failed")}
    shown = b.wait_for("(() => { const t = k => document.querySelector(`[data-testid=count-${k}]`)"
                       "?.textContent; return t('completed') && {running: t('running'), "
                       "completed: t('completed'), failed: t('failed')}; })()")
    shown = {k: int(v.replace(",", "")) for k, v in shown.items()}
    check("the overview's counts are /v1/stats's", shown == want, f"page {shown}, API {want}")
    # The series lags by up to a second: wait for its kill bars to add up.
    kills = st["faults"]["by_kind"]["kill"]
    expr = ("[...document.querySelectorAll('[data-testid=chart-faults] rect.f-kill')]"
            ".reduce((a, r) => a + Number(r.dataset.v), 0)")
    try:
        charted = b.wait_for(f"{expr} === {kills} && {kills}", timeout=10)
    except TimeoutError:
        charted = b.eval(expr)
    check("the fault chart's kill bars add up to the kills planned", charted == kills,
          f"charted {charted}, /v1/stats {kills}")
    bars = b.eval("document.querySelectorAll('[data-testid=chart-throughput] rect.s-completed').length")
    check("the throughput chart has bars", bars > 0, f"{bars} bars")
    slots = b.eval("document.querySelectorAll('[data-testid=slots] tbody tr').length")
    check("one row per worker slot", slots == len(st["pool"]["slots"]), f"{slots} rows")
    stock = call(sock, "GET", "/v1/stock/123456")[1]["stock"]
    cell = b.wait_for("[...document.querySelectorAll('[data-panel=\"/v1/stock\"] td')]"
                      ".map(td => td.textContent).join(' ')", what="the stock panel")
    check("the app's stock panel shows the stock", f"123456 {stock} " in cell + " ", cell)
    b.screenshot(os.path.join(OUT, "overview.png"))


def workflows(b, base, sock):
    b.goto(base + "/#/workflows")
    api = [w["workflow_id"] for w in call(sock, "GET", "/v1/workflows?limit=50")[1]["workflows"]]
    page = b.wait_for(f"(() => {{ const r = [...document.querySelectorAll('[data-testid=workflows] "
                      f"tbody tr[data-workflow]')].map(r => r.dataset.workflow); "
                      f"return r.length === {len(api)} && r; }})()", what="the first page")
    check("the list's first page is /v1/workflows's", page == api)
    b.screenshot(os.path.join(OUT, "workflows.png"), full=False)
    after = call(sock, "GET", "/v1/workflows?limit=50")[1]["next_after"]
    api2 = [w["workflow_id"] for w in
            call(sock, "GET", f"/v1/workflows?limit=50&after={after}")[1]["workflows"]]
    b.eval("document.querySelector('[data-testid=next]').click()")
    page2 = b.wait_for(f"(() => {{ const r = [...document.querySelectorAll('[data-testid=workflows] "
                       f"tbody tr[data-workflow]')].map(r => r.dataset.workflow); "
                       f"return r[0] === {json.dumps(api2[0])} && r; }})()", what="the next page")
    check("next shows the API's next page", page2 == api2, f"{len(page2)} rows")
    b.eval("document.querySelector('[data-testid=prev]').click()")
    page1 = b.wait_for(f"(() => {{ const r = [...document.querySelectorAll('[data-testid=workflows] "
                       f"tbody tr[data-workflow]')].map(r => r.dataset.workflow); "
                       f"return r[0] === {json.dumps(api[0])} && r; }})()", what="the page before")
    check("previous goes back to the first page", page1 == api, f"{len(page1)} rows")
    b.eval("(() => { const i = document.querySelector('[data-testid=search]'); i.value = 'W01';"
           " i.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter'})); })()")
    found = b.wait_for("(() => { const r = [...document.querySelectorAll('[data-testid=workflows] "
                       "tbody tr[data-workflow]')].map(r => r.dataset.workflow); "
                       "return location.hash.includes('prefix=W01') && r.length && r; })()",
                       what="the search")
    api3 = [w["workflow_id"] for w in
            call(sock, "GET", "/v1/workflows?prefix=W01&limit=50")[1]["workflows"]]
    check("searching W01 lists W010..W019", found == api3 == [f"W01{i}" for i in range(10)],
          found)
    b.eval("document.querySelector('[data-filter=completed]').click()")
    done = b.wait_for("(() => { const r = document.querySelectorAll('[data-testid=workflows] "
                      "tbody [data-status]'); return location.hash.includes('status=completed')"
                      " && r.length && [...r].map(x => x.dataset.status); })()")
    check("the completed filter lists completed workflows", set(done) == {"completed"})


def timeline(b, base, sock, ids):
    for wid in ids:
        events = call(sock, "GET", f"/v1/workflows/{wid}/history")[1]["events"]
        kill = next((e for e in events if e["kind"] == "fault_injected"
                     and e["detail"]["kind"] == "kill"), None)
        if kill:
            break
    if not check("the run has a workflow hit by a kill", kill is not None):
        return
    end = next(e for e in events if e["step"] == kill["step"] and e["attempt"] == kill["attempt"]
               and e["kind"] in ("worker_lost", "worker_killed", "attempt_lost", "failed"))
    started = [e for e in events if e["kind"] == "started"]
    b.goto(f"{base}/#/workflow/{wid}")
    atts = b.wait_for("(() => { const g = [...document.querySelectorAll('[data-testid=timeline] "
                      "g.attempt')]; return g.length && g.map(x => ({step: +x.dataset.step, "
                      "attempt: +x.dataset.attempt, outcome: x.dataset.outcome, "
                      "fault: x.dataset.fault})); })()", what="the timeline")
    check(f"{wid}'s timeline has a bar per attempt started", len(atts) == len(started),
          f"{len(atts)} bars, {len(started)} started")
    hit = [a for a in atts if a["step"] == kill["step"] and a["attempt"] == kill["attempt"]]
    want = f"kill at {kill['detail']['point']}"
    check(f"{wid}'s timeline shows the kill its history has",
          hit and hit[0]["fault"] == want and hit[0]["outcome"] == end["kind"],
          f"bar {hit}, history: {want}, {end['kind']}")
    n = b.eval("document.querySelectorAll('[data-testid=events] tbody tr').length")
    check(f"{wid}'s raw events are listed", n == len(events), f"{n} rows, {len(events)} events")
    b.screenshot(os.path.join(OUT, "workflow.png"))


def checker(b, base, sock, name):
    b.goto(base + "/#/checker")
    b.wait_for("!!document.querySelector('[data-testid=run-check]')")
    b.eval("document.querySelector('[data-testid=run-check]').click()")
    v = b.wait_for("(() => { const v = document.querySelector('[data-testid=verdict]');"
                   " return v && {ok: v.dataset.ok, text: v.textContent}; })()", timeout=60,
                   what="the checker's verdict")
    rep = call(sock, "GET", "/v1/check", timeout=120)[1]
    check(f"the checker's verdict shows ({name})", v["ok"] == str(rep["ok"]).lower()
          and v["text"].startswith("OK" if rep["ok"] else "FAILED"), v)
    shown = rows(b, "rules")
    check("every rule is listed", shown == list(rep["counts"]), shown)
    b.screenshot(os.path.join(OUT, f"checker-{name}.png"))
    return rep


EVIL = """<!doctype html><title>elsewhere</title><body><script>
window.results = {};
const T = "http://127.0.0.1:%d", start = id => JSON.stringify(
  {workflow_id: id, input: {order_id: id, product_id: "123456", quantity: 1}});
async function attempt(name, f) {
  try { const r = await f(); results[name] = r.type === "opaque" ? "sent" : "status " + r.status; }
  catch (e) { results[name] = "blocked"; }
}
(async () => {
  await attempt("text", () => fetch(T + "/v1/workflows", {method: "POST", mode: "no-cors",
    headers: {"Content-Type": "text/plain"}, body: start("EVIL1")}));
  await attempt("json", () => fetch(T + "/v1/workflows", {method: "POST",
    headers: {"Content-Type": "application/json"}, body: start("EVIL2")}));
  await attempt("stock", () => fetch(T + "/v1/stock/123456", {method: "PUT",
    headers: {"Content-Type": "application/json"}, body: '{"stock": 0}'}));
  await attempt("read", () => fetch(T + "/v1/stats"));
  const f = document.createElement("form"), i = document.createElement("input"),
    sink = document.createElement("iframe");
  f.method = "POST"; f.action = T + "/v1/workflows"; f.enctype = "text/plain";
  f.target = sink.name = "sink";
  i.name = '{"workflow_id": "EVIL3", "input": {"order_id": "EVIL3", "product_id": "123456", '
    + '"quantity": 1}, "x": "'; i.value = '"}';
  f.append(i); document.body.append(sink, f); f.submit();
  // GETs a page may send anywhere without an Origin: the checker's run.
  const img = document.createElement("img");
  img.src = T + "/v1/check"; document.body.append(img);
  sink.addEventListener("load", () => { results.done = true; });
})();
</script></body>"""


def guard(b, port, sock):
    stock = call(sock, "GET", "/v1/stock/123456")[1]["stock"]
    status = b.goto(f"http://evil.test:{port}/")
    text = b.eval("document.body.innerText")
    check("a rebound name (evil.test -> 127.0.0.1) gets 403", status == 403
          and "DNS rebinding" in text, f"{status} {text[:120]}")

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = (EVIL % port).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        b.goto(f"http://127.0.0.1:{srv.server_address[1]}/")
        res = b.wait_for("window.results && window.results.done && window.results", timeout=20,
                         what="the page elsewhere")
    finally:
        srv.shutdown()
    print(f"     the page elsewhere saw: {res}")
    b.pump(1)
    got = b.responses(f":{port}/v1/check")
    check("an <img> elsewhere cannot run the checker (Sec-Fetch-Site: 403)", got == [403], got)
    check("a cross-origin JSON start is blocked by the browser", res["json"] == "blocked", res)
    check("a cross-origin stock change is blocked", res["stock"] == "blocked", res)
    check("a cross-origin page cannot read the API", res["read"] == "blocked", res)
    for wid in ("EVIL1", "EVIL2", "EVIL3"):
        st = call(sock, "GET", f"/v1/workflows/{wid}")[0]
        check(f"the page elsewhere started nothing ({wid}: 404)", st == 404, st)
    after = call(sock, "GET", "/v1/stock/123456")[1]["stock"]
    check("the stock is unchanged", after == stock, f"{stock} -> {after}")


def outage(b, base, work, extra):
    """The supervisor SIGKILLed under the open page, then started again."""
    b.goto(base + "/#/")
    b.wait_for("!!document.querySelector('[data-testid=count-completed]')")
    before = b.eval("document.getElementById('live').textContent")
    b.pump(1.5)
    after = b.eval("document.getElementById('live').textContent")
    check("the overview updates by itself", before != after, f"{before} -> {after}")
    extra[0].kill()
    extra[0].wait()
    banner = b.wait_for("!document.getElementById('banner').hidden && "
                        "document.getElementById('banner').textContent", timeout=10,
                        what="the banner")
    check("a killed supervisor is shown as not answering", "does not answer" in banner, banner)
    b.screenshot(os.path.join(OUT, "overview-down.png"), full=False)
    sup, sock = supervisor(BIN, work, extra=extra[1])
    back = b.wait_for("document.getElementById('banner').hidden && "
                      "document.querySelector('[data-testid=count-completed]')?.textContent",
                      timeout=15, what="the page back")
    want = call(sock, "GET", "/v1/stats")[1]["workflows"]["completed"]
    check("the page comes back with the new supervisor", back == f"{want:,}", f"{back} vs {want}")
    b.console.clear()  # the refused requests of the outage
    return sup, sock


def transfer_panel(b, work):
    """Another app: its panel, its workflows' input and result as JSON."""
    p, sock, port = app_supervisor(work, "transfer", "--transfer-accounts=A:100,B:50")
    try:
        st, body = call(sock, "POST", "/v1/workflows?wait=30s", {
            "type": "transfer", "input": {"transfer_id": "T1", "from": "A", "to": "B",
                                          "amount": 30}})
        wf = body.get("workflow") or {}
        check("a transfer completes", st == 201 and wf.get("status") == "completed", body)
        base = f"http://127.0.0.1:{port}"
        sign_in(b, base, os.path.join(work, "transfer", "api-token"))
        cells = b.wait_for("[...document.querySelectorAll('[data-panel=\"/v1/balance\"] td')]"
                           ".map(td => td.textContent).join(' ')", what="the accounts panel")
        check("the transfer app's accounts panel shows the balances",
              cells == "A 70 100 B 80 50", cells)
        b.goto(base + "/#/workflow/T1")
        res = b.wait_for("document.querySelector('[data-testid=timeline]') && "
                         "document.querySelector('[data-testid=result]').textContent")
        check("a transfer's result is shown as JSON", json.loads(res) == wf.get("result"), res)
        b.screenshot(os.path.join(OUT, "transfer.png"), full=False)
    finally:
        b.goto("about:blank")  # so that no poll meets the stopped supervisor
        p.terminate()
        p.wait(30)


def file_app_panels(b, work):
    """An app of the user's (idem.json): panels its own commands make."""
    p, sock, port = app_supervisor(work, f"{ROOT}/examples/payments/idem.json")
    try:
        for i, (who, amount) in enumerate((("alice", 30), ("bob", 5), ("alice", 12))):
            st, body = call(sock, "POST", "/v1/workflows?wait=30s", {"input": {
                "payment_id": f"P{i}", "customer": who, "amount": amount}})
            check(f"payment P{i} completes", st == 201 and
                  (body.get("workflow") or {}).get("status") == "completed", body)
        sign_in(b, f"http://127.0.0.1:{port}", os.path.join(work, "payments", "api-token"))
        cells = b.wait_for("[...document.querySelectorAll('[data-panel=\"/v1/panels/0\"] tbody tr')]"
                           ".map(r => r.innerText.split('\\t').join(' ')).join('; ')",
                           what="the Customers panel")
        check("the app's own command fills its Customers panel",
              cells.startswith("alice 958 1000 2 42; bob 995 1000 1 5; carol 1000"), cells)
        latest = b.wait_for("[...document.querySelectorAll('[data-panel=\"/v1/panels/1\"] "
                            "tbody tr')].length", what="the Latest payments panel")
        check("its Latest payments panel lists the three", latest == 3, latest)
        check("no console message on the payments app's overview", not b.console, b.console[:5])
        b.screenshot(os.path.join(OUT, "payments.png"), full=False)
    finally:
        b.goto("about:blank")  # so that no poll meets the stopped supervisor
        p.terminate()
        p.wait(30)


def app_supervisor(work, app, *extra):
    """A supervisor of app (a name or an idem.json) in a directory of its
    own under work, on HTTP_LISTEN too: (process, socket, port) once it
    answers."""
    port = free_port()
    d = os.path.join(work, os.path.basename(os.path.dirname(app)) if "/" in app else app)
    os.makedirs(d)
    log = open(os.path.join(d, "supervisor.log"), "w")
    sock = os.path.join(d, "idem.sock")
    p = subprocess.Popen([os.path.join(BIN, "idem-supervisor"), "--env=/dev/null",
                          f"--app={app}", f"--socket={sock}", f"--database={d}/app.db",
                          f"--state-database={d}/state.db", "--sync=normal",
                          f"--http-listen=127.0.0.1:{port}", f"--api-token-file={d}/api-token",
                          "--log-level=warn", *extra],
                         stdout=log, stderr=subprocess.STDOUT)
    for _ in range(500):
        try:
            if call(sock, "GET", "/v1/health", timeout=5)[0] == 200:
                return p, sock, port
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"no supervisor answered on {sock}; see {log.name}")


def unix_socket(sock):
    c = UnixHTTP(sock, 10)
    c.request("GET", "/")
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    check("the dashboard is served on the Unix socket too",
          r.status == 200 and r.getheader("Content-Type", "").startswith("text/html")
          and "/ui/app.js" in body and "frame-ancestors 'none'" in
          r.getheader("Content-Security-Policy", ""), r.status)


def main():
    chromium = cdp.find_chromium()
    if chromium is None:
        print("test_dashboard: NOT RUN: no chromium here "
              "(scripts/build installs it where the package archive has it)")
        return 77
    os.makedirs(OUT, exist_ok=True)
    print(f"test_dashboard: seed {SEED} (IDEM_TEST_SEED={SEED} replays it); screenshots in {OUT}")
    work = tempfile.mkdtemp(prefix="idem-dashboard-")
    port = free_port()
    faults = [f"--fault-seed={SEED}", "--retry-initial-interval=20ms", "--workers=2"]
    first = [f"--http-listen=127.0.0.1:{port}", "--fault-kill-rate=0.3", *faults]
    sup, sock = supervisor(BIN, work, extra=first)
    b = cdp.Browser(chromium, resolver_rules="MAP evil.test 127.0.0.1")
    base = f"http://127.0.0.1:{port}"
    try:
        start_run(sock, "W", 60)
        unix_socket(sock)
        sign_in(b, base, os.path.join(work, "api-token"), first=True)
        overview(b, base, sock)
        workflows(b, base, sock)
        timeline(b, base, sock, [f"W{i:03d}" for i in range(60)])
        checker(b, base, sock, "ok")
        check("no console message on the dashboard's pages", not b.console, b.console[:5])
        sup, sock = outage(b, base, work, [sup, first])
        b.goto("about:blank")  # so that no poll meets the stopped supervisor
        stop(sup)
        b.console.clear()
        transfer_panel(b, work)
        file_app_panels(b, work)
        # A naive run: the checker must fail, and the page say so.
        naive = os.path.join(work, "naive")
        os.makedirs(naive)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        sup, sock = supervisor(BIN, naive, extra=[
            f"--http-listen=127.0.0.1:{port}", "--activity-mode=naive",
            "--fault-kill-rate=0.5", "--fault-kill-points=after_commit", *faults])
        start_run(sock, "N", 40)  # 20 had no kill once in a million runs
        sign_in(b, base, os.path.join(naive, "api-token"))
        rep = checker(b, base, sock, "failed")
        check("the naive run fails the checker (the control experiment)", not rep["ok"],
              rep["counts"])
        listed = rows(b, "violations")
        check("the naive run's duplicates are listed",
              "duplicated" in listed and len(listed) == len(rep["violations"]),
              f"{listed} vs {rep['counts']}")
        links = b.eval("[...document.querySelectorAll('[data-testid=violations] a')]"
                       ".map(a => a.textContent)")
        want = [w for v in rep["violations"] for w in v["workflows"]]
        check("each violation links its workflows", links == want and want, f"{links} vs {want}")
        b.eval("document.querySelector('[data-testid=violations] a').click()")
        wid = want[0].split("/", 1)[1]
        shown = b.wait_for("document.querySelector('[data-testid=timeline]') && "
                           "document.querySelector('[data-testid=workflow-id]').textContent",
                           what="the linked workflow's page")
        check("a violation's link opens its workflow", shown == wid, f"{shown} vs {wid}")
        check("no console message on the dashboard's pages", not b.console, b.console[:5])
        guard(b, port, sock)
    finally:
        b.close()
        stop(sup)
    print(f"test_dashboard: {'FAILED: ' + ', '.join(failures) if failures else 'passed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
