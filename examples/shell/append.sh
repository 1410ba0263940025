#!/bin/sh
# append.sh — the shell app's activity: appends "KEY AMOUNT" to $IDEM_DATA_DIR/ledger.txt once per idempotency key (under flock); --naive appends without looking.
#
# Input on stdin: {"amount": N} (other fields are ignored). Result on stdout:
# {"key": KEY, "amount": N, "replayed": true|false}. Crash points:
# before_append (the key is not in the ledger, nothing written) and
# after_append (the line is written, the result not sent). idem's keys
# ("namespace/workflow_id/step") hold no space, quote or backslash, so a
# key is one word of the ledger and needs no escaping in JSON.
set -u

fail() { # TYPE MESSAGE EXIT_CODE (75: retried, 65: failed for good)
	printf '{"error":{"type":"%s","message":"%s"}}\n' "$1" "$2"
	exit "$3"
}

naive=0
if [ "${1:-}" = --naive ] || [ "${IDEM_NAIVE:-}" = 1 ]; then
	naive=1
fi
[ -n "${IDEM_DATA_DIR:-}" ] || fail NoDataDir "IDEM_DATA_DIR is not set" 65
key=${IDEM_IDEMPOTENCY_KEY:-}
case $key in
'' | *[[:space:]\"\\]*) fail NoIdempotencyKey "IDEM_IDEMPOTENCY_KEY is unset or not one word" 65 ;;
esac
input=$(cat) || fail IOError "cannot read the input" 75
amount=$(printf '%s' "$input" | tr '\n' ' ' |
	sed -n 's/.*"amount"[[:space:]]*:[[:space:]]*\([0-9][0-9]*\)[^0-9.eE].*/\1/p')
case $amount in
'' | ??????????*) fail InvalidInput "amount: an integer in 0..999999999 is required" 65 ;;
esac
amount=$((amount + 0)) # no leading zeros
ledger=$IDEM_DATA_DIR/ledger.txt
replayed=false

if [ "$naive" = 1 ]; then
	# the control experiment: no lock, no look-up
	idem-point before_append
	printf '%s %s\n' "$key" "$amount" >>"$ledger" || fail IOError "cannot append to $ledger" 75
	idem-point after_append
else
	exec 9>>"$IDEM_DATA_DIR/ledger.lock" || fail IOError "cannot open the lock file" 75
	flock 9 || fail IOError "cannot lock $IDEM_DATA_DIR/ledger.lock" 75
	# the guard: the key already in the ledger means an earlier attempt appended
	if [ -f "$ledger" ] && awk '$1 == ENVIRON["IDEM_IDEMPOTENCY_KEY"] { found = 1; exit }
	                          END { exit !found }' "$ledger"; then
		replayed=true
	else
		idem-point before_append 9>&- # 9>&-: the point's process does not hold the lock
		printf '%s %s\n' "$key" "$amount" >>"$ledger" || fail IOError "cannot append to $ledger" 75
		idem-point after_append 9>&-
	fi
	exec 9>&- # the lock is released when the file closes (or the process dies)
fi
printf '{"key":"%s","amount":%s,"replayed":%s}\n' "$key" "$amount" "$replayed"
