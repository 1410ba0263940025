/* stress.c — idem-stress, the stress test behind scripts/stress.
 *
 * It runs a real idem-supervisor in a directory of its own with faults on,
 * drives it with --concurrency client threads over the control API (each
 * starts a workflow and long-polls it until it closes), SIGKILLs and
 * restarts the supervisor --supervisor-kills times along the way, then
 * runs the checker and prints a report (and --json FILE): workflows, attempts,
 * faults by kind and crash point, retries, worker respawns, supervisor
 * restarts and recovery times, throughput, and the checker's verdict with
 * violation counts. Exit 0 when every invariant holds, 1 on any violation
 * (always, in --naive mode, where violations are the expected outcome),
 * 2 on usage or set-up errors. Every random choice comes from --seed,
 * printed with the command that replays the run. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "apps.h"
#include "check.h"
#include "clock.h"
#include "db.h"
#include "exitcodes.h"
#include "httpc.h"
#include "pgconn.h"
#include "pgsnap.h"
#include "xalloc.h"
#include "version.h"

#define HTTP_TIMEOUT_MS 60000
#define WAIT_POLL_S 20
#define STR_(x) #x
#define STR(x) STR_(x)
#define MAX_KILLS 1000

struct options {
	const char *app;  /* inventory | transfer | an app's directory (app_flags, start_one) */
	json_t *plan;     /* a file-defined app's "stress": what its clients start */
	const char *base; /* the built-in app it stands on ("base"), or NULL */
	long workflows;
	int concurrency;
	int workers;
	int products;
	long stock;
	long threshold;
	long reorder;
	int max_quantity;
	double kill_rate, async_kill_rate, error_rate, delay_rate, peer_rate;
	int supervisor_kills;
	uint64_t seed;
	int seed_set;
	int swarm;
	int naive;
	const char *json_path;
	double time_budget_s;
	const char *dir;
	const char *state_db; /* --state-database: a PostgreSQL URL, else DIR/state.db */
	const char *app_db;   /* --database: a PostgreSQL URL, else DIR/app.db */
	int keep;
	double progress_s;
	const char *kill_points;
	const char *sync;
	long recovery_test; /* > 0: the recovery measurement with this many in flight */
};

struct kill_record {
	double at_s;        /* when it was killed, seconds since the first start */
	long at_completed;  /* completed workflows when it was killed */
	double recovery_ms; /* restart until the API answered */
	long running_after; /* running workflows it resumed */
};

struct run {
	struct options o;
	char dir[512];
	char sock[600];
	char bindir[512];
	char **sup_argv;
	pid_t sup_pid;
	pthread_mutex_t sup_lock; /* sup_pid and restarts */
	int restarts;
	struct kill_record kills[MAX_KILLS];
	long kill_at[MAX_KILLS];
	atomic_long next;    /* next workflow to start */
	atomic_long started; /* acknowledged starts */
	atomic_long completed;
	atomic_long failed;
	atomic_long refused; /* failed with a legitimate refusal (InsufficientStock) */
	atomic_int done;     /* clients finished */
	atomic_int stop;     /* time budget exceeded */
	int start_only;      /* clients start workflows and do not wait */
	json_t *recovery;    /* the --recovery-test figures */
	json_t *cpu;         /* CPU seconds by process kind, read at the end */
	long rss_kib;        /* the supervisor's peak RSS */
	long state_commits;  /* state-DB commits of the last supervisor run */
	double *latency_ms;  /* per workflow, submit to completion */
	double *closed_s;    /* per workflow, when it closed (s since t0); 0: not */
	int64_t t0;
	long worker_respawns_before; /* pool restarts of earlier incarnations */
	long worker_respawns_last;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("idem-stress: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(IDEM_EXIT_USAGE);
}

/* ---- randomness: all of it from the seed --------------------------------- */

static uint64_t mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A number in [0, 1) for (seed, what, i). */
static double uniform(uint64_t seed, uint64_t what, uint64_t i)
{
	return (double)(mix64(seed ^ mix64(what ^ mix64(i))) >> 11) * 0x1.0p-53;
}

/* ---- options --------------------------------------------------------------- */

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));

