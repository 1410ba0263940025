/* config.h — idem's configuration: defaults, then a .env file, then the
 * environment, then command-line flags (--workers 4 or --workers=4 sets
 * WORKERS). Every value is validated; an error names the key, the value
 * and what is allowed, e.g.
 *   config: WORKERS=abc is not a number (allowed: 1..256)
 * Nothing here logs or exits: callers print err and exit IDEM_EXIT_USAGE. */
#ifndef IDEM_CONFIG_H
#define IDEM_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define CONFIG_PATH_MAX 512
#define CONFIG_NAME_MAX 128
#define CONFIG_FAULT_POINTS 4
#define CONFIG_APP_KEYS_MAX 32

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_FORMAT_LOGFMT, LOG_FORMAT_JSON };

/* The value of an app's key: INT keys in i, TEXT keys in text (a copy
 * that lives as long as the process). */
struct config_app_value {
	int64_t i;
	const char *text;
};

struct idem_config {
	char app[CONFIG_PATH_MAX];          /* APP: the app it runs (apps/apps.h) */
	char socket[CONFIG_PATH_MAX];       /* SOCKET: control API Unix socket */
	char socket_group[CONFIG_NAME_MAX]; /* SOCKET_GROUP: the socket's group, "" = ours */
	char http_listen[CONFIG_NAME_MAX];  /* HTTP_LISTEN: optional loopback host:port, "" = off */
	char api_token_file[CONFIG_PATH_MAX]; /* API_TOKEN_FILE: HTTP_LISTEN's token, or "none" */
	char namespace_[CONFIG_NAME_MAX];     /* NAMESPACE */
	char taskqueue[CONFIG_NAME_MAX];      /* TASKQUEUE */
	char database[CONFIG_PATH_MAX];       /* DATABASE: the app DB (its tables are the app's) */
	char state_database[CONFIG_PATH_MAX]; /* STATE_DATABASE: workflows, steps, events */
	int sync;                        /* SYNC: 0 full, 1 normal (the values of enum db_sync) */
	int workers;                     /* WORKERS: 1..256 */
	int spare_worker;                /* SPARE_WORKER: 0|1 */
	int64_t worker_ready_timeout_ms; /* WORKER_READY_TIMEOUT: 100ms..1h */
	enum log_level log_level;        /* LOG_LEVEL: debug|info|warn|error */
	size_t max_frame;                /* MAX_FRAME: bytes, 64..64 MiB */
	size_t max_body;                 /* MAX_BODY: bytes, 1 KiB..64 MiB */
	int64_t api_request_timeout_ms;  /* API_REQUEST_TIMEOUT: duration, 1s..1h */
	int64_t shutdown_grace_ms;       /* SHUTDOWN_GRACE: duration, 0..1h */
	int64_t retry_initial_ms;        /* RETRY_INITIAL_INTERVAL: duration, 1ms..1h */
	double retry_backoff;            /* RETRY_BACKOFF_COEFFICIENT: 1.0..100 */
	int64_t retry_maximum_ms;        /* RETRY_MAXIMUM_INTERVAL: duration, 0 = 100 x initial */
	int retry_maximum_attempts;      /* RETRY_MAXIMUM_ATTEMPTS: 0 = unlimited, ..1e6 */
	int64_t start_to_close_ms;       /* START_TO_CLOSE_TIMEOUT: duration, 1ms..24h */
	int64_t schedule_to_close_ms;    /* SCHEDULE_TO_CLOSE_TIMEOUT: 0 = none */
	int64_t heartbeat_timeout_ms;    /* HEARTBEAT_TIMEOUT: 0 = none */
	char retry_non_retryable[512];   /* RETRY_NON_RETRYABLE: comma list of error types */
	int64_t retention_ms;            /* RETENTION: 0 = keep forever, else 1s..3650d */
	int64_t lease_ms;                /* LEASE: 1s..1h (PostgreSQL state DB) */
	char supervisor_name[CONFIG_NAME_MAX]; /* SUPERVISOR_NAME: "" = HOST:DIR/SOCKET */
	char retention_namespaces[512];        /* RETENTION_NAMESPACES: NS=DURATION,... */
	int naive;                             /* ACTIVITY_MODE: guarded (0) | naive (1) */
	/* Fault injection: every rate 0..1, all off at 0 (see fault.h). */
	uint64_t fault_seed; /* FAULT_SEED: "" = random (fault_seed_set 0) */
	int fault_seed_set;
	double fault_kill_rate;     /* FAULT_KILL_RATE: spread over FAULT_KILL_POINTS */
	unsigned fault_kill_points; /* FAULT_KILL_POINTS: bit i = crash point i */
	double
	    fault_kill_point_rate[CONFIG_FAULT_POINTS]; /* FAULT_KILL_RATE_<POINT>; -1 = spread */
	double fault_async_kill_rate;                   /* FAULT_ASYNC_KILL_RATE */
	int64_t fault_async_kill_max_ms;                /* FAULT_ASYNC_KILL_MAX_DELAY */
	double fault_error_rate;                        /* FAULT_ERROR_RATE */
	double fault_delay_rate;                        /* FAULT_DELAY_RATE */
	double fault_peer_rate;                         /* FAULT_PEER_RATE */
	char fault_activities[256]; /* FAULT_ACTIVITIES: "" = all, else comma list */
	int fault_max_attempt;      /* FAULT_MAX_ATTEMPT: 0 = any attempt */
	char fault_vfs[256];        /* FAULT_VFS: storage faults (faultvfs.h), "" = off */
	enum log_format log_format; /* LOG_FORMAT: logfmt|json */
	/* The apps' keys (config_add_keys), read with config_int/config_text. */
	struct config_app_value app_values[CONFIG_APP_KEYS_MAX];
};

