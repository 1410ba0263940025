/* cmd_check.c — check: the invariants, from the supervisor (GET /v1/check)
 * or, with --offline, from the databases themselves; panel: an app's
 * dashboard panel, likewise; see cmd.h. */
#include <stdio.h>
#include <string.h>

#include "apps.h"
#include "check.h"
#include "cmd.h"
#include "fmt.h"
#include "http.h"

/* The report from GET /v1/check: 0 with *report (NEW), or the exit code. */
static int check_online(struct ctl *c, json_t **report)
{
	int status = 0,
	    rc = http_request(c, "GET", "/v1/check", NULL, CTL_CHECK_MS, &status, report);

	if (rc != 0)
		return rc;
	if (status == 200 && json_is_object(json_object_get(*report, "counts")))
		return 0;
	if (c->json)
		http_print_json(*report);
	if (status == 404)
		rc = ctl_fail(IDEM_EXIT_USAGE,
		              "check: the supervisor at %s has no GET /v1/check (%s); use idemctl "
		              "check --offline",
		              c->endpoint, ctl_str(*report, "error", "not found"));
	else
		rc = ctl_fail(IDEM_EXIT_USAGE, "%s (the supervisor answered HTTP %d)",
		              ctl_str(*report, "error", "check: not a check report"), status);
	json_decref(*report);
	*report = NULL;
	return rc;
}

/* The checker run here on the configured databases, read-only. */
static int check_offline(struct ctl *c, json_t **report)
{
	char err[1024];
	const struct idem_app *app = apps_load(c->cfg.app, err, sizeof(err));

	if (app == NULL)
		return ctl_fail(IDEM_EXIT_USAGE, "check: %s", err);
	*report = check_run(app, c->cfg.state_database, c->cfg.database, &c->cfg, err, sizeof(err));
	if (*report == NULL)
		return ctl_fail(IDEM_EXIT_USAGE, "check: %s", err);
	return 0;
}

/* Waits (GET /v1/wait) until no workflow runs or wait_ms passes; says so
 * when it passes, and the check runs either way. Returns 0, or the exit
 * code when the supervisor cannot be asked. */
static int check_wait(struct ctl *c, int wait_ms)
{
	char path[64], dur[32];
	json_t *doc = NULL;
	long long running;
	int rc;

	snprintf(path, sizeof(path), "/v1/wait?timeout=%dms", wait_ms);
	if ((rc = http_get(c, path, wait_ms, &doc)) != 0)
		return rc;
	running = ctl_int(doc, "running", 0);
	json_decref(doc);
	if (running > 0) {
		fmt_dur(wait_ms, dur, sizeof(dur));
		(void)ctl_fail(
		    IDEM_EXIT_NOT_QUIESCENT,
		    "check: timed out after %s with %lld workflow%s still running; checking anyway",
		    dur, running, running == 1 ? "" : "s");
	}
	return 0;
}

/* 1 when an invariant is violated: the checker leaves out what a running
 * workflow may still finish, so a violation is one even while others
 * run. Else 6 while some workflow runs, 0 when none does. */
static int check_verdict(const json_t *report)
{
	const json_t *running = json_object_get(json_object_get(report, "totals"), "workflows");
	json_t *counts = json_object_get(report, "counts"), *n;
	const char *kind;

	json_object_foreach(counts, kind, n)
	{
		if (json_integer_value(n) > 0)
			return IDEM_EXIT_FAIL;
	}
	if (ctl_int(running, "running", 0) > 0)
		return IDEM_EXIT_NOT_QUIESCENT;
	return json_is_true(json_object_get(report, "ok")) ? IDEM_EXIT_OK : IDEM_EXIT_FAIL;
}

int cmd_check(struct ctl *c, int argc, char **argv)
{
	int offline = 0, npos, rc, wait_ms = 0;
	const char *wait = NULL, *pos[1];
	const struct opt opts[] = {
	    {"--offline", NULL, &offline}, {"--wait", &wait, NULL}, {NULL, NULL, NULL}};
	json_t *report = NULL;

	if ((rc = ctl_parse_args("check", argc, argv, opts, pos, 0, &npos)) != 0 ||
	    (wait && (rc = ctl_parse_timeout("check: ", "--wait", wait, 0, &wait_ms)) != 0))
		return rc;
	if (wait && offline)
		return ctl_fail(
		    IDEM_EXIT_USAGE,
		    "check: --wait needs the supervisor (it waits through GET /v1/wait); "
		    "drop --offline, or drop --wait to check the files as they are");
	if ((wait && (rc = check_wait(c, wait_ms)) != 0) ||
	    (rc = offline ? check_offline(c, &report) : check_online(c, &report)) != 0)
		return rc;
	if (c->json)
		http_print_json(report);
	else
		check_print(
		    c->app != NULL &&
		            strcmp(c->app->name,
		                   json_string_value(json_object_get(report, "app")) ?: "") == 0
		        ? c->app
		        : NULL,
		    report, stdout);
	rc = check_verdict(report);
	json_decref(report);
	return rc;
}

/* panel N: the app's panel N as JSON, from the supervisor (GET
 * /v1/panels/N) or, with --offline, made here by the app (its command):
 * what the supervisor runs, off its loop, to answer that request. */
int cmd_panel(struct ctl *c, int argc, char **argv)
{
	int offline = 0, npos, rc, n = 0;
	const char *pos[1];
	const struct opt opts[] = {{"--offline", NULL, &offline}, {NULL, NULL, NULL}};
	const struct idem_app *app;
	char err[1024], path[64];
	json_t *doc = NULL;
	long long index;

	if ((rc = ctl_parse_args("panel", argc, argv, opts, pos, 1, &npos)) != 0)
		return rc;
	if (npos != 1)
		return ctl_fail(IDEM_EXIT_USAGE,
		                "panel: which panel? idemctl panel N (0, 1, ...: GET /v1/app lists "
		                "them)");
	if ((rc = ctl_parse_number("panel", "N", pos[0], 0, 63, &index)) != 0)
		return rc;
	if (!offline) {
		snprintf(path, sizeof(path), "/v1/panels/%lld", index);
		if ((rc = http_get(c, path, CTL_CHECK_MS, &doc)) != 0)
			return rc;
		http_print_json(doc);
		json_decref(doc);
		return IDEM_EXIT_OK;
	}
	if ((app = apps_load(c->cfg.app, err, sizeof(err))) == NULL)
		return ctl_fail(IDEM_EXIT_USAGE, "panel: %s", err);
	while (app->panels != NULL && app->panels[n].title != NULL)
		n++;
	if (index >= n || app->panels[index].run == NULL)
		return ctl_fail(IDEM_EXIT_USAGE,
		                "panel: the app %s has no panel %lld made by a command (it has %d "
		                "panel%s)",
		                app->name, index, n, n == 1 ? "" : "s");
	if (app->panels[index].run((int)index, &c->cfg, &doc, err, sizeof(err)) != 0)
		return ctl_fail(IDEM_EXIT_FAIL, "panel: %s", err);
	http_print_json(doc);
	json_decref(doc);
	return IDEM_EXIT_OK;
}