static char *fmt(const char *f, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, f);
	if (vasprintf(&s, f, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

/* A file-defined app's "stress" member: {"workflow": TYPE, "input":
 * TEMPLATE, "refusals": [ERROR_TYPE...]} (NEW). */
static json_t *stress_plan(const char *app, const char **base)
{
	struct stat st;
	/* APP is the app's directory or its file, as the loader takes it */
	char *path =
	    stat(app, &st) == 0 && !S_ISDIR(st.st_mode) ? strdup(app) : fmt("%s/idem.json", app);
	json_error_t jerr;
	json_t *root = json_load_file(path, 0, &jerr), *plan;

	if (root == NULL)
		die("%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
	plan = json_object_get(root, "stress");
	if (!json_is_object(plan) || !json_is_string(json_object_get(plan, "workflow")) ||
	    !json_is_object(json_object_get(plan, "input")))
		die("%s: no \"stress\" member to tell what to start: give {\"workflow\": TYPE, "
		    "\"input\": {...}} (see docs/own-activities.md)",
		    path);
	json_incref(plan);
	if (json_is_string(json_object_get(root, "base")))
		*base = strdup(json_string_value(json_object_get(root, "base")));
	json_decref(root);
	free(path);
	return plan;
}

/* The input of workflow i from the plan's template: "{i}" in a string is
 * i, "{i%N}" i modulo N, "{id}" the workflow id (S<i>), {"$random": [LO,
 * HI]} a whole number drawn from the seed (*k numbers each field's
 * draw). NEW. */
static json_t *instantiate(const json_t *t, uint64_t seed, long i, int *k)
{
	const json_t *range = json_object_get(t, "$random");
	const char *key;
	json_t *v, *out;
	size_t at;

	if (json_is_object(t) && json_object_size(t) == 1 && json_is_array(range)) {
		json_int_t lo = json_integer_value(json_array_get(range, 0));
		json_int_t hi = json_integer_value(json_array_get(range, 1));

		(*k)++;
		return json_integer(lo +
		                    (json_int_t)(uniform(seed, 300 + (uint64_t)*k, (uint64_t)i) *
		                                 (double)(hi - lo + 1)));
	}
	if (json_is_object(t)) {
		out = json_object();
		json_object_foreach((json_t *)t, key, v)
		    json_object_set_new(out, key, instantiate(v, seed, i, k));
		return out;
	}
	if (json_is_array(t)) {
		out = json_array();
		json_array_foreach(t, at, v) json_array_append_new(out, instantiate(v, seed, i, k));
		return out;
	}
	if (json_is_string(t)) {
		const char *s = json_string_value(t);
		char *text = strdup(""), *next;

		while (*s != '\0') {
			const char *open = strchr(s, '{');
			const char *with = NULL, *close = open != NULL ? strchr(open, '}') : NULL;
			char num[32];
			long mod = 0;

			if (close != NULL && strncmp(open, "{i}", 3) == 0)
				with = (snprintf(num, sizeof(num), "%ld", i), num);
			else if (close != NULL && strncmp(open, "{id}", 4) == 0)
				with = (snprintf(num, sizeof(num), "S%ld", i), num);
			else if (close != NULL && sscanf(open, "{i%%%ld}", &mod) == 1 && mod > 0)
				with = (snprintf(num, sizeof(num), "%ld", i % mod), num);
			if (with == NULL) {
				size_t n = open != NULL ? (size_t)(open - s) + 1 : strlen(s);
				next = fmt("%s%.*s", text, (int)n, s);
				s += n;
			} else {
				next = fmt("%s%.*s%s", text, (int)(open - s), s, with);
				s = close + 1;
			}
			free(text);
			text = next;
		}
		out = json_string(text);
		free(text);
		return out;
	}
	return json_deep_copy(t);
}

static const char usage_text[] =
    "usage: scripts/stress [OPTIONS]\n"
    "\n"
    "Runs idem-supervisor under faults and supervisor kills with many workflows,\n"
    "then proves with the checker that nothing was lost or applied twice.\n"
    "\n"
    "  --app NAME             inventory (default): orders of products; transfer:\n"
    "                         transfers between --products accounts of --stock each,\n"
    "                         of 1..--max-quantity\n"
    "  --workflows N          workflows to run (default 1000)\n"
    "  --concurrency N        workflows in flight (default 32)\n"
    "  --workers N            worker processes (default 2)\n"
    "  --products N           products (default 20), each starting with --stock\n"
    "  --stock N              initial stock per product (default 40)\n"
    "  --threshold N          REORDER_THRESHOLD (default 15)\n"
    "  --reorder N            REORDER_QUANTITY (default 30)\n"
    "  --max-quantity N       orders take 1..N units (default 5)\n"
    "  --kill-rate R          workers SIGKILLed at crash points (default 0.12)\n"
    "  --kill-points LIST     crash points (default all four)\n"
    "  --async-kill-rate R    workers SIGKILLed by the supervisor (default 0.03)\n"
    "  --error-rate R         retryable errors before/after the effect (default 0.1)\n"
    "  --delay-rate R         attempts past the start-to-close timeout (default 0)\n"
    "  --peer-rate R          the app's outside service 503s, or records and dies\n"
    "                         (the inventory's supplier; default 0.05)\n"
    "  --supervisor-kills K   SIGKILL + restart the supervisor K times (default 0)\n"
    "  --seed S               replay a run (default: random, printed)\n"
    "  --swarm                draw this run's fault mix from the seed, and print it\n"
    "  --naive                run the activities without their guards: the checker\n"
    "                         must find duplicates, and the exit is non-zero\n"
    "  --json FILE            also write the report as JSON\n"
    "  --time-budget SECONDS  stop starting workflows after this long\n"
    "  --dir DIR              work directory (default: a new one under $TMPDIR)\n"
    "  --keep                 keep the work directory even when all holds\n"
    "  --progress SECONDS     progress line interval (default 1; 0 = none)\n"
    "  --sync full|normal     SYNC of the state and app DBs (default full)\n"
    "  --state-database URL   the state DB on PostgreSQL (an empty database)\n"
    "  --database URL         the app DB on PostgreSQL (one without the app's tables)\n"
    "  --recovery-test N      instead: N workflows in flight (workers stopped), a\n"
    "                         supervisor SIGKILL, and the time to recover and finish\n"
    "  --help, --version      this text; the version (and git commit)\n"
    "\n"
    "Exit: 0 every invariant holds; 1 a violation (or --naive); 2 usage or set-up.\n";

static double parse_rate(const char *name, const char *v)
{
	char *end;
	double r = strtod(v, &end);

	if (*v == '\0' || *end != '\0' || !(r >= 0 && r <= 1))
		die("--%s %s is not a rate (allowed: 0..1)", name, v);
	return r;
}

static long parse_long(const char *name, const char *v, long lo, long hi)
{
	char *end;
	long n = strtol(v, &end, 10);

	if (*v == '\0' || *end != '\0' || n < lo || n > hi)
		die("--%s %s is not a whole number in %ld..%ld", name, v, lo, hi);
	return n;
}

static void defaults(struct options *o)
{
	*o = (struct options){.workflows = 1000,
	                      .concurrency = 32,
	                      .workers = 2,
	                      .app = "inventory",
	                      .products = 20,
	                      .stock = 40,
	                      .threshold = 15,
	                      .reorder = 30,
	                      .max_quantity = 5,
	                      .kill_rate = 0.12,
	                      .async_kill_rate = 0.03,
	                      .error_rate = 0.1,
	                      .peer_rate = 0.05,
	                      .progress_s = 1,
	                      .sync = "full",
	                      .kill_points = "before_effect,after_effect,after_commit,mid_reply"};
}

static void parse_options(struct options *o, int argc, char **argv)
{
	static const struct option longs[] = {
	    {"app", 1, 0, 'A'},           {"workflows", 1, 0, 'w'},
	    {"concurrency", 1, 0, 'c'},   {"workers", 1, 0, 'W'},
	    {"products", 1, 0, 'p'},      {"stock", 1, 0, 's'},
	    {"threshold", 1, 0, 't'},     {"reorder", 1, 0, 'r'},
	    {"max-quantity", 1, 0, 'q'},  {"kill-rate", 1, 0, 'k'},
	    {"kill-points", 1, 0, 'K'},   {"async-kill-rate", 1, 0, 'a'},
	    {"error-rate", 1, 0, 'e'},    {"delay-rate", 1, 0, 'd'},
	    {"peer-rate", 1, 0, 'u'},     {"supervisor-kills", 1, 0, 'S'},
	    {"seed", 1, 0, 'x'},          {"swarm", 0, 0, 'X'},
	    {"naive", 0, 0, 'n'},         {"json", 1, 0, 'j'},
	    {"time-budget", 1, 0, 'T'},   {"dir", 1, 0, 'D'},
	    {"keep", 0, 0, 'P'},          {"progress", 1, 0, 'g'},
	    {"help", 0, 0, 'h'},          {"sync", 1, 0, 'Y'},
	    {"recovery-test", 1, 0, 'Z'}, {"state-database", 1, 0, 'B'},
	    {"database", 1, 0, 'b'},      {0, 0, 0, 0}};
	int c;

	defaults(o);
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
		const char *name = optind > 1 ? argv[optind - 1] + 2 : "";
		char *end;

		switch (c) {
		case 'A':
			if (strcmp(optarg, "inventory") != 0 && strcmp(optarg, "transfer") != 0 &&
			    strchr(optarg, '/') == NULL)
				die("--app %s: give inventory, transfer, or the directory of an "
				    "app's "
				    "idem.json (a path with a '/': ./myapp)",
				    optarg);
			o->app = optarg;
			if (strchr(optarg, '/') != NULL)
				o->plan = stress_plan(optarg, &o->base);
			break;
		case 'w':
			o->workflows = parse_long("workflows", optarg, 1, 100000000);
			break;
		case 'c':
			o->concurrency = (int)parse_long("concurrency", optarg, 1, 1024);
			break;
		case 'W':
			o->workers = (int)parse_long("workers", optarg, 1, 256);
			break;
		case 'p':
			o->products = (int)parse_long("products", optarg, 1, 1000);
			break;
		case 's':
			o->stock = parse_long("stock", optarg, 0, 1000000000);
			break;
		case 't':
			o->threshold = parse_long("threshold", optarg, 0, 1000000000);
			break;
		case 'r':
			o->reorder = parse_long("reorder", optarg, 1, 1000000000);
			break;
		case 'q':
			o->max_quantity = (int)parse_long("max-quantity", optarg, 1, 1000000);
			break;
		case 'k':
			o->kill_rate = parse_rate("kill-rate", optarg);
			break;
		case 'K':
			o->kill_points = optarg;
			break;
		case 'a':
			o->async_kill_rate = parse_rate("async-kill-rate", optarg);
			break;
		case 'e':
			o->error_rate = parse_rate("error-rate", optarg);
			break;
		case 'd':
			o->delay_rate = parse_rate("delay-rate", optarg);
			break;
		case 'u':
			o->peer_rate = parse_rate("peer-rate", optarg);
			break;
		case 'S':
			o->supervisor_kills =
			    (int)parse_long("supervisor-kills", optarg, 0, MAX_KILLS);
			break;
		case 'x':
			errno = 0;
			o->seed = strtoull(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || errno != 0)
				die("--seed %s is not a number (0..18446744073709551615)", optarg);
			o->seed_set = 1;
			break;
		case 'X':
			o->swarm = 1;
			break;
		case 'n':
			o->naive = 1;
			break;
		case 'j':
			o->json_path = optarg;
			break;
		case 'T':
			o->time_budget_s = strtod(optarg, &end);
			if (*end != '\0' || o->time_budget_s <= 0)
				die("--time-budget %s is not a positive number of seconds", optarg);
			break;
		case 'D':
			o->dir = optarg;
			break;
		case 'P':
			o->keep = 1;
			break;
		case 'g':
			o->progress_s = strtod(optarg, &end);
			if (*end != '\0' || o->progress_s < 0)
				die("--progress %s is not a number of seconds", optarg);
			break;
		case 'Y':
			if (strcmp(optarg, "full") != 0 && strcmp(optarg, "normal") != 0)
				die("--sync %s is not one of full|normal", optarg);
			o->sync = optarg;
			break;
		case 'B':
			if (!pgconn_is_url(optarg))
				die("--state-database %s: give a postgresql:// URL of an empty "
				    "database "
				    "(the default is a SQLite file in the work directory)",
				    optarg);
			o->state_db = optarg;
			break;
		case 'b':
			if (!pgconn_is_url(optarg))
				die("--database %s: give a postgresql:// URL (the default is a "
				    "SQLite file in the work directory)",
				    optarg);
			o->app_db = optarg;
			break;
		case 'Z':
			o->recovery_test = parse_long("recovery-test", optarg, 1, 10000000);
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		default:
			die("unknown or incomplete option \"%s\" (see --help)", name);
		}
	}
	if (optind < argc)
		die("unexpected argument \"%s\" (see --help)", argv[optind]);
	if (o->kill_rate + o->async_kill_rate + o->error_rate + o->delay_rate > 1)
		die("the fault rates add up to more than 1");
}

/* --swarm: this run's own fault mix, drawn from the seed (swarm testing:
 * each seed stresses a different corner). */
static void draw_swarm(struct options *o)
{
	static const char *const point_sets[] = {
	    "before_effect,after_effect,after_commit,mid_reply", "after_commit", "after_effect",
	    "mid_reply,after_commit", "before_effect,mid_reply"};
	uint64_t s = o->seed;

	o->kill_rate = 0.3 * uniform(s, 1, 0);
	o->async_kill_rate = 0.1 * uniform(s, 2, 0);
	o->error_rate = 0.3 * uniform(s, 3, 0);
	o->peer_rate = 0.25 * uniform(s, 4, 0);
	o->delay_rate = uniform(s, 5, 0) < 0.3 ? 0.02 : 0;
	o->workers = 1 + (int)(4 * uniform(s, 6, 0));
	o->kill_points = point_sets[(int)(5 * uniform(s, 7, 0))];
	o->max_quantity = 1 + (int)(10 * uniform(s, 8, 0));
}

/* ---- the supervisor -------------------------------------------------------- */

/* --transfer-accounts=A0:STOCK,...: the transfer app's accounts. */
static char *accounts(const struct options *o)
{
	size_t cap = (size_t)o->products * 32 + 32, n;
	char *s = malloc(cap);

	n = (size_t)snprintf(s, cap, "--transfer-accounts=");
	for (int i = 0; i < o->products; i++)
		n += (size_t)snprintf(s + n, cap - n, "%sA%d:%ld", i ? "," : "", i, o->stock);
	return s;
}

static char *seed_stock(const struct options *o)
{
	size_t cap = (size_t)o->products * 32 + 32, n;
	char *s = malloc(cap);

	n = (size_t)snprintf(s, cap, "--seed-stock=");
	for (int i = 0; i < o->products; i++)
		n += (size_t)snprintf(s + n, cap - n, "%sP%d:%ld", i ? "," : "", i, o->stock);
	return s;
}

/* The app's own keys: the inventory's supplier, products and reorder
 * rule; the transfer's accounts. */
static int app_flags(const struct run *r, char **a, int n)
{
	const struct options *o = &r->o;

	if (o->plan != NULL && o->base == NULL)
		return n; /* its commands keep their state in the data directory */
	if (strcmp(o->base != NULL ? o->base : o->app, "transfer") == 0) {
		a[n++] = accounts(o);
		return n;
	}
	a[n++] = fmt("--supplier-database=%s/supplier.db", r->dir);
	a[n++] = fmt("--supplier-socket=%s/supplier.sock", r->dir);
	a[n++] = seed_stock(o);
	a[n++] = fmt("--reorder-threshold=%ld", o->threshold);
	a[n++] = fmt("--reorder-quantity=%ld", o->reorder);
	return n;
}

static void build_argv(struct run *r)
{
	const struct options *o = &r->o;
	char **a = calloc(48, sizeof(*a));
	int n = 0;

	a[n++] = fmt("%s/idem-supervisor", r->bindir);
	a[n++] = strdup("--env=/dev/null");
	a[n++] = fmt("--socket=%s", r->sock);
	a[n++] = fmt("--app=%s", o->app);
	a[n++] = o->app_db != NULL ? fmt("--database=%s", o->app_db)
	                           : fmt("--database=%s/app.db", r->dir);
	a[n++] = o->state_db != NULL ? fmt("--state-database=%s", o->state_db)
	                             : fmt("--state-database=%s/state.db", r->dir);
	a[n++] = fmt("--workers=%d", o->workers);
	n = app_flags(r, a, n);
	a[n++] = fmt("--fault-seed=%" PRIu64, o->seed);
	a[n++] = fmt("--fault-kill-rate=%.4f", o->kill_rate);
	a[n++] = fmt("--fault-kill-points=%s", o->kill_points);
	a[n++] = fmt("--fault-async-kill-rate=%.4f", o->async_kill_rate);
	a[n++] = strdup("--fault-async-kill-max-delay=5ms");
	a[n++] = fmt("--fault-error-rate=%.4f", o->error_rate);
	a[n++] = fmt("--fault-delay-rate=%.4f", o->delay_rate);
	a[n++] = fmt("--fault-peer-rate=%.4f", o->peer_rate);
	a[n++] = strdup("--start-to-close-timeout=1s");
	a[n++] = strdup("--retry-initial-interval=5ms");
	a[n++] = strdup("--retry-maximum-interval=200ms");
	a[n++] = strdup("--log-level=warn");
	a[n++] = strdup(o->naive ? "--activity-mode=naive" : "--activity-mode=guarded");
	a[n++] = fmt("--sync=%s", o->sync);
	a[n] = NULL;
	r->sup_argv = a;
}

/* One request, on session s when given (a client's kept connection), else
 * on a connection of its own. Returns the status with *out the JSON body
 * (NEW, or NULL), or -1 when the exchange failed. */
static int session_json(const struct run *r, struct httpc_session *s, const char *method,
                        const char *path, const char *body, json_t **out, int timeout_ms)
{
	struct httpc_response resp = {0};
	size_t len = body ? strlen(body) : 0;
	char err[512];
	int status, rc;

	*out = NULL;
	rc = s != NULL ? httpc_session_request(s, method, path, NULL, body, len, timeout_ms, &resp,
	                                       err, sizeof(err))
	               : httpc_request(r->sock, method, path, NULL, body, len, timeout_ms, &resp,
	                               err, sizeof(err));
	if (rc != 0)
		return -1;
	status = resp.status;
	*out = json_loadb(resp.body, resp.body_len, 0, NULL);
	httpc_response_free(&resp);
	return status;
}

static int http_json(const struct run *r, const char *method, const char *path, const char *body,
                     json_t **out, int timeout_ms)
{
	return session_json(r, NULL, method, path, body, out, timeout_ms);
}

static pid_t spawn_supervisor(struct run *r)
{
	char *log = fmt("%s/supervisor.log", r->dir);
	pid_t pid = fork();

	if (pid == 0) {
		FILE *f = fopen(log, "a");
		if (f != NULL) {
			dup2(fileno(f), 1);
			dup2(fileno(f), 2);
		}
		signal(SIGPIPE, SIG_DFL);
		execv(r->sup_argv[0], r->sup_argv);
		_exit(127);
	}
	free(log);
	if (pid < 0)
		die("cannot fork: %s", strerror(errno));
	return pid;
}

/* Waits until the API answers; returns the ms it took, or -1. */
static double wait_ready(struct run *r, pid_t pid, int64_t start_us)
{
	for (int i = 0; i < 3000; i++) {
		json_t *j = NULL;
		int st = http_json(r, "GET", "/v1/health", NULL, &j, 2000);

		json_decref(j);
		if (st == 200)
			return (double)(clock_mono_us() - start_us) / 1000.0;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return -1;
		usleep(2000);
	}
	return -1;
}

static void start_supervisor(struct run *r, struct kill_record *rec)
{
	int64_t t = clock_mono_us();
	pid_t pid = spawn_supervisor(r);
	double ms = wait_ready(r, pid, t);

	if (ms < 0)
		die("idem-supervisor did not come up; see %s/supervisor.log", r->dir);
	pthread_mutex_lock(&r->sup_lock);
	r->sup_pid = pid;
	pthread_mutex_unlock(&r->sup_lock);
	if (rec != NULL)
		rec->recovery_ms = ms;
}

/* ---- clients ---------------------------------------------------------------- */

/* The error type of a legitimate refusal: an order that met an empty
 * shelf, a transfer from an account without the funds. */
static const char *refusal(const struct options *o)
{
	if (o->plan != NULL)
		return json_string_value(json_array_get(json_object_get(o->plan, "refusals"), 0));
	return strcmp(o->app, "transfer") == 0 ? "InsufficientFunds" : "InsufficientStock";
}

/* A file-defined app's start of workflow i (malloc'd JSON). */
static char *plan_body(const struct run *r, long i)
{
	int k = 0;
	json_t *body =
	    json_pack("{s:O, s:o}", "type", json_object_get(r->o.plan, "workflow"), "input",
	              instantiate(json_object_get(r->o.plan, "input"), r->o.seed, i, &k));
	char id[32], *text;

	snprintf(id, sizeof(id), "S%ld", i);
	json_object_set_new(body, "workflow_id", json_string(id));
	text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	return text;
}

static void workflow_of(const struct run *r, long i, int *product, int *quantity)
{
	*product = (int)(uniform(r->o.seed, 101, (uint64_t)i) * r->o.products);
	*quantity = 1 + (int)(uniform(r->o.seed, 102, (uint64_t)i) * r->o.max_quantity);
}

/* Starts workflow i until a start is acknowledged (the start is
 * idempotent by id, so a retry after a supervisor restart is safe). With
 * wait, the start waits for the workflow to close too (one exchange per
 * workflow) and *wf gets it (NEW), or NULL when the wait timed out. */
static int start_one(struct run *r, struct httpc_session *s, long i, int wait, json_t **wf)
{
	char body[4096], path[64];
	int product, quantity;

	workflow_of(r, i, &product, &quantity);
	if (r->o.plan != NULL) {
		char *text = plan_body(r, i);
		snprintf(body, sizeof(body), "%s", text);
		free(text);
	} else if (strcmp(r->o.app, "transfer") == 0)
		/* from account `product` to the next one, of `quantity` */
		snprintf(body, sizeof(body),
		         "{\"workflow_id\":\"S%ld\",\"type\":\"transfer\",\"input\":{"
		         "\"transfer_id\":\"S%ld\",\"from\":\"A%d\",\"to\":\"A%d\","
		         "\"amount\":%d}}",
		         i, i, product, (product + 1) % (r->o.products > 1 ? r->o.products : 2),
		         quantity);
	else
		snprintf(body, sizeof(body),
		         "{\"workflow_id\":\"S%ld\",\"input\":{\"order_id\":\"S%ld\","
		         "\"product_id\":\"P%d\",\"quantity\":%d}}",
		         i, i, product, quantity);
	snprintf(path, sizeof(path), "/v1/workflows%s", wait ? "?wait=" STR(WAIT_POLL_S) : "");
	*wf = NULL;
	for (;;) {
		json_t *j = NULL;
		int st = session_json(r, s, "POST", path, body, &j, HTTP_TIMEOUT_MS);

		if ((st == 200 || st == 201) && wait &&
		    !json_is_true(json_object_get(j, "timed_out")))
			*wf = json_incref(json_object_get(j, "workflow"));
		json_decref(j);
		if (st == 200 || st == 201)
			return 0;
		if (st >= 400 && st < 500 && st != 408)
			return -1; /* refused: a bug in this driver */
		usleep(10000);     /* down or shutting down: try again */
	}
}

/* Long-polls workflow i until it closes; returns its status JSON (NEW). */
static json_t *wait_one(struct run *r, struct httpc_session *s, long i)
{
	char path[128];

	snprintf(path, sizeof(path), "/v1/workflows/S%ld/wait?timeout=%d", i, WAIT_POLL_S);
	for (;;) {
		json_t *j = NULL, *wf;
		int st = session_json(r, s, "GET", path, NULL, &j, (WAIT_POLL_S + 30) * 1000);

		wf = json_object_get(j, "workflow");
		if (st == 200 && !json_is_true(json_object_get(j, "timed_out")) && wf != NULL) {
			json_incref(wf);
			json_decref(j);
			return wf;
		}
		json_decref(j);
		if (st < 0)
			usleep(10000);
	}
}

/* A client: one kept-alive connection, one workflow at a time, each a
 * start that waits for the workflow to close (a long-poll follows when
 * that wait times out, or after a supervisor restart). */
static void *client(void *arg)
{
	struct run *r = arg;
	struct httpc_session *s = httpc_session_new(r->sock);
	long i;

	while (!atomic_load(&r->stop) && (i = atomic_fetch_add(&r->next, 1)) < r->o.workflows) {
		int64_t t = clock_mono_us();
		json_t *wf = NULL;
		const char *status, *error;

		if (start_one(r, s, i, !r->start_only, &wf) != 0) {
			fprintf(stderr, "idem-stress: workflow S%ld was refused\n", i);
			atomic_fetch_add(&r->failed, 1);
			continue;
		}
		atomic_fetch_add(&r->started, 1);
		if (r->start_only)
			continue;
		if (wf == NULL)
			wf = wait_one(r, s, i);
		r->latency_ms[i] = (double)(clock_mono_us() - t) / 1000.0;
		r->closed_s[i] = (double)(clock_mono_us() - r->t0) / 1e6;
		status = json_string_value(json_object_get(wf, "status"));
		error = json_string_value(json_object_get(wf, "error"));
		if (status != NULL && strcmp(status, "completed") == 0)
			atomic_fetch_add(&r->completed, 1);
		else if (error != NULL && refusal(&r->o) != NULL &&
		         strstr(error, refusal(&r->o)) != NULL)
			atomic_fetch_add(&r->refused, 1);
		else
			atomic_fetch_add(&r->failed, 1);
		json_decref(wf);
	}
	httpc_session_free(s);
	return NULL;
}

/* ---- supervisor kills and progress ------------------------------------------ */

static long closed(struct run *r)
{
	return atomic_load(&r->completed) + atomic_load(&r->failed) + atomic_load(&r->refused);
}

static void poll_respawns(struct run *r)
{
	json_t *s = NULL;

	if (http_json(r, "GET", "/v1/stats", NULL, &s, 2000) == 200)
		r->worker_respawns_last =
		    (long)json_integer_value(json_object_get(s, "worker_restarts"));
	json_decref(s);
}

static void kill_and_restart(struct run *r)
{
	struct kill_record *rec = &r->kills[r->restarts];
	json_t *s = NULL;

	poll_respawns(r);
	r->worker_respawns_before += r->worker_respawns_last;
	r->worker_respawns_last = 0;
	rec->at_completed = closed(r);
	rec->at_s = (double)(clock_mono_us() - r->t0) / 1e6;
	pthread_mutex_lock(&r->sup_lock);
	kill(r->sup_pid, SIGKILL);
	waitpid(r->sup_pid, NULL, 0);
	r->sup_pid = 0;
	pthread_mutex_unlock(&r->sup_lock);
	start_supervisor(r, rec);
	if (http_json(r, "GET", "/v1/stats", NULL, &s, 5000) == 200)
		rec->running_after = (long)json_integer_value(
		    json_object_get(json_object_get(s, "workflows"), "running"));
	json_decref(s);
	r->restarts++;
}

static void progress_line(struct run *r)
{
	double secs = (double)(clock_mono_us() - r->t0) / 1e6;
	json_t *s = NULL, *kinds;

	http_json(r, "GET", "/v1/stats", NULL, &s, 2000);
	kinds = json_object_get(json_object_get(s, "faults"), "by_kind");
	fprintf(stderr,
	        "[%6.1fs] started %ld completed %ld failed %ld refused %ld | faults this "
	        "incarnation: kill %lld async %lld error %lld delay %lld peer %lld | "
	        "supervisor restarts %d | %.0f wf/s\n",
	        secs, atomic_load(&r->started), atomic_load(&r->completed), atomic_load(&r->failed),
	        atomic_load(&r->refused),
	        (long long)json_integer_value(json_object_get(kinds, "kill")),
	        (long long)json_integer_value(json_object_get(kinds, "async_kill")),
	        (long long)json_integer_value(json_object_get(kinds, "error")),
	        (long long)json_integer_value(json_object_get(kinds, "delay")),
	        (long long)json_integer_value(json_object_get(kinds, "peer")), r->restarts,
	        closed(r) / (secs > 0 ? secs : 1));
	json_decref(s);
}

/* The main thread while clients run: kills on schedule, progress, budget. */
static void supervise(struct run *r)
{
	int64_t last = clock_mono_us();

	while (!atomic_load(&r->done)) {
		int64_t now = clock_mono_us();

		if (r->restarts < r->o.supervisor_kills && closed(r) >= r->kill_at[r->restarts])
			kill_and_restart(r);
		if (r->o.time_budget_s > 0 && (double)(now - r->t0) / 1e6 > r->o.time_budget_s &&
		    !atomic_load(&r->stop)) {
			atomic_store(&r->stop, 1);
			fprintf(stderr,
			        "idem-stress: time budget of %.0f s spent; no new workflows\n",
			        r->o.time_budget_s);
		}
		if (r->o.progress_s > 0 && (double)(now - last) / 1e6 >= r->o.progress_s) {
			progress_line(r);
			last = now;
		}
		usleep(5000);
	}
}

/* Kill points spread over the run, jittered by the seed. */
static void plan_kills(struct run *r)
{
	long n = r->o.workflows, k = r->o.supervisor_kills;

	for (long i = 0; i < k; i++) {
		double base = (double)(i + 1) / (double)(k + 1);
		double jitter = (uniform(r->o.seed, 201, (uint64_t)i) - 0.5) / (double)(k + 1);

		r->kill_at[i] = (long)((base + jitter * 0.8) * (double)n);
	}
}

/* ---- CPU, memory, recovery ---------------------------------------------------- */

/* utime + stime of pid in seconds (children: cutime + cstime, the CPU of
 * the children it has reaped), or 0 when it is gone. */
static double cpu_seconds_of(long pid, int children)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0, cut = 0, cst = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
	fclose(f);
	/* After "pid (comm)": state is field 3, utime 14, stime 15, cutime
	 * 16, cstime 17. */
	if (p == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu", &ut,
	           &st, &cut, &cst) != 4)
		return 0;
	return (double)(children ? cut + cst : ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* The CPU time of pid's threads in seconds, to the nanosecond: the sum of
 * /proc/pid/task/TID/schedstat. /proc/pid/stat counts in clock ticks (10
 * ms), each process rounded down: 16 workers of a short run lost up to
 * 160 ms between them, which read as 80 µs per workflow over 2,000. Falls
 * back to stat where schedstat is missing; 0 when pid is gone. */
static double cpu_seconds(long pid)
{
	char path[64];
	struct dirent *d;
	double sum = 0;
	int found = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%ld/task", pid);
	if ((dir = opendir(path)) == NULL)
		return 0;
	while ((d = readdir(dir)) != NULL) {
		char stat[320];
		unsigned long long ns;
		FILE *f;

		if (d->d_name[0] == '.')
			continue;
		snprintf(stat, sizeof(stat), "/proc/%ld/task/%s/schedstat", pid, d->d_name);
		if ((f = fopen(stat, "r")) == NULL)
			continue;
		if (fscanf(f, "%llu", &ns) == 1) {
			sum += (double)ns / 1e9;
			found = 1;
		}
		fclose(f);
	}
	closedir(dir);
	return found ? sum : cpu_seconds_of(pid, 0);
}

/* A "Vm...:" line of /proc/pid/status, in KiB. */
static long status_kib(long pid, const char *key)
{
	char path[64], line[256];
	long v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, key, strlen(key)) == 0)
			v = strtol(line + strlen(key), NULL, 10);
	fclose(f);
	return v;
}

