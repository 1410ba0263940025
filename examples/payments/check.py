# check.py — the payments app's invariants: every completed payment charged and recorded once, no charge for a failed one, money conserved; exit 0 holds, 1 violated, 2 could not check.
"""Reads, read-only: IDEM_STATE_DB (idem's workflows and steps), and in
IDEM_DATA_DIR payments.db (balances, payments, receipts) and service.db
(the payment service's charges). Prints one line per violation, starting
with its kind, then a summary line starting with "payments:".

  duplicated          a payment charged, recorded or receipted more than once
  lost                a completed payment without its one charge, its record or its receipt
  charged_but_failed  a failed payment (its charge step not completed) with a charge or a record
  failed_with_effects a failed payment (its send_receipt step not completed) with a receipt
  unexpected          a charge, record or receipt of no payment workflow
  not_conserved       a customer's balance ≠ initial − what the service charged (or what payments.db recorded)
"""
import json
import os
import sqlite3
import sys
from collections import defaultdict

from common import data_dir, open_db

def count(n, noun):
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


KINDS = ["duplicated", "lost", "charged_but_failed", "failed_with_effects", "unexpected", "not_conserved"]


def load():
    state_path = os.environ.get("IDEM_STATE_DB")
    if not state_path:
        raise RuntimeError("IDEM_STATE_DB is not set: idem's state database")
    state = open_db(state_path, readonly=True)
    app = open_db(os.path.join(data_dir(), "payments.db"), readonly=True)
    service = open_db(os.path.join(data_dir(), "service.db"), readonly=True)

    workflows = {}  # payment_id -> dict
    for wid, ns, wf_id, status, inp, result, error in state.execute(
            "SELECT id, namespace, workflow_id, status, input, result, error FROM workflows"
            " WHERE type = 'payment' ORDER BY id"):
        try:
            inp = json.loads(inp) if inp else {}
        except ValueError:
            inp = {}
        try:
            result = json.loads(result) if result else {}
        except ValueError:
            result = {}
        pid = inp.get("payment_id") if isinstance(inp.get("payment_id"), str) else wf_id
        workflows[pid] = {"id": wid, "name": f"{ns}/{wf_id}", "status": status, "error": error or "",
                          "result": result if isinstance(result, dict) else {}, "completed": set()}
    by_row = {w["id"]: w for w in workflows.values()}
    for wid, activity, status in state.execute("SELECT wf, activity, status FROM steps"):
        if wid in by_row and status == "completed":
            by_row[wid]["completed"].add(activity)

    charges, payments, receipts = defaultdict(list), defaultdict(list), defaultdict(list)
    for cid, pid, customer, amount in service.execute(
            "SELECT id, payment_id, customer, amount FROM charges ORDER BY id"):
        charges[pid].append((f"ch_{cid}", customer, amount))
    for rid, pid, customer, amount, status, charge_id in app.execute(
            "SELECT id, payment_id, customer, amount, status, charge_id FROM payments ORDER BY id"):
        payments[pid].append((rid, customer, amount, status, charge_id))
    for rid, pid in app.execute("SELECT id, payment_id FROM receipts ORDER BY id"):
        receipts[pid].append(f"rc_{rid}")
    customers = app.execute("SELECT name, initial, balance FROM customers ORDER BY name").fetchall()
    return workflows, charges, payments, receipts, customers


