/* test_peers.c — the supervisor against peers that misbehave: it must
 * never crash, hang or lose accepted work because of what a worker or an
 * API client sends or fails to send.
 *
 * Workers: idem-evil-worker (tests/evil_worker.c) is installed as
 * idem-worker beside a copy of idem-supervisor; it runs the real
 * activities, and misbehaves on the first attempt of each EVIL-<case>
 * workflow (a truncated frame, an oversized or zero length, bytes that are
 * not JSON or not an object, deep nesting, a frame of the wrong type, a
 * result for another task, a channel it stops reading). Each time the
 * supervisor closes the channel, kills the worker and fails the attempt
 * with a reason the history shows; the retry completes, and the workflows
 * running beside them end with the exact stock. A flood of heartbeats is
 * not a fault; a worker that never says ready is killed and replaced.
 *
 * API clients: 300 connections at once, all answered; an idle client and
 * one that stops in the middle of its request line are dropped after the
 * I/O timeout while a long-poll outlives it; one that sends its request a
 * byte at a time gets a 408 at API_REQUEST_TIMEOUT; a client that hangs up
 * during a long-poll gives its descriptor back at once; out of
 * descriptors (RLIMIT_NOFILE 64), new connections are closed rather than
 * left hanging, the open ones are served, one line is logged per
 * shortage, and the API serves again once descriptors are free. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "testutil.h"

#define IO_TIMEOUT_MS 10000 /* API_IO_TIMEOUT_S in supervisor/api.c */
#define PRODUCT "P9"
#define PRODUCT_STOCK 100000
#define NORMAL_WORKFLOWS 30
#define CONCURRENT_CLIENTS 300
/* test_hostile_workers' WORKER_READY_TIMEOUT */
#define READY_TIMEOUT_FLAG "--worker-ready-timeout=5s"
#define READY_TIMEOUT_TEXT "worker did not say ready within 5000 ms"

static int setup(void **state)
{
	struct rlimit rl;

	/* 300 clients and the supervisor's 300 connections. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 2048) {
		rl.rlim_cur = rl.rlim_max < 2048 ? rl.rlim_max : 2048;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	return tu_fixture_setup(state, "peers");
}

/* ---- processes --------------------------------------------------------------- */

static void copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	char buf[65536];
	ssize_t n;

	if (in < 0 || out < 0)
		fail_msg("cannot copy %s to %s: %s", from, to, strerror(errno));
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	assert_int_equal(n, 0);
	close(in);
	assert_int_equal(close(out), 0);
}

/* dir/bin: copies of idem-supervisor, idem-supplier and idemctl (its
 * checker), and the evil worker as idem-worker (the supervisor runs the
 * idem-worker beside it).
 * Returns the supervisor's path (malloc'd). */
static char *install_evil_bin(const char *dir)
{
	char *bin = tu_fmt("%s/bin", dir), *to;

	assert_int_equal(mkdir(bin, 0755), 0);
	to = tu_fmt("%s/idem-supplier", bin);
	copy_file(tu_bin("idem-supplier"), to);
	free(to);
	to = tu_fmt("%s/idemctl", bin);
	copy_file(tu_bin("idemctl"), to);
	free(to);
	to = tu_fmt("%s/idem-worker", bin);
	copy_file(tu_bin("idem-evil-worker"), to);
	free(to);
	to = tu_fmt("%s/idem-supervisor", bin);
	copy_file(tu_bin("idem-supervisor"), to);
	free(bin);
	return to;
}

/* Like tu_sup_start, with the supervisor at prog and, when nofile > 0,
 * RLIMIT_NOFILE set to nofile in the child before exec. */
