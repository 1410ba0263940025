/* idem-point, idem-heartbeat — what a command activity calls from any
 * language (docs/own-activities.md):
 *
 *   idem-point NAME       at the activity's crash point NAME: when the
 *                         attempt's fault plan kills there (IDEM_KILL_AT),
 *                         logs one line on idem's log (IDEM_LOG_FD) and
 *                         SIGKILLs the attempt's process group (IDEM_PGID:
 *                         the worker and the command, as a crash would);
 *                         otherwise tells the worker the point was reached
 *                         and returns at once.
 *   idem-heartbeat JSON   checkpoints the attempt's progress: the next
 *                         attempt of the step reads JSON as IDEM_HEARTBEAT.
 *
 * Both talk to the worker by one datagram on IDEM_CONTROL_FD. Outside
 * idem (no IDEM_* variables) both do nothing and exit 0, so that an
 * activity runs by hand unchanged. Exit 2: a usage error. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fault.h"
#include "log.h"
#include "version.h"

#define DATAGRAM_MAX 65000

static int env_int(const char *name, long *out)
{
	const char *text = getenv(name);
	char *end = NULL;

	if (text == NULL || *text == '\0')
		return -1;
	errno = 0;
	*out = strtol(text, &end, 10);
	return *end == '\0' && errno == 0 && *out >= 0 && *out <= INT_MAX ? 0 : -1;
}

/* One datagram to the worker, if there is one to tell. */
static void tell(const char *verb, const char *text)
{
	char msg[DATAGRAM_MAX + 32];
	long fd;
	int n;

	if (env_int("IDEM_CONTROL_FD", &fd) != 0)
		return;
	n = snprintf(msg, sizeof(msg), "%s %s", verb, text);
	(void)send((int)fd, msg, (size_t)n, MSG_NOSIGNAL);
}

static const char *env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);
	return v != NULL ? v : dflt;
}

static _Noreturn void kill_here(const char *point)
{
	long log_fd, pgid;
	char wf[300];

	if (env_int("IDEM_LOG_FD", &log_fd) == 0 && dup2((int)log_fd, 2) >= 0) {
		log_init("worker", LOG_INFO);
		log_info("injected fault: kill",
		         "point=%s wf=%s step=%s attempt=%s activity=%s command_pid=%ld", point,
		         log_quote(wf, sizeof(wf), env_or("IDEM_WORKFLOW_ID", "")),
		         env_or("IDEM_STEP", "?"), env_or("IDEM_ATTEMPT", "?"),
		         env_or("IDEM_ACTIVITY", "?"), (long)getppid());
	}
	if (env_int("IDEM_PGID", &pgid) == 0 && pgid > 1)
		kill(-(pid_t)pgid, SIGKILL);
	/* Not in that group (the command made its own): its own too. */
	kill(0, SIGKILL);
	_exit(137);
}

static int point(int argc, char **argv)
{
	const char *at = getenv("IDEM_KILL_AT");

	if (argc != 2 || !fault_point_name_ok(argv[1])) {
		fprintf(stderr,
		        "usage: idem-point NAME (a crash point: 1..%d of [a-z0-9_], e.g. "
		        "after_effect)\n",
		        FAULT_POINT_NAME_MAX - 1);
		return 2;
	}
	if (at != NULL && strcmp(at, argv[1]) == 0)
		kill_here(argv[1]);
	tell("point", argv[1]);
	return 0;
}

static int heartbeat(int argc, char **argv)
{
	if (argc != 2 || strlen(argv[1]) > DATAGRAM_MAX) {
		fprintf(stderr, "usage: idem-heartbeat DETAILS (JSON, at most %d bytes)\n",
		        DATAGRAM_MAX);
		return 2;
	}
	tell("heartbeat", argv[1]);
	return 0;
}

static const char help_point[] =
    "usage: idem-point NAME\n"
    "       idem-point --help | --version\n"
    "\n"
    "Called by a command activity at its crash point NAME (1..63 of [a-z0-9_]):\n"
    "when the attempt's fault plan kills there (IDEM_KILL_AT), it logs one line\n"
    "on idem's log and SIGKILLs the attempt's process group, the worker and the\n"
    "command, as a crash would; otherwise it tells the worker the point was\n"
    "reached and returns at once. Outside idem it does nothing and exits 0.\n"
    "Exit 2: a usage error.\n";

static const char help_heartbeat[] =
    "usage: idem-heartbeat DETAILS\n"
    "       idem-heartbeat --help | --version\n"
    "\n"
    "Called by a command activity to checkpoint its progress: DETAILS (JSON, at\n"
    "most 65000 bytes) reaches the next attempt of the step as IDEM_HEARTBEAT, and\n"
    "each call resets HEARTBEAT_TIMEOUT. Outside idem it does nothing and exits 0.\n"
    "Exit 2: a usage error.\n";

int main(int argc, char **argv)
{
	const char *name = strrchr(argv[0], '/');

	name = name != NULL ? name + 1 : argv[0];
	idem_version_exit(argc, argv, name);
	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(strcmp(name, "idem-heartbeat") == 0 ? help_heartbeat : help_point, stdout);
		return 0;
	}
	if (strcmp(name, "idem-heartbeat") == 0)
		return heartbeat(argc, argv);
	return point(argc, argv);
}
