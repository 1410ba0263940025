#!/usr/bin/env bash
# tests/pg-suite.sh BINDIR SRCDIR — the state DB on PostgreSQL, against a
# private cluster (scripts/pg-cluster) in a temporary directory, stopped at
# the end. Run by ctest as pg_store; scripts/nightly runs it long
# (PG_WORKFLOWS). Each part gets a database of its own:
#   recovery   idem-stress under worker faults and supervisor SIGKILLs
#   transfer   the same for the second app, its app DB on PostgreSQL too
#   naive      the control (both DBs on PostgreSQL): without the guards the
#              checker must find duplicates
#   outage     PostgreSQL restarted under a running supervisor: the turn fails,
#              the supervisor stops (exit 1, "state DB failed"); restarted, it
#              finishes every acknowledged start exactly once; a second
#              supervisor of the same SUPERVISOR_NAME exits 2
#   several    three supervisors on one database, the state's and the app's (transfer),
#              worker faults: one is SIGKILLed with its workers (a host
#              dies), one is stopped past its lease (a host cut off) and must
#              stop itself once resumed; the others adopt their workflows, and
#              every acknowledged start completes exactly once
#   diskfull   PostgreSQL's data directory (a 64 MB tmpfs, root only) fills
#              under a running supervisor: it stops (exit 1, "state DB
#              failed"); with space again, restarted, it finishes every
#              acknowledged start exactly once
#   retention  RETENTION=1s prunes closed workflows; the checker excuses their effects
#   search     the id search (GET /v1/workflows?prefix=) in byte order in a
#              database collated en-US, paged, on its index; the dashboard
#              panels' endpoints on PostgreSQL app DBs
#   badurl     bad URLs (STATE_DATABASE, DATABASE) and a server that is down:
#              exit 4, naming the key
# Seeds derive from IDEM_TEST_SEED (random when unset), printed first;
# PG_PARTS picks parts by name (recovery transfer naive outage several
# diskfull retention search badurl).
set -euo pipefail
bin=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
master=${IDEM_TEST_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
workflows=${PG_WORKFLOWS:-300}
echo "pg-suite: master seed $master (replay with IDEM_TEST_SEED=$master)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/idem-pg-XXXXXX")
chmod 755 "$tmp"
cluster=$tmp/cluster
sup_pid=""
clients=""
groups=()
holder=""
cleanup() {
	[ -z "$clients" ] || kill "$clients" 2>/dev/null || true
	# diskfull's server lives in its mount namespace: stopped from inside
	[ -z "$holder" ] || nsenter -t "$holder" -m -- "$src/scripts/pg-cluster" stop "$tmp/diskfull/cluster" \
		>/dev/null 2>&1 || true
	[ -z "$sup_pid" ] || kill -9 "$sup_pid" 2>/dev/null || true
	for g in ${groups[@]+"${groups[@]}"}; do pkill -9 -s "$g" 2>/dev/null || true; done
	"$src/scripts/pg-cluster" stop "$cluster" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "pg-suite: FAIL: $*" >&2; exit 1; }
# PG_PARTS="outage several": only those parts (default: all)
want() { [ -z "${PG_PARTS:-}" ] || [[ " $PG_PARTS " == *" $1 "* ]]; }

"$src/scripts/pg-cluster" start "$cluster" >/dev/null ||
	fail "cannot start a private PostgreSQL cluster (scripts/build installs postgresql)"
as_owner=()
[ "$(id -u)" -ne 0 ] || as_owner=(runuser -u postgres --)
psql=(${as_owner[@]+"${as_owner[@]}"} psql -h "$cluster" -p 5432 -U idem -v ON_ERROR_STOP=1 -Atq)

# fresh NAME: an empty database; prints its URL.
export PGOPTIONS="-c client_min_messages=warning"
fresh() {
	"${psql[@]}" -d postgres -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >&2 ||
		fail "cannot create database $1"
	echo "postgresql://idem@/$1?host=$cluster&port=5432"
}

# shellcheck source=tests/pg-common.sh
source "$src/tests/pg-common.sh"

if want recovery; then
	echo "== recovery (inventory): $workflows workflows, faults, 3 supervisor kills =="
	"$bin/idem-stress" --workflows "$workflows" --supervisor-kills 3 --progress 0 \
		--seed "$master" --state-database "$(fresh recovery)" | tail -n 4
