/* idem-worker — runs activity attempts for idem-supervisor, one at a time.
 *
 * The supervisor starts it (fork server or posix_spawn) with one end of a socketpair as
 * --channel-fd N. The worker says {"type":"ready"}, then answers every
 * {"type":"task"} frame with one {"type":"result"} frame, sending
 * {"type":"heartbeat"} frames before it while the activity checkpoints
 * progress. The activities are the app's (APP, apps/apps.h).
 * It exits 0 when the channel closes, IDEM_EXIT_FAIL on a broken channel
 * or message, and IDEM_EXIT_DB when the app DB cannot be opened or an
 * attempt left it inside a transaction that could not be rolled back
 * (the supervisor respawns a worker with a fresh connection; see
 * exitcodes.h). Other app DB errors are the attempt's: a retryable
 * DatabaseError, and the worker carries on.
 *
 * A task may carry a fault plan (its "fault" object, shared/fault.h),
 * which the worker carries out, logging one "injected fault: ..." line:
 *   kill P       SIGKILL itself at crash point P (before_effect,
 *                after_effect, after_commit: through the activity hooks;
 *                mid_reply: half of the result frame written; any other
 *                point, and every point of a command activity: handed to
 *                the activity as env->kill_at, whose code kills the
 *                worker's process group there). A point the attempt never
 *                reaches (a refusal, a replay) kills nothing.
 *   error W      a retryable "InjectedError": before_effect without
 *                running the activity; after_effect after running it (its
 *                effect committed, its result discarded), unless the
 *                activity failed on its own.
 *   delay MS     sleeps MS before running the activity normally.
 *   peer M       the activity hands M to the app's outside service
 *                (env->peer_fault; the planner plans it only for an
 *                activity whose options say it calls one).
 * A fault object it cannot read is answered with a non-retryable
 * "BadFault" error; the worker carries on. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "activities.h"
#include "apps.h"
#include "clock.h"
#include "config.h"
#include "exitcodes.h"
#include "fault.h"
#include "faultvfs.h"
#include "forkserver.h"
#include "frame.h"
#include "log.h"
#include "msg.h"
#include "pgconn.h"
#include "pdeath.h"
#include "xalloc.h"
#include "version.h"

struct worker_args {
	int channel_fd;
	int naive;
	int help;
	int fork_server; /* --fork-server: fork workers on request (see fork_server) */
};

/* The attempt in flight: its channel, task and fault plan. The activity
 * hooks and the heartbeat callback get it as their argument. */
struct attempt {
	int fd;
	const struct msg_task *t; /* borrows from the task message */
	struct fault_plan plan;
};

/* Large (the seed table): static rather than on the stack. */
static struct idem_config cfg;
static int storage_faults; /* FAULT_VFS targets the app DB */

static void usage(FILE *f)
{
	fputs("usage: idem-worker --channel-fd N [--naive] [--fork-server] [config flags...]\n"
	      "\n"
	      "Runs activity attempts for idem-supervisor, which starts it with one end of a\n"
	      "socketpair as descriptor N. It is not meant to be started by hand.\n"
	      "\n"
	      "  --channel-fd N     the inherited channel descriptor (required)\n"
	      "  --naive            run the activities without their idempotency guards\n"
	      "                     (the control experiment: retries apply twice)\n"
	      "  --fork-server      N is a control socket: fork a worker for each channel\n"
	      "                     the supervisor sends on it (no exec per worker)\n"
	      "  --env FILE         read the configuration from FILE (default .env)\n"
	      "  --database PATH    the app DB (DATABASE)\n"
	      "  --max-frame BYTES, --log-level LEVEL, and the app's keys, ...\n"
	      "                     any key of .env-dist, lower-cased with '-' for '_'\n"
	      "  -h, --help         show this help\n"
	      "  --version          print the version (and git commit) and exit\n",
	      f);
}

static int parse_fd(const char *text, int *fd, char *err, size_t errlen)
{
	char *end = NULL;
	long v;

	errno = 0;
	v = strtol(text, &end, 10);
	if (*text == '\0' || *end != '\0' || errno != 0 || v < 0 || v > INT_MAX) {
		snprintf(err, errlen, "--channel-fd %s is not a descriptor number", text);
		return -1;
	}
	*fd = (int)v;
	return 0;
}

