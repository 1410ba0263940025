#!/bin/sh
# check.sh — the shell app's invariants: each completed append workflow's key in ledger.txt exactly once, no line of a failed or unknown one; exit 0 holds, 1 violated, 2 could not check.
#
# Reads idem's state DB with the sqlite3 command-line shell (installed by
# idem's scripts with its other packages). Each violation is one line
# starting with its kind, then a summary line starting with "shell:":
#   duplicated           a key appended more than once
#   lost                 a completed workflow whose key is not in the ledger
#   appended_but_failed  a failed workflow whose key is in the ledger
#   unexpected           a line of no append workflow
set -u

cannot() {
	echo "shell: cannot check: $*" >&2
	exit 2
}

[ -n "${IDEM_DATA_DIR:-}" ] || cannot "IDEM_DATA_DIR is not set"
if [ -z "${IDEM_STATE_DB:-}" ] || [ ! -r "$IDEM_STATE_DB" ]; then
	cannot "IDEM_STATE_DB is not set or not readable"
fi
command -v sqlite3 >/dev/null || cannot "no sqlite3 command (apt-get install sqlite3)"
tmp=$(mktemp -d) || cannot "mktemp failed"
trap 'rm -rf "$tmp"' EXIT

# the workflows, one "KEY STATUS" a line; their one step is step 0
sqlite3 -readonly -separator ' ' -cmd '.timeout 10000' "$IDEM_STATE_DB" \
	"SELECT namespace || '/' || workflow_id || '/0', status FROM workflows WHERE type = 'append'" \
	>"$tmp/workflows" || cannot "cannot read $IDEM_STATE_DB"
ledger=$IDEM_DATA_DIR/ledger.txt
if [ -f "$ledger" ]; then cp "$ledger" "$tmp/ledger"; else : >"$tmp/ledger"; fi

awk -v out="$tmp/summary" '
FILENAME == ARGV[1] { status[$1] = $2; n[$2]++; workflows++; next }
{ count[$1]++; lines++ }
END {
	for (k in count) {
		if (count[k] > 1) { print "duplicated " k ": " count[k] " lines in ledger.txt"; v["duplicated"]++ }
		if (!(k in status)) { print "unexpected " k ": a line of no append workflow"; v["unexpected"]++ }
		else if (status[k] == "failed") { print "appended_but_failed " k ": the workflow failed, its line is in ledger.txt"; v["appended_but_failed"]++ }
	}
	for (k in status)
		if (status[k] == "completed" && !(k in count)) { print "lost " k ": completed, but not in ledger.txt"; v["lost"]++ }
	total = v["duplicated"] + v["unexpected"] + v["appended_but_failed"] + v["lost"]
	printf "%d workflows (%d completed, %d failed, %d running), %d lines; %d duplicated, %d lost, %d appended_but_failed, %d unexpected%s\n",
		workflows, n["completed"], n["failed"], n["running"], lines, v["duplicated"], v["lost"],
		v["appended_but_failed"], v["unexpected"],
		n["running"] ? "; " n["running"] " still running: not final" : "" >out
	printf "%d\n", total >(out ".n")
}' "$tmp/workflows" "$tmp/ledger" | sort >"$tmp/violations" || cannot "awk failed"

cat "$tmp/violations"
if [ "$(cat "$tmp/summary.n")" -gt 0 ]; then
	echo "shell: FAILED — $(cat "$tmp/summary")"
	exit 1
fi
echo "shell: OK — $(cat "$tmp/summary")"
exit 0
