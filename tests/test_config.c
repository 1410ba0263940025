/* test_config.c — the key table, every kind of bad value and its message,
 * .env parsing, precedence (file < environment < flags), flags, and
 * .env-dist against the table. Each test runs in its own temp directory
 * with every config key unset in the environment. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "appdb.h"
#include "apps.h"
#include "config.h"
#include "inventory.h"
#include "testutil.h"

struct fixture {
	char *dir;
	char cwd[PATH_MAX];
	struct idem_config c;
	struct idem_config want;
	char err[1024];
};

static void unset_all_keys(void)
{
	size_t n;
	const struct config_key *k = config_keys(&n);

	for (size_t i = 0; i < n; i++)
		unsetenv(k[i].name);
}

/* SEED_STOCK as the inventory app reads it (one parse at a time). */
struct seeds {
	struct name_value p[INVENTORY_STOCK_ENTRIES_MAX];
	size_t n;
};

static const struct seeds *seeds_of(const struct idem_config *c)
{
	static struct seeds s;
	char msg[512];

	s.n = 0;
	if (inventory_stock_parse(config_text(c, "SEED_STOCK"), s.p, &s.n, msg, sizeof(msg)) != 0)
		fail_msg("SEED_STOCK does not parse: %s", msg);
	return &s;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_non_null(getcwd(f->cwd, sizeof(f->cwd)));
	f->dir = tu_tmpdir("config");
	assert_non_null(f->dir);
	assert_int_equal(chdir(f->dir), 0);
	unset_all_keys();
	config_defaults(&f->c);
	config_defaults(&f->want);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	unset_all_keys();
	assert_int_equal(chdir(f->cwd), 0);
	tu_rmrf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

/* ---- helpers ---- */

static void contains(const char *s, const char *frag, int line)
{
	if (strstr(s, frag) == NULL)
		fail_msg("line %d: \"%s\" does not contain \"%s\"", line, s, frag);
}

static void set_ok(struct idem_config *c, const char *key, const char *value, int line)
{
	char err[1024] = "";

	if (config_set(c, key, value, err, sizeof(err)) != 0)
		fail_msg("line %d: %s=%s failed: %s", line, key, value, err);
}

/* config_set must fail, leave the config as it was, and say every frag. */
static void set_fails(struct idem_config *c, const char *key, const char *value,
                      const char *const *frags, int line)
{
	struct idem_config *before = malloc(sizeof(*before));
	char err[1024] = "";

	assert_non_null(before);
	memcpy(before, c, sizeof(*c));
	if (config_set(c, key, value, err, sizeof(err)) != -1)
		fail_msg("line %d: %s=%s was accepted", line, key, value);
	if (memcmp(before, c, sizeof(*c)) != 0)
		fail_msg("line %d: %s=%s changed the config", line, key, value);
	for (; *frags; frags++)
		contains(err, *frags, line);
	free(before);
}

#define SET_OK(c, k, v) set_ok(c, k, v, __LINE__)
#define SET_FAILS(c, k, v, ...)                                                                    \
	set_fails(c, k, v, (const char *const[]){__VA_ARGS__, NULL}, __LINE__)
#define CONTAINS(s, frag) contains(s, frag, __LINE__)

static const char *set_err(struct idem_config *c, const char *key, const char *value)
{
	static char err[1024];

	err[0] = '\0';
	assert_int_equal(config_set(c, key, value, err, sizeof(err)), -1);
	return err;
}

static void assert_config_equal(const struct idem_config *a, const struct idem_config *b)
{
	assert_string_equal(a->socket, b->socket);
	assert_string_equal(a->http_listen, b->http_listen);
	assert_string_equal(a->namespace_, b->namespace_);
	assert_string_equal(a->taskqueue, b->taskqueue);
	assert_string_equal(a->database, b->database);
	assert_string_equal(a->state_database, b->state_database);
	assert_string_equal(config_text(a, "SUPPLIER_DATABASE"),
	                    config_text(b, "SUPPLIER_DATABASE"));
	assert_string_equal(config_text(a, "SUPPLIER_SOCKET"), config_text(b, "SUPPLIER_SOCKET"));
	assert_int_equal(a->sync, b->sync);
	assert_int_equal(a->workers, b->workers);
	assert_int_equal(config_int(a, "REORDER_THRESHOLD"), config_int(b, "REORDER_THRESHOLD"));
	assert_int_equal(config_int(a, "REORDER_QUANTITY"), config_int(b, "REORDER_QUANTITY"));
	assert_string_equal(config_text(a, "SEED_STOCK"), config_text(b, "SEED_STOCK"));
	assert_int_equal(a->log_level, b->log_level);
	assert_int_equal(a->max_frame, b->max_frame);
	assert_int_equal(a->max_body, b->max_body);
	assert_int_equal(a->spare_worker, b->spare_worker);
	assert_int_equal(a->api_request_timeout_ms, b->api_request_timeout_ms);
	assert_int_equal(a->shutdown_grace_ms, b->shutdown_grace_ms);
	assert_int_equal(a->retry_initial_ms, b->retry_initial_ms);
	assert_true(a->retry_backoff == b->retry_backoff);
	assert_int_equal(a->retry_maximum_ms, b->retry_maximum_ms);
	assert_int_equal(a->retry_maximum_attempts, b->retry_maximum_attempts);
	assert_int_equal(a->start_to_close_ms, b->start_to_close_ms);
	assert_int_equal(a->schedule_to_close_ms, b->schedule_to_close_ms);
	assert_int_equal(a->heartbeat_timeout_ms, b->heartbeat_timeout_ms);
	assert_string_equal(a->retry_non_retryable, b->retry_non_retryable);
	assert_int_equal(a->naive, b->naive);
	assert_int_equal(a->fault_seed_set, b->fault_seed_set);
	if (a->fault_seed_set)
		assert_true(a->fault_seed == b->fault_seed);
	assert_true(a->fault_kill_rate == b->fault_kill_rate);
	assert_int_equal(a->fault_kill_points, b->fault_kill_points);
	for (int i = 0; i < CONFIG_FAULT_POINTS; i++)
		assert_true(a->fault_kill_point_rate[i] == b->fault_kill_point_rate[i]);
	assert_true(a->fault_async_kill_rate == b->fault_async_kill_rate);
	assert_int_equal(a->fault_async_kill_max_ms, b->fault_async_kill_max_ms);
	assert_true(a->fault_error_rate == b->fault_error_rate);
	assert_true(a->fault_delay_rate == b->fault_delay_rate);
	assert_true(a->fault_peer_rate == b->fault_peer_rate);
	assert_string_equal(a->fault_activities, b->fault_activities);
	assert_int_equal(a->fault_max_attempt, b->fault_max_attempt);
	assert_int_equal(a->log_format, b->log_format);
}

static void write_file(const char *path, const char *text)
{
	assert_int_equal(tu_write_file(path, text), 0);
}

static int load(struct fixture *f, char **argv, int *rest, int *nrest)
{
	int argc = 0;

	while (argv[argc] != NULL)
		argc++;
	f->err[0] = '\0';
	return config_load(&f->c, argc, argv, rest, nrest, f->err, sizeof(f->err));
}

/* ---- the table and the defaults ---- */

static void test_defaults(void **state)
{
	struct idem_config *c = &((struct fixture *)*state)->c;

	assert_string_equal(c->socket, "run/idem.sock");
	assert_string_equal(c->http_listen, "");
	assert_string_equal(c->namespace_, "default");
	assert_string_equal(c->taskqueue, "inventory-task-queue");
	assert_string_equal(c->database, "run/inventory.db");
	assert_string_equal(c->state_database, "run/state.db");
	assert_string_equal(config_text(c, "SUPPLIER_DATABASE"), "run/supplier.db");
	assert_string_equal(config_text(c, "SUPPLIER_SOCKET"), "run/supplier.sock");
	assert_int_equal(c->workers, 2);
	assert_int_equal(c->spare_worker, 1);
	assert_int_equal(config_int(c, "REORDER_THRESHOLD"), 2);
	assert_int_equal(config_int(c, "REORDER_QUANTITY"), 1000);
	assert_int_equal(seeds_of(c)->n, 1);
	assert_string_equal(seeds_of(c)->p[0].name, "123456");
	assert_int_equal(seeds_of(c)->p[0].value, 1000);
	assert_int_equal(c->log_level, LOG_INFO);
	assert_int_equal(c->max_frame, 1048576);
	assert_int_equal(c->max_body, 1048576);
	assert_int_equal(c->api_request_timeout_ms, 30000);
	assert_int_equal(c->shutdown_grace_ms, 5000);
	assert_int_equal(c->retry_initial_ms, 1000);
	assert_true(c->retry_backoff == 2.0);
	assert_int_equal(c->retry_maximum_ms, 0);
	assert_int_equal(c->retry_maximum_attempts, 0);
	assert_int_equal(c->start_to_close_ms, 30000);
}

static void test_key_table(void **state)
{
	static const char *const order[] = {
	    "APP", "SOCKET", "SOCKET_GROUP", "HTTP_LISTEN", "API_TOKEN_FILE", "NAMESPACE",
	    "TASKQUEUE", "DATABASE", "STATE_DATABASE", "SUPERVISOR_NAME", "LEASE", "SYNC",
	    "WORKERS", "SPARE_WORKER", "WORKER_READY_TIMEOUT", "LOG_LEVEL", "MAX_FRAME", "MAX_BODY",
	    "API_REQUEST_TIMEOUT", "SHUTDOWN_GRACE", "RETRY_INITIAL_INTERVAL",
	    "RETRY_BACKOFF_COEFFICIENT",
	    "RETRY_MAXIMUM_INTERVAL", "RETRY_MAXIMUM_ATTEMPTS", "START_TO_CLOSE_TIMEOUT",
	    "SCHEDULE_TO_CLOSE_TIMEOUT", "HEARTBEAT_TIMEOUT", "RETENTION", "RETENTION_NAMESPACES",
	    "RETRY_NON_RETRYABLE", "ACTIVITY_MODE", "FAULT_SEED", "FAULT_KILL_RATE",
	    "FAULT_KILL_POINTS", "FAULT_KILL_RATE_BEFORE_EFFECT", "FAULT_KILL_RATE_AFTER_EFFECT",
	    "FAULT_KILL_RATE_AFTER_COMMIT", "FAULT_KILL_RATE_MID_REPLY", "FAULT_ASYNC_KILL_RATE",
	    "FAULT_ASYNC_KILL_MAX_DELAY", "FAULT_ERROR_RATE", "FAULT_DELAY_RATE", "FAULT_PEER_RATE",
	    "FAULT_ACTIVITIES", "FAULT_MAX_ATTEMPT", "FAULT_VFS", "LOG_FORMAT",
	    /* the inventory app's */
	    "SUPPLIER_DATABASE", "SUPPLIER_SOCKET", "REORDER_THRESHOLD", "REORDER_QUANTITY",
	    "SEED_STOCK",
	    /* the transfer app's */
	    "TRANSFER_ACCOUNTS"};
	struct fixture *f = *state;
	size_t n;
	const struct config_key *k = config_keys(&n);

	assert_int_equal(n, sizeof(order) / sizeof(order[0]));
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(k[i].name, order[i]);
		assert_non_null(k[i].def);
		assert_true(strlen(k[i].allowed) > 0);
		assert_true(strlen(k[i].help) > 0);
		/* Setting a key to its default text changes nothing. */
		SET_OK(&f->c, k[i].name, k[i].def);
	}
	assert_config_equal(&f->c, &f->want);
	assert_string_equal(config_log_level_name(LOG_DEBUG), "debug");
	assert_string_equal(config_log_level_name(LOG_ERROR), "error");
}

