/* cmd_faults.c — faults: the fault plan of the live supervisor (GET
 * /v1/faults), and changing it without a restart (PUT /v1/faults):
 *   faults                          the plan in force, the config's, the
 *                                   latest changes
 *   faults set --kill-rate R ... [--for DURATION]
 *   faults off [--for DURATION]
 *   faults reset                    the config's plan again
 *   faults env                      the plan in force as .env lines, to keep it
 * set's options are the FAULT_* keys as flags (FAULT_KILL_RATE_AFTER_COMMIT
 * as --kill-rate-after-commit); the supervisor checks them, and names the
 * one it refuses. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "fmt.h"
#include "http.h"

static double num(const json_t *o, const char *key)
{
	return json_number_value(json_object_get(o, key));
}

/* "kill 0.200 (before_effect 0.050, ...), error 0.330, ..." */
static void rates_text(const json_t *r, char *buf, size_t len)
{
	const json_t *points = json_object_get(r, "kill_rate_by_point");
	const char *name;
	const json_t *v;
	double kill = 0;
	char by[256] = "", attempts[32] = "all";

	json_object_foreach((json_t *)points, name, v)
	{
		kill += json_number_value(v);
		if (json_number_value(v) > 0)
			fmt_append(by, sizeof(by), "%s%s %.3f", by[0] ? ", " : "", name,
			           json_number_value(v));
	}
	buf[0] = '\0';
	fmt_append(buf, len, "kill %.3f", kill);
	if (by[0] != '\0')
		fmt_append(buf, len, " (%s)", by);
	if (ctl_int(r, "max_attempt", 0) > 0)
		snprintf(attempts, sizeof(attempts), "1..%lld", ctl_int(r, "max_attempt", 0));
	fmt_append(buf, len,
	           ", async kill %.3f, error %.3f, delay %.3f, peer %.3f; activities %s; "
	           "attempts %s",
	           num(r, "async_kill_rate"), num(r, "error_rate"), num(r, "delay_rate"),
	           num(r, "peer_rate"), ctl_str(r, "activities", "all"), attempts);
}

static void render(const json_t *doc)
{
	const char *source = ctl_str(doc, "source", "config");
	const json_t *recent = json_object_get(doc, "recent"), *row;
	char line[1024], when[64], left[32];
	size_t i;

	fmt_time(json_object_get(doc, "since"), when, sizeof(when));
	printf("fault plan %lld: %s since %s", ctl_int(doc, "plan_id", 0),
	       strcmp(source, "config") == 0 ? "the config's"
	       : strcmp(source, "off") == 0  ? "off (set at runtime)"
	                                     : "set at runtime",
	       when);
	if (json_is_integer(json_object_get(doc, "remaining_ms"))) {
		fmt_dur(ctl_int(doc, "remaining_ms", 0), left, sizeof(left));
		printf(", for %s more, then the config's", left);
	} else if (strcmp(source, "config") != 0) {
		printf(", until idemctl faults reset or a restart");
	}
	printf("\nseed %s; faults %s\n", ctl_str(json_object_get(doc, "in_force"), "seed", "?"),
	       json_is_true(json_object_get(doc, "enabled")) ? "on" : "off");
	rates_text(json_object_get(doc, "in_force"), line, sizeof(line));
	printf("in force:   %s\n", line);
	if (strcmp(source, "config") != 0) {
		rates_text(json_object_get(doc, "config"), line, sizeof(line));
		printf("the config: %s\n", line);
	}
	printf("changes since the start: %lld\n", ctl_int(doc, "changes", 0));
	if (json_array_size(recent) > 0)
		printf("latest plans:\n");
	json_array_foreach(recent, i, row)
	{
		fmt_time(json_object_get(row, "ts"), when, sizeof(when));
		rates_text(json_object_get(row, "plan"), line, sizeof(line));
		printf("  %-5lld %s  %-7s %s", ctl_int(row, "id", 0), when,
		       ctl_str(row, "action", "?"), line);
		if (json_is_integer(json_object_get(row, "until"))) {
			fmt_time(json_object_get(row, "until"), when, sizeof(when));
			printf("; until %s", when);
		}
		if (json_is_string(json_object_get(row, "supervisor")))
			printf("; %s", ctl_str(row, "supervisor", ""));
		printf("\n");
	}
}

/* --kill-rate-after-commit: "kill_rate_after_commit"; 0, or 2 after a
 * message when name is not an option's. */
static int member_name(const char *sub, const char *opt, size_t n, char *out, size_t len)
{
	size_t j = 0;

	if (n <= 2 || n - 2 >= len)
		return ctl_fail(IDEM_EXIT_USAGE,
		                "faults %s: unexpected argument \"%.*s\" (see --help)", sub, (int)n,
		                opt);
	for (size_t i = 2; i < n; i++) {
		char ch = opt[i] == '-' ? '_' : opt[i];

		if (!islower((unsigned char)ch) && !isdigit((unsigned char)ch) && ch != '_')
			return ctl_fail(IDEM_EXIT_USAGE, "faults %s: bad option \"%.*s\"", sub,
			                (int)n, opt);
		out[j++] = ch;
	}
	out[j] = '\0';
	return 0;
}

