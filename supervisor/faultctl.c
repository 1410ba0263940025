/* faultctl.c — see faultctl.h. */
#include "faultctl.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "store.h"
#include "sup.h"
#include "timer.h"
#include "xalloc.h"

/* The longest a runtime plan may be set for. */
#define FAULTCTL_FOR_MAX (30LL * 24 * 3600 * 1000)
/* How far behind its recorded end a plan's end waits for the wall clock:
 * enough for rounding and NTP's slew, too little for a step to matter. */
#define WALL_SLACK_MS 1000

enum source { SOURCE_CONFIG, SOURCE_SET, SOURCE_OFF };

static const char *const source_names[] = {"config", "set", "off"};

struct faultctl {
	struct sup *sup;
	struct fault_config config; /* the config's plan */
	enum source source;         /* of sup->faults */
	int64_t since;              /* wall ms it took effect */
	int64_t until;              /* wall ms it ends, as recorded; 0: no end */
	int64_t until_mono_us;      /* the same on the monotonic clock (µs), which ends it */
	int64_t changes;
	struct event *expire;
};

static uint64_t random_seed(void)
{
	uint64_t seed = 0;

	if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		seed = (uint64_t)clock_wall_ms() ^ ((uint64_t)getpid() << 32);
	return seed;
}

/* The planner's view of c's FAULT_* keys. A delayed attempt sleeps well
 * past START_TO_CLOSE_TIMEOUT, so only the timeout ends it. */
static void plan_of(const struct idem_config *c, uint64_t seed, struct fault_config *f)
{
	memset(f, 0, sizeof(*f));
	f->seed = seed;
	for (int i = 0; i < FAULT_NPOINTS; i++)
		f->kill_rate[i] = config_kill_rate(c, i);
	f->async_kill_rate = c->fault_async_kill_rate;
	f->async_kill_max_ms = c->fault_async_kill_max_ms;
	f->error_rate = c->fault_error_rate;
	f->delay_rate = c->fault_delay_rate;
	f->delay_ms = 2 * c->start_to_close_ms + 1000;
	f->peer_rate = c->fault_peer_rate;
	f->max_attempt = c->fault_max_attempt;
	snprintf(f->activities, sizeof(f->activities), "%s", c->fault_activities);
}

json_t *faultctl_rates_json(const struct fault_config *f)
{
	json_t *points = json_object();
	char seed[24];

	for (int p = 0; p < FAULT_NPOINTS; p++)
		json_object_set_new(points, fault_point_name((enum fault_point)p),
		                    json_real(f->kill_rate[p]));
	/* As text: a 64-bit seed is past what a JavaScript number holds. */
	snprintf(seed, sizeof(seed), "%" PRIu64, f->seed);
	return json_pack("{s:s, s:o, s:f, s:I, s:f, s:f, s:f, s:i, s:s}", "seed", seed,
	                 "kill_rate_by_point", points, "async_kill_rate", f->async_kill_rate,
	                 "async_kill_max_ms", (json_int_t)f->async_kill_max_ms, "error_rate",
	                 f->error_rate, "delay_rate", f->delay_rate, "peer_rate", f->peer_rate,
	                 "max_attempt", f->max_attempt, "activities",
	                 f->activities[0] ? f->activities : "all");
}

static double kill_total(const struct fault_config *p)
{
	double sum = 0;

	for (int i = 0; i < FAULT_NPOINTS; i++)
		sum += p->kill_rate[i];
	return sum;
}

/* Puts plan in force: recorded, logged, counted. */
static int take(struct faultctl *f, const char *action, enum source source,
                const struct fault_config *plan, int64_t for_ms, char *err, size_t errlen)
{
	struct sup *sup = f->sup;
	int64_t now = clock_wall_ms(), until = for_ms > 0 ? now + for_ms : 0, id = 0;
	int64_t mono_us = clock_mono_us();
	json_t *doc = faultctl_rates_json(plan);
	char *text = json_dumps(doc, JSON_COMPACT);

	json_decref(doc);
	if (store_fault_plan(sup->store, now, action, text, until, &id, err, errlen) != 0) {
		free(text);
		return -1;
	}
	free(text);
	sup->faults = *plan;
	sup->fault_plan_id = id;
	f->source = source;
	f->since = now;
	f->until = until;
	f->until_mono_us = for_ms > 0 ? mono_us + for_ms * 1000 : 0;
	if (strcmp(action, "start") != 0)
		f->changes++;
	if (f->expire != NULL) {
		evtimer_del(f->expire);
		if (for_ms > 0)
			timer_in(f->expire, for_ms);
	}
	log_info(strcmp(action, "start") == 0 ? "fault plan" : "fault plan changed",
	         "action=%s plan=%" PRId64 " for_ms=%" PRId64
	         " kill=%.3f async_kill=%.3f error=%.3f delay=%.3f peer=%.3f activities=%s "
	         "max_attempt=%d seed=%" PRIu64,
	         action, id, for_ms, kill_total(plan), plan->async_kill_rate, plan->error_rate,
	         plan->delay_rate, plan->peer_rate, plan->activities[0] ? plan->activities : "all",
	         plan->max_attempt, plan->seed);
	return 0;
}

