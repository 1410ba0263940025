/* main.c — idem-supervisor: configuration, signals and the event loop.
 * Each loop turn runs the callbacks that are ready, then
 * engine_turn_end() (the redis "beforesleep" spot): replay, dispatch,
 * one COMMIT, then replies. */
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "apps.h"
#include "clock.h"
#include "engine.h"
#include "exitcodes.h"
#include "faultctl.h"
#include "faultvfs.h"
#include "lockfile.h"
#include "log.h"
#include "notify.h"
#include "pgconn.h"
#include "pool.h"
#include "prune.h"
#include "store.h"
#include "sup.h"
#include "timer.h"
#include "xalloc.h"
#include "version.h"

#define KILL_AFTER_MS 2000

_Static_assert(FAULT_NPOINTS == CONFIG_FAULT_POINTS, "config and fault planner disagree");

static const char usage[] =
    "usage: idem-supervisor [--env FILE] [--key VALUE ...] [--seed N] [--notify-fd N]\n"
    "       idem-supervisor --help | --version\n"
    "\n"
    "Runs idem: a pool of idem-worker processes, the app's helper process, the\n"
    "state DB and the control API. Every configuration key can be given as a\n"
    "flag (WORKERS as --workers 4); flags override the environment, which\n"
    "overrides the .env file (default ./.env; see .env-dist). --seed N is\n"
    "FAULT_SEED: the same seed replays the same fault plan.\n"
    "\n"
    "SIGHUP reads the configuration again: the FAULT_* keys (but FAULT_SEED\n"
    "and FAULT_VFS), LOG_* and RETRY_* change on the live supervisor; the log\n"
    "names any other key that changed, which waits for a restart.\n"
    "\n"
    "As a service: logs go to stderr (one line per event), SIGTERM drains\n"
    "(SHUTDOWN_GRACE) and exits 0. Readiness, once the control API listens:\n"
    "READY=1 to systemd's NOTIFY_SOCKET (Type=notify), and with --notify-fd N\n"
    "a newline written to fd N, then closed (s6: N is the service's\n"
    "notification-fd). See examples/service.\n"
    "\n"
    "Keys:\n";

struct run {
	struct sup sup;
	int lock_fd;         /* STATE_DATABASE.lock, held for the whole run */
	struct prune *prune; /* RETENTION, or NULL */
	struct event *lease; /* several supervisors: renew the lease, adopt */
	struct event *grace;
	int grace_over;
	int pool_stopped;
	int done;
	int storage_faults; /* FAULT_VFS targets the state DB */
	int argc;           /* for SIGHUP's re-read */
	char **argv;
	/* The config as the .env and the environment say it, without the
	 * other flags, as last read: a SIGHUP compares it to name a change
	 * there that a flag keeps from taking effect. NULL: not read. */
	struct idem_config *flagless;
};

static void print_usage(FILE *out)
{
	size_t n;
	const struct config_key *k = config_keys(&n);

	fputs(usage, out);
	for (size_t i = 0; i < n; i++) {
		char flag[CONFIG_NAME_MAX];

		config_flag_name(k[i].name, flag, sizeof(flag));
		fprintf(out, "  --%-28s %s (%s; default \"%s\"; %s)\n", flag, k[i].help, k[i].name,
		        k[i].def, k[i].allowed);
	}
	fputs("\nExit codes: 0 clean stop, 1 runtime failure (state DB), 2 bad\n"
	      "configuration or command line, 4 a database could not be opened.\n",
	      out);
}

/* The directory of our own executable: idem-worker and the app's helper live
 * beside it. */
static int find_bindir(char *out, size_t len, char *err, size_t errlen)
{
	char self[512];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n < 0) {
		snprintf(err, errlen, "cannot read /proc/self/exe: %s", strerror(errno));
		return -1;
	}
	self[n] = '\0';
	snprintf(out, len, "%s", dirname(self));
	return 0;
}

