# setup.py — creates the payments app's database $IDEM_DATA_DIR/payments.db and its customers; safe to run again.
import os
import sys

from common import PAYMENTS_SCHEMA, SEED_CUSTOMERS, data_dir, payments_db


def main():
    os.makedirs(data_dir(), exist_ok=True)
    db = payments_db()
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("BEGIN IMMEDIATE")
    for stmt in PAYMENTS_SCHEMA.split(";"):
        if stmt.strip():
            db.execute(stmt)
    for name, balance in SEED_CUSTOMERS.items():
        # INSERT OR IGNORE: a second run keeps the balances the payments left
        db.execute("INSERT OR IGNORE INTO customers (name, balance, initial) VALUES (?, ?, ?)",
                   (name, balance, balance))
    db.execute("COMMIT")
    n = db.execute("SELECT count(*) FROM customers").fetchone()[0]
    print(f"payments: {os.path.join(data_dir(), 'payments.db')} ready, {n} customers", file=sys.stderr)


if __name__ == "__main__":
    main()
