# common.py — what the payments app's scripts share: its paths, its database's schema, the client of the payment service.
import http.client
import json
import os
import socket
import sqlite3
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# the SDK: on PYTHONPATH, or in this repository's sdk/python
sys.path.append(os.path.join(HERE, "..", "..", "sdk", "python"))

OPENING_BALANCE = 1000  # a customer the ledger does not know opens with this on a first payment
SEED_CUSTOMERS = {"alice": 1000, "bob": 1000, "carol": 1000, "dave": 1000}
MAX_AMOUNT = 1_000_000
SOCKET_NAME = "service.sock"

# payments.db: the merchant's side. customers.initial is what the balance
# started at; a payment is 'reserved' (balance debited, not yet charged at
# the service) then 'charged'. idempotency_key is NULL in the naive variant.
PAYMENTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
  name TEXT PRIMARY KEY,
  balance INTEGER NOT NULL CHECK (balance >= 0),
  initial INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS payments (
  id INTEGER PRIMARY KEY,
  payment_id TEXT NOT NULL,
  namespace TEXT,
  idempotency_key TEXT,
  customer TEXT NOT NULL REFERENCES customers(name),
  amount INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('reserved', 'charged')),
  charge_id TEXT,
  balance_after INTEGER NOT NULL,
  created_at REAL NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS payments_key ON payments(idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS payments_payment_id ON payments(payment_id);
CREATE TABLE IF NOT EXISTS receipts (
  id INTEGER PRIMARY KEY,
  payment_id TEXT NOT NULL,
  idempotency_key TEXT,
  charge_id TEXT NOT NULL,
  customer TEXT NOT NULL,
  amount INTEGER NOT NULL,
  body TEXT NOT NULL,
  created_at REAL NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS receipts_key ON receipts(idempotency_key)
  WHERE idempotency_key IS NOT NULL;
"""


import idem  # noqa: E402  (the SDK, found through the line above)


class ServiceUnavailable(idem.Retryable):
    """The payment service did not answer, or answered 503: retry."""

    def __init__(self, message):
        super().__init__("ServiceUnavailable", message)


def data_dir():
    d = os.environ.get("IDEM_DATA_DIR")
    if not d:
        sys.exit("IDEM_DATA_DIR is not set: the directory of this run's databases")
    return os.path.abspath(d)


def open_db(path, readonly=False):
    """A connection in autocommit mode (transactions are explicit BEGIN
    IMMEDIATE ... COMMIT), waiting up to 10 s for another writer."""
    if readonly:
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} does not exist")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=10)
    else:
        conn = sqlite3.connect(path, isolation_level=None, timeout=10)
        conn.execute("PRAGMA synchronous=FULL")  # a commit survives a power loss
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def payments_db(readonly=False):
    return open_db(os.path.join(data_dir(), "payments.db"), readonly)


def connect_unix(path, timeout):
    """A stream socket connected to the Unix socket path, even one longer
    than sun_path's 108 bytes (through /proc/self/fd)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        if len(os.fsencode(path)) < 100:
            s.connect(path)
        else:
            dfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
            try:
                s.connect(f"/proc/self/fd/{dfd}/{os.path.basename(path)}")
            finally:
                os.close(dfd)
    except BaseException:
        s.close()
        raise
    return s


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("payment-service", timeout=timeout)
        self._unix_path = path

    def connect(self):
        self.sock = connect_unix(self._unix_path, self.timeout)


def service_request(method, path, body=None, headers=None, timeout=5.0):
    """One HTTP/1.1 request to the payment service ($IDEM_DATA_DIR/service.sock).
    Returns (status, parsed JSON body). Raises ServiceUnavailable when the
    service cannot be reached or dies before answering."""
    conn = _UnixHTTPConnection(os.path.join(data_dir(), SOCKET_NAME), timeout)
    try:
        payload = None if body is None else json.dumps(body).encode()
        hdrs = {"Content-Type": "application/json"} if payload is not None else {}
        hdrs.update(headers or {})
        conn.request(method, path, body=payload, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        try:
            doc = json.loads(data) if data else {}
        except ValueError:
            doc = {"error": data.decode(errors="replace")}
        return resp.status, doc
    except (OSError, http.client.HTTPException) as e:
        raise ServiceUnavailable(f"payment service: {e.__class__.__name__}: {e}") from None
    finally:
        conn.close()