/* Reads CPU and memory of the supervisor and its children before it stops.
 * The workers' CPU is that of the live ones, of the dead ones (the
 * supervisor reaped them: its children's time, a dead supplier's too)
 * and of the fork server. */
static void measure(struct run *r)
{
	json_t *s = NULL, *slots;
	double workers = cpu_seconds_of(r->sup_pid, 1);
	long fs;

	if (http_json(r, "GET", "/v1/stats", NULL, &s, 5000) == 200) {
		slots = json_object_get(json_object_get(s, "pool"), "slots");
		for (size_t i = 0; i < json_array_size(slots); i++)
			workers += cpu_seconds((long)json_integer_value(
			    json_object_get(json_array_get(slots, i), "pid")));
		fs = (long)json_integer_value(
		    json_object_get(json_object_get(s, "pool"), "fork_server_pid"));
		if (fs > 0)
			workers += cpu_seconds(fs);
		r->cpu = json_pack("{s:f, s:f, s:f}", "supervisor_s", cpu_seconds(r->sup_pid),
		                   "workers_s", workers, "supplier_s",
		                   cpu_seconds((long)json_integer_value(json_object_get(
		                       json_object_get(s, "pool"), "supplier_pid"))));
		r->state_commits = (long)json_integer_value(
		    json_object_get(json_object_get(s, "since_start"), "commits"));
	}
	json_decref(s);
	r->rss_kib = status_kib(r->sup_pid, "VmHWM:");
}

