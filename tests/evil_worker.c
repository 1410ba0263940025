/* evil_worker.c — idem-evil-worker, a worker that misbehaves on purpose
 * (tests/test_peers.c installs it as idem-worker beside a copy of
 * idem-supervisor). It speaks the protocol like idem-worker — ready, then
 * one result per task, running the real activities of idem_worker_lib —
 * except for workflows whose id is EVIL-<case>, on their first attempt:
 *
 *   EVIL-truncated  runs the activity, writes half of the result frame, exits 0
 *   EVIL-oversized  a length prefix of 0x7fffffff and a few bytes
 *   EVIL-zero       a length prefix of 0
 *   EVIL-notjson    a frame whose payload is not JSON
 *   EVIL-notobject  a frame holding a JSON array
 *   EVIL-deep       a frame of 100000 '['
 *   EVIL-tasktype   a valid "task" frame (the supervisor's message type)
 *   EVIL-wrongtask  runs the activity, answers under another task id
 *   EVIL-hbflood    EVIL_HEARTBEATS heartbeats, then its answer: no fault
 *   EVIL-stall      attempt 1 heartbeats EVIL_STALL_PAD bytes of details and
 *                   fails (retryable); attempt 2, whose task frame carries
 *                   them and so outgrows the socket buffer, stops reading
 *                   as soon as it has seen whose task it is; attempt 3 runs
 *
 * With IDEM_EVIL_MUTE=PATH in its environment, the first worker to take
 * PATH (by renaming it) never says ready.
 *
 * After misbehaving it waits to be killed. It reads the flags it needs
 * (--channel-fd, --database, --supplier-socket, --max-frame) and ignores
 * the others. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "activities.h"
#include "apps.h"
#include "appdb.h"
#include "frame.h"
#include "msg.h"
#include "xalloc.h"

#define EVIL_HEARTBEATS 5000
#define EVIL_STALL_PAD (600 * 1024)
#define EVIL_DEEP 100000
#define EVIL_PEEK 4096 /* bytes of a task frame read before deciding to stall */

struct evil {
	int fd;
	const char *database;
	const char *supplier;
	size_t max_frame;
};

static void die(const char *what)
{
	fprintf(stderr, "idem-evil-worker: %s\n", what);
	_exit(1);
}

/* Misbehaved: the supervisor is to kill us. */
static _Noreturn void wait_for_kill(void)
{
	for (;;)
		pause();
}

static void write_all(int fd, const void *p, size_t n)
{
	const unsigned char *b = p;

	while (n > 0) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(1);
		b += w;
		n -= (size_t)w;
	}
}