/* ---- bad values, key by key ---- */

static void test_integers(void **state)
{
	struct idem_config *c = &((struct fixture *)*state)->c;

	assert_string_equal(set_err(c, "WORKERS", "abc"),
	                    "config: WORKERS=abc is not a number (allowed: 1..256)");
	assert_string_equal(set_err(c, "WORKERS", "0"),
	                    "config: WORKERS=0 is out of range (allowed: 1..256)");
	SET_FAILS(c, "WORKERS", "257", "WORKERS=257 is out of range", "1..256");
	SET_FAILS(c, "WORKERS", "-1", "WORKERS=-1 is out of range");
	SET_FAILS(c, "WORKERS", "4x", "WORKERS=4x is not a number");
	SET_FAILS(c, "WORKERS", "+4", "is not a number");
	SET_FAILS(c, "WORKERS", " 4", "WORKERS=\" 4\" is not a number");
	SET_FAILS(c, "WORKERS", "4 ", "is not a number");
	SET_FAILS(c, "WORKERS", "", "WORKERS=\"\" is not a number");
	SET_FAILS(c, "WORKERS", "4.0", "is not a number");
	SET_FAILS(c, "WORKERS", "99999999999999999999", "is out of range (allowed: 1..256)");
	SET_OK(c, "WORKERS", "256");
	assert_int_equal(c->workers, 256);
	SET_OK(c, "WORKERS", "1");
	assert_int_equal(c->workers, 1);

	SET_FAILS(c, "REORDER_THRESHOLD", "-1", "REORDER_THRESHOLD=-1 is out of range",
	          "0..1000000000");
	SET_FAILS(c, "REORDER_THRESHOLD", "1000000001", "is out of range (allowed: 0..1000000000)");
	SET_OK(c, "REORDER_THRESHOLD", "0");
	assert_int_equal(config_int(c, "REORDER_THRESHOLD"), 0);
	SET_FAILS(c, "REORDER_QUANTITY", "0", "REORDER_QUANTITY=0 is out of range",
	          "1..1000000000");
	SET_FAILS(c, "REORDER_QUANTITY", "1000000001", "REORDER_QUANTITY=1000000001");
	SET_FAILS(c, "REORDER_QUANTITY", "lots", "REORDER_QUANTITY=lots is not a number");
	SET_OK(c, "REORDER_QUANTITY", "1000000000");
	assert_int_equal(config_int(c, "REORDER_QUANTITY"), 1000000000);
	SET_FAILS(c, "RETRY_MAXIMUM_ATTEMPTS", "1000001", "RETRY_MAXIMUM_ATTEMPTS=1000001",
	          "out of range (allowed: 0..1000000");
	SET_FAILS(c, "RETRY_MAXIMUM_ATTEMPTS", "-1", "out of range");
	SET_OK(c, "RETRY_MAXIMUM_ATTEMPTS", "5");
	assert_int_equal(c->retry_maximum_attempts, 5);
}