/* Signals every slot's worker, once each has one (a slot reports pid 0
 * while its worker is being forked; kill(0) would signal our own group). */
static void signal_workers(struct run *r, int sig)
{
	json_t *s = NULL, *slots;
	size_t i = 0;

	for (int tries = 0; tries < 500; tries++) {
		json_decref(s);
		s = NULL;
		if (http_json(r, "GET", "/v1/stats", NULL, &s, 5000) != 200)
			die("cannot read /v1/stats");
		slots = json_object_get(json_object_get(s, "pool"), "slots");
		for (i = 0; i < json_array_size(slots); i++)
			if (json_integer_value(json_object_get(json_array_get(slots, i), "pid")) <=
			    0)
				break;
		if (i == json_array_size(slots))
			break;
		usleep(10000);
	}
	if (i != json_array_size(slots))
		die("a worker slot has had no worker for 5 s");
	for (i = 0; i < json_array_size(slots); i++)
		kill((pid_t)json_integer_value(json_object_get(json_array_get(slots, i), "pid")),
		     sig);
	json_decref(s);
}

static void run_clients(struct run *r)
{
	pthread_t *t = calloc((size_t)r->o.concurrency, sizeof(*t));

	for (int i = 0; i < r->o.concurrency; i++)
		pthread_create(&t[i], NULL, client, r);
	for (int i = 0; i < r->o.concurrency; i++)
		pthread_join(t[i], NULL);
	free(t);
}