static void grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct run *r = arg;

	r->grace_over = 1;
	log_warn("shutdown grace period over; stopping workers with attempts in flight", "");
}

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
	struct run *r = arg;
	int64_t ms = r->sup.cfg.shutdown_grace_ms;

	if (r->sup.stopping) {
		log_warn("second signal: stopping now", "signal=%d", (int)sig);
		r->grace_over = 1;
		return;
	}
	r->sup.stopping = 1;
	notify_stopping();
	log_info("shutting down: no new work; waiting for attempts in flight",
	         "signal=%d busy=%d grace_ms=%lld", (int)sig, pool_busy_count(r->sup.pool),
	         (long long)ms);
	r->grace = evtimer_new(r->sup.base, grace_cb, r);
	timer_in(r->grace, ms);
}

static void chld_cb(evutil_socket_t sig, short what, void *arg)
{
	struct run *r = arg;

	pool_reap(r->sup.pool);
}

/* Called after every turn once stopping: workers go when idle or when the
 * grace is over; the loop ends when every child is reaped. */
static void shutdown_progress(struct run *r)
{
	if (!r->pool_stopped && (pool_busy_count(r->sup.pool) == 0 || r->grace_over)) {
		pool_stop(r->sup.pool, KILL_AFTER_MS);
		r->pool_stopped = 1;
	}
	if (r->pool_stopped && pool_children(r->sup.pool) == 0)
		r->done = 1;
}

static void retry_from_config(struct sup *sup)
{
	retry_policy_default(&sup->retry);
	sup->retry.initial_ms = sup->cfg.retry_initial_ms;
	sup->retry.coefficient = sup->cfg.retry_backoff;
	sup->retry.maximum_ms = sup->cfg.retry_maximum_ms;
	sup->retry.maximum_attempts = sup->cfg.retry_maximum_attempts;
}

/* What SIGHUP changes on a live supervisor: the fault plan (but its seed
 * and FAULT_VFS), the logs, and the retry policy of the retries
 * scheduled from then on. */
static int reloadable(const char *key)
{
	static const char *const keys[] = {
	    "LOG_LEVEL",
	    "LOG_FORMAT",
	    "RETRY_INITIAL_INTERVAL",
	    "RETRY_BACKOFF_COEFFICIENT",
	    "RETRY_MAXIMUM_INTERVAL",
	    "RETRY_MAXIMUM_ATTEMPTS",
	    "RETRY_NON_RETRYABLE",
	};

	if (faultctl_live_key(key))
		return 1;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(key, keys[i]) == 0)
			return 1;
	return 0;
}

/* The config that r's .env (its --env) and the environment give, without
 * its other flags (malloc'd), or NULL when it does not load. */
static struct idem_config *load_flagless(const struct run *r)
{
	struct idem_config *c = xmalloc(sizeof(*c));
	char err[1024];

	if (config_load_sources(c, r->argc, r->argv, err, sizeof(err)) == 0)
		return c;
	free(c);
	return NULL;
}

/* SIGHUP: reads the configuration again as at the start (the same .env,
 * environment and flags) and applies the keys that can change on a live
 * supervisor; the log names each that cannot, which waits for a restart.
 * A configuration that does not load changes nothing. */
