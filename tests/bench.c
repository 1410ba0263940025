/* bench.c — idem-bench, the benchmark behind scripts/bench.
 *
 * In one invocation, on one machine, it measures
 *   (a) the baseline: a single-threaded loop doing, per workflow, the same
 *       app-DB transactions as the app's activities (the activity code
 *       itself, called in-process: the inventory's update_inventory, or
 *       the transfer's debit and credit, --app) plus one durable
 *       checkpoint write per step to a state DB — no processes, no
 *       sockets, no orchestration; and
 *   (b) idem end to end: idem-supervisor, its workers, the control API and
 *       real clients submitting over the socket with N in flight (it runs
 *       idem-stress with every fault off and reads its JSON report),
 * in SYNC=full and SYNC=normal, several repetitions each, and prints the
 * median with the spread, and idem / baseline. Then, unless skipped:
 * throughput with about 20% of attempts faulted relative to fault-free
 * (as many repetitions, median),
 * recovery of 10,000 in-flight workflows after a supervisor SIGKILL,
 * scaling with WORKERS = 1, 2, 4, 8, 16 in both modes, and the supervisor's
 * peak RSS over a long run. Everything it measured goes to --json FILE
 * too, with its options and the machine it ran on.
 *
 * idem runs with --workers workers (16 unless told): a worker spends most
 * of a task's round trip waiting for the supervisor (its result to be
 * read and committed, the next task to come), so on 2 cores 2 workers
 * leave the CPU idle; the scaling lines show the curve. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "activities.h"
#include "apps.h"
#include "appdb.h"
#include "clock.h"
#include "db.h"
#include "exitcodes.h"
#include "msg.h"
#include "xalloc.h"
#include "version.h"

struct options {
	long workflows;
	int concurrency;
	int workers;
	int reps;
	int quick;
	const char *json_path;
	int skip_faults, skip_recovery, skip_scaling;
	long rss_workflows;
	const char *modes;
};

static char bindir[512];
static char workdir[512];
static const char *app_name = "inventory"; /* --app: the app measured */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("idem-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(IDEM_EXIT_USAGE);
}

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

static void rmrf(const char *dir)
{
	char *cmd = fmt("rm -rf '%s'", dir);

	if (system(cmd) != 0)
		fprintf(stderr, "idem-bench: could not remove %s\n", dir);
	free(cmd);
}

/* ---- (a) the baseline ------------------------------------------------------ */

static const char checkpoint_schema[] =
    "CREATE TABLE IF NOT EXISTS checkpoints (id INTEGER PRIMARY KEY, workflow_id TEXT NOT NULL,"
    " step INTEGER NOT NULL, result TEXT NOT NULL)";

/* One checkpoint: the step's result, durable (its own transaction). */
static void checkpoint(sqlite3 *db, sqlite3_stmt *ins, const char *wf, const char *result)
{
	sqlite3_bind_text(ins, 1, wf, -1, SQLITE_STATIC);
	sqlite3_bind_int(ins, 2, 0);
	sqlite3_bind_text(ins, 3, result, -1, SQLITE_STATIC);
	if (sqlite3_step(ins) != SQLITE_DONE)
		die("baseline checkpoint: %s", sqlite3_errmsg(db));
	sqlite3_reset(ins);
}

/* The baseline's app DB: the inventory's with product B1, the
 * transfer's with accounts B1 and B2, each with room for any n. */
static struct appconn *baseline_app_db(const char *path, enum db_sync sync)
{
	static struct idem_config cfg;
	struct name_value initial_stock = {"B1", INT64_C(1000000000000)};
	const struct idem_app *app = apps_find(app_name);
	struct appconn *db = NULL;
	char err[512];
	int rc;

	if (strcmp(app_name, "inventory") == 0) {
		rc = appdb_open(path, sync, &initial_stock, 1, &db, err, sizeof(err));
	} else {
		if (apps_add_config_keys(err, sizeof(err)) != 0)
			die("baseline: %s", err);
		config_defaults(&cfg);
		rc = config_set(&cfg, "TRANSFER_ACCOUNTS", "B1:1000000000000,B2:1000000000000", err,
		                sizeof(err));
		if (rc == 0)
			rc = app->open_db(path, sync, &cfg, &db, err, sizeof(err));
	}
	if (rc != 0)
		die("baseline: %s", err);
	return db;
}

