# receipt.py — the payments app's activity `send_receipt`: puts one receipt per payment in the outbox (payments.db); --naive without the guard.
"""Guarded: in ONE transaction, find the receipt by the idempotency key
(there: return it, nothing applied), else insert it. --naive inserts
without looking, so an attempt killed after its commit sends a second one.

Crash points: before_send (nothing written), after_send (written, not
committed: a kill rolls it back), after_commit (committed, result not sent).
"""
import sys

# common first: it puts sdk/python on sys.path
from common import payments_db
import idem  # the SDK: sdk/python/idem.py


def send_receipt(inp):
    payment_id, charge_id = inp.get("payment_id"), inp.get("charge_id")
    customer, amount = inp.get("customer"), inp.get("amount")
    if not all(isinstance(v, str) and v for v in (payment_id, charge_id, customer)) \
            or isinstance(amount, bool) or not isinstance(amount, int):
        raise idem.NonRetryable("InvalidInput", "payment_id, charge_id, customer: strings; amount: an integer")
    naive = "--naive" in sys.argv[1:] or idem.naive()
    key = None if naive else idem.idempotency_key()
    if not naive and not key:
        raise idem.NonRetryable("NoIdempotencyKey", "IDEM_IDEMPOTENCY_KEY is not set (run me under idem)")
    db = payments_db()
    idem.point("before_send")
    db.execute("BEGIN IMMEDIATE")
    try:
        if key is not None:
            row = db.execute("SELECT id FROM receipts WHERE idempotency_key = ?", (key,)).fetchone()
            if row is not None:
                db.execute("COMMIT")
                print(f"send_receipt: rc_{row[0]} already sent: nothing applied", file=sys.stderr)
                return {"receipt_id": f"rc_{row[0]}"}
        body = f"Dear {customer}, we charged {amount} for payment {payment_id} ({charge_id})."
        cur = db.execute("INSERT INTO receipts (payment_id, idempotency_key, charge_id, customer,"
                         " amount, body, created_at) VALUES (?, ?, ?, ?, ?, ?, julianday('now'))",
                         (payment_id, key, charge_id, customer, amount, body))
        idem.point("after_send")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    idem.point("after_commit")
    return {"receipt_id": f"rc_{cur.lastrowid}"}


if __name__ == "__main__":
    idem.run(send_receipt)
