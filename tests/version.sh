#!/bin/sh
# version.sh — every program says the same version with --version, from one
# place (shared/version.c): the project's version and, built from a git
# checkout, its commit. And --help answers (exit 0, a usage) even where the
# .env in the working directory does not load.
#   tests/version.sh BIN_DIR SOURCE_DIR
set -eu
bin=$1
src=$2
want=$(sed -n 's/^project(idem VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
commit=""
if [ -d "$src/.git" ] && command -v git >/dev/null; then
	commit=$(git -c safe.directory='*' -C "$src" rev-parse --short=12 HEAD 2>/dev/null) || commit=""
fi
first=""
for p in idem-supervisor idem-worker idem-supplier idemctl idem-point idem-heartbeat idem-stress idem-bench; do
	out=$("$bin/$p" --version) || { echo "version: $p --version exited $?" >&2; exit 1; }
	case $out in
	"$p $want"*) ;;
	*) echo "version: $p says \"$out\"; want \"$p $want ...\"" >&2; exit 1 ;;
	esac
	if [ -n "$commit" ]; then
		case $out in
		*"(commit $commit"*) ;;
		*) echo "version: $p says \"$out\"; want commit $commit" >&2; exit 1 ;;
		esac
	fi
	rest=${out#"$p "}
	[ -z "$first" ] && first=$rest
	[ "$rest" = "$first" ] || { echo "version: $p says \"$rest\", others \"$first\"" >&2; exit 1; }
	echo "$out"
done
echo "version: all eight programs say $first"

# --help beside a .env that does not load
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'WORKERS=abc\n' >"$tmp/.env"
for p in idem-supervisor idem-worker idem-supplier idemctl; do
	out=$(cd "$tmp" && "$bin/$p" --help 2>"$tmp/err") ||
		{ echo "version: $p --help beside a bad .env exited $?: $(cat "$tmp/err")" >&2; exit 1; }
	case $out in
	*usage*) ;;
	*) echo "version: $p --help beside a bad .env printed no usage: $out" >&2; exit 1 ;;
	esac
done
grep -q 'WORKERS=abc is not a number' "$tmp/err" ||
	{ echo "version: idemctl --help beside a bad .env does not say what is wrong: $(cat "$tmp/err")" >&2; exit 1; }
echo "version: --help answers beside a .env that does not load"