static void start(struct tu_fixture *f, const char *prog, const char *const *extra, rlim_t nofile)
{
	struct tu_sup *s = &f->sup;
	char *argv[64];
	int n = 0;
	pid_t pid;

	free(s->sock);
	free(s->log);
	s->dir = f->dir;
	s->sock = tu_fmt("%s/idem.sock", f->dir);
	s->log = tu_fmt("%s/supervisor.log", f->dir);
	argv[n++] = (char *)(prog ? prog : tu_bin("idem-supervisor"));
	argv[n++] = "--env=/dev/null";
	argv[n++] = tu_fmt("--socket=%s", s->sock);
	argv[n++] = tu_fmt("--database=%s/app.db", f->dir);
	argv[n++] = tu_fmt("--state-database=%s/state.db", f->dir);
	argv[n++] = tu_fmt("--supplier-database=%s/supplier.db", f->dir);
	argv[n++] = tu_fmt("--supplier-socket=%s/supplier.sock", f->dir);
	for (const char *const *e = extra; e != NULL && *e != NULL && n < 62; e++)
		argv[n++] = (char *)*e;
	argv[n] = NULL;
	pid = fork();
	if (pid == 0) {
		struct rlimit rl = {nofile, nofile};
		int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(126);
		close(fd);
		if (nofile > 0 && setrlimit(RLIMIT_NOFILE, &rl) != 0)
			_exit(126);
		signal(SIGPIPE, SIG_DFL);
		execv(argv[0], argv);
		_exit(127);
	}
	for (int i = 2; i < 7; i++)
		free(argv[i]);
	assert_true(pid > 0);
	s->pid = pid;
	if (tu_wait_for_socket(s->sock, 20000) != 0) {
		char *log = tu_read_file(s->log);

		fprintf(stderr, "supervisor log:\n%s\n", log ? log : "(none)");
		free(log);
		fail_msg("the supervisor did not start");
	}
}

static void stop(struct tu_fixture *f)
{
	assert_int_equal(tu_sup_stop(&f->sup), 0);
}

/* The supervisor runs (it has not exited). */
static void assert_alive(struct tu_fixture *f)
{
	assert_int_equal(waitpid(f->sup.pid, NULL, WNOHANG), 0);
}

static json_t *get(struct tu_fixture *f, const char *path)
{
	json_t *body = NULL;

	assert_int_equal(tu_http(&f->sup, "GET", path, NULL, &body), 200);
	return body;
}

/* ---- hostile workers ------------------------------------------------------------ */

struct evil_case {
	const char *name;   /* the workflow is EVIL-name */
	int lost_attempt;   /* the attempt the supervisor fails; 0 = none */
	const char *reason; /* in the worker_lost event's message */
	const char *reason2;
};

