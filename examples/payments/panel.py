# panel.py — the payments app's panels on idem's dashboard: prints one JSON document.
#   python3 panel.py customers   every customer's balance, what it started at, and its payments
#   python3 panel.py payments    the last 20 payments, newest first
import json
import sys

from common import payments_db


def main():
    db = payments_db(readonly=True)
    if sys.argv[1:] == ["customers"]:
        rows = db.execute(
            "SELECT c.name, c.balance, c.initial, count(p.id), coalesce(sum(p.amount), 0) "
            "FROM customers c LEFT JOIN payments p ON p.customer = c.name "
            "GROUP BY c.name ORDER BY c.name").fetchall()
        doc = [{"customer": r[0], "balance": r[1], "initial": r[2], "payments": r[3],
                "paid": r[4]} for r in rows]
    elif sys.argv[1:] == ["payments"]:
        rows = db.execute(
            "SELECT payment_id, customer, amount, status, charge_id, balance_after "
            "FROM payments ORDER BY id DESC LIMIT 20").fetchall()
        doc = [{"payment_id": r[0], "customer": r[1], "amount": r[2], "status": r[3],
                "charge_id": r[4], "balance_after": r[5]} for r in rows]
    else:
        print("usage: panel.py customers|payments", file=sys.stderr)
        return 2
    json.dump(doc, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