/* Runs activity with input (STOLEN) as step of workflow id, and
 * checkpoints its result. */
static void baseline_step(const struct idem_activity_env *env, sqlite3 *sdb, sqlite3_stmt *ins,
                          const char *id, long task, int step, const char *activity, json_t *input)
{
	struct msg_task t = {.task_id = task,
	                     .namespace_ = "bench",
	                     .workflow_id = id,
	                     .step = step,
	                     .attempt = 1,
	                     .activity = activity,
	                     .input = input};
	struct idem_activity_outcome out;
	char *text;

	if (activity_run(env, &t, &out) != 0)
		die("baseline %s: %s: %s", activity, out.error_type, out.error_message);
	text = json_dumps(out.result, JSON_COMPACT);
	checkpoint(sdb, ins, id, text);
	free(text);
	json_decref(out.result);
	json_decref(input);
}

/* One workflow of the app, by hand: the inventory's update_inventory
 * (no restock), or the transfer's debit then credit. */
static void baseline_workflow(const struct idem_activity_env *env, sqlite3 *sdb, sqlite3_stmt *ins,
                              long i)
{
	char id[32];

	snprintf(id, sizeof(id), "B%ld", i);
	if (strcmp(app_name, "inventory") == 0) {
		baseline_step(env, sdb, ins, id, i + 1, 0, "update_inventory",
		              json_pack("{s:s, s:s, s:i}", "order_id", id, "product_id", "B1",
		                        "quantity", 1));
		return;
	}
	for (int step = 0; step < 2; step++)
		baseline_step(env, sdb, ins, id, 2 * i + step + 1, step, step ? "credit" : "debit",
		              json_pack("{s:s, s:s, s:s, s:i}", "transfer_id", id, "from", "B1",
		                        "to", "B2", "amount", 1));
}

/* Returns workflows per second. */
static double run_baseline(long n, enum db_sync sync)
{
	char *dir = fmt("%s/baseline", workdir), *app = fmt("%s/app.db", dir);
	char *state = fmt("%s/state.db", dir), err[512];
	struct appconn *adb = NULL;
	sqlite3 *sdb = NULL;
	sqlite3_stmt *ins = NULL;
	struct idem_activity_env env = {.app = apps_find(app_name)};
	int64_t t0;
	double secs;

	rmrf(dir);
	adb = baseline_app_db(app, sync);
	if (db_open(state, sync, &sdb, err, sizeof(err)) != 0 ||
	    db_exec(sdb, checkpoint_schema, err, sizeof(err)) != 0 ||
	    db_prepare(sdb, "INSERT INTO checkpoints (workflow_id, step, result) VALUES (?, ?, ?)",
	               &ins, err, sizeof(err)) != 0)
		die("baseline: %s", err);
	env.db = adb;
	t0 = clock_mono_us();
	for (long i = 0; i < n; i++)
		baseline_workflow(&env, sdb, ins, i);
	secs = (double)(clock_mono_us() - t0) / 1e6;
	sqlite3_finalize(ins);
	db_close(sdb);
	appconn_close(adb);
	rmrf(dir);
	free(dir);
	free(app);
	free(state);
	return (double)n / secs;
}

/* ---- (b) idem end to end, through idem-stress ----------------------------- */