/* The effective kill rate at crash point i (0 before_effect, 1
 * after_effect, 2 after_commit, 3 mid_reply): its own FAULT_KILL_RATE_*
 * when set, else an even share of FAULT_KILL_RATE among the points of
 * FAULT_KILL_POINTS that have none. */
double config_kill_rate(const struct idem_config *c, int point);

/* The crash point names, in order. */
extern const char *const config_fault_points[CONFIG_FAULT_POINTS];

/* One configuration key, for help texts and for tests. */
struct config_key {
	const char *name;    /* "WORKERS" */
	const char *def;     /* default value as text */
	const char *allowed; /* "1..256", "debug|info|warn|error", ... */
	const char *help;    /* one line */
};

/* The table of every key, in .env-dist order (idem's, then the apps'
 * added so far); *n receives its length. */
const struct config_key *config_keys(size_t *n);

/* A key an app adds (shared/idem_app.h): an integer in lo..hi, or text
 * that check() accepts (NULL: any), quoted in messages when quote, ""
 * a value (not unset) in the environment when empty_ok. */
enum config_app_kind {
	CONFIG_APP_INT,    /* an integer in lo..hi */
	CONFIG_APP_TEXT,   /* any text check() accepts */
	CONFIG_APP_PATH,   /* a file path: not empty, under CONFIG_PATH_MAX */
	CONFIG_APP_SOCKET, /* a Unix socket path: also within sun_path */
};

struct config_app_key {
	const char *name;
	const char *def;
	const char *allowed;
	const char *help;
	enum config_app_kind kind;
	int64_t lo, hi;
	/* Returns 0, or -1 with msg saying what is wrong and what is allowed
	 * (it follows "config: KEY=VALUE "). */
	int (*check)(const char *value, char *msg, size_t len);
	int quote;
	int empty_ok;
};

/* Adds keys (a list ending with a NULL name) to every config of this
 * process, after idem's own; call before config_defaults or
 * config_load. Adding the same list again does nothing. Returns 0, or -1
 * with err when a name is taken or the table is full. */
int config_add_keys(const struct config_app_key *keys, char *err, size_t errlen);
/* The value of an app's key (it must have been added). */
int64_t config_int(const struct idem_config *c, const char *key);
const char *config_text(const struct idem_config *c, const char *key);
/* The value of an app's key as text (for a child's flags). Returns 0, or
 * -1 when key is not an app's. */