static const struct evil_case cases[] = {
    {"truncated", 1, "its channel closed in the middle of a frame", "bytes of it received"},
    {"oversized", 1, "protocol error from worker: frame: length 2147483647 exceeds the limit",
     "MAX_FRAME"},
    {"zero", 1, "protocol error from worker: frame: length 0", NULL},
    {"notjson", 1, "protocol error from worker: frame: not JSON", NULL},
    {"notobject", 1, "protocol error from worker: frame: JSON is not an object", NULL},
    {"deep", 1, "protocol error from worker: frame: not JSON", "depth"},
    {"tasktype", 1, "protocol error from worker: unexpected task frame", NULL},
    {"wrongtask", 1, "protocol error from worker: frame for task",
     "but the worker holds another task"},
    {"stall", 2, "worker stopped reading its channel", "bytes still unsent after 5000 ms"},
    {"hbflood", 0, NULL, NULL},
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

static const char *kind_of(json_t *e)
{
	return json_string_value(json_object_get(e, "kind"));
}

static json_int_t int_of(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* The index of the first event of kind at step 0 and attempt, or -1. */
static int find_event(json_t *events, const char *kind, int attempt)
{
	for (size_t i = 0; i < json_array_size(events); i++) {
		json_t *e = json_array_get(events, i);

		if (strcmp(kind_of(e), kind) == 0 && int_of(e, "step") == 0 &&
		    int_of(e, "attempt") == attempt)
			return (int)i;
	}
	return -1;
}

static int count_events(json_t *events, const char *kind)
{
	int n = 0;

	for (size_t i = 0; i < json_array_size(events); i++)
		n += strcmp(kind_of(json_array_get(events, i)), kind) == 0;
	return n;
}

/* The workflow completed; the attempt the case spoils was failed with its
 * reason and its worker killed; the next attempt completed. */
static void check_case(struct tu_fixture *f, const struct evil_case *c)
{
	char *path = tu_fmt("/v1/workflows/EVIL-%s/history", c->name);
	json_t *body = get(f, path), *events = json_object_get(body, "events");
	json_t *wf = json_object_get(body, "workflow");
	int lost, started;
	const char *msg;
	pid_t pid;

	if (strcmp(json_string_value(json_object_get(wf, "status")), "completed") != 0)
		fail_msg("EVIL-%s is %s", c->name,
		         json_string_value(json_object_get(wf, "status")));
	if (c->lost_attempt == 0) {
		assert_int_equal(count_events(events, "worker_lost"), 0);
		assert_true(find_event(events, "completed", 1) >= 0);
		assert_int_equal(count_events(events, "heartbeat"), 5000); /* EVIL_HEARTBEATS */
		goto done;
	}
	lost = find_event(events, "worker_lost", c->lost_attempt);
	if (lost < 0)
		fail_msg("EVIL-%s: no worker_lost event for attempt %d", c->name, c->lost_attempt);
	msg = json_string_value(json_object_get(
	    json_object_get(json_array_get(events, (size_t)lost), "detail"), "message"));
	if (strstr(msg, c->reason) == NULL || (c->reason2 && strstr(msg, c->reason2) == NULL))
		fail_msg("EVIL-%s: the reason \"%s\" does not say \"%s\" and \"%s\"", c->name, msg,
		         c->reason, c->reason2 ? c->reason2 : "");
	assert_true(find_event(events, "retry_scheduled", c->lost_attempt) > lost);
	assert_true(find_event(events, "completed", c->lost_attempt + 1) > lost);
	/* The worker that misbehaved is gone (killed and reaped). */
	started = find_event(events, "started", c->lost_attempt);
	assert_true(started >= 0);
	pid = (pid_t)int_of(json_array_get(events, (size_t)started), "pid");
	assert_true(pid > 0);
	assert_int_equal(int_of(json_array_get(events, (size_t)lost), "pid"), pid);
	for (int i = 0; i < 100 && kill(pid, 0) == 0; i++)
		tu_sleep_ms(20);
	assert_true(kill(pid, 0) != 0 && errno == ESRCH);
done:
	json_decref(body);
	free(path);
}

/* Waits up to ms for want workers to be ready; returns how many are. */
static int ready_workers(struct tu_fixture *f, int want, int ms)
{
	int64_t deadline = clock_mono_ms() + ms;
	int n = 0;

	do {
		json_t *stats = get(f, "/v1/stats");
		json_t *slots = json_object_get(json_object_get(stats, "pool"), "slots");

		n = 0;
		for (size_t i = 0; i < json_array_size(slots); i++)
			n += strcmp(json_string_value(
			                json_object_get(json_array_get(slots, i), "state")),
			            "ready") == 0;
		json_decref(stats);
		if (n < want)
			tu_sleep_ms(50);
	} while (n < want && clock_mono_ms() < deadline);
	return n;
}

static void test_hostile_workers(void **state)
{
	struct tu_fixture *f = *state;
	char *prog = install_evil_bin(f->dir);
	const char *extra[] = {"--workers=6", "--retry-initial-interval=50ms",
	                       "--seed-stock=123456:1000," PRODUCT ":100000", READY_TIMEOUT_FLAG,
	                       NULL};
	char *app = tu_fmt("%s/app.db", f->dir), *mute = tu_fmt("%s/mute", f->dir);
	long long orders = 0;
	json_t *body;

	/* And one worker never says ready. */
	assert_int_equal(tu_write_file(mute, ""), 0);
	setenv("IDEM_EVIL_MUTE", mute, 1);
	start(f, prog, extra, 0);
	unsetenv("IDEM_EVIL_MUTE");
	/* The hostile ones among ordinary ones, all at the same time. */
	for (int i = 0; i < NORMAL_WORKFLOWS; i++) {
		char id[32];

		if ((size_t)i < NCASES) {
			snprintf(id, sizeof(id), "EVIL-%s", cases[i].name);
			assert_int_equal(tu_start_order(&f->sup, id, PRODUCT, 1 + i), 201);
			orders += 1 + i;
		}
		snprintf(id, sizeof(id), "N%d", i);
		assert_int_equal(tu_start_order(&f->sup, id, PRODUCT, 2), 201);
		orders += 2;
	}
	body = get(f, "/v1/wait?timeout=120");
	assert_false(json_is_true(json_object_get(body, "timed_out")));
	json_decref(body);
	for (size_t i = 0; i < NCASES; i++)
		check_case(f, &cases[i]);
	for (int i = 0; i < NORMAL_WORKFLOWS; i++) {
		char *path = tu_fmt("/v1/workflows/N%d", i);

		body = get(f, path);
		assert_string_equal(json_string_value(json_object_get(body, "status")),
		                    "completed");
		json_decref(body);
		free(path);
	}
	/* Every order applied once: the stock is exact, the checker agrees. */
	assert_int_equal(tu_sql_int(app, "SELECT stock FROM products WHERE product_id = 'P9'"),
	                 PRODUCT_STOCK - orders);
	assert_int_equal(tu_sql_int(app, "SELECT count(*) FROM orders"), NORMAL_WORKFLOWS + NCASES);
	body = get(f, "/v1/check");
	assert_true(json_is_true(json_object_get(body, "ok")));
	json_decref(body);
	/* The mute worker is killed at the ready timeout, and replaced. */
	for (int i = 0; i < 500 && tu_count_in_file(f->sup.log, READY_TIMEOUT_TEXT) == 0; i++)
		tu_sleep_ms(100);
	assert_int_equal(tu_count_in_file(f->sup.log, READY_TIMEOUT_TEXT), 1);
	/* This worker binary has no fork server: workers are spawned. */
	assert_int_equal(tu_count_in_file(f->sup.log, "fork server off"), 1);
	assert_int_equal(ready_workers(f, 6, 10000), 6);
	assert_alive(f);
	stop(f);
	free(mute);
	free(app);
	free(prog);
}

/* ---- raw clients ------------------------------------------------------------- */

static int raw_connect(struct tu_fixture *f, int nonblock)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->sup.sock);
	for (int tries = 0; connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0; tries++) {
		/* A full backlog: the supervisor is accepting, try again. */
		if (errno != EAGAIN || tries > 1000)
			fail_msg("connect: %s", strerror(errno));
		tu_sleep_ms(5);
	}
	return fd;
}

