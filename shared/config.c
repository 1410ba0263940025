/* config.c — the key table, one validating setter per kind of value, and
 * the loaders (.env file, environment, flags) that feed config_set.
 * Nothing here logs or exits: every error is written to the caller's err. */
#include "config.h"
#include "faultvfs.h"
#include "ids.h"
#include "xalloc.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <sys/un.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SUN_PATH_LIMIT (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)
#define MS_SECOND INT64_C(1000)
#define MS_HOUR INT64_C(3600000)
#define MS_DAY (24 * MS_HOUR)
#define MSG_MAX 1024
#define VALUE_SHOWN 160 /* bytes of a bad value an error message repeats */

enum kind {
	K_PATH,
	K_SOCKET,
	K_NAME,
	K_OPTNAME,
	K_LISTEN,
	K_INT,
	K_I64,
	K_BYTES,
	K_APPTEXT,
	K_LEVEL,
	K_DURATION,
	K_DOUBLE,
	K_LIST,
	K_MODE,
	K_U64,
	K_RATE,
	K_POINTS,
	K_VFS,
	K_SYNC,
	K_FORMAT,
	K_RETENTIONS,
	K_GROUP,
};

/* How to check and store one key: its kind, its field, and its limits. */
struct key_spec {
	enum kind kind;
	size_t off;
	size_t size;
	int64_t lo, hi;
	int app; /* an app's key: its index in app_defs + 1; 0: idem's own */
};

#define FIELD(f) offsetof(struct idem_config, f), sizeof(((struct idem_config *)0)->f)

/* Every key of idem's own: its name, default, what is allowed and what it
 * does (for help texts, .env-dist and errors), then how to check and
 * store it: its kind, its field and its limits. The order of this table
 * is the order of .env-dist and of help texts. */
