/* main.c — idemctl's entry: the configuration, the global options, the
 * command table (idemctl's own commands and APP's) and --help, with the
 * app's start flags and commands; idemctl's commands are in cmd_*.c
 * (cmd.h) and what they share in ctl.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps.h"
#include "cmd.h"
#include "config.h"
#include "ctl.h"
#include "fmt.h"
#include "http.h"
#include "xalloc.h"
#include "version.h"

#define HELP_WIDTH 76  /* --help's lines are at most this long */
#define HELP_COLUMN 19 /* where a command's description starts */
#define HELP_INDENT 8  /* where a synopsis goes on */

static const char usage_head[] = "usage: idemctl [OPTIONS] COMMAND [ARGS]\n"
                                 "\n"
                                 "The command-line client of idem-supervisor's control API.\n"
                                 "\n"
                                 "Commands:\n";

/* After start, before the app's commands. */
static const char usage_commands[] =
    "  show ID          a workflow and its history as a timeline: each step with\n"
    "                   its attempts (fault, outcome, retry wait, worker pid,\n"
    "                   how long each waited and took)\n"
    "  get ID           a workflow's status and result\n"
    "  list [--status running|completed|failed] [--limit N]\n"
    "                   workflows, oldest first (at most N, default 100)\n"
    "  wait ID|--all [--timeout SECONDS]\n"
    "                   wait until the workflow closes, or until none is running\n"
    "                   (default 30 s)\n"
    "  stats            workflows by status, attempts, retries, the worker pool\n"
    "  top [--interval SECONDS] [--count N]\n"
    "                   the worker slots (pid, state, the attempt each runs) with\n"
    "                   totals and rates, every second (default) until Ctrl-C, or\n"
    "                   N times; also stats --watch\n";

/* After the app's commands; %s is SOCKET. */
static const char usage_tail[] =
    "  check [--offline] [--wait SECONDS]\n"
    "                   verify that nothing was lost or applied twice, and the\n"
    "                   app's own invariants (the supervisor's GET /v1/check);\n"
    "                   workflows still running are listed, and the verdict is\n"
    "                   final only once none runs: --wait first waits for that\n"
    "                   (as wait --all); --offline reads STATE_DATABASE,\n"
    "                   DATABASE and the app's other databases itself\n"
    "  panel N [--offline]\n"
    "                   the app's dashboard panel N as JSON (GET /v1/panels/N);\n"
    "                   --offline runs the panel's command here\n"
    "                   (--database PATH, ...)\n"
    "  faults           the fault plan in force on the live supervisor, the\n"
    "                   config's, and the latest changes\n"
    "  faults set --kill-rate R [--error-rate R ...] [--for DURATION]\n"
    "                   change the plan now, without a restart: the config's\n"
    "                   FAULT_* keys as flags (--kill-rate-after-commit R,\n"
    "                   --async-kill-rate, --delay-rate, --peer-rate,\n"
    "                   --kill-points, --activities, --max-attempt), the others\n"
    "                   as configured; for DURATION (\"5m\"), then the config's\n"
    "  faults off [--for DURATION]\n"
    "                   no fault at all (for DURATION, then the config's)\n"
    "  faults reset     the config's plan again\n"
    "  faults env       the plan in force as .env lines: append them to the\n"
    "                   .env and SIGHUP to keep it past a restart\n"
    "Every command accepts --namespace NS (default: NAMESPACE; list: all).\n"
    "\n"
    "Options (before the command):\n"
    "  --socket PATH      the supervisor's Unix socket (default: SOCKET, now %s)\n"
    "  --http URL         use TCP instead, e.g. http://127.0.0.1:8080 (HTTP_LISTEN)\n"
    "  --env FILE         read the configuration from FILE (default ./.env)\n"
    "  --json             print the API's JSON document as-is\n"
    "  --timeout SECONDS  limit for one HTTP exchange (default 10; wait adds its own)\n"
    "  --help, --version\n"
    "Any configuration key is also accepted as a flag (--namespace NS).\n"
    "\n"
    "Exit codes:\n"
    "  0  ok (check: no violation)\n"
    "  1  wait: the workflow failed; check: an invariant is violated;\n"
    "     any command: the supervisor refused the request\n"
    "  2  usage error, or the supervisor cannot be reached (check --offline: a\n"
    "     database cannot be opened or read; check: the supervisor could not check)\n"
    "  3  wait: the timeout passed with the workflow still running\n"
    "  6  check: not quiescent: no violation, but workflows still run (also\n"
    "     when check --wait timed out); a violation (1) wins over it\n"
    "wait --all exits 0 once no workflow is running, even when some failed\n"
    "(see idemctl list --status failed).\n";