/* set's and off's options as PUT /v1/faults's body (into body). */
static int change_body(const char *sub, int argc, char **argv, json_t *body)
{
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i], *eq = strchr(arg, '='), *value;
		size_t n = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
		char member[64];
		int rc;

		if (strncmp(arg, "--", 2) != 0)
			return ctl_fail(IDEM_EXIT_USAGE,
			                "faults %s: unexpected argument \"%s\" (options are --name "
			                "VALUE, such as --kill-rate 0.2)",
			                sub, arg);
		if ((rc = member_name(sub, arg, n, member, sizeof(member))) != 0)
			return rc;
		if (eq != NULL)
			value = eq + 1;
		else if (i + 1 < argc)
			value = argv[++i];
		else
			return ctl_fail(IDEM_EXIT_USAGE, "faults %s: --%s needs a value", sub,
			                arg + 2);
		if (strcmp(sub, "off") == 0 && strcmp(member, "for") != 0)
			return ctl_fail(
			    IDEM_EXIT_USAGE,
			    "faults off: it takes --for DURATION only (off sets every rate "
			    "to 0)");
		if (json_object_get(body, member) != NULL)
			return ctl_fail(IDEM_EXIT_USAGE, "faults %s: --%.*s is given twice", sub,
			                (int)n - 2, arg + 2);
		json_object_set_new(body, member, json_string(value));
	}
	return 0;
}

/* faults env: the plan in force as .env lines. Appended to the
 * supervisor's .env and read by a SIGHUP (or the next start), it becomes
 * the config's plan: how a runtime plan is kept past a restart. */
static int print_env(struct ctl *c, int argc)
{
	json_t *doc = NULL;
	const json_t *lines, *line;
	size_t i;
	int rc;

	if (argc > 1)
		return ctl_fail(IDEM_EXIT_USAGE, "faults env: it takes no argument");
	if ((rc = http_get(c, "/v1/faults", 0, &doc)) != 0)
		return rc;
	lines = json_object_get(doc, "env");
	if (!json_is_array(lines)) {
		json_decref(doc);
		return ctl_fail(IDEM_EXIT_FAIL,
		                "faults env: the supervisor's answer has no \"env\"");
	}
	if (c->json) {
		http_print_json(lines);
	} else {
		printf("# idem's fault plan %lld in force (%s): appended to the .env and read by\n"
		       "# a SIGHUP or the next start, it is the config's plan\n",
		       ctl_int(doc, "plan_id", 0), ctl_str(doc, "source", "config"));
		json_array_foreach(lines, i, line) if (json_is_string(line))
		    printf("%s\n", json_string_value(line));
	}
	json_decref(doc);
	return IDEM_EXIT_OK;
}

int cmd_faults(struct ctl *c, int argc, char **argv)
{
	const char *sub = argc > 0 ? argv[0] : NULL;
	json_t *body, *doc = NULL, *full = NULL;
	int rc, status;

	if (sub == NULL) {
		if ((rc = http_get(c, "/v1/faults", 0, &doc)) != 0)
			return rc;
		if (c->json)
			http_print_json(doc);
		else
			render(doc);
		json_decref(doc);
		return IDEM_EXIT_OK;
	}
	if (strcmp(sub, "env") == 0)
		return print_env(c, argc);
	if (strcmp(sub, "set") != 0 && strcmp(sub, "off") != 0 && strcmp(sub, "reset") != 0)
		return ctl_fail(
		    IDEM_EXIT_USAGE,
		    "faults: unknown subcommand \"%s\" (faults, faults set, faults off, "
		    "faults reset, faults env)",
		    sub);
	body = json_object();
	if (strcmp(sub, "reset") == 0) {
		if (argc > 1) {
			json_decref(body);
			return ctl_fail(IDEM_EXIT_USAGE, "faults reset: it takes no argument");
		}
		json_object_set_new(body, "reset", json_true());
	} else if ((rc = change_body(sub, argc - 1, argv + 1, body)) != 0) {
		json_decref(body);
		return rc;
	} else if (strcmp(sub, "off") == 0) {
		json_object_set_new(body, "off", json_true());
	} else if (json_object_size(body) == 0 ||
	           (json_object_size(body) == 1 && json_object_get(body, "for") != NULL)) {
		json_decref(body);
		return ctl_fail(IDEM_EXIT_USAGE,
		                "faults set: which rates? such as --kill-rate 0.2 --for 5m (the "
		                "FAULT_* keys as flags; see --help)");
	}
	rc = http_request(c, "PUT", "/v1/faults", body, 0, &status, &doc);
	json_decref(body);
	if (rc != 0)
		return rc;
	if (status >= 300) {
		rc = http_refused(c, status, doc);
		json_decref(doc);
		return rc;
	}
	if (c->json) {
		http_print_json(doc);
	} else {
		/* The whole view, with the change among the latest plans. */
		if (http_get(c, "/v1/faults", 0, &full) == 0)
			render(full);
		else
			render(doc);
		json_decref(full);
	}
	json_decref(doc);
	return IDEM_EXIT_OK;
}