static const struct key_def {
	struct config_key key;
	struct key_spec spec;
} own_keys[] = {
    {{"APP", "inventory",
      "the name of an app built into idem (inventory, transfer), or the directory of an app "
      "defined by its idem.json (a path with a '/': ./myapp)",
      "the app whose workflows the supervisor runs and whose activities the workers run"},
     {K_PATH, FIELD(app), 0, 0, 0}},
    {{"SOCKET", "run/idem.sock", "a Unix socket path of at most 107 bytes",
      "the supervisor's control API socket (HTTP+JSON)"},
     {K_SOCKET, FIELD(socket), 0, 0, 0}},
    {{"SOCKET_GROUP", "", "\"\" (none: the socket is 0600) or a group of this machine",
      "a group that may use the control socket besides the supervisor's user (the socket is "
      "then 0660); the databases and the run directory are the user's alone"},
     {K_GROUP, FIELD(socket_group), 0, 0, 0}},
    {{"HTTP_LISTEN", "", "\"\" (off), 127.0.0.1:PORT, localhost:PORT or [::1]:PORT",
      "also serve the control API on this TCP loopback address"},
     {K_LISTEN, FIELD(http_listen), 0, 0, 0}},
    {{"API_TOKEN_FILE", "run/api-token", "a file path, or none",
      "the bearer token HTTP_LISTEN requires (Authorization: Bearer TOKEN; the dashboard "
      "asks for it once): read from this file, which the supervisor makes (0600, random) "
      "when it is missing; none: no token, any local user may use the TCP listener"},
     {K_PATH, FIELD(api_token_file), 0, 0, 0}},
    {{"NAMESPACE", "default", "1..127 characters of A-Z a-z 0-9 _ . -",
      "the namespace workflows are started in"},
     {K_NAME, FIELD(namespace_), 0, 0, 0}},
    {{"TASKQUEUE", "inventory-task-queue", "1..127 characters of A-Z a-z 0-9 _ . -",
      "the task queue this supervisor's workers serve; a start naming another is refused"},
     {K_NAME, FIELD(taskqueue), 0, 0, 0}},
    {{"DATABASE", "run/inventory.db", "a file path",
      "the app database: the tables the app's activities change"},
     {K_PATH, FIELD(database), 0, 0, 0}},
    {{"STATE_DATABASE", "run/state.db", "a file path, or a postgresql:// URL",
      "the state database: workflows, steps, events; a postgresql:// URL (libpq's, with "
      "the PG* environment for what it leaves out) puts them on PostgreSQL"},
     {K_PATH, FIELD(state_database), 0, 0, 0}},
    {{"SUPERVISOR_NAME", "", "\"\" (HOST:DIR/SOCKET) or 1..127 characters of A-Z a-z 0-9 _ . -",
      "on a PostgreSQL STATE_DATABASE, this supervisor among those sharing it: one runs per "
      "name, and a restart takes back its own running workflows at once"},
     {K_OPTNAME, FIELD(supervisor_name), 0, 0, 0}},
    {{"LEASE", "10s", "1s..1h",
      "on a PostgreSQL STATE_DATABASE, how long a supervisor owns its running workflows "
      "without renewing (every loop turn that writes, and every LEASE/3); once it lapses, "
      "the other supervisors adopt them and its writes are refused"},
     {K_DURATION, FIELD(lease_ms), 1000, MS_HOUR, 0}},
    {{"SYNC", "full", "full|normal",
      "durability of the state and app DBs: full survives power loss, normal a process crash"},
     {K_SYNC, FIELD(sync), 0, 0, 0}},
    {{"WORKERS", "2", "1..256",
      "the number of worker processes; more than the cores pays, for a worker mostly waits "
      "between tasks (scripts/bench runs 16 on 2 cores)"},
     {K_INT, FIELD(workers), 1, 256, 0}},
    {{"SPARE_WORKER", "1", "0|1",
      "1: keep one more worker started and ready, to take the place of one that dies"},
     {K_INT, FIELD(spare_worker), 0, 1, 0}},
    {{"WORKER_READY_TIMEOUT", "30s", "100ms..1h",
      "how long a new worker may take to say it is ready (and the fork server to answer a "
      "fork); then it is killed and another started"},
     {K_DURATION, FIELD(worker_ready_timeout_ms), 100, MS_HOUR, 0}},
    {{"LOG_LEVEL", "info", "debug|info|warn|error", "the lowest level that is logged"},
     {K_LEVEL, FIELD(log_level), 0, 0, 0}},
    {{"MAX_FRAME", "1048576", "64..64MiB",
      "the largest worker-channel frame, in bytes (suffixes KiB, MiB)"},
     {K_BYTES, FIELD(max_frame), 64, 64 << 20, 0}},
    {{"MAX_BODY", "1048576", "1KiB..64MiB",
      "the largest HTTP request body, in bytes (suffixes KiB, MiB)"},
     {K_BYTES, FIELD(max_body), 1024, 64 << 20, 0}},
    {{"API_REQUEST_TIMEOUT", "30s", "1s..1h",
      "the longest a client may take to send one control-API request, headers and body, "
      "from its first byte; then it gets a 408 and its connection is closed"},
     {K_DURATION, FIELD(api_request_timeout_ms), MS_SECOND, MS_HOUR, 0}},
    {{"SHUTDOWN_GRACE", "5s", "0..1h",
      "how long busy workers get to finish on shutdown before SIGKILL"},
     {K_DURATION, FIELD(shutdown_grace_ms), 0, MS_HOUR, 0}},
    {{"RETRY_INITIAL_INTERVAL", "1s", "1ms..1h", "the delay before the first retry"},
     {K_DURATION, FIELD(retry_initial_ms), 1, MS_HOUR, 0}},
    {{"RETRY_BACKOFF_COEFFICIENT", "2.0", "1.0..100", "each retry waits this much longer"},
     {K_DOUBLE, FIELD(retry_backoff), 1, 100, 0}},
    {{"RETRY_MAXIMUM_INTERVAL", "0", "0 (= 100 x RETRY_INITIAL_INTERVAL) or 1ms..24h",
      "the longest delay between retries"},
     {K_DURATION, FIELD(retry_maximum_ms), 0, MS_DAY, 0}},
    {{"RETRY_MAXIMUM_ATTEMPTS", "0", "0..1000000 (0 = unlimited)",
      "attempts per activity before it fails"},
     {K_INT, FIELD(retry_maximum_attempts), 0, 1000000, 0}},
    {{"START_TO_CLOSE_TIMEOUT", "30s", "1ms..24h", "the longest one activity attempt may run"},
     {K_DURATION, FIELD(start_to_close_ms), 1, MS_DAY, 0}},
    {{"SCHEDULE_TO_CLOSE_TIMEOUT", "0", "0 (none) or 1ms..24h",
      "the longest an activity may take over all its attempts; then the workflow fails"},
     {K_DURATION, FIELD(schedule_to_close_ms), 0, MS_DAY, 0}},
    {{"HEARTBEAT_TIMEOUT", "0", "0 (none) or 1ms..24h",
      "an attempt of an activity that heartbeats is killed when silent this long"},
     {K_DURATION, FIELD(heartbeat_timeout_ms), 0, MS_DAY, 0}},
    {{"RETENTION", "0", "0 (keep forever) or 1s..3650d",
      "how long a closed workflow's history is kept in the state DB; then it is pruned, in "
      "small batches beside the loop (the app's own rows stay)"},
     {K_DURATION, FIELD(retention_ms), 0, 3650 * MS_DAY, 0}},
    {{"RETENTION_NAMESPACES", "", "\"\" or a comma list of NAMESPACE=DURATION (0 or 1s..3650d)",
      "the retention of these namespaces, instead of RETENTION: billing=30d,scratch=1h"},
     {K_RETENTIONS, FIELD(retention_namespaces), 0, 0, 0}},
    {{"RETRY_NON_RETRYABLE", "", "comma list of error types, e.g. InjectedError",
      "error types that fail an activity at once, besides those the activity marks"},
     {K_LIST, FIELD(retry_non_retryable), 0, 0, 0}},
    {{"ACTIVITY_MODE", "guarded", "guarded|naive",
      "naive runs the activities without their idempotency guards: the control experiment"},
     {K_MODE, FIELD(naive), 0, 0, 0}},
    {{"FAULT_SEED", "", "\"\" (random, printed at start) or 0..18446744073709551615",
      "the seed of every fault decision; the same seed replays the same fault plan"},
     {K_U64, FIELD(fault_seed), 0, 0, 0}},
    {{"FAULT_KILL_RATE", "0", "0..1",
      "share of attempts whose worker SIGKILLs itself at a crash point"},
     {K_DOUBLE, FIELD(fault_kill_rate), 0, 1, 0}},
    {{"FAULT_KILL_POINTS", "before_effect,after_effect,after_commit,mid_reply",
      "comma list of before_effect, after_effect, after_commit, mid_reply",
      "the crash points FAULT_KILL_RATE is spread over"},
     {K_POINTS, FIELD(fault_kill_points), 0, 0, 0}},
    {{"FAULT_KILL_RATE_BEFORE_EFFECT", "", "\"\" (a share of FAULT_KILL_RATE) or 0..1",
      "the kill rate at before_effect alone"},
     {K_RATE, FIELD(fault_kill_point_rate[0]), 0, 1, 0}},
    {{"FAULT_KILL_RATE_AFTER_EFFECT", "", "\"\" (a share of FAULT_KILL_RATE) or 0..1",
      "the kill rate at after_effect (inside the transaction, before commit) alone"},
     {K_RATE, FIELD(fault_kill_point_rate[1]), 0, 1, 0}},
    {{"FAULT_KILL_RATE_AFTER_COMMIT", "", "\"\" (a share of FAULT_KILL_RATE) or 0..1",
      "the kill rate at after_commit (committed, reply not sent) alone"},
     {K_RATE, FIELD(fault_kill_point_rate[2]), 0, 1, 0}},
    {{"FAULT_KILL_RATE_MID_REPLY", "", "\"\" (a share of FAULT_KILL_RATE) or 0..1",
      "the kill rate at mid_reply (half a reply frame written) alone"},
     {K_RATE, FIELD(fault_kill_point_rate[3]), 0, 1, 0}},
    {{"FAULT_ASYNC_KILL_RATE", "0", "0..1",
      "share of attempts whose worker the supervisor SIGKILLs after a random delay"},
     {K_DOUBLE, FIELD(fault_async_kill_rate), 0, 1, 0}},
    {{"FAULT_ASYNC_KILL_MAX_DELAY", "50ms", "0..1h", "the longest delay before an async kill"},
     {K_DURATION, FIELD(fault_async_kill_max_ms), 0, MS_HOUR, 0}},
    {{"FAULT_ERROR_RATE", "0", "0..1 (the seed demo fails about 0.33)",
      "share of attempts that return a retryable error, before or after the effect"},
     {K_DOUBLE, FIELD(fault_error_rate), 0, 1, 0}},
    {{"FAULT_DELAY_RATE", "0", "0..1",
      "share of attempts that sleep past START_TO_CLOSE_TIMEOUT and are killed"},
     {K_DOUBLE, FIELD(fault_delay_rate), 0, 1, 0}},
    {{"FAULT_PEER_RATE", "0", "0..1",
      "share of the attempts that call the app's outside service (its peer) whose peer answers "
      "503, or records and dies"},
     {K_DOUBLE, FIELD(fault_peer_rate), 0, 1, 0}},
    {{"FAULT_ACTIVITIES", "", "\"\" (all) or a comma list of activity names",
      "the activities faults may hit"},
     {K_LIST, FIELD(fault_activities), 0, 0, 0}},
    {{"FAULT_MAX_ATTEMPT", "0", "0 (any) or 1..1000000",
      "faults hit only attempts up to this number"},
     {K_INT, FIELD(fault_max_attempt), 0, 1000000, 0}},
    {{"FAULT_VFS", "",
      "\"\" (off) or target=state|app,op=write|sync|truncate|read|any[+op...],nth=N|rate=R"
      "[,mode=transient|persistent][,error=ioerr|full][,seed=S]",
      "storage faults: SQLite calls on the state or app database that fail with an I/O "
      "error or a full disk"},
     {K_VFS, FIELD(fault_vfs), 0, 0, 0}},
    {{"LOG_FORMAT", "logfmt", "logfmt|json",
      "the log line format: logfmt (key=value) or one JSON object per line"},
     {K_FORMAT, FIELD(log_format), 0, 0, 0}},
};

/* idem's keys, then the apps' (config_add_keys): the table every lookup
 * reads, made on first use. */
#define NBUILTIN ARRAY_LEN(own_keys)
static struct config_key all_keys[ARRAY_LEN(own_keys) + CONFIG_APP_KEYS_MAX];
static struct key_spec all_specs[ARRAY_LEN(own_keys) + CONFIG_APP_KEYS_MAX];
static const struct config_app_key *app_defs[CONFIG_APP_KEYS_MAX];
static size_t nall;