static void reload_cb(evutil_socket_t sig, short what, void *arg)
{
	struct run *r = arg;
	struct sup *sup = &r->sup;
	struct idem_config *c = xmalloc(sizeof(*c));
	int *rest = xcalloc((size_t)r->argc + 1, sizeof(int)), nrest = 0;
	struct idem_config *flagless = NULL;
	char err[1024], changed[1024] = "", later[1024] = "", hidden[1024] = "";
	size_t n;
	const struct config_key *keys = config_keys(&n);

	(void)sig;
	(void)what;
	if (sup->stopping) {
		log_info("SIGHUP during the drain: the configuration is not read again", "");
		goto out;
	}
	notify_reloading();
	if (config_load(c, r->argc, r->argv, rest, &nrest, err, sizeof(err)) != 0) {
		log_error("SIGHUP: the configuration does not load; nothing changed",
		          "error=\"%s\"", err);
		goto done;
	}
	/* --seed is parse_args's, which config_load leaves alone. */
	for (int i = 0; i < nrest; i++)
		if (strncmp(r->argv[rest[i]], "--seed", 6) == 0)
			config_copy(c, &sup->cfg, "FAULT_SEED");
	flagless = load_flagless(r);
	for (size_t i = 0; i < n; i++) {
		char *list = reloadable(keys[i].name) ? changed : later;
		size_t used = strlen(list);

		/* Changed in the .env or the environment, but a flag says it. */
		if (r->flagless != NULL && flagless != NULL &&
		    !config_same(r->flagless, flagless, keys[i].name) &&
		    !config_same(flagless, c, keys[i].name)) {
			size_t h = strlen(hidden);

			snprintf(hidden + h, sizeof(hidden) - h, "%s%s", h ? "," : "",
			         keys[i].name);
		}
		if (config_same(&sup->cfg, c, keys[i].name))
			continue;
		snprintf(list + used, sizeof(changed) - used, "%s%s", used ? "," : "",
		         keys[i].name);
		if (list == changed)
			config_copy(&sup->cfg, c, keys[i].name);
	}
	log_set_level(sup->cfg.log_level);
	log_set_format(sup->cfg.log_format);
	retry_from_config(sup);
	if (faultctl_reload(sup->faultctl, &sup->cfg, err, sizeof(err)) != 0)
		log_error("SIGHUP: cannot record the fault plan", "error=\"%s\"", err);
	log_info("SIGHUP: configuration read again", "changed=\"%s\" needs_restart=\"%s\"", changed,
	         later);
	if (later[0] != '\0')
		log_warn("SIGHUP: these keys changed but take effect at the next restart",
		         "keys=\"%s\"", later);
	if (hidden[0] != '\0')
		log_warn("SIGHUP: these keys changed in the .env or the environment, but a flag "
		         "of the command line sets them, and flags win: not changed",
		         "keys=\"%s\"", hidden);
	if (flagless != NULL) {
		free(r->flagless);
		r->flagless = flagless;
		flagless = NULL;
	}
done:
	notify_ready(NULL);
out:
	free(flagless);
	free(rest);
	free(c);
}

/* FAULT_VFS for the state DB, before any database is opened; the
 * workers get the spec too (spawn.c) and take the app DB's share. */
static int setup_storage_faults(struct run *r, char *err, size_t errlen)
{
	const struct idem_config *c = &r->sup.cfg;
	struct faultvfs_spec spec;
	int rc;

	if (faultvfs_parse(c->fault_vfs, &spec, err, errlen) != 0)
		return -1;
	if (spec.enabled && strcmp(spec.target, "app") == 0 && pgconn_is_url(c->database)) {
		snprintf(err, errlen,
		         "FAULT_VFS=%.200s targets the app DB, which is on PostgreSQL (FAULT_VFS "
		         "fails SQLite's file calls); target the state DB, or use a SQLite "
		         "DATABASE",
		         c->fault_vfs);
		return -1;
	}
	if (spec.enabled && strcmp(spec.target, "state") == 0 && pgconn_is_url(c->state_database)) {
		snprintf(err, errlen,
		         "FAULT_VFS=%.200s targets the state DB, which is on PostgreSQL (FAULT_VFS "
		         "fails SQLite's file calls); target the app DB, or use a SQLite "
		         "STATE_DATABASE",
		         c->fault_vfs);
		return -1;
	}
	rc = faultvfs_install(&spec, "state", c->state_database, err, errlen);
	if (rc < 0)
		return -1;
	r->storage_faults = rc;
	if (rc > 0)
		log_info("storage fault injection on (FAULT_VFS)", "role=state db=%s spec=\"%s\"",
		         c->state_database, c->fault_vfs);
	return 0;
}

/* One supervisor per state DB, whatever its socket: an exclusive lock on
 * STATE_DATABASE.lock, taken before any database is opened, so that a
 * second one writes nothing and cannot hold a database lock the live one
 * needs. Returns an exit code. */
