#!/bin/sh
# deb.sh — the Debian package, built by CPack from this build, installed on
# this machine with apt-get, and the seed scenario run from it alone: the
# installed programs (/usr/bin), the package's configuration
# /etc/idem/idem.env (a conffile), the state under /var/lib/idem. Then
# purged, conffile and all.
# Root only, and only where no idem package, /etc/idem or /var/lib/idem
# was there before (it would not touch them): exit 77 otherwise (ctest:
# Skipped), saying why.
#   tests/deb.sh BUILD_DIR
set -eu
build=$(cd "$1" && pwd)
skip() { echo "deb: NOT RUN: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "installing a package needs root"
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || skip "no apt-get or dpkg-deb here"
dpkg-query -W -f='${Status}' idem 2>/dev/null | grep -q 'install ok' && skip "an idem package is installed here"
[ ! -e /etc/idem ] && [ ! -e /var/lib/idem ] || skip "/etc/idem or /var/lib/idem exists here"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/idem-deb-XXXXXX")
sup=""
installed=0
cleanup() {
	[ -z "$sup" ] || kill -9 "$sup" 2>/dev/null || true
	if [ "$installed" -eq 1 ]; then
		DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq idem >/dev/null 2>&1 || true
		rm -rf /etc/idem /var/lib/idem
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "deb: FAIL: $*" >&2; exit 1; }

(cd "$build" && cpack -G DEB -B "$tmp/pkg") >"$tmp/cpack.log" 2>&1 || { cat "$tmp/cpack.log"; fail "cpack"; }
deb=$(ls "$tmp"/pkg/idem_*.deb)
dpkg-deb -c "$deb" >"$tmp/contents"
grep -q ' ./usr/bin/idem-supervisor$' "$tmp/contents" || fail "$deb has no /usr/bin/idem-supervisor"
grep -q ' ./usr/share/man/man1/idemctl.1' "$tmp/contents" || fail "$deb has no man page"
installed=1
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$deb" \
	>"$tmp/apt.log" 2>&1 || { cat "$tmp/apt.log"; fail "apt-get install $deb"; }
for p in idem-supervisor idem-worker idem-supplier idemctl idem-stress; do
	[ "$(command -v "$p")" = "/usr/bin/$p" ] || fail "$p is not /usr/bin/$p"
	[ "$("/usr/bin/$p" --version)" = "$("$build/bin/$p" --version)" ] ||
		fail "/usr/bin/$p --version differs from the build's"
done
MANWIDTH=80 man idem-supervisor 2>/dev/null | grep -q 'control API' || [ -f /usr/share/man/man1/idem-supervisor.1.gz ] ||
	[ -f /usr/share/man/man1/idem-supervisor.1 ] || fail "no man page for idem-supervisor"

# The package's configuration: /etc/idem/idem.env, a conffile, with the
# state under /var/lib/idem.
[ -f /etc/idem/idem.env ] || fail "the package has no /etc/idem/idem.env"
dpkg-query -W -f='${Conffiles}' idem | grep -q '^ /etc/idem/idem.env ' ||
	fail "/etc/idem/idem.env is not a conffile: $(dpkg-query -W -f='${Conffiles}' idem)"
grep -qx 'STATE_DATABASE=/var/lib/idem/state.db' /etc/idem/idem.env &&
	grep -qx 'SOCKET=/var/lib/idem/idem.sock' /etc/idem/idem.env ||
	fail "/etc/idem/idem.env does not keep the state in /var/lib/idem"
cd /
idem-supervisor --env /etc/idem/idem.env --fault-kill-rate 0.3 --fault-error-rate 0.33 --seed 7 \
	--retry-initial-interval 50ms >"$tmp/supervisor.log" 2>&1 &
sup=$!
for _ in $(seq 100); do [ -S /var/lib/idem/idem.sock ] && break; sleep 0.1; done
out=$(idemctl --env /etc/idem/idem.env start --order-id A12 --product-id 123456 --quantity 999 --wait 60) ||
	{ cat "$tmp/supervisor.log"; fail "the seed order did not complete: $out"; }
case $out in *final_stock=1001*) ;; *) fail "the seed order: $out" ;; esac
for w in $(pgrep -P "$sup" -x idem-worker); do
	[ "$(readlink "/proc/$w/exe")" = /usr/bin/idem-worker ] || fail "a worker is not /usr/bin/idem-worker"
done
check=$(idemctl --env /etc/idem/idem.env check --wait 30) || fail "the checker: $check"
kill -TERM "$sup"
wait "$sup" || fail "the supervisor did not stop cleanly"
sup=""
[ -f /var/lib/idem/state.db ] || fail "no state DB in /var/lib/idem"
echo "deb: $(basename "$deb") ($(du -k "$deb" | cut -f1) KB) installed with apt-get; A12: $(echo "$out" | tail -n1)"
echo "deb: $check"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq idem >"$tmp/purge.log" 2>&1 ||
	{ cat "$tmp/purge.log"; fail "apt-get purge idem"; }
[ ! -e /etc/idem/idem.env ] || fail "apt-get purge left /etc/idem/idem.env"