fi

if want transfer; then
	echo "== recovery (transfer), its app DB on PostgreSQL too =="
	url=$(fresh transfer)
	"$bin/idem-stress" --app transfer --workflows "$workflows" --supervisor-kills 2 --progress 0 \
		--seed "$((master + 1))" --state-database "$url" --database "$url" | tail -n 3
	n=$("${psql[@]}" -d transfer -c "SELECT count(*) FROM debits")
	[ "$n" -ge 1 ] || fail "transfer: no debit in the app DB on PostgreSQL"
	n=$("${psql[@]}" -d transfer -c "SELECT count(*) FROM workflows WHERE status = 'completed'")
	[ "$n" -ge 1 ] || fail "transfer: no completed workflow in PostgreSQL"
fi

if want naive; then
	echo "== naive (the control), both DBs on PostgreSQL =="
	json=$tmp/naive.json
	url=$(fresh naive)
	set +e
	"$bin/idem-stress" --naive --workflows 400 --kill-rate 0.3 --kill-points after_commit,mid_reply \
		--progress 0 --seed "$((master + 2))" --json "$json" --state-database "$url" \
		--database "$url" >/dev/null 2>&1
	rc=$?
	set -e
	dups=$(sed -n 's/.*"duplicated": \([0-9]*\).*/\1/p' "$json" | head -n1)
	[ "$rc" -eq 1 ] && [ "${dups:-0}" -ge 1 ] ||
		fail "naive: expected exit 1 with duplicates, got exit $rc and ${dups:-no} duplicates"
	echo "naive: the checker caught $dups duplicated effects on PostgreSQL, as it must"
fi

if want outage; then
	echo "== outage: PostgreSQL restarted under a running supervisor =="
	url=$(fresh outage)
	w=$tmp/outage
	mkdir -p "$w"
	sup=("$bin/idem-supervisor" --env=/dev/null --socket="$w/sock" --state-database="$url"
		--supervisor-name=outage
		--database="$w/app.db" --supplier-database="$w/supplier.db"
		--supplier-socket="$w/supplier.sock" --seed-stock=123456:100000000 --workers=2
		--fault-seed="$master" --fault-kill-rate=0.1 --fault-error-rate=0.1)
	ctl=("$bin/idemctl" --env=/dev/null --socket="$w/sock")
	"${sup[@]}" >"$w/sup1.log" 2>&1 &
	sup_pid=$!
	for _ in $(seq 100); do [ -S "$w/sock" ] && break; sleep 0.1; done
	# clients: each start acknowledged (exit 0) is noted; the rest may
	# fail. They go on until a second after the restarted supervisor answers.
	(
		for i in $(seq 1 400); do
			[ ! -e "$w/enough" ] || break
			if "${ctl[@]}" start --order-id "O$i" --product-id 123456 --quantity 1 \
				>/dev/null 2>&1; then
				echo "O$i" >>"$w/acked"
			fi
		done
	) &
	clients=$!
	sleep 1
	"$src/scripts/pg-cluster" stop "$cluster" >/dev/null
	sleep 0.5
	"$src/scripts/pg-cluster" start "$cluster" >/dev/null
	# busy or idle, it meets the dead connection within a lease renewal
	# (LEASE/3, 3.3 s by default)
	for _ in $(seq 300); do kill -0 "$sup_pid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$sup_pid" 2>/dev/null &&
		{ tail -n 5 "$w/sup1.log"; fail "outage: the supervisor still runs 30 s after the restart"; }
	set +e
	wait "$sup_pid"
	rc=$?
	set -e
	sup_pid=""
	[ "$rc" -eq 1 ] || { tail -n 5 "$w/sup1.log"; fail "outage: the supervisor exited $rc, not 1"; }
	grep -q "state DB failed; stopping" "$w/sup1.log" ||
		{ tail -n 5 "$w/sup1.log"; fail "outage: no 'state DB failed; stopping' in its log"; }
	echo "outage: the supervisor stopped: $(grep "state DB failed" "$w/sup1.log" | sed "s/.*error=//" | head -n1)"
	"${sup[@]}" >"$w/sup2.log" 2>&1 &
	sup_pid=$!
	for _ in $(seq 100); do "${ctl[@]}" stats >/dev/null 2>&1 && break; sleep 0.1; done
	sleep 1
	touch "$w/enough"
	wait "$clients" || true
	clients=""
	"${ctl[@]}" wait --all --timeout 120 >/dev/null || fail "outage: workflows still running after 120 s"
	touch "$w/acked"
	acked=$(sort -u "$w/acked" | wc -l)
	[ "$acked" -ge 10 ] || fail "outage: only $acked starts were acknowledged"
	missing=$("${psql[@]}" -d outage "${statuses[@]}" | not_completed "$w/acked")
	[ -z "$missing" ] || fail "outage: acknowledged starts not completed: $missing"
	"${ctl[@]}" check --offline --state-database "$url" --database "$w/app.db" \
		--supplier-database "$w/supplier.db" >"$w/check.out" 2>&1 ||
		{ cat "$w/check.out"; fail "outage: the checker found a violation"; }
	set +e
	out=$(timeout 30 "$bin/idem-supervisor" --env=/dev/null --socket="$w/sock2" \
		--state-database="$url" --supervisor-name=outage --database="$w/app2.db" \
		--supplier-database="$w/supplier2.db" --supplier-socket="$w/supplier2.sock" 2>&1)
	rc=$?
	set -e
	[ "$rc" -eq 2 ] && echo "$out" | grep -q 'another idem-supervisor named "outage" runs' ||
		fail "outage: a second supervisor of the same name: exit $rc: $out"
	echo "outage: a second supervisor of the same SUPERVISOR_NAME exits 2"
	kill -TERM "$sup_pid"
	wait "$sup_pid" || true
	sup_pid=""
	echo "outage: $acked acknowledged starts, all completed once; $(head -n1 "$w/check.out")"
