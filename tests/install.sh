#!/bin/sh
# install.sh — `cmake --install` into a temporary prefix, then idem run
# from there alone: every program and its man page, the C SDK found by
# pkg-config (an activity compiles with it), the Python SDK, the examples
# with their scripts executable (examples/service among them), and the
# seed scenario (order A12 of 999, final stock 1001, checker OK) run by the
# installed supervisor from / with its configuration under etc/idem and
# its state under var/lib/idem, its workers the installed idem-worker.
#   tests/install.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1
src=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/idem-install-XXXXXX")
sup=""
cleanup() {
	[ -z "$sup" ] || kill -9 "$sup" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "install: FAIL: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$tmp/usr" >"$tmp/install.log" || { cat "$tmp/install.log"; fail "cmake --install"; }
usr=$tmp/usr
for p in idem-supervisor idem-worker idem-supplier idemctl idem-point idem-heartbeat idem-stress; do
	[ -x "$usr/bin/$p" ] || fail "$p is not installed in bin/"
	page=$usr/share/man/man1/$p.1
	[ -s "$page" ] || fail "no man page $page"
	grep -q "^\.TH \"*$(echo "$p" | tr a-z A-Z)" "$page" || fail "$page is not a man page"
	grep -q -- '--version' "$page" || grep -q -- '\\-\\-version' "$page" || fail "$page does not say --version"
done
[ -f "$usr/lib/python3/dist-packages/idem.py" ] || fail "the Python SDK is not installed"
[ -f "$usr/share/idem/idem.env" ] || fail "no example configuration"
[ -f "$usr/share/idem/examples/payments/idem.json" ] || fail "the examples are not installed"
[ -f "$usr/share/idem/examples/service/idem.service" ] || fail "the systemd unit is not installed"
for f in service/s6/idem/run service/s6/idem/finish shell/append.sh; do
	[ -x "$usr/share/idem/examples/$f" ] || fail "examples/$f is installed but not executable"
done

# The C SDK through pkg-config.
pc=$(find "$usr" -name idem.pc | head -n1)
[ -n "$pc" ] || fail "no idem.pc"
cflags=$(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --cflags idem) || fail "pkg-config --cflags idem"
cc -std=c11 -Wall -Werror $cflags -o "$tmp/example" "$src/sdk/c/example.c" ||
	fail "sdk/c/example.c does not build with pkg-config --cflags idem ($cflags)"
PYTHONPATH=$usr/lib/python3/dist-packages python3 -c 'import idem' || fail "import idem"

# The seed scenario, from the installed programs only.
mkdir -p "$tmp/etc/idem" "$tmp/var/lib/idem"
sed -e "s|^SOCKET=.*|SOCKET=$tmp/var/lib/idem/idem.sock|" \
	-e "s|^DATABASE=.*|DATABASE=$tmp/var/lib/idem/inventory.db|" \
	-e "s|^STATE_DATABASE=.*|STATE_DATABASE=$tmp/var/lib/idem/state.db|" \
	-e "s|^SUPPLIER_DATABASE=.*|SUPPLIER_DATABASE=$tmp/var/lib/idem/supplier.db|" \
	-e "s|^SUPPLIER_SOCKET=.*|SUPPLIER_SOCKET=$tmp/var/lib/idem/supplier.sock|" \
	"$usr/share/idem/idem.env" >"$tmp/etc/idem/idem.env"
env=$tmp/etc/idem/idem.env
cd /
"$usr/bin/idem-supervisor" --env "$env" --fault-kill-rate 0.3 --seed 7 \
	--retry-initial-interval 50ms >"$tmp/supervisor.log" 2>&1 &
sup=$!
ctl() { "$usr/bin/idemctl" --env "$env" "$@"; }
for _ in $(seq 100); do [ -S "$tmp/var/lib/idem/idem.sock" ] && break; sleep 0.1; done
out=$(ctl start --order-id A12 --product-id 123456 --quantity 999 --wait 30) ||
	{ cat "$tmp/supervisor.log"; fail "the seed order did not complete: $out"; }
case $out in *final_stock=1001*) ;; *) fail "the seed order: $out" ;; esac
workers=$(pgrep -P "$sup" -x idem-worker || true)
[ -n "$workers" ] || fail "no idem-worker under the supervisor"
for w in $workers; do
	exe=$(readlink "/proc/$w/exe")
	[ "$exe" = "$usr/bin/idem-worker" ] || fail "a worker runs $exe, not the installed one"
done
check=$(ctl check --wait 30) || fail "the checker: $check"
kill -TERM "$sup"
wait "$sup" || fail "the supervisor did not stop cleanly"
sup=""
echo "install: $(ls "$usr/bin" | wc -l) programs and man pages in $usr; A12: $out"
echo "install: $check"