/* Runs idem-stress with args (NULL-terminated) and returns its JSON report. */
static json_t *run_stress(const char *const *args)
{
	char *json = fmt("%s/stress.json", workdir), *dir = fmt("%s/stress", workdir);
	char *argv[64];
	int n = 0, status;
	pid_t pid;
	json_t *report;

	rmrf(dir);
	argv[n++] = fmt("%s/idem-stress", bindir);
	for (const char *const *a = args; *a != NULL && n < 56; a++)
		argv[n++] = (char *)*a;
	argv[n++] = "--json";
	argv[n++] = json;
	argv[n++] = "--dir";
	argv[n++] = dir;
	argv[n++] = "--progress";
	argv[n++] = "0";
	argv[n] = NULL;
	unlink(json);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0) {
		if (freopen("/dev/null", "w", stdout) == NULL)
			_exit(127);
		execv(argv[0], argv);
		_exit(127);
	}
	waitpid(pid, &status, 0);
	report = json_load_file(json, 0, NULL);
	if (report == NULL)
		die("idem-stress wrote no report (exit %d); run it by hand: %s",
		    WEXITSTATUS(status), argv[0]);
	if (!json_is_true(json_object_get(json_object_get(report, "check"), "ok")))
		die("idem-stress: the checker found a violation during the benchmark; see %s", dir);
	rmrf(dir);
	free(argv[0]);
	free(json);
	free(dir);
	return report;
}

static double jreal(const json_t *o, const char *path1, const char *path2)
{
	const json_t *v = json_object_get(o, path1);

	if (path2 != NULL)
		v = json_object_get(v, path2);
	return json_is_integer(v) ? (double)json_integer_value(v) : json_real_value(v);
}

/* ---- statistics --------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	double s[64];

	memcpy(s, v, sizeof(double) * (size_t)n);
	qsort(s, (size_t)n, sizeof(double), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static double spread(double *v, int n)
{
	double lo = v[0], hi = v[0];

	for (int i = 1; i < n; i++) {
		lo = v[i] < lo ? v[i] : lo;
		hi = v[i] > hi ? v[i] : hi;
	}
	return hi - lo;
}

static json_t *series(double *v, int n)
{
	json_t *a = json_array();

	for (int i = 0; i < n; i++)
		json_array_append_new(a, json_real(v[i]));
	return a;
}

/* ---- the measurements ----------------------------------------------------------- */

static const char *const no_faults[] = {"--kill-rate",    "0", "--async-kill-rate", "0",
                                        "--error-rate",   "0", "--peer-rate",       "0",
                                        "--products",     "1", "--stock",           "1000000000",
                                        "--max-quantity", "1"};

#define NO_FAULTS_N (sizeof(no_faults) / sizeof(no_faults[0]))

/* The app's part of idem-stress's arguments, from a[n] on (after the
 * others, so that faulted() finds its rates where it looks): the app,
 * and for the transfer app two accounts (transfers go from one to the
 * other, so every one has the funds). Returns the new count. */
static int app_args(const char **a, int n)
{
	a[n++] = "--app";
	a[n++] = app_name;
	if (strcmp(app_name, "transfer") == 0) {
		a[n++] = "--products";
		a[n++] = "2";
	}
	return n;
}

/* idem-stress arguments: the benchmark workload plus extra. */
static void stress_args(const char **a, int *n, long workflows, int concurrency, const char *sync,
                        int workers)
{
	static char wbuf[32], cbuf[32], kbuf[32];

	snprintf(wbuf, sizeof(wbuf), "%ld", workflows);
	snprintf(cbuf, sizeof(cbuf), "%d", concurrency);
	snprintf(kbuf, sizeof(kbuf), "%d", workers);
	*n = 0;
	a[(*n)++] = "--workflows";
	a[(*n)++] = wbuf;
	a[(*n)++] = "--concurrency";
	a[(*n)++] = cbuf;
	a[(*n)++] = "--sync";
	a[(*n)++] = sync;
	a[(*n)++] = "--workers";
	a[(*n)++] = kbuf;
	for (size_t i = 0; i < NO_FAULTS_N; i++)
		a[(*n)++] = no_faults[i];
	*n = app_args(a, *n);
	a[*n] = NULL;
}