fi

if want several; then
	echo "== several: three supervisors, one database for the state and the app; a host killed, one cut off =="
	url=$(fresh several)
	w=$tmp/several
	mkdir -p "$w"
	lease=2
	nwf=${PG_SEVERAL_WORKFLOWS:-200}
	# start_sup I: supervisor I in a session of its own, its "host": it, its
	# workers (each leads a process group of its own, in that session) and
	# its fork server; logs to sup-I.log
	start_sup() {
		rm -f "$w/s$1.sock" # a killed one's
		setsid "$bin/idem-supervisor" --env=/dev/null --app=transfer --socket="$w/s$1.sock" \
			--supervisor-name="host$1" --lease="${lease}s" --state-database="$url" \
			--database="$url" --transfer-accounts=A0:1000000000,A1:1000000000 --workers=2 \
			--fault-seed="$((master + 10 + $1))" --fault-kill-rate=0.1 --fault-error-rate=0.05 \
			>>"$w/sup-$1.log" 2>&1 &
		pids[$1]=$!
		groups+=("$!")
		for _ in $(seq 100); do sctl "$1" stats >/dev/null 2>&1 && return; sleep 0.1; done
		fail "several: supervisor $1 did not start: $(tail -n 3 "$w/sup-$1.log")"
	}
	sctl() { "$bin/idemctl" --env=/dev/null --app=transfer --socket="$w/s$1.sock" "${@:2}"; }
	declare -a pids
	for i in 1 2 3; do start_sup "$i"; done
	(
		for i in $(seq 1 "$nwf"); do
			# until a second after hosts 1 and 2 are back
			[ ! -e "$w/enough" ] || break
			# each start goes to one supervisor, then, when that one fails, the
			# next; every fifth also to a second one (idempotent across them)
			for k in 0 1 2; do
				j=$(( (i + k) % 3 + 1 ))
				if sctl "$j" start --transfer-id "T$i" --from A0 --to A1 --amount 1 \
					>/dev/null 2>&1; then
					echo "T$i" >>"$w/acked"
					[ $((i % 5)) -ne 0 ] ||
						sctl "$(( j % 3 + 1 ))" start --transfer-id "T$i" --from A0 --to A1 \
							--amount 1 >/dev/null 2>&1 || true
					break
				fi
			done
		done
	) &
	clients=$!
	sleep 1.5
	# hold_on I: five workflows that cannot finish on host I (its workers
	# stopped), so that there is something in flight to adopt however
	# fast the others ran
	hold_on() {
		pkill -STOP -s "${pids[$1]}" -f idem-worker || true
		for k in 1 2 3 4 5; do
			sctl "$1" start --transfer-id "H$1-$k" --from A0 --to A1 --amount 1 >/dev/null ||
				fail "several: start H$1-$k on host $1 failed"
			echo "H$1-$k" >>"$w/acked"
		done
	}
	hold_on 1
	pkill -9 -s "${pids[1]}"
	echo "several: host 1 killed (every process of its session: supervisor, workers)"
	sleep 1
	hold_on 2
	kill -STOP "${pids[2]}"
	echo "several: host 2 stopped for $((3 * lease)) s (a lease is ${lease} s)"
	sleep $((3 * lease))
	pkill -CONT -s "${pids[2]}"
	# its next turn, or its lease timer's (LEASE/3), finds the lease lapsed
	for _ in $(seq 100); do kill -0 "${pids[2]}" 2>/dev/null || break; sleep 0.1; done
	kill -0 "${pids[2]}" 2>/dev/null && fail "several: host 2 still runs 10 s after it was resumed"
	set +e
	wait "${pids[2]}"
	rc=$?
	set -e
	# stopped between turns, it finds its lease lapsed; stopped inside one,
	# the server has ended its session (idle_in_transaction_session_timeout)
	[ "$rc" -eq 1 ] && grep -q "state DB failed; stopping" "$w/sup-2.log" ||
		fail "several: host 2, resumed after its lease lapsed, exited $rc: $(tail -n 2 "$w/sup-2.log")"
	why=$(grep "state DB failed" "$w/sup-2.log" | sed 's/.*error=//' | head -n1)
	echo "several: host 2 resumed and stopped (exit 1): $why"
	start_sup 1
	start_sup 2
	sleep 1
	touch "$w/enough"
	wait "$clients" || true
	clients=""
	# the same start sent to two supervisors at once: both answer it, and
	# there is one workflow
	for i in $(seq 1 20); do
		sctl 1 start --transfer-id "D$i" --from A0 --to A1 --amount 1 >/dev/null 2>&1 &
		one=$!
		sctl 3 start --transfer-id "D$i" --from A0 --to A1 --amount 1 >/dev/null 2>&1 &
		two=$!
		wait "$one" && wait "$two" || fail "several: D$i sent to hosts 1 and 3 at once failed"
		echo "D$i" >>"$w/acked"
	done
	for i in 1 2 3; do sctl "$i" wait --all --timeout 120 >/dev/null ||
		fail "several: supervisor $i still runs workflows after 120 s"; done
	touch "$w/acked"
	acked=$(sort -u "$w/acked" | wc -l)
	[ "$acked" -ge 20 ] || fail "several: only $acked starts were acknowledged"
	notdone=$("${psql[@]}" -d several -c "SELECT count(*) FROM workflows WHERE status <> 'completed'")
	done_n=$("${psql[@]}" -d several -c "SELECT count(*) FROM workflows WHERE status = 'completed'")
	missing=$("${psql[@]}" -d several "${statuses[@]}" | not_completed "$w/acked")
	[ -z "$missing" ] && [ "$notdone" -eq 0 ] ||
		fail "several: acknowledged starts not completed: ${missing:-none}; $notdone workflows not completed"
	adopted=$("${psql[@]}" -d several -c "SELECT count(*) FROM workflows WHERE fence > 0")
	held=$("${psql[@]}" -d several \
		-c "SELECT count(*) FROM workflows WHERE workflow_id LIKE 'H%' AND fence > 0")
	[ "$held" -eq 10 ] ||
		fail "several: $held of the 10 workflows held on hosts 1 and 2 (H1-*, H2-*) were adopted"
	"$bin/idemctl" --env=/dev/null --app=transfer --state-database="$url" --database="$url" \
		check --offline >"$w/check.out" 2>&1 ||
		{ cat "$w/check.out"; fail "several: the checker found a violation"; }
	shown=$(sctl 3 get T1)
	case $shown in *"owner      host"*) ;; *) fail "several: idemctl get shows no owner: $shown" ;; esac
	for i in 1 2 3; do kill -TERM "${pids[$i]}"; done
	for i in 1 2 3; do wait "${pids[$i]}" || true; done
	groups=()
	echo "several: $acked acknowledged starts ($done_n workflows), all completed once, $adopted adopted;" \
		"$(head -n1 "$w/check.out")"
