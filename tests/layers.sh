#!/bin/sh
# tests/layers.sh [--graph] [ROOT] — checks that idem's layers include each
# other only downwards; run by ctest as `layers` (label static).
#
# Reads the `#include "..."` lines of every .c/.h under shared/, supervisor/,
# worker/, apps/ and idemctl/ of ROOT (default: this script's checkout) and
# fails, naming file, line and rule, when:
#   1. a file in shared/ includes a header of supervisor/, worker/, apps/ or
#      idemctl/ (shared/ is the bottom layer);
#   2. a file in apps/ includes a header of supervisor/, worker/ or idemctl/
#      (apps see the engine only through shared/idem_app.h);
#   3. a file in supervisor/, worker/ or idemctl/ that is not a program's
#      main file (PROGRAMS below) includes an app's own header
#      (apps/<name>/*.h) or apps/apps.h;
#   4. the headers include each other in a cycle (the cycle is printed);
#   5. a supervisor/ file reaches, directly or through headers, a header
#      that FORBIDDEN below keeps from it (a loop between modules);
#   6. the code (not the comments) of shared/, supervisor/, worker/ or
#      idemctl/ names an app's tables, activities, keys or fields
#      (APP_WORDS below): apps plug in beside the engine.
# "x.h" resolves as the build's include paths do: the including file's own
# folder, then shared/, supervisor/, worker/, apps/; a name found nowhere
# there is looked for in idemctl/ and apps/<name>/ last, so that a
# misplaced include is named rather than reported as unresolved.
# --graph also prints the layer graph it found (for docs).
# Exit: 0 clean, 1 a rule is broken, 2 usage.
set -eu

graph=0
if [ "${1:-}" = "--graph" ]; then
	graph=1
	shift
fi
case ${1:-} in
-*) echo "usage: $0 [--graph] [ROOT]" >&2; exit 2 ;;
esac
root=${1:-$(dirname "$0")/..}
cd "$root" || exit 2
for d in shared supervisor worker apps idemctl; do
	[ -d "$d" ] || { echo "layers: $root has no $d/ (is ROOT the source tree?)" >&2; exit 2; }
done

# The programs' main files: the only files of supervisor/, worker/ and
# idemctl/ that may include apps/apps.h or an app's own headers (shell
# patterns, matched against the path from ROOT). idemctl is all program.
PROGRAMS='supervisor/main.c worker/main.c idemctl/*.c'

# Rule 5: pairs (file, headers it may not reach) inside supervisor/, paths
# relative to supervisor/. "only:x.h" means: nothing of idem but x.h.
FORBIDDEN='
# file           may not reach                      why
pool.c           engine.h,api.h,metrics.h           the pool runs workers and knows nothing of the engine: engine.c drives the pool through pool.h, never the reverse
spawn.c          engine.h,api.h,metrics.h           part of the pool (see pool_internal.h): knows nothing of the engine
spare.c          engine.h,api.h,metrics.h           part of the pool (see pool_internal.h): knows nothing of the engine
pool_internal.h  engine.h,api.h,metrics.h           the pool'"'"'s insides: knows nothing of the engine
store.c          engine.h,pool.h,api.h,metrics.h    the store persists workflows and steps; the engine and the pool call it, it calls neither
workflow.c       engine.h,pool.h,store.h,api.h,metrics.h  workflow is the pure step logic: no storage, no workers, no engine
histogram.c      only:histogram.h                   a leaf: the pool, engine and metrics use it, it uses nothing of idem
'