static int take_lock(struct run *r, char *err, size_t errlen)
{
	const struct idem_config *c = &r->sup.cfg;
	char path[CONFIG_PATH_MAX + 8], note[CONFIG_PATH_MAX + 16], theirs[CONFIG_PATH_MAX + 16];
	char inner[512];
	pid_t holder;

	r->lock_fd = -1;
	/* On PostgreSQL the store takes a lock of the server's instead. */
	if (strcmp(c->state_database, ":memory:") == 0 || pgconn_is_url(c->state_database))
		return IDEM_EXIT_OK;
	snprintf(path, sizeof(path), "%s.lock", c->state_database);
	snprintf(note, sizeof(note), "socket=%s", c->socket);
	switch (lockfile_take(path, note, &r->lock_fd, &holder, theirs, sizeof(theirs), inner,
	                      sizeof(inner))) {
	case LOCKFILE_TAKEN:
		return IDEM_EXIT_OK;
	case LOCKFILE_HELD:
		snprintf(err, errlen,
		         "another idem-supervisor (pid %ld, %.250s) runs on STATE_DATABASE=%.250s "
		         "(lock %.250s); stop it first, or give this one another STATE_DATABASE",
		         (long)holder, theirs[0] != '\0' ? theirs : "socket unknown",
		         c->state_database, path);
		return IDEM_EXIT_USAGE;
	default:
		snprintf(err, errlen, "STATE_DATABASE=%.250s: %.500s", c->state_database, inner);
		return IDEM_EXIT_DB;
	}
}

/* Prefixes err with the key whose database failed: the same SQLite
 * message reads alike for STATE_DATABASE and DATABASE. */
static int db_key_fail(const char *key, const char *path, char *err, size_t errlen)
{
	char inner[512], url[CONFIG_PATH_MAX];

	snprintf(inner, sizeof(inner), "%s", err);
	if (pgconn_is_url(path)) {
		pgconn_redact(path, url, sizeof(url));
		snprintf(err, errlen,
		         "%s=%.250s: %.450s (check the server, or the connection string and the "
		         "PG* environment)",
		         key, url, inner);
		return IDEM_EXIT_DB;
	}
	snprintf(err, errlen, "%s=%.250s: %.450s (fix the file or point %s at another path)", key,
	         path, inner, key);
	return IDEM_EXIT_DB;
}

/* With SYNC=full, what the last run wrote and did not sync yet (its sync
 * thread runs behind the commits) may still be only in the page cache.
 * Everything loaded from the databases counts as durable once this
 * returns, so it runs before recovery or the API can let anything out:
 * no task frame for a start a power loss could take back, no answer of a
 * completion that could be lost. */
static int sync_previous_run(struct sup *sup, char *err, size_t errlen)
{
	const struct idem_config *c = &sup->cfg;

	if (c->sync != DB_SYNC_FULL)
		return IDEM_EXIT_OK;
	if (appconn_sqlite(sup->appdb) != NULL &&
	    db_sync_files(appconn_sqlite(sup->appdb), err, errlen) != 0)
		return db_key_fail("DATABASE", c->database, err, errlen);
	/* PostgreSQL's COMMIT returned durable: nothing of the state to sync. */
	if (store_db(sup->store) != NULL && db_sync_files(store_db(sup->store), err, errlen) != 0)
		return db_key_fail("STATE_DATABASE", c->state_database, err, errlen);
	return IDEM_EXIT_OK;
}

/* SUPERVISOR_NAME, or HOST:DIR/SOCKET: what tells this supervisor from
 * the others sharing a PostgreSQL state DB, across its restarts. */
static void supervisor_name(const struct idem_config *c, char *out, size_t outlen)
{
	char host[256] = "", dir[CONFIG_PATH_MAX] = ".";

	if (c->supervisor_name[0] != '\0') {
		snprintf(out, outlen, "%s", c->supervisor_name);
		return;
	}
	if (gethostname(host, sizeof(host) - 1) != 0)
		snprintf(host, sizeof(host), "localhost");
	if (c->socket[0] != '/' && getcwd(dir, sizeof(dir)) == NULL)
		snprintf(dir, sizeof(dir), ".");
	if (c->socket[0] == '/')
		snprintf(out, outlen, "%s:%s", host, c->socket);
	else
		snprintf(out, outlen, "%s:%s/%s", host, dir, c->socket);
}

/* Several supervisors: every LEASE/3 a turn that renews the lease (when
 * no other turn wrote) and adopts the workflows of supervisors whose
 * lease lapsed. */
static void lease_cb(evutil_socket_t fd, short what, void *arg)
{
	struct run *r = arg;

	(void)fd;
	(void)what;
	engine_adopt_lapsed(r->sup.engine);
}

/* Opens the two databases the supervisor uses, and checks the ones only
 * the app's helper opens (the app's dbs), each error naming its key. */
