# cdp.py — Debian's Chromium, headless, driven through its DevTools
# protocol over a pipe (--remote-debugging-pipe: commands in on fd 3,
# answers and events out on fd 4, each a JSON text ended by a NUL byte),
# so that the tests need no driver and no WebSocket client; and its
# screenshots decoded (png_pixels, count_colors). Used by the browser
# tests: test_dashboard.py, test_report.py, test_bench_report.py.
import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import struct
import time
import zlib


def find_chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One headless Chromium with one page. Every console message, page
    exception and log entry of level error or warning is kept in
    self.console."""

    def __init__(self, chromium, width=1280, height=1000, resolver_rules=None):
        self.profile = tempfile.mkdtemp(prefix="idem-chromium-")
        cmd_r, self._cmd_w = os.pipe()
        self._out_r, out_w = os.pipe()

        def fds():
            # Through fresh copies: either pipe end may itself be 3 or 4.
            a, b = os.dup(cmd_r), os.dup(out_w)
            os.dup2(a, 3)
            os.dup2(b, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        args = [chromium, "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--hide-scrollbars", "--no-first-run",
                "--remote-debugging-pipe", f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}"]
        if resolver_rules:
            args.append(f"--host-resolver-rules={resolver_rules}")
        self.log = open(os.path.join(self.profile, "chromium.log"), "w")
        # Python's descriptors are close-on-exec: only 3 and 4 reach it.
        self.proc = subprocess.Popen(args + ["about:blank"], preexec_fn=fds, close_fds=False,
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        os.close(cmd_r)
        os.close(out_w)
        self._buf = b""
        self._id = 0
        self.events = []
        self.console = []
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"],
                                 flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=True)

    def _read(self, timeout):
        end = time.monotonic() + timeout
        while b"\0" not in self._buf:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self._out_r], [], [], left)[0]:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._out_r, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed its DevTools pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def _event(self, m):
        self.events.append(m)
        p = m.get("params", {})
        if m["method"] == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])
            self.console.append(f"console.{p['type']}: {text}")
        elif m["method"] == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            self.console.append("exception: " + d.get("exception", {}).get("description", d["text"]))
        elif m["method"] == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
            self.console.append(f"log.{p['entry']['level']}: {p['entry']['text']}")

    def call(self, method, session=False, timeout=30, **params):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        while True:
            m = self._read(timeout)
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m["result"]
            if "method" in m:
                self._event(m)

    def responses(self, part):
        """The HTTP statuses of the responses, since the last goto, whose
        URL contains part (any request of the page: a fetch, an image)."""
        urls, status = {}, {}
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Network.requestWillBeSent":
                urls[p["requestId"]] = p["request"]["url"]
            elif m == "Network.responseReceived":
                status[p["requestId"]] = p["response"]["status"]
            elif m == "Network.responseReceivedExtraInfo":
                # also sent for a response the browser then blocks (ORB)
                status.setdefault(p["requestId"], p["statusCode"])
        return [status.get(r) for r, u in urls.items() if part in u]

    def pump(self, seconds):
        """Reads events for a while (console messages of a page's own
        script arrive so)."""
        end = time.monotonic() + seconds
        while True:
            try:
                self._event(self._read(max(end - time.monotonic(), 0.01)))
            except TimeoutError:
                return

    def eval(self, expr, timeout=30):
        """The value of a JavaScript expression in the page (promises
        awaited)."""
        r = self.call("Runtime.evaluate", session=True, timeout=timeout, expression=expr,
                      returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr[:80]}: {r['exceptionDetails'].get('text')}")
        return r["result"].get("value")

    def goto(self, url, timeout=30):
        """Loads url and waits for its load event; returns the HTTP status
        of the document (None when it was not fetched over HTTP, or only
        its #fragment changed)."""
        self.events.clear()
        nav = self.call("Page.navigate", session=True, url=url)
        if nav.get("errorText"):
            raise RuntimeError(f"{url}: {nav['errorText']}")
        if "loaderId" not in nav:
            return None  # only the fragment changed: the same document
        end = time.monotonic() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            if time.monotonic() > end:
                raise TimeoutError(f"{url} did not load in {timeout} s")
            self.pump(0.1)
        status = self.eval("performance.getEntriesByType('navigation')[0]?.responseStatus ?? null")
        return status

    def wait_for(self, expr, timeout=20, what=None):
        """Polls a JavaScript expression until it is truthy; returns it."""
        end = time.monotonic() + timeout
        while True:
            v = self.eval(expr)
            if v:
                return v
            if time.monotonic() > end:
                raise TimeoutError(f"waited {timeout} s for {what or expr}")
            self.pump(0.1)

    def screenshot(self, path, full=True):
        shot = self.call("Page.captureScreenshot", session=True, format="png",
                         captureBeyondViewport=full)
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        return path

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except (OSError, RuntimeError, TimeoutError, EOFError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._cmd_w)
        os.close(self._out_r)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


# ---- screenshots ------------------------------------------------------------------

def png_pixels(path):
    """(width, height, bytes per pixel, rows) of an 8-bit RGB or RGBA PNG."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6), f"PNG depth {depth} type {ctype}"
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, rows, prev = zlib.decompress(idat), [], bytearray(w * bpp)
    stride = w * bpp
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif f:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                if f == 1:
                    line[i] = (line[i] + a) & 255
                elif f == 3:
                    line[i] = (line[i] + (a + b) // 2) & 255
                elif f == 4:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pr = a if pa <= pb and pa <= pc else b if pb <= pc else c
                    line[i] = (line[i] + pr) & 255
        rows.append(line)
        prev = line
    return w, h, bpp, rows


def count_colors(img, colors, tol=24):
    w, h, bpp, rows = img
    counts = [0] * len(colors)
    for line in rows:
        for x in range(0, w * bpp, bpp):
            r, g, b = line[x], line[x + 1], line[x + 2]
            if r == g == b:
                continue  # white, black and the greys of text
            for i, c in enumerate(colors):
                if abs(r - c[0]) <= tol and abs(g - c[1]) <= tol and abs(b - c[2]) <= tol:
                    counts[i] += 1
    return counts