/* The time of a runtime plan is up: the config's plan again. */
static void expire_cb(evutil_socket_t fd, short what, void *arg)
{
	struct faultctl *f = arg;
	char err[512];

	(void)fd;
	(void)what;
	/* The loop's timers start from the time cached at its turn's start,
	 * a little before the plan's: never end it before its time. The
	 * monotonic clock ends it (in µs, as the wall ms recorded were cut
	 * short), so a step of the wall clock changes no plan's end; the
	 * recorded end is still awaited when the wall clock is only a little
	 * behind (slewed by NTP), so the row never says it ended early. */
	int64_t left_us = f->until_mono_us - clock_mono_us();
	int64_t behind_ms = f->until - clock_wall_ms();

	if (left_us > 0 || (behind_ms > 0 && behind_ms <= WALL_SLACK_MS)) {
		int64_t ms = left_us > 0 ? (left_us + 999) / 1000 : behind_ms;

		timer_in(f->expire, ms);
		return;
	}
	if (take(f, "expired", SOURCE_CONFIG, &f->config, 0, err, sizeof(err)) != 0)
		log_error("cannot record the end of a runtime fault plan", "error=\"%s\"", err);
}

struct faultctl *faultctl_new(struct sup *sup)
{
	struct faultctl *f = xcalloc(1, sizeof(*f));
	const struct idem_config *c = &sup->cfg;

	f->sup = sup;
	plan_of(c, c->fault_seed_set ? c->fault_seed : random_seed(), &f->config);
	sup->faults = f->config;
	f->source = SOURCE_CONFIG;
	f->since = clock_wall_ms();
	if (sup->base != NULL)
		f->expire = evtimer_new(sup->base, expire_cb, f);
	return f;
}

void faultctl_free(struct faultctl *f)
{
	if (f == NULL)
		return;
	if (f->expire != NULL)
		event_free(f->expire);
	free(f);
}

int faultctl_start(struct faultctl *f, char *err, size_t errlen)
{
	return take(f, "start", SOURCE_CONFIG, &f->config, 0, err, errlen);
}

/* Whether a and b plan the same faults. */
static int same_plan(const struct fault_config *a, const struct fault_config *b)
{
	for (int i = 0; i < FAULT_NPOINTS; i++)
		if (a->kill_rate[i] != b->kill_rate[i])
			return 0;
	return a->seed == b->seed && a->async_kill_rate == b->async_kill_rate &&
	       a->async_kill_max_ms == b->async_kill_max_ms && a->error_rate == b->error_rate &&
	       a->delay_rate == b->delay_rate && a->delay_ms == b->delay_ms &&
	       a->peer_rate == b->peer_rate && a->max_attempt == b->max_attempt &&
	       strcmp(a->activities, b->activities) == 0;
}

int faultctl_reload(struct faultctl *f, const struct idem_config *cfg, char *err, size_t errlen)
{
	struct fault_config was = f->config;

	plan_of(cfg, f->config.seed, &f->config);
	/* A runtime plan holds; the new config's comes after it. Nothing to
	 * record when the config's plan is what it was. */
	if (f->source != SOURCE_CONFIG || same_plan(&was, &f->config))
		return 0;
	return take(f, "reload", SOURCE_CONFIG, &f->config, 0, err, errlen);
}

int faultctl_live_key(const char *key)
{
	return strncmp(key, "FAULT_", 6) == 0 && strcmp(key, "FAULT_SEED") != 0 &&
	       strcmp(key, "FAULT_VFS") != 0;
}

/* The FAULT_* key a body member names ("kill_rate": FAULT_KILL_RATE), if
 * it is one that may change at runtime. */
static int member_key(const char *member, char *key, size_t len)
{
	size_t n;
	const struct config_key *keys = config_keys(&n);

	if (strlen(member) + 7 > len)
		return -1;
	snprintf(key, len, "FAULT_%s", member);
	for (char *p = key + 6; *p != '\0'; p++) {
		if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '_')
			return -1;
		*p = (char)toupper((unsigned char)*p);
	}
	for (size_t i = 0; i < n; i++)
		if (strcmp(keys[i].name, key) == 0)
			return faultctl_live_key(key) ? 0 : -1;
	return -1;
}

