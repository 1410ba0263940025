#!/usr/bin/env python3
# test_browser_guard.py — the control API over HTTP_LISTEN (loopback TCP)
# against a web page on another origin (supervisor/api.c, browser_safe):
# a Host that is not the supervisor's (DNS rebinding) and a foreign Origin
# are refused (403), a change not sent as application/json is refused (415)
# and creates nothing, a CORS preflight is never granted; the same requests
# from the page's own origin, and over the Unix socket, work. Over TCP
# every endpoint asks for the token (API_TOKEN_FILE) as Authorization:
# Bearer, or a session cookie from POST /v1/login (not the token, ended by
# logout); the dashboard's page does
# not, nor does the Unix socket.
# Run by ctest (IDEM_BIN_DIR: the build's bin/ parent).
import http.client
import os
import re
import shutil
import socket
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from idem_http import call, free_port, stop, supervisor, token  # noqa: E402

BIN = os.path.join(os.environ.get("IDEM_BIN_DIR", os.path.join(ROOT, "build")), "bin")
failures = []
TOKEN = {"value": None}  # sent as Authorization: Bearer unless a case says otherwise


def tcp(port, method, path, body=None, headers=None, auth=True):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    headers = dict(headers or {})
    if auth and TOKEN["value"] and "Authorization" not in headers:
        headers["Authorization"] = f"Bearer {TOKEN['value']}"
    for k, v in headers.items():
        c.putheader(k, v)
    data = body.encode() if body is not None else b""
    c.putheader("Content-Length", str(len(data)))
    c.endheaders(data)
    r = c.getresponse()
    out = (r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read().decode())
    c.close()
    return out


def expect(what, got, want, text=None):
    status, headers, body = got
    ok = status == want and (text is None or text in body)
    if any(k.startswith("access-control-allow") for k in headers):
        ok = False
        body += " [has an Access-Control-Allow header]"
    print(f"{'ok  ' if ok else 'FAIL'} {what}: {status} {body[:160]}")
    if not ok:
        failures.append(what)