static json_t *mode_result(const struct options *o, const char *sync)
{
	enum db_sync s = strcmp(sync, "full") == 0 ? DB_SYNC_FULL : DB_SYNC_NORMAL;
	double base[16], idem[16], p50[16], p99[16], mx[16], cpu_sup[16], cpu_wrk[16];
	const char *args[40];
	int n;

	for (int r = 0; r < o->reps; r++) {
		json_t *rep;

		base[r] = run_baseline(o->workflows, s);
		stress_args(args, &n, o->workflows, o->concurrency, sync, o->workers);
		rep = run_stress(args);
		idem[r] = jreal(rep, "workflows_per_s", NULL);
		p50[r] = jreal(rep, "latency", "p50_ms");
		p99[r] = jreal(rep, "latency", "p99_ms");
		mx[r] = jreal(rep, "latency", "max_ms");
		cpu_sup[r] = jreal(rep, "cpu", "supervisor_s") / (double)o->workflows;
		cpu_wrk[r] = jreal(rep, "cpu", "workers_s") / (double)o->workflows;
		fprintf(stderr,
		        "  SYNC=%s rep %d: baseline %.0f wf/s, idem %.0f wf/s, p99 %.1f ms\n", sync,
		        r + 1, base[r], idem[r], p99[r]);
		json_decref(rep);
	}
	double bm = median(base, o->reps), im = median(idem, o->reps);
	return json_pack(
	    "{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:o, s:o}", "idem_wf_per_s",
	    im, "baseline_wf_per_s", bm, "ratio", im / bm, "activities_per_s", im, "p50_ms",
	    median(p50, o->reps), "p99_ms", median(p99, o->reps), "max_ms", median(mx, o->reps),
	    "idem_spread_wf_per_s", spread(idem, o->reps), "baseline_spread_wf_per_s",
	    spread(base, o->reps), "cpu_ms_per_wf_supervisor", 1000 * median(cpu_sup, o->reps),
	    "cpu_ms_per_wf_workers", 1000 * median(cpu_wrk, o->reps), "idem_runs",
	    series(idem, o->reps), "baseline_runs", series(base, o->reps));
}

static json_t *faulted(const struct options *o, double clean)
{
	const char *args[40];
	double wf[16], pct[16], sup[16], wrk[16], kills[16];
	int n;

	/* About a fifth of the attempts faulted: kills at every crash point
	 * plus errors (the values after "--kill-rate" and "--error-rate"). */
	stress_args(args, &n, o->workflows, o->concurrency, "full", o->workers);
	args[9] = "0.12";
	args[13] = "0.1";
	for (int r = 0; r < o->reps; r++) {
		json_t *rep = run_stress(args);

		wf[r] = jreal(rep, "workflows_per_s", NULL);
		pct[r] = jreal(rep, "faulted_pct", NULL);
		sup[r] = jreal(rep, "cpu", "supervisor_s") / (double)o->workflows;
		wrk[r] = jreal(rep, "cpu", "workers_s") / (double)o->workflows;
		kills[r] = jreal(rep, "worker_respawns", NULL);
		fprintf(stderr, "  faulted rep %d: %.0f wf/s, %.1f%% of attempts faulted\n", r + 1,
		        wf[r], pct[r]);
		json_decref(rep);
	}
	return json_pack("{s:f, s:f, s:f, s:f, s:f, s:o, s:f, s:f, s:f}", "faulted_wf_per_s",
	                 median(wf, o->reps), "clean_wf_per_s", clean, "ratio_to_clean",
	                 median(wf, o->reps) / clean, "faulted_pct", median(pct, o->reps),
	                 "faulted_spread_wf_per_s", spread(wf, o->reps), "faulted_runs",
	                 series(wf, o->reps), "cpu_ms_per_wf_supervisor",
	                 1000 * median(sup, o->reps), "cpu_ms_per_wf_workers",
	                 1000 * median(wrk, o->reps), "workers_started", median(kills, o->reps));
}

static json_t *scaling(const struct options *o, const char *sync)
{
	static const int counts[] = {1, 2, 4, 8, 16};
	json_t *out = json_object();
	const char *args[40];
	int n;

	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		json_t *rep;
		char key[16];

		snprintf(key, sizeof(key), "%d", counts[i]);
		stress_args(args, &n, o->workflows, o->concurrency, sync, counts[i]);
		rep = run_stress(args);
		json_object_set_new(out, key, json_real(jreal(rep, "workflows_per_s", NULL)));
		fprintf(stderr, "  SYNC=%s WORKERS=%d: %.0f wf/s\n", sync, counts[i],
		        jreal(rep, "workflows_per_s", NULL));
		json_decref(rep);
	}
	return out;
}