/* "kill_rate, kill_points, ...": the members a change may name. */
static void members_text(char *buf, size_t len)
{
	size_t n, used = 0;
	const struct config_key *keys = config_keys(&n);

	buf[0] = '\0';
	for (size_t i = 0; i < n && used < len; i++) {
		char lower[64];
		size_t j;

		if (!faultctl_live_key(keys[i].name))
			continue;
		for (j = 0; keys[i].name[6 + j] != '\0' && j + 1 < sizeof(lower); j++)
			lower[j] = (char)tolower((unsigned char)keys[i].name[6 + j]);
		lower[j] = '\0';
		used += (size_t)snprintf(buf + used, len - used, "%s, ", lower);
	}
	if (used < len)
		snprintf(buf + used, len - used, "for, off, reset");
}

/* A member's value as the text its key takes. */
static int member_text(const json_t *v, char *buf, size_t len)
{
	if (json_is_string(v))
		snprintf(buf, len, "%s", json_string_value(v));
	else if (json_is_integer(v))
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_real(v))
		snprintf(buf, len, "%.17g", json_real_value(v));
	else
		return -1;
	return 0;
}

/* Copies a config message into err without its "config: ". */
static int unprefixed(const char *why, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s", strncmp(why, "config: ", 8) == 0 ? why + 8 : why);
	return -1;
}

/* Reads body into *c (the config's keys, changed), *for_ms, *off and
 * *reset. Returns 0, or -1 with err. */
static int parse_change(const json_t *body, uint64_t seed, struct idem_config *c, int64_t *for_ms,
                        int *off, int *reset, char *err, size_t errlen)
{
	const char *member;
	const json_t *v;
	int rates = 0;
	char members[768], why[512];

	if (!json_is_object(body) || json_object_size(body) == 0) {
		snprintf(
		    err, errlen,
		    "the body must be a JSON object that says what to change, such as "
		    "{\"kill_rate\": 0.2, \"for\": \"5m\"}, {\"off\": true} or {\"reset\": true}");
		return -1;
	}
	json_object_foreach((json_t *)body, member, v)
	{
		char key[80], text[300];

		if (strcmp(member, "for") == 0) {
			if (!json_is_string(v) ||
			    config_parse_duration(json_string_value(v), for_ms) != 0 ||
			    *for_ms < 1 || *for_ms > FAULTCTL_FOR_MAX) {
				snprintf(err, errlen,
				         "\"for\" must be a duration as text, from \"1ms\" to "
				         "\"30d\" (such "
				         "as \"90s\" or \"5m\")");
				return -1;
			}
		} else if (strcmp(member, "off") == 0 || strcmp(member, "reset") == 0) {
			if (!json_is_true(v)) {
				snprintf(err, errlen, "\"%s\" takes true only", member);
				return -1;
			}
			*(member[0] == 'o' ? off : reset) = 1;
		} else if (strcmp(member, "seed") == 0) {
			snprintf(
			    err, errlen,
			    "the fault seed is the run's (%" PRIu64
			    "): a plan stays replayable only with one seed; restart with --seed N "
			    "to change it",
			    seed);
			return -1;
		} else if (strcmp(member, "vfs") == 0) {
			snprintf(
			    err, errlen,
			    "storage faults (FAULT_VFS) are set up when the databases open: change "
			    "FAULT_VFS and restart");
			return -1;
		} else if (member_key(member, key, sizeof(key)) != 0) {
			members_text(members, sizeof(members));
			snprintf(err, errlen, "unknown member \"%.60s\" (allowed: %s)", member,
			         members);
			return -1;
		} else if (member_text(v, text, sizeof(text)) != 0) {
			snprintf(err, errlen, "\"%s\" must be a number or text, as %s takes",
			         member, key);
			return -1;
		} else if (config_set(c, key, text, why, sizeof(why)) != 0) {
			return unprefixed(why, err, errlen);
		} else {
			rates++;
		}
	}
	if (*reset && (rates > 0 || *off || *for_ms > 0)) {
		snprintf(err, errlen,
		         "\"reset\" goes alone: it puts the config's plan back for good");
		return -1;
	}
	if (*off && rates > 0) {
		snprintf(err, errlen, "\"off\" sets every rate to 0: give it no rate");
		return -1;
	}
	if (!*reset && !*off && rates == 0) {
		snprintf(err, errlen,
		         "say which rates to change (such as \"kill_rate\"), or \"off\" or "
		         "\"reset\"");
		return -1;
	}
	if (config_check(c, why, sizeof(why)) != 0)
		return unprefixed(why, err, errlen);
	return 0;
}