fi

# diskfull needs root and mount namespaces (a container without
# CAP_SYS_ADMIN has none): where it cannot run it says so
can_diskfull() {
	[ "$(id -u)" -eq 0 ] && unshare --mount --propagation private true 2>/dev/null
}
if want diskfull && ! can_diskfull; then
	echo "== diskfull: NOT RUN: needs root and a mount namespace (unshare --mount) =="
elif want diskfull; then
	echo "== diskfull: PostgreSQL's disk fills under a running supervisor =="
	w=$tmp/diskfull
	dcl=$w/cluster
	mkdir -p "$dcl/data"
	chown postgres: "$dcl" "$dcl/data"
	# a mount namespace held by a sleeping process, with a 64 MB tmpfs as
	# the cluster's data directory; the server runs inside it, its socket
	# (in $dcl) is seen from outside
	setsid unshare --mount --propagation private bash -c \
		"mount -t tmpfs -o size=64m,mode=0700 tmpfs '$dcl/data' && chown postgres: '$dcl/data' &&
		exec sleep 100000" &
	holder=$!
	groups+=("$holder")
	for _ in $(seq 50); do nsenter -t "$holder" -m -- mountpoint -q "$dcl/data" && break; sleep 0.1; done
	indisk() { nsenter -t "$holder" -m -- "$@"; }
	indisk "$src/scripts/pg-cluster" start "$dcl" >/dev/null || fail "diskfull: cannot start the cluster"
	durl="postgresql://idem@/idem?host=$dcl&port=5432"
	sup=("$bin/idem-supervisor" --env=/dev/null --socket="$w/sock" --state-database="$durl"
		--supervisor-name=diskfull --database="$w/app.db" --supplier-database="$w/supplier.db"
		--supplier-socket="$w/supplier.sock" --seed-stock=123456:100000000 --workers=2
		--fault-seed="$master" --fault-kill-rate=0.05)
	ctl=("$bin/idemctl" --env=/dev/null --socket="$w/sock")
	"${sup[@]}" >"$w/sup1.log" 2>&1 &
	sup_pid=$!
	for _ in $(seq 100); do [ -S "$w/sock" ] && break; sleep 0.1; done
	(
		for i in $(seq 1 3000); do
			if "${ctl[@]}" start --order-id "F$i" --product-id 123456 --quantity 1 \
				>/dev/null 2>&1; then
				echo "F$i" >>"$w/acked"
			fi
		done
	) &
	clients=$!
	sleep 1
	# all but 256 KB of what is left
	free=$(indisk df -B1 --output=avail "$dcl/data" | tail -n1)
	[ "$free" -le 262144 ] || indisk fallocate -l "$((free - 262144))" "$dcl/data/filler" ||
		fail "diskfull: cannot fill the tmpfs"
	for _ in $(seq 600); do kill -0 "$sup_pid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$sup_pid" 2>/dev/null &&
		{ tail -n 5 "$w/sup1.log"; fail "diskfull: the supervisor still runs 60 s after the disk filled"; }
	set +e
	wait "$sup_pid"
	rc=$?
	set -e
	sup_pid=""
	[ "$rc" -eq 1 ] && grep -q "state DB failed; stopping" "$w/sup1.log" ||
		{ tail -n 5 "$w/sup1.log"; fail "diskfull: the supervisor exited $rc without 'state DB failed'"; }
	echo "diskfull: the supervisor stopped: $(grep "state DB failed" "$w/sup1.log" | sed "s/.*error=//" | head -n1)"
	kill "$clients" 2>/dev/null || true
	wait "$clients" 2>/dev/null || true
	clients=""
	indisk rm -f "$dcl/data/filler"
	# a server that panicked on its WAL is started again
	indisk "$src/scripts/pg-cluster" start "$dcl" >/dev/null 2>&1 || true
	"${sup[@]}" >"$w/sup2.log" 2>&1 &
	sup_pid=$!
	for _ in $(seq 150); do "${ctl[@]}" stats >/dev/null 2>&1 && break; sleep 0.1; done
	"${ctl[@]}" wait --all --timeout 120 >/dev/null || fail "diskfull: workflows still running after 120 s"
	touch "$w/acked"
	acked=$(sort -u "$w/acked" | wc -l)
	[ "$acked" -ge 10 ] || fail "diskfull: only $acked starts were acknowledged"
	dpsql=(runuser -u postgres -- psql -h "$dcl" -p 5432 -U idem -d idem -Atq)
	missing=$("${dpsql[@]}" "${statuses[@]}" | not_completed "$w/acked")
	[ -z "$missing" ] || fail "diskfull: acknowledged starts not completed: $missing"
	"${ctl[@]}" check >"$w/check.out" 2>&1 || { cat "$w/check.out"; fail "diskfull: check failed"; }
	kill -TERM "$sup_pid"
	wait "$sup_pid" || true
	sup_pid=""
	indisk "$src/scripts/pg-cluster" stop "$dcl" >/dev/null 2>&1 || true
	holder=""
	echo "diskfull: $acked acknowledged starts all completed once; $(head -n1 "$w/check.out")"