def tokens(port, own, work):
    """HTTP_LISTEN's token: asked of every endpoint, not of the dashboard's
    page; taken as Bearer or as the cookie /v1/login sets."""
    t = token(work)
    mode = os.stat(os.path.join(work, "api-token")).st_mode & 0o777
    print(f"{'ok  ' if mode == 0o600 and len(t) == 64 else 'FAIL'} the token file was made, "
          f"0600: {oct(mode)}, {len(t)} characters")
    if mode != 0o600 or len(t) != 64:
        failures.append("the token file")
    h = {"Host": own}
    got = tcp(port, "GET", "/v1/stats", None, h)
    expect("no token: 401", got, 401, "API_TOKEN_FILE")
    expect("... with WWW-Authenticate", (200 if got[1].get("www-authenticate") ==
                                         'Bearer realm="idem"' else 0, {}, str(got[1])), 200)
    expect("a wrong token: 401",
           tcp(port, "GET", "/v1/health", None, {**h, "Authorization": f"Bearer {t[:-1]}x"}), 401)
    expect("a token one character short: 401",
           tcp(port, "GET", "/v1/health", None, {**h, "Authorization": f"Bearer {t[:-1]}"}), 401)
    expect("no token, a start: 401, nothing created",
           tcp(port, "POST", "/v1/workflows",
               '{"input": {"order_id": "T0", "product_id": "123456", "quantity": 1}}',
               {**h, "Content-Type": "application/json"}), 401)
    expect("the token as Bearer: 200",
           tcp(port, "GET", "/v1/stats", None, {**h, "Authorization": f"Bearer {t}"}), 200)
    expect("the dashboard's page needs none", tcp(port, "GET", "/", None, h), 200)
    expect("its script needs none", tcp(port, "GET", "/ui/app.js", None, h), 200)
    expect("a wrong token at login: 401",
           tcp(port, "POST", "/v1/login", '{"token": "%sx"}' % t,
               {**h, "Content-Type": "application/json"}), 401, "wrong token")
    expect("a login from another origin: 403",
           tcp(port, "POST", "/v1/login", '{"token": "%s"}' % t,
               {**h, "Content-Type": "application/json", "Origin": "http://evil.example"}), 403)
    got = tcp(port, "POST", "/v1/login", '{"token": "%s"}' % t,
              {**h, "Content-Type": "application/json", "Origin": f"http://{own}"})
    cookie = got[1].get("set-cookie", "")
    m = re.match(rf"idem_session_{port}=([0-9a-f]{{64}});", cookie)
    sid = m.group(1) if m else ""
    expect("login: 200 and an HttpOnly, SameSite=Strict session cookie that ends",
           (got[0] if m and "HttpOnly" in cookie and "SameSite=Strict" in cookie
            and "Max-Age=43200" in cookie else 0, {}, cookie), 200)
    expect("the cookie is not the token", (200 if sid and t not in cookie else 0, {}, cookie),
           200)
    expect("the session's cookie lets the dashboard in",
           tcp(port, "GET", "/v1/stats", None, {**h, "Cookie": f"a=b; idem_session_{port}={sid}"}),
           200)
    expect("the token as the cookie does not",
           tcp(port, "GET", "/v1/stats", None, {**h, "Cookie": f"idem_session_{port}={t}"}), 401)
    expect("another port's cookie does not",
           tcp(port, "GET", "/v1/stats", None, {**h, "Cookie": f"idem_session_{port + 1}={sid}"}),
           401)
    other = tcp(port, "POST", "/v1/login", '{"token": "%s"}' % t,
                {**h, "Content-Type": "application/json", "Origin": f"http://{own}"})
    m2 = re.match(rf"idem_session_{port}=([0-9a-f]{{64}});", other[1].get("set-cookie", ""))
    sid2 = m2.group(1) if m2 else ""
    expect("a second login gets a session of its own", (200 if sid2 and sid2 != sid else 0, {},
                                                         str(other[1])), 200)
    got = tcp(port, "POST", "/v1/logout", None, {**h, "Content-Type": "application/json",
                                                 "Cookie": f"idem_session_{port}={sid}"})
    expect("logout forgets the cookie",
           (got[0] if "Max-Age=0" in got[1].get("set-cookie", "") else 0, {}, str(got[1])), 200)
    expect("... and ends its session: the same cookie is refused",
           tcp(port, "GET", "/v1/stats", None, {**h, "Cookie": f"idem_session_{port}={sid}"}), 401)
    got = tcp(port, "POST", "/v1/logout", None, {**h, "Content-Type": "application/json",
                                                 "Cookie": f"idem_session_{port}={sid}"})
    expect("logout with an ended session's cookie still forgets it",
           (got[0] if "Max-Age=0" in got[1].get("set-cookie", "") else 0, {}, str(got[1])), 200)
    expect("... but not the other one's",
           tcp(port, "GET", "/v1/stats", None, {**h, "Cookie": f"idem_session_{port}={sid2}"}),
           200)