int faultctl_apply(struct faultctl *f, const json_t *body, char *err, size_t errlen)
{
	struct idem_config *c = xmalloc(sizeof(*c));
	struct fault_config plan;
	int64_t for_ms = 0;
	int off = 0, reset = 0, rc;

	*c = f->sup->cfg;
	if (parse_change(body, f->config.seed, c, &for_ms, &off, &reset, err, errlen) != 0) {
		free(c);
		return -1;
	}
	if (reset) {
		rc = take(f, "reset", SOURCE_CONFIG, &f->config, 0, err, errlen);
	} else if (off) {
		plan = f->config;
		for (int i = 0; i < FAULT_NPOINTS; i++)
			plan.kill_rate[i] = 0;
		plan.async_kill_rate = plan.error_rate = plan.delay_rate = plan.peer_rate = 0;
		rc = take(f, "off", SOURCE_OFF, &plan, for_ms, err, errlen);
	} else {
		plan_of(c, f->config.seed, &plan);
		rc = take(f, "set", SOURCE_SET, &plan, for_ms, err, errlen);
	}
	free(c);
	return rc == 0 ? 0 : -2;
}

/* A rate as the shortest fixed-point text (the config takes no exponent)
 * that reads back as the same double. */
static const char *rate_text(double v, char *buf, size_t len)
{
	size_t n;

	for (int digits = 1; digits <= 40; digits++) {
		snprintf(buf, len, "%.*f", digits, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	n = strlen(buf);
	if (n > 2 && strcmp(buf + n - 2, ".0") == 0)
		buf[n - 2] = '\0';
	return buf;
}

/* Appends a line, made as printf makes it, to lines. */
static void add_line(json_t *lines, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	json_array_append_new(lines, json_string(line));
}

/* The plan as the .env lines that make it the config's, so that a runtime
 * plan can be kept past a restart (idemctl faults env). Each point's kill
 * rate is given on its own, which wins over FAULT_KILL_RATE and
 * FAULT_KILL_POINTS whatever else the file says. */
static json_t *env_lines(const struct fault_config *f)
{
	json_t *lines = json_array();
	char member[64], key[64], r[64];

	/* The seed is the run's, not the plan's: kept only if asked. */
	add_line(lines,
	         "# FAULT_SEED=%" PRIu64 " (this run's; uncomment to plan the very same faults)",
	         f->seed);
	for (int p = 0; p < FAULT_NPOINTS; p++) {
		snprintf(member, sizeof(member), "kill_rate_%s",
		         fault_point_name((enum fault_point)p));
		if (member_key(member, key, sizeof(key)) == 0)
			add_line(lines, "%s=%s", key, rate_text(f->kill_rate[p], r, sizeof(r)));
	}
	add_line(lines, "FAULT_ASYNC_KILL_RATE=%s", rate_text(f->async_kill_rate, r, sizeof(r)));
	add_line(lines, "FAULT_ASYNC_KILL_MAX_DELAY=%" PRId64 "ms", (int64_t)f->async_kill_max_ms);
	add_line(lines, "FAULT_ERROR_RATE=%s", rate_text(f->error_rate, r, sizeof(r)));
	add_line(lines, "FAULT_DELAY_RATE=%s", rate_text(f->delay_rate, r, sizeof(r)));
	add_line(lines, "FAULT_PEER_RATE=%s", rate_text(f->peer_rate, r, sizeof(r)));
	add_line(lines, "FAULT_ACTIVITIES=\"%s\"", f->activities);
	add_line(lines, "FAULT_MAX_ATTEMPT=%d", f->max_attempt);
	return lines;
}

json_t *faultctl_json(const struct faultctl *f)
{
	int64_t now = clock_mono_us();

	return json_pack(
	    "{s:s, s:I, s:I, s:o, s:o, s:b, s:o, s:o, s:I, s:o}", "source", source_names[f->source],
	    "plan_id", (json_int_t)f->sup->fault_plan_id, "since", (json_int_t)f->since, "until",
	    f->until > 0 ? json_integer(f->until) : json_null(), "remaining_ms",
	    f->until > 0
	        ? json_integer(f->until_mono_us > now ? (f->until_mono_us - now) / 1000 : 0)
	        : json_null(),
	    "enabled", fault_enabled(&f->sup->faults), "in_force",
	    faultctl_rates_json(&f->sup->faults), "config", faultctl_rates_json(&f->config),
	    "changes", (json_int_t)f->changes, "env", env_lines(&f->sup->faults));
}

const char *faultctl_source(const struct faultctl *f)
{
	return source_names[f->source];
}

int64_t faultctl_changes(const struct faultctl *f)
{
	return f != NULL ? f->changes : 0;
}