fi

if want retention; then
	echo "== retention: closed workflows pruned from PostgreSQL =="
	url=$(fresh retention)
	w=$tmp/retention
	mkdir -p "$w"
	"$bin/idem-supervisor" --env=/dev/null --app=transfer --socket="$w/sock" --state-database="$url" \
		--database="$w/app.db" --transfer-accounts=A0:1000,A1:1000 --retention=1s \
		>"$w/sup.log" 2>&1 &
	sup_pid=$!
	rctl=("$bin/idemctl" --env=/dev/null --app=transfer --socket="$w/sock")
	for _ in $(seq 100); do [ -S "$w/sock" ] && break; sleep 0.1; done
	for i in $(seq 1 30); do
		"${rctl[@]}" start --transfer-id "R$i" --from A0 --to A1 --amount 1 >/dev/null ||
			fail "retention: start R$i failed"
	done
	"${rctl[@]}" wait --all --timeout 60 >/dev/null || fail "retention: workflows still running"
	for _ in $(seq 150); do
		left=$("${psql[@]}" -d retention -c "SELECT count(*) FROM workflows")
		[ "$left" -eq 0 ] && break
		sleep 0.1
	done
	pruned=$("${psql[@]}" -d retention -c "SELECT coalesce(sum(workflows), 0) FROM pruned")
	[ "$left" -eq 0 ] && [ "$pruned" -eq 30 ] ||
		fail "retention: $left workflows left, $pruned recorded as pruned (want 0 and 30)"
	shown=$("${rctl[@]}" stats)
	case $shown in *"0 running, 0 completed"*) ;; *) fail "retention: stats still count them: $shown" ;; esac
	"$bin/idemctl" --env=/dev/null --app=transfer --state-database="$url" --database="$w/app.db" \
		check --offline >"$w/check.out" 2>&1 || { cat "$w/check.out"; fail "retention: check failed"; }
	grep -q "30 more pruned" "$w/check.out" || fail "retention: $(head -n1 "$w/check.out")"
	kill -TERM "$sup_pid"
	wait "$sup_pid" || true
	sup_pid=""
	echo "retention: 30 closed workflows pruned within a few seconds; $(head -n1 "$w/check.out")"