static int open_dbs(struct sup *sup, char *err, size_t errlen)
{
	const struct idem_config *c = &sup->cfg;
	int rc;

	for (const struct idem_app_db *d = sup->app->dbs; d != NULL && d->schema != NULL; d++)
		if (db_probe(d->path(c), err, errlen) != 0)
			return db_key_fail(d->key, d->path(c), err, errlen);
	if (sup->app->open_db(c->database, (enum db_sync)c->sync, c, &sup->appdb, err, errlen) != 0)
		return db_key_fail("DATABASE", c->database, err, errlen);
	rc = store_open(c->state_database, (enum db_sync)c->sync,
	                c->fault_vfs[0] == '\0' ? appconn_sqlite(sup->appdb) : NULL, &sup->store,
	                err, errlen);
	if (rc == 0 && store_shared(sup->store)) {
		char name[CONFIG_PATH_MAX * 2];

		supervisor_name(c, name, sizeof(name));
		rc = store_join(sup->store, name, c->lease_ms, err, errlen);
		if (rc == 0)
			log_info("joined the supervisors sharing the state DB",
			         "name=\"%s\" run=%lld lease_ms=%lld", name,
			         (long long)store_run_id(sup->store), (long long)c->lease_ms);
	}
	if (rc == STORE_HELD)
		return IDEM_EXIT_USAGE; /* as for the lock file: exit 2 */
	if (rc != 0)
		return db_key_fail("STATE_DATABASE", c->state_database, err, errlen);
	return sync_previous_run(sup, err, errlen);
}

static int setup(struct run *r, char *err, size_t errlen)
{
	struct sup *sup = &r->sup;
	int rc;

	sup->app = apps_load(sup->cfg.app, err, errlen);
	if (sup->app == NULL)
		return IDEM_EXIT_USAGE;

	if ((rc = take_lock(r, err, errlen)) != IDEM_EXIT_OK)
		return rc;
	if (setup_storage_faults(r, err, errlen) != 0)
		return IDEM_EXIT_DB;
	/* A PostgreSQL URL may hold a password: the workers and the checker
	 * read DATABASE from the environment, only this user's to see, not
	 * from their argv, anyone's (spawn.c, api.c). */
	if (pgconn_is_url(sup->cfg.database) && setenv("DATABASE", sup->cfg.database, 1) != 0) {
		snprintf(err, errlen, "cannot set DATABASE for the workers: %s", strerror(errno));
		return IDEM_EXIT_FAIL;
	}
	if ((rc = open_dbs(sup, err, errlen)) != IDEM_EXIT_OK)
		return rc;
	if (engine_new(sup, &sup->engine, err, errlen) != 0 ||
	    engine_recover(sup->engine, err, errlen) != 0)
		return IDEM_EXIT_FAIL;
	/* The start's fault plan, the first write of a run: a state DB that
	 * cannot take it is one that cannot be opened for writing (exit 4). */
	if (faultctl_start(sup->faultctl, err, errlen) != 0)
		return IDEM_EXIT_DB;
	/* Recovery's transaction (and the start's fault plan) must not stay
	 * open while the helpers and workers start (seconds): on SQLite it
	 * holds the state DB's write lock, and with several supervisors this
	 * run's row and lease, which a short LEASE would not outlast. */
	if (store_dirty(sup->store)) {
		if (store_commit(sup->store, err, errlen) != 0)
			return IDEM_EXIT_DB;
		/* Durable behind the loop like a turn's commit: what waits for
		 * it (the first turn's replies) is let out once it is. */
		store_sync_request(sup->store);
	}
	if (api_start(sup, &sup->api, err, errlen) != 0 ||
	    pool_start(sup, &engine_pool_callbacks, sup->engine, &sup->pool, err, errlen) != 0)
		return IDEM_EXIT_USAGE;
	r->prune = prune_start(sup);
	if (store_shared(sup->store)) {
		struct timeval tv = {.tv_sec = sup->cfg.lease_ms / 3000,
		                     .tv_usec = (sup->cfg.lease_ms / 3 % 1000) * 1000};

		r->lease = event_new(sup->base, -1, EV_PERSIST, lease_cb, r);
		event_add(r->lease, &tv);
	}
	return IDEM_EXIT_OK;
}

