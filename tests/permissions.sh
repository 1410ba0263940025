#!/bin/sh
# permissions.sh — who may touch a running supervisor's files: its run
# directory and every database are its user's alone (0700 / 0600), the
# control socket is 0600, or with SOCKET_GROUP 0660 and that group's,
# which may pass through the directory to it but not read the databases;
# a directory the operator made is left as it is; the TCP listener
# (HTTP_LISTEN) asks for the token of API_TOKEN_FILE (0600, made at the
# first start), which neither other user can read. Checked
# with two users the test makes: one in the group (uses the socket, cannot
# read a database), one outside it (can do neither). Root only (it makes
# users): exit 77 otherwise (ctest: Skipped), saying why.
#   tests/permissions.sh BIN_DIR
set -eu
bin=$(cd "$1" && pwd)
[ "$(id -u)" -eq 0 ] || { echo "permissions: NOT RUN: making users needs root"; exit 77; }
command -v useradd >/dev/null && command -v runuser >/dev/null ||
	{ echo "permissions: NOT RUN: no useradd or runuser here"; exit 77; }
group=idemg$$
member=idemm$$
other=idemo$$
tmp=$(mktemp -d "${TMPDIR:-/tmp}/idem-perm-XXXXXX")
sup=""
cleanup() {
	[ -z "$sup" ] || kill -9 "$sup" 2>/dev/null || true
	userdel "$member" 2>/dev/null || true
	userdel "$other" 2>/dev/null || true
	groupdel "$group" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "permissions: FAIL: $*" >&2; exit 1; }
groupadd "$group"
useradd -M -N -g nogroup -G "$group" -s /bin/sh "$member"
useradd -M -N -g nogroup -s /bin/sh "$other"
chmod 0711 "$tmp"
# The users run idemctl from BIN_DIR; a build in a private directory (a
# clone in a mktemp -d) is out of their reach: the programs are copied.
if ! runuser -u "$other" -- test -x "$bin/idemctl"; then
	mkdir -m 0755 "$tmp/bin"
	cp -p "$bin"/idem-* "$bin/idemctl" "$tmp/bin/"
	bin=$tmp/bin
fi
cd "$tmp"
umask 022 # the caller's: the supervisor must not depend on it
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin/idem-supervisor" --env=/dev/null --socket-group="$group" --http-listen="127.0.0.1:$port" \
	>"$tmp/supervisor.log" 2>&1 &
sup=$!
for _ in $(seq 100); do [ -S run/idem.sock ] && break; sleep 0.1; done
[ -S run/idem.sock ] || { cat "$tmp/supervisor.log"; fail "no socket"; }
"$bin/idemctl" --env=/dev/null --socket run/idem.sock start --order-id A12 --product-id 123456 \
	--quantity 999 --wait 30 >/dev/null || fail "the owner's start"

mode() { stat -c '%a %G' "$1"; }
[ "$(mode run)" = "710 $group" ] || fail "run/ is $(mode run), not 710 $group"
[ "$(mode run/idem.sock)" = "660 $group" ] || fail "the socket is $(mode run/idem.sock)"
for f in run/state.db run/inventory.db run/supplier.db run/state.db-wal run/state.db.lock \
	run/api-token; do
	[ "$(stat -c '%a' "$f")" = 600 ] || fail "$f is $(stat -c '%a' "$f"), not 600"
done
ctl_as() { runuser -u "$1" -- "$bin/idemctl" --env=/dev/null --socket "$tmp/run/idem.sock" stats; }
ctl_as "$member" >/dev/null 2>"$tmp/member.err" || { cat "$tmp/member.err"; fail "$member (in $group) cannot use the socket"; }
if runuser -u "$member" -- cat "$tmp/run/state.db" >/dev/null 2>&1; then
	fail "$member can read the state DB"
fi
if ctl_as "$other" >/dev/null 2>"$tmp/other.err"; then
	fail "$other (not in $group) can use the socket"
fi
grep -q 'Permission denied' "$tmp/other.err" || fail "$other: $(cat "$tmp/other.err")"
if runuser -u "$other" -- cat "$tmp/run/state.db" >/dev/null 2>&1; then
	fail "$other can read the state DB"
fi
# The TCP listener: no user but the owner can read the token, and without
# it the listener refuses (401); with a copy of it, it answers.
http_as() {
	u=$1
	shift
	runuser -u "$u" -- "$bin/idemctl" --env=/dev/null --http "http://127.0.0.1:$port" "$@"
}
for u in "$member" "$other"; do
	if runuser -u "$u" -- cat "$tmp/run/api-token" >/dev/null 2>&1; then
		fail "$u can read the API token"
	fi
	if (cd "$tmp" && http_as "$u" stats >/dev/null 2>"$tmp/$u.tcp"); then
		fail "$u used the TCP listener without the token"
	fi
	grep -q "needs the control API's token" "$tmp/$u.tcp" &&
		grep -q "cannot read API_TOKEN_FILE run/api-token: Permission denied" "$tmp/$u.tcp" ||
		fail "$u over TCP without the token: $(cat "$tmp/$u.tcp")"
done
if http_as "$other" --api-token-file=/nonexistent start --order-id T1 --product-id 123456 \
	--quantity 1 >/dev/null 2>"$tmp/start.err"; then
	fail "$other started a workflow over TCP without the token"
fi
grep -q "needs the control API's token" "$tmp/start.err" ||
	fail "$other's start without the token: $(cat "$tmp/start.err")"
install -o "$other" -m 600 run/api-token "$tmp/other.token"
http_as "$other" --api-token-file="$tmp/other.token" stats >/dev/null 2>"$tmp/other.tcp" ||
	fail "$other with the token over TCP: $(cat "$tmp/other.tcp")"
if "$bin/idemctl" --env=/dev/null --socket run/idem.sock get T1 >/dev/null 2>"$tmp/get.err"; then
	fail "the refused start over TCP created T1"
fi
grep -q 'unknown workflow "T1"' "$tmp/get.err" || fail "idemctl get T1: $(cat "$tmp/get.err")"
kill -TERM "$sup"
wait "$sup" || fail "the supervisor did not stop cleanly"
sup=""
# Without SOCKET_GROUP, the socket is the user's alone.
mkdir alone
"$bin/idem-supervisor" --env=/dev/null --socket=alone/idem.sock --database=alone/app.db \
	--state-database=alone/state.db --supplier-database=alone/supplier.db \
	--supplier-socket=alone/supplier.sock >"$tmp/alone.log" 2>&1 &
sup=$!
for _ in $(seq 100); do [ -S alone/idem.sock ] && break; sleep 0.1; done
[ "$(stat -c '%a' alone/idem.sock)" = 600 ] || fail "without SOCKET_GROUP the socket is $(stat -c '%a' alone/idem.sock)"
[ "$(stat -c '%a' alone)" = 755 ] || fail "the operator's directory alone/ was changed to $(stat -c '%a' alone)"
kill -TERM "$sup"
wait "$sup" || fail "the second supervisor did not stop cleanly"
sup=""
echo "permissions: run/ 710 and the socket 660 of $group; databases and the API token 600; $member uses the socket but cannot read a database; $other can do neither ($(cat "$tmp/other.err")); over TCP neither may do anything without the token, and $other may with a copy of it"