/* Returns 0, or -1 on EOF or error. */
static int read_all(int fd, void *p, size_t n)
{
	unsigned char *b = p;

	while (n > 0) {
		ssize_t r = read(fd, b, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

/* One frame: the length prefix, then len bytes of payload. */
static void send_raw(int fd, uint32_t len, const void *payload, size_t n)
{
	unsigned char head[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
	                         (unsigned char)(len >> 8), (unsigned char)len};

	write_all(fd, head, sizeof(head));
	if (n > 0)
		write_all(fd, payload, n);
}

/* Sends msg (STOLEN) as one frame. */
static void send_msg(const struct evil *e, json_t *msg)
{
	char err[256];

	if (msg == NULL || frame_write_fd(e->fd, msg, e->max_frame, err, sizeof(err)) != 0)
		die("cannot send a frame");
	json_decref(msg);
}

/* The attempt in flight, for the heartbeat callback. */
struct attempt {
	const struct evil *e;
	json_int_t task_id;
};

static int send_heartbeat(void *arg, json_t *details)
{
	const struct attempt *a = arg;

	send_msg(a->e, msg_heartbeat_new(a->task_id, details));
	return 0;
}

/* The answer (NEW ref) of the real activity. */
static json_t *run_activity(struct appconn *db, const struct evil *e, const struct msg_task *t)
{
	struct attempt a = {e, t->task_id};
	struct idem_activity_env env = {.app = apps_find("inventory"),
	                                .db = db,
	                                .peer = e->supplier,
	                                .heartbeat = send_heartbeat,
	                                .heartbeat_arg = &a};
	struct idem_activity_outcome o = {0};
	json_t *answer;

	if (activity_run(&env, t, &o) == 0)
		answer = msg_result_ok_new(t->task_id, o.result);
	else
		answer =
		    msg_result_error_new(t->task_id, o.error_type, o.error_message, o.retryable);
	json_decref(o.result);
	return answer;
}

static void heartbeat_flood(const struct evil *e, const struct msg_task *t)
{
	for (int i = 0; i < EVIL_HEARTBEATS; i++)
		send_msg(e, msg_heartbeat_new(t->task_id, json_pack("{s:i}", "n", i)));
}

static void stall_setup(const struct evil *e, const struct msg_task *t)
{
	char *pad = malloc(EVIL_STALL_PAD + 1);

	memset(pad, 'x', EVIL_STALL_PAD);
	pad[EVIL_STALL_PAD] = '\0';
	send_msg(e, msg_heartbeat_new(t->task_id, json_pack("{s:s}", "pad", pad)));
	free(pad);
	send_msg(e, msg_result_error_new(t->task_id, "EvilError",
	                                 "heartbeat padded for the next attempt", 1));
}

/* The misbehaviour of case (the text after "EVIL-"). Returns only when the
 * worker carries on: 1 when the task has been answered, 0 when it is to
 * be answered normally. */
static int misbehave(struct appconn *db, const struct evil *e, const struct msg_task *t,
                     const char *evil_case)
{
	static const char notjson[] = "this is not JSON";
	static const char notobject[] = "[1,2,3]";
	unsigned char *buf;
	char err[256];
	size_t len = 0;
	json_t *answer;

	if (strcmp(evil_case, "truncated") == 0) {
		answer = run_activity(db, e, t);
		buf = frame_encode(answer, e->max_frame, &len, err, sizeof(err));
		if (buf == NULL)
			die(err);
		write_all(e->fd, buf, len / 2);
		_exit(0);
	} else if (strcmp(evil_case, "oversized") == 0) {
		send_raw(e->fd, 0x7fffffffu, "{\"type\"", 7);
	} else if (strcmp(evil_case, "zero") == 0) {
		send_raw(e->fd, 0, NULL, 0);
	} else if (strcmp(evil_case, "notjson") == 0) {
		send_raw(e->fd, sizeof(notjson) - 1, notjson, sizeof(notjson) - 1);
	} else if (strcmp(evil_case, "notobject") == 0) {
		send_raw(e->fd, sizeof(notobject) - 1, notobject, sizeof(notobject) - 1);
	} else if (strcmp(evil_case, "deep") == 0) {
		buf = malloc(EVIL_DEEP);
		memset(buf, '[', EVIL_DEEP);
		send_raw(e->fd, EVIL_DEEP, buf, EVIL_DEEP);
		free(buf);
	} else if (strcmp(evil_case, "tasktype") == 0) {
		send_msg(e, msg_task_new(t));
	} else if (strcmp(evil_case, "wrongtask") == 0) {
		answer = run_activity(db, e, t);
		json_object_set_new(answer, "task_id", json_integer(t->task_id + 1000));
		send_msg(e, answer);
	} else if (strcmp(evil_case, "hbflood") == 0) {
		heartbeat_flood(e, t);
		return 0;
	} else if (strcmp(evil_case, "stall") == 0) {
		stall_setup(e, t);
		return 1;
	} else {
		return 0;
	}
	wait_for_kill();
}

/* Whether the first n bytes of a task frame's payload show the attempt
 * of EVIL-stall that is to stop reading. */
static int stall_here(const unsigned char *p, size_t n)
{
	return memmem(p, n, "\"workflow_id\":\"EVIL-stall\"", 26) != NULL &&
	       memmem(p, n, "\"attempt\":2,", 12) != NULL;
}

/* The next task (NEW ref), or NULL at EOF. */
static json_t *read_task(const struct evil *e)
{
	unsigned char head[4], *payload;
	size_t len, first;
	json_error_t jerr;
	json_t *msg;

	if (read_all(e->fd, head, sizeof(head)) != 0)
		return NULL;
	len = (size_t)head[0] << 24 | (size_t)head[1] << 16 | (size_t)head[2] << 8 | head[3];
	if (len == 0 || len > e->max_frame)
		die("bad frame from the supervisor");
	payload = malloc(len);
	first = len < EVIL_PEEK ? len : EVIL_PEEK;
	if (read_all(e->fd, payload, first) != 0)
		die("EOF inside a frame");
	if (stall_here(payload, first))
		wait_for_kill();
	if (read_all(e->fd, payload + first, len - first) != 0)
		die("EOF inside a frame");
	msg = json_loadb((const char *)payload, len, 0, &jerr);
	free(payload);
	if (msg == NULL)
		die(jerr.text);
	return msg;
}

static void serve(struct appconn *db, const struct evil *e)
{
	json_t *msg;

	while ((msg = read_task(e)) != NULL) {
		struct msg_task t;
		char err[256];

		if (msg_parse_task(msg, &t, err, sizeof(err)) != 0)
			die(err);
		if (strncmp(t.workflow_id, "EVIL-", 5) != 0 || t.attempt != 1 ||
		    misbehave(db, e, &t, t.workflow_id + 5) == 0)
			send_msg(e, run_activity(db, e, &t));
		json_decref(msg);
	}
}

/* The value of flag name in argv ("--name V" or "--name=V"), or NULL. */
static const char *flag(int argc, char **argv, const char *name)
{
	size_t n = strlen(name);

	for (int i = 1; i < argc; i++) {
		if (strncmp(argv[i], name, n) != 0)
			continue;
		if (argv[i][n] == '=')
			return argv[i] + n + 1;
		if (argv[i][n] == '\0' && i + 1 < argc)
			return argv[i + 1];
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *fd = flag(argc, argv, "--channel-fd"), *frame = flag(argc, argv, "--max-frame");
	struct evil e = {.database = flag(argc, argv, "--database"),
	                 .supplier = flag(argc, argv, "--supplier-socket")};
	const char *mute = getenv("IDEM_EVIL_MUTE");
	struct appconn *db = NULL;
	char err[512];

	xalloc_install_json(); /* as idem-worker, whose code it runs (xalloc.h) */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGPIPE, SIG_IGN);
	/* No fork server here: the supervisor falls back to posix_spawn. */
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--fork-server") == 0)
			die("--fork-server is not supported");
	if (fd == NULL || e.database == NULL || e.supplier == NULL)
		die("needs --channel-fd, --database and --supplier-socket");
	e.fd = atoi(fd);
	/* The supervisor's socketpair is nonblocking; this end must block. */
	if (fcntl(e.fd, F_SETFL, fcntl(e.fd, F_GETFL) & ~O_NONBLOCK) != 0)
		die("--channel-fd is not an open descriptor");
	e.max_frame = frame != NULL ? (size_t)strtoull(frame, NULL, 10) : FRAME_DEFAULT_MAX;
	if (appdb_open(e.database, DB_SYNC_FULL, NULL, 0, &db, err, sizeof(err)) != 0)
		die(err);
	/* IDEM_EVIL_MUTE=PATH: the first worker to take PATH (rename) never
	 * says ready. */
	if (mute != NULL && *mute != '\0') {
		char *taken = malloc(strlen(mute) + 7);

		sprintf(taken, "%s.taken", mute);
		if (rename(mute, taken) == 0)
			wait_for_kill();
		free(taken);
	}
	send_msg(&e, msg_ready_new((long)getpid()));
	serve(db, &e);
	appconn_close(db);
	return 0;
}