static void teardown(struct run *r)
{
	struct sup *sup = &r->sup;

	prune_free(r->prune);
	if (r->lease != NULL)
		event_free(r->lease);
	api_free(sup->api);
	engine_free(sup->engine);
	faultctl_free(sup->faultctl);
	pool_free(sup->pool);
	store_close(sup->store);
	appconn_close(sup->appdb);
	if (r->grace != NULL)
		event_free(r->grace);
	if (r->lock_fd >= 0)
		close(r->lock_fd); /* last: the databases are closed */
}

static int parse_args(struct run *r, int argc, char **argv)
{
	struct sup *sup = &r->sup;
	int *rest = xcalloc((size_t)argc + 1, sizeof(int)), nrest = 0, rc = -1;
	char err[1024];

	if (apps_add_config_keys(err, sizeof(err)) != 0) {
		fprintf(stderr, "idem-supervisor: %s\n", err);
		goto done;
	}
	/* Before the configuration, so that help comes even when it is bad. */
	if (config_help_asked(argc, argv)) {
		print_usage(stdout);
		rc = 1;
		goto done;
	}
	if (config_load(&sup->cfg, argc, argv, rest, &nrest, err, sizeof(err)) != 0) {
		fprintf(stderr, "idem-supervisor: %s\n", err);
		goto done;
	}
	for (int i = 0; i < nrest; i++) {
		const char *a = argv[rest[i]];

		/* --seed N is FAULT_SEED, the name a person replaying a run types. */
		if (strcmp(a, "--seed") == 0 || strncmp(a, "--seed=", 7) == 0) {
			const char *v = a[6] == '=' ? a + 7 : NULL;

			if (v == NULL && (i + 1 >= nrest || rest[i + 1] != rest[i] + 1)) {
				fprintf(stderr, "idem-supervisor: --seed needs a value\n");
				goto done;
			}
			if (v == NULL)
				v = argv[rest[++i]];
			if (config_set(&sup->cfg, "FAULT_SEED", v, err, sizeof(err)) != 0) {
				fprintf(stderr, "idem-supervisor: %s\n", err);
				goto done;
			}
			continue;
		}
		/* --notify-fd N: s6's readiness pipe (notify.h). */
		if (strcmp(a, "--notify-fd") == 0 || strncmp(a, "--notify-fd=", 12) == 0) {
			const char *v = a[11] == '=' ? a + 12 : NULL;

			if (v == NULL && (i + 1 >= nrest || rest[i + 1] != rest[i] + 1)) {
				fprintf(stderr, "idem-supervisor: --notify-fd needs a value (an fd "
				                "number, 3..1023)\n");
				goto done;
			}
			if (v == NULL)
				v = argv[rest[++i]];
			if (notify_fd_set(v, err, sizeof(err)) != 0) {
				fprintf(stderr, "idem-supervisor: %s\n", err);
				goto done;
			}
			continue;
		}
		fprintf(stderr, "idem-supervisor: unknown argument \"%s\" (see --help)\n", a);
		goto done;
	}
	rc = 0;
done:
	free(rest);
	return rc;
}

/* The loop's event base. With epoll's change list, the epoll_ctl calls of
 * one turn go out once, merged, when the loop next waits: a bufferevent
 * that enables writing and disables it again in the same turn costs
 * nothing. libevent warns about descriptors cloned with dup(): the
 * supervisor puts none in its loop. */
static struct event_base *new_base(void)
{
	struct event_config *cfg = event_config_new();
	struct event_base *base;

