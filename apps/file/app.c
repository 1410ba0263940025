/* app.c — loads an app defined by a file (file_app.h): reads idem.json,
 * checks every member, and builds the struct idem_app that idem runs.
 * Each message names the file and the JSON path of the mistake. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fault.h"
#include "file_app_internal.h"
#include "ids.h"
#include "xalloc.h"

#define ARGV_MAX 64    /* words of a command */
#define MEMBER_MAX 200 /* activities, workflows, points, kinds, SQL rules */
#define PANELS_MAX 8   /* an app's own panels on the dashboard */

struct file_app *file_app_loaded;

/* One load: the app being built and where messages go. */
struct loader {
	struct file_app *a;
	char *err;
	size_t errlen;
};

/* Every allocation of a load is the app's (a->owned): kept for the
 * process's life when the load succeeds, all freed when it fails. */
static void *own(struct loader *l, void *p)
{
	struct file_app *a = l->a;

	if (a->nowned == a->capowned) {
		a->capowned = a->capowned ? a->capowned * 2 : 64;
		a->owned = xrealloc(a->owned, a->capowned * sizeof(*a->owned));
	}
	a->owned[a->nowned++] = p;
	return p;
}

static void *own_calloc(struct loader *l, size_t n, size_t size)
{
	return own(l, xcalloc(n, size));
}

static char *own_str(struct loader *l, const char *s)
{
	return own(l, xstrdup(s));
}

static void file_app_free(struct file_app *a)
{
	for (int i = 0; i < a->nflows; i++)
		flow_free(a->flows[i]);
	for (size_t i = 0; i < a->nowned; i++)
		free(a->owned[i]);
	free(a->owned);
	free(a);
}

/* "FILE: PATH: MESSAGE"; returns -1. */
static int fail(struct loader *l, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct loader *l, const char *path, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (path[0] == '\0')
		snprintf(l->err, l->errlen, "%s: %s", l->a->file, msg);
	else
		snprintf(l->err, l->errlen, "%s: %s: %s", l->a->file, path, msg);
	return -1;
}

/* Every member of obj is one of known (NULL-ended). */
static int known_members(struct loader *l, const json_t *obj, const char *path,
                         const char *const *known)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)obj, key, v)
	{
		char list[256] = "";
		size_t used = 0;
		const char *const *k;

		for (k = known; *k != NULL && strcmp(*k, key) != 0; k++)
			;
		if (*k != NULL)
			continue;
		for (k = known; *k != NULL && used < sizeof(list); k++)
			used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s",
			                         used ? ", " : "", *k);
		return fail(l, path, "unknown member \"%s\" (known: %s)", key, list);
	}
	return 0;
}

static int want(struct loader *l, const json_t *v, json_type t, const char *path, const char *what)
{
	if (v != NULL && json_typeof(v) == t)
		return 0;
	if (v == NULL)
		return fail(l, path, "missing (give %s)", what);
	return fail(l, path, "is %s; give %s", msg_json_kind(v), what);
}

/* A command: a non-empty array of strings, the first one not empty.
 * Returns a NULL-ended copy, or NULL after fail(). */
static char **argv_of(struct loader *l, const json_t *v, const char *path)
{
	char **argv;
	size_t n = json_array_size(v);

	if (want(l, v, JSON_ARRAY, path,
	         "a command as an array of words, e.g. [\"python3\", \"charge.py\"]") != 0)
		return NULL;
	if (n == 0 || n > ARGV_MAX) {
		fail(l, path, "has %zu words; give 1 to %d, e.g. [\"python3\", \"charge.py\"]", n,
		     ARGV_MAX);
		return NULL;
	}
	argv = own_calloc(l, n + 1, sizeof(*argv));
	for (size_t i = 0; i < n; i++) {
		const json_t *w = json_array_get(v, i);
		char p[512];

		snprintf(p, sizeof(p), "%s[%zu]", path, i);
		if (want(l, w, JSON_STRING, p, "a string") != 0 ||
		    (i == 0 && json_string_length(w) == 0 &&
		     fail(l, p, "is empty; give the program to run") != 0))
			return NULL;
		argv[i] = own_str(l, json_string_value(w));
	}
	return argv;
}

