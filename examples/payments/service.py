# service.py — the fake payment service (the app's helper): HTTP/1.1 on $IDEM_DATA_DIR/service.sock, a SQLite ledger that de-duplicates charges by Idempotency-Key.
"""The convention of payment APIs, on a Unix socket:

  POST /charges  {"customer": S, "amount": N, "payment_id": S}
      Idempotency-Key: K (optional, 1..255 printable bytes)
      201 {"charge_id": "ch_1", "customer", "amount", "payment_id", "replayed": false}
      200 the same charge with "replayed": true when K was seen with the same body
      422 when K was seen with another body; 400 on a bad key or body
      Without Idempotency-Key every request is a new charge (the naive client).
    Idem-Fault: F (optional; the activity forwards IDEM_PEER_FAULT):
      unavailable      503, nothing recorded
      record_then_die  record the charge (or find its replay), commit, then
                       exit 5 without answering: "did my charge go through?"
  GET /charges   200 {"charges": [...]}
  GET /health    200 {"ok": true}

The ledger is $IDEM_DATA_DIR/service.db (WAL, synchronous=FULL): each
charge is one transaction, durable before the answer. The socket appears
only once the service listens (bound under another name, then renamed).
SIGTERM, SIGINT or the death of its parent stop it (exit 0).
"""
import json
import os
import signal
import socketserver
import sqlite3
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler

from common import SOCKET_NAME, data_dir, open_db

EXIT_FAULT = 5  # died on purpose (a planned fault): idem respawns it at once
LEDGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (
  id INTEGER PRIMARY KEY,
  idempotency_key TEXT UNIQUE,
  payment_id TEXT NOT NULL,
  customer TEXT NOT NULL,
  amount INTEGER NOT NULL,
  created_at REAL NOT NULL)
"""

_local = threading.local()


def log(msg):
    print(f"payment-service[{os.getpid()}]: {msg}", file=sys.stderr, flush=True)


def ledger():
    """This thread's connection to the ledger."""
    if getattr(_local, "db", None) is None:
        _local.db = open_db(os.path.join(data_dir(), "service.db"))
    return _local.db


def charge_json(row, replayed):
    cid, _key, payment_id, customer, amount = row
    return {"charge_id": f"ch_{cid}", "customer": customer, "amount": amount,
            "payment_id": payment_id, "replayed": replayed}


def record(key, payment_id, customer, amount):
    """Finds the charge of key, or records a new one; returns (row, found)."""
    db = ledger()
    db.execute("BEGIN IMMEDIATE")  # the write lock: look-up and insert are one step
    try:
        row = None
        if key is not None:
            row = db.execute("SELECT id, idempotency_key, payment_id, customer, amount FROM charges"
                             " WHERE idempotency_key = ?", (key,)).fetchone()
        found = row is not None
        if not found:
            cur = db.execute("INSERT INTO charges (idempotency_key, payment_id, customer, amount,"
                             " created_at) VALUES (?, ?, ?, ?, ?)",
                             (key, payment_id, customer, amount, time.time()))
            row = (cur.lastrowid, key, payment_id, customer, amount)
        db.execute("COMMIT")
        return row, found
    except BaseException:
        db.execute("ROLLBACK")
        raise


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "payment-service/1"

    def address_string(self):  # a Unix socket has no client address
        return "unix"

    def log_message(self, fmt, *args):  # one line per charge instead (log())
        pass

    def reply(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/health":
            self.reply(200, {"ok": True})
        elif self.path == "/charges":
            rows = ledger().execute("SELECT id, idempotency_key, payment_id, customer, amount"
                                    " FROM charges ORDER BY id").fetchall()
            self.reply(200, {"charges": [dict(charge_json(r, False), idempotency_key=r[1])
                                         for r in rows]})
        else:
            self.reply(404, {"error": f"no resource {self.path}"})

    def do_POST(self):
        if self.path != "/charges":
            self.reply(404, {"error": f"no resource {self.path}"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= 65536:
            self.close_connection = True  # the body stays unread
        raw = self.rfile.read(length) if 0 < length <= 65536 else b""
        key = self.headers.get("Idempotency-Key")
        fault = self.headers.get("Idem-Fault")
        if key is not None and not (1 <= len(key) <= 255 and key.isprintable()):
            self.reply(400, {"error": "Idempotency-Key: 1..255 printable characters"})
            return
        if fault not in (None, "unavailable", "record_then_die"):
            self.reply(400, {"error": f"Idem-Fault {fault!r}: allowed unavailable, record_then_die"})
            return
        try:
            body = json.loads(raw)
            customer, amount, payment_id = body["customer"], body["amount"], body["payment_id"]
            if not (isinstance(customer, str) and isinstance(payment_id, str)
                    and isinstance(amount, int) and not isinstance(amount, bool) and amount > 0):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            self.reply(400, {"error": 'the body is {"customer": S, "amount": N > 0, "payment_id": S}'})
            return
        if fault == "unavailable":
            log(f"injected fault: unavailable key={key}")
            self.reply(503, {"error": "payment service unavailable (injected fault); retry later"})
            return
        try:
            row, found = record(key, payment_id, customer, amount)
        except sqlite3.Error as e:
            log(f"ledger write failed: {e}")
            self.reply(503, {"error": f"ledger: {e}; try again"})
            return
        if fault == "record_then_die":
            log(f"injected fault: recorded ch_{row[0]} key={key}, dying before the answer")
            os._exit(EXIT_FAULT)
        if not found:
            log(f"charge recorded ch_{row[0]} key={key} payment_id={payment_id} amount={amount}")
            self.reply(201, charge_json(row, False))
        elif (row[2], row[3], row[4]) == (payment_id, customer, amount):
            self.reply(200, charge_json(row, True))
        else:
            self.reply(422, {"error": f"Idempotency-Key {key!r} was used with another request"
                                      f" (ch_{row[0]}: {row[3]} {row[4]} for {row[2]})"})


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def watch_parent(parent):
    """Stops the service when the process that started it (the supervisor) dies."""
    while os.getppid() == parent:
        time.sleep(0.5)
    log("parent gone, stopping")
    os._exit(0)


def main():
    d = data_dir()
    os.makedirs(d, exist_ok=True)
    db = ledger()
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(LEDGER_SCHEMA)
    os.chdir(d)  # relative socket names: a long data directory fits sun_path
    tmp = f"{SOCKET_NAME}.{os.getpid()}"
    if os.path.exists(tmp):
        os.unlink(tmp)
    server = Server(tmp, Handler)
    os.replace(tmp, SOCKET_NAME)  # appears only now that it listens
    inode = os.stat(SOCKET_NAME).st_ino

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=watch_parent, args=(os.getppid(),), daemon=True).start()
    log(f"listening on {os.path.join(d, SOCKET_NAME)}")
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        try:
            if os.stat(SOCKET_NAME).st_ino == inode:  # ours, not a successor's
                os.unlink(SOCKET_NAME)
        except FileNotFoundError:
            pass


if __name__ == "__main__":
    main()
