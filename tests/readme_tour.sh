#!/bin/sh
# readme_tour.sh — runs the README's "crash-test your own activity" block as
# written, line by line, in a scratch directory, and checks each line's exit
# code (the "# exit N" its comment says) and verdict.
#   readme_tour.sh SOURCE_DIR BIN_DIR
# scripts/stress there runs the built idem-stress (the real script would
# install and build first; the test runs on the build under test).
set -u
src=$1
bin=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/idem-readme-XXXXXX")
trap 'rm -rf "$work"' EXIT

mkdir "$work/scripts"
printf '#!/bin/sh\nexec "%s/idem-stress" "$@"\n' "$bin" >"$work/scripts/stress"
chmod +x "$work/scripts/stress"
ln -s "$src/examples" "$work/examples"

# the block after the marker, up to its closing fence
awk '/<!-- tests\/readme_tour.sh runs this block -->/ { on = 1; next }
     on && /^```sh/ { inside = 1; next }
     inside && /^```/ { exit }
     inside { print }' "$src/README.md" >"$work/block"
n=$(grep -c . "$work/block")
if [ "$n" -lt 3 ]; then
	echo "readme_tour: the README's block has $n lines; expected the tour's 3 commands" >&2
	exit 1
fi

cd "$work" || exit 1
fails=0
while IFS= read -r line; do
	want=$(printf '%s\n' "$line" | sed -n 's/.*# exit \([0-9]*\).*/\1/p')
	want=${want:-0}
	echo "readme_tour: \$ $line"
	sh -c "$line" >"$work/out" 2>&1
	got=$?
	if [ "$got" != "$want" ]; then
		cat "$work/out"
		echo "readme_tour: exit $got, the README says $want: $line" >&2
		fails=$((fails + 1))
		continue
	fi
	case $line in
	*--naive*) verdict="verdict       NAIVE MODE" ;;
	*scripts/stress*) verdict="verdict       OK" ;;
	*) verdict="" ;;
	esac
	if [ -n "$verdict" ] && ! grep -q "^$verdict" "$work/out"; then
		cat "$work/out"
		echo "readme_tour: no \"$verdict\" line: $line" >&2
		fails=$((fails + 1))
	fi
	grep '^verdict\|^check ' "$work/out"
done <"$work/block"
[ "$fails" -eq 0 ] && echo "readme_tour: ok, $n commands as written"
[ "$fails" -eq 0 ]