static void test_bytes(void **state)
{
	struct idem_config *c = &((struct fixture *)*state)->c;

	SET_OK(c, "MAX_FRAME", "64KiB");
	assert_int_equal(c->max_frame, 65536);
	SET_OK(c, "MAX_FRAME", "1MiB");
	assert_int_equal(c->max_frame, 1048576);
	SET_OK(c, "MAX_FRAME", "64MiB");
	assert_int_equal(c->max_frame, 67108864);
	SET_OK(c, "MAX_FRAME", "64");
	assert_int_equal(c->max_frame, 64);
	SET_FAILS(c, "MAX_FRAME", "63", "MAX_FRAME=63 is out of range (allowed: 64..64MiB)");
	SET_FAILS(c, "MAX_FRAME", "67108865", "MAX_FRAME=67108865 is out of range");
	SET_FAILS(c, "MAX_FRAME", "65MiB", "MAX_FRAME=65MiB is out of range");
	SET_FAILS(c, "MAX_FRAME", "1.5MiB", "MAX_FRAME=1.5MiB is not a number");
	SET_FAILS(c, "MAX_FRAME", "1XB", "is not a number (allowed: 64..64MiB)");
	SET_FAILS(c, "MAX_FRAME", "MiB", "is not a number");
	SET_FAILS(c, "MAX_FRAME", "99999999999GiB", "is out of range");
	SET_OK(c, "MAX_BODY", "1KiB");
	assert_int_equal(c->max_body, 1024);
	SET_FAILS(c, "MAX_BODY", "1023", "MAX_BODY=1023 is out of range (allowed: 1KiB..64MiB)");
	SET_FAILS(c, "MAX_BODY", "big", "MAX_BODY=big is not a number");
	SET_OK(c, "API_REQUEST_TIMEOUT", "2s");
	assert_int_equal(c->api_request_timeout_ms, 2000);
	SET_FAILS(c, "API_REQUEST_TIMEOUT", "500ms",
	          "API_REQUEST_TIMEOUT=500ms is out of range (allowed: 1s..1h)");
	SET_FAILS(c, "API_REQUEST_TIMEOUT", "0", "API_REQUEST_TIMEOUT=0 is out of range");
}