fi

if want search; then
	echo "== search: the id search in byte order, in a database collated en-US =="
	# In en-US (ICU) punctuation sorts before digits: "order-95" comes
	# after "order-:", so a range in the database's collation would miss it.
	"${psql[@]}" -d postgres -c "DROP DATABASE IF EXISTS search" \
		-c "CREATE DATABASE search TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'" >&2 ||
		fail "search: cannot create a database collated en-US (ICU)"
	url="postgresql://idem@/search?host=$cluster&port=5432"
	w=$tmp/search
	mkdir -p "$w"
	"$bin/idem-supervisor" --env=/dev/null --app=transfer --socket="$w/sock" --state-database="$url" \
		--database="$url" --transfer-accounts=A0:1000,A1:1000 >"$w/sup.log" 2>&1 &
	sup_pid=$!
	sctl=("$bin/idemctl" --env=/dev/null --app=transfer --socket="$w/sock")
	for _ in $(seq 100); do [ -S "$w/sock" ] && break; sleep 0.1; done
	n=0
	for id in order-9 order-95 order-9a order-9Z order-:x order-8 order-A Order-9b; do
		n=$((n + 1))
		"${sctl[@]}" start --workflow-id "$id" --transfer-id "t$n" --from A0 --to A1 --amount 1 \
			>/dev/null || fail "search: start $id failed"
	done
	got=$(curl -s --unix-socket "$w/sock" "http://idem/v1/workflows?prefix=order-9&limit=2" |
		python3 -c 'import json,sys; d=json.load(sys.stdin); print(" ".join(w["workflow_id"] for w in d["workflows"]), d["next_after_id"])')
	[ "$got" = "order-9 order-95 order-95" ] || fail "search: first page of prefix order-9: $got"
	got=$(curl -s --unix-socket "$w/sock" "http://idem/v1/workflows?prefix=order-9&limit=2&after_id=order-95" |
		python3 -c 'import json,sys; d=json.load(sys.stdin); print(" ".join(w["workflow_id"] for w in d["workflows"]), d["next_after_id"])')
	[ "$got" = "order-9Z order-9a order-9a" ] || fail "search: second page of prefix order-9: $got"
	got=$(curl -s --unix-socket "$w/sock" "http://idem/v1/workflows?prefix=order-9&limit=2&after_id=order-9a" |
		python3 -c 'import json,sys; d=json.load(sys.stdin); print(" ".join(w["workflow_id"] for w in d["workflows"]) or "-", d["next_after_id"])')
	[ "$got" = "- None" ] || fail "search: third page of prefix order-9: $got"
	plan=$("${psql[@]}" -d search -c "EXPLAIN SELECT id FROM workflows WHERE namespace = 'default' AND workflow_id COLLATE \"C\" >= 'order-9' AND workflow_id COLLATE \"C\" < 'order-:' ORDER BY namespace, workflow_id COLLATE \"C\" LIMIT 50")
	case $plan in *workflows_id_bytes*) ;; *) fail "search: the search does not walk workflows_id_bytes: $plan" ;; esac
	"${sctl[@]}" wait --all --timeout 60 >/dev/null || fail "search: transfers still running"
	# The dashboard's panels on a PostgreSQL app DB: the transfer's accounts...
	got=$(curl -s --unix-socket "$w/sock" http://idem/v1/balance)
	[ "$got" = '[{"account_id":"A0","balance":992,"initial_balance":1000},{"account_id":"A1","balance":1008,"initial_balance":1000}]' ] ||
		fail "search: GET /v1/balance on PostgreSQL: $got"
	kill -TERM "$sup_pid"
	wait "$sup_pid" || true
	sup_pid=""
	# ... and the inventory's products and latest orders and restocks.
	url=$(fresh panels)
	"$bin/idem-supervisor" --env=/dev/null --socket="$w/isock" --state-database="$url" \
		--database="$url" --supplier-database="$w/supplier.db" --supplier-socket="$w/supplier.sock" \
		--seed-stock=123456:10,777:5 --reorder-threshold=5 --reorder-quantity=100 \
		>"$w/isup.log" 2>&1 &
	sup_pid=$!
	ictl=("$bin/idemctl" --env=/dev/null --socket="$w/isock")
	for _ in $(seq 100); do [ -S "$w/isock" ] && break; sleep 0.1; done
	for i in 1 2 3; do
		"${ictl[@]}" start --order-id "I$i" --product-id 123456 --quantity 3 --wait 30 >/dev/null ||
			fail "search: order I$i did not complete"
	done
	got=$(curl -s --unix-socket "$w/isock" http://idem/v1/stock)
	[ "$got" = '[{"product_id":"123456","stock":101,"initial_stock":10},{"product_id":"777","stock":5,"initial_stock":5}]' ] ||
		fail "search: GET /v1/stock on PostgreSQL: $got"
	got=$(curl -s --unix-socket "$w/isock" http://idem/v1/orders/latest |
		python3 -c 'import json,sys; print(" ".join("%s:%s:%s" % (r["kind"], r["key"], r["stock_after"]) for r in json.load(sys.stdin)))')
	[ "$got" = "order:I3:101 restock:default/I2/1:104 order:I2:4 order:I1:7" ] ||
		fail "search: GET /v1/orders/latest on PostgreSQL: $got"
	# The live fault plan on PostgreSQL (faultctl.c): recorded with this
	# supervisor's name, and named by the attempts it planned.
	"${ictl[@]}" faults set --error-rate 1 --max-attempt 1 --for 1h >/dev/null ||
		fail "search: idemctl faults set on PostgreSQL"
	"${ictl[@]}" start --order-id I4 --product-id 777 --quantity 1 --wait 30 >/dev/null ||
		fail "search: order I4 under the runtime plan did not complete"
	got=$(curl -s --unix-socket "$w/isock" http://idem/v1/faults |
		python3 -c 'import json,sys; d=json.load(sys.stdin); r=d["recent"][0]; print(d["source"], d["plan_id"] == r["id"], r["action"], isinstance(r["supervisor"], str), r["until"] is not None, [x["action"] for x in d["recent"]])')
	[ "$got" = "set True set True True ['set', 'start']" ] ||
		fail "search: GET /v1/faults on PostgreSQL: $got"
	got=$("${psql[@]}" -d panels -c "SELECT e.kind, e.attempt FROM events e JOIN workflows w ON w.id = e.wf WHERE w.workflow_id = 'I4' AND e.seq = 0 AND e.kind IN ('fault_injected', 'started') AND (e.kind = 'fault_injected' OR (e.detail::json->>'fault_plan')::bigint = (SELECT max(id) FROM fault_plans)) ORDER BY e.id" | tr '\n|' ' :')
	[ "$got" = "started:1 fault_injected:1 started:2 " ] ||
		fail "search: I4's first step under the runtime plan: $got"
	kill -TERM "$sup_pid"
	wait "$sup_pid" || true
	sup_pid=""
	echo "search: prefix order-9 pages as order-9 order-95 | order-9Z order-9a in an en-US database, on workflows_id_bytes; the panels' endpoints answer from PostgreSQL app DBs; a runtime fault plan is recorded there and named by the attempts it planned"
fi

if want badurl; then
	echo "== badurl: clear errors, exit 4 =="
	url=$(fresh badurl)
	set +e
	out=$("$bin/idem-supervisor" --env=/dev/null --socket="$tmp/b.sock" --database="$tmp/b.db" \
		--state-database="postgresql://idem:secret@/nosuchdb?host=$cluster&port=5432" \
		--supplier-database="$tmp/bs.db" --supplier-socket="$tmp/bs.sock" 2>&1)
	rc=$?
	set -e
	[ "$rc" -eq 4 ] || fail "badurl: exit $rc for an unknown database, not 4: $out"
	echo "$out" | grep -q 'STATE_DATABASE=postgresql://idem:\*\*\*@/nosuchdb' ||
		fail "badurl: the error does not name STATE_DATABASE with the password hidden: $out"
	echo "$out" | grep -q 'secret' && fail "badurl: the password is in the error: $out"
	echo "$out" | grep -q 'nosuchdb' || fail "badurl: the error does not name the database: $out"
	echo "badurl: $(echo "$out" | grep -o 'error="[^"]*"' | head -n1)"
	set +e
	out=$("$bin/idem-supervisor" --env=/dev/null --socket="$tmp/b.sock" --state-database="$url" \
		--database="postgresql://idem:secret@/noappdb?host=$cluster&port=5432" \
		--supplier-database="$tmp/bs.db" --supplier-socket="$tmp/bs.sock" 2>&1)
	rc=$?
	set -e
	[ "$rc" -eq 4 ] || fail "badurl: exit $rc for an unknown app database, not 4: $out"
	echo "$out" | grep -q 'DATABASE=postgresql://idem:\*\*\*@/noappdb' ||
		fail "badurl: the error does not name DATABASE with the password hidden: $out"
	echo "$out" | grep -q 'secret' && fail "badurl: the password is in the error: $out"
	echo "badurl: $(echo "$out" | grep -o 'error="[^"]*"' | head -n1)"
	"$src/scripts/pg-cluster" stop "$cluster" >/dev/null
	set +e
	t0=$(date +%s)
	out=$("$bin/idem-supervisor" --env=/dev/null --socket="$tmp/b.sock" --database="$tmp/b.db" \
		--state-database="$url" --supplier-database="$tmp/bs.db" \
		--supplier-socket="$tmp/bs.sock" 2>&1)
	rc=$?
	set -e
	[ "$rc" -eq 4 ] || fail "server down: exit $rc, not 4: $out"
	echo "$out" | grep -q 'cannot connect to PostgreSQL' || fail "server down: unclear error: $out"
	echo "server down: exit 4 after $(( $(date +%s) - t0 )) s of retries"
fi

echo "pg-suite: all parts passed"