static void send_text(int fd, const char *text)
{
	assert_int_equal(send(fd, text, strlen(text), MSG_NOSIGNAL), (ssize_t)strlen(text));
}

/* 1 when the supervisor closed fd (EOF or reset) within ms, 0 when it
 * is still open and silent. */
static int closed_within(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char c;

	if (poll(&p, 1, ms) <= 0)
		return 0;
	return recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

/* Whether buf holds a whole reply: its headers and Content-Length bytes. */
static int reply_whole(const char *buf, size_t n)
{
	const char *end = strstr(buf, "\r\n\r\n"), *cl = strstr(buf, "Content-Length: ");

	return end != NULL && cl != NULL &&
	       n >= (size_t)(end + 4 - buf) + strtoul(cl + 16, NULL, 10);
}

/* Reads a reply; returns its status (0 when none came within ms). With
 * one, it stops at the end of the first reply (a kept-alive connection),
 * else at EOF (a "Connection: close" request). */
static int read_reply_of(int fd, int ms, char *buf, size_t len, int one)
{
	int64_t deadline = clock_mono_ms() + ms;
	size_t n = 0;
	int status = 0;

	buf[0] = '\0';
	while (!one || !reply_whole(buf, n)) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int left = (int)(deadline - clock_mono_ms());
		ssize_t r;

		if (left <= 0 || poll(&p, 1, left) <= 0)
			break;
		r = recv(fd, buf + n, len - n - 1, 0);
		if (r <= 0)
			break;
		n += (size_t)r;
		buf[n] = '\0';
	}
	if ((one && !reply_whole(buf, n)) || sscanf(buf, "HTTP/1.1 %d", &status) != 1)
		status = 0;
	return status;
}

static int read_reply(int fd, int ms, char *buf, size_t len)
{
	return read_reply_of(fd, ms, buf, len, 0);
}