/* --recovery-test N: N workflows started while every worker is stopped,
 * so all are in flight; SIGKILL the supervisor; restart; measure until the
 * API answers (every running workflow is loaded and queued before it
 * listens), and until all have completed. */
static void recovery_test(struct run *r)
{
	long n = r->o.recovery_test;
	int64_t t;
	json_t *j = NULL;
	double api_ms, done_ms;
	long running = 0;

	r->o.workflows = n;
	r->latency_ms = realloc(r->latency_ms, sizeof(double) * (size_t)n);
	memset(r->latency_ms, 0, sizeof(double) * (size_t)n);
	r->closed_s = realloc(r->closed_s, sizeof(double) * (size_t)n);
	memset(r->closed_s, 0, sizeof(double) * (size_t)n);
	signal_workers(r, SIGSTOP);
	r->start_only = 1;
	run_clients(r);
	if (http_json(r, "GET", "/v1/stats", NULL, &j, 5000) == 200)
		running = (long)json_integer_value(
		    json_object_get(json_object_get(j, "workflows"), "running"));
	json_decref(j);
	pthread_mutex_lock(&r->sup_lock);
	kill(r->sup_pid, SIGKILL);
	waitpid(r->sup_pid, NULL, 0);
	pthread_mutex_unlock(&r->sup_lock);
	t = clock_mono_us();
	struct kill_record rec = {0};
	start_supervisor(r, &rec);
	api_ms = rec.recovery_ms;
	if (http_json(r, "GET", "/v1/wait?timeout=3600", NULL, &j, 3700 * 1000) != 200)
		die("waiting for the recovered workflows failed");
	json_decref(j);
	done_ms = (double)(clock_mono_us() - t) / 1000.0;
	atomic_store(&r->completed, n);
	r->restarts = 1;
	r->kills[0] = rec;
	r->recovery = json_pack("{s:I, s:I, s:f, s:f, s:f}", "in_flight", (json_int_t)n,
	                        "running_at_kill", (json_int_t)running, "api_ms", api_ms,
	                        "requeued_ms", api_ms, "completed_ms", done_ms);
	fprintf(stderr,
	        "recovery: %ld in flight (%ld running at the kill): API back and all "
	        "re-queued in %.0f ms, all completed in %.0f ms\n",
	        n, running, api_ms, done_ms);
}