{
	printf '%s\n' "$FORBIDDEN"
	echo '%%'
	find shared supervisor worker apps idemctl -type f \( -name '*.c' -o -name '*.h' \) |
		LC_ALL=C sort
} | awk -v graph="$graph" -v programs="$PROGRAMS" '
function top(p) { sub(/\/.*/, "", p); return p }
function dirof(p) { if (p !~ /\//) return "."; sub(/\/[^\/]*$/, "", p); return p }
function base(p) { sub(/.*\//, "", p); return p }
# normalize: "a/./b/../c.h" -> "a/c.h"
function norm(p,   n, i, out, k, parts) {
	n = split(p, parts, "/"); k = 0
	for (i = 1; i <= n; i++) {
		if (parts[i] == "." || parts[i] == "") continue
		if (parts[i] == ".." && k > 0 && seg[k] != "..") { k--; continue }
		seg[++k] = parts[i]
	}
	out = ""
	for (i = 1; i <= k; i++) out = out (i > 1 ? "/" : "") seg[i]
	return out
}
function resolve(from, name,   d, i, c) {
	d = dirof(from)
	c = norm(d "/" name); if (c in isfile) return c
	for (i = 1; i <= nsearch; i++) {
		c = norm(search[i] "/" name); if (c in isfile) return c
	}
	if (name !~ /\//) {
		if (("idemctl/" name) in isfile) return "idemctl/" name
		if (name in appsub) return appsub[name]
	}
	c = norm(name); if (c in isfile) return c   # a path from the root
	return ""
}
function isprog(f,   i) {
	for (i = 1; i <= nprog; i++) if (f ~ progre[i]) return 1
	return 0
}
# a shell pattern of PROGRAMS as an anchored regex (only * is special)
function globre(g) {
	gsub(/\./, "[.]", g); gsub(/\*/, "[^/]*", g)
	return "^" g "$"
}
function fail(rule, msg) {
	printf "layers: rule %s: %s\n", rule, msg
	nfail++
}
function inc(f, h) { return f ":" eline[f, h] ": #include \"" ename[f, h] "\" (" h ")" }

# Rule 4: depth-first search over header -> header edges; a grey node seen
# again closes a cycle, printed from the stack.
function dfs(u,   i, v, k, s) {
	color[u] = 1; stk[++sp] = u
	for (i = 1; i <= nadj[u]; i++) {
		v = adj[u, i]
		if (v !~ /\.h$/) continue
		if (color[v] == 1) {
			s = ""
			for (k = sp; k >= 1 && stk[k] != v; k--) ;
			for (; k <= sp; k++) s = s stk[k] ":" eline[stk[k], (k < sp ? stk[k + 1] : v)] " -> "
			fail(4, "include cycle: " s v)
		} else if (color[v] == 0)
			dfs(v)
	}
	sp--; color[u] = 2
}

# Rule 5: breadth-first over the includes from file f (run r); via[] keeps
# the way back for the message.
function reach(f, r,   q, qn, qi, u, i, v) {
	qn = 0; queue[r, ++qn] = f; seen[r, f] = 1
	for (qi = 1; qi <= qn; qi++) {
		u = queue[r, qi]
		for (i = 1; i <= nadj[u]; i++) {
			v = adj[u, i]
			if ((r, v) in seen) continue
			seen[r, v] = 1; via[r, v] = u; queue[r, ++qn] = v
		}
	}
}
function chain(f, r, h,   s, next_) {
	s = h
	while (h != f) { next_ = h; h = via[r, h]; s = h ":" eline[h, next_] " -> " s }
	return s
}

BEGIN {
	nsearch = split("shared supervisor worker apps", search, " ")
	nprog = split(programs, progs, " ")
	for (i = 1; i <= nprog; i++) progre[i] = globre(progs[i])
	phase = 1
}
phase == 1 && $0 == "%%" { phase = 2; next }
phase == 1 {
	sub(/#.*/, "")
	if (NF < 2) next
	nrule++; rfile[nrule] = "supervisor/" $1; rhdr[nrule] = $2
	$1 = ""; $2 = ""; sub(/^ +/, ""); rwhy[nrule] = $0
	next
}
{ isfile[$0] = 1; files[++nfiles] = $0
  if ($0 ~ /^apps\/[^\/]+\/[^\/]+\.h$/ && !(base($0) in appsub)) appsub[base($0)] = $0 }

END {
	for (fi = 1; fi <= nfiles; fi++) {
		f = files[fi]; ln = 0
		while ((getline line < f) > 0) {
			ln++
			if (line !~ /^[ \t]*#[ \t]*include[ \t]*"/) continue
			sub(/^[ \t]*#[ \t]*include[ \t]*"/, "", line); sub(/".*/, "", line)
			h = resolve(f, line)
			if (h == "") { printf "layers: note: %s:%d: #include \"%s\" is in none of the source folders\n", f, ln, line; continue }
			nincl++
			if ((f, h) in eline) continue
			eline[f, h] = ln; ename[f, h] = line; adj[f, ++nadj[f]] = h
		}
		close(f)
	}

	for (fi = 1; fi <= nfiles; fi++) {
		f = files[fi]; tf = top(f)
		for (i = 1; i <= nadj[f]; i++) {
			h = adj[f, i]; th = top(h)
			if (tf == "shared" && th != "shared")
				fail(1, inc(f, h) ": shared/ is the bottom layer and includes only shared/ headers")
			if (tf == "apps" && (th == "supervisor" || th == "worker" || th == "idemctl"))
				fail(2, inc(f, h) ": an app sees the engine only through shared/idem_app.h and shared/ headers")
			if ((tf == "supervisor" || tf == "worker" || tf == "idemctl") && th == "apps" && !isprog(f)) {
				if (h == "apps/apps.h")
					fail(3, inc(f, h) ": only the programs'"'"' main files (" programs ") include apps/apps.h")
				else
					fail(3, inc(f, h) ": an app'"'"'s own header is the app'"'"'s business; the engine and the worker see apps through shared/idem_app.h")
			}
		}
	}

	for (fi = 1; fi <= nfiles; fi++)
		if (files[fi] ~ /\.h$/ && color[files[fi]] == 0) dfs(files[fi])

	for (r = 1; r <= nrule; r++) {
		f = rfile[r]
		if (!(f in isfile)) { printf "layers: note: rule 5 names %s, which is gone; update FORBIDDEN in tests/layers.sh\n", f; continue }
		reach(f, r)
		only = (rhdr[r] ~ /^only:/)
		if (only) {
			keep = "supervisor/" substr(rhdr[r], 6)
			for (fi = 1; fi <= nfiles; fi++) {
				h = files[fi]
				# named once, where the file or its own header steps out
				if (h != f && h != keep && ((r, h) in seen) && (via[r, h] == f || via[r, h] == keep))
					fail(5, f " reaches " h " (" chain(f, r, h) "): " rwhy[r])
			}
		} else {
			nh = split(rhdr[r], hs, ",")
			for (i = 1; i <= nh; i++) {
				h = "supervisor/" hs[i]
				if ((r, h) in seen)
					fail(5, f " reaches " h " (" chain(f, r, h) "): " rwhy[r])
			}
		}
	}

	if (graph) printgraph()
	if (nfail) { printf "layers: FAILED: %d violation(s) (%d files checked)\n", nfail, nfiles; exit 1 }
	printf "layers: ok: %d files, %d includes, rules 1-4 and %d rule(s) of FORBIDDEN hold\n", nfiles, nincl, nrule
}

# The layer graph: which layers include which (count of #include lines);
# supervisor/main.c and worker/main.c are the "programs" layer.
function layer(f) {
	if (f == "supervisor/main.c" || f == "worker/main.c") return "programs"
	return top(f)
}
function printgraph(   order, n, i, j, f, k, a, b, s) {
	n = split("programs idemctl apps worker supervisor shared", order, " ")
	for (i = 1; i <= nfiles; i++) {
		f = files[i]
		for (k = 1; k <= nadj[f]; k++) {
			a = layer(f); b = layer(adj[f, k])
			if (a != b) cnt[a, b]++
		}
	}
	print "layer graph (an arrow: #include lines from one layer into another):"
	for (i = 1; i <= n; i++) {
		s = ""
		for (j = 1; j <= n; j++)
			if ((order[i], order[j]) in cnt) s = s (s == "" ? "" : ", ") order[j] " (" cnt[order[i], order[j]] ")"
		printf "  %-10s -> %s\n", order[i], (s == "" ? "nothing" : s)
	}
	print "  (programs: supervisor/main.c, worker/main.c; idemctl/ is one program)"
	print "supervisor modules (a module: its .c and .h; an arrow: includes the other'"'"'s header):"
	for (i = 1; i <= nfiles; i++) {
		f = files[i]
		if (top(f) != "supervisor" || f == "supervisor/main.c") continue
		a = base(f); sub(/\.[ch]$/, "", a)
		for (k = 1; k <= nadj[f]; k++) {
			if (top(adj[f, k]) != "supervisor") continue
			b = base(adj[f, k]); sub(/\.h$/, "", b)
			if (a != b && !((a, b) in medge)) { medge[a, b] = 1; mout[a] = mout[a] " " b }
			mod[a] = 1
		}
		mod[a] = 1
	}
	for (i = 1; i <= nfiles; i++) {
		f = files[i]
		if (top(f) != "supervisor" || f == "supervisor/main.c") continue
		a = base(f); sub(/\.[ch]$/, "", a)
		if (a in mshown) continue
		mshown[a] = 1
		printf "  %-14s ->%s\n", a, (mout[a] == "" ? " nothing" : mout[a])
	}
}
' || status=$?

# Rule 6: the engine's folders name none of an app's tables, activities,
# config keys or fields in their code (comments may, as examples): the
# words are the inventory app's (whose code lived there before it moved to
# apps/inventory/) and the transfer app's. A new app's names go here too
# when a word of theirs could leak into the engine.
APP_WORDS='update_inventory|supplier_order|order_id|product_id|REORDER_THRESHOLD|REORDER_QUANTITY|SEED_STOCK|SUPPLIER_DATABASE|SUPPLIER_SOCKET|restocks|adjustments|transfer_id|TRANSFER_ACCOUNTS|debits|credits'
leaks=$(find shared supervisor worker idemctl -name '*.[ch]' | sort | while read -r f; do
	awk -v f="$f" -v words="$APP_WORDS" '
	# drop /* ... */ comments (also over lines) and // ones, keep line numbers
	{
		line = $0; out = ""
		while (line != "") {
			if (inc) {
				e = index(line, "*/")
				if (e == 0) { line = ""; break }
				line = substr(line, e + 2); inc = 0
			} else {
				b = index(line, "/*"); d = index(line, "//")
				if (d > 0 && (b == 0 || d < b)) { out = out substr(line, 1, d - 1); line = ""; break }
				if (b == 0) { out = out line; line = ""; break }
				out = out substr(line, 1, b - 1); line = substr(line, b + 2); inc = 1
			}
		}
		if (out ~ words) printf "%s:%d: %s\n", f, NR, out
	}' "$f"
done)
if [ -n "$leaks" ]; then
	printf '%s\n' "$leaks" | sed 's/^/layers: rule 6: an app'"'"'s name in the engine'"'"'s code: /'
	status=1
else
	echo "layers: ok: rule 6, the engine's code names no app's tables, activities or keys"
fi
exit "${status:-0}"