static void table_init(void)
{
	if (nall > 0)
		return;
	for (size_t i = 0; i < NBUILTIN; i++) {
		all_keys[i] = own_keys[i].key;
		all_specs[i] = own_keys[i].spec;
	}
	nall = NBUILTIN;
}

static const char *const level_names[] = {"debug", "info", "warn", "error"};
static const char *const format_names[] = {"logfmt", "json"};

/* One config_set call: what every setter needs to check a value and to
 * report it. */
struct setting {
	const struct config_key *key;
	const struct key_spec *spec;
	const char *value;
	char *err;
	size_t errlen;
};

const struct config_key *config_keys(size_t *n)
{
	table_init();
	*n = nall;
	return all_keys;
}

const char *config_log_level_name(enum log_level l)
{
	if ((unsigned)l >= ARRAY_LEN(level_names))
		return "?";
	return level_names[l];
}

const char *config_log_format_name(enum log_format f)
{
	if ((unsigned)f >= ARRAY_LEN(format_names))
		return "?";
	return format_names[f];
}

/* ---- messages ---- */

static int needs_quotes(const char *v)
{
	if (*v == '\0')
		return 1;
	for (; *v; v++)
		if (!isgraph((unsigned char)*v) || *v == '"' || *v == '\'' || *v == '#')
			return 1;
	return 0;
}

/* Writes "config: KEY=VALUE <what>" to s->err; returns -1. A long value
 * is cut short so that <what> still fits. */