static void test_parse_duration(void **state)
{
	static const struct {
		const char *text;
		int64_t ms;
	} good[] = {{"250ms", 250}, {"1.5s", 1500}, {"2m", 120000}, {"1h", 3600000},
	            {"3", 3000},    {"0", 0},       {"0.25", 250},  {"1.5h", 5400000},
	            {"0ms", 0},     {"10s", 10000}};
	static const char *const bad[] = {"-1s", "",    "s",   "1x",  "1e3", ".5s",    "1.s", " 1s",
	                                  "1s ", "1 s", "inf", "nan", "1S",  "1.5.2s", "-0"};
	int64_t ms;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ms = -1;
		assert_int_equal(config_parse_duration(good[i].text, &ms), 0);
		assert_int_equal(ms, good[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (config_parse_duration(bad[i], &ms) != -1)
			fail_msg("duration \"%s\" was accepted", bad[i]);
}

static void test_duration_keys(void **state)
{
	struct idem_config *c = &((struct fixture *)*state)->c;

	SET_FAILS(c, "SHUTDOWN_GRACE", "soon", "SHUTDOWN_GRACE=soon is not a duration",
	          "allowed: 0..1h");
	SET_FAILS(c, "SHUTDOWN_GRACE", "61m",
	          "SHUTDOWN_GRACE=61m is out of range (allowed: 0..1h)");
	SET_FAILS(c, "SHUTDOWN_GRACE", "-1s", "SHUTDOWN_GRACE=-1s is not a duration");
	SET_OK(c, "SHUTDOWN_GRACE", "0");
	assert_int_equal(c->shutdown_grace_ms, 0);
	SET_FAILS(c, "RETRY_INITIAL_INTERVAL", "0",
	          "RETRY_INITIAL_INTERVAL=0 is out of range (allowed: 1ms..1h)");
	SET_FAILS(c, "RETRY_INITIAL_INTERVAL", "2h", "is out of range (allowed: 1ms..1h)");
	SET_OK(c, "RETRY_INITIAL_INTERVAL", "1ms");
	assert_int_equal(c->retry_initial_ms, 1);
	SET_FAILS(c, "RETRY_MAXIMUM_INTERVAL", "25h", "RETRY_MAXIMUM_INTERVAL=25h is out of range",
	          "1ms..24h");
	SET_OK(c, "RETRY_MAXIMUM_INTERVAL", "24h");
	assert_int_equal(c->retry_maximum_ms, 86400000);
	SET_FAILS(c, "START_TO_CLOSE_TIMEOUT", "0s", "START_TO_CLOSE_TIMEOUT=0s is out of range",
	          "1ms..24h");
	SET_FAILS(c, "START_TO_CLOSE_TIMEOUT", "1w", "START_TO_CLOSE_TIMEOUT=1w is not a duration");
	SET_FAILS(c, "START_TO_CLOSE_TIMEOUT", "2d", "START_TO_CLOSE_TIMEOUT=2d is out of range");
	SET_FAILS(c, "START_TO_CLOSE_TIMEOUT", "99999999999h", "is out of range");
	SET_OK(c, "START_TO_CLOSE_TIMEOUT", "250ms");
	assert_int_equal(c->start_to_close_ms, 250);
}

static void test_backoff(void **state)
{
	struct idem_config *c = &((struct fixture *)*state)->c;

	SET_OK(c, "RETRY_BACKOFF_COEFFICIENT", "1.0");
	assert_true(c->retry_backoff == 1.0);
	SET_OK(c, "RETRY_BACKOFF_COEFFICIENT", "100");
	assert_true(c->retry_backoff == 100.0);
	SET_OK(c, "RETRY_BACKOFF_COEFFICIENT", "1.5");
	assert_true(c->retry_backoff == 1.5);
	SET_FAILS(c, "RETRY_BACKOFF_COEFFICIENT", "0.5",
	          "RETRY_BACKOFF_COEFFICIENT=0.5 is out of range (allowed: 1.0..100)");
	SET_FAILS(c, "RETRY_BACKOFF_COEFFICIENT", "100.5", "is out of range (allowed: 1.0..100)");
	SET_FAILS(c, "RETRY_BACKOFF_COEFFICIENT", "-2", "=-2 is out of range");
	SET_FAILS(c, "RETRY_BACKOFF_COEFFICIENT", "two",
	          "=two is not a number (allowed: 1.0..100)");
	SET_FAILS(c, "RETRY_BACKOFF_COEFFICIENT", "1e2", "is not a number");
	SET_FAILS(c, "RETRY_BACKOFF_COEFFICIENT", "nan", "is not a number");
	SET_FAILS(c, "RETRY_BACKOFF_COEFFICIENT", "2.", "is not a number");
}

static void test_log_level(void **state)
{
	struct idem_config *c = &((struct fixture *)*state)->c;

	assert_string_equal(set_err(c, "LOG_LEVEL", "loud"),
	                    "config: LOG_LEVEL=loud is not one of debug|info|warn|error");
	SET_FAILS(c, "LOG_LEVEL", "", "LOG_LEVEL=\"\" is not one of");
	SET_OK(c, "LOG_LEVEL", "debug");
	assert_int_equal(c->log_level, LOG_DEBUG);
	SET_OK(c, "LOG_LEVEL", "WARN");
	assert_int_equal(c->log_level, LOG_WARN);
	SET_OK(c, "LOG_LEVEL", "error");
	assert_int_equal(c->log_level, LOG_ERROR);
}

static void test_names_and_paths(void **state)
{
	struct idem_config *c = &((struct fixture *)*state)->c;
	char name[200];

	SET_FAILS(c, "NAMESPACE", "a b", "NAMESPACE=\"a b\" is not a valid name",
	          "1..127 characters of A-Z a-z 0-9 _ . -");
	SET_FAILS(c, "NAMESPACE", "", "NAMESPACE=\"\" is not a valid name");
	SET_FAILS(c, "TASKQUEUE", "q/1", "TASKQUEUE=q/1 is not a valid name");
	memset(name, 'q', 128);
	name[128] = '\0';
	SET_FAILS(c, "TASKQUEUE", name, "is not a valid name");
	name[127] = '\0';
	SET_OK(c, "TASKQUEUE", name);
	assert_string_equal(c->taskqueue, name);
	SET_OK(c, "NAMESPACE", "prod.eu-1_x");
	assert_string_equal(c->namespace_, "prod.eu-1_x");

	assert_string_equal(set_err(c, "DATABASE", ""),
	                    "config: DATABASE=\"\" is empty (allowed: a file path)");
	SET_FAILS(c, "STATE_DATABASE", "", "STATE_DATABASE=\"\" is empty");
	SET_OK(c, "SUPPLIER_DATABASE", "/tmp/with space.db");
	assert_string_equal(config_text(c, "SUPPLIER_DATABASE"), "/tmp/with space.db");
}

static void test_long_paths(void **state)
{
	struct idem_config *c = &((struct fixture *)*state)->c;
	char path[CONFIG_PATH_MAX + 10];

	memset(path, 'p', sizeof(path) - 1);
	path[sizeof(path) - 1] = '\0';
	SET_FAILS(c, "DATABASE", path, "DATABASE=ppp", "ppp... is too long (521 bytes, limit 511)");

	/* sun_path holds 107 bytes and the NUL. */
	path[0] = '/';
	path[108] = '\0';
	SET_FAILS(c, "SOCKET", path, "config: SOCKET=/ppp", "is 108 bytes long",
	          "limit of 107 bytes", "shorter path");
	SET_FAILS(c, "SUPPLIER_SOCKET", path, "SUPPLIER_SOCKET=", "is 108 bytes long");
	path[107] = '\0';
	SET_OK(c, "SOCKET", path);
	assert_string_equal(c->socket, path);
	SET_FAILS(c, "SOCKET", "", "SOCKET=\"\" is empty");
}

static void test_http_listen(void **state)
{
	static const char *const good[] = {"", "127.0.0.1:8080", "localhost:1", "[::1]:65535",
	                                   "::1:80"};
	struct idem_config *c = &((struct fixture *)*state)->c;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		SET_OK(c, "HTTP_LISTEN", good[i]);
		assert_string_equal(c->http_listen, good[i]);
	}
	SET_FAILS(c, "HTTP_LISTEN", "0.0.0.0:80", "config: HTTP_LISTEN=0.0.0.0:80",
	          "is not a loopback address", "127.0.0.1:PORT", "[::1]:PORT");
	SET_FAILS(c, "HTTP_LISTEN", "example.com:80", "is not a loopback address");
	SET_FAILS(c, "HTTP_LISTEN", "[::]:80", "is not a loopback address");
	SET_FAILS(c, "HTTP_LISTEN", "127.0.0.1", "HTTP_LISTEN=127.0.0.1 is not HOST:PORT");
	assert_string_equal(set_err(c, "HTTP_LISTEN", "127.0.0.1:0"),
	                    "config: HTTP_LISTEN=127.0.0.1:0 has a bad port \"0\" "
	                    "(allowed: 1..65535)");
	SET_FAILS(c, "HTTP_LISTEN", "localhost:65536", "has a bad port \"65536\"");
	SET_FAILS(c, "HTTP_LISTEN", "localhost:http", "has a bad port \"http\"");
	SET_FAILS(c, "HTTP_LISTEN", "localhost:", "has a bad port \"\"");
	SET_FAILS(c, "HTTP_LISTEN", "localhost:-80", "has a bad port");
}

/* ---- SEED_STOCK ---- */

static void test_seed_stock(void **state)
{
	struct idem_config *c = &((struct fixture *)*state)->c;

	SET_OK(c, "SEED_STOCK", "a:1, b.2:0 ,c_3-x:1000000000000");
	assert_int_equal(seeds_of(c)->n, 3);
	assert_string_equal(seeds_of(c)->p[0].name, "a");
	assert_int_equal(seeds_of(c)->p[0].value, 1);
	assert_string_equal(seeds_of(c)->p[1].name, "b.2");
	assert_int_equal(seeds_of(c)->p[1].value, 0);
	assert_string_equal(seeds_of(c)->p[2].name, "c_3-x");
	assert_int_equal(seeds_of(c)->p[2].value, 1000000000000);
	SET_OK(c, "SEED_STOCK", "");
	assert_int_equal(seeds_of(c)->n, 0);
	SET_OK(c, "SEED_STOCK", "123456:1000");
	assert_int_equal(seeds_of(c)->n, 1);
}

static void test_seed_stock_errors(void **state)
{
	struct idem_config *c = &((struct fixture *)*state)->c;
	char id[100];
	char *many;

	assert_string_equal(set_err(c, "SEED_STOCK", "123456"),
	                    "config: SEED_STOCK=\"123456\" entry 1 \"123456\" is not "
	                    "PRODUCT:STOCK (example: 123456:1000)");
	SET_FAILS(c, "SEED_STOCK", "a:1,b", "entry 2 \"b\" is not PRODUCT:STOCK");
	SET_FAILS(c, "SEED_STOCK", "a:1,,b:2", "entry 2 \"\" is not PRODUCT:STOCK");
	SET_FAILS(c, "SEED_STOCK", "a:1,", "entry 2 \"\" is not PRODUCT:STOCK");
	SET_FAILS(c, "SEED_STOCK", ":5", "entry 1 has a bad product id \"\"", "1..64 characters");
	SET_FAILS(c, "SEED_STOCK", "a b:5", "entry 1 has a bad product id \"a b\"");
	SET_FAILS(c, "SEED_STOCK", "a/b:5", "bad product id \"a/b\"");
	memset(id, 'x', 65);
	strcpy(id + 65, ":1");
	SET_FAILS(c, "SEED_STOCK", id, "entry 1 has a bad product id \"xxxx");
	id[64] = ':';
	id[65] = '1';
	id[66] = '\0';
	SET_OK(c, "SEED_STOCK", id);
	assert_int_equal(strlen(seeds_of(c)->p[0].name), 64);
	SET_FAILS(c, "SEED_STOCK", "a:x",
	          "SEED_STOCK=\"a:x\" entry 1 \"a:x\" has a bad stock \"x\"",
	          "(allowed: 0..1000000000000)");
	SET_FAILS(c, "SEED_STOCK", "a:-1", "has a bad stock \"-1\"");
	SET_FAILS(c, "SEED_STOCK", "a:1000000000001", "has a bad stock \"1000000000001\"");
	SET_FAILS(c, "SEED_STOCK", "a:", "has a bad stock \"\"");
	SET_FAILS(c, "SEED_STOCK", "a:1:2", "has a bad stock \"1:2\"");
	SET_FAILS(c, "SEED_STOCK", "a:1,b:2,a:3", "entry 3 repeats product \"a\"");
	memset(id, '9', sizeof(id) - 1);
	id[0] = 'a';
	id[1] = ':';
	id[sizeof(id) - 1] = '\0';
	SET_FAILS(c, "SEED_STOCK", id, "has a bad stock \"999", "(allowed: 0..1000000000000)");

	many = tu_fmt("p0:1");
	for (int i = 1; i < INVENTORY_STOCK_ENTRIES_MAX; i++) {
		char *next = tu_fmt("%s,p%d:%d", many, i, i);

		free(many);
		many = next;
	}
	SET_OK(c, "SEED_STOCK", many);
	assert_int_equal(seeds_of(c)->n, INVENTORY_STOCK_ENTRIES_MAX);
	assert_int_equal(seeds_of(c)->p[1023].value, 1023);
	{
		char *more = tu_fmt("%s,extra:1", many);

		/* The long value is cut short; the reason is kept. */
		SET_FAILS(c, "SEED_STOCK", more, "SEED_STOCK=\"p0:1,p1:1,",
		          "...\" has more than 1024 products");
		free(more);
	}
	free(many);
}

/* TRANSFER_ACCOUNTS shares SEED_STOCK's parser (namelist.c); its messages
 * speak of accounts and balances, with the transfer app's bounds. */
static void test_transfer_accounts_errors(void **state)
{
	struct idem_config *c = &((struct fixture *)*state)->c;
	char *many;

	assert_string_equal(set_err(c, "TRANSFER_ACCOUNTS", "A"),
	                    "config: TRANSFER_ACCOUNTS=\"A\" entry 1 \"A\" is not "
	                    "ACCOUNT:BALANCE (example: A:1000)");
	SET_FAILS(c, "TRANSFER_ACCOUNTS", "A:1,a b:2",
	          "entry 2 has a bad account id \"a b\" (allowed: 1..64 characters");
	SET_FAILS(c, "TRANSFER_ACCOUNTS", "A:-1",
	          "entry 1 \"A:-1\" has a bad balance \"-1\" (allowed: 0..1000000000000)");
	SET_FAILS(c, "TRANSFER_ACCOUNTS", "A:1, B:2 ,A:3", "entry 3 repeats account \"A\"");
	SET_OK(c, "TRANSFER_ACCOUNTS", " A:0 , B:1000000000000 ");
	SET_OK(c, "TRANSFER_ACCOUNTS", "");

	many = tu_fmt("a0:1");
	for (int i = 1; i <= 1024; i++) {
		char *next = tu_fmt("%s,a%d:1", many, i);

		free(many);
		many = next;
	}
	SET_FAILS(c, "TRANSFER_ACCOUNTS", many, "has more than 1024 accounts");
	free(many);
}

static void test_unknown_key(void **state)
{
	struct idem_config *c = &((struct fixture *)*state)->c;

	assert_string_equal(set_err(c, "WORKRES", "4"),
	                    "config: unknown key WORKRES (did you mean WORKERS?)");
	assert_string_equal(set_err(c, "workers", "4"),
	                    "config: unknown key workers (did you mean WORKERS?)");
	assert_string_equal(set_err(c, "DATABASES", "x"),
	                    "config: unknown key DATABASES (did you mean DATABASE?)");
	assert_string_equal(set_err(c, "TEMPORAL_URL", "x"), "config: unknown key TEMPORAL_URL");
	assert_string_equal(set_err(c, "X", "x"), "config: unknown key X");
	assert_string_equal(
	    set_err(c, "FAULT_SUPPLIER_RATE", "0.1"),
	    "config: FAULT_SUPPLIER_RATE was renamed FAULT_PEER_RATE; rename it where you "
	    "set it");
}

/* ---- .env files ---- */

static void test_file_parsing(void **state)
{
	struct fixture *f = *state;

	write_file("my.env", "\xEF\xBB\xBF# a comment\n"
	                     "\n"
	                     "   # indented comment\n"
	                     "export WORKERS=4\n"
	                     "NAMESPACE='prod.ns'\r\n"
	                     "TASKQUEUE=\"q1\" # trailing comment\n"
	                     "DATABASE=/tmp/a b.db   # inline comment\n"
	                     "STATE_DATABASE=\"/tmp/say \\\"hi\\\" \\\\ x\\n.db\"\n"
	                     "SUPPLIER_DATABASE=/tmp/x#y.db\n"
	                     "  LOG_LEVEL = debug   \n"
	                     "SEED_STOCK=\n"
	                     "HTTP_LISTEN= # off\n"
	                     "SUPPLIER_SOCKET='/tmp/s \"q\".sock'\n"
	                     "export\tWORKERS=5\n");
	SET_OK(&f->c, "HTTP_LISTEN", "localhost:9");
	assert_int_equal(config_load_file(&f->c, "my.env", 1, f->err, sizeof(f->err)), 0);
	assert_int_equal(f->c.workers, 5);
	assert_string_equal(f->c.taskqueue, "q1");
	assert_string_equal(f->c.database, "/tmp/a b.db");
	assert_string_equal(f->c.state_database, "/tmp/say \"hi\" \\ x\\n.db");
	assert_string_equal(config_text(&f->c, "SUPPLIER_DATABASE"), "/tmp/x#y.db");
	assert_string_equal(config_text(&f->c, "SUPPLIER_SOCKET"), "/tmp/s \"q\".sock");
	assert_int_equal(f->c.log_level, LOG_DEBUG);
	assert_int_equal(seeds_of(&f->c)->n, 0);
	assert_string_equal(f->c.http_listen, "");
	assert_string_equal(f->c.namespace_, "prod.ns");
}

static void test_file_parsing_quoted_namespace(void **state)
{
	struct fixture *f = *state;

	write_file("q.env", "WORKERS=3\nNAMESPACE='prod ns'\n");
	assert_int_equal(config_load_file(&f->c, "q.env", 1, f->err, sizeof(f->err)), -1);
	assert_string_equal(f->err, "config: q.env:2: NAMESPACE=\"prod ns\" is not a valid name "
	                            "(allowed: 1..127 characters of A-Z a-z 0-9 _ . -)");
}

/* Writes text to bad.env, loads it, expects the error. */
static void file_fails(struct fixture *f, const char *text, const char *want)
{
	write_file("bad.env", text);
	f->err[0] = '\0';
	assert_int_equal(config_load_file(&f->c, "bad.env", 1, f->err, sizeof(f->err)), -1);
	assert_string_equal(f->err, want);
}

static void test_file_errors(void **state)
{
	struct fixture *f = *state;

	file_fails(f, "# x\nWORKERS=3\ngarbage\n",
	           "config: bad.env:3: expected KEY=VALUE, got \"garbage\"");
	file_fails(f, "# x\nWORKRES=3\n",
	           "config: bad.env:2: unknown key WORKRES (did you mean WORKERS?)");
	file_fails(f, "WORKERS=abc\n",
	           "config: bad.env:1: WORKERS=abc is not a number "
	           "(allowed: 1..256)");
	file_fails(f, "=5\n", "config: bad.env:1: expected KEY=VALUE, got \"=5\"");
	file_fails(f, "MY KEY=5\n", "config: bad.env:1: expected KEY=VALUE, got \"MY KEY=5\"");
	file_fails(f, "\n\n\nexport\n", "config: bad.env:4: expected KEY=VALUE, got \"export\"");
	file_fails(f, "DATABASE=\"x.db\n",
	           "config: bad.env:1: DATABASE has an unterminated \" quote");
	file_fails(f, "DATABASE='x.db\n",
	           "config: bad.env:1: DATABASE has an unterminated ' quote");
	file_fails(f, "DATABASE=\"x\"y\n",
	           "config: bad.env:1: DATABASE has text after its closing quote: y");
	file_fails(f, "TEMPORAL_URL=localhost:7233\n",
	           "config: bad.env:1: unknown key TEMPORAL_URL");
	/* Nothing before the bad line is lost, nothing after it is applied. */
	file_fails(f, "WORKERS=7\nLOG_LEVEL=loud\nWORKERS=9\n",
	           "config: bad.env:2: LOG_LEVEL=loud is not one of debug|info|warn|error");
	assert_int_equal(f->c.workers, 7);
}

static void test_file_missing(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(config_load_file(&f->c, "nope.env", 0, f->err, sizeof(f->err)), 0);
	assert_config_equal(&f->c, &f->want);
	assert_int_equal(config_load_file(&f->c, "nope.env", 1, f->err, sizeof(f->err)), -1);
	assert_string_equal(f->err, "config: cannot open nope.env: No such file or directory");
}

/* ---- environment ---- */

static void test_env(void **state)
{
	struct fixture *f = *state;

	setenv("WORKERS", "7", 1);
	setenv("STATE_DATABASE", "/tmp/env-state.db", 1);
	setenv("DATABASE", "", 1);    /* empty: not set */
	setenv("HTTP_LISTEN", "", 1); /* empty: set to off */
	setenv("SEED_STOCK", "", 1);  /* empty: set to no products */
	setenv("WORKRES", "9", 1);    /* not a key: ignored */
	SET_OK(&f->c, "HTTP_LISTEN", "localhost:9");
	assert_int_equal(config_load_env(&f->c, f->err, sizeof(f->err)), 0);
	assert_int_equal(f->c.workers, 7);
	assert_string_equal(f->c.state_database, "/tmp/env-state.db");
	assert_string_equal(f->c.database, "run/inventory.db");
	assert_string_equal(f->c.http_listen, "");
	assert_int_equal(seeds_of(&f->c)->n, 0);
	unsetenv("WORKRES");

	setenv("WORKERS", "abc", 1);
	assert_int_equal(config_load_env(&f->c, f->err, sizeof(f->err)), -1);
	assert_string_equal(f->err, "config: environment: WORKERS=abc is not a number "
	                            "(allowed: 1..256)");
}

/* ---- flags ---- */

static int flag(struct fixture *f, char **argv, int *i)
{
	int argc = 0;

	while (argv[argc] != NULL)
		argc++;
	f->err[0] = '\0';
	return config_flag(&f->c, argc, argv, i, f->err, sizeof(f->err));
}

static void test_flag_forms(void **state)
{
	struct fixture *f = *state;
	char *a1[] = {"prog", "--workers", "4", "x", NULL};
	char *a2[] = {"prog", "--workers=5", "x", NULL};
	char *a3[] = {"prog", "--state-database", "/tmp/s.db", NULL};
	char *a4[] = {"prog", "--http-listen=", "--seed-stock", "", NULL};
	char *a5[] = {"prog", "--retry-backoff-coefficient=1.25", NULL};
	int i = 1;

	assert_int_equal(flag(f, a1, &i), 1);
	assert_int_equal(i, 3);
	assert_int_equal(f->c.workers, 4);
	i = 1;
	assert_int_equal(flag(f, a2, &i), 1);
	assert_int_equal(i, 2);
	assert_int_equal(f->c.workers, 5);
	i = 1;
	assert_int_equal(flag(f, a3, &i), 1);
	assert_int_equal(i, 3);
	assert_string_equal(f->c.state_database, "/tmp/s.db");
	SET_OK(&f->c, "HTTP_LISTEN", "localhost:9");
	i = 1;
	assert_int_equal(flag(f, a4, &i), 1);
	assert_int_equal(i, 2);
	assert_string_equal(f->c.http_listen, "");
	assert_int_equal(flag(f, a4, &i), 1);
	assert_int_equal(i, 4);
	assert_int_equal(seeds_of(&f->c)->n, 0);
	i = 1;
	assert_int_equal(flag(f, a5, &i), 1);
	assert_true(f->c.retry_backoff == 1.25);
}

static void test_flag_errors(void **state)
{
	struct fixture *f = *state;
	char *missing[] = {"prog", "--workers", NULL};
	char *dashed[] = {"prog", "--workers", "--verbose", NULL};
	char *bad[] = {"prog", "--workers", "abc", NULL};
	char *bad_eq[] = {"prog", "--max-frame=12", NULL};
	char *other[] = {"prog", "--verbose",    "start", "--WORKERS=3", "--state_database=x",
	                 "-w",   "--workersx=1", "--env", "x",           NULL};
	int i = 1;

	assert_int_equal(flag(f, missing, &i), -1);
	assert_string_equal(f->err, "config: flag --workers needs a value (allowed: 1..256)");
	assert_int_equal(i, 1);
	assert_int_equal(flag(f, dashed, &i), -1);
	assert_string_equal(f->err, "config: flag --workers needs a value (allowed: 1..256)");
	assert_int_equal(flag(f, bad, &i), -1);
	assert_string_equal(f->err, "config: flag --workers: WORKERS=abc is not a number "
	                            "(allowed: 1..256)");
	assert_int_equal(i, 1);
	assert_int_equal(flag(f, bad_eq, &i), -1);
	assert_string_equal(f->err, "config: flag --max-frame: MAX_FRAME=12 is out of range "
	                            "(allowed: 64..64MiB)");
	for (i = 1; other[i] != NULL; i++) {
		int j = i;

		assert_int_equal(flag(f, other, &j), 0);
		assert_int_equal(j, i);
	}
	assert_config_equal(&f->c, &f->want);
}

/* ---- config_load ---- */

static void test_precedence(void **state)
{
	struct fixture *f = *state;
	char *argv[] = {"prog", "--taskqueue", "from-flag", "--log-level=error", NULL};
	int rest[8], nrest = -1;

	write_file(".env", "WORKERS=3\nNAMESPACE=from-file\nTASKQUEUE=from-file\n"
	                   "LOG_LEVEL=warn\nDATABASE=file.db\n");
	setenv("NAMESPACE", "from-env", 1);
	setenv("TASKQUEUE", "from-env", 1);
	setenv("LOG_LEVEL", "debug", 1);
	assert_int_equal(load(f, argv, rest, &nrest), 0);
	assert_int_equal(nrest, 0);
	assert_int_equal(f->c.workers, 3);                 /* file */
	assert_string_equal(f->c.database, "file.db");     /* file */
	assert_string_equal(f->c.namespace_, "from-env");  /* env beats file */
	assert_string_equal(f->c.taskqueue, "from-flag");  /* flag beats env */
	assert_int_equal(f->c.log_level, LOG_ERROR);       /* flag beats env */
	assert_string_equal(f->c.socket, "run/idem.sock"); /* default */
}

static void test_later_flag_wins(void **state)
{
	struct fixture *f = *state;
	char *argv[] = {"prog", "--workers", "3", "--workers=8", NULL};
	int rest[8], nrest;

	assert_int_equal(load(f, argv, rest, &nrest), 0);
	assert_int_equal(f->c.workers, 8);
}

static void test_env_flag(void **state)
{
	struct fixture *f = *state;
	char *missing[] = {"prog", "--env", "missing.env", NULL};
	char *eq[] = {"prog", "--workers", "4", "--env=other.env", NULL};
	char *space[] = {"prog", "--env", "other.env", "run", NULL};
	char *novalue[] = {"prog", "--env", NULL};
	char *none[] = {"prog", NULL};
	int rest[8], nrest;

	/* No .env and no --env: the defaults, no error. */
	assert_int_equal(load(f, none, rest, &nrest), 0);
	assert_config_equal(&f->c, &f->want);

	/* An explicit --env must exist. */
	assert_int_equal(load(f, missing, rest, &nrest), -1);
	assert_string_equal(f->err, "config: cannot open missing.env: No such file or directory");
	assert_int_equal(load(f, novalue, rest, &nrest), -1);
	assert_string_equal(f->err, "config: flag --env needs a value (a .env file path)");

	/* --env picks the file instead of .env; flags still win over it. */
	write_file(".env", "NAMESPACE=dotenv\n");
	write_file("other.env", "NAMESPACE=other\nWORKERS=6\n");
	assert_int_equal(load(f, eq, rest, &nrest), 0);
	assert_string_equal(f->c.namespace_, "other");
	assert_int_equal(f->c.workers, 4);
	assert_int_equal(nrest, 0);
	assert_int_equal(load(f, space, rest, &nrest), 0);
	assert_string_equal(f->c.namespace_, "other");
	assert_int_equal(f->c.workers, 6);
	assert_int_equal(nrest, 1);
	assert_int_equal(rest[0], 3);

	/* The default .env is read when present, and its errors are reported. */
	assert_int_equal(load(f, none, rest, &nrest), 0);
	assert_string_equal(f->c.namespace_, "dotenv");
	write_file(".env", "WORKERS=0\n");
	assert_int_equal(load(f, none, rest, &nrest), -1);
	assert_string_equal(f->err, "config: .env:1: WORKERS=0 is out of range (allowed: 1..256)");
}

static void test_rest(void **state)
{
	struct fixture *f = *state;
	char *argv[] = {"prog",           "start", "--workers", "3",  "--help",
	                "--env=x.env",    "wf1",   "--input",   "{}", "--version",
	                "--namespace=n1", NULL};
	int rest[11], nrest = -1;

	write_file("x.env", "REORDER_QUANTITY=5\n");
	assert_int_equal(load(f, argv, rest, &nrest), 0);
	assert_int_equal(nrest, 6);
	assert_string_equal(argv[rest[0]], "start");
	assert_string_equal(argv[rest[1]], "--help");
	assert_string_equal(argv[rest[2]], "wf1");
	assert_string_equal(argv[rest[3]], "--input");
	assert_string_equal(argv[rest[4]], "{}");
	assert_string_equal(argv[rest[5]], "--version");
	assert_int_equal(f->c.workers, 3);
	assert_int_equal(config_int(&f->c, "REORDER_QUANTITY"), 5);
	assert_string_equal(f->c.namespace_, "n1");
}

static void test_load_flag_error(void **state)
{
	struct fixture *f = *state;
	char *argv[] = {"prog", "start", "--workers", NULL};
	int rest[4], nrest;

	assert_int_equal(load(f, argv, rest, &nrest), -1);
	assert_string_equal(f->err, "config: flag --workers needs a value (allowed: 1..256)");
}

/* RETENTION and its per-namespace overrides (config_retention). */
static void test_retention(void **state)
{
	struct fixture *f = *state;
	struct idem_config *c = &f->c;
	char *below[] = {"prog", "--retention=500ms", NULL};
	char *good[] = {"prog", "--retention=3d", "--retention-namespaces",
	                " billing=30d, scratch=1h,keep=0", NULL};
	int rest[8], nrest;

	assert_int_equal(load(f, below, rest, &nrest), -1);
	assert_string_equal(f->err, "config: RETENTION=500ms is out of range (allowed: 0 (keep "
	                            "forever) or 1s..3650d)");
	assert_int_equal(load(f, good, rest, &nrest), 0);
	assert_int_equal(c->retention_ms, 3 * 86400000LL);
	assert_string_equal(c->retention_namespaces, "billing=30d,scratch=1h,keep=0");
	assert_int_equal(config_retention(c, "billing"), 30 * 86400000LL);
	assert_int_equal(config_retention(c, "scratch"), 3600000);
	assert_int_equal(config_retention(c, "keep"), 0);
	assert_int_equal(config_retention(c, "default"), 3 * 86400000LL);
	assert_int_equal(config_retention(c, "bill"), 3 * 86400000LL);
	assert_int_equal(config_retention_min(c), 3600000);
	SET_FAILS(c, "RETENTION_NAMESPACES", "billing", "RETENTION_NAMESPACES=billing has",
	          "\"billing\", which is not NAMESPACE=DURATION", "e.g. billing=30d,scratch=1h");
	SET_FAILS(c, "RETENTION_NAMESPACES", "a=1x", "gives namespace a the retention \"1x\"",
	          "(allowed: 0 or 1s..3650d)");
	SET_FAILS(c, "RETENTION_NAMESPACES", "a=10ms", "gives namespace a the retention \"10ms\"");
	SET_FAILS(c, "RETENTION_NAMESPACES", "a/b=1h", "has namespace \"a/b\" with '/'");
	SET_FAILS(c, "RETENTION", "3651d", "RETENTION=3651d is out of range");
	SET_FAILS(c, "RETENTION_NAMESPACES", "a=1h,b=2h,a=3h", "names namespace a twice");
	SET_OK(c, "RETENTION_NAMESPACES", "a=1h,ab=2h,b=3h");
}

static void test_retry_maximum_below_initial(void **state)
{
	struct fixture *f = *state;
	char *below[] = {"prog", "--retry-initial-interval", "2s",
	                 "--retry-maximum-interval=1500ms", NULL};
	char *equal[] = {"prog", "--retry-initial-interval=2s", "--retry-maximum-interval=2s",
	                 NULL};
	char *zero[] = {"prog", "--retry-initial-interval=1h", NULL};
	char *late[] = {"prog", "--retry-initial-interval=500ms", NULL};
	int rest[8], nrest;

	assert_int_equal(load(f, below, rest, &nrest), -1);
	assert_string_equal(f->err, "config: RETRY_MAXIMUM_INTERVAL=1500ms is less than "
	                            "RETRY_INITIAL_INTERVAL=2s (allowed: 0 or at least "
	                            "RETRY_INITIAL_INTERVAL)");
	assert_int_equal(load(f, equal, rest, &nrest), 0);
	assert_int_equal(f->c.retry_maximum_ms, 2000);
	assert_int_equal(load(f, zero, rest, &nrest), 0);
	assert_int_equal(f->c.retry_maximum_ms, 0);

	/* The rule is checked once everything is applied: the file's maximum is
	 * below the default initial, but the flag lowers the initial. */
	write_file(".env", "RETRY_MAXIMUM_INTERVAL=750ms\n");
	assert_int_equal(load(f, late, rest, &nrest), 0);
	assert_int_equal(f->c.retry_maximum_ms, 750);
	assert_int_equal(f->c.retry_initial_ms, 500);
	assert_int_equal(load(f, zero, rest, &nrest), -1);
	CONTAINS(f->err, "RETRY_MAXIMUM_INTERVAL=750ms is less than RETRY_INITIAL_INTERVAL=1h");
}

/* ---- .env-dist ---- */

/* A value that differs from the default for every key, in table order. */
static const char *const not_default[] = {"transfer",
                                          "x.sock",
                                          "root",
                                          "localhost:1",
                                          "tok.txt",
                                          "ns",
                                          "tq",
                                          "x.db",
                                          "xs.db",
                                          "sup-1",
                                          "30s",
                                          "normal",
                                          "9",
                                          "0",
                                          "9s",
                                          "error",
                                          "99",
                                          "9999",
                                          "9s",
                                          "9s",
                                          "9s",
                                          "9",
                                          "99s",
                                          "9",
                                          "9s",
                                          "9s",
                                          "9s",
                                          "9d",
                                          "a=1h",
                                          "X,Y",
                                          "naive",
                                          "7",
                                          "0.1",
                                          "mid_reply",
                                          "0.1",
                                          "0.1",
                                          "0.1",
                                          "0.1",
                                          "0.5",
                                          "9ms",
                                          "0.5",
                                          "0.5",
                                          "0.5",
                                          "update_inventory",
                                          "3",
                                          "target=app,op=sync,nth=2",
                                          "json",
                                          "xp.db",
                                          "xp.sock",
                                          "9",
                                          "9",
                                          "x:9",
                                          "Z:1"};

static void test_env_dist(void **state)
{
	struct fixture *f = *state;
	const char *path = IDEM_SOURCE_DIR "/.env-dist";
	char *text = tu_read_file(path);
	const char *at = text;
	size_t n;
	const struct config_key *k = config_keys(&n);

	assert_non_null(text);
	assert_int_equal(n, sizeof(not_default) / sizeof(not_default[0]));
	/* Every key, in table order, each right after a comment line. */
	for (size_t i = 0; i < n; i++) {
		char *line = tu_fmt("\n%s=", k[i].name);
		const char *hit = strstr(at, line), *prev = hit;

		if (hit == NULL)
			fail_msg(".env-dist lacks %s (or has it out of table order)", k[i].name);
		while (prev > text && prev[-1] != '\n')
			prev--;
		if (*prev != '#')
			fail_msg(".env-dist: no comment line right before %s", k[i].name);
		at = hit + 1;
		free(line);
		SET_OK(&f->c, k[i].name, not_default[i]);
	}
	free(text);

	/* Loaded over values that all differ from the defaults, it gives the
	 * defaults: every key is there, with its default value. */
	assert_int_equal(config_load_file(&f->c, path, 1, f->err, sizeof(f->err)), 0);
	assert_config_equal(&f->c, &f->want);
}

/* ---- fault injection and modes ---- */

static void test_fault_keys(void **state)
{
	struct idem_config *c = &((struct fixture *)*state)->c;

	SET_FAILS(c, "FAULT_KILL_RATE", "1.5", "FAULT_KILL_RATE=1.5 is out of range", "0..1");
	SET_FAILS(c, "FAULT_ERROR_RATE", "often", "FAULT_ERROR_RATE=often is not a number");
	SET_FAILS(c, "FAULT_KILL_POINTS", "after_commit,mid_air", "unknown crash point \"mid_air\"",
	          "after_effect");
	SET_FAILS(c, "ACTIVITY_MODE", "careless", "ACTIVITY_MODE=careless is not one of",
	          "guarded|naive");
	SET_FAILS(c, "FAULT_SEED", "-4", "FAULT_SEED=-4 is not a number");
	SET_FAILS(c, "FAULT_SEED", "99999999999999999999", "is out of range");
	SET_FAILS(c, "FAULT_ACTIVITIES", "update/inventory", "'/'");
	SET_FAILS(c, "FAULT_KILL_RATE_AFTER_COMMIT", "2", "out of range");

	SET_OK(c, "FAULT_SEED", "18446744073709551615");
	assert_true(c->fault_seed_set);
	assert_true(c->fault_seed == UINT64_MAX);
	SET_OK(c, "FAULT_SEED", "");
	assert_false(c->fault_seed_set);
	SET_OK(c, "ACTIVITY_MODE", "naive");
	assert_int_equal(c->naive, 1);
	SET_OK(c, "FAULT_ACTIVITIES", " update_inventory , supplier_order ");
	assert_string_equal(c->fault_activities, "update_inventory,supplier_order");
}

/* FAULT_KILL_RATE is shared evenly among the listed points that have no
 * rate of their own; the total may not pass 1. */
static void test_kill_rate_spread(void **state)
{
	struct idem_config *c = &((struct fixture *)*state)->c;
	struct fixture *f = *state;
	char *argv[] = {"idem",
	                "--env=/dev/null",
	                "--fault-kill-rate=0.4",
	                "--fault-kill-points=after_commit,mid_reply,before_effect",
	                "--fault-kill-rate-after-commit=0.5",
	                NULL};
	char *bad[] = {"idem", "--env=/dev/null", "--fault-kill-rate=0.8",
	               "--fault-kill-rate-mid-reply=0.5", NULL};
	int rest[8], nrest;

	assert_int_equal(config_load(c, 5, argv, rest, &nrest, f->err, sizeof(f->err)), 0);
	assert_true(config_kill_rate(c, 0) == 0.2); /* before_effect: half of 0.4 */
	assert_true(config_kill_rate(c, 1) == 0.0); /* after_effect: not listed */
	assert_true(config_kill_rate(c, 2) == 0.5); /* its own rate */
	assert_true(config_kill_rate(c, 3) == 0.2); /* mid_reply: half of 0.4 */
	assert_int_equal(config_load(c, 4, bad, rest, &nrest, f->err, sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, "kill rates add up to 1.300"));
}

/* LOG_FORMAT: logfmt or json, named in the message when bad; a flag too. */
/* What a reload (SIGHUP) compares and copies, for each kind of key: text,
 * a number, a rate, an app's key, and FAULT_SEED with whether it is set. */
static void test_same_and_copy(void **state)
{
	struct fixture *f = *state;
	struct idem_config *a = &f->c, *b = malloc(sizeof(*b));
	static const char *const keys[][2] = {
	    {"SOCKET", "elsewhere.sock"},     {"WORKERS", "7"},
	    {"FAULT_ERROR_RATE", "0.25"},     {"FAULT_KILL_RATE_AFTER_COMMIT", "0.1"},
	    {"FAULT_ACTIVITIES", "reserve"},  {"REORDER_THRESHOLD", "9"},
	    {"RETRY_INITIAL_INTERVAL", "7s"}, {"LOG_LEVEL", "debug"},
	};

	*b = *a;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		assert_true(config_same(a, b, keys[i][0]));
		SET_OK(b, keys[i][0], keys[i][1]);
		if (config_same(a, b, keys[i][0]))
			fail_msg("%s=%s reads as unchanged", keys[i][0], keys[i][1]);
		config_copy(a, b, keys[i][0]);
		if (!config_same(a, b, keys[i][0]))
			fail_msg("%s is not the same after config_copy", keys[i][0]);
	}
	assert_string_equal(a->socket, "elsewhere.sock");
	assert_int_equal(a->workers, 7);
	assert_int_equal(config_int(a, "REORDER_THRESHOLD"), 9);
	/* Text: what follows a shorter value's NUL does not count. */
	SET_OK(a, "SOCKET", "a-much-longer-socket-name.sock");
	SET_OK(a, "SOCKET", "x.sock");
	SET_OK(b, "SOCKET", "x.sock");
	assert_true(config_same(a, b, "SOCKET"));
	/* FAULT_SEED=0 set is not the seed left unset. */
	SET_OK(b, "FAULT_SEED", "0");
	assert_false(config_same(a, b, "FAULT_SEED"));
	config_copy(a, b, "FAULT_SEED");
	assert_true(a->fault_seed_set);
	assert_true(config_same(a, b, "FAULT_SEED"));
	free(b);
}

