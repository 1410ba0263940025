#!/bin/sh
# service.sh — the service examples (examples/service) checked with the
# tools that run them:
# - systemd: the unit passes `systemd-analyze verify` with no word about
#   it (a copy whose ExecStart is this build's idem-supervisor, the unit as
#   shipped naming /usr/bin/idem-supervisor, which only a package puts
#   there), and keeps the choices the drain depends on.
# - s6: the service directory, its run script pointed at this build and a
#   configuration made from .env-dist as shipped (its relative paths land
#   in the directory the script cd's to), under a real s6-svscan:
#   s6-svwait -U returns once the supervisor says it is ready, which it is
#   (the seed order completes through the control API); it runs in the
#   foreground, its log on s6's stream; s6-svc -d drains it (exit 0, its log
#   says it stopped cleanly) and no process of it is left; a bad
#   configuration (exit 2) is not restarted (the finish script's 125).
# systemd-analyze and s6 are Debian packages scripts/build installs: their
# absence is a failure, said as such, not a skip.
#   tests/service.sh BUILD_DIR SOURCE_DIR
set -eu
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
bin=$build/bin
examples=$src/examples/service
fail() { echo "service: FAIL: $*" >&2; exit 1; }
for t in systemd-analyze:systemd s6-svscan:s6 s6-svscanctl:s6 s6-svok:s6 s6-svc:s6 \
	s6-svwait:s6 s6-svstat:s6 s6-setuidgid:s6; do
	command -v "${t%%:*}" >/dev/null ||
		fail "${t%%:*} is not installed (Debian package ${t#*:}; scripts/build installs it)"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/idem-service-XXXXXX")
scanpid=""
pids=""
# On a failure, s6 first (kill the service, s6-supervise leaves, then
# s6-svscan), then whatever of idem is known still to run.
cleanup() {
	if [ -n "$scanpid" ]; then
		s6-svc -dkx "$tmp/scan/idem" 2>/dev/null || true
		s6-svscanctl -t "$tmp/scan" 2>/dev/null || true
		for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$scanpid" 2>/dev/null || break; sleep 0.2; done
		kill -9 "$scanpid" 2>/dev/null || true
	fi
	for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

# ---- systemd ----------------------------------------------------------------
unit=$tmp/idem.service
sed "s|^ExecStart=/usr/bin/idem-supervisor |ExecStart=$bin/idem-supervisor |" \
	"$examples/idem.service" >"$unit"
grep -q "^ExecStart=$bin/idem-supervisor --env /etc/idem/idem.env$" "$unit" ||
	fail "idem.service's ExecStart is not '/usr/bin/idem-supervisor --env /etc/idem/idem.env'"
# Documentation=man:idem-supervisor(1): verify runs man(1) on it, which
# finds this build's page (help2man) through MANPATH.
man=--man=yes
if [ -f "$build/man/idem-supervisor.1" ]; then
	mkdir -p "$tmp/man/man1"
	ln -s "$build/man/idem-supervisor.1" "$tmp/man/man1/"
else
	man=--man=no
	echo "service: no $build/man/idem-supervisor.1 (help2man): the unit's man page is not checked"
fi
out=$(MANPATH=$tmp/man systemd-analyze verify "$man" "$unit" 2>&1) ||
	fail "systemd-analyze verify idem.service: $out"
# verify exits 0 on a mistyped key or value, and says so: it must say nothing.
[ -z "$out" ] || fail "systemd-analyze verify idem.service warns: $out"
want() { grep -q "^$1\$" "$unit" || fail "idem.service has no $1 ($2)"; }
want Type=notify "readiness is the control API up, told on NOTIFY_SOCKET"
want KillMode=mixed "SIGTERM to the supervisor alone, which drains; its workers die on one"
want RestartPreventExitStatus=2 "exit 2 is a bad configuration"
stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s$/\1/p' "$unit")
grace=$(sed -n 's/^SHUTDOWN_GRACE=\([0-9]*\)s$/\1/p' "$src/.env-dist")
if [ -z "$stop" ] || [ -z "$grace" ] || [ "$stop" -le $((grace + 2)) ]; then
	fail "TimeoutStopSec=${stop:-?}s is not above SHUTDOWN_GRACE=${grace:-?}s + the workers' 2s"
fi
echo "service: systemd-analyze verify idem.service: no warning"

# ---- s6 ---------------------------------------------------------------------
scan=$tmp/scan
svc=$scan/idem
mkdir -p "$scan" "$tmp/state"
cp -R "$examples/s6/idem" "$svc"
[ "$(cat "$svc/notification-fd")" = 3 ] || fail "notification-fd is not 3"
# As root, the script's s6-setuidgid runs, as root; anyone else cannot
# change user, and runs it without.
if [ "$(id -u)" -eq 0 ]; then setuid="s6-setuidgid root "; else setuid=""; fi
sed -e "s|^cd /var/lib/idem |cd $tmp/state |" \
	-e "s|^exec s6-setuidgid idem /usr/bin/idem-supervisor --env /etc/idem/idem.env |exec $setuid$bin/idem-supervisor --env $tmp/idem.env |" \
	"$examples/s6/idem/run" >"$svc/run"
if ! grep -q "^cd $tmp/state " "$svc/run" ||
	! grep -q "^exec $setuid$bin/idem-supervisor .*--notify-fd 3$" "$svc/run"; then
	fail "$examples/s6/idem/run no longer cd's to /var/lib/idem and execs s6-setuidgid idem /usr/bin/idem-supervisor --env /etc/idem/idem.env --notify-fd 3"
fi
cp "$src/.env-dist" "$tmp/idem.env"

s6-svscan "$scan" >"$tmp/s6.log" 2>&1 &
scanpid=$!
for _ in $(seq 100); do s6-svok "$svc" 2>/dev/null && break; sleep 0.1; done
s6-svok "$svc" || fail "s6-svscan did not start s6-supervise on $svc: $(cat "$tmp/s6.log")"
s6-svwait -U -t 60000 "$svc" || fail "not up and ready after 60 s: $(cat "$tmp/s6.log")"
sup=$(s6-svstat -o pid "$svc")
pids=$sup
ctl() { (cd "$tmp/state" && "$bin/idemctl" --env "$tmp/idem.env" "$@"); }
# Ready means ready: the first request, right after s6 says so.
out=$(ctl start --order-id A12 --product-id 123456 --quantity 999 --wait 60) ||
	fail "the seed order, started once s6 said ready: $out; $(cat "$tmp/s6.log")"
case $out in *final_stock=1001*) ;; *) fail "the seed order: $out" ;; esac
[ "$(readlink "/proc/$sup/exe")" = "$bin/idem-supervisor" ] ||
	fail "s6's pid $sup is $(readlink "/proc/$sup/exe"), not idem-supervisor in the foreground"
