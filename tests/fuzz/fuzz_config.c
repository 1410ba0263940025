/* fuzz_config.c — the configuration loader (shared/config.c).
 *
 * Input: the text of a .env file.
 *  1. config_load(argv = idem --env FILE) loads it as a program does:
 *     defaults, the file (the real fopen + getline path with its BOM,
 *     "export ", quotes, comments, line numbers and unknown-key
 *     suggestions), the environment, then the rules between keys. FILE
 *     is a memfd rewritten for each input, opened as /proc/self/fd/N.
 *  2. Each of the first 16 lines with a '=' is split at its first '=';
 *     when KEY is a known key, KEY=VALUE goes to config_set and, on two
 *     other configs, to config_flag as "--key=VALUE" and "--key VALUE".
 *     The first 4 values also go to one more key of the table (chosen by
 *     the first byte and the line), so that every setter meets every kind
 *     of value; each value is parsed by config_parse_duration too.
 *
 * Properties checked: a refusal fills err with "config: "; a config that
 * loaded keeps every value in its documented range and obeys the rules
 * between keys; config_set and config_flag agree on every line and leave
 * identical configs. */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "appdb.h"
#include "config.h"
#include "fuzz.h"
#include "inventory.h"

#define ERRLEN 1024
#define MAX_LINES 16  /* lines of one input given to the setters */
#define MAX_CROSSED 4 /* of which also set on another key */
#define MAX_TEXT 4096 /* longest key or value given to them */

/* Kept between inputs: an idem_config is 80 KiB (its SEED_STOCK table),
 * too big to allocate for every input at speed. */
static struct idem_config defaults, loaded;
static int env_fd = -1;
static char env_path[64];

/* Once per process: the defaults, and the memfd the .env text goes to. */
static void setup(void)
{
	if (env_fd >= 0)
		return;
	FUZZ_CHECK(config_add_keys(inventory_keys, env_path, sizeof(env_path)) == 0, "app keys: %s",
	           env_path);
	config_defaults(&defaults);
	env_fd = memfd_create("idem-fuzz-env", MFD_CLOEXEC);
	FUZZ_CHECK(env_fd >= 0, "memfd_create failed");
	snprintf(env_path, sizeof(env_path), "/proc/self/fd/%d", env_fd);
}

static int terminated(const char *s, size_t size)
{
	return memchr(s, '\0', size) != NULL;
}

#define IN_RANGE(v, lo, hi) ((v) >= (lo) && (v) <= (hi))
#define TERMINATED(c, f) terminated((c)->f, sizeof((c)->f))

static int rates_ok(const struct idem_config *c)
{
	for (int i = 0; i < CONFIG_FAULT_POINTS; i++)
		if (c->fault_kill_point_rate[i] != -1 &&
		    !IN_RANGE(c->fault_kill_point_rate[i], 0, 1))
			return 0;
	return IN_RANGE(c->fault_kill_rate, 0, 1) && IN_RANGE(c->fault_async_kill_rate, 0, 1) &&
	       IN_RANGE(c->fault_error_rate, 0, 1) && IN_RANGE(c->fault_delay_rate, 0, 1) &&
	       IN_RANGE(c->fault_peer_rate, 0, 1) && c->fault_kill_points < 16;
}

/* SEED_STOCK as the app reads it: a list it parses, each product named
 * and its stock in range. */