int config_format(const struct idem_config *c, const char *key, char *buf, size_t len);
/* The flag that gives a child an app's key's value, whole:
 * "--supplier-database=run/supplier.db" (NEW, the caller frees it), or
 * NULL when key is not an app's. */
char *config_flag_arg(const struct idem_config *c, const char *key);

/* The retention of namespace ns: its RETENTION_NAMESPACES entry, else
 * RETENTION; 0 = kept forever. */
int64_t config_retention(const struct idem_config *c, const char *ns);
/* The shortest retention that is not 0 (0: every namespace is kept
 * forever). */
int64_t config_retention_min(const struct idem_config *c);

/* A strict integer: [-]DIGITS. Returns 0, -1 (not a number) or -2 (too
 * large for 64 bits). */
int config_parse_int(const char *text, int64_t *v);

/* Fills every field with its default. */
void config_defaults(struct idem_config *c);

/* Sets one key from text, validating it. Returns 0, or -1 with err set.
 * An unknown key is an error that lists no more than the closest names. */
int config_set(struct idem_config *c, const char *key, const char *value, char *err, size_t errlen);

/* Reads KEY=VALUE lines from path: blank lines and '#' comments are
 * skipped, an optional leading "export " is accepted, values may be
 * wrapped in single or double quotes. Errors say "path:line: ...".
 * A missing file is an error only when required is non-zero. */
int config_load_file(struct idem_config *c, const char *path, int required, char *err,
                     size_t errlen);

/* Applies every known key that is set in the environment. */
int config_load_env(struct idem_config *c, char *err, size_t errlen);

/* Tries argv[*i] as a config flag: "--workers 4", "--workers=4",
 * "--state-database PATH" (key lowercased, '_' written '-').
 * Returns 1 and advances *i past what it used when it was one,
 * 0 when argv[*i] is not a config flag (caller handles it), -1 on a bad
 * value or a missing value (err set). */
int config_flag(struct idem_config *c, int argc, char **argv, int *i, char *err, size_t errlen);

/* The flag that sets key: "--state-database" for STATE_DATABASE (without
 * the dashes), into out. */
void config_flag_name(const char *key, char *out, size_t len);

/* Rewrites control bytes in text (a message quoting a bad .env line or
 * value) as \xNN, so that printing it cannot drive a terminal. */
void config_escape_controls(char *text, size_t len);

/* config_load's first part: defaults, the .env (--env FILE's, required
 * only when given), the environment; not the other flags, and no check
 * across keys. What a SIGHUP compares to see a change a flag hides. */
int config_load_sources(struct idem_config *c, int argc, char **argv, char *err, size_t errlen);

/* Non-zero when argv[1..] holds "--help" or "-h": a program answers it
 * before it loads a configuration, which might not load. */
int config_help_asked(int argc, char **argv);

/* The usual order for a program: defaults, env_path (required only when
 * env_explicit), environment, then every flag in argv[1..]. Flags that are
 * not config flags are left for the caller: their indices are written to
 * rest[] (capacity argc) and their count to *nrest. "--env FILE" is taken
 * here and chooses env_path. */
int config_load(struct idem_config *c, int argc, char **argv, int *rest, int *nrest, char *err,
                size_t errlen);

/* Whether key has the same value in a and b; and copying key's value
 * from src to dst (a reload's keys, main.c). */
int config_same(const struct idem_config *a, const struct idem_config *b, const char *key);
void config_copy(struct idem_config *dst, const struct idem_config *src, const char *key);

/* The rules that involve more than one key (config_load checks them;
 * after config_set, call it yourself). Returns 0, or -1 with err. */
int config_check(const struct idem_config *c, char *err, size_t errlen);

/* Parses a duration: "250ms", "1.5s", "2m", "1h", or a plain number of
 * seconds. Returns 0 and *ms, or -1. */
int config_parse_duration(const char *text, int64_t *ms);

const char *config_log_level_name(enum log_level l);
const char *config_log_format_name(enum log_format f);

#endif