static json_t *recovery(void)
{
	const char *args[NO_FAULTS_N + 8] = {"--recovery-test", "10000"};
	json_t *rep, *out;
	int n = 2;

	for (size_t i = 0; i < NO_FAULTS_N; i++)
		args[n++] = no_faults[i];
	args[app_args(args, n)] = NULL;
	rep = run_stress(args);

	out = json_incref(json_object_get(rep, "recovery_test"));
	json_decref(rep);
	return out;
}

static json_t *rss(const struct options *o)
{
	const char *args[40];
	char buf[32];
	int n;
	json_t *rep, *out;

	snprintf(buf, sizeof(buf), "%ld", o->rss_workflows);
	stress_args(args, &n, o->rss_workflows, o->concurrency, "normal", o->workers);
	rep = run_stress(args);
	out = json_pack("{s:I, s:O, s:f}", "workflows", (json_int_t)o->rss_workflows,
	                "supervisor_rss_kib", json_object_get(rep, "supervisor_rss_kib"),
	                "wf_per_s", jreal(rep, "workflows_per_s", NULL));
	json_decref(rep);
	return out;
}

/* ---- output ------------------------------------------------------------------------ */

/* The value of the first line of file that starts with key, after its ':'
 * or '=', blanks and quotes trimmed (/proc/cpuinfo, /etc/os-release); ""
 * when there is none. */
static json_t *file_field(const char *file, const char *key)
{
	FILE *f = fopen(file, "r");
	char line[512], *v = NULL, *e;

	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, key, strlen(key)) != 0 || (v = strpbrk(line, ":=")) == NULL)
			continue;
		v += strspn(v + 1, " \t\"") + 1;
		for (e = v + strlen(v); e > v && strchr(" \t\n\"", e[-1]) != NULL; e--)
			;
		*e = '\0';
		break;
	}
	if (f != NULL)
		fclose(f);
	return json_string(v ? v : "");
}

/* Where and how it ran: the figures are this machine's, with these options. */
static json_t *run_info(const struct options *o)
{
	struct utsname u;
	char kernel[3 * sizeof(u.release)] = "";

	if (uname(&u) == 0)
		snprintf(kernel, sizeof(kernel), "%s %s %s", u.sysname, u.release, u.machine);
	return json_pack("{s:{s:s, s:I, s:i, s:i, s:i, s:s, s:b, s:b, s:b, s:b, s:I},"
	                 " s:{s:I, s:o, s:o, s:s}}",
	                 "options", "app", app_name, "workflows", (json_int_t)o->workflows,
	                 "concurrency", o->concurrency, "workers", o->workers, "reps", o->reps,
	                 "modes", o->modes, "quick", o->quick, "skip_faults", o->skip_faults,
	                 "skip_recovery", o->skip_recovery, "skip_scaling", o->skip_scaling, "rss",
	                 (json_int_t)o->rss_workflows, "machine", "cpus",
	                 (json_int_t)sysconf(_SC_NPROCESSORS_ONLN), "cpu",
	                 file_field("/proc/cpuinfo", "model name"), "os",
	                 file_field("/etc/os-release", "PRETTY_NAME"), "kernel", kernel);
}

static void print_table(const json_t *modes, int workers)
{
	const char *k;
	json_t *m;

	printf("\n%-8s %12s %12s %8s %9s %9s %9s %12s %12s\n", "SYNC", "idem wf/s", "base wf/s",
	       "ratio", "p50 ms", "p99 ms", "max ms", "cpu sup ms", "cpu wrk ms");
	json_object_foreach((json_t *)modes, k, m)
	    printf("%-8s %7.0f ±%-4.0f %7.0f ±%-4.0f %8.2f %9.1f %9.1f %9.1f %12.3f %12.3f\n", k,
	           jreal(m, "idem_wf_per_s", NULL), jreal(m, "idem_spread_wf_per_s", NULL),
	           jreal(m, "baseline_wf_per_s", NULL), jreal(m, "baseline_spread_wf_per_s", NULL),
	           jreal(m, "ratio", NULL), jreal(m, "p50_ms", NULL), jreal(m, "p99_ms", NULL),
	           jreal(m, "max_ms", NULL), jreal(m, "cpu_ms_per_wf_supervisor", NULL),
	           jreal(m, "cpu_ms_per_wf_workers", NULL));
	printf("(app %s, idem with WORKERS=%d; median of the repetitions, ± the spread max - min; "
	       "%s)\n",
	       app_name, workers,
	       strcmp(app_name, "transfer") == 0
	           ? "activities/s = 2 x workflows/s: a debit and a credit per workflow"
	           : "activities/s = workflows/s: one activity per workflow");
}