/* idemctl's own commands; the app's (idem_app.h) are listed where the
 * NULL entry is, in messages and in --help, and never shadow these. */
static const struct command {
	const char *name;
	int (*run)(struct ctl *c, int argc, char **argv);
} commands[] = {
    {"start", cmd_start}, {"show", cmd_show},   {"get", cmd_get},       {"list", cmd_list},
    {"wait", cmd_wait},   {"stats", cmd_stats}, {"top", cmd_top},       {NULL, NULL},
    {"check", cmd_check}, {"panel", cmd_panel}, {"faults", cmd_faults},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct command *builtin(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (commands[i].name != NULL && strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* The app's commands (a list ending with a NULL name, maybe empty). */
static const struct idem_app_command *app_commands(const struct ctl *c)
{
	static const struct idem_app_command none[] = {{0}};

	return c->app != NULL && c->app->commands != NULL ? c->app->commands : none;
}

/* The app's command called name, unless it is one of idemctl's. */
static const struct idem_app_command *app_command(const struct ctl *c, const char *name)
{
	for (const struct idem_app_command *a = app_commands(c); a->name != NULL; a++)
		if (strcmp(a->name, name) == 0 && builtin(name) == NULL)
			return a;
	return NULL;
}

/* "start, show, ..., check": every command's name, in the table's order. */
static void command_names(const struct ctl *c, char *buf, size_t len)
{
	buf[0] = '\0';
	for (size_t i = 0; i < NCOMMANDS; i++) {
		if (commands[i].name != NULL) {
			fmt_append(buf, len, "%s%s", buf[0] ? ", " : "", commands[i].name);
			continue;
		}
		for (const struct idem_app_command *a = app_commands(c); a->name != NULL; a++)
			if (builtin(a->name) == NULL)
				fmt_append(buf, len, "%s%s", buf[0] ? ", " : "", a->name);
	}
}

/* --help's text, written a word (or "--flag VALUE") at a time: a word
 * that would pass HELP_WIDTH starts a new line, indented. */
struct help_line {
	FILE *out;
	int col, indent, fresh;
};

static void help_word(struct help_line *l, const char *word)
{
	int n = (int)strlen(word);

	if (!l->fresh && l->col + 1 + n > HELP_WIDTH) {
		fprintf(l->out, "\n%*s", l->indent, "");
		l->col = l->indent;
	} else if (!l->fresh) {
		fputc(' ', l->out);
		l->col++;
	}
	fputs(word, l->out);
	l->col += n;
	l->fresh = 0;
}

static void help_words(struct help_line *l, const char *text)
{
	char word[256];

	for (const char *p = text; *p != '\0';) {
		size_t n = strcspn(p, " ");

		snprintf(word, sizeof(word), "%.*s", (int)n, p);
		help_word(l, word);
		p += n + strspn(p + n, " ");
	}
}

/* What start does, for --help: "start a TYPE workflow; idempotent: a
 * workflow id (default: the ID FIELD) is started once; ...", from the
 * app's first workflow type (start's default) and its id_field, "_" read
 * as " ". */
static void start_description(const struct ctl *c, char *buf, size_t len)
{
	const struct idem_workflow *t = c->app != NULL ? c->app->workflows : NULL;
	char type[128] = "a", id[128] = "";

	if (t != NULL && t->name != NULL)
		snprintf(type, sizeof(type), "%s %s", strchr("aeiou", t->name[0]) ? "an" : "a",
		         t->name);
	if (t != NULL && t->name != NULL && t->id_field != NULL) {
		snprintf(id, sizeof(id), " (default: the %s)", t->id_field);
		for (char *p = id; *p != '\0'; p++)
			*p = *p == '_' ? ' ' : *p;
	}
	snprintf(buf, len,
	         "start %s workflow; idempotent: a workflow id%s is started once; --wait also "
	         "waits until it closes, in the same request, and exits as wait does",
	         type, id);
}

/* start's lines: its synopsis, with the app's flags, and what it does. */
static void print_start_usage(const struct ctl *c, FILE *out)
{
	struct help_line l = {out, (int)strlen("  start"), HELP_INDENT, 0};
	char word[128], text[512];

	fputs("  start", out);
	for (const struct idem_start_flag *f = ctl_start_flags(c); f->flag != NULL; f++) {
		snprintf(word, sizeof(word), f->required ? "%s %s" : "[%s %s]", f->flag, f->meta);
		help_word(&l, word);
	}
	if (ctl_start_flags(c)->flag == NULL)
		help_words(&l, "--input JSON [--type T]");
	help_words(&l, "[--workflow-id ID] [--wait SECONDS]");
	start_description(c, text, sizeof(text));
	fprintf(out, "\n%*s", HELP_COLUMN, "");
	l = (struct help_line){out, HELP_COLUMN, HELP_COLUMN, 1};
	help_words(&l, text);
	fputc('\n', out);
}

static void print_usage(const struct ctl *c, FILE *out)
{
	fputs(usage_head, out);
	print_start_usage(c, out);
	fputs(usage_commands, out);
	for (const struct idem_app_command *a = app_commands(c); a->name != NULL; a++)
		if (builtin(a->name) == NULL)
			fputs(a->usage, out);
	fprintf(out, usage_tail, c->cfg.socket);
}

/* Was the namespace chosen, by a flag or by a value other than the
 * default (environment, .env)? Then every request names it. */
static int namespace_given(const struct idem_config *cfg, int argc, char **argv)
{
	struct idem_config def;

	for (int i = 1; i < argc; i++)
		if (strncmp(argv[i], "--namespace", 11) == 0 &&
		    (argv[i][11] == '\0' || argv[i][11] == '='))
			return 1;
	config_defaults(&def);
	return strcmp(def.namespace_, cfg->namespace_) != 0;
}

/* The value of "--name=V" or "--name V" among rest[]; advances *k. */
static const char *global_value(char **argv, const int *rest, int nrest, int *k)
{
	const char *eq = strchr(argv[rest[*k]], '=');

	if (eq != NULL)
		return eq + 1;
	if (*k + 1 >= nrest)
		return NULL;
	return argv[rest[++*k]];
}

static int set_http(struct ctl *c, const char *url)
{
	if (url == NULL || *url == '\0')
		return ctl_fail(IDEM_EXIT_USAGE, "--http needs a URL, e.g. http://127.0.0.1:8080");
	snprintf(c->endpoint, sizeof(c->endpoint), "%s%s",
	         strncmp(url, "http://", 7) == 0 ? "" : "http://", url);
	return -1;
}

/* Handles the options before the command; *k becomes the command's index
 * in rest[]. Returns -1 to go on, or an exit code. */
static int global_options(struct ctl *c, char **argv, const int *rest, int nrest, int *k)
{
	int rc = -1;

	for (*k = 0; rc < 0 && *k < nrest && argv[rest[*k]][0] == '-'; ++*k) {
		const char *arg = argv[rest[*k]];
		size_t n = strcspn(arg, "=");

		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
			return print_usage(c, stdout), IDEM_EXIT_OK;
		if (strcmp(arg, "--version") == 0)
			return printf("idemctl %s\n", idem_version()), IDEM_EXIT_OK;
		if (strcmp(arg, "--json") == 0)
			c->json = 1;
		else if (n == 6 && strncmp(arg, "--http", n) == 0)
			rc = set_http(c, global_value(argv, rest, nrest, k));
		else if (n == 9 && strncmp(arg, "--timeout", n) == 0) {
			const char *v = global_value(argv, rest, nrest, k);

			rc = v ? ctl_parse_timeout("", "--timeout", v, 1, &c->timeout_ms)
			       : ctl_fail(IDEM_EXIT_USAGE, "--timeout needs a value in seconds");
			rc = rc == 0 ? -1 : rc;
		} else
			rc = ctl_fail(IDEM_EXIT_USAGE, "unknown option \"%s\" (see idemctl --help)",
			              arg);
	}
	return rc;
}

static int dispatch(struct ctl *c, char **argv, const int *rest, int nrest)
{
	const struct command *cmd;
	const struct idem_app_command *app;
	struct idem_ctl lent;
	const char *name;
	char names[512], **args;
	int rc;

	if (nrest == 0) {
		print_usage(c, stderr);
		return ctl_fail(IDEM_EXIT_USAGE, "no command given");
	}
	name = argv[rest[0]];
	if (strcmp(name, "help") == 0)
		return print_usage(c, stdout), IDEM_EXIT_OK;
	cmd = builtin(name);
	app = cmd == NULL ? app_command(c, name) : NULL;
	if (cmd == NULL && app == NULL) {
		command_names(c, names, sizeof(names));
		return ctl_fail(IDEM_EXIT_USAGE, "unknown command \"%s\" (commands: %s)", name,
		                names);
	}
	args = xcalloc((size_t)nrest, sizeof(*args));
	for (int j = 1; j < nrest; j++)
		args[j - 1] = argv[rest[j]];
	if (cmd != NULL) {
		rc = cmd->run(c, nrest - 1, args);
	} else {
		http_app_ctl(c, &lent);
		rc = app->run(&lent, nrest - 1, args);
	}
	free(args);
	return rc;
}

int main(int argc, char **argv)
{
	static struct ctl c; /* the config is large */
	int *rest = NULL, nrest = 0, k = 0, rc;
	char err[1024];

	xalloc_install_json(); /* before anything allocates (xalloc.h) */
	rest = xcalloc((size_t)argc + 1, sizeof(*rest));
	c.timeout_ms = CTL_TIMEOUT_MS;
	if (apps_add_config_keys(err, sizeof(err)) != 0) {
		rc = ctl_fail(IDEM_EXIT_USAGE, "%s", err);
		goto done;
	}
	if (config_load(&c.cfg, argc, argv, rest, &nrest, err, sizeof(err)) != 0) {
		/* Help still comes, for the default app, with what is wrong. */
		if (config_help_asked(argc, argv)) {
			config_defaults(&c.cfg);
			c.app = apps_load(c.cfg.app, NULL, 0);
			print_usage(&c, stdout);
			fprintf(stderr,
			        "idemctl: the configuration does not load, so this help is "
			        "for the default app (%s): %s\n",
			        c.cfg.app, err);
			rc = IDEM_EXIT_OK;
		} else
			rc = ctl_fail(IDEM_EXIT_USAGE, "%s", err);
		goto done;
	}
	c.ns_given = namespace_given(&c.cfg, argc, argv);
	/* NULL when APP names no app: the commands that need one say so. */
	c.app = apps_load(c.cfg.app, err, sizeof(err));
	snprintf(c.endpoint, sizeof(c.endpoint), "%s", c.cfg.socket);
	rc = global_options(&c, argv, rest, nrest, &k);
	if (rc < 0)
		rc = dispatch(&c, argv, rest + k, nrest - k);
done:
	free(rest);
	fflush(stdout);
	return rc;
}