static void test_log_format(void **state)
{
	struct fixture *f = *state;
	struct idem_config *c = &f->c;
	char *argv[] = {"idem", "--env=/dev/null", "--log-format=json", NULL};
	int rest[4], nrest;

	assert_int_equal(c->log_format, LOG_FORMAT_LOGFMT);
	assert_string_equal(set_err(c, "LOG_FORMAT", "yaml"),
	                    "config: LOG_FORMAT=yaml is not one of logfmt|json");
	SET_FAILS(c, "LOG_FORMAT", "", "LOG_FORMAT=\"\" is not one of logfmt|json");
	SET_OK(c, "LOG_FORMAT", "json");
	assert_int_equal(c->log_format, LOG_FORMAT_JSON);
	SET_OK(c, "LOG_FORMAT", "LOGFMT");
	assert_int_equal(c->log_format, LOG_FORMAT_LOGFMT);
	assert_int_equal(config_load(c, 3, argv, rest, &nrest, f->err, sizeof(f->err)), 0);
	assert_int_equal(c->log_format, LOG_FORMAT_JSON);
	assert_string_equal(config_log_format_name(c->log_format), "json");
	assert_string_equal(config_log_format_name(LOG_FORMAT_LOGFMT), "logfmt");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fault_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_kill_rate_spread, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_key_table, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_integers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bytes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_parse_duration, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_duration_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_backoff, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_log_level, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_names_and_paths, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_long_paths, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_http_listen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_seed_stock, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_seed_stock_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_transfer_accounts_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_parsing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_parsing_quoted_namespace, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_missing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_env, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flag_forms, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flag_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_later_flag_wins, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_env_flag, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rest, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_load_flag_error, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_retry_maximum_below_initial, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_env_dist, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_log_format, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_same_and_copy, setup, teardown),
	};

	char err[256];

	/* The apps' keys, as every program adds them. */
	if (apps_add_config_keys(err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