static void parse(struct options *o, int argc, char **argv)
{
	static const struct option longs[] = {
	    {"app", 1, 0, 'A'},          {"quick", 0, 0, 'q'},
	    {"json", 2, 0, 'j'},         {"workflows", 1, 0, 'w'},
	    {"concurrency", 1, 0, 'c'},  {"reps", 1, 0, 'r'},
	    {"skip-faults", 0, 0, 'F'},  {"skip-recovery", 0, 0, 'R'},
	    {"skip-scaling", 0, 0, 'S'}, {"rss", 1, 0, 'm'},
	    {"modes", 1, 0, 'M'},        {"workers", 1, 0, 'W'},
	    {"help", 0, 0, 'h'},         {0, 0, 0, 0}};
	int c;

	*o = (struct options){.workflows = 10000,
	                      .concurrency = 32,
	                      .workers = 16,
	                      .reps = 3,
	                      .modes = "full,normal"};
	while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
		switch (c) {
		case 'A':
			if (strcmp(optarg, "inventory") != 0 && strcmp(optarg, "transfer") != 0)
				die("--app %s: give inventory or transfer", optarg);
			app_name = optarg;
			break;
		case 'q':
			o->quick = 1;
			break;
		case 'j':
			o->json_path = optarg ? optarg : "-";
			break;
		case 'w':
			o->workflows = atol(optarg);
			break;
		case 'c':
			o->concurrency = atoi(optarg);
			break;
		case 'r':
			o->reps = atoi(optarg);
			break;
		case 'F':
			o->skip_faults = 1;
			break;
		case 'R':
			o->skip_recovery = 1;
			break;
		case 'S':
			o->skip_scaling = 1;
			break;
		case 'm':
			o->rss_workflows = atol(optarg);
			break;
		case 'M':
			o->modes = optarg;
			break;
		case 'W':
			o->workers = atoi(optarg);
			break;
		case 'h':
			printf("usage: scripts/bench [--app inventory|transfer] [--quick] [--json "
			       "FILE] [--workflows N] "
			       "[--concurrency N] [--workers N] [--reps N] [--modes full,normal] "
			       "[--skip-faults] [--skip-recovery] [--skip-scaling] [--rss N]\n");
			exit(0);
		default:
			die("unknown option (see --help)");
		}
	}
	if (optind < argc)
		die("unexpected argument \"%s\" (--json takes its file as --json=FILE)",
		    argv[optind]);
	if (o->workflows < 100 || o->reps < 1 || o->reps > 16 || o->concurrency < 1 ||
	    o->workers < 1 || o->workers > 64)
		die("--workflows >= 100, --reps 1..16, --concurrency >= 1, --workers 1..64");
	if (o->quick) {
		o->workflows = 2000;
		o->reps = 1;
		o->skip_scaling = 1;
	}
}