/* An optional {"command": [...]} object. */
static int command_member(struct loader *l, const json_t *obj, const char *key, char ***out)
{
	static const char *const known[] = {"command", NULL};
	const json_t *v = json_object_get(obj, key);
	char path[128];

	*out = NULL;
	if (v == NULL)
		return 0;
	if (want(l, v, JSON_OBJECT, key, "an object: {\"command\": [...]}") != 0 ||
	    known_members(l, v, key, known) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s.command", key);
	*out = argv_of(l, json_object_get(v, "command"), path);
	return *out != NULL ? 0 : -1;
}

/* PATH.MEMBER into buf (cut when too long: it is only a message). */
static void member_path(char *buf, size_t len, const char *path, const char *member)
{
	if (snprintf(buf, len, "%s%s", path, member) >= (int)len)
		buf[len - 1] = '\0';
}

static int duration_of(struct loader *l, const json_t *v, const char *path, int64_t *ms)
{
	if (want(l, v, JSON_STRING, path, "a duration such as \"500ms\", \"10s\" or \"2m\"") != 0)
		return -1;
	if (config_parse_duration(json_string_value(v), ms) != 0 || *ms <= 0 ||
	    *ms > INT64_C(86400000))
		return fail(l, path,
		            "\"%s\" is not a duration of 1ms..24h (e.g. \"500ms\", \"10s\")",
		            json_string_value(v));
	return 0;
}

static int retry_of(struct loader *l, const json_t *v, const char *path, struct retry_policy *out)
{
	static const char *const known[] = {"maximum_attempts", "initial_interval",
	                                    "backoff_coefficient", "maximum_interval", NULL};
	const json_t *m;
	char p[512];

	if (want(l, v, JSON_OBJECT, path, "an object") != 0 || known_members(l, v, path, known))
		return -1;
	if ((m = json_object_get(v, "maximum_attempts")) != NULL) {
		member_path(p, sizeof(p), path, ".maximum_attempts");
		if (want(l, m, JSON_INTEGER, p, "a whole number, 0 for unlimited") != 0)
			return -1;
		if (json_integer_value(m) < 0 || json_integer_value(m) > 1000000)
			return fail(l, p, "%lld is out of range; give 0 (unlimited) to 1000000",
			            (long long)json_integer_value(m));
		out->maximum_attempts = (int)json_integer_value(m);
	}
	if ((m = json_object_get(v, "initial_interval")) != NULL) {
		member_path(p, sizeof(p), path, ".initial_interval");
		if (duration_of(l, m, p, &out->initial_ms) != 0)
			return -1;
	}
	if ((m = json_object_get(v, "maximum_interval")) != NULL) {
		member_path(p, sizeof(p), path, ".maximum_interval");
		if (duration_of(l, m, p, &out->maximum_ms) != 0)
			return -1;
	}
	if ((m = json_object_get(v, "backoff_coefficient")) != NULL) {
		member_path(p, sizeof(p), path, ".backoff_coefficient");
		if (!json_is_number(m) || json_number_value(m) < 1 || json_number_value(m) > 100)
			return fail(l, p, "give a number from 1 to 100");
		out->coefficient = json_number_value(m);
	}
	return 0;
}

/* A NULL-ended list of strings from an array; each passes ok() when
 * given (else: "give WHAT"). */
static char **names_of(struct loader *l, const json_t *v, const char *path, int (*ok)(const char *),
                       const char *what)
{
	size_t n = json_array_size(v);
	char **out;

	if (want(l, v, JSON_ARRAY, path, "an array of strings") != 0)
		return NULL;
	if (n > MEMBER_MAX) {
		fail(l, path, "has %zu entries; at most %d", n, MEMBER_MAX);
		return NULL;
	}
	out = own_calloc(l, n + 1, sizeof(*out));
	for (size_t i = 0; i < n; i++) {
		const json_t *w = json_array_get(v, i);
		char p[512];

		snprintf(p, sizeof(p), "%s[%zu]", path, i);
		if (want(l, w, JSON_STRING, p, what) != 0)
			return NULL;
		if (ok != NULL && !ok(json_string_value(w))) {
			fail(l, p, "\"%s\" is not %s", json_string_value(w), what);
			return NULL;
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(out[j], json_string_value(w)) == 0) {
				fail(l, p, "\"%s\" is listed twice", out[j]);
				return NULL;
			}
		out[i] = own_str(l, json_string_value(w));
	}
	return out;
}

static int point_ok(const char *s)
{
	return fault_point_name_ok(s) && strcmp(s, "mid_reply") != 0;
}

static int error_type_ok(const char *s)
{
	return ids_name_ok(s, 63);
}

static char *comma_list(struct loader *l, char **names)
{
	size_t len = 1;
	char *out;

	for (char **n = names; *n != NULL; n++)
		len += strlen(*n) + 1;
	out = own_calloc(l, 1, len);
	for (char **n = names; *n != NULL; n++) {
		if (n != names)
			strcat(out, ",");
		strcat(out, *n);
	}
	return out;
}

static int bool_of(struct loader *l, const json_t *v, const char *path, int *out)
{
	if (v == NULL)
		return 0;
	if (!json_is_boolean(v))
		return fail(l, path, "is %s; give true or false", msg_json_kind(v));
	*out = json_is_true(v);
	return 0;
}

/* activities.NAME: its command and options. */
static int activity_of(struct loader *l, const char *name, const json_t *v,
                       struct file_activity *fa, struct idem_activity_options *o)
{
	static const char *const known[] = {"command", "naive",         "points",
	                                    "timeout", "heartbeat",     "peer",
	                                    "retry",   "non_retryable", NULL};
	char path[192], p[512];
	const json_t *m;

	snprintf(path, sizeof(path), "activities.%s", name);
	if (!ids_name_ok(name, 64))
		return fail(l, path, "\"%s\" is not an activity name (1..64 of A-Z a-z 0-9 _ . -)",
		            name);
	if (want(l, v, JSON_OBJECT, path, "an object with a \"command\"") != 0 ||
	    known_members(l, v, path, known) != 0)
		return -1;
	fa->name = own_str(l, name);
	o->name = fa->name;
	member_path(p, sizeof(p), path, ".command");
	if ((fa->command = argv_of(l, json_object_get(v, "command"), p)) == NULL)
		return -1;
	member_path(p, sizeof(p), path, ".naive");
	if ((m = json_object_get(v, "naive")) != NULL && (fa->naive = argv_of(l, m, p)) == NULL)
		return -1;
	member_path(p, sizeof(p), path, ".points");
	if ((m = json_object_get(v, "points")) != NULL &&
	    (o->points = (const char *const *)names_of(
	         l, m, p, point_ok, "a crash point name: [a-z0-9_], 1..63 bytes, not mid_reply")) ==
	        NULL)
		return -1;
	if (o->points != NULL && o->points[0] == NULL)
		return fail(l, p, "is empty; list the points the command marks, or leave it out");
	member_path(p, sizeof(p), path, ".timeout");
	if ((m = json_object_get(v, "timeout")) != NULL &&
	    duration_of(l, m, p, &o->start_to_close_ms) != 0)
		return -1;
	member_path(p, sizeof(p), path, ".heartbeat");
	if (bool_of(l, json_object_get(v, "heartbeat"), p, &o->heartbeats) != 0)
		return -1;
	member_path(p, sizeof(p), path, ".peer");
	if (bool_of(l, json_object_get(v, "peer"), p, &o->peer) != 0)
		return -1;
	member_path(p, sizeof(p), path, ".retry");
	if ((m = json_object_get(v, "retry")) != NULL && retry_of(l, m, p, &o->retry) != 0)
		return -1;
	member_path(p, sizeof(p), path, ".non_retryable");
	if ((m = json_object_get(v, "non_retryable")) != NULL) {
		char **types =
		    names_of(l, m, p, error_type_ok, "an error type (A-Z a-z 0-9 _ . -)");

		if (types == NULL)
			return -1;
		o->non_retryable = comma_list(l, types);
	} else {
		o->non_retryable = "";
	}
	return 0;
}

static size_t count_list(const void *list, size_t size, size_t name_offset)
{
	size_t n = 0;

	if (list == NULL)
		return 0;
	while (*(const char *const *)((const char *)list + n * size + name_offset) != NULL)
		n++;
	return n;
}

/* The activities: the base's, then the file's commands. */
static int activities(struct loader *l, const json_t *root)
{
	struct file_app *a = l->a;
	const json_t *acts = json_object_get(root, "activities");
	size_t nbase_o = 0, nbase_a = 0, n, i = 0;
	struct idem_activity_options *opts;
	struct idem_activity *run;
	const char *name;
	json_t *v;

	/* With a base, the file may add none (the foreach below takes NULL). */
	if ((acts != NULL || a->base == NULL) &&
	    want(l, acts, JSON_OBJECT, "activities",
	         "an object: {\"charge\": {\"command\": [\"python3\", \"charge.py\"]}}") != 0)
		return -1;
	n = json_object_size(acts);
	if (n > MEMBER_MAX)
		return fail(l, "activities", "has %zu; at most %d", n, MEMBER_MAX);
	if (n == 0 && a->base == NULL)
		return fail(l, "activities", "is empty; give at least one activity");
	if (a->base != NULL) {
		nbase_o = count_list(a->base->options, sizeof(*opts), 0);
		nbase_a = count_list(a->base->activities, sizeof(*run), 0);
	}
	opts = own_calloc(l, nbase_o + n + 1, sizeof(*opts));
	run = own_calloc(l, nbase_a + n + 1, sizeof(*run));
	a->acts = own_calloc(l, n + 1, sizeof(*a->acts));
	if (nbase_o > 0)
		memcpy(opts, a->base->options, nbase_o * sizeof(*opts));
	if (nbase_a > 0)
		memcpy(run, a->base->activities, nbase_a * sizeof(*run));
	json_object_foreach((json_t *)acts, name, v)
	{
		for (size_t k = 0; k < nbase_a; k++)
			if (strcmp(run[k].name, name) == 0)
				return fail(l, "activities",
				            "\"%s\" is an activity of the base app %s", name,
				            a->base->name);
		if (activity_of(l, name, v, &a->acts[i], &opts[nbase_o + i]) != 0)
			return -1;
		run[nbase_a + i] = (struct idem_activity){a->acts[i].name, file_app_run_activity};
		i++;
	}
	a->nacts = (int)n;
	a->app.options = opts;
	a->app.activities = run;
	return 0;
}

static int activity_known(void *arg, const char *name)
{
	const struct idem_app *app = arg;

	for (const struct idem_activity *r = app->activities; r->name != NULL; r++)
		if (strcmp(r->name, name) == 0)
			return 1;
	return 0;
}

/* The options of the app's activity name (it exists: flow_parse said so). */
static const struct idem_activity_options *options_of(const struct file_app *a, const char *name)
{
	const struct idem_activity_options *o = a->app.options;

	while (o->name != NULL && strcmp(o->name, name) != 0)
		o++;
	return o;
}

/* Each step of workflow type wf with a "retry" or "timeout" of its own
 * gets its activity's options with those over them. */
static int step_options(struct loader *l, struct flow *f, const char *wf)
{
	for (int i = 0; i < flow_step_count(f); i++) {
		const json_t *ov = flow_step_overrides(f, i), *m;
		struct idem_activity_options *o;
		char path[256], p[320];

		if (ov == NULL)
			continue;
		o = own_calloc(l, 1, sizeof(*o));
		*o = *options_of(l->a, flow_step_activity(f, i));
		snprintf(path, sizeof(path), "workflows.%s.steps[%d]", wf, i);
		member_path(p, sizeof(p), path, ".retry");
		if ((m = json_object_get(ov, "retry")) != NULL && retry_of(l, m, p, &o->retry) != 0)
			return -1;
		member_path(p, sizeof(p), path, ".timeout");
		if ((m = json_object_get(ov, "timeout")) != NULL &&
		    duration_of(l, m, p, &o->start_to_close_ms) != 0)
			return -1;
		flow_step_set_options(f, i, o);
	}
	return 0;
}

static int workflows(struct loader *l, const json_t *root)
{
	struct file_app *a = l->a;
	const json_t *wfs = json_object_get(root, "workflows");
	struct idem_workflow *types;
	size_t n, i = 0;
	const char *name;
	json_t *v;

	if (want(l, wfs, JSON_OBJECT, "workflows",
	         "an object: {\"payment\": {\"steps\": [...]}}") != 0)
		return -1;
	n = json_object_size(wfs);
	if (n == 0 || n > MEMBER_MAX)
		return fail(l, "workflows", "has %zu; give 1 to %d", n, MEMBER_MAX);
	types = own_calloc(l, n + 1, sizeof(*types));
	a->flows = own_calloc(l, n, sizeof(*a->flows));
	json_object_foreach((json_t *)wfs, name, v)
	{
		char prefix[600];
		struct flow *f;

		snprintf(prefix, sizeof(prefix), "%s: workflows.%s", a->file, name);
		if (!ids_name_ok(name, 64))
			return fail(
			    l, "workflows",
			    "\"%s\" is not a workflow type name (1..64 of A-Z a-z 0-9 _ . -)",
			    name);
		f = flow_parse(v, prefix, activity_known, &a->app, l->err, l->errlen);
		if (f == NULL)
			return -1;
		a->flows[a->nflows++] = f;
		if (step_options(l, f, name) != 0)
			return -1;
		types[i++] = (struct idem_workflow){.name = own_str(l, name),
		                                    .run = file_app_run_flow,
		                                    .prepare = file_app_prepare,
		                                    .id_field = flow_id_field(f),
		                                    .data = f};
	}
	a->app.workflows = types;
	return 0;
}

/* helper: {"name", "command", "socket"}. */
static int helper(struct loader *l, const json_t *root)
{
	static const char *const known[] = {"name", "command", "socket", NULL};
	struct file_app *a = l->a;
	const json_t *h = json_object_get(root, "helper"), *m;
	char **argv;

	if (h == NULL) {
		if (a->base != NULL)
			a->app.helper = a->base->helper;
		return 0;
	}
	if (want(l, h, JSON_OBJECT, "helper",
	         "an object: {\"name\": ..., \"command\": [...], \"socket\": ...}") != 0 ||
	    known_members(l, h, "helper", known) != 0)
		return -1;
	const json_t *name = json_object_get(h, "name");

	if (name != NULL && (!json_is_string(name) || !ids_name_ok(json_string_value(name), 64)))
		return fail(l, "helper.name", "give a name (1..64 of A-Z a-z 0-9 _ . -)");
	if ((argv = argv_of(l, json_object_get(h, "command"), "helper.command")) == NULL)
		return -1;
	m = json_object_get(h, "socket");
	if (m != NULL) {
		if (want(l, m, JSON_STRING, "helper.socket",
		         "the socket's path relative to the data directory") != 0)
			return -1;
		if (json_string_length(m) == 0 || json_string_value(m)[0] == '/' ||
		    strstr(json_string_value(m), "..") != NULL)
			return fail(l, "helper.socket",
			            "\"%s\": give a path inside the data directory, e.g. "
			            "\"service.sock\"",
			            json_string_value(m));
		a->helper_socket = own_str(l, json_string_value(m));
	}
	a->helper = (struct idem_helper){
	    .name = own_str(l, name != NULL ? json_string_value(name) : "helper"),
	    .command = (const char *const *)argv,
	    .dir = a->dir};
	a->app.helper = &a->helper;
	return 0;
}

/* ---- the check ---- */

struct sql_rule {
	char *kind;
	char *sql;
};

static void sql_row(struct idem_check *c, sqlite3_stmt *st)
{
	const char *kind = idem_check_col(st, 0), *msg = idem_check_col(st, 1);
	json_t *wf = NULL;

	if (sqlite3_column_count(st) > 2 && sqlite3_column_type(st, 2) != SQLITE_NULL) {
		const char *text = idem_check_col(st, 2);

		wf = text[0] == '[' ? idem_check_col_array(st, 2) : json_pack("[s]", text);
	}
	idem_check_add(c, kind, wf, "%s", msg[0] != '\0' ? msg : "(the query gave no message)");
}

/* check: {"command": [...]} and/or {"sql": [{"kind", "query"}]}, with
 * "kinds" naming the words the command's lines may start with. */
static int check(struct loader *l, const json_t *root)
{
	static const char *const known[] = {"command", "sql", "kinds", NULL};
	struct file_app *a = l->a;
	const json_t *c = json_object_get(root, "check"), *sql, *m;
	size_t nbase_k = a->base != NULL ? count_list(a->base->check_kinds, sizeof(char *), 0) : 0;
	size_t nbase_r = 0, nsql, nk = 0;
	struct idem_check_rule *rules;
	char **declared = NULL;
	const char **kinds;

	if (a->base != NULL) {
		nbase_r = count_list(a->base->check_rules, sizeof(*rules), 0);
		a->app.dbs = a->base->dbs;
		a->app.check_total_labels = a->base->check_total_labels;
		a->app.check_totals = a->base->check_totals;
		a->app.check_kinds = a->base->check_kinds;
		a->app.check_rules = a->base->check_rules;
	}
	if (c == NULL)
		return 0;
	if (want(l, c, JSON_OBJECT, "check",
	         "an object: {\"command\": [...]} or {\"sql\": [...]}") != 0 ||
	    known_members(l, c, "check", known) != 0)
		return -1;
	if (json_object_get(c, "command") != NULL) {
		a->check = argv_of(l, json_object_get(c, "command"), "check.command");
		if (a->check == NULL)
			return -1;
		a->app.check_extra = file_app_check;
	}
	if ((m = json_object_get(c, "kinds")) != NULL &&
	    (declared = names_of(l, m, "check.kinds", point_ok,
	                         "a kind of violation: [a-z0-9_], 1..63 bytes")) == NULL)
		return -1;
	while (declared != NULL && declared[nk] != NULL)
		nk++;
	a->check_kinds_declared = nk > 0;
	sql = json_object_get(c, "sql");
	if (sql != NULL && want(l, sql, JSON_ARRAY, "check.sql",
	                        "an array of {\"kind\": ..., \"query\": \"SELECT ...\"}") != 0)
		return -1;
	nsql = json_array_size(sql);
	if (nsql > MEMBER_MAX)
		return fail(l, "check.sql", "has %zu queries; at most %d", nsql, MEMBER_MAX);
	if (a->check == NULL && nsql == 0)
		return fail(l, "check", "give a \"command\" or \"sql\" queries");
	kinds = own_calloc(l, nbase_k + nk + nsql + 2, sizeof(*kinds));
	if (nbase_k > 0)
		memcpy(kinds, a->base->check_kinds, nbase_k * sizeof(*kinds));
	for (size_t k = 0; k < nk; k++)
		kinds[nbase_k + k] = declared[k];
	nk += nbase_k;
	rules = own_calloc(l, nbase_r + nsql + 1, sizeof(*rules));
	if (nbase_r > 0)
		memcpy(rules, a->base->check_rules, nbase_r * sizeof(*rules));
	for (size_t i = 0; i < nsql; i++) {
		static const char *const rule_known[] = {"kind", "query", NULL};
		const json_t *r = json_array_get(sql, i), *kind, *query;
		char p[64], pk[80], text[256];
		size_t len;
		char *wrapped;

		snprintf(p, sizeof(p), "check.sql[%zu]", i);
		if (want(l, r, JSON_OBJECT, p, "{\"kind\": ..., \"query\": \"SELECT ...\"}") != 0 ||
		    known_members(l, r, p, rule_known) != 0)
			return -1;
		kind = json_object_get(r, "kind");
		query = json_object_get(r, "query");
		snprintf(pk, sizeof(pk), "%s.kind", p);
		if (want(l, kind, JSON_STRING, pk, "a kind of violation: [a-z0-9_]") != 0 ||
		    !point_ok(json_string_value(kind)))
			return fail(l, pk, "give a kind of violation: [a-z0-9_], 1..63 bytes");
		snprintf(pk, sizeof(pk), "%s.query", p);
		if (want(l, query, JSON_STRING, pk,
		         "a SELECT whose rows are violations: (message, workflows)") != 0)
			return -1;
		len = json_string_length(query) + 128;
		wrapped = own_calloc(l, 1, len);
		/* The kind rides in the row: one row function for every query. */
		snprintf(wrapped, len, "SELECT '%s', * FROM (%s)", json_string_value(kind),
		         json_string_value(query));
		snprintf(text, sizeof(text), "running check.sql[%zu] (%s)", i,
		         json_string_value(kind));
		rules[nbase_r + i] = (struct idem_check_rule){own_str(l, text), wrapped, sql_row};
		size_t k = 0;
		while (k < nk && strcmp(kinds[k], json_string_value(kind)) != 0)
			k++;
		if (k == nk)
			kinds[nk++] = own_str(l, json_string_value(kind));
	}
	if (a->check != NULL) {
		size_t k = 0;
		while (k < nk && strcmp(kinds[k], "check") != 0)
			k++;
		if (k == nk)
			kinds[nk++] = "check";
	}
	a->app.check_kinds = kinds;
	a->app.check_rules = rules;
	return 0;
}

/* ---- the file ---- */

/* path is a directory (holding idem.json) or the file; sets a->file and
 * a->dir (absolute). */
static int locate(struct loader *l, const char *path)
{
	char real[PATH_MAX], file[PATH_MAX + 32];
	struct stat sb;
	char *slash;

	if (realpath(path, real) == NULL) {
		snprintf(l->err, l->errlen,
		         "APP=%s: %s (give a built-in app's name, or the directory of an app's "
		         "%s)",
		         path, strerror(errno), FILE_APP_NAME);
		return -1;
	}
	if (stat(real, &sb) == 0 && S_ISDIR(sb.st_mode)) {
		snprintf(file, sizeof(file), "%s/%s", real, FILE_APP_NAME);
		l->a->dir = own_str(l, real);
	} else {
		snprintf(file, sizeof(file), "%s", real);
		slash = strrchr(real, '/');
		*slash = '\0';
		l->a->dir = own_str(l, real[0] != '\0' ? real : "/");
	}
	l->a->file = own_str(l, file);
	return 0;
}

static json_t *read_file(struct loader *l)
{
	json_error_t jerr;
	json_t *root = json_load_file(l->a->file, JSON_REJECT_DUPLICATES, &jerr);

	if (root == NULL) {
		if (jerr.line <= 0 && access(l->a->file, R_OK) != 0)
			snprintf(l->err, l->errlen,
			         "%s: %s (an app's directory holds its %s; see "
			         "docs/own-activities.md)",
			         l->a->file, strerror(errno), FILE_APP_NAME);
		else
			snprintf(l->err, l->errlen, "%s:%d:%d: %s", l->a->file, jerr.line,
			         jerr.column, jerr.text);
		return NULL;
	}
	if (!json_is_object(root)) {
		snprintf(l->err, l->errlen, "%s: the file holds %s; give an object", l->a->file,
		         msg_json_kind(root));
		json_decref(root);
		return NULL;
	}
	return root;
}

/* panels: [{"title", "about"?, "command": [...]}], after the base app's. */
static int panels(struct loader *l, const json_t *root)
{
	static const char *const known[] = {"title", "about", "command", NULL};
	struct file_app *a = l->a;
	const json_t *ps = json_object_get(root, "panels");
	size_t nbase = a->base != NULL ? count_list(a->base->panels, sizeof(*a->panels), 0) : 0;
	size_t n = json_array_size(ps);

	if (ps == NULL) {
		a->app.panels = a->base != NULL ? a->base->panels : NULL;
		return 0;
	}
	if (want(l, ps, JSON_ARRAY, "panels", "an array of {\"title\": ..., \"command\": [...]}") !=
	    0)
		return -1;
	if (n > PANELS_MAX)
		return fail(l, "panels", "has %zu; at most %d", n, PANELS_MAX);
	a->panels = own_calloc(l, nbase + n + 1, sizeof(*a->panels));
	a->panel_cmds = own_calloc(l, n + 1, sizeof(*a->panel_cmds));
	if (nbase > 0)
		memcpy(a->panels, a->base->panels, nbase * sizeof(*a->panels));
	a->nbase_panels = (int)nbase;
	for (size_t i = 0; i < n; i++) {
		const json_t *p = json_array_get(ps, i), *title, *about;
		char where[64], key[80];

		snprintf(where, sizeof(where), "panels[%zu]", i);
		if (want(l, p, JSON_OBJECT, where,
		         "{\"title\": ..., \"about\"?: ..., \"command\": [...]}") != 0 ||
		    known_members(l, p, where, known) != 0)
			return -1;
		title = json_object_get(p, "title");
		about = json_object_get(p, "about");
		snprintf(key, sizeof(key), "%s.title", where);
		if (want(l, title, JSON_STRING, key, "what the panel shows, e.g. \"Balances\"") !=
		    0)
			return -1;
		snprintf(key, sizeof(key), "%s.about", where);
		if (about != NULL &&
		    want(l, about, JSON_STRING, key, "one line under the title") != 0)
			return -1;
		snprintf(key, sizeof(key), "%s.command", where);
		if ((a->panel_cmds[i] = argv_of(l, json_object_get(p, "command"), key)) == NULL)
			return -1;
		a->panels[nbase + i] = (struct idem_app_panel){
		    .title = own_str(l, json_string_value(title)),
		    .about = about != NULL ? own_str(l, json_string_value(about)) : NULL,
		    .run = file_app_panel};
	}
	a->app.panels = a->panels;
	return 0;
}

static int top(struct loader *l, const json_t *root,
               const struct idem_app *(*base_find)(const char *name))
{
	static const char *const known[] = {"name",   "summary",    "base",      "setup",
	                                    "helper", "activities", "workflows", "check",
	                                    "stress", "panels",     NULL};
	struct file_app *a = l->a;
	const json_t *name = json_object_get(root, "name"), *m;

	if (known_members(l, root, "", known) != 0)
		return -1;
	/* "stress" is scripts/stress's: what its clients start. */
	m = json_object_get(root, "stress");
	if (m != NULL && want(l, m, JSON_OBJECT, "stress",
	                      "{\"workflow\": TYPE, \"input\": {...}} for scripts/stress") != 0)
		return -1;
	if (want(l, name, JSON_STRING, "name", "the app's name, e.g. \"payments\"") != 0)
		return -1;
	if (!ids_name_ok(json_string_value(name), 64))
		return fail(l, "name", "\"%s\" is not a name (1..64 of A-Z a-z 0-9 _ . -)",
		            json_string_value(name));
	a->app.name = own_str(l, json_string_value(name));
	m = json_object_get(root, "summary");
	if (m != NULL && want(l, m, JSON_STRING, "summary", "one line saying what it does") != 0)
		return -1;
	a->app.summary = own_str(l, m != NULL ? json_string_value(m) : a->file);
	if ((m = json_object_get(root, "base")) != NULL) {
		if (want(l, m, JSON_STRING, "base", "the name of an app built into idem") != 0)
			return -1;
		a->base = base_find(json_string_value(m));
		if (a->base == NULL)
			return fail(l, "base", "\"%s\" is not an app built into idem",
			            json_string_value(m));
		a->app.routes = a->base->routes;
		a->app.keys = a->base->keys;
		a->app.start_flags = a->base->start_flags;
		a->app.commands = a->base->commands;
		a->app.peer_key = a->base->peer_key;
	}
	return 0;
}

const struct idem_app *file_app_load(const char *path,
                                     const struct idem_app *(*base_find)(const char *name),
                                     char *err, size_t errlen)
{
	struct loader l = {.a = xcalloc(1, sizeof(struct file_app)), .err = err, .errlen = errlen};
	json_t *root = NULL;
	int rc = -1;

	if (file_app_loaded != NULL) {
		snprintf(err, errlen, "an app file is loaded already (%s)", file_app_loaded->file);
		return NULL;
	}
	if (locate(&l, path) != 0 || (root = read_file(&l)) == NULL)
		goto out;
	l.a->app.open_db = file_app_open_db;
	if (top(&l, root, base_find) != 0 || activities(&l, root) != 0 ||
	    command_member(&l, root, "setup", &l.a->setup) != 0 || helper(&l, root) != 0 ||
	    workflows(&l, root) != 0 || check(&l, root) != 0 || panels(&l, root) != 0)
		goto out;
	file_app_loaded = l.a;
	rc = 0;
out:
	json_decref(root);
	if (rc == 0)
		return &l.a->app;
	file_app_free(l.a);
	return NULL;
}
