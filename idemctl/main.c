/* main.c — idemctl's entry: the configuration, the global options, the
 * command table and --help; the commands are in cmd_*.c (cmd.h) and what
 * they share in ctl.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps.h"
#include "cmd.h"
#include "config.h"
#include "ctl.h"

static const char usage_text[] =
    "usage: idemctl [OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "The command-line client of idem-supervisor's control API.\n"
    "\n"
    "Commands:\n"
    "  start --order-id ID --product-id ID --quantity N [--workflow-id ID]\n"
    "        [--wait SECONDS]\n"
    "                   start an inventory workflow; idempotent: a workflow id\n"
    "                   (default: the order id) is started once; --wait also\n"
    "                   waits until it closes, in the same request, and exits as\n"
    "                   wait does\n"
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
    "                   N times; also stats --watch\n"
    "  stock get PRODUCT\n"
    "  stock set PRODUCT N [--reason TEXT]\n"
    "                   read or set a product's stock in the app DB\n"
    "  check [--offline] [--wait SECONDS]\n"
    "                   verify that nothing was lost or applied twice and that\n"
    "                   the stocks add up (see the supervisor's GET /v1/check);\n"
    "                   workflows still running are listed, and the verdict is\n"
    "                   final only once none runs: --wait first waits for that\n"
    "                   (as wait --all); --offline reads DATABASE,\n"
    "                   STATE_DATABASE and SUPPLIER_DATABASE itself (--database\n"
    "                   PATH, ...)\n"
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

static const struct command {
	const char *name;
	int (*run)(struct ctl *c, int argc, char **argv);
} commands[] = {
    {"start", cmd_start}, {"show", cmd_show},   {"get", cmd_get},
    {"list", cmd_list},   {"wait", cmd_wait},   {"stats", cmd_stats},
    {"top", cmd_top},     {"stock", cmd_stock}, {"check", cmd_check},
};

static void print_usage(const struct ctl *c, FILE *out)
{
	fprintf(out, usage_text, c->cfg.socket);
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
			return printf("idemctl %s\n", IDEM_VERSION), IDEM_EXIT_OK;
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
	const char *name;
	char **args;
	int rc;

	if (nrest == 0) {
		print_usage(c, stderr);
		return ctl_fail(IDEM_EXIT_USAGE, "no command given");
	}
	name = argv[rest[0]];
	if (strcmp(name, "help") == 0)
		return print_usage(c, stdout), IDEM_EXIT_OK;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(commands[i].name, name) != 0)
			continue;
		args = calloc((size_t)nrest, sizeof(*args));
		for (int j = 1; j < nrest; j++)
			args[j - 1] = argv[rest[j]];
		rc = commands[i].run(c, nrest - 1, args);
		free(args);
		return rc;
	}
	return ctl_fail(IDEM_EXIT_USAGE,
	                "unknown command \"%s\" (commands: start, show, get, list, "
	                "wait, stats, top, stock, check)",
	                name);
}

int main(int argc, char **argv)
{
	static struct ctl c; /* the config is large */
	int *rest = calloc((size_t)argc + 1, sizeof(*rest)), nrest = 0, k = 0, rc;
	char err[1024];

	c.timeout_ms = CTL_TIMEOUT_MS;
	if (apps_add_config_keys(err, sizeof(err)) != 0 ||
	    config_load(&c.cfg, argc, argv, rest, &nrest, err, sizeof(err)) != 0) {
		rc = ctl_fail(IDEM_EXIT_USAGE, "%s", err);
		goto done;
	}
	c.ns_given = namespace_given(&c.cfg, argc, argv);
	snprintf(c.endpoint, sizeof(c.endpoint), "%s", c.cfg.socket);
	rc = global_options(&c, argv, rest, nrest, &k);
	if (rc < 0)
		rc = dispatch(&c, argv, rest + k, nrest - k);
done:
	free(rest);
	fflush(stdout);
	return rc;
}