int main(int argc, char **argv)
{
	struct options o;
	json_t *out = NULL, *modes = NULL, *info;
	char self[512];
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	const char *tmp = getenv("TMPDIR");
	FILE *json_out = NULL;

	idem_version_exit(argc, argv, "idem-bench");
	xalloc_install_json(); /* as the programs it measures (xalloc.h) */
	out = json_object();
	modes = json_object();
	parse(&o, argc, argv);
	/* With --json alone, stdout carries the JSON document only: what would
	 * be printed for a person goes to stderr. */
	if (o.json_path != NULL && strcmp(o.json_path, "-") == 0) {
		json_out = fdopen(dup(1), "w");
		if (json_out == NULL || dup2(2, 1) < 0)
			die("cannot set up --json output");
	}
	if (len < 0)
		die("cannot read /proc/self/exe");
	self[len] = '\0';
	*strrchr(self, '/') = '\0';
	snprintf(bindir, sizeof(bindir), "%s", self);
	snprintf(workdir, sizeof(workdir), "%s/idem-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(workdir) == NULL)
		die("cannot create a work directory: %s", strerror(errno));
	json_object_seed(0);
	fprintf(stderr,
	        "idem-bench: %ld workflows, %d in flight, %d workers, %d repetitions, modes %s\n",
	        o.workflows, o.concurrency, o.workers, o.reps, o.modes);
	json_object_set_new(out, "workers", json_integer(o.workers));
	info = run_info(&o);
	json_object_update(out, info);
	json_decref(info);
	for (const char *m = o.modes; *m;) {
		char mode[16];
		size_t l = strcspn(m, ",");

		snprintf(mode, sizeof(mode), "%.*s", (int)l, m);
		json_object_set_new(modes, mode, mode_result(&o, mode));
		m += l + (m[l] == ',');
	}
	json_object_set_new(out, "modes", modes);
	print_table(modes, o.workers);
	if (!o.skip_faults) {
		json_t *full = json_object_get(modes, "full");
		json_t *f =
		    faulted(&o, full ? jreal(full, "idem_wf_per_s", NULL)
		                     : jreal(json_object_iter_value(json_object_iter(modes)),
		                             "idem_wf_per_s", NULL));

		printf("faults: %.0f ±%.0f wf/s with %.1f%% of attempts faulted = %.2f x "
		       "fault-free (median of %d)\n",
		       jreal(f, "faulted_wf_per_s", NULL),
		       jreal(f, "faulted_spread_wf_per_s", NULL), jreal(f, "faulted_pct", NULL),
		       jreal(f, "ratio_to_clean", NULL), o.reps);
		printf(
		    "faults: cpu per workflow: supervisor %.3f ms, workers %.3f ms; %.0f workers "
		    "started over %ld workflows\n",
		    jreal(f, "cpu_ms_per_wf_supervisor", NULL),
		    jreal(f, "cpu_ms_per_wf_workers", NULL), jreal(f, "workers_started", NULL),
		    o.workflows);
		json_object_set_new(out, "faults", f);
	}
	if (!o.skip_recovery) {
		json_t *r = recovery();

		printf("recovery: %lld in flight; supervisor SIGKILLed and restarted: API back in "
		       "%.0f ms, all re-queued in %.0f ms, all completed in %.0f ms\n",
		       (long long)json_integer_value(json_object_get(r, "in_flight")),
		       jreal(r, "api_ms", NULL), jreal(r, "requeued_ms", NULL),
		       jreal(r, "completed_ms", NULL));
		json_object_set_new(out, "recovery", r);
	}
	if (!o.skip_scaling) {
		/* "scaling" is SYNC=full, as before; "scaling_normal" is new. */
		static const char *const keys[] = {"scaling", "scaling_normal"};
		static const char *const syncs[] = {"full", "normal"};

		for (int i = 0; i < 2; i++) {
			json_t *s = scaling(&o, syncs[i]);
			const char *k;
			json_t *v;

			printf("scaling (SYNC=%s):", syncs[i]);
			json_object_foreach(s, k, v)
			    printf(" WORKERS=%s %.0f wf/s", k, json_real_value(v));
			printf("\n");
			json_object_set_new(out, keys[i], s);
		}
	}
	if (o.rss_workflows > 0) {
		json_t *r = rss(&o);

		printf("memory: supervisor peak RSS %.1f MiB after %ld workflows\n",
		       jreal(r, "supervisor_rss_kib", NULL) / 1024.0, o.rss_workflows);
		json_object_set_new(out, "memory", r);
	}
	if (o.json_path != NULL) {
		if (strcmp(o.json_path, "-") == 0) {
			json_dumpf(out, json_out, JSON_INDENT(2));
			fputc('\n', json_out);
			fclose(json_out);
		} else if (json_dump_file(out, o.json_path, JSON_INDENT(2)) != 0)
			fprintf(stderr, "idem-bench: cannot write %s\n", o.json_path);
	}
	json_decref(out);
	rmrf(workdir);
	return 0;
}
