# checks.py — what the Python tests share: each check printed as "ok" or
# "FAIL" with what it saw, and the failures kept for the exit code.
failures = []


def check(what, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {what}{'' if ok else ': ' + str(detail)}")
    if not ok:
        failures.append(what)
    return ok