parent=$(ps -o ppid= -p "$sup" | tr -d ' ')
[ "$(ps -o comm= -p "$parent")" = s6-supervise ] ||
	fail "idem-supervisor's parent is $(ps -o comm= -p "$parent"), not s6-supervise"
pids="$sup $(ps -o pid= --ppid "$sup" | tr '\n' ' ')"
[ "$(echo "$pids" | wc -w)" -ge 3 ] || fail "idem-supervisor runs no workers: $pids"
grep -q 'msg="idem-supervisor started"' "$tmp/s6.log" || fail "its log is not on s6's stream"
[ -S "$tmp/state/run/idem.sock" ] || fail "SOCKET=run/idem.sock is not under the run script's directory"

s6-svc -d "$svc"
s6-svwait -D -t 30000 "$svc" || fail "still up 30 s after s6-svc -d: $(tail -n 20 "$tmp/s6.log")"
[ "$(s6-svstat -o exitcode "$svc")" = 0 ] || fail "exit code $(s6-svstat -o exitcode "$svc") after s6-svc -d"
grep -q 'msg="shutting down: no new work; waiting for attempts in flight" signal=15' "$tmp/s6.log" ||
	fail "no drain on SIGTERM in the log: $(tail -n 20 "$tmp/s6.log")"
grep -q 'msg="idem-supervisor stopped cleanly"' "$tmp/s6.log" ||
	fail "the log does not say it stopped cleanly: $(tail -n 20 "$tmp/s6.log")"
for p in $pids; do
	[ ! -e "/proc/$p" ] || fail "process $p ($(cat "/proc/$p/comm" 2>/dev/null)) outlived the service"
done
pids=""

# A configuration that cannot work: exit 2, and finish keeps it down.
echo "WORKERS=many" >>"$tmp/idem.env"
s6-svc -u "$svc"
for _ in $(seq 100); do
	[ "$(s6-svstat -o wantedup,exitcode "$svc")" = "false 2" ] && break
	sleep 0.1
done
[ "$(s6-svstat -o up,wantedup,exitcode "$svc")" = "false false 2" ] ||
	fail "a bad configuration: s6-svstat says $(s6-svstat -o up,wantedup,exitcode "$svc"), not down for good after exit 2"
grep -q 'WORKERS=many' "$tmp/s6.log" || fail "the bad key is not in the log"
grep -q 'not restarting' "$tmp/s6.log" || fail "finish did not say it keeps the service down"
starts=$(grep -c 'WORKERS=many' "$tmp/s6.log")
sleep 1.5 # s6-supervise would restart a failed service after 1 s
[ "$(grep -c 'WORKERS=many' "$tmp/s6.log")" -eq "$starts" ] || fail "s6 restarted a service that exited 2"

s6-svscanctl -t "$scan"
for _ in $(seq 100); do kill -0 "$scanpid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$scanpid" 2>/dev/null && fail "s6-svscan did not stop on s6-svscanctl -t"
scanpid=""
echo "service: s6: ready on the notification fd, A12 $(echo "$out" | tail -n1); s6-svc -d drained it (exit 0); exit 2 kept down"