def check(workflows, charges, payments, receipts, customers):
    out = []  # (kind, text)

    def add(kind, subject, problems):
        if problems:
            out.append((kind, f"{kind} {subject}: " + "; ".join(problems)))

    def ids(rows):
        return ", ".join(str(r[0]) if isinstance(r, tuple) else r for r in rows)

    for pid, w in workflows.items():
        ch, pay, rc = charges.get(pid, []), payments.get(pid, []), receipts.get(pid, [])
        dup = []
        if len(ch) > 1:
            dup.append(f"{len(ch)} charges at the payment service ({ids(ch)})")
        if len(pay) > 1:
            dup.append(f"{len(pay)} payments in payments.db (rows {ids(pay)})")
        if len(rc) > 1:
            dup.append(f"{len(rc)} receipts ({ids(rc)})")
        add("duplicated", pid, dup)
        if w["status"] == "completed":
            lost = []
            if not ch:
                lost.append("completed, but no charge at the payment service")
            if not pay:
                lost.append("completed, but no payment in payments.db")
            elif not any(p[3] == "charged" for p in pay):
                lost.append("completed, but its payment in payments.db was never marked charged")
            if not rc:
                lost.append("completed, but no receipt")
            cid = w["result"].get("charge_id")
            if ch and isinstance(cid, str) and cid not in [c[0] for c in ch]:
                lost.append(f"the workflow's charge {cid} is not at the payment service ({ids(ch)})")
            add("lost", pid, lost)
        elif w["status"] == "failed":
            why = w["error"][:100]
            if "charge" not in w["completed"] and (ch or pay):
                add("charged_but_failed", pid, [
                    f"failed ({why}), yet {count(len(ch), 'charge')} at the payment service"
                    f" ({ids(ch) or '-'}) and {count(len(pay), 'payment')} in payments.db"])
            if "send_receipt" not in w["completed"] and rc:
                add("failed_with_effects", pid, [f"failed ({why}), yet {count(len(rc), 'receipt')} ({ids(rc)})"])
    for pid in sorted(set(charges) | set(payments) | set(receipts)):
        if pid not in workflows:
            add("unexpected", pid, [f"{count(len(charges.get(pid, [])), 'charge')},"
                                    f" {count(len(payments.get(pid, [])), 'payment')},"
                                    f" {count(len(receipts.get(pid, [])), 'receipt')} of no payment workflow"])

    running = sum(1 for w in workflows.values() if w["status"] == "running")
    if running == 0:  # a running payment may be reserved and not charged yet
        charged, recorded = defaultdict(int), defaultdict(int)
        for rows in charges.values():
            for _cid, customer, amount in rows:
                charged[customer] += amount
        for rows in payments.values():
            for _rid, customer, amount, _status, _cid in rows:
                recorded[customer] += amount
        for name, initial, balance in customers:
            taken = initial - balance
            problems = []
            if charged[name] != taken:
                problems.append(f"the payment service charged {charged[name]} (difference {taken - charged[name]})")
            if recorded[name] != taken:
                problems.append(f"payments.db recorded {recorded[name]} (difference {taken - recorded[name]})")
            if problems:
                add("not_conserved", name, [f"started with {initial}, has {balance}: {taken} taken, but "
                                            + " and ".join(problems)])
    return out, running


def main():
    try:
        data = load()
    except (RuntimeError, OSError, sqlite3.Error) as e:
        print(f"payments: cannot check: {e}", file=sys.stderr)
        return 2
    workflows, charges, payments, receipts, customers = data
    violations, running = check(*data)
    for _kind, line in violations:
        print(line)
    statuses = defaultdict(int)
    for w in workflows.values():
        statuses[w["status"]] += 1
    counts = {k: sum(1 for kind, _ in violations if kind == k) for k in KINDS}
    totals = (f"{len(workflows)} payments ({statuses['completed']} completed, {statuses['failed']} failed,"
              f" {running} running), {sum(map(len, charges.values()))} charges,"
              f" {sum(map(len, payments.values()))} recorded, {sum(map(len, receipts.values()))} receipts")
    note = f"; {running} still running: not final, check again once none runs" if running else ""
    if violations:
        kinds = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
        print(f"payments: FAILED — {len(violations)} violations: {kinds}; {totals}{note}")
        return 1
    print(f"payments: OK — {totals}; 0 duplicated, 0 lost, 0 charged_but_failed, 0 not_conserved{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
