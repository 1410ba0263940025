# charge.py — the payments app's activity `charge`: reserve the amount, charge it at the payment service, record the charge; --naive without the guards.
"""Guarded (the default), each part safe to run again:

  1. reserve: in ONE transaction of payments.db, find the payment by the
     idempotency key (charged: return its result, nothing applied), else
     check the balance (too low: InsufficientFunds, nothing applied), debit
     it and insert the payment as 'reserved';
  2. charge:  POST /charges with Idempotency-Key = the step's key: a retry
     gets the same charge back (or the previous attempt's heartbeat has it);
  3. capture: mark the payment 'charged' with its charge id.

Reserving before charging is what makes a refusal safe: once the service
may have charged, the money is already set aside, so no retry can find the
balance too low and fail a workflow whose customer was charged.

--naive (the control experiment): no look-up by key, no Idempotency-Key:
every attempt debits, charges and records again.

Crash points: before_charge (reserved, not charged), after_charge (charged
at the service, not recorded), after_commit (recorded, result not sent).
"""
import sys

# common first: it puts sdk/python on sys.path
from common import MAX_AMOUNT, OPENING_BALANCE, ServiceUnavailable, payments_db, service_request
import idem  # the SDK: sdk/python/idem.py


class ChargeRejected(Exception):
    """The service refused the charge. A plain exception (exit 75) that
    idem.json's "non_retryable" makes final: the list at work."""


def check_input(inp):
    customer, amount, payment_id = inp.get("customer"), inp.get("amount"), inp.get("payment_id")
    if not isinstance(customer, str) or not 1 <= len(customer) <= 128:
        raise idem.NonRetryable("InvalidInput", "customer: a string of 1..128 characters")
    if not isinstance(payment_id, str) or not 1 <= len(payment_id) <= 128:
        raise idem.NonRetryable("InvalidInput", "payment_id: a string of 1..128 characters")
    if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= MAX_AMOUNT:
        raise idem.NonRetryable("InvalidInput", f"amount: an integer in 1..{MAX_AMOUNT}, not {amount!r}")
    return customer, amount, payment_id


def reserve(db, key, customer, amount, payment_id):
    """Returns (payment row id, balance after, charge_id or None). key None: naive."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if key is not None:
            row = db.execute("SELECT id, balance_after, charge_id, payment_id, amount FROM payments"
                             " WHERE idempotency_key = ?", (key,)).fetchone()
            if row is not None:
                db.execute("COMMIT")
                if (row[3], row[4]) != (payment_id, amount):
                    raise idem.NonRetryable("IdempotencyKeyReused",
                                            f"{key} is payment {row[3]} of {row[4]}")
                return row[0], row[1], row[2]
        db.execute("INSERT OR IGNORE INTO customers (name, balance, initial) VALUES (?, ?, ?)",
                   (customer, OPENING_BALANCE, OPENING_BALANCE))
        (balance,) = db.execute("SELECT balance FROM customers WHERE name = ?", (customer,)).fetchone()
        if balance < amount:
            db.execute("ROLLBACK")
            raise idem.NonRetryable("InsufficientFunds",
                                    f"{customer} has {balance}, the payment is {amount}")
        db.execute("UPDATE customers SET balance = balance - ? WHERE name = ?", (amount, customer))
        cur = db.execute("INSERT INTO payments (payment_id, namespace, idempotency_key, customer,"
                         " amount, status, balance_after, created_at)"
                         " VALUES (?, ?, ?, ?, ?, 'reserved', ?, julianday('now'))",
                         (payment_id, idem.namespace(), key, customer, amount, balance - amount))
        db.execute("COMMIT")
        return cur.lastrowid, balance - amount, None
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def charge_at_service(key, customer, amount, payment_id):
    headers = {}
    if key is not None:
        headers["Idempotency-Key"] = key
    if idem.peer_fault():
        headers["Idem-Fault"] = idem.peer_fault()  # the service acts the planned fault out
    status, doc = service_request("POST", "/charges",
                                  {"customer": customer, "amount": amount, "payment_id": payment_id},
                                  headers)
    if status in (200, 201):
        return doc["charge_id"]
    if status == 503:
        raise ServiceUnavailable(doc.get("error", "503"))
    raise ChargeRejected(f"payment service answered {status}: {doc.get('error')}")


def charge(inp):
    customer, amount, payment_id = check_input(inp)
    naive = "--naive" in sys.argv[1:] or idem.naive()
    key = None if naive else idem.idempotency_key()
    if not naive and not key:
        raise idem.NonRetryable("NoIdempotencyKey", "IDEM_IDEMPOTENCY_KEY is not set (run me under idem)")
    db = payments_db()
    row_id, balance, charge_id = reserve(db, key, customer, amount, payment_id)
    if charge_id is not None:
        print(f"charge: {payment_id} already charged ({charge_id}): nothing applied", file=sys.stderr)
        return {"charge_id": charge_id, "amount": amount, "balance": balance}

    idem.point("before_charge")
    hb = None if naive else idem.previous_heartbeat()
    if isinstance(hb, dict) and isinstance(hb.get("charge_id"), str):
        charge_id = hb["charge_id"]  # charged by the previous attempt: no need to ask again
        print(f"charge: {charge_id} from the previous attempt's heartbeat", file=sys.stderr)
    else:
        charge_id = charge_at_service(key, customer, amount, payment_id)
        idem.heartbeat({"charge_id": charge_id})
    idem.point("after_charge")

    db.execute("BEGIN IMMEDIATE")
    db.execute("UPDATE payments SET status = 'charged', charge_id = ? WHERE id = ?", (charge_id, row_id))
    db.execute("COMMIT")
    idem.point("after_commit")
    return {"charge_id": charge_id, "amount": amount, "balance": balance}


if __name__ == "__main__":
    idem.run(charge)
