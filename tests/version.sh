#!/bin/sh
# version.sh — every program says the same version with --version, from one
# place (shared/version.c): the project's version and, built from a git
# checkout, its commit.
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
