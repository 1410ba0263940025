#!/usr/bin/env python3
"""make_seeds.py — writes the hand-made seeds of tests/fuzz/corpus/.

    tests/fuzz/make_seeds.py        (from anywhere; rewrites seed-* files)

Each seed is a file named seed-<what>; the files libFuzzer found and
scripts/fuzz --merge added are named by their SHA-1 and are left alone.
Running it again after editing the lists below is safe.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# ---- JSON edge cases, shared by the frame and msg seeds -------------------

JSON_EDGES = {
    "empty-object": b"{}",
    "empty-array": b"[]",
    "scalar-int": b"42",
    "scalar-string": b'"ready"',
    "null": b"null",
    "deep-array-2000": b"[" * 2000 + b"]" * 2000,
    "deep-array-3000": b"[" * 3000 + b"]" * 3000,
    "deep-object-1500": b'{"a":' * 1500 + b"{}" + b"}" * 1500,
    "huge-int": b'{"type":"ready","pid":99999999999999999999999999}',
    "int-max": b'{"type":"ready","pid":9223372036854775807}',
    "int-min": b'{"type":"ready","pid":-9223372036854775808}',
    "huge-real": b'{"type":"ready","pid":1e400}',
    "tiny-real": b'{"x":1e-400}',
    "real-pid": b'{"type":"ready","pid":12.0}',
    "neg-zero": b'{"x":-0.0,"y":-0}',
    "nul-escape": b'{"type":"ready\\u0000x","pid":1}',
    "nul-raw": b'{"type":"ready","pid":1}\x00',
    "invalid-utf8": b'{"type":"\xff\xfe","pid":1}',
    "overlong-utf8": b'{"type":"\xc0\xaf"}',
    "utf8-surrogate-raw": b'{"x":"\xed\xa0\x80"}',
    "lone-high-surrogate": b'{"x":"\\ud800"}',
    "lone-low-surrogate": b'{"x":"\\udc00"}',
    "surrogate-pair": b'{"x":"\\ud83d\\ude00"}',
    "unicode-escapes": b'{"type":"r\\u0065ady","pid":1,"\\u00e9":"\\u20ac"}',
    "duplicate-keys": b'{"type":"ready","pid":1,"pid":2}',
    "duplicate-type": b'{"type":"task","type":"ready","pid":3}',
    "long-string": b'{"type":"ready","pid":1,"x":"' + b"a" * 5000 + b'"}',
    "long-key": b'{"' + b"k" * 3000 + b'":1}',
    "many-keys": b"{" + b",".join(b'"k%d":%d' % (i, i) for i in range(300)) + b"}",
    "trailing-garbage": b'{"type":"ready","pid":1} x',
    "two-values": b'{"type":"ready","pid":1}{"type":"ready","pid":2}',
    "whitespace": b' \t\r\n{ "type" : "ready" , "pid" : 1 } \n',
    "bom": b'\xef\xbb\xbf{"type":"ready","pid":1}',
    "bad-escape": b'{"x":"\\q"}',
    "unterminated": b'{"type":"ready","pid":1',
    "control-char": b'{"x":"a\x01b"}',
    "escaped-slash": b'{"x":"a\\/b\\"c\\\\"}',
    "true-false-null": b'{"a":true,"b":false,"c":null}',
}

TASK = {"type": "task", "task_id": 7, "namespace": "default", "workflow_id": "A12",
        "step": 0, "attempt": 1, "activity": "update_inventory",
        "input": {"order_id": "A12", "product_id": "123456", "quantity": 999}}

MESSAGES = {
    "ready": {"type": "ready", "pid": 123},
    "task": TASK,
    "task-heartbeat-fault": dict(TASK, heartbeat={"supplier_order_id": "SO-1"},
                                 fault={"kind": "kill", "point": "after_commit"}),
    "result-ok": {"type": "result", "task_id": 7, "ok": True, "result": {"stock": 1}},
    "result-error": {"type": "result", "task_id": 7, "ok": False,
                     "error": {"type": "UnknownProduct", "message": "no product 9",
                               "retryable": False}},
    "heartbeat": {"type": "heartbeat", "task_id": 7, "details": {"supplier_order_id": "SO-1"}},
}

BAD_MESSAGES = {
    "no-type": {"pid": 1},
    "type-int": {"type": 1, "pid": 1},
    "type-unknown": {"type": "hello"},
    "type-empty": {"type": ""},
    "ready-pid-zero": {"type": "ready", "pid": 0},
    "ready-pid-string": {"type": "ready", "pid": "1"},
    "ready-extra-key": {"type": "ready", "pid": 1, "version": 2},
    "task-missing-input": {k: v for k, v in TASK.items() if k != "input"},
    "task-input-array": dict(TASK, input=[1]),
    "task-heartbeat-null": dict(TASK, heartbeat=None),
    "task-step-negative": dict(TASK, step=-1),
    "task-attempt-zero": dict(TASK, attempt=0),
    "task-empty-namespace": dict(TASK, namespace=""),
    "task-extra-key": dict(TASK, priority=1),
    "result-ok-no-result": {"type": "result", "task_id": 7, "ok": True},
    "result-ok-string": {"type": "result", "task_id": 7, "ok": "true", "result": {}},
    "result-ok-with-error": {"type": "result", "task_id": 7, "ok": True, "result": {},
                             "error": {}},
    "result-error-retryable-int": {"type": "result", "task_id": 7, "ok": False,
                                   "error": {"type": "X", "message": "m", "retryable": 1}},
    "result-error-extra": {"type": "result", "task_id": 7, "ok": False,
                           "error": {"type": "X", "message": "", "retryable": True,
                                     "stack": "..."}},
    "result-error-empty-type": {"type": "result", "task_id": 7, "ok": False,
                                "error": {"type": "", "message": "m", "retryable": True}},
    "heartbeat-details-string": {"type": "heartbeat", "task_id": 7, "details": "x"},
    "heartbeat-task-id-real": {"type": "heartbeat", "task_id": 7.5, "details": {}},
    "nested-messages": {"a": {"type": "ready", "pid": 5}, "b": TASK},
}


def compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def write(harness, name, data):
    d = os.path.join(HERE, "corpus", harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# ---- frame ------------------------------------------------------------------

def frame(payload, length=None):
    return struct.pack(">I", len(payload) if length is None else length) + payload


def frame_input(stream, splits=(), max_sel=3):
    """Byte 0: (max selector << 4) | number of splits; then the split sizes
    (each b gives b + 1 bytes); then the stream."""
    return bytes([(max_sel << 4) | len(splits)]) + bytes(s - 1 for s in splits) + stream


def frame_seeds():
    every = b"".join(frame(compact(m)) for m in MESSAGES.values())
    for name, m in MESSAGES.items():
        write("frame", "valid-" + name, frame_input(frame(compact(m))))
    write("frame", "all-types-whole", frame_input(every))
    write("frame", "all-types-bytewise", frame_input(every, [1]))
    write("frame", "all-types-split-3-7-1", frame_input(every, [3, 7, 1]))
    write("frame", "all-types-split-header", frame_input(every, [2, 4, 5, 200]))
    write("frame", "all-types-max-64", frame_input(every, [16], max_sel=0))
    write("frame", "all-types-max-1024", frame_input(every, [100, 1], max_sel=1))
    write("frame", "len-zero", frame_input(frame(b"", 0)))
    write("frame", "len-zero-after-frame", frame_input(frame(b"{}") + frame(b"", 0)))
    write("frame", "len-max-u32", frame_input(b"\xff\xff\xff\xff{}"))
    write("frame", "len-over-default", frame_input(frame(b"{}", 2000000)))
    write("frame", "len-over-64", frame_input(frame(b"{}" + b" " * 70), max_sel=0))
    write("frame", "len-exactly-64", frame_input(frame(b"{" + b" " * 62 + b"}"), max_sel=0))
    write("frame", "len-longer-than-payload", frame_input(frame(b"{}", 10)))
    write("frame", "len-shorter-than-payload", frame_input(frame(b'{"a":1}', 3)))
    write("frame", "header-only-2", frame_input(b"\x00\x00", [1]))
    write("frame", "header-only-4", frame_input(b"\x00\x00\x00\x05"))
    write("frame", "truncated-payload", frame_input(frame(compact(TASK))[:-5], [5]))
    write("frame", "not-json", frame_input(frame(b"hello")))
    write("frame", "payload-array", frame_input(frame(b"[1,2]")))
    write("frame", "payload-scalar", frame_input(frame(b"7")))
    write("frame", "empty-stream", frame_input(b""))
    write("frame", "no-header-byte", b"")
    write("frame", "ascii-garbage", frame_input(b"GET / HTTP/1.1\r\n\r\n"))
    for name, payload in JSON_EDGES.items():
        write("frame", "json-" + name, frame_input(frame(payload), [64]))


# ---- msg --------------------------------------------------------------------

def msg_seeds():
    for name, m in MESSAGES.items():
        write("msg", "valid-" + name, compact(m))
    for name, m in BAD_MESSAGES.items():
        write("msg", "bad-" + name, compact(m))
    for name, payload in JSON_EDGES.items():
        write("msg", "json-" + name, payload)


# ---- config -----------------------------------------------------------------

GOOD = {
    "SOCKET": ["/tmp/idem.sock"], "HTTP_LISTEN": ["127.0.0.1:8080", "[::1]:1", "localhost:65535"],
    "NAMESPACE": ["prod.eu-1_a"], "TASKQUEUE": ["q"], "DATABASE": ["/tmp/a b.db"],
    "WORKERS": ["1", "256"], "REORDER_THRESHOLD": ["0", "1000000000"],
    "REORDER_QUANTITY": ["1"], "SEED_STOCK": ["", "a:0, b:1000000000000 ,c.d-e_f:5"],
    "LOG_LEVEL": ["DEBUG", "warn", "error"], "MAX_FRAME": ["64", "64MiB", "4KiB", "100B"],
    "MAX_BODY": ["1KiB", "1024"], "SHUTDOWN_GRACE": ["0", "1h", "250ms", "1.5s"],
    "RETRY_INITIAL_INTERVAL": ["1ms", "2m"], "RETRY_BACKOFF_COEFFICIENT": ["1", "100", "1.000001"],
    "RETRY_MAXIMUM_INTERVAL": ["24h"], "RETRY_MAXIMUM_ATTEMPTS": ["1000000"],
    "START_TO_CLOSE_TIMEOUT": ["1ms", "86400"], "RETRY_NON_RETRYABLE": ["InjectedError, X.y-z"],
    "ACTIVITY_MODE": ["naive"], "FAULT_SEED": ["18446744073709551615", "0"],
    "FAULT_KILL_RATE": ["1", "0.3"], "FAULT_KILL_POINTS": ["mid_reply", "before_effect,after_commit"],
    "FAULT_KILL_RATE_MID_REPLY": ["0.5"], "FAULT_ASYNC_KILL_MAX_DELAY": ["0"],
    "FAULT_ACTIVITIES": ["supplier_order"], "FAULT_MAX_ATTEMPT": ["3"],
    "FAULT_VFS": ["target=state,op=write,nth=3", "target=app,op=sync+write,rate=0.5,mode=persistent,error=full,seed=9"],
    "LOG_FORMAT": ["json"], "SYNC": ["normal"],
}

BAD = ["abc", "-1", "99999999999999999999999", "1e5", "0x10", "1.5.5", "nan", "inf", "-0",
       "1.", ".5", "10 s", "5d", "5KB", "1GiB", "2.5", "", "x" * 600, "a/b,c", "a:b:c",
       "123456:-5", "dup:1,dup:2", "127.0.0.2:80", "localhost:0", "localhost:", ":80",
       "target=state", "op=write", "--flag", "with space", "before_effect,,", "\xff\xfe"]


def env_line(key, value):
    return ("%s=%s\n" % (key, value)).encode("utf-8", "surrogateescape")


def config_seeds():
    env_dist = open(os.path.join(ROOT, ".env-dist"), "rb").read()
    write("config", "env-dist", env_dist)
    keys = [l.split(b"=", 1)[0].decode() for l in env_dist.splitlines()
            if l[:1].isalpha() and b"=" in l]
    for k in keys:
        default = [l.split(b"=", 1)[1].decode() for l in env_dist.splitlines()
                   if l.startswith(k.encode() + b"=")][0]
        good = "".join(env_line(k, v).decode("utf-8") for v in [default] + GOOD.get(k, []))
        write("config", "good-" + k, good.encode())
        write("config", "bad-" + k, b"".join(env_line(k, v) for v in BAD))
    write("config", "syntax-quotes", b"WORKERS=\"4\"\nNAMESPACE='a.b'\nDATABASE=\"x \\\" y\\\\\"\n"
          b"SOCKET=\"s.sock\" # comment\nTASKQUEUE='q' trailing\n")
    write("config", "syntax-unterminated", b"WORKERS=\"4\n")
    write("config", "syntax-export", b"export WORKERS=3\nexport\tLOG_LEVEL = debug # c\n")
    write("config", "syntax-bom-crlf", b"\xef\xbb\xbfWORKERS=3\r\n# c\r\n\r\nLOG_LEVEL=warn\r\n")
    write("config", "syntax-comments", b"# only\n   \n\t# indented\nWORKERS= #empty\n"
          b"NAMESPACE=a#b\nTASKQUEUE=a #b\n")
    write("config", "syntax-no-equals", b"WORKERS\n")
    write("config", "syntax-bad-key", b"1WORKERS=2\nWOR-KERS=2\n=2\n")
    write("config", "syntax-typo", b"WORKRES=2\nworkers=2\nRETRY_INITIAL_INTERVALL=1s\n"
          b"X" * 70 + b"=1\n")
    write("config", "syntax-nul", b"WORKERS=2\x003\nLOG_LEVEL=info\n")
    write("config", "cross-kill-rates", b"FAULT_KILL_RATE=1\nFAULT_KILL_RATE_MID_REPLY=0.5\n")
    write("config", "cross-retry-max", b"RETRY_INITIAL_INTERVAL=10s\nRETRY_MAXIMUM_INTERVAL=1s\n")
    write("config", "seed-many", ("SEED_STOCK=" + ",".join("p%d:%d" % (i, i) for i in range(1100))
                                  + "\n").encode())


# ---- api --------------------------------------------------------------------

def req(method, path, body=None, headers=(), version="1.1"):
    lines = ["%s %s HTTP/%s" % (method, path, version), "Host: idem"]
    lines += list(headers)
    if body is not None:
        if isinstance(body, str):
            body = body.encode("utf-8", "surrogateescape")
        lines.append("Content-Length: %d" % len(body))
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")
    return head + (body or b"")


START = {"input": {"order_id": "B7", "product_id": "123456", "quantity": 5}}


def api_seeds():
    s = lambda o: json.dumps(o)
    posts = {
        "start": s(START),
        "start-all-fields": s(dict(START, workflow_id="W1", namespace="default", type="inventory",
                                   task_queue="inventory-task-queue")),
        "start-existing": s({"input": {"order_id": "A12", "product_id": "123456", "quantity": 999}}),
        "start-err": s({"workflow_id": "ERR", "input": START["input"]}),
        "start-type-unknown": s(dict(START, type="billing")),
        "start-queue-other": s(dict(START, task_queue="other")),
        "start-ns-slash": s(dict(START, namespace="a/b")),
        "start-id-space": s(dict(START, workflow_id="a b")),
        "start-id-unicode": s(dict(START, workflow_id="\u00e9t\u00e9")),
        "start-id-long": s(dict(START, workflow_id="w" * 129)),
        "start-no-order-id": s({"input": {"product_id": "1", "quantity": 1}}),
        "start-quantity-zero": s({"input": {"order_id": "X", "product_id": "1", "quantity": 0}}),
        "start-quantity-string": s({"input": {"order_id": "X", "product_id": "1", "quantity": "1"}}),
        "start-product-long": s({"input": {"order_id": "X", "product_id": "p" * 65, "quantity": 1}}),
        "start-reorder-given": s({"input": dict(START["input"], reorder_threshold=5,
                                                reorder_quantity=7)}),
        "start-input-array": s({"input": [1]}),
        "start-input-missing": s({}),
        "start-extra-key": s(dict(START, priority=1)),
        "start-type-int": s(dict(START, type=1)),
        "start-array": "[1,2]",
        "start-bad-json": '{"input": {',
        "start-invalid-utf8": b'{"input":{"order_id":"\xff","product_id":"1","quantity":1}}',
        "start-empty": "",
        "start-too-big": s(dict(START, pad="x" * 1100)),
        "start-deep": "[" * 1500 + "]" * 1500,
        "start-nul": '{"input":{"order_id":"a\\u0000b","product_id":"1","quantity":1}}',
        # Refused at start since issue 14: every input field is checked,
        # duplicate keys are named, the supplier key must fit 255 bytes.
        "start-input-unknown": s({"input": dict(START["input"], colour="red")}),
        "start-reorder-zero": s({"input": dict(START["input"], reorder_quantity=0)}),
        "start-reorder-string": s({"input": dict(START["input"], reorder_threshold="2")}),
        "start-quantity-2p31": s({"input": dict(START["input"], quantity=2 ** 31)}),
        "start-quantity-int64-max": s({"input": dict(START["input"], quantity=2 ** 63 - 1)}),
        "start-key-too-long": s(dict(START, namespace="n" * 127, workflow_id="w" * 128)),
        "start-key-just-fits": s(dict(START, namespace="n" * 127, workflow_id="w" * 125)),
        "start-duplicate-key": '{"input":{"order_id":"X","product_id":"1","quantity":1,"quantity":2}}',
        "start-duplicate-top": '{"workflow_id":"a","workflow_id":"b","input":{}}',
        "start-duplicate-escaped": '{"input":{"we\\"ird\\\\":1, "we\\"ird\\\\" :2}}',
        "start-duplicate-long": '{"input":{"' + "k" * 300 + '":1,"' + "k" * 300 + '":2}}',
    }
    for name, body in posts.items():
        write("api", "post-" + name, req("POST", "/v1/workflows", body))
    gets = {
        "list": "/v1/workflows",
        "list-query": "/v1/workflows?status=running&limit=10&after=5&namespace=default",
        "list-bad-status": "/v1/workflows?status=sleeping",
        "list-bad-limit": "/v1/workflows?limit=0",
        "list-limit-big": "/v1/workflows?limit=1001",
        "list-limit-empty": "/v1/workflows?limit=",
        "list-bad-after": "/v1/workflows?after=-1",
        "list-after-abc": "/v1/workflows?after=abc",
        "bad-query": "/v1/workflows?a=%zz&&=&b",
        "query-utf8": "/v1/workflows?namespace=%FF%FE",
        "workflow": "/v1/workflows/A12",
        "workflow-running": "/v1/workflows/R1",
        "workflow-err": "/v1/workflows/ERR",
        "workflow-unknown": "/v1/workflows/nope",
        "workflow-encoded": "/v1/workflows/%41%31%32",
        "workflow-other-ns": "/v1/workflows/A12?namespace=other",
        "history": "/v1/workflows/A12/history",
        "wait": "/v1/workflows/A12/wait?timeout=1s",
        "wait-running": "/v1/workflows/R1/wait?timeout=250ms",
        "wait-bad-timeout": "/v1/workflows/R1/wait?timeout=soon",
        "wait-over-max": "/v1/workflows/R1/wait?timeout=2h",
        "wait-unknown-leaf": "/v1/workflows/A12/frob",
        "too-many-segments": "/v1/workflows/A12/wait/x/y",
        "long-segment": "/v1/workflows/" + "a" * 400,
        "wait-all": "/v1/wait?timeout=10ms",
        "wait-all-bad": "/v1/wait?timeout=-1",
        "stats": "/v1/stats",
        "check": "/v1/check",
        "health": "/v1/health",
        "metrics": "/metrics",
        "stock": "/v1/stock/123456",
        "stock-unknown": "/v1/stock/999",
        "stock-bad-id": "/v1/stock/a%20b",
        "stock-unicode": "/v1/stock/%C3%A9",
        "root": "/",
        "v1": "/v1",
        "unknown": "/v1/nope",
        "no-v1": "/nope/x",
        "double-slash": "//v1//workflows//A12//",
        "absolute-uri": "http://idem/v1/health",
    }
    for name, path in gets.items():
        write("api", "get-" + name, req("GET", path))
    write("api", "get-encoded-utf8-path", req("GET", "/v1/%C3%A9/x"))
    # The known bug (fuzz_api.c, FUZZ_API_KNOWN_EMPTY_ERROR): text that is
    # not UTF-8 in what api.c repeats in an error turns the reply into {}.
    write("api", "utf8-raw-bytes-path", b"GET /v1/\xc3\xa9/\xff HTTP/1.1\r\nHost: idem\r\n\r\n")
    write("api", "utf8-workflow-id", req("GET", "/v1/workflows/%FF%00x"))
    write("api", "utf8-stock-id", req("GET", "/v1/stock/%FF"))
    write("api", "utf8-status", req("GET", "/v1/workflows?status=%FF"))
    write("api", "utf8-namespace", req("GET", "/v1/workflows/A12?namespace=%C3"))
    write("api", "utf8-cut-message", req("GET", "/v1/workflows?status=a" + "%C3%A9" * 520))
    write("api", "put-stock", req("PUT", "/v1/stock/123456", '{"stock": 5, "reason": "recount"}'))
    write("api", "put-stock-new", req("PUT", "/v1/stock/NEW1", '{"stock": 0}'))
    write("api", "put-stock-negative", req("PUT", "/v1/stock/123456", '{"stock": -1}'))
    write("api", "put-stock-missing", req("PUT", "/v1/stock/123456", '{"reason": "x"}'))
    write("api", "put-stock-extra", req("PUT", "/v1/stock/123456", '{"stock": 1, "x": 2}'))
    write("api", "put-stock-real", req("PUT", "/v1/stock/123456", '{"stock": 1.5}'))
    write("api", "put-stock-huge", req("PUT", "/v1/stock/123456", '{"stock": 1e30}'))
    write("api", "put-stock-empty", req("PUT", "/v1/stock/123456", ""))
    write("api", "post-stock", req("POST", "/v1/stock/123456", '{"stock": 5}'))
    write("api", "put-workflows", req("PUT", "/v1/workflows", s(START)))
    write("api", "post-health", req("POST", "/v1/health", "{}"))
    write("api", "delete", req("DELETE", "/v1/workflows/A12"))
    write("api", "head", req("HEAD", "/v1/health"))
    write("api", "options", req("OPTIONS", "*"))
    write("api", "bogus-method", req("FROB", "/v1/health"))
    # 405 with Allow on every endpoint; a body evhttp does not read (HEAD,
    # TRACE, an unknown method) must not be taken for the next request.
    write("api", "post-stats", req("POST", "/v1/stats", "{}"))
    write("api", "patch-workflow", req("PATCH", "/v1/workflows/A12", "{}"))
    write("api", "trace-with-body", req("TRACE", "/v1/health", "GET /v1/stats HTTP/1.1\r\n\r\n"))
    write("api", "bogus-method-with-body", req("FROB", "/v1/stats", "GET /v1/stats HTTP/1.1\r\n\r\n"))
    write("api", "connect", b"CONNECT idem:80 HTTP/1.1\r\nHost: idem\r\n\r\n" + req("GET", "/v1/health"))
    write("api", "put-stock-duplicate", req("PUT", "/v1/stock/123456", '{"stock": 1, "stock": 2}'))
    write("api", "http10", req("GET", "/v1/health", version="1.0"))
    write("api", "http09", b"GET /v1/health\r\n\r\n")
    # Found by fuzz_api: an HTTP/0.x reply has no Content-Length, and a
    # second reply follows it on the same connection.
    write("api", "http09-keep-alive-unframed",
          b"GET /v1/workflows?mt=I5&after=&c=d HTTP/0.1\nConnection: keep-alive\r\n\n\r\n")
    # A long-poll, a byte ahead, then a half-close: api.c's hang-up watch
    # stops at the byte, so the EOF is seen only when the poll times out.
    write("api", "longpoll-bytes-ahead-hangup", req("GET", "/v1/wait") + b"G")
    # Start and wait: the reply waits for the workflow to close.
    write("api", "start-wait", req("POST", "/v1/workflows?wait=1ms", s(START)))
    write("api", "start-wait-existing", req("POST", "/v1/workflows?wait=5s",
                                            s({"input": dict(START["input"], order_id="A12")})))
    write("api", "start-wait-bad", req("POST", "/v1/workflows?wait=forever", s(START)))
    write("api", "start-wait-pipeline", req("POST", "/v1/workflows?wait=30", s(START))
          + req("GET", "/v1/health"))
    write("api", "http2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    write("api", "keep-alive-pipeline", req("GET", "/v1/health") + req("GET", "/v1/stats")
          + req("POST", "/v1/workflows", s(START)) + req("GET", "/v1/workflows/R1/wait?timeout=1ms"))
    write("api", "pipeline-waits", req("GET", "/v1/wait") + req("GET", "/v1/workflows/R1/wait")
          + req("POST", "/v1/workflows", s(START)))
    write("api", "close-then-more", req("GET", "/v1/health", headers=["Connection: close"])
          + req("GET", "/v1/stats"))
    body = s(START).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    write("api", "post-chunked", b"POST /v1/workflows HTTP/1.1\r\nHost: idem\r\n"
          b"Transfer-Encoding: chunked\r\n\r\n" + chunked)
    write("api", "post-chunked-bad", b"POST /v1/workflows HTTP/1.1\r\nHost: idem\r\n"
          b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n")
    write("api", "post-expect-continue", req("POST", "/v1/workflows", s(START),
                                             headers=["Expect: 100-continue"]))
    write("api", "post-length-short", b"POST /v1/workflows HTTP/1.1\r\nContent-Length: 50\r\n\r\n{}")
    write("api", "post-length-huge", b"POST /v1/workflows HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n{}")
    write("api", "post-length-negative", b"POST /v1/workflows HTTP/1.1\r\nContent-Length: -5\r\n\r\n{}")
    write("api", "no-host", b"GET /v1/health HTTP/1.1\r\n\r\n")
    write("api", "bad-header", b"GET /v1/health HTTP/1.1\r\nNoColon\r\n\r\n")
    write("api", "folded-header", b"GET /v1/health HTTP/1.1\r\nX: a\r\n b\r\n\r\n")
    write("api", "lf-only", b"GET /v1/health HTTP/1.1\nHost: idem\n\n")
    write("api", "partial-request-line", b"GET /v1/hea")
    write("api", "garbage", b"\x00\x01\x02\xff\r\n\r\n")
    # The live fault plan (faultctl.c) and the TCP login, which the Unix
    # socket refuses.
    write("api", "faults-get", req("GET", "/v1/faults"))
    write("api", "faults-set", req("PUT", "/v1/faults", s({"kill_rate": 0.2, "for": "5m"})))
    write("api", "faults-off-1ms", req("PUT", "/v1/faults", s({"off": True, "for": "1ms"}))
          + req("GET", "/v1/faults"))
    write("api", "faults-reset", req("PUT", "/v1/faults", s({"reset": True})))
    write("api", "faults-bad", req("PUT", "/v1/faults", s({"kill_rate": "x", "seed": 1})))
    write("api", "faults-rates-over-1", req("PUT", "/v1/faults",
                                            s({"kill_rate": 0.9, "kill_rate_mid_reply": 0.9})))
    write("api", "faults-array", req("PUT", "/v1/faults", "[1]"))
    write("api", "login-unix", req("POST", "/v1/login", s({"token": "0123456789abcdef"})))
    write("api", "logout", req("POST", "/v1/logout", "{}"))
    write("api", "empty", b"")


if __name__ == "__main__":
    frame_seeds()
    msg_seeds()
    config_seeds()
    api_seeds()
