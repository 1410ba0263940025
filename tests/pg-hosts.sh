#!/usr/bin/env bash
# tests/pg-hosts.sh BINDIR SRCDIR — several supervisors as several hosts:
# network namespaces made by this script (as root, `ip netns`), joined by
# veth pairs to a bridge in the database's namespace; no address exists
# outside them and no traffic leaves the machine.
#   db      PostgreSQL (scripts/pg-cluster --listen 10.77.0.1): the state DB
#           and the app DB (inventory) of every host, over TCP
#   h1..h3  a supervisor each, with its workers (worker and peer faults on),
#           LEASE=2s
#   sp      the supplier (idem-supplier on http://10.77.0.20:7070), which
#           every order calls (a restock each: the stock is always below
#           REORDER_THRESHOLD)
# Under a stream of starts sent to any of them (idemctl over each host's Unix
# socket): host 1 is killed whole (SIGKILL, every process of its session);
# host 2's link is taken down for three leases, then brought back: it must
# stop itself (exit 1), and the others adopt what both held; then
# PostgreSQL is restarted: the supervisors stop (exit 1, "state DB failed")
# and are started again, as a service manager would. At the end every
# acknowledged start has completed exactly once, every workflow held on
# hosts 1 and 2 was adopted, each order and restock was applied once, and
# the checker passes.
# ctest runs it as pg_hosts; HOSTS_WORKFLOWS sizes the stream (default
# 200). Seeds derive from IDEM_TEST_SEED (random when unset), printed first.
set -euo pipefail
bin=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
master=${IDEM_TEST_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
nwf=${HOSTS_WORKFLOWS:-200}
lease=2
echo "pg-hosts: master seed $master (replay with IDEM_TEST_SEED=$master)"

# shellcheck source=tests/pg-common.sh
source "$src/tests/pg-common.sh"
fail() { echo "pg-hosts: FAIL: $*" >&2; exit 1; }
# Where no network namespace can be made (not root, or a container without
# CAP_SYS_ADMIN) the run cannot happen: exit 77, which ctest shows as
# "Skipped", never as passed.
cannot() { echo "pg-hosts: NOT RUN: $*" >&2; exit 77; }
[ "$(id -u)" -eq 0 ] || cannot "needs root to make network namespaces (ip netns)"
command -v ip >/dev/null || fail "no ip command (scripts/build installs iproute2)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/idem-hosts-XXXXXX")
chmod 755 "$tmp"
cluster=$tmp/cluster
tag=$$
ns_db=idem-db-$tag
clients=""
watchdog=""
declare -a pids
cleanup() {
	[ -z "$clients" ] || kill "$clients" 2>/dev/null || true
	for i in 1 2 3; do [ -z "${pids[$i]:-}" ] || pkill -9 -s "${pids[$i]}" 2>/dev/null || true; done
	ip netns exec "$ns_db" "$src/scripts/pg-cluster" stop "$cluster" >/dev/null 2>&1 || true
	[ -z "${supplier:-}" ] || pkill -9 -s "$supplier" 2>/dev/null || true
	[ -z "$watchdog" ] || { pkill -P "$watchdog" 2>/dev/null; kill "$watchdog" 2>/dev/null; } || true
	for ns in "$ns_db" "idem-h1-$tag" "idem-h2-$tag" "idem-h3-$tag" "idem-sp-$tag"; do
		ip netns del "$ns" 2>/dev/null || true
	done
	[ -n "${HOSTS_KEEP:-}" ] && echo "pg-hosts: kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT
# ctest's TIMEOUT would SIGKILL the script and leave its namespaces and the
# supplier's restart loop behind: end it first, through the trap
deadline=${HOSTS_DEADLINE:-270}
# (the sleep's own output is /dev/null: a sleep outliving a killed watchdog
# must not hold ctest's pipe)
(sleep "$deadline" >/dev/null 2>&1 </dev/null && echo "pg-hosts: FAIL: over ${deadline} s" >&2 &&
	kill -TERM $$) &
watchdog=$!
trap 'exit 1' TERM

# ---- the network ----
ip netns add "$ns_db" || cannot "cannot make a network namespace here (ip netns add)"
ip -n "$ns_db" link set lo up
ip -n "$ns_db" link add br0 type bridge
ip -n "$ns_db" addr add 10.77.0.1/24 dev br0
ip -n "$ns_db" link set br0 up
for i in 1 2 3 4; do
	ns=idem-h$i-$tag
	[ "$i" -ne 4 ] || ns=idem-sp-$tag
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	ip link add "ih${i}x$tag" type veth peer name "ib${i}x$tag"
	ip link set "ih${i}x$tag" netns "$ns" name eth0
	ip link set "ib${i}x$tag" netns "$ns_db"
	ip -n "$ns_db" link set "ib${i}x$tag" master br0 up
	addr="10.77.0.1$i/24"
	[ "$i" -ne 4 ] || addr=10.77.0.20/24
	ip -n "$ns" addr add "$addr" dev eth0
	ip -n "$ns" link set eth0 up
done
on() { local h=$1; shift; ip netns exec "idem-h$h-$tag" "$@"; }

# ---- the database, in its own namespace ----
ip netns exec "$ns_db" "$src/scripts/pg-cluster" start "$cluster" --listen 10.77.0.1 >/dev/null ||
	fail "cannot start PostgreSQL in $ns_db"
url="postgresql://idem@10.77.0.1:5432/idem"
psql=(runuser -u postgres -- psql -h "$cluster" -p 5432 -U idem -d idem -v ON_ERROR_STOP=1 -Atq)
supplier_url=http://10.77.0.20:7070
# restarted whenever it dies, as a service manager would (the peer faults
# kill it on purpose; no supervisor starts a supplier on another host)
ip netns exec "idem-sp-$tag" setsid bash -c "while :; do '$bin/idem-supplier' --env=/dev/null \
	--supplier-socket='$supplier_url' --supplier-database='$tmp/ledger.db'; sleep 0.1; done" \
	>"$tmp/supplier.log" 2>&1 &
supplier=$!
echo "pg-hosts: PostgreSQL in $ns_db at 10.77.0.1; hosts h1..h3 at 10.77.0.11-13; the supplier at $supplier_url"

# start_sup I: host I's supervisor in a session of its own (it, its fork
# server and its workers), logging to sup-I.log; $! is its pid and session
# (a function run in the background would be a subshell: not via on())
start_sup() {
	rm -f "$tmp/s$1.sock"
	ip netns exec "idem-h$1-$tag" setsid "$bin/idem-supervisor" --env=/dev/null --socket="$tmp/s$1.sock" \
		--supervisor-name="host$1" --lease="${lease}s" --state-database="$url" --database="$url" \
		--supplier-socket="$supplier_url" --supplier-database="$tmp/ledger.db" \
		--seed-stock=123456:1000 --reorder-threshold=1000000000 --reorder-quantity=2 --workers=2 \
		--fault-seed="$((master + $1 * 7 + ${2:-0}))" --fault-kill-rate=0.1 \
		--fault-error-rate=0.05 --fault-peer-rate=0.05 >>"$tmp/sup-$1.log" 2>&1 &
	pids[$1]=$!
	for _ in $(seq 150); do sctl "$1" stats >/dev/null 2>&1 && return; sleep 0.1; done
	fail "supervisor $1 did not start: $(tail -n 3 "$tmp/sup-$1.log")"
}
sctl() { "$bin/idemctl" --env=/dev/null --socket="$tmp/s$1.sock" "${@:2}"; }
order() { sctl "$1" start --order-id "$2" --product-id 123456 --quantity 1; }
# gone I SECONDS: waits for supervisor I to exit; its exit code in $rc
gone() {
	for _ in $(seq $(($2 * 10))); do kill -0 "${pids[$1]}" 2>/dev/null || break; sleep 0.1; done
	kill -0 "${pids[$1]}" 2>/dev/null && fail "supervisor $1 still runs after $2 s: $(tail -n 2 "$tmp/sup-$1.log")"
	rc=0
	wait "${pids[$1]}" || rc=$?
	pkill -9 -s "${pids[$1]}" 2>/dev/null || true # its workers, if any outlived it
}
# hold_on I: five starts that cannot finish on host I (its workers stopped)
hold_on() {
	pkill -STOP -s "${pids[$1]}" -f idem-worker || true
	for k in 1 2 3 4 5; do
		order "$1" "H$1-$k" >/dev/null ||
			fail "start H$1-$k on host $1 failed"
		echo "H$1-$k" >>"$tmp/acked"
	done
}

for i in 1 2 3; do start_sup "$i"; done
(
	for i in $(seq 1 "$nwf"); do
		# until a second after hosts 1 and 2 are back
		[ ! -e "$tmp/enough" ] || break
		# to one host, then the next while that one fails; every fifth
		# also to a second one (idempotent across them)
		for k in 0 1 2; do
			j=$(( (i + k) % 3 + 1 ))
			if order "$j" "T$i" >/dev/null 2>&1; then
				echo "T$i" >>"$tmp/acked"
				[ $((i % 5)) -ne 0 ] || order "$(( j % 3 + 1 ))" "T$i" >/dev/null 2>&1 || true
				break
			fi
		done
	done
) &
clients=$!
sleep 1.5

hold_on 1
pkill -9 -s "${pids[1]}"
echo "pg-hosts: host 1 killed (every process of its session)"
gone 1 10

hold_on 2
ip -n "idem-h2-$tag" link set eth0 down
echo "pg-hosts: host 2 cut off (link down) for $((3 * lease)) s; a lease is $lease s"
sleep $((3 * lease))
ip -n "idem-h2-$tag" link set eth0 up
gone 2 60
[ "$rc" -eq 1 ] && grep -q "state DB failed; stopping" "$tmp/sup-2.log" ||
	fail "host 2, back after its lease lapsed, exited $rc: $(tail -n 2 "$tmp/sup-2.log")"
echo "pg-hosts: host 2 back and stopped (exit 1): $(grep "state DB failed" "$tmp/sup-2.log" | sed 's/.*error=//' | head -n1)"
start_sup 1 1
start_sup 2 1
sleep 1
touch "$tmp/enough"
wait "$clients" || true
clients=""

for i in 1 2 3; do sctl "$i" wait --all --timeout 120 >/dev/null ||
	fail "supervisor $i still runs workflows after 120 s"; done
# PostgreSQL restarted under three idle supervisors, and a start made
# just before
order 3 R1 >/dev/null || fail "start R1 failed"
echo R1 >>"$tmp/acked"
ip netns exec "$ns_db" "$src/scripts/pg-cluster" stop "$cluster" >/dev/null
sleep 0.5
ip netns exec "$ns_db" "$src/scripts/pg-cluster" start "$cluster" --listen 10.77.0.1 >/dev/null
for i in 1 2 3; do
	gone "$i" 30
	[ "$rc" -eq 1 ] || fail "supervisor $i exited $rc after the PostgreSQL restart, not 1"
done
echo "pg-hosts: PostgreSQL restarted; the three supervisors stopped (exit 1) and start again"
for i in 1 2 3; do start_sup "$i" 2; done
for i in 1 2 3; do sctl "$i" wait --all --timeout 120 >/dev/null ||
	fail "supervisor $i still runs workflows after 120 s (after the restart)"; done

# ---- what must hold ----
touch "$tmp/acked"
acked=$(sort -u "$tmp/acked" | wc -l)
[ "$acked" -ge 20 ] || fail "only $acked starts were acknowledged"
missing=$("${psql[@]}" "${statuses[@]}" | not_completed "$tmp/acked")
notdone=$("${psql[@]}" -c "SELECT count(*) FROM workflows WHERE status <> 'completed'")
[ -z "$missing" ] && [ "$notdone" -eq 0 ] ||
	fail "acknowledged starts not completed: ${missing:-none}; $notdone workflows not completed"
held=$("${psql[@]}" -c "SELECT count(*) FROM workflows WHERE workflow_id LIKE 'H%' AND fence > 0")
[ "$held" -eq 10 ] || fail "$held of the 10 workflows held on hosts 1 and 2 were adopted"
# each order and each restock applied once in the app DB, whoever ran it
twice=$("${psql[@]}" -c "SELECT count(*) FROM (SELECT order_id FROM orders GROUP BY 1
	HAVING count(*) > 1 UNION ALL SELECT key FROM restocks GROUP BY 1 HAVING count(*) > 1) d")
orders=$("${psql[@]}" -c "SELECT count(*) FROM orders")
restocks=$("${psql[@]}" -c "SELECT count(*) FROM restocks")
total=$("${psql[@]}" -c "SELECT count(*) FROM workflows")
[ "$twice" -eq 0 ] && [ "$orders" -eq "$total" ] && [ "$restocks" -eq "$total" ] ||
	fail "$twice applied twice; $orders orders and $restocks restocks for $total workflows"
on 3 "$bin/idemctl" --env=/dev/null --state-database="$url" --database="$url" \
	--supplier-database="$tmp/ledger.db" check --offline >"$tmp/check.out" 2>&1 ||
	{ cat "$tmp/check.out"; fail "the checker found a violation"; }
adopted=$("${psql[@]}" -c "SELECT count(*) FROM workflows WHERE fence > 0")
for i in 1 2 3; do kill -TERM "${pids[$i]}"; done
for i in 1 2 3; do gone "$i" 20; done
pids=()
echo "pg-hosts: $acked acknowledged starts ($total workflows) completed once each, $adopted adopted;" \
	"$(head -n1 "$tmp/check.out")"
echo "pg-hosts: all passed"