/* ---- the report --------------------------------------------------------------- */

static long long sql_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	long long v = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* {"kill": N, ...} and per crash point, from the durable history (every
 * incarnation of the supervisor). */
static json_t *history_counts(struct run *r)
{
	char *path = fmt("%s/state.db", r->dir);
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	json_t *kinds = json_object(), *points = json_object(), *out;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		die("cannot open %s", path);
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_prepare_v2(
	        db,
	        "SELECT json_extract(detail, '$.kind'), "
	        "coalesce(json_extract(detail, '$.point'), ''), count(*) FROM events "
	        "WHERE kind = 'fault_injected' GROUP BY 1, 2",
	        -1, &st, NULL) == SQLITE_OK)
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *k = (const char *)sqlite3_column_text(st, 0);
			const char *p = (const char *)sqlite3_column_text(st, 1);
			json_int_t n = sqlite3_column_int64(st, 2);

			json_object_set_new(
			    kinds, k,
			    json_integer(json_integer_value(json_object_get(kinds, k)) + n));
			if (*p)
				json_object_set_new(points, p, json_integer(n));
		}
	sqlite3_finalize(st);
	out = json_pack("{s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:I}", "faults_by_kind", kinds,
	                "kills_by_point", points, "attempts",
	                (json_int_t)sql_int(db, "SELECT coalesce(sum(attempt), 0) FROM steps"),
	                "faulted_attempts",
	                (json_int_t)sql_int(db, "SELECT count(*) FROM events WHERE kind = "
	                                        "'fault_injected'"),
	                "retries",
	                (json_int_t)sql_int(db, "SELECT count(*) FROM events WHERE kind = "
	                                        "'retry_scheduled'"),
	                "attempts_lost",
	                (json_int_t)sql_int(db, "SELECT count(*) FROM events WHERE kind IN "
	                                        "('worker_lost', 'worker_killed', 'timed_out', "
	                                        "'attempt_lost')"),
	                "timeouts",
	                (json_int_t)sql_int(db, "SELECT count(*) FROM events WHERE kind = "
	                                        "'timed_out'"),
	                "steps", (json_int_t)sql_int(db, "SELECT count(*) FROM steps"));
	db_close(db);
	free(path);
	return out;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double percentile(double *sorted, long n, double p)
{
	if (n == 0)
		return 0;
	long i = (long)ceil(p * (double)n) - 1;
	return sorted[i < 0 ? 0 : (i >= n ? n - 1 : i)];
}

static json_t *latency_json(struct run *r)
{
	long n = 0;
	double *v = malloc(sizeof(double) * (size_t)r->o.workflows);

	for (long i = 0; i < r->o.workflows; i++)
		if (r->latency_ms[i] > 0)
			v[n++] = r->latency_ms[i];
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	json_t *out = json_pack("{s:f, s:f, s:f}", "p50_ms", percentile(v, n, 0.5), "p99_ms",
	                        percentile(v, n, 0.99), "max_ms", n ? v[n - 1] : 0.0);
	json_t *hist = json_array();

	/* how many took at most 1, 2, 4, ... ms (each bucket's own, not
	 * cumulative), up to the slowest */
	for (double le = 1, prev = 0; n > 0; prev = le, le *= 2) {
		long k = 0;

		for (long i = 0; i < n; i++)
			k += v[i] > prev && v[i] <= le;
		json_array_append_new(hist,
		                      json_pack("{s:f, s:I}", "le_ms", le, "n", (json_int_t)k));
		if (le >= v[n - 1])
			break;
	}
	json_object_set_new(out, "histogram", hist);
	free(v);
	return out;
}

/* {"bucket_s", "closed": [workflows that closed in each bucket]}: about
 * 100 buckets over the run, for the report's throughput chart. */
static json_t *timeline_json(struct run *r, double elapsed)
{
	double bucket = elapsed > 0 ? elapsed / 100 : 0.01;
	json_t *counts = json_array();
	long nb;

	if (bucket < 0.01)
		bucket = 0.01;
	nb = (long)(elapsed / bucket) + 1;
	for (long b = 0; b < nb; b++)
		json_array_append_new(counts, json_integer(0));
	for (long i = 0; i < r->o.workflows; i++) {
		long b = (long)(r->closed_s[i] / bucket);

		if (r->closed_s[i] <= 0)
			continue;
		if (b >= nb)
			b = nb - 1;
		json_array_set_new(
		    counts, (size_t)b,
		    json_integer(json_integer_value(json_array_get(counts, (size_t)b)) + 1));
	}
	return json_pack("{s:f, s:o}", "bucket_s", bucket, "closed", counts);
}

