#!/usr/bin/env bash
# tests/crash-suite.sh MODE BINDIR [APP] — the crash-recovery suite's
# drivers of idem-stress for APP (inventory, the default, or transfer), run
# by ctest (CI-sized) and by scripts/nightly (long):
#   recovery  many workflows, faults, supervisor SIGKILLs: must hold
#   swarm     SWARM_SEEDS runs, each with the fault mix of its own seed
#   naive     the control experiment: the checker must find duplicates
# Seeds derive from IDEM_TEST_SEED (random when unset), printed first.
set -euo pipefail
mode=$1
bin=$2
app=${3:-inventory}
master=${IDEM_TEST_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
echo "crash-suite $mode ($app): master seed $master (replay with IDEM_TEST_SEED=$master)"

case $mode in
recovery)
	"$bin/idem-stress" --app "$app" --workflows "${RECOVERY_WORKFLOWS:-2000}" --supervisor-kills 5 \
		--progress 0 --seed "$master"
	;;
swarm)
	n=${SWARM_SEEDS:-20}
	for i in $(seq 1 "$n"); do
		seed=$(( (master * 2654435761 + i * 40503) % 4294967296 ))
		if ! out=$("$bin/idem-stress" --app "$app" --swarm --workflows "${SWARM_WORKFLOWS:-150}" \
			--concurrency 16 --progress 0 --seed "$seed" 2>&1); then
			echo "$out"
			echo "swarm: run $i of $n failed (seed $seed)"
			exit 1
		fi
		echo "$out" | sed -n 's/^idem-stress: [0-9]* workflows, /swarm run '"$i"': /p'
	done
	echo "swarm: $n runs, every invariant held"
	;;
naive)
	json=$(mktemp)
	set +e
	"$bin/idem-stress" --app "$app" --naive --workflows 600 --kill-rate 0.3 \
		--kill-points after_commit,mid_reply --progress 0 --seed "$master" --json "$json"
	rc=$?
	set -e
	dups=$(sed -n 's/.*"duplicated": \([0-9]*\).*/\1/p' "$json" | head -n1)
	rm -f "$json"
	if [ "$rc" -ne 1 ] || [ "${dups:-0}" -lt 1 ]; then
		echo "naive: expected exit 1 with duplicates, got exit $rc and ${dups:-no} duplicates"
		exit 1
	fi
	echo "naive: the checker caught $dups duplicated effects, as it must"
	;;
*)
	echo "usage: crash-suite.sh recovery|swarm|naive BINDIR [inventory|transfer]" >&2
	exit 2
	;;
esac