static void test_concurrent_clients(void **state)
{
	static const char *const paths[] = {"/v1/health", "/v1/stats", "/v1/workflows?limit=5",
	                                    "/v1/stock/123456"};
	struct tu_fixture *f = *state;
	const char *extra[] = {"--workers=1", NULL};
	int fds[CONCURRENT_CLIENTS], status[CONCURRENT_CLIENTS] = {0};
	char *bufs[CONCURRENT_CLIENTS];
	size_t lens[CONCURRENT_CLIENTS] = {0};
	int64_t deadline;
	int done = 0, ok = 0;

	start(f, NULL, extra, 0);
	assert_int_equal(tu_start_order(&f->sup, "C1", "123456", 1), 201);
	/* Every client connected and has sent its request before any reads. */
	for (int i = 0; i < CONCURRENT_CLIENTS; i++) {
		char req[256];

		fds[i] = raw_connect(f, 1);
		bufs[i] = calloc(1, 65536);
		snprintf(req, sizeof(req),
		         "GET %s HTTP/1.1\r\nHost: idem\r\nConnection: close\r\n\r\n",
		         paths[i % 4]);
		send_text(fds[i], req);
	}
	deadline = clock_mono_ms() + 60000;
	while (done < CONCURRENT_CLIENTS && clock_mono_ms() < deadline) {
		struct pollfd p[CONCURRENT_CLIENTS];

		for (int i = 0; i < CONCURRENT_CLIENTS; i++)
			p[i] = (struct pollfd){.fd = status[i] ? -1 : fds[i], .events = POLLIN};
		if (poll(p, CONCURRENT_CLIENTS, 1000) <= 0)
			continue;
		for (int i = 0; i < CONCURRENT_CLIENTS; i++) {
			ssize_t r;

			if (p[i].revents == 0)
				continue;
			r = recv(fds[i], bufs[i] + lens[i], 65535 - lens[i], 0);
			if (r > 0 && lens[i] + (size_t)r < 65535) {
				lens[i] += (size_t)r;
				continue;
			}
			/* EOF (the reply is whole): its status. */
			if (sscanf(bufs[i], "HTTP/1.1 %d", &status[i]) != 1)
				status[i] = -1;
			ok += status[i] == 200;
			done++;
		}
	}
	for (int i = 0; i < CONCURRENT_CLIENTS; i++) {
		close(fds[i]);
		free(bufs[i]);
	}
	assert_int_equal(done, CONCURRENT_CLIENTS);
	assert_int_equal(ok, CONCURRENT_CLIENTS);
	assert_alive(f);
	stop(f);
}

/* The pid of the only worker once it is ready. */
static pid_t worker_pid(struct tu_fixture *f)
{
	for (int i = 0; i < 500; i++) {
		json_t *stats = get(f, "/v1/stats");
		json_t *slot =
		    json_array_get(json_object_get(json_object_get(stats, "pool"), "slots"), 0);
		const char *st = json_string_value(json_object_get(slot, "state"));
		pid_t pid = (pid_t)int_of(slot, "pid");
		int ready = st != NULL && strcmp(st, "ready") == 0;

		json_decref(stats);
		if (ready && pid > 0)
			return pid;
		tu_sleep_ms(20);
	}
	fail_msg("the worker did not become ready");
	return -1;
}

