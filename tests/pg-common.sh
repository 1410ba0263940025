# pg-common.sh — what pg-suite.sh and pg-hosts.sh share; sourced.

# psql's arguments for every workflow's (workflow_id, status) row.
statuses=(-F ' ' -c "SELECT workflow_id, status FROM workflows")

# not_completed FILE: of the ids listed in FILE, those whose workflow is
# not completed in the (workflow_id, status) rows read from stdin, each
# with what it is instead, on one line (empty: all are).
not_completed() {
	awk 'FILENAME == "-" { st[$1] = $2; next }
		{ s = ($1 in st) ? st[$1] : "missing" }
		s != "completed" && !seen[$1]++ { printf "%s=%s ", $1, s }' - "$1"
}