def main():
    work = tempfile.mkdtemp(prefix="idem-browser-guard-")
    port = free_port()
    sup, sock = supervisor(BIN, work, extra=[f"--http-listen=127.0.0.1:{port}"])
    own = f"127.0.0.1:{port}"
    start = '{"input": {"order_id": "%s", "product_id": "123456", "quantity": 1}}'
    try:
        tokens(port, own, work)
        TOKEN["value"] = token(work)
        expect("GET with its own Host", tcp(port, "GET", "/v1/health", None, {"Host": own}), 200)
        expect("GET as localhost", tcp(port, "GET", "/v1/health", None,
                                       {"Host": f"localhost:{port}"}), 200)
        expect("GET as LOCALHOST (names are case-blind)",
               tcp(port, "GET", "/v1/health", None, {"Host": f"LOCALHOST:{port}"}), 200)
        expect("a name that only starts like localhost",
               tcp(port, "GET", "/v1/health", None, {"Host": f"localhost.evil.example:{port}"}),
               403)
        expect("Origin null (a sandboxed page, a file)",
               tcp(port, "POST", "/v1/workflows", start % "X0",
                   {"Host": own, "Origin": "null", "Content-Type": "application/json"}), 403)
        expect("a rebound name in Host", tcp(port, "GET", "/v1/stats", None,
                                             {"Host": f"evil.example:{port}"}), 403,
               "DNS rebinding")
        expect("no Host", tcp(port, "GET", "/v1/stats"), 403, "is not this supervisor's address")
        expect("another port in Host", tcp(port, "GET", "/v1/stats", None,
                                           {"Host": f"127.0.0.1:{port + 1}"}), 403)
        expect("a GET another site's page makes (Sec-Fetch-Site: cross-site)",
               tcp(port, "GET", "/v1/check", None, {"Host": own, "Sec-Fetch-Site": "cross-site",
                                                    "Sec-Fetch-Mode": "no-cors"}), 403,
               "cross-site request refused")
        expect("a GET from another port of this host (same-site)",
               tcp(port, "GET", "/v1/stats", None, {"Host": own, "Sec-Fetch-Site": "same-site",
                                                    "Sec-Fetch-Mode": "cors"}), 403)
        expect("the dashboard's own fetch (same-origin)",
               tcp(port, "GET", "/v1/stats", None, {"Host": own, "Sec-Fetch-Site": "same-origin",
                                                    "Sec-Fetch-Mode": "cors"}), 200)
        expect("a link from another site to the dashboard",
               tcp(port, "GET", "/", None, {"Host": own, "Sec-Fetch-Site": "cross-site",
                                            "Sec-Fetch-Mode": "navigate"}), 200)
        expect("a link from another site to an endpoint",
               tcp(port, "GET", "/v1/stats", None, {"Host": own, "Sec-Fetch-Site": "cross-site",
                                                    "Sec-Fetch-Mode": "navigate"}), 403)
        expect("the address typed in (Sec-Fetch-Site: none)",
               tcp(port, "GET", "/v1/stats", None, {"Host": own, "Sec-Fetch-Site": "none",
                                                    "Sec-Fetch-Mode": "navigate"}), 200)
        expect("a start from another origin",
               tcp(port, "POST", "/v1/workflows", start % "X1",
                   {"Host": own, "Origin": "http://evil.example",
                    "Content-Type": "application/json"}), 403, "cross-origin request refused")
        expect("a read from another origin",
               tcp(port, "GET", "/v1/workflows", None,
                   {"Host": own, "Origin": "http://evil.example"}), 403)
        expect("a start as a form (no preflight)",
               tcp(port, "POST", "/v1/workflows", start % "X2",
                   {"Host": own, "Content-Type": "text/plain"}), 415, "application/json")
        expect("a stock change as a form",
               tcp(port, "PUT", "/v1/stock/123456", '{"stock": 5}',
                   {"Host": own, "Content-Type": "application/x-www-form-urlencoded"}), 415)
        expect("a CORS preflight",
               tcp(port, "OPTIONS", "/v1/workflows", None,
                   {"Host": own, "Origin": "http://evil.example",
                    "Access-Control-Request-Method": "POST"}), 403)
        st, r = call(sock, "GET", "/v1/workflows")
        listed = [w["workflow_id"] for w in (r or {}).get("workflows", [])]
        if st != 200 or listed:
            failures.append("refused starts created nothing")
        print(f"{'ok  ' if not listed else 'FAIL'} the refused starts created nothing: {listed}")
        expect("a start from its own origin",
               tcp(port, "POST", "/v1/workflows", start % "X3",
                   {"Host": own, "Origin": f"http://{own}",
                    "Content-Type": "application/json; charset=utf-8"}), 201)
        st, r = call(sock, "GET", "/v1/stock/123456")
        expect("the stock over the Unix socket, as before", (st, {}, str(r)), 200)
    finally:
        stop(sup)
    if failures:
        print(f"test_browser_guard: {len(failures)} failed: {failures}; files in {work}")
        return 1
    shutil.rmtree(work, ignore_errors=True)
    print("test_browser_guard: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