static int count_fds(pid_t pid)
{
	char *path = tu_fmt("/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	free(path);
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* The supervisor's descriptors once the count holds still for 300 ms
 * (a client's last connection may be closing). */
static int settled_fds(struct tu_fixture *f)
{
	int n = count_fds(f->sup.pid), prev = -1;

	for (int i = 0; i < 50 && n != prev; i++) {
		tu_sleep_ms(300);
		prev = n;
		n = count_fds(f->sup.pid);
	}
	return n;
}

/* Waits up to ms for the supervisor to hold want descriptors. */
static int fds_become(struct tu_fixture *f, int want, int ms)
{
	int64_t deadline = clock_mono_ms() + ms;
	int n;

	while ((n = count_fds(f->sup.pid)) != want && clock_mono_ms() < deadline)
		tu_sleep_ms(20);
	return n;
}

/* Starts the supervisor with one worker, stops that worker (SIGSTOP) and
 * starts workflow HOLD, which stays running meanwhile; returns the pid. */
static pid_t start_holding(struct tu_fixture *f, const char *const *extra)
{
	pid_t worker;

	start(f, NULL, extra, 0);
	worker = worker_pid(f);
	assert_int_equal(kill(worker, SIGSTOP), 0);
	assert_int_equal(tu_start_order(&f->sup, "HOLD", "123456", 1), 201);
	return worker;
}

static void test_idle_and_slow_clients(void **state)
{
	struct tu_fixture *f = *state;
	const char *extra[] = {"--workers=1", NULL};
	const char *partial = "GET /v1/hea";
	char buf[8192];
	int idle, slow, poll_fd, gone, base;
	int64_t t0;
	pid_t worker;

	worker = start_holding(f, extra);

	/* A long-poll whose client hangs up gives its descriptor back now,
	 * not at the end of its timeout. */
	base = settled_fds(f);
	gone = raw_connect(f, 0);
	send_text(gone, "GET /v1/workflows/HOLD/wait?timeout=3600 HTTP/1.1\r\nHost: idem\r\n\r\n");
	assert_int_equal(fds_become(f, base + 1, 5000), base + 1);
	close(gone);
	assert_int_equal(fds_become(f, base, 5000), base);

	poll_fd = raw_connect(f, 0);
	send_text(poll_fd, "GET /v1/workflows/HOLD/wait?timeout=60 HTTP/1.1\r\nHost: idem\r\n"
	                   "Connection: close\r\n\r\n");
	idle = raw_connect(f, 0);
	slow = raw_connect(f, 0);
	for (const char *p = partial; *p != '\0'; p++) {
		assert_int_equal(send(slow, p, 1, MSG_NOSIGNAL), 1);
		tu_sleep_ms(50);
	}
	t0 = clock_mono_ms();
	/* Both are dropped after the I/O timeout, not before. */
	assert_false(closed_within(idle, IO_TIMEOUT_MS - 2000));
	assert_true(closed_within(idle, 4000));
	assert_true(closed_within(slow, 2000));
	assert_true(clock_mono_ms() - t0 < IO_TIMEOUT_MS + 3000);
	/* The long-poll has outlived the timeout and is still waiting. */
	assert_false(closed_within(poll_fd, 1000));
	assert_int_equal(kill(worker, SIGCONT), 0);
	assert_int_equal(read_reply(poll_fd, 30000, buf, sizeof(buf)), 200);
	assert_non_null(strstr(buf, "\"status\":\"completed\""));
	assert_non_null(strstr(buf, "\"timed_out\":false"));
	close(idle);
	close(slow);
	close(poll_fd);
	assert_alive(f);
	stop(f);
}

static int read_one_reply(int fd, int ms, char *buf, size_t len)
{
	return read_reply_of(fd, ms, buf, len, 1);
}

/* libevent 2.1 restarts its read timeout at every byte: a client that
 * sends its request slowly would keep its connection for hours. With
 * API_REQUEST_TIMEOUT=3s: a start request sent a byte every 400 ms gets a
 * 408 naming the limit and is not acted on, nor is one whose late rest
 * comes in a single write larger than a read; a request sent in pieces within
 * the limit, a kept-alive connection idle longer than the limit, and a
 * long-poll longer than the limit are all served. */
static void test_request_deadline(void **state)
{
	struct tu_fixture *f = *state;
	const char *extra[] = {"--workers=1", "--api-request-timeout=3s", NULL};
	const char *start_req =
	    "POST /v1/workflows HTTP/1.1\r\nHost: idem\r\n"
	    "Content-Type: application/json\r\nContent-Length: 57\r\n\r\n"
	    "{\"workflow_id\":\"DRIB\",\"product_id\":\"123456\",\"quantity\":1}";
	const char *health = "GET /v1/health HTTP/1.1\r\nHost: idem\r\n\r\n";
	char buf[8192];
	int drib, kept, piecewise, poll_fd, late, sent = 0, status = 0;
	char *burst;
	int64_t t0;
	pid_t worker;

	worker = start_holding(f, extra);
	poll_fd = raw_connect(f, 0);
	send_text(poll_fd, "GET /v1/workflows/HOLD/wait?timeout=5s HTTP/1.1\r\nHost: idem\r\n\r\n");
	kept = raw_connect(f, 0);
	send_text(kept, health);
	assert_int_equal(read_one_reply(kept, 5000, buf, sizeof(buf)), 200);
	piecewise = raw_connect(f, 0);
	drib = raw_connect(f, 0);
	late = raw_connect(f, 0);
	t0 = clock_mono_ms();
	send_text(late, "POST /v1/workflows HTTP/1.1\r\nHost: idem\r\n");
	/* The dribbler: one byte every 400 ms until the supervisor answers. */
	for (const char *p = start_req; *p != '\0' && clock_mono_ms() - t0 < 8000; p++) {
		struct pollfd pf = {.fd = drib, .events = POLLIN};

		if (send(drib, p, 1, MSG_NOSIGNAL) != 1 || poll(&pf, 1, 400) > 0)
			break;
		sent++;
		if (sent == 2)
			send_text(piecewise, "GET /v1/heal");
		if (sent == 4)
			send_text(piecewise, "th HTTP/1.1\r\nHost: idem\r\n\r\n");
	}
	status = read_reply(drib, 2000, buf, sizeof(buf));
	if (status != 408)
		fail_msg("the dribbling client got %d after %lld ms and %d bytes, not 408: %s",
		         status, (long long)(clock_mono_ms() - t0), sent, buf);
	assert_non_null(strstr(buf, "API_REQUEST_TIMEOUT"));
	assert_non_null(strstr(buf, "within 3s"));
	/* Cut at the limit (3 s, and the byte that found it late), not at
	 * evhttp's 10 s read timeout, and before its request was whole. */
	assert_true(clock_mono_ms() - t0 < 5000);
	assert_true(sent < (int)strlen(start_req));
	assert_true(closed_within(drib, 1000));
	close(drib);

	/* The rest of a late request in one write larger than a read (libevent
	 * reads 4 KiB at a time; the first read ends with a whole header line):
	 * the 408 also drops what the supervisor reads after it. */
	burst = tu_fmt("X-Pad: %04087d\r\nContent-Type: application/json\r\n"
	               "Content-Length: 57\r\n\r\n"
	               "{\"workflow_id\":\"LATE\",\"product_id\":\"123456\",\"quantity\":1}",
	               0);
	send_text(late, burst);
	free(burst);
	assert_int_equal(read_reply(late, 2000, buf, sizeof(buf)), 408);
	close(late);

	assert_int_equal(read_one_reply(piecewise, 2000, buf, sizeof(buf)), 200);
	/* The kept-alive connection has been idle 3+ s: its next request is
	 * a new one, with a clock of its own. */
	send_text(kept, health);
	assert_int_equal(read_one_reply(kept, 5000, buf, sizeof(buf)), 200);
	assert_int_equal(read_one_reply(poll_fd, 5000, buf, sizeof(buf)), 200);
	assert_non_null(strstr(buf, "\"timed_out\":true"));
	assert_true(clock_mono_ms() - t0 >= 4000);

	/* Nothing of the cut request was acted on, and the metric counts it. */
	assert_int_equal(tu_http(&f->sup, "GET", "/v1/workflows/DRIB", NULL, NULL), 404);
	assert_int_equal(tu_http(&f->sup, "GET", "/v1/workflows/LATE", NULL, NULL), 404);
	drib = raw_connect(f, 0);
	send_text(drib, "GET /metrics HTTP/1.1\r\nHost: idem\r\nConnection: close\r\n\r\n");
	assert_int_equal(read_reply(drib, 5000, buf, sizeof(buf)), 200);
	assert_non_null(strstr(buf, "\nidem_api_request_timeouts_total 2\n"));
	close(drib);
	assert_int_equal(tu_count_in_file(f->sup.log, "not in within API_REQUEST_TIMEOUT"), 2);
	assert_int_equal(kill(worker, SIGCONT), 0);
	close(kept);
	close(piecewise);
	close(poll_fd);
	assert_alive(f);
	stop(f);
}

static int count_closed(const int *fds, int n)
{
	int closed = 0;

	for (int i = 0; i < n; i++)
		closed += closed_within(fds[i], 0);
	return closed;
}

/* Opens n connections (*fds keeps every one) while the supervisor is out
 * of descriptors for the shortages-th time; returns how many it closed at
 * once. */
static int fill_until_refused(struct tu_fixture *f, int *fds, int n, int shortages)
{
	int prev = -1, closed = 0;

	for (int i = 0; i < n; i++)
		fds[i] = raw_connect(f, 0);
	for (int i = 0;
	     i < 400 && tu_count_in_file(f->sup.log, "out of file descriptors") < shortages; i++)
		tu_sleep_ms(20);
	/* The refusals go on until the backlog is empty: wait for the first
	 * (a loaded machine may take a while), then until the count settles. */
	for (int i = 0; i < 60 && (closed == 0 || closed != prev); i++) {
		prev = closed;
		tu_sleep_ms(250);
		closed = count_closed(fds, n);
	}
	return closed;
}

/* One "out of file descriptors" line per shortage, not one per refused
 * connection: each line but the last is followed by the end of its
 * shortage. (A shortage may end and begin again while the test fills the
 * table, when evhttp drops an idle connection after its timeout on a slow
 * machine, so the count is at least, not exactly, the shortages made.) */
static void assert_once_per_shortage(struct tu_fixture *f, int at_least)
{
	int lines = tu_count_in_file(f->sup.log, "out of file descriptors");
	int ends = tu_count_in_file(f->sup.log, "available again");

	if (lines < at_least || lines > ends + 1)
		fail_msg("%d shortage lines and %d ends of shortage (expected at least %d lines, "
		         "at most one more than the ends)",
		         lines, ends, at_least);
}

static void test_out_of_descriptors(void **state)
{
	struct tu_fixture *f = *state;
	const char *extra[] = {"--workers=1", NULL};
	const char *health = "GET /v1/health HTTP/1.1\r\nHost: idem\r\nConnection: close\r\n\r\n";
	int fds[100], refused, served = -1;
	char buf[4096];

	start(f, NULL, extra, 64);
	refused = fill_until_refused(f, fds, 100, 1);
	/* Some were accepted up to the limit; the rest closed at once. */
	if (refused == 0) {
		char *log = tu_read_file(f->sup.log);

		fprintf(stderr, "supervisor (%d descriptors) log:\n%s\n", count_fds(f->sup.pid),
		        log ? log : "(none)");
		free(log);
	}
	assert_true(refused > 0);
	assert_true(refused < 100);
	assert_alive(f);
	/* The connections it holds are served. */
	for (int i = 0; i < 100 && served < 0; i++) {
		if (closed_within(fds[i], 0))
			continue;
		send_text(fds[i], health);
		served = read_reply(fds[i], 5000, buf, sizeof(buf));
	}
	assert_int_equal(served, 200);
	assert_once_per_shortage(f, 1);

	/* Descriptors free again: the API serves new clients. */
	for (int i = 0; i < 100; i++)
		close(fds[i]);
	for (int i = 0; i < 100 && tu_http(&f->sup, "GET", "/v1/health", NULL, NULL) != 200; i++)
		tu_sleep_ms(50);
	assert_int_equal(tu_http(&f->sup, "GET", "/v1/health", NULL, NULL), 200);
	for (int i = 0; i < 100 && tu_count_in_file(f->sup.log, "available again") == 0; i++)
		tu_sleep_ms(50);
	assert_true(tu_count_in_file(f->sup.log, "available again") >= 1);

	/* A second shortage is a second log line. */
	refused = fill_until_refused(f, fds, 100, 2);
	assert_true(refused > 0);
	assert_once_per_shortage(f, 2);
	for (int i = 0; i < 100; i++)
		close(fds[i]);
	assert_alive(f);
	stop(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_hostile_workers, setup, tu_fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_clients, setup, tu_fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_idle_and_slow_clients, setup, tu_fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_request_deadline, setup, tu_fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_out_of_descriptors, setup, tu_fixture_teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