static json_t *kills_json(struct run *r)
{
	json_t *arr = json_array();

	for (int i = 0; i < r->restarts; i++)
		json_array_append_new(
		    arr, json_pack("{s:f, s:I, s:f, s:I}", "at_s", r->kills[i].at_s, "at_closed",
		                   (json_int_t)r->kills[i].at_completed, "recovery_ms",
		                   r->kills[i].recovery_ms, "running_after",
		                   (json_int_t)r->kills[i].running_after));
	return arr;
}

static json_t *options_json(const struct options *o)
{
	return json_pack("{s:s, s:I, s:i, s:i, s:i, s:I, s:I, s:I, s:i, s:f, s:s, s:f, s:f, s:f, "
	                 "s:f, s:i, s:b, s:b}",
	                 "app", o->app, "workflows", (json_int_t)o->workflows, "concurrency",
	                 o->concurrency, "workers", o->workers, "products", o->products, "stock",
	                 (json_int_t)o->stock, "threshold", (json_int_t)o->threshold, "reorder",
	                 (json_int_t)o->reorder, "max_quantity", o->max_quantity, "kill_rate",
	                 o->kill_rate, "kill_points", o->kill_points, "async_kill_rate",
	                 o->async_kill_rate, "error_rate", o->error_rate, "delay_rate",
	                 o->delay_rate, "peer_rate", o->peer_rate, "supervisor_kills",
	                 o->supervisor_kills, "swarm", o->swarm, "naive", o->naive);
}

static char *replay_command(const struct run *r, int argc, char **argv)
{
	size_t cap = 4096, n = 0;
	char *s = malloc(cap);
	int seeded = 0;

	n += (size_t)snprintf(s + n, cap - n, "scripts/stress");
	for (int i = 1; i < argc && n < cap; i++) {
		if (strcmp(argv[i], "--seed") == 0 || strncmp(argv[i], "--seed=", 7) == 0)
			seeded = 1;
		if ((strcmp(argv[i], "--dir") == 0 || strcmp(argv[i], "--json") == 0) &&
		    i + 1 < argc) {
			i++;
			continue;
		}
		if (pgconn_is_url(argv[i])) { /* a PostgreSQL URL's password stays hidden */
			char shown[1024];

			pgconn_redact(argv[i], shown, sizeof(shown));
			n += (size_t)snprintf(s + n, cap - n, " %s", shown);
			continue;
		}
		n += (size_t)snprintf(s + n, cap - n, " %s", argv[i]);
	}
	if (!seeded && n < cap)
		snprintf(s + n, cap - n, " --seed %" PRIu64, r->o.seed);
	return s;
}

static void print_report(const json_t *rep)
{
	const json_t *w = json_object_get(rep, "workflows"), *h = json_object_get(rep, "history");
	const json_t *c = json_object_get(json_object_get(rep, "check"), "counts");
	const json_t *lat = json_object_get(rep, "latency");
	const char *k;
	json_t *v;

	printf("\n== idem stress report (seed %s) ==\n",
	       json_string_value(json_object_get(rep, "seed")));
	printf("workflows     %lld started, %lld completed, %lld failed, %lld refused%s%s%s\n",
	       (long long)json_integer_value(json_object_get(w, "started")),
	       (long long)json_integer_value(json_object_get(w, "completed")),
	       (long long)json_integer_value(json_object_get(w, "failed")),
	       (long long)json_integer_value(json_object_get(w, "refused")),
	       json_is_string(json_object_get(rep, "refusal")) ? " (" : "",
	       json_is_string(json_object_get(rep, "refusal"))
	           ? json_string_value(json_object_get(rep, "refusal"))
	           : "",
	       json_is_string(json_object_get(rep, "refusal")) ? ")" : "");
	printf("attempts      %lld over %lld steps; %lld faulted (%.1f%%), %lld retries, %lld "
	       "lost to dead or killed workers\n",
	       (long long)json_integer_value(json_object_get(h, "attempts")),
	       (long long)json_integer_value(json_object_get(h, "steps")),
	       (long long)json_integer_value(json_object_get(h, "faulted_attempts")),
	       json_real_value(json_object_get(rep, "faulted_pct")),
	       (long long)json_integer_value(json_object_get(h, "retries")),
	       (long long)json_integer_value(json_object_get(h, "attempts_lost")));
	printf("faults        ");
	json_object_foreach((json_t *)json_object_get(h, "faults_by_kind"), k, v)
	    printf("%s %lld  ", k, (long long)json_integer_value(v));
	printf("\nkills at      ");
	json_object_foreach((json_t *)json_object_get(h, "kills_by_point"), k, v)
	    printf("%s %lld  ", k, (long long)json_integer_value(v));
	printf("\nrespawns      %lld worker respawns\n",
	       (long long)json_integer_value(json_object_get(rep, "worker_respawns")));
	printf("supervisor    %lld SIGKILL + restart; recovery ms:",
	       (long long)json_array_size(json_object_get(rep, "supervisor_kills")));
	json_t *kills = json_object_get(rep, "supervisor_kills");
	for (size_t i = 0; i < json_array_size(kills); i++)
		printf(" %.0f",
		       json_real_value(json_object_get(json_array_get(kills, i), "recovery_ms")));
	printf(
	    "\nthroughput    %.1f workflows/s over %.1f s; latency p50 %.1f ms, p99 %.1f ms, max "
	    "%.1f ms\n",
	    json_real_value(json_object_get(rep, "workflows_per_s")),
	    json_real_value(json_object_get(rep, "elapsed_s")),
	    json_real_value(json_object_get(lat, "p50_ms")),
	    json_real_value(json_object_get(lat, "p99_ms")),
	    json_real_value(json_object_get(lat, "max_ms")));
	printf("check         ");
	json_object_foreach((json_t *)c, k, v)
	    printf("%s %lld  ", k, (long long)json_integer_value(v));
	printf("\n");
}

/* ---- main ------------------------------------------------------------------------- */

struct joiner {
	struct run *r;
	pthread_t *t;
};

/* Joins every client, then tells supervise() to stop. */
static void *join_all(void *arg)
{
	struct joiner *j = arg;

	for (int i = 0; i < j->r->o.concurrency; i++)
		pthread_join(j->t[i], NULL);
	atomic_store(&j->r->done, 1);
	return NULL;
}

static void find_bindir(struct run *r, const char *argv0)
{
	char self[512];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	(void)argv0;
	if (n < 0)
		die("cannot read /proc/self/exe");
	self[n] = '\0';
	*strrchr(self, '/') = '\0';
	snprintf(r->bindir, sizeof(r->bindir), "%s", self);
}

static void make_dir(struct run *r)
{
	if (r->o.dir != NULL) {
		if (mkdir(r->o.dir, 0755) != 0 && errno != EEXIST)
			die("cannot create --dir %s: %s", r->o.dir, strerror(errno));
		snprintf(r->dir, sizeof(r->dir), "%s", r->o.dir);
	} else {
		const char *tmp = getenv("TMPDIR");
		snprintf(r->dir, sizeof(r->dir), "%s/idem-stress-XXXXXX",
		         tmp && *tmp ? tmp : "/tmp");
		if (mkdtemp(r->dir) == NULL)
			die("cannot create a work directory: %s", strerror(errno));
	}
	snprintf(r->sock, sizeof(r->sock), "%s/idem.sock", r->dir);
	if (strlen(r->sock) > 100)
		die("the work directory %s is too long for a Unix socket path; use --dir", r->dir);
}