/* The worker's own flags, among those config_load() left over. */
static int parse_rest(int argc, char **argv, const int *rest, int nrest, struct worker_args *a,
                      char *err, size_t errlen)
{
	for (int k = 0; k < nrest; k++) {
		const char *arg = argv[rest[k]];
		if (strcmp(arg, "--naive") == 0) {
			a->naive = 1;
		} else if (strcmp(arg, "--fork-server") == 0) {
			a->fork_server = 1;
		} else if (strncmp(arg, "--channel-fd=", 13) == 0) {
			if (parse_fd(arg + 13, &a->channel_fd, err, errlen) != 0)
				return -1;
		} else if (strcmp(arg, "--channel-fd") == 0) {
			if (k + 1 >= nrest || rest[k + 1] != rest[k] + 1 || rest[k] + 1 >= argc) {
				snprintf(err, errlen, "--channel-fd needs a descriptor number");
				return -1;
			}
			if (parse_fd(argv[rest[++k]], &a->channel_fd, err, errlen) != 0)
				return -1;
		} else {
			snprintf(err, errlen, "unknown argument \"%s\"; see idem-worker --help",
			         arg);
			return -1;
		}
	}
	if (a->channel_fd < 0) {
		snprintf(err, errlen, "--channel-fd N is required (idem-supervisor passes it)");
		return -1;
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct worker_args *a, char *err, size_t errlen)
{
	int *rest = NULL;
	int nrest = 0;
	int rc = -1;

	if (config_help_asked(argc, argv)) {
		a->help = 1;
		return 0;
	}
	rest = xcalloc((size_t)argc, sizeof(*rest));
	if (apps_add_config_keys(err, errlen) == 0 &&
	    config_load(&cfg, argc, argv, rest, &nrest, err, errlen) == 0)
		rc = parse_rest(argc, argv, rest, nrest, a, err, errlen);
	free(rest);
	return rc;
}

/* The supervisor's end is nonblocking; this one must block. */
static int prepare_channel(int fd, char *err, size_t errlen)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
		snprintf(err, errlen,
		         "--channel-fd %d: %s (start idem-worker from idem-supervisor)", fd,
		         strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- faults ---- */

/* One info line about a fault being carried out; detail is "key=value". */
static void log_injected(const struct attempt *a, const char *msg, const char *detail)
{
	char wf[300], act[300];

	log_info(msg, "%s task_id=%lld wf=%s step=%lld attempt=%lld activity=%s", detail,
	         (long long)a->t->task_id, log_quote(wf, sizeof(wf), a->t->workflow_id),
	         (long long)a->t->step, (long long)a->t->attempt,
	         log_quote(act, sizeof(act), a->t->activity));
}

/* The plan's SIGKILL. The log line is one write(2): it survives. */
static _Noreturn void die(const struct attempt *a, const char *detail)
{
	log_injected(a, "injected fault: kill", detail);
	kill(getpid(), SIGKILL);
	_exit(IDEM_EXIT_FAIL); /* not reached */
}

static int planned_kill_at(const struct attempt *a, enum fault_point p)
{
	return a != NULL && a->plan.kind == FAULT_KILL && a->plan.point == p;
}

/* The activity hooks: dies at the planned crash point. */
static void at_point(void *arg, enum fault_point p, const struct msg_task *t)
{
	const struct attempt *a = arg;
	char detail[64];

	(void)t;
	if (!planned_kill_at(a, p))
		return;
	snprintf(detail, sizeof(detail), "point=%s", fault_point_name(p));
	die(a, detail);
}

static void write_some(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* kill at mid_reply: the first half of the frame (at least 1 byte, at
 * most all but 1), then SIGKILL. Returns only when msg cannot be encoded
 * (the caller's write then reports it). */
static void die_mid_reply(int fd, const json_t *msg, const struct attempt *a)
{
	char err[512], detail[128];
	size_t len = 0, half;
	unsigned char *buf = frame_encode(msg, cfg.max_frame, &len, err, sizeof(err));

	if (buf == NULL || len < 2) {
		free(buf);
		return;
	}
	half = len / 2; /* 1 .. len - 1, as len >= 2 */
	write_some(fd, buf, half);
	free(buf);
	snprintf(detail, sizeof(detail), "point=%s bytes_written=%zu frame_bytes=%zu",
	         fault_point_name(FAULT_MID_REPLY), half, len);
	die(a, detail);
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
	                      .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Reads the task's fault plan. Returns 0, or -1 with err naming the
 * problem (a zeroed plan). */
static int read_plan(const struct msg_task *t, struct fault_plan *plan, char *err, size_t errlen)
{
	int rc = fault_plan_parse(t->fault, plan, err, errlen);

	if (rc == 0 && plan->kind == FAULT_DELAY && plan->ms < 0) {
		snprintf(err, errlen, "fault: delay needs \"ms\" >= 0 (got %lld)",
		         (long long)plan->ms);
		rc = -1;
	}
	if (rc != 0)
		memset(plan, 0, sizeof(*plan));
	return rc;
}

/* ---- the channel ---- */

/* Sends one frame; a is the attempt it answers (NULL for ready), whose
 * plan may say to die half-way through. */
static int reply(int fd, json_t *msg, const struct attempt *a)
{
	char err[512], q[600];

	if (msg == NULL) { /* see msg.c's constructors */
		log_error("cannot build the reply: a field is NULL or a string is not UTF-8", "");
		return -1;
	}
	if (planned_kill_at(a, FAULT_MID_REPLY))
		die_mid_reply(fd, msg, a);
	if (frame_write_fd(fd, msg, cfg.max_frame, err, sizeof(err)) != 0) {
		log_error("cannot write to the channel", "error=%s", log_quote(q, sizeof(q), err));
		return -1;
	}
	return 0;
}

/* The activities' heartbeat callback: one heartbeat frame for the task in
 * flight. details is borrowed. */
static int send_heartbeat(void *arg, json_t *details)
{
	const struct attempt *a = arg;
	json_t *msg = msg_heartbeat_new(a->t->task_id, details); /* new */
	char err[512], q[600];
	int rc = -1;

	if (msg == NULL)
		log_error("cannot build a heartbeat: no details", "task_id=%lld",
		          (long long)a->t->task_id);
	else if (frame_write_fd(a->fd, msg, cfg.max_frame, err, sizeof(err)) != 0)
		log_error("cannot send a heartbeat", "task_id=%lld error=%s",
		          (long long)a->t->task_id, log_quote(q, sizeof(q), err));
	else
		rc = 0;
	json_decref(msg);
	return rc;
}

static void log_attempt(const struct msg_task *t, const struct idem_activity_outcome *o, int rc,
                        int64_t us)
{
	char wf[300], act[300], text[600];

	if (!log_enabled(LOG_DEBUG))
		return;
	if (rc == 0) {
		log_debug("attempt done",
		          "task_id=%lld wf=%s step=%lld attempt=%lld activity=%s ok=true us=%lld",
		          (long long)t->task_id, log_quote(wf, sizeof(wf), t->workflow_id),
		          (long long)t->step, (long long)t->attempt,
		          log_quote(act, sizeof(act), t->activity), (long long)us);
		return;
	}
	log_debug("attempt failed",
	          "task_id=%lld wf=%s step=%lld attempt=%lld activity=%s ok=false "
	          "error_type=%s retryable=%s error=%s us=%lld",
	          (long long)t->task_id, log_quote(wf, sizeof(wf), t->workflow_id),
	          (long long)t->step, (long long)t->attempt,
	          log_quote(act, sizeof(act), t->activity), o->error_type,
	          o->retryable ? "true" : "false", log_quote(text, sizeof(text), o->error_message),
	          (long long)us);
}

/* Checks that msg is a task. t borrows from msg. */
static int read_task(json_t *msg, struct msg_task *t)
{
	static const char *const names[] = {"ready", "task", "result", "heartbeat"};
	char err[512], q[600];
	enum msg_type type = MSG_READY;

	if (msg_type_of(msg, &type, err, sizeof(err)) == 0 && type != MSG_TASK)
		snprintf(err, sizeof(err), "a worker accepts only \"task\" messages, not \"%s\"",
		         (unsigned)type < 4 ? names[type] : "?");
	else if (type == MSG_TASK && msg_parse_task(msg, t, err, sizeof(err)) == 0)
		return 0;
	log_error("bad message from the supervisor", "error=%s", log_quote(q, sizeof(q), err));
	return -1;
}

/* The answer (NEW ref; NULL when the outcome has a NULL field or a string
 * that is not UTF-8) of an attempt that has run; a plan "error
 * after_effect" replaces a success. */
static json_t *answer_of(const struct attempt *a, const struct idem_activity_outcome *o, int rc)
{
	json_int_t id = a->t->task_id;

	if (rc != 0)
		return msg_result_error_new(id, o->error_type, o->error_message, o->retryable);
	if (a->plan.kind != FAULT_ERROR)
		return msg_result_ok_new(id, o->result);
	log_injected(a, "injected fault: error", "when=after_effect");
	return msg_result_error_new(id, "InjectedError",
	                            "injected error after the effect (fault plan): the retry must "
	                            "not apply it again",
	                            1);
}

/* Runs the attempt under its plan (env is this attempt's copy). Returns
 * the answer (NEW ref, NULL as answer_of's). */
static json_t *run_attempt(struct idem_activity_env *env, const struct attempt *a)
{
	const struct fault_plan *p = &a->plan;
	struct idem_activity_outcome o;
	char detail[64];
	int64_t start = clock_mono_us();
	json_t *answer = NULL; /* new */
	int rc;

	if (p->kind == FAULT_ERROR && !p->after_effect) {
		log_injected(a, "injected fault: error", "when=before_effect");
		return msg_result_error_new(a->t->task_id, "InjectedError",
		                            "injected error before the effect (fault plan)", 1);
	}
	if (p->kind == FAULT_DELAY) {
		snprintf(detail, sizeof(detail), "ms=%lld", (long long)p->ms);
		log_injected(a, "injected fault: delay", detail);
		sleep_ms(p->ms);
	}
	if (p->kind == FAULT_KILL && p->point != FAULT_MID_REPLY)
		env->kill_at = p->point_name;
	if (p->kind == FAULT_PEER) {
		env->peer_fault = fault_peer_mode_name(p->mode);
		snprintf(detail, sizeof(detail), "mode=%s", env->peer_fault);
		log_injected(a, "injected fault: peer", detail);
	}
	rc = activity_run(env, a->t, &o);
	log_attempt(a->t, &o, rc, clock_mono_us() - start);
	answer = answer_of(a, &o, rc);
	if (answer != NULL && o.stderr_tail[0] != '\0')
		json_object_set_new(answer, "stderr", json_string(o.stderr_tail));
	json_decref(o.result);
	return answer;
}

/* Runs one task message and answers it. Returns 0, -1 when the worker
 * must exit (IDEM_EXIT_FAIL), or -2 when the attempt left the app DB in a
 * transaction (a failed ROLLBACK): the worker exits IDEM_EXIT_DB. */
static int handle(int fd, const struct idem_activity_env *base, json_t *msg)
{
	struct msg_task t;
	struct attempt a = {.fd = fd, .t = &t};
	struct idem_activity_hooks hooks = {.at = at_point, .arg = &a};
	struct idem_activity_env env = *base;
	json_t *answer = NULL; /* new */
	char err[512], q[600], wfq[300];
	int rc;

	if (read_task(msg, &t) != 0)
		return -1;
	env.hooks = &hooks;
	env.heartbeat = send_heartbeat;
	env.heartbeat_arg = &a;
	if (read_plan(&t, &a.plan, err, sizeof(err)) != 0) {
		log_error("bad fault plan from the supervisor",
		          "task_id=%lld wf=%s step=%lld attempt=%lld error=%s",
		          (long long)t.task_id, log_quote(wfq, sizeof(wfq), t.workflow_id),
		          (long long)t.step, (long long)t.attempt, log_quote(q, sizeof(q), err));
		answer = msg_result_error_new(t.task_id, "BadFault", err, 0);
	} else {
		answer = run_attempt(&env, &a);
	}
	rc = reply(fd, answer, &a);
	json_decref(answer);
	if (rc == 0 && appconn_in_tx(base->db)) {
		log_error("the app DB is still inside a transaction after the attempt (the "
		          "rollback failed); exiting so that a new worker opens it afresh",
		          "task_id=%lld wf=%s step=%lld attempt=%lld", (long long)t.task_id,
		          log_quote(wfq, sizeof(wfq), t.workflow_id), (long long)t.step,
		          (long long)t.attempt);
		rc = -2;
	}
	return rc;
}

static int serve(int fd, const struct idem_activity_env *env)
{
	struct frame_decoder d;
	char err[512], q[600];
	int rc = IDEM_EXIT_OK;

	frame_decoder_init(&d, cfg.max_frame);
	for (;;) {
		json_t *msg = NULL; /* new */
		int r = frame_read_fd(fd, &d, &msg, err, sizeof(err));
		if (r == 0) {
			log_debug("channel closed; exiting", "");
			break;
		}
		if (r < 0) {
			log_error("cannot read from the channel", "error=%s",
			          log_quote(q, sizeof(q), err));
			rc = IDEM_EXIT_FAIL;
			break;
		}
		r = handle(fd, env, msg);
		json_decref(msg);
		if (r != 0) {
			rc = r == -2 ? IDEM_EXIT_DB : IDEM_EXIT_FAIL;
			break;
		}
	}
	frame_decoder_free(&d);
	return rc;
}

/* FAULT_VFS for the app DB, before it is opened. Returns 1 when on, 0
 * when off or aimed at the state DB, -1 with err. */
static int setup_storage_faults(char *err, size_t errlen)
{
	struct faultvfs_spec spec;
	int rc;

	if (faultvfs_parse(cfg.fault_vfs, &spec, err, errlen) != 0)
		return -1;
	if (spec.enabled && strcmp(spec.target, "app") == 0 && pgconn_is_url(cfg.database)) {
		snprintf(err, errlen,
		         "FAULT_VFS targets the app DB, which is on PostgreSQL (FAULT_VFS fails "
		         "SQLite's file calls)");
		return -1;
	}
	rc = faultvfs_install(&spec, "app", cfg.database, err, errlen);
	if (rc > 0)
		log_info("storage fault injection on (FAULT_VFS)", "role=app db=%s spec=\"%s\"",
		         cfg.database, cfg.fault_vfs);
	return rc;
}

static int run(const struct worker_args *a)
{
	char err[600], q[700];
	struct appconn *db = NULL;
	json_t *ready = NULL; /* new */
	/* handle() adds each attempt's hooks and heartbeat callback. */
	struct idem_activity_env env = {.app = apps_load(cfg.app, err, sizeof(err)),
	                                .naive = a->naive};
	int rc;

	/* The worker leads a process group of its own, with the commands it
	 * runs for an app's command activities: the supervisor's kill, and a
	 * command's planned kill at its own crash point, take them all. */
	if (setpgid(0, 0) != 0) {
		log_error("cannot make the worker's process group", "error=\"%s\"",
		          strerror(errno));
		return IDEM_EXIT_FAIL;
	}
	if (env.app == NULL) {
		log_error("cannot load the app", "error=%s", log_quote(q, sizeof(q), err));
		return IDEM_EXIT_USAGE;
	}
	if (env.app->peer_key != NULL)
		env.peer = config_text(&cfg, env.app->peer_key);
	storage_faults = setup_storage_faults(err, sizeof(err));
	if (storage_faults < 0) {
		log_error("cannot set up storage faults", "error=%s", log_quote(q, sizeof(q), err));
		return IDEM_EXIT_DB;
	}
	if (env.app->open_db(cfg.database, (enum db_sync)cfg.sync, NULL, &db, err, sizeof(err)) !=
	    0) {
		log_error("cannot open the app database", "error=%s", log_quote(q, sizeof(q), err));
		return IDEM_EXIT_DB;
	}
	env.db = db;
	log_debug("worker started", "database=%s peer=%s naive=%s",
	          log_quote(err, sizeof(err), appconn_name(db)),
	          log_quote(q, sizeof(q), env.peer != NULL ? env.peer : ""),
	          a->naive ? "true" : "false");
	ready = msg_ready_new((long)getpid());
	rc = reply(a->channel_fd, ready, NULL) == 0 ? serve(a->channel_fd, &env) : IDEM_EXIT_FAIL;
	json_decref(ready);
	appconn_close(db);
	return rc;
}

/* ---- fork server ---- */

/* fork(2) with CLONE_PARENT: the child's parent is the caller's parent.
 * A raw clone skips what glibc's fork() does around it: the atfork
 * handlers (this process is single-threaded, so no lock they reset can be
 * held) and the thread ID cached in the child's thread descriptor, which
 * keeps the parent's (glibc >= 2.34 asks the kernel for it where it
 * matters, raise() included; a worker starts no threads). */
static pid_t fork_sibling(void)
{
	return (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, NULL, NULL, NULL, NULL);
}

/* --fork-server: instead of serving tasks, this process waits on ctl for
 * channels and forks a worker for each (no exec, no dynamic loading, no
 * C library start-up: half of what starting idem-worker costs). The
 * worker is forked with CLONE_PARENT, so it is the supervisor's child as
 * if the supervisor had started it: the supervisor reaps it and learns
 * how it died. Its first act is to send its pid on ctl with the
 * request's token, so the supervisor has the pid before it can reap the
 * worker or read its ready frame. Returns in the worker only, with its
 * channel; exits when ctl closes. */
static int fork_server(int ctl)
{
	static const char hello[] = FORK_SERVER_HELLO;
	pid_t supervisor = getppid();

	if (send(ctl, hello, sizeof(hello), MSG_NOSIGNAL) != (ssize_t)sizeof(hello))
		_exit(IDEM_EXIT_FAIL);
	for (;;) {
		struct fork_reply r = {0};
		int channel = fork_request_recv(ctl, &r.token);
		pid_t worker;

		if (channel == -2)
			continue;
		if (channel < 0)
			_exit(IDEM_EXIT_OK);
		worker = fork_sibling();
		if (worker == 0) {
			r.pid = getpid();
			/* Unannounced, it would be a worker the supervisor cannot
			 * name: leave, and the slot sees its channel close. */
			if (send(ctl, &r, sizeof(r), MSG_NOSIGNAL) != (ssize_t)sizeof(r))
				_exit(IDEM_EXIT_FAIL);
			close(ctl);
			/* Die with the supervisor; if it is already gone, leave. */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != supervisor)
				_exit(IDEM_EXIT_OK);
			return channel;
		}
		if (worker < 0) {
			r.pid = -1;
			(void)send(ctl, &r, sizeof(r), MSG_NOSIGNAL);
		}
		close(channel);
	}
}

int main(int argc, char **argv)
{
	struct worker_args a = {.channel_fd = -1};
	char err[600];
	int rc;

	idem_version_exit(argc, argv, "idem-worker");
	xalloc_install_json(); /* before anything allocates (xalloc.h) */
	/* Die with the supervisor; if it is already gone, leave now: an
	 * orphan fork server would wait on its channel for ever if stopped. */
	if (!config_help_asked(argc, argv) && pdeath_arm(SIGKILL, "idem-worker") != 0)
		return IDEM_EXIT_OK;
	if (parse_args(argc, argv, &a, err, sizeof(err)) != 0) {
		fprintf(stderr, "idem-worker: %s\n", err);
		return IDEM_EXIT_USAGE;
	}
	if (a.help) {
		usage(stdout);
		return IDEM_EXIT_OK;
	}
	signal(SIGPIPE, SIG_IGN);
	if (prepare_channel(a.channel_fd, err, sizeof(err)) != 0) {
		fprintf(stderr, "idem-worker: %s\n", err);
		return IDEM_EXIT_USAGE;
	}
	log_init("worker", cfg.log_level);
	log_set_format(cfg.log_format);
	if (a.fork_server) {
		a.channel_fd = fork_server(a.channel_fd);
		if (prepare_channel(a.channel_fd, err, sizeof(err)) != 0) {
			log_error("forked worker without a channel", "error=\"%s\"", err);
			return IDEM_EXIT_FAIL;
		}
	}
	rc = run(&a);
	if (storage_faults > 0)
		log_info("storage faults injected (FAULT_VFS)", "role=app injected=%ld calls=%ld",
		         faultvfs_injected(), faultvfs_calls());
	return rc;
}