	event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

int main(int argc, char **argv)
{
	struct run r = {.lock_fd = -1};
	struct sup *sup = &r.sup;
	struct event *sigs[4];
	char err[1024] = "", state_db[CONFIG_PATH_MAX], app_db[CONFIG_PATH_MAX];
	char status[CONFIG_PATH_MAX + 32];
	int rc;

	idem_version_exit(argc, argv, "idem-supervisor");
	/* Every file and directory this run makes (and its workers, helper
	 * and checker) is its user's alone: the databases hold every
	 * workflow's input and result. The control socket is opened to its
	 * group by api.c (SOCKET_GROUP). */
	umask(077);
	/* Before anything allocates: out of memory aborts (xalloc.h). */
	xalloc_install_json();
	event_set_mem_functions(xmalloc, xrealloc, free);
	r.argc = argc;
	r.argv = argv;
	rc = parse_args(&r, argc, argv);
	if (rc != 0)
		return rc > 0 ? IDEM_EXIT_OK : IDEM_EXIT_USAGE;
	log_init("supervisor", sup->cfg.log_level);
	log_set_format(sup->cfg.log_format);
	notify_init(); /* before any child: none may inherit NOTIFY_SOCKET */
	signal(SIGPIPE, SIG_IGN);
	sup->started_mono = clock_mono_ms();
	retry_from_config(sup);
	if (find_bindir(sup->bindir, sizeof(sup->bindir), err, sizeof(err)) != 0) {
		log_error("cannot start", "error=\"%s\"", err);
		return IDEM_EXIT_FAIL;
	}
	sup->base = new_base();
	if (sup->base == NULL) {
		log_error("cannot start", "error=\"cannot create the event loop\"");
		return IDEM_EXIT_FAIL;
	}
	sup->faultctl = faultctl_new(sup);
	r.flagless = load_flagless(&r);
	sigs[0] = evsignal_new(sup->base, SIGTERM, stop_cb, &r);
	sigs[1] = evsignal_new(sup->base, SIGINT, stop_cb, &r);
	sigs[2] = evsignal_new(sup->base, SIGCHLD, chld_cb, &r);
	sigs[3] = evsignal_new(sup->base, SIGHUP, reload_cb, &r);
	for (int i = 0; i < 4; i++)
		evsignal_add(sigs[i], NULL);
	rc = setup(&r, err, sizeof(err));
	if (rc != IDEM_EXIT_OK) {
		log_error("cannot start", "error=\"%s\"", err);
		goto out;
	}
	pgconn_redact(sup->cfg.state_database, state_db, sizeof(state_db));
	pgconn_redact(sup->cfg.database, app_db, sizeof(app_db));
	log_info("idem-supervisor started",
	         "workers=%d socket=%s state_db=%s app_db=%s mode=%s seed=%llu faults=%s",
	         sup->cfg.workers, sup->cfg.socket, state_db, app_db,
	         sup->cfg.naive ? "naive" : "guarded", (unsigned long long)sup->faults.seed,
	         fault_enabled(&sup->faults) ? "on" : "off");
	/* The control API listens (a connection waits in its backlog for the
	 * loop): the service manager may start what depends on idem. */
	snprintf(status, sizeof(status), "ready; control API on %s", sup->cfg.socket);
	notify_ready(status);
	if (fault_enabled(&sup->faults))
		log_info("fault injection on; replay this fault plan with --seed",
		         "seed=%llu kill=%.3f async_kill=%.3f error=%.3f delay=%.3f peer=%.3f",
		         (unsigned long long)sup->faults.seed, sup->cfg.fault_kill_rate,
		         sup->cfg.fault_async_kill_rate, sup->cfg.fault_error_rate,
		         sup->cfg.fault_delay_rate, sup->cfg.fault_peer_rate);
	while (!r.done) {
		event_base_loop(sup->base, EVLOOP_ONCE);
		if (engine_turn_end(sup->engine, err, sizeof(err)) != 0) {
			log_error("state DB failed; stopping (a restart resumes from the last "
			          "commit)",
			          "error=\"%s\"", err);
			rc = IDEM_EXIT_FAIL;
			break;
		}
		if (sup->stopping)
			shutdown_progress(&r);
	}
	if (rc == IDEM_EXIT_OK && engine_flush(sup->engine, err, sizeof(err)) != 0) {
		log_error("state DB failed; stopping (a restart resumes from the last commit)",
		          "error=\"%s\"", err);
		rc = IDEM_EXIT_FAIL;
	}
	if (rc == IDEM_EXIT_OK)
		log_info("idem-supervisor stopped cleanly", "");
out:
	if (rc != IDEM_EXIT_OK && sup->pool != NULL && !r.pool_stopped)
		pool_stop(sup->pool, 0);
	teardown(&r);
	if (r.storage_faults)
		log_info("storage faults injected (FAULT_VFS)", "role=state injected=%ld calls=%ld",
		         faultvfs_injected(), faultvfs_calls());
	for (int i = 0; i < 4; i++)
		event_free(sigs[i]);
	event_base_free(sup->base);
	free(r.flagless);
	return rc;
}