static int verdict(struct run *r, json_t *report, json_t *check)
{
	int ok = json_is_true(json_object_get(check, "ok"));
	long lost_clients = atomic_load(&r->failed);

	if (r->o.naive) {
		if (!ok)
			printf(
			    "verdict       NAIVE MODE: the checker found violations, as it must — "
			    "without the guards, retries apply effects twice. Exit 1.\n");
		else
			printf(
			    "verdict       NAIVE MODE: no violation this time — the faults missed "
			    "every window that matters (raise --kill-rate); exit 1 anyway.\n");
		return IDEM_EXIT_FAIL;
	}
	if (ok && lost_clients == 0) {
		printf("verdict       OK: nothing lost, nothing applied twice, nothing stuck.\n");
		return IDEM_EXIT_OK;
	}
	printf("verdict       FAILED: %s%s\n", ok ? "" : "the checker found violations (above). ",
	       lost_clients ? "some workflows failed for a reason other than a refusal." : "");
	(void)report;
	return IDEM_EXIT_FAIL;
}

int main(int argc, char **argv)
{
	static struct run run;
	struct run *r = &run;
	pthread_t *threads;
	json_t *report, *check;
	const struct idem_app *the_app = NULL;
	char err[1024], *replay, *sseed;
	double elapsed;
	int rc, sup_rc;

	idem_version_exit(argc, argv, "idem-stress");
	xalloc_install_json(); /* as the programs it drives (xalloc.h) */
	parse_options(&r->o, argc, argv);
	if (!r->o.seed_set && getrandom(&r->o.seed, sizeof(r->o.seed), 0) != sizeof(r->o.seed))
		r->o.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	if (r->o.swarm)
		draw_swarm(&r->o);
	signal(SIGPIPE, SIG_IGN);
	json_object_seed(0);
	find_bindir(r, argv[0]);
	make_dir(r);
	replay = replay_command(r, argc, argv);
	printf("idem-stress: seed %" PRIu64 "; replay with: %s\n", r->o.seed, replay);
	printf("idem-stress: %s: %ld workflows, %d in flight, %d workers; faults kill %.3f "
	       "(%s) async %.3f error %.3f delay %.3f peer %.3f; %d supervisor kills%s; dir %s\n",
	       r->o.app, r->o.workflows, r->o.concurrency, r->o.workers, r->o.kill_rate,
	       r->o.kill_points, r->o.async_kill_rate, r->o.error_rate, r->o.delay_rate,
	       r->o.peer_rate, r->o.supervisor_kills, r->o.naive ? "; NAIVE mode" : "", r->dir);
	fflush(stdout);
	build_argv(r);
	pthread_mutex_init(&r->sup_lock, NULL);
	r->latency_ms = calloc((size_t)r->o.workflows, sizeof(double));
	r->closed_s = calloc((size_t)r->o.workflows, sizeof(double));
	plan_kills(r);
	start_supervisor(r, NULL);

	r->t0 = clock_mono_us();
	if (r->o.recovery_test > 0) {
		recovery_test(r);
	} else {
		struct joiner j = {r, NULL};
		pthread_t waiter;

		threads = calloc((size_t)r->o.concurrency, sizeof(*threads));
		j.t = threads;
		for (int i = 0; i < r->o.concurrency; i++)
			pthread_create(&threads[i], NULL, client, r);
		pthread_create(&waiter, NULL, join_all, &j);
		supervise(r);
		pthread_join(waiter, NULL);
		free(threads);
	}
	elapsed = (double)(clock_mono_us() - r->t0) / 1e6;

	poll_respawns(r);
	measure(r);
	kill(r->sup_pid, SIGTERM);
	waitpid(r->sup_pid, &sup_rc, 0);
	{
		char *st = fmt("%s/state.db", r->dir);
		char *app = r->o.app_db != NULL ? fmt("%s", r->o.app_db) : fmt("%s/app.db", r->dir);

		/* On PostgreSQL: the checker reads it there, and the report's
		 * history comes from a copy in the work directory. */
		if (r->o.state_db != NULL && pgsnap_copy(r->o.state_db, st, err, sizeof(err)) != 0)
			die("cannot copy the state DB: %s", err);
		char *sup = fmt("%s/supplier.db", r->dir);
		static struct idem_config cfg;

		if (apps_add_config_keys(err, sizeof(err)) != 0)
			die("%s", err);
		config_defaults(&cfg);
		if (config_set(&cfg, "SUPPLIER_DATABASE", sup, err, sizeof(err)) != 0 ||
		    config_set(&cfg, "DATABASE", app, err, sizeof(err)) != 0 ||
		    (the_app = apps_load(r->o.app, err, sizeof(err))) == NULL)
			die("%s", err);
		check = check_run(the_app, r->o.state_db != NULL ? r->o.state_db : st, app, &cfg,
		                  err, sizeof(err));
		free(st);
		free(app);
		free(sup);
	}
	if (check == NULL)
		die("the checker could not run: %s", err);
	check_print(the_app, check, stdout);
	sseed = fmt("%" PRIu64, r->o.seed);
	json_t *hist = history_counts(r);
	long long attempts = json_integer_value(json_object_get(hist, "attempts"));
	long long faulted = json_integer_value(json_object_get(hist, "faulted_attempts"));
	report = json_pack(
	    "{s:s, s:s, s:o, s:{s:I, s:I, s:I, s:I}, s:o, s:f, s:I, s:o, s:f, s:f, s:o, s:o, s:i}",
	    "seed", sseed, "replay", replay, "options", options_json(&r->o), "workflows", "started",
	    (json_int_t)atomic_load(&r->started), "completed",
	    (json_int_t)atomic_load(&r->completed), "failed", (json_int_t)atomic_load(&r->failed),
	    "refused", (json_int_t)atomic_load(&r->refused), "history", hist, "faulted_pct",
	    attempts ? 100.0 * (double)faulted / (double)attempts : 0.0, "worker_respawns",
	    (json_int_t)(r->worker_respawns_before + r->worker_respawns_last), "supervisor_kills",
	    kills_json(r), "elapsed_s", elapsed, "workflows_per_s",
	    (double)closed(r) / (elapsed > 0 ? elapsed : 1), "latency", latency_json(r), "check",
	    json_incref(check), "supervisor_exit",
	    WIFEXITED(sup_rc) ? WEXITSTATUS(sup_rc) : 128 + WTERMSIG(sup_rc));
	json_object_set_new(report, "app", json_string(r->o.app));
	json_object_set_new(report, "timeline", timeline_json(r, elapsed));
	json_object_set_new(report, "refusal",
	                    refusal(&r->o) != NULL ? json_string(refusal(&r->o)) : json_null());
	print_report(report);
	rc = verdict(r, report, check);
	json_object_set_new(report, "exit", json_integer(rc));
	json_object_set_new(report, "cpu", r->cpu ? r->cpu : json_object());
	json_object_set_new(report, "supervisor_rss_kib", json_integer(r->rss_kib));
	json_object_set_new(report, "state_commits", json_integer(r->state_commits));
	if (r->recovery != NULL)
		json_object_set_new(report, "recovery_test", r->recovery);
	if (r->o.json_path != NULL && json_dump_file(report, r->o.json_path, JSON_INDENT(2)) != 0)
		fprintf(stderr, "idem-stress: cannot write %s\n", r->o.json_path);
	printf("replay        %s\n", replay);
	if (rc == IDEM_EXIT_OK && !r->o.keep && r->o.dir == NULL) {
		char *cmd = fmt("rm -rf '%s'", r->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "idem-stress: could not remove %s\n", r->dir);
		free(cmd);
	} else {
		printf("files         %s (supervisor.log, state.db, app.db and the app's own)\n",
		       r->dir);
	}
	json_decref(report);
	json_decref(check);
	free(sseed);
	free(replay);
	return rc;
}