__attribute__((format(printf, 2, 3))) static int fail(const struct setting *s, const char *fmt, ...)
{
	int quote = (s->spec->app && app_defs[s->spec->app - 1]->quote) || needs_quotes(s->value);
	int shown = strlen(s->value) > VALUE_SHOWN ? VALUE_SHOWN : (int)strlen(s->value);
	const char *more = s->value[shown] ? "..." : "";
	va_list ap;
	int n;

	n = snprintf(s->err, s->errlen, quote ? "config: %s=\"%.*s%s\" " : "config: %s=%.*s%s ",
	             s->key->name, shown, s->value, more);
	if (n >= 0 && (size_t)n < s->errlen) {
		va_start(ap, fmt);
		vsnprintf(s->err + n, s->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* The message of inner without its "config: " prefix. */
static const char *what(const char *inner)
{
	return strncmp(inner, "config: ", 8) == 0 ? inner + 8 : inner;
}

/* Rewrites inner ("config: what") as "config: where: what" into err. */
static void wrap(char *err, size_t errlen, const char *where, const char *inner)
{
	snprintf(err, errlen, "config: %s: %s", where, what(inner));
}

/* ---- numbers ---- */

/* Strict integer, [-]DIGITS followed by nothing but the allowed suffix.
 * Returns 0, -1 (not a number) or -2 (too large for int64). */
static int parse_int_prefix(const char *t, int64_t *v, char **end)
{
	const char *d = *t == '-' ? t + 1 : t;

	if (!isdigit((unsigned char)*d))
		return -1;
	errno = 0;
	*v = strtoll(t, end, 10);
	return errno == ERANGE ? -2 : 0;
}

static int parse_int(const char *t, int64_t *v)
{
	char *end;
	int rc = parse_int_prefix(t, v, &end);

	if (rc == 0 && *end != '\0')
		rc = -1;
	return rc;
}

/* An integer number of bytes with an optional unit: 4096, 64KiB, 1MiB. */
static int parse_bytes(const char *t, int64_t *v)
{
	static const struct {
		const char *unit;
		int64_t mult;
	} units[] = {{"", 1}, {"B", 1}, {"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}};
	char *end;
	int rc = parse_int_prefix(t, v, &end);

	for (size_t i = 0; rc == 0 && i < ARRAY_LEN(units); i++) {
		if (strcasecmp(end, units[i].unit) != 0)
			continue;
		if (*v > INT64_MAX / units[i].mult || *v < -(INT64_MAX / units[i].mult))
			return -2;
		*v *= units[i].mult;
		return 0;
	}
	return rc < 0 ? rc : -1;
}

static const char *skip_digits(const char *p)
{
	while (isdigit((unsigned char)*p))
		p++;
	return p;
}

/* Scans DIGITS[.DIGITS] at t and parses it with strtod. Returns the end of
 * the number, or NULL when t does not start with one. */
static const char *parse_decimal(const char *t, double *v)
{
	const char *p = skip_digits(t);
	char *end;

	if (p == t)
		return NULL;
	if (*p == '.') {
		if (!isdigit((unsigned char)p[1]))
			return NULL;
		p = skip_digits(p + 1);
	}
	*v = strtod(t, &end);
	return end == p ? p : NULL;
}

int config_parse_duration(const char *text, int64_t *ms)
{
	static const struct {
		const char *unit;
		double mult;
	} units[] = {{"ms", 1}, {"s", 1e3}, {"m", 6e4}, {"h", 3.6e6}, {"d", 8.64e7}, {"", 1e3}};
	double v;
	const char *unit = text ? parse_decimal(text, &v) : NULL;

	if (unit == NULL)
		return -1;
	for (size_t i = 0; i < ARRAY_LEN(units); i++) {
		if (strcmp(unit, units[i].unit) != 0)
			continue;
		if (v * units[i].mult > 9e18)
			return -1;
		*ms = llround(v * units[i].mult);
		return 0;
	}
	return -1;
}

/* ---- setters ---- */

static void *field(struct idem_config *c, const struct key_spec *spec)
{
	return (char *)c + spec->off;
}

static int store_text(struct idem_config *c, const struct setting *s)
{
	size_t len = strlen(s->value);

	if (len >= s->spec->size)
		return fail(s, "is too long (%zu bytes, limit %zu)", len, s->spec->size - 1);
	memcpy(field(c, s->spec), s->value, len + 1);
	return 0;
}

static int set_optname(struct idem_config *c, const struct setting *s)
{
	if (*s->value != '\0' && !ids_name_ok(s->value, s->spec->size - 1))
		return fail(s, "is not a valid name (allowed: %s)", s->key->allowed);
	return store_text(c, s);
}

static int set_group(struct idem_config *c, const struct setting *s)
{
	if (*s->value != '\0' && getgrnam(s->value) == NULL)
		return fail(s, "is not a group of this machine (see /etc/group; allowed: %s)",
		            s->key->allowed);
	return store_text(c, s);
}

static int set_path(struct idem_config *c, const struct setting *s)
{
	if (*s->value == '\0')
		return fail(s, "is empty (allowed: %s)", s->key->allowed);
	return store_text(c, s);
}

static int set_socket(struct idem_config *c, const struct setting *s)
{
	size_t len = strlen(s->value);

	if (len > SUN_PATH_LIMIT)
		return fail(s,
		            "is %zu bytes long, over the Unix socket path limit of %zu bytes; "
		            "choose a shorter path (a relative one, or one under /tmp)",
		            len, SUN_PATH_LIMIT);
	return set_path(c, s);
}

static int is_name_char(int ch)
{
	return isalnum(ch) || ch == '_' || ch == '.' || ch == '-';
}

static int set_name(struct idem_config *c, const struct setting *s)
{
	if (!ids_name_ok(s->value, s->spec->size - 1))
		return fail(s, "is not a valid name (allowed: %s)", s->key->allowed);
	return store_text(c, s);
}

static int is_loopback(const char *host, size_t len)
{
	static const char *const hosts[] = {"127.0.0.1", "localhost", "[::1]", "::1"};

	for (size_t i = 0; i < ARRAY_LEN(hosts); i++)
		if (strlen(hosts[i]) == len && strncmp(hosts[i], host, len) == 0)
			return 1;
	return 0;
}

/* "" (off) or HOST:PORT on loopback: the control API has no authentication. */
static int set_listen(struct idem_config *c, const struct setting *s)
{
	const char *colon = strrchr(s->value, ':');
	int64_t port;

	if (*s->value == '\0')
		return store_text(c, s);
	if (colon == NULL)
		return fail(s, "is not HOST:PORT (allowed: %s)", s->key->allowed);
	if (!is_loopback(s->value, (size_t)(colon - s->value)))
		return fail(s,
		            "is not a loopback address; the control API has no authentication "
		            "(allowed: %s)",
		            s->key->allowed);
	if (parse_int(colon + 1, &port) != 0 || port < 1 || port > 65535)
		return fail(s, "has a bad port \"%s\" (allowed: 1..65535)", colon + 1);
	return store_text(c, s);
}

static void store_int(struct idem_config *c, const struct key_spec *spec, int64_t v)
{
	if (spec->kind == K_INT)
		*(int *)field(c, spec) = (int)v;
	else if (spec->kind == K_BYTES)
		*(size_t *)field(c, spec) = (size_t)v;
	else
		*(int64_t *)field(c, spec) = v;
}

static int set_int(struct idem_config *c, const struct setting *s)
{
	int64_t v;
	int rc = s->spec->kind == K_BYTES ? parse_bytes(s->value, &v) : parse_int(s->value, &v);

	if (rc == -1)
		return fail(s, "is not a number (allowed: %s)", s->key->allowed);
	if (rc == -2 || v < s->spec->lo || v > s->spec->hi)
		return fail(s, "is out of range (allowed: %s)", s->key->allowed);
	store_int(c, s->spec, v);
	return 0;
}

static int set_duration(struct idem_config *c, const struct setting *s)
{
	int64_t ms;

	if (config_parse_duration(s->value, &ms) != 0)
		return fail(s, "is not a duration (allowed: %s; e.g. 250ms, 1.5s, 2m, 1h)",
		            s->key->allowed);
	if (ms < s->spec->lo || ms > s->spec->hi)
		return fail(s, "is out of range (allowed: %s)", s->key->allowed);
	store_int(c, s->spec, ms);
	return 0;
}

static int set_double(struct idem_config *c, const struct setting *s)
{
	const char *t = *s->value == '-' ? s->value + 1 : s->value;
	const char *end;
	double v;

	end = parse_decimal(t, &v);
	if (end == NULL || *end != '\0')
		return fail(s, "is not a number (allowed: %s)", s->key->allowed);
	if (t != s->value || v < (double)s->spec->lo || v > (double)s->spec->hi)
		return fail(s, "is out of range (allowed: %s)", s->key->allowed);
	*(double *)field(c, s->spec) = v;
	return 0;
}

static int set_level(struct idem_config *c, const struct setting *s)
{
	for (size_t i = 0; i < ARRAY_LEN(level_names); i++) {
		if (strcasecmp(s->value, level_names[i]) == 0) {
			*(enum log_level *)field(c, s->spec) = (enum log_level)i;
			return 0;
		}
	}
	return fail(s, "is not one of %s", s->key->allowed);
}

static int set_format(struct idem_config *c, const struct setting *s)
{
	for (size_t i = 0; i < ARRAY_LEN(format_names); i++) {
		if (strcasecmp(s->value, format_names[i]) == 0) {
			*(enum log_format *)field(c, s->spec) = (enum log_format)i;
			return 0;
		}
	}
	return fail(s, "is not one of %s", s->key->allowed);
}

/* ---- lists, modes, seeds, crash points ---- */

const char *const config_fault_points[CONFIG_FAULT_POINTS] = {"before_effect", "after_effect",
                                                              "after_commit", "mid_reply"};

/* A comma list of names ("" allowed), stored without spaces. */
static int set_list(struct idem_config *c, const struct setting *s)
{
	char buf[512];
	size_t n = 0;

	for (const char *p = s->value; *p; p++) {
		if (isspace((unsigned char)*p))
			continue;
		if (*p != ',' && !is_name_char((unsigned char)*p))
			return fail(s, "has '%c', which is not allowed (allowed: %s)", *p,
			            s->key->allowed);
		if (n + 1 >= sizeof(buf) || n + 1 >= s->spec->size)
			return fail(s, "is too long (allowed: %s)", s->key->allowed);
		buf[n++] = *p;
	}
	buf[n] = '\0';
	memcpy(field(c, s->spec), buf, n + 1);
	return 0;
}

/* One RETENTION_NAMESPACES entry "NS=DURATION" of len bytes at text:
 * 0 with its namespace (in ns) and retention, or -1 with why in why. */
static int retention_entry(const char *text, size_t len, char *ns, size_t nslen, int64_t *ms,
                           char *why, size_t whylen)
{
	const char *eq = memchr(text, '=', len);
	char dur[64];
	size_t n = eq != NULL ? (size_t)(eq - text) : 0;

	if (eq == NULL || n == 0 || n >= nslen || n >= CONFIG_NAME_MAX) {
		snprintf(why, whylen, "has \"%.*s\", which is not NAMESPACE=DURATION", (int)len,
		         text);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if (!is_name_char((unsigned char)text[i])) {
			snprintf(why, whylen,
			         "has namespace \"%.*s\" with '%c', which is not allowed", (int)n,
			         text, text[i]);
			return -1;
		}
	snprintf(ns, nslen, "%.*s", (int)n, text);
	snprintf(dur, sizeof(dur), "%.*s", (int)(len - n - 1), eq + 1);
	if (config_parse_duration(dur, ms) != 0 || (*ms != 0 && *ms < MS_SECOND) ||
	    *ms > 3650 * MS_DAY) {
		snprintf(why, whylen,
		         "gives namespace %s the retention \"%s\" (allowed: 0 or 1s..3650d)", ns,
		         dur);
		return -1;
	}
	return 0;
}

/* Calls fn for each RETENTION_NAMESPACES entry of list until it returns
 * non-zero; -1 with why on a bad entry. */
static int retention_each(const char *list, int (*fn)(const char *ns, int64_t ms, void *arg),
                          void *arg, char *why, size_t whylen)
{
	for (const char *p = list; *p != '\0';) {
		size_t len = strcspn(p, ",");
		char ns[CONFIG_NAME_MAX];
		int64_t ms;

		if (len > 0) {
			if (retention_entry(p, len, ns, sizeof(ns), &ms, why, whylen) != 0)
				return -1;
			if (fn(ns, ms, arg) != 0)
				return 1;
		}
		p += len + (p[len] == ',');
	}
	return 0;
}

/* Sees each namespace once: arg is the list itself, and an entry whose
 * namespace comes earlier in it is a duplicate (returns 1). */
struct retention_seen {
	const char *list;
	char dup[CONFIG_NAME_MAX];
	int n;
};

static int retention_once(const char *ns, int64_t ms, void *arg)
{
	struct retention_seen *seen = arg;
	size_t len = strlen(ns);
	int i = 0;

	(void)ms;
	for (const char *p = seen->list; *p != '\0' && i < seen->n; i++) {
		size_t n = strcspn(p, "=");

		if (n == len && strncmp(p, ns, len) == 0) {
			snprintf(seen->dup, sizeof(seen->dup), "%s", ns);
			return 1;
		}
		p += strcspn(p, ",");
		p += *p == ',';
	}
	seen->n++;
	return 0;
}

/* RETENTION_NAMESPACES: NS=DURATION entries, stored without spaces. */
static int set_retentions(struct idem_config *c, const struct setting *s)
{
	char buf[sizeof(c->retention_namespaces)], why[MSG_MAX];
	struct retention_seen seen = {0};
	size_t n = 0;
	int rc;

	for (const char *p = s->value; *p; p++) {
		if (isspace((unsigned char)*p))
			continue;
		if (n + 1 >= sizeof(buf))
			return fail(s, "is too long (limit %zu bytes)", sizeof(buf) - 1);
		buf[n++] = *p;
	}
	buf[n] = '\0';
	seen.list = buf;
	rc = retention_each(buf, retention_once, &seen, why, sizeof(why));
	if (rc < 0)
		return fail(s, "%s; write NAMESPACE=DURATION entries, e.g. billing=30d,scratch=1h",
		            why);
	if (rc > 0)
		return fail(s, "names namespace %s twice; give each namespace one retention",
		            seen.dup);
	memcpy(field(c, s->spec), buf, n + 1);
	return 0;
}

struct retention_find {
	const char *ns;
	int64_t ms;
	int found;
};

static int retention_match(const char *ns, int64_t ms, void *arg)
{
	struct retention_find *f = arg;

	if (strcmp(ns, f->ns) != 0)
		return 0;
	f->ms = ms;
	f->found = 1;
	return 1;
}

int64_t config_retention(const struct idem_config *c, const char *ns)
{
	struct retention_find f = {.ns = ns};
	char why[MSG_MAX];

	(void)retention_each(c->retention_namespaces, retention_match, &f, why, sizeof(why));
	return f.found ? f.ms : c->retention_ms;
}

static int retention_least(const char *ns, int64_t ms, void *arg)
{
	int64_t *least = arg;

	(void)ns;
	if (ms > 0 && (*least == 0 || ms < *least))
		*least = ms;
	return 0;
}

int64_t config_retention_min(const struct idem_config *c)
{
	int64_t least = c->retention_ms;
	char why[MSG_MAX];

	(void)retention_each(c->retention_namespaces, retention_least, &least, why, sizeof(why));
	return least;
}

/* SYNC: full (0) or normal (1), the values of enum db_sync. */
static int set_sync(struct idem_config *c, const struct setting *s)
{
	if (strcmp(s->value, "full") != 0 && strcmp(s->value, "normal") != 0)
		return fail(s, "is not one of %s", s->key->allowed);
	*(int *)field(c, s->spec) = strcmp(s->value, "normal") == 0;
	return 0;
}

static int set_mode(struct idem_config *c, const struct setting *s)
{
	if (strcmp(s->value, "guarded") != 0 && strcmp(s->value, "naive") != 0)
		return fail(s, "is not one of %s", s->key->allowed);
	*(int *)field(c, s->spec) = strcmp(s->value, "naive") == 0;
	return 0;
}

/* FAULT_SEED: "" leaves the seed to be drawn at start. */
static int set_u64(struct idem_config *c, const struct setting *s)
{
	unsigned long long v;
	char *end;

	if (*s->value == '\0') {
		c->fault_seed_set = 0;
		return 0;
	}
	errno = 0;
	v = strtoull(s->value, &end, 10);
	if (!isdigit((unsigned char)*s->value) || *end != '\0')
		return fail(s, "is not a number (allowed: %s)", s->key->allowed);
	if (errno == ERANGE)
		return fail(s, "is out of range (allowed: %s)", s->key->allowed);
	*(uint64_t *)field(c, s->spec) = v;
	c->fault_seed_set = 1;
	return 0;
}

/* A rate, or "" for "a share of FAULT_KILL_RATE" (stored as -1). */
static int set_rate(struct idem_config *c, const struct setting *s)
{
	if (*s->value == '\0') {
		*(double *)field(c, s->spec) = -1;
		return 0;
	}
	return set_double(c, s);
}

static int point_index(const char *p, size_t len)
{
	for (int i = 0; i < CONFIG_FAULT_POINTS; i++)
		if (strlen(config_fault_points[i]) == len &&
		    strncmp(p, config_fault_points[i], len) == 0)
			return i;
	return -1;
}

static int set_points(struct idem_config *c, const struct setting *s)
{
	unsigned mask = 0;

	for (const char *p = s->value; *p;) {
		size_t len = strcspn(p, ",");
		int i = point_index(p, len);

		if (i < 0)
			return fail(s, "names an unknown crash point \"%.*s\" (allowed: %s)",
			            (int)len, p, s->key->allowed);
		mask |= 1u << i;
		p += len + (p[len] == ',');
	}
	*(unsigned *)field(c, s->spec) = mask;
	return 0;
}

/* FAULT_VFS: checked by the shim's own parser, kept as text (each
 * process parses it again to install the shim). */
static int set_vfs(struct idem_config *c, const struct setting *s)
{
	struct faultvfs_spec spec;
	char why[512];
	const char *prefix = "FAULT_VFS: ";

	if (faultvfs_parse(s->value, &spec, why, sizeof(why)) != 0)
		return fail(s, "is not a storage fault spec: %s (allowed: %s)",
		            strncmp(why, prefix, strlen(prefix)) == 0 ? why + strlen(prefix) : why,
		            s->key->allowed);
	return store_text(c, s);
}

double config_kill_rate(const struct idem_config *c, int point)
{
	int shared = 0;

	if (c->fault_kill_point_rate[point] >= 0)
		return c->fault_kill_point_rate[point];
	if (!(c->fault_kill_points & (1u << point)))
		return 0;
	for (int i = 0; i < CONFIG_FAULT_POINTS; i++)
		shared += (c->fault_kill_points & (1u << i)) && c->fault_kill_point_rate[i] < 0;
	return c->fault_kill_rate / shared;
}

/* ---- an app's text keys ---- */

/* Text values of the apps' keys live as long as the process: a setting
 * points at its own copy, kept here (reachable, never freed). */
static const char *intern(const char *v)
{
	static struct kept {
		struct kept *next;
		char text[];
	} * kept;
	size_t len = strlen(v);
	struct kept *k;

	for (k = kept; k != NULL; k = k->next)
		if (strcmp(k->text, v) == 0)
			return k->text;
	k = xmalloc(sizeof(*k) + len + 1);
	memcpy(k->text, v, len + 1);
	k->next = kept;
	kept = k;
	return k->text;
}

static int set_app_text(struct idem_config *c, const struct setting *s)
{
	const struct config_app_key *d = app_defs[s->spec->app - 1];
	char msg[MSG_MAX] = "";
	size_t len = strlen(s->value);

	if (d->kind == CONFIG_APP_SOCKET && len > SUN_PATH_LIMIT)
		return fail(s,
		            "is %zu bytes long, over the Unix socket path limit of %zu bytes; "
		            "choose a shorter path (a relative one, or one under /tmp)",
		            len, SUN_PATH_LIMIT);
	if (d->kind != CONFIG_APP_TEXT && len == 0)
		return fail(s, "is empty (allowed: %s)", s->key->allowed);
	if (d->kind != CONFIG_APP_TEXT && len >= CONFIG_PATH_MAX)
		return fail(s, "is too long (%zu bytes, limit %d)", len, CONFIG_PATH_MAX - 1);
	if (d->check != NULL && d->check(s->value, msg, sizeof(msg)) != 0)
		return fail(s, "%s", msg);
	*(const char **)field(c, s->spec) = intern(s->value);
	return 0;
}

/* ---- keys ---- */

static int (*const setters[])(struct idem_config *, const struct setting *) = {
    [K_PATH] = set_path,       [K_SOCKET] = set_socket, [K_NAME] = set_name,
    [K_LISTEN] = set_listen,   [K_GROUP] = set_group,   [K_INT] = set_int,
    [K_I64] = set_int,         [K_BYTES] = set_int,     [K_APPTEXT] = set_app_text,
    [K_OPTNAME] = set_optname, [K_LEVEL] = set_level,   [K_DURATION] = set_duration,
    [K_DOUBLE] = set_double,   [K_LIST] = set_list,     [K_RETENTIONS] = set_retentions,
    [K_MODE] = set_mode,       [K_U64] = set_u64,       [K_RATE] = set_rate,
    [K_POINTS] = set_points,   [K_VFS] = set_vfs,       [K_SYNC] = set_sync,
    [K_FORMAT] = set_format,
};

static int key_index(const char *name)
{
	table_init();
	for (size_t i = 0; i < nall; i++)
		if (strcmp(all_keys[i].name, name) == 0)
			return (int)i;
	return -1;
}

static size_t min3(size_t a, size_t b, size_t c)
{
	size_t m = a < b ? a : b;

	return m < c ? m : c;
}

/* Case-insensitive Levenshtein distance from a to the key b. */
static size_t distance(const char *a, const char *b)
{
	size_t lb = strlen(b), row[64];

	assert(lb < ARRAY_LEN(row));
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; a[i - 1]; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t change = toupper((unsigned char)a[i - 1]) != b[j - 1];

			row[j] = min3(up + 1, row[j - 1] + 1, diag + change);
			diag = up;
		}
	}
	return row[lb];
}

/* Writes " (did you mean A or B?)" naming the closest keys, when they are
 * close enough to be a typo; else "". */
static void suggest(const char *name, char *buf, size_t len)
{
	size_t d[ARRAY_LEN(all_keys)], best = SIZE_MAX, used = 0;
	size_t limit = strlen(name) / 3 > 2 ? strlen(name) / 3 : 2;

	buf[0] = '\0';
	if (strlen(name) > 64)
		return;
	for (size_t i = 0; i < nall; i++) {
		d[i] = distance(name, all_keys[i].name);
		best = d[i] < best ? d[i] : best;
	}
	for (size_t i = 0; i < nall && best <= limit && used < len; i++)
		if (d[i] == best)
			used +=
			    (size_t)snprintf(buf + used, len - used, "%s%s",
			                     used ? " or " : " (did you mean ", all_keys[i].name);
	if (used > 0 && used < len)
		snprintf(buf + used, len - used, "?)");
}

/* Keys that had another name: a file written for the old one gets told
 * the new one rather than "unknown key". */
static const char *renamed_to(const char *key)
{
	static const char *const renamed[][2] = {
	    {"FAULT_SUPPLIER_RATE", "FAULT_PEER_RATE"}, /* any app's peer, not one app's */
	};

	for (size_t i = 0; i < ARRAY_LEN(renamed); i++)
		if (strcmp(key, renamed[i][0]) == 0)
			return renamed[i][1];
	return NULL;
}

int config_set(struct idem_config *c, const char *key, const char *value, char *err, size_t errlen)
{
	int i = key_index(key);
	char hint[256];
	struct setting s;

	if (i < 0) {
		const char *now = renamed_to(key);

		if (now != NULL) {
			snprintf(err, errlen,
			         "config: %s was renamed %s; rename it where you set it", key, now);
			return -1;
		}
		suggest(key, hint, sizeof(hint));
		snprintf(err, errlen, "config: unknown key %s%s", key, hint);
		return -1;
	}
	s = (struct setting){&all_keys[i], &all_specs[i], value, err, errlen};
	return setters[all_specs[i].kind](c, &s);
}

void config_defaults(struct idem_config *c)
{
	char err[MSG_MAX];

	memset(c, 0, sizeof(*c));
	table_init();
	for (size_t i = 0; i < nall; i++) {
		int rc = config_set(c, all_keys[i].name, all_keys[i].def, err, sizeof(err));

		assert(rc == 0);
		(void)rc;
	}
}

/* ---- .env files ---- */

static char *skip_space(char *p)
{
	while (isspace((unsigned char)*p))
		p++;
	return p;
}

static void trim_right(char *p)
{
	size_t n = strlen(p);

	while (n > 0 && isspace((unsigned char)p[n - 1]))
		p[--n] = '\0';
}

/* After a closing quote only blanks and a comment may follow. */
static int after_quote(const char *p, const char *key, char *err, size_t errlen)
{
	const char *q = p;

	while (isspace((unsigned char)*q))
		q++;
	if (*q == '\0' || (*q == '#' && q > p))
		return 0;
	snprintf(err, errlen, "config: %s has text after its closing quote: %s", key, p);
	return -1;
}

/* Unquotes v in place: "..." (with \" and \\) or '...'. */
static int unquote(char *v, const char *key, char *err, size_t errlen)
{
	char quote = *v, *r = v + 1, *w = v;

	for (; *r && *r != quote; r++) {
		if (quote == '"' && *r == '\\' && (r[1] == '"' || r[1] == '\\'))
			r++;
		*w++ = *r;
	}
	if (*r != quote) {
		snprintf(err, errlen, "config: %s has an unterminated %c quote", key, quote);
		return -1;
	}
	*w = '\0';
	return after_quote(r + 1, key, err, errlen);
}

/* Cuts an unquoted value at a " #" comment and trims it. */
static void strip_comment(char *v)
{
	for (char *p = v; *p; p++) {
		if (*p == '#' && p > v && isspace((unsigned char)p[-1])) {
			*p = '\0';
			break;
		}
	}
	trim_right(v);
}

static int valid_key(const char *k, size_t len)
{
	if (len == 0 || isdigit((unsigned char)k[0]))
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)k[i]) && k[i] != '_')
			return 0;
	return 1;
}

/* Splits "[export ]KEY=VALUE" in place. */
static int split_line(char *line, char **key, char **value, char *err, size_t errlen)
{
	char *k = line, *eq;
	size_t klen;

	if (strncmp(k, "export", 6) == 0 && (k[6] == ' ' || k[6] == '\t'))
		k = skip_space(k + 6);
	eq = strchr(k, '=');
	klen = eq ? (size_t)(eq - k) : 0;
	while (klen > 0 && isspace((unsigned char)k[klen - 1]))
		klen--;
	if (eq == NULL || !valid_key(k, klen)) {
		snprintf(err, errlen, "config: expected KEY=VALUE, got \"%.60s\"", line);
		return -1;
	}
	k[klen] = '\0';
	*key = k;
	*value = eq + 1;
	if (**value == ' ' || **value == '\t') {
		*value = skip_space(*value);
		if (**value == '#')
			**value = '\0';
	}
	if (**value == '"' || **value == '\'')
		return unquote(*value, k, err, errlen);
	strip_comment(*value);
	return 0;
}

static int load_line(struct idem_config *c, char *line, const char *path, int lineno, char *err,
                     size_t errlen)
{
	char inner[MSG_MAX];
	char *key, *value;
	int rc;

	if (lineno == 1 && strncmp(line, "\xEF\xBB\xBF", 3) == 0)
		line += 3;
	line = skip_space(line);
	trim_right(line);
	if (*line == '\0' || *line == '#')
		return 0;
	rc = split_line(line, &key, &value, inner, sizeof(inner));
	if (rc == 0)
		rc = config_set(c, key, value, inner, sizeof(inner));
	if (rc < 0)
		snprintf(err, errlen, "config: %s:%d: %s", path, lineno, what(inner));
	return rc;
}

int config_load_file(struct idem_config *c, const char *path, int required, char *err,
                     size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	int rc = 0, lineno = 0;

	if (f == NULL) {
		if (errno == ENOENT && !required)
			return 0;
		snprintf(err, errlen, "config: cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	while (rc == 0 && getline(&line, &cap, f) >= 0)
		rc = load_line(c, line, path, ++lineno, err, errlen);
	if (rc == 0 && ferror(f)) {
		snprintf(err, errlen, "config: cannot read %s: %s", path, strerror(errno));
		rc = -1;
	}
	free(line);
	fclose(f);
	return rc;
}

/* ---- environment and flags ---- */

/* An empty environment variable counts as unset (shells and compose files
 * often export KEY= by accident), except for the keys where "" is itself a
 * valid value: HTTP_LISTEN ("" = off) and an app's key that says so
 * (empty_ok). */
static int empty_is_value(const struct key_spec *spec)
{
	return spec->kind == K_LISTEN || (spec->app && app_defs[spec->app - 1]->empty_ok);
}

int config_load_env(struct idem_config *c, char *err, size_t errlen)
{
	char inner[MSG_MAX];

	table_init();
	for (size_t i = 0; i < nall; i++) {
		const char *v = getenv(all_keys[i].name);

		if (v == NULL || (*v == '\0' && !empty_is_value(&all_specs[i])))
			continue;
		if (config_set(c, all_keys[i].name, v, inner, sizeof(inner)) < 0) {
			wrap(err, errlen, "environment", inner);
			return -1;
		}
	}
	return 0;
}

int config_add_keys(const struct config_app_key *defs, char *err, size_t errlen)
{
	table_init();
	for (; defs->name != NULL; defs++) {
		size_t j = nall - NBUILTIN;
		int i = key_index(defs->name);

		if (i >= 0 && all_specs[i].app && app_defs[all_specs[i].app - 1] == defs)
			continue; /* added already */
		if (i >= 0 || j == CONFIG_APP_KEYS_MAX) {
			snprintf(err, errlen, "config: cannot add the app key %s: %s", defs->name,
			         i >= 0 ? "a key of that name exists" : "too many app keys");
			return -1;
		}
		app_defs[j] = defs;
		all_keys[nall] =
		    (struct config_key){defs->name, defs->def, defs->allowed, defs->help};
		all_specs[nall] = (struct key_spec){
		    defs->kind == CONFIG_APP_INT ? K_I64 : K_APPTEXT,
		    offsetof(struct idem_config, app_values) + j * sizeof(struct config_app_value) +
		        (defs->kind == CONFIG_APP_INT ? offsetof(struct config_app_value, i)
		                                      : offsetof(struct config_app_value, text)),
		    defs->kind == CONFIG_APP_INT ? sizeof(int64_t) : sizeof(char *),
		    defs->lo,
		    defs->hi,
		    (int)j + 1};
		nall++;
	}
	return 0;
}

/* The value slot of app key name (NULL when it is not one). */
static const struct config_app_value *app_value(const struct idem_config *c, const char *name)
{
	int i = key_index(name);

	if (i < 0 || !all_specs[i].app)
		return NULL;
	return &c->app_values[all_specs[i].app - 1];
}

/* Whether kind's field is text (a char array), compared up to its NUL. */
static int text_kind(enum kind k)
{
	return k == K_PATH || k == K_SOCKET || k == K_NAME || k == K_OPTNAME || k == K_LISTEN ||
	       k == K_LIST || k == K_VFS || k == K_RETENTIONS || k == K_GROUP;
}

int config_same(const struct idem_config *a, const struct idem_config *b, const char *key)
{
	int i = key_index(key);
	const struct key_spec *k;

	if (i < 0)
		return 1;
	k = &all_specs[i];
	if (k->app) {
		const struct config_app_value *x = &a->app_values[k->app - 1],
		                              *y = &b->app_values[k->app - 1];

		return x->i == y->i && (x->text == y->text || (x->text != NULL && y->text != NULL &&
		                                               !strcmp(x->text, y->text)));
	}
	if (text_kind(k->kind))
		return strncmp((const char *)a + k->off, (const char *)b + k->off, k->size) == 0;
	/* FAULT_SEED's value goes with whether it was set. */
	if (k->kind == K_U64 && a->fault_seed_set != b->fault_seed_set)
		return 0;
	return memcmp((const char *)a + k->off, (const char *)b + k->off, k->size) == 0;
}

void config_copy(struct idem_config *dst, const struct idem_config *src, const char *key)
{
	int i = key_index(key);
	const struct key_spec *k;

	if (i < 0)
		return;
	k = &all_specs[i];
	if (k->app)
		dst->app_values[k->app - 1] = src->app_values[k->app - 1];
	else
		memcpy((char *)dst + k->off, (const char *)src + k->off, k->size);
	if (k->kind == K_U64) /* FAULT_SEED: with whether it was set */
		dst->fault_seed_set = src->fault_seed_set;
}

int64_t config_int(const struct idem_config *c, const char *key)
{
	const struct config_app_value *v = app_value(c, key);

	assert(v != NULL);
	return v != NULL ? v->i : 0;
}

int config_format(const struct idem_config *c, const char *key, char *buf, size_t len)
{
	int i = key_index(key);
	const struct config_app_value *v = app_value(c, key);

	if (v == NULL)
		return -1;
	if (all_specs[i].kind == K_I64)
		snprintf(buf, len, "%lld", (long long)v->i);
	else
		snprintf(buf, len, "%s", v->text != NULL ? v->text : "");
	return 0;
}

char *config_flag_arg(const struct idem_config *c, const char *key)
{
	const struct config_app_value *v = app_value(c, key);
	char flag[CONFIG_NAME_MAX], num[24];
	const char *value;
	char *out;
	size_t n;

	if (v == NULL)
		return NULL;
	if (all_specs[key_index(key)].kind == K_I64) {
		snprintf(num, sizeof(num), "%lld", (long long)v->i);
		value = num;
	} else {
		value = v->text != NULL ? v->text : "";
	}
	config_flag_name(key, flag, sizeof(flag));
	n = strlen(flag) + strlen(value) + 4;
	out = xmalloc(n);
	snprintf(out, n, "--%s=%s", flag, value);
	return out;
}

const char *config_text(const struct idem_config *c, const char *key)
{
	const struct config_app_value *v = app_value(c, key);

	assert(v != NULL);
	return v != NULL && v->text != NULL ? v->text : "";
}

int config_parse_int(const char *text, int64_t *v)
{
	return parse_int(text, v);
}

void config_escape_controls(char *text, size_t len)
{
	char out[MSG_MAX];
	size_t used = 0;

	for (const unsigned char *p = (const unsigned char *)text; *p && used + 5 < sizeof(out);
	     p++) {
		if (*p < 0x20 || *p == 0x7f)
			used += (size_t)snprintf(out + used, sizeof(out) - used, "\\x%02x", *p);
		else
			out[used++] = (char)*p;
	}
	out[used] = '\0';
	snprintf(text, len, "%s", out);
}

void config_flag_name(const char *key, char *out, size_t len)
{
	size_t i = 0;

	for (; key[i] != '\0' && i + 1 < len; i++)
		out[i] = key[i] == '_' ? '-' : (char)tolower((unsigned char)key[i]);
	if (len > 0)
		out[i] = '\0';
}

/* Does "--state-database" (len bytes of name) spell key STATE_DATABASE? */
static int flag_matches(const char *key, const char *name, size_t len)
{
	size_t i = 0;

	for (; i < len && key[i]; i++)
		if (name[i] != (key[i] == '_' ? '-' : tolower((unsigned char)key[i])))
			return 0;
	return i == len && key[i] == '\0';
}

static int flag_index(const char *name, size_t len)
{
	table_init();
	for (size_t i = 0; i < nall; i++)
		if (flag_matches(all_keys[i].name, name, len))
			return (int)i;
	return -1;
}

/* The value of "--name=VALUE" or "--name VALUE"; *used counts the args. */
static const char *flag_value(int argc, char **argv, int i, int *used)
{
	const char *eq = strchr(argv[i], '=');

	*used = 1;
	if (eq != NULL)
		return eq + 1;
	if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0)
		return NULL;
	*used = 2;
	return argv[i + 1];
}

int config_flag(struct idem_config *c, int argc, char **argv, int *i, char *err, size_t errlen)
{
	const char *arg = argv[*i], *name = arg + 2, *value;
	char inner[MSG_MAX], where[CONFIG_NAME_MAX];
	int k, used;

	if (strncmp(arg, "--", 2) != 0)
		return 0;
	k = flag_index(name, strcspn(name, "="));
	if (k < 0)
		return 0;
	snprintf(where, sizeof(where), "flag --%.*s", (int)strcspn(name, "="), name);
	value = flag_value(argc, argv, *i, &used);
	if (value == NULL) {
		snprintf(err, errlen, "config: %s needs a value (allowed: %s)", where,
		         all_keys[k].allowed);
		return -1;
	}
	if (config_set(c, all_keys[k].name, value, inner, sizeof(inner)) < 0) {
		wrap(err, errlen, where, inner);
		return -1;
	}
	*i += used;
	return 1;
}

/* Is argv[i] "--env" or "--env=FILE"? Sets *path (NULL when missing). */
static int env_flag(int argc, char **argv, int i, const char **path, int *used)
{
	if (strncmp(argv[i], "--env", 5) != 0 || (argv[i][5] != '\0' && argv[i][5] != '='))
		return 0;
	*path = flag_value(argc, argv, i, used);
	return 1;
}

/* Finds the last --env FILE in argv. */
static int find_env_path(int argc, char **argv, const char **path, int *explicit_, char *err,
                         size_t errlen)
{
	int used;

	for (int i = 1; i < argc; i++) {
		if (!env_flag(argc, argv, i, path, &used))
			continue;
		if (*path == NULL) {
			snprintf(err, errlen,
			         "config: flag --env needs a value (a .env file path)");
			return -1;
		}
		*explicit_ = 1;
		i += used - 1;
	}
	return 0;
}

static int load_flags(struct idem_config *c, int argc, char **argv, int *rest, int *nrest,
                      char *err, size_t errlen)
{
	const char *path;
	int i = 1, used, rc;

	while (i < argc) {
		if (env_flag(argc, argv, i, &path, &used)) {
			i += used;
			continue;
		}
		rc = config_flag(c, argc, argv, &i, err, errlen);
		if (rc < 0)
			return -1;
		if (rc == 0)
			rest[(*nrest)++] = i++;
	}
	return 0;
}

static void format_duration(int64_t ms, char *buf, size_t len)
{
	if (ms % MS_HOUR == 0)
		snprintf(buf, len, "%" PRId64 "h", ms / MS_HOUR);
	else if (ms % 60000 == 0)
		snprintf(buf, len, "%" PRId64 "m", ms / 60000);
	else if (ms % MS_SECOND == 0)
		snprintf(buf, len, "%" PRId64 "s", ms / MS_SECOND);
	else
		snprintf(buf, len, "%" PRId64 "ms", ms);
}

/* The kill rates at all points together are one probability. */
static int check_kill_rates(const struct idem_config *c, char *err, size_t errlen)
{
	double sum = 0;

	for (int i = 0; i < CONFIG_FAULT_POINTS; i++)
		sum += config_kill_rate(c, i);
	if (sum <= 1.0 + 1e-9)
		return 0;
	snprintf(err, errlen,
	         "config: the kill rates add up to %.3f, over 1 (FAULT_KILL_RATE and "
	         "FAULT_KILL_RATE_<POINT> are shares of the same attempts; lower them)",
	         sum);
	return -1;
}

int config_check(const struct idem_config *c, char *err, size_t errlen)
{
	char max[32], initial[32];

	if (check_kill_rates(c, err, errlen) != 0)
		return -1;
	if (c->retention_ms > 0 && c->retention_ms < MS_SECOND) {
		format_duration(c->retention_ms, max, sizeof(max));
		snprintf(err, errlen,
		         "config: RETENTION=%s is out of range (allowed: 0 (keep forever) or "
		         "1s..3650d)",
		         max);
		return -1;
	}
	if (c->retry_maximum_ms == 0 || c->retry_maximum_ms >= c->retry_initial_ms)
		return 0;
	format_duration(c->retry_maximum_ms, max, sizeof(max));
	format_duration(c->retry_initial_ms, initial, sizeof(initial));
	snprintf(err, errlen,
	         "config: RETRY_MAXIMUM_INTERVAL=%s is less than RETRY_INITIAL_INTERVAL=%s "
	         "(allowed: 0 or at least RETRY_INITIAL_INTERVAL)",
	         max, initial);
	return -1;
}

int config_load_sources(struct idem_config *c, int argc, char **argv, char *err, size_t errlen)
{
	const char *env_path = ".env";
	int explicit_ = 0;

	config_defaults(c);
	if (find_env_path(argc, argv, &env_path, &explicit_, err, errlen) < 0)
		return -1;
	if (config_load_file(c, env_path, explicit_, err, errlen) < 0)
		return -1;
	return config_load_env(c, err, errlen) < 0 ? -1 : 0;
}

static int load_all(struct idem_config *c, int argc, char **argv, int *rest, int *nrest, char *err,
                    size_t errlen)
{
	*nrest = 0;
	if (config_load_sources(c, argc, argv, err, errlen) != 0)
		return -1;
	if (load_flags(c, argc, argv, rest, nrest, err, errlen) < 0)
		return -1;
	return config_check(c, err, errlen);
}

int config_help_asked(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return 1;
	return 0;
}

int config_load(struct idem_config *c, int argc, char **argv, int *rest, int *nrest, char *err,
                size_t errlen)
{
	int rc = load_all(c, argc, argv, rest, nrest, err, errlen);

	if (rc != 0)
		config_escape_controls(err, errlen);
	return rc;
}