static int seeds_ok(const struct idem_config *c)
{
	static struct name_value seed[INVENTORY_STOCK_ENTRIES_MAX];
	char msg[512];
	size_t n;

	if (inventory_stock_parse(config_text(c, "SEED_STOCK"), seed, &n, msg, sizeof(msg)) != 0 ||
	    n > INVENTORY_STOCK_ENTRIES_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (seed[i].name[0] == '\0' || !IN_RANGE(seed[i].value, 0, INT64_C(1000000000000)))
			return 0;
	return 1;
}

/* Every value is one the documentation allows. */
static void check_ranges(const struct idem_config *c)
{
	const int64_t hour = 3600000, day = 24 * hour;

	FUZZ_CHECK(TERMINATED(c, socket) && strlen(c->socket) <= 107 && c->socket[0], "SOCKET");
	FUZZ_CHECK(TERMINATED(c, namespace_) && c->namespace_[0], "NAMESPACE");
	FUZZ_CHECK(TERMINATED(c, taskqueue) && c->taskqueue[0], "TASKQUEUE");
	FUZZ_CHECK(TERMINATED(c, database) && TERMINATED(c, state_database) &&
	               TERMINATED(c, http_listen),
	           "paths");
	FUZZ_CHECK(config_text(c, "SUPPLIER_DATABASE")[0] != '\0' &&
	               strlen(config_text(c, "SUPPLIER_SOCKET")) <= 107,
	           "the app's paths");
	FUZZ_CHECK(IN_RANGE(c->workers, 1, 256), "WORKERS=%d", c->workers);
	FUZZ_CHECK(IN_RANGE(config_int(c, "REORDER_THRESHOLD"), 0, 1000000000),
	           "REORDER_THRESHOLD");
	FUZZ_CHECK(IN_RANGE(config_int(c, "REORDER_QUANTITY"), 1, 1000000000), "REORDER_QUANTITY");
	FUZZ_CHECK(seeds_ok(c), "SEED_STOCK");
	FUZZ_CHECK(IN_RANGE((int)c->log_level, LOG_DEBUG, LOG_ERROR), "LOG_LEVEL");
	FUZZ_CHECK(IN_RANGE(c->max_frame, 64, (size_t)64 << 20), "MAX_FRAME=%zu", c->max_frame);
	FUZZ_CHECK(IN_RANGE(c->max_body, 1024, (size_t)64 << 20), "MAX_BODY=%zu", c->max_body);
	FUZZ_CHECK(IN_RANGE(c->api_request_timeout_ms, 1000, hour), "API_REQUEST_TIMEOUT");
	FUZZ_CHECK(IN_RANGE(c->spare_worker, 0, 1), "SPARE_WORKER");
	FUZZ_CHECK(IN_RANGE(c->shutdown_grace_ms, 0, hour), "SHUTDOWN_GRACE");
	FUZZ_CHECK(IN_RANGE(c->retry_initial_ms, 1, hour), "RETRY_INITIAL_INTERVAL");
	FUZZ_CHECK(IN_RANGE(c->retry_backoff, 1, 100), "RETRY_BACKOFF_COEFFICIENT");
	FUZZ_CHECK(IN_RANGE(c->retry_maximum_ms, 0, day), "RETRY_MAXIMUM_INTERVAL");
	FUZZ_CHECK(IN_RANGE(c->retry_maximum_attempts, 0, 1000000), "RETRY_MAXIMUM_ATTEMPTS");
	FUZZ_CHECK(IN_RANGE(c->start_to_close_ms, 1, day), "START_TO_CLOSE_TIMEOUT");
	FUZZ_CHECK(IN_RANGE(c->schedule_to_close_ms, 0, day), "SCHEDULE_TO_CLOSE_TIMEOUT");
	FUZZ_CHECK(IN_RANGE(c->heartbeat_timeout_ms, 0, day), "HEARTBEAT_TIMEOUT");
	FUZZ_CHECK(IN_RANGE(c->fault_async_kill_max_ms, 0, hour), "FAULT_ASYNC_KILL_MAX_DELAY");
	FUZZ_CHECK(IN_RANGE(c->fault_max_attempt, 0, 1000000), "FAULT_MAX_ATTEMPT");
	FUZZ_CHECK(rates_ok(c), "fault rates");
	FUZZ_CHECK(TERMINATED(c, retry_non_retryable) && TERMINATED(c, fault_activities), "lists");
	FUZZ_CHECK(c->naive == 0 || c->naive == 1, "ACTIVITY_MODE");
}

static void check_err(int rc, const char *err)
{
	if (rc >= 0)
		return;
	FUZZ_CHECK(terminated(err, ERRLEN), "err is not terminated");
	FUZZ_CHECK(strncmp(err, "config: ", 8) == 0, "error without prefix: %s", err);
}

/* The rules between keys that config_load enforces. */
static void check_rules(const struct idem_config *c)
{
	double sum = 0;

	for (int i = 0; i < CONFIG_FAULT_POINTS; i++)
		sum += config_kill_rate(c, i);
	FUZZ_CHECK(sum <= 1.0 + 1e-9, "the kill rates add up to %f", sum);
	FUZZ_CHECK(c->retry_maximum_ms == 0 || c->retry_maximum_ms >= c->retry_initial_ms,
	           "RETRY_MAXIMUM_INTERVAL < RETRY_INITIAL_INTERVAL");
}

/* The whole input as the .env file of a program's config_load. */
static void load_file(const uint8_t *data, size_t size)
{
	char *argv[] = {"idem", "--env", env_path, NULL};
	int rest[3], nrest = -1;
	char err[ERRLEN];
	int rc;

	FUZZ_CHECK(ftruncate(env_fd, 0) == 0, "ftruncate failed");
	FUZZ_CHECK(size == 0 || pwrite(env_fd, data, size, 0) == (ssize_t)size, "pwrite failed");
	rc = config_load(&loaded, 3, argv, rest, &nrest, err, sizeof(err));
	check_err(rc, err);
	check_ranges(&loaded);
	if (rc == 0) {
		check_rules(&loaded);
		FUZZ_CHECK(nrest == 0, "config_load left %d arguments", nrest);
	}
}

static int known_key(const char *key)
{
	size_t n = 0;
	const struct config_key *keys = config_keys(&n);

	for (size_t i = 0; i < n; i++)
		if (strcmp(keys[i].name, key) == 0)
			return 1;
	return 0;
}

/* The configs every line is applied to: by config_set, and by
 * config_flag in its two spellings. */
struct configs {
	struct idem_config set, flag_eq, flag_sep;
};

static struct configs configs;

/* KEY=VALUE as the flags --key=VALUE and --key VALUE; they must do what
 * config_set did (set_rc). */
static void apply_flags(struct configs *cs, const char *key, const char *value, int set_rc)
{
	char name[MAX_TEXT + 3], eq[2 * MAX_TEXT + 4], err[ERRLEN] = "";
	char *argv[3] = {"idem", NULL, NULL};
	size_t i;
	int at, rc;

	name[0] = name[1] = '-';
	for (i = 0; key[i]; i++)
		name[i + 2] = key[i] == '_' ? '-' : (char)(key[i] | 0x20);
	name[i + 2] = '\0';
	snprintf(eq, sizeof(eq), "%s=%s", name, value);
	argv[1] = eq;
	at = 1;
	rc = config_flag(&cs->flag_eq, 2, argv, &at, err, sizeof(err));
	check_err(rc, err);
	FUZZ_CHECK(rc == (set_rc == 0 ? 1 : -1), "%s: flag %d, config_set %d", eq, rc, set_rc);
	FUZZ_CHECK(rc != 1 || at == 2, "--key=VALUE used %d args", at - 1);
	argv[1] = name;
	argv[2] = (char *)value;
	at = 1;
	rc = config_flag(&cs->flag_sep, 3, argv, &at, err, sizeof(err));
	check_err(rc, err);
	if (strncmp(value, "--", 2) == 0) {
		/* "--key --x": the value is missing; keep flag_sep in step. */
		FUZZ_CHECK(rc == -1 && strstr(err, "needs a value") != NULL, "%s %s: %s", name,
		           value, err);
		FUZZ_CHECK(config_set(&cs->flag_sep, key, value, err, sizeof(err)) == set_rc,
		           "config_set is not repeatable");
		return;
	}
	FUZZ_CHECK(rc == (set_rc == 0 ? 1 : -1), "%s %s: flag %d, config_set %d", name, value, rc,
	           set_rc);
	FUZZ_CHECK(rc != 1 || at == 3, "--key VALUE used %d args", at - 1);
}

/* One KEY=VALUE line, key and value already cut and terminated; the
 * first lines' values are also set on key number `other` of the table, so
 * that every setter meets every kind of value. */
static void apply_line(struct configs *cs, const char *key, const char *value, long other)
{
	char err[ERRLEN];
	size_t n = 0;
	const struct config_key *keys = config_keys(&n);
	int64_t ms = -1;
	int rc;

	/* An unknown key is load_file's business: its suggestions cost a
	 * Levenshtein distance to every key, once an input is enough. */
	if (known_key(key)) {
		rc = config_set(&cs->set, key, value, err, sizeof(err));
		check_err(rc, err);
		apply_flags(cs, key, value, rc);
	}
	if (config_parse_duration(value, &ms) == 0)
		FUZZ_CHECK(ms >= 0, "duration %s gave %lld ms", value, (long long)ms);
	if (other < 0)
		return;
	rc = config_set(&cs->set, keys[(size_t)other % n].name, value, err, sizeof(err));
	check_err(rc, err);
	apply_flags(cs, keys[(size_t)other % n].name, value, rc);
}

/* Copies [p, end) into buf (capacity MAX_TEXT + 1), cut at a NUL. */
static void cut(char *buf, const uint8_t *p, const uint8_t *end)
{
	size_t n = (size_t)(end - p) > MAX_TEXT ? MAX_TEXT : (size_t)(end - p);

	memcpy(buf, p, n);
	buf[n] = '\0';
}

static void set_lines(const uint8_t *data, size_t size)
{
	struct configs *cs = &configs;
	const uint8_t *p = data, *end = data + size, *nl, *eq;
	char key[MAX_TEXT + 1], value[MAX_TEXT + 1];
	long other = data[0];

	cs->set = cs->flag_eq = cs->flag_sep = defaults;
	for (int i = 0; p < end && i < MAX_LINES; i++, p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		nl = nl ? nl : end;
		eq = memchr(p, '=', (size_t)(nl - p));
		if (eq == NULL)
			continue;
		cut(key, p, eq);
		cut(value, eq + 1, nl);
		apply_line(cs, key, value, i < MAX_CROSSED ? other + i : -1);
	}
	check_ranges(&cs->set);
	FUZZ_CHECK(memcmp(&cs->set, &cs->flag_eq, sizeof(cs->set)) == 0 &&
	               memcmp(&cs->set, &cs->flag_sep, sizeof(cs->set)) == 0,
	           "config_set and config_flag left different configs");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	load_file(data, size);
	if (size > 0)
		set_lines(data, size);
	return 0;
}
