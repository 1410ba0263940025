/* run.c — a file-defined app at work: its app DB and setup, each
 * attempt of a command activity (the contract of docs/own-activities.md:
 * input on stdin, the attempt's facts in IDEM_* variables, the result on
 * stdout, the verdict in the exit code), its check command, and its JSON
 * workflows. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "command.h"
#include "file_app_internal.h"
#include "pgconn.h"
#include "textbuf.h"
#include "xalloc.h"

#define MAX_RESULT (1024 * 1024) /* bytes of stdout: one result */
#define SETUP_TIMEOUT_MS (5 * 60 * 1000)
#define CHECK_TIMEOUT_MS (10 * 60 * 1000)
#define PANEL_TIMEOUT_MS (10 * 1000) /* a panel is looked at every few seconds */
#define EXIT_RETRYABLE 75            /* EX_TEMPFAIL */
#define EXIT_NON_RETRYABLE 65        /* EX_DATAERR */

/* A list of "NAME=VALUE" strings, NULL-ended. */
struct vars {
	char *v[24];
	int n;
};

static void var(struct vars *vs, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void var(struct vars *vs, const char *name, const char *fmt, ...)
{
	struct textbuf b = {0};
	va_list ap;

	textbuf_printf(&b, "%s=", name);
	va_start(ap, fmt);
	textbuf_vprintf(&b, fmt, ap);
	va_end(ap);
	vs->v[vs->n++] = textbuf_take(&b, NULL);
	vs->v[vs->n] = NULL;
}

static void vars_free(struct vars *vs)
{
	for (int i = 0; i < vs->n; i++)
		free(vs->v[i]);
}

/* The directory of path, absolute ("." when it has none). */
static char *dir_of(const char *path)
{
	char *copy = xstrdup(path), *slash, real[PATH_MAX];

	slash = strrchr(copy, '/');
	if (slash == copy)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	else
		strcpy(copy, ".");
	if (realpath(copy, real) != NULL) {
		free(copy);
		copy = xstrdup(real);
	}
	return copy;
}

/* ---- the app DB and setup ---- */

static int run_setup(struct file_app *a, char *err, size_t errlen)
{
	struct command_spec s = {.argv = (const char *const *)a->setup,
	                         .dir = a->dir,
	                         .max_stdout = MAX_RESULT,
	                         .own_group = 1,
	                         .timeout_ms = SETUP_TIMEOUT_MS};
	struct command_result r;
	char how[600], cmd[512];

	if (command_run(&s, &r, err, errlen) != 0)
		return -1;
	if (command_exit_code(&r) == 0) {
		free(r.out);
		return 0;
	}
	command_describe(&r, how, sizeof(how));
	command_line(s.argv, cmd, sizeof(cmd));
	snprintf(err, errlen, "%s: setup command `%s` (in %s): %s; fix it, then start again",
	         a->file, cmd, a->dir, how);
	free(r.out);
	return -1;
}

/* The app DB of an app without a base: idem keeps nothing of the app's
 * there (its commands keep their state where they like, in the data
 * directory), but the checker knows the file by its schema version. */
static const char *const schema[] = {
    "CREATE TABLE app_file (path TEXT NOT NULL) -- the idem.json this DB was made for",
};

int file_app_open_db(const char *path, enum db_sync sync, const struct idem_config *fill_cfg,
                     struct appconn **out, char *err, size_t errlen)
{
	static const struct appconn_schema own = {"file", schema, 1, NULL, 0};
	struct file_app *a = file_app_loaded;
	int rc;

	*out = NULL;
	if (pgconn_is_url(path)) {
		/* Its commands' data directory is DATABASE's. */
		snprintf(err, errlen,
		         "%s: an app of an idem.json keeps its DATABASE in SQLite: give a file "
		         "path (its directory is the commands' IDEM_DATA_DIR)",
		         a->file);
		return -1;
	}
	rc = a->base != NULL ? a->base->open_db(path, sync, fill_cfg, out, err, errlen)
	                     : appconn_open(path, sync, &own, NULL, NULL, out, err, errlen);

	if (rc != 0)
		return -1;

	if (a->data_dir == NULL) {
		a->data_dir = dir_of(path);
		/* What the helper and setup inherit (and every command gets). */
		setenv("IDEM_APP_DIR", a->dir, 1);
		setenv("IDEM_DATA_DIR", a->data_dir, 1);
		if (a->helper_socket != NULL) {
			size_t len = strlen(a->data_dir) + strlen(a->helper_socket) + 2;
			char *sock = xmalloc(len);

			snprintf(sock, len, "%s/%s", a->data_dir, a->helper_socket);
			if (strlen(sock) > 107) {
				snprintf(
				    err, errlen,
				    "%s: helper.socket: %s is %zu bytes, over the 107 of a Unix "
				    "socket path; give a shorter socket name or DATABASE directory",
				    a->file, sock, strlen(sock));
				free(sock);
				appconn_close(*out);
				*out = NULL;
				return -1;
			}
			a->helper.socket_path = sock;
		}
	}
	if (fill_cfg != NULL && a->setup != NULL && run_setup(a, err, errlen) != 0) {
		appconn_close(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

/* ---- an attempt ---- */

static const struct file_activity *activity_named(const char *name)
{
	struct file_app *a = file_app_loaded;

	for (int i = 0; i < a->nacts; i++)
		if (strcmp(a->acts[i].name, name) == 0)
			return &a->acts[i];
	return NULL;
}

/* A datagram on IDEM_CONTROL_FD: "heartbeat JSON" or "point NAME". */
static void on_control(void *arg, const char *msg, size_t len)
{
	const struct idem_activity_env *env = arg;
	json_t *details;

	(void)len;
	if (strncmp(msg, "heartbeat ", 10) != 0 || env->heartbeat == NULL)
		return;
	details = json_loads(msg + 10, JSON_DECODE_ANY, NULL);
	if (details != NULL && !json_is_object(details)) {
		json_t *wrapped = json_pack("{s:o}", "details", details);
		details = wrapped;
	}
	if (details == NULL)
		details = json_pack("{s:s}", "details", msg + 10);
	if (details != NULL)
		env->heartbeat(env->heartbeat_arg, details);
	json_decref(details);
}

/* The directory of this program: idem-point and idem-heartbeat are
 * there, and go first on a command's PATH. */
static const char *bin_dir(void)
{
	static char dir[PATH_MAX];
	ssize_t n;

	if (dir[0] != '\0')
		return dir;
	n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
	dir[n > 0 ? n : 0] = '\0';
	if (strrchr(dir, '/') != NULL)
		*strrchr(dir, '/') = '\0';
	return dir;
}

static void attempt_vars(struct vars *vs, const struct idem_activity_env *env,
                         const struct msg_task *t)
{
	struct file_app *a = file_app_loaded;

	var(vs, "IDEM_NAMESPACE", "%s", t->namespace_);
	var(vs, "IDEM_WORKFLOW_ID", "%s", t->workflow_id);
	var(vs, "IDEM_STEP", "%lld", (long long)t->step);
	var(vs, "IDEM_ATTEMPT", "%lld", (long long)t->attempt);
	var(vs, "IDEM_ACTIVITY", "%s", t->activity);
	var(vs, "IDEM_IDEMPOTENCY_KEY", "%s/%s/%lld", t->namespace_, t->workflow_id,
	    (long long)t->step);
	var(vs, "IDEM_APP_DIR", "%s", a->dir);
	var(vs, "IDEM_DATA_DIR", "%s", a->data_dir != NULL ? a->data_dir : ".");
	var(vs, "IDEM_PGID", "%ld", (long)getpgrp());
	var(vs, "IDEM_NAIVE", "%d", env->naive ? 1 : 0);
	var(vs, "PATH", "%s:%s", bin_dir(),
	    getenv("PATH") != NULL ? getenv("PATH") : "/usr/bin:/bin");
	if (t->heartbeat != NULL) {
		char *text = json_dumps(t->heartbeat, JSON_COMPACT);
		var(vs, "IDEM_HEARTBEAT", "%s", text != NULL ? text : "{}");
		free(text);
	}
	if (t->fault != NULL) {
		char *text = json_dumps(t->fault, JSON_COMPACT);
		var(vs, "IDEM_FAULT", "%s", text != NULL ? text : "{}");
		free(text);
	}
	if (env->kill_at != NULL)
		var(vs, "IDEM_KILL_AT", "%s", env->kill_at);
	if (env->peer_fault != NULL)
		var(vs, "IDEM_PEER_FAULT", "%s", env->peer_fault);
}

/* The error the command named on stdout ({"error": {"type", "message"}}),
 * if it did. */
static void named_error(const char *out, struct idem_activity_outcome *o)
{
	json_t *doc = json_loads(out, JSON_DECODE_ANY, NULL), *e = json_object_get(doc, "error");
	const char *type = json_string_value(json_object_get(e, "type"));
	const char *msg = json_string_value(json_object_get(e, "message"));

	if (type != NULL && type[0] != '\0')
		snprintf(o->error_type, sizeof(o->error_type), "%s", type);
	if (msg != NULL)
		snprintf(o->error_message, sizeof(o->error_message), "%s", msg);
	json_decref(doc);
}

static int result_of(const char *name, const struct command_result *r, const char *cmd,
                     struct idem_activity_outcome *o)
{
	const char *p = r->out;
	json_error_t jerr;
	json_t *doc;

	while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
		p++;
	if (*p == '\0') {
		o->result = json_object();
		return 0;
	}
	doc = json_loads(r->out, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (doc == NULL)
		return idem_activity_fail(
		    o, "BadOutput", 0,
		    "activity %s: `%s` exited 0, but its stdout is not JSON "
		    "(line %d, column %d: %s); it starts \"%.60s\": write one "
		    "JSON object, the result, and nothing else on stdout",
		    name, cmd, jerr.line, jerr.column, jerr.text, p);
	if (!json_is_object(doc)) {
		const char *what = json_is_array(doc) ? "an array" : "not an object";
		json_decref(doc);
		return idem_activity_fail(o, "BadOutput", 0,
		                          "activity %s: `%s` exited 0, but its stdout is %s: a "
		                          "result is one JSON object",
		                          name, cmd, what);
	}
	o->result = doc;
	return 0;
}

static int outcome_of(const struct file_app *a, const char *name, const struct command_result *r,
                      const char *cmd, struct idem_activity_outcome *o)
{
	char how[600];
	int code;

	snprintf(o->stderr_tail, sizeof(o->stderr_tail), "%s", r->err_tail);
	if (r->exec_errno == ENOENT)
		return idem_activity_fail(
		    o, "CommandNotFound", 0,
		    "activity %s: `%s` was not found (not on PATH, and no such "
		    "file in %s): install it, or fix activities.%s.command in %s",
		    name, cmd, a->dir, name, a->file);
	if (r->exec_errno != 0)
		return idem_activity_fail(o, "CommandNotStarted", 0,
		                          "activity %s: `%s` cannot be started: %s (fix "
		                          "activities.%s.command in %s)",
		                          name, cmd, strerror(r->exec_errno), name, a->file);
	if (r->out_too_large)
		return idem_activity_fail(
		    o, "OutputTooLarge", 0,
		    "activity %s: `%s` wrote more than %d bytes on stdout; a "
		    "result is one JSON object of at most 1 MiB (write logs to "
		    "stderr)",
		    name, cmd, MAX_RESULT);
	code = command_exit_code(r);
	if (code == 0)
		return result_of(name, r, cmd, o);
	command_describe(r, how, sizeof(how));
	idem_activity_fail(o, WIFSIGNALED(r->status) ? "CommandKilled" : "CommandFailed",
	                   code != EXIT_NON_RETRYABLE, "activity %s: `%s`: %s", name, cmd, how);
	named_error(r->out, o);
	return -1;
}

/* The attempt lived through the point its plan killed it at: the
 * command never called idem-point there. Said in the history, where a
 * user looks for the kill that did not happen. */
static void unreached(struct idem_activity_outcome *o, const char *point)
{
	size_t len = strlen(o->stderr_tail);
	char note[200];
	int n = snprintf(note, sizeof(note),
	                 "%sidem: the fault plan killed this attempt at crash point %s, but the "
	                 "command never called idem-point %s\n",
	                 len > 0 && o->stderr_tail[len - 1] != '\n' ? "\n" : "", point, point);

	if (len + (size_t)n >= sizeof(o->stderr_tail)) { /* keep the end, as for stderr */
		size_t drop = len + (size_t)n - (sizeof(o->stderr_tail) - 1);
		memmove(o->stderr_tail, o->stderr_tail + drop, len - drop + 1);
		len -= drop;
	}
	memcpy(o->stderr_tail + len, note, (size_t)n + 1);
}

int file_app_run_activity(const struct idem_activity_env *env, const struct msg_task *t,
                          struct idem_activity_outcome *out)
{
	const struct file_activity *fa = activity_named(t->activity);
	struct vars vs = {.n = 0};
	struct command_result r;
	struct command_spec s = {.dir = file_app_loaded->dir,
	                         .max_stdout = MAX_RESULT,
	                         .control = 1,
	                         .on_control = on_control,
	                         .arg = (void *)env};
	char err[256], cmd[512];
	char *input;
	int rc;

	if (fa == NULL)
		return idem_activity_fail(out, "UnknownActivity", 0, "no command activity \"%s\"",
		                          t->activity);
	s.argv = (const char *const *)(env->naive && fa->naive != NULL ? fa->naive : fa->command);
	command_line(s.argv, cmd, sizeof(cmd));
	input = json_dumps(t->input, JSON_COMPACT); /* an object: never NULL */
	s.input = input;
	s.input_len = strlen(input);
	attempt_vars(&vs, env, t);
	s.env = (const char *const *)vs.v;
	rc = command_run(&s, &r, err, sizeof(err));
	free(input);
	vars_free(&vs);
	if (rc != 0)
		return idem_activity_fail(out, "WorkerError", 1, "activity %s: %s", t->activity,
		                          err);
	rc = outcome_of(file_app_loaded, t->activity, &r, cmd, out);
	if (env->kill_at != NULL)
		unreached(out, env->kill_at);
	free(r.out);
	return rc;
}

/* ---- the check command ---- */

static int kind_known(const struct file_app *a, const char *word)
{
	for (const char *const *k = a->app.check_kinds; k != NULL && *k != NULL; k++)
		if (strcmp(*k, word) == 0)
			return 1;
	return 0;
}

/* The lines of out: with check.kinds declared, each line starting with
 * one of them is a violation of that kind (the others, a summary say,
 * are not); without, every line is a violation of kind "check". */
static void report_lines(struct idem_check *c, const struct file_app *a, char *out)
{
	int n = 0;

	for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n")) {
		char word[64];
		size_t w = strcspn(line, " \t:");
		int known;

		if (line[strspn(line, " \t\r")] == '\0')
			continue;
		snprintf(word, sizeof(word), "%.*s", (int)(w < 63 ? w : 63), line);
		known = kind_known(a, word) && strcmp(word, "check") != 0;
		if (a->check_kinds_declared && !known)
			continue;
		/* "duplicated x1: twice" is listed under duplicated as "x1: twice". */
		if (known)
			line += w + strspn(line + w, " \t:");
		idem_check_add(c, known ? word : "check", NULL, "%s", line);
		n++;
	}
	if (n == 0)
		idem_check_add(c, "check", NULL,
		               "the check command exited 1 and named no violation");
}

int file_app_check(struct idem_check *c, const struct idem_config *cfg, const char *state_db,
                   char *err, size_t errlen)
{
	struct file_app *a = file_app_loaded;
	struct vars vs = {.n = 0};
	struct command_spec s = {.argv = (const char *const *)a->check,
	                         .dir = a->dir,
	                         .max_stdout = MAX_RESULT,
	                         .own_group = 1,
	                         .timeout_ms = CHECK_TIMEOUT_MS};
	struct command_result r;
	char how[600], cmd[512], real[PATH_MAX];
	char *data = dir_of(cfg != NULL ? cfg->database : state_db);
	int rc = -1, code;

	var(&vs, "IDEM_APP_DIR", "%s", a->dir);
	var(&vs, "IDEM_DATA_DIR", "%s", data);
	var(&vs, "IDEM_STATE_DB", "%s", realpath(state_db, real) != NULL ? real : state_db);
	s.env = (const char *const *)vs.v;
	command_line(s.argv, cmd, sizeof(cmd));
	if (command_run(&s, &r, err, errlen) != 0)
		goto out;
	code = command_exit_code(&r);
	if (code == 0 || code == 1) {
		if (code == 1)
			report_lines(c, a, r.out);
		rc = 0;
	} else {
		command_describe(&r, how, sizeof(how));
		snprintf(err, errlen,
		         "%s: check command `%s` (in %s) could not check: %s (exit 0: the "
		         "invariants hold, 1: violated, one per line)",
		         a->file, cmd, a->dir, how);
	}
	free(r.out);
out:
	vars_free(&vs);
	free(data);
	return rc;
}

/* A panel's command: run in the app directory with IDEM_APP_DIR and
 * IDEM_DATA_DIR, as the check command is; it prints one JSON document. */
int file_app_panel(int index, const struct idem_config *cfg, json_t **out, char *err, size_t errlen)
{
	struct file_app *a = file_app_loaded;
	int own = index - a->nbase_panels;
	struct vars vs = {.n = 0};
	struct command_spec s = {.dir = a->dir,
	                         .max_stdout = MAX_RESULT,
	                         .own_group = 1,
	                         .timeout_ms = PANEL_TIMEOUT_MS};
	struct command_result r;
	char how[600], cmd[512];
	char *data = dir_of(cfg->database);
	json_error_t jerr;
	int rc = -1;

	*out = NULL;
	s.argv = (const char *const *)a->panel_cmds[own];
	var(&vs, "IDEM_APP_DIR", "%s", a->dir);
	var(&vs, "IDEM_DATA_DIR", "%s", data);
	s.env = (const char *const *)vs.v;
	command_line(s.argv, cmd, sizeof(cmd));
	if (command_run(&s, &r, err, errlen) != 0)
		goto out;
	if (command_exit_code(&r) != 0 || r.out_too_large) {
		if (r.out_too_large)
			snprintf(how, sizeof(how), "it printed more than %d bytes", MAX_RESULT);
		else
			command_describe(&r, how, sizeof(how));
		snprintf(err, errlen, "%s: panel \"%s\": command `%s` (in %s) failed: %s", a->file,
		         a->panels[index].title, cmd, a->dir, how);
	} else if ((*out = json_loadb(r.out, r.out_len, 0, &jerr)) == NULL) {
		snprintf(err, errlen,
		         "%s: panel \"%s\": command `%s` printed no JSON document (line %d, "
		         "column %d: %s); print one object or array of objects",
		         a->file, a->panels[index].title, cmd, jerr.line, jerr.column, jerr.text);
	} else {
		rc = 0;
	}
	free(r.out);
out:
	vars_free(&vs);
	free(data);
	return rc;
}

/* ---- workflows ---- */

enum idem_wf_outcome file_app_run_flow(struct idem_wf_run *run)
{
	return flow_run(run->type->data, run);
}

int file_app_prepare(const struct idem_workflow *type, json_t *input, const struct idem_config *cfg,
                     char *err, size_t errlen)
{
	(void)cfg;
	return flow_prepare(type->data, input, err, errlen);
}
