#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <limits.h>
#include <sqlite3.h>

#include "db.h"
#include "clock.h"
#include "httpc.h"

char *tu_fmt(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

char *tu_tmpdir(const char *tag)
{
	const char *base = getenv("TMPDIR");
	char *tmpl = tu_fmt("%s/idem-%s-XXXXXX", base && *base ? base : "/tmp", tag);

	if (tmpl == NULL || mkdtemp(tmpl) == NULL) {
		free(tmpl);
		return NULL;
	}
	return tmpl;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void tu_rmrf(const char *dir)
{
	if (dir != NULL)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *tu_bin(const char *name)
{
	static char path[4096];
	const char *dir = getenv("IDEM_BIN_DIR");

	snprintf(path, sizeof(path), "%s/bin/%s", dir && *dir ? dir : IDEM_BIN_DIR, name);
	return path;
}

pid_t tu_spawn(char *const argv[], const char *const *extra_env, const char *log_path)
{
	pid_t parent = getpid(), pid = fork();

	if (pid != 0)
		return pid;
	/* Die with the test, also one that a failed assertion ended before
	 * it could stop what it started. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	if (log_path != NULL) {
		int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
	}
	for (const char *const *e = extra_env; e != NULL && *e != NULL; e++)
		putenv((char *)*e);
	signal(SIGPIPE, SIG_DFL);
	execv(argv[0], argv);
	_exit(127);
}

static int decode_status(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return -1;
}

int tu_wait_exit(pid_t pid, int timeout_ms)
{
	int64_t deadline = clock_mono_ms() + timeout_ms;
	int st;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return decode_status(st);
		if (r < 0 && errno != EINTR)
			return -1;
		if (clock_mono_ms() >= deadline)
			return -1;
		tu_sleep_ms(10);
	}
}

int tu_run(char *const argv[], const char *const *extra_env, int timeout_ms, char **out)
{
	int fds[2];
	pid_t pid;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int64_t deadline = clock_mono_ms() + timeout_ms;
	int rc;

	if (out != NULL)
		*out = NULL;
	if (pipe(fds) != 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		for (const char *const *e = extra_env; e != NULL && *e != NULL; e++)
			putenv((char *)*e);
		signal(SIGPIPE, SIG_DFL);
		execv(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	for (;;) {
		struct pollfd p = {.fd = fds[0], .events = POLLIN};
		int left = (int)(deadline - clock_mono_ms());
		if (left <= 0)
			break;
		if (poll(&p, 1, left) <= 0)
			continue;
		if (len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			buf = realloc(buf, cap);
		}
		ssize_t n = read(fds[0], buf + len, cap - len - 1);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fds[0]);
	if (buf != NULL)
		buf[len] = '\0';
	rc = tu_wait_exit(
	    pid, (int)(deadline - clock_mono_ms()) > 0 ? (int)(deadline - clock_mono_ms()) : 1);
	if (rc < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (out != NULL)
		*out = buf ? buf : strdup("");
	else
		free(buf);
	return rc;
}

int tu_wait_for_socket(const char *path, int timeout_ms)
{
	int64_t deadline = clock_mono_ms() + timeout_ms;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	while (clock_mono_ms() < deadline) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(fd);
			return 0;
		}
		if (fd >= 0)
			close(fd);
		tu_sleep_ms(20);
	}
	return -1;
}

char *tu_read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (f == NULL)
		return NULL;
	do {
		if (len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			buf = realloc(buf, cap);
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
	} while (n > 0);
	fclose(f);
	buf[len] = '\0';
	return buf;
}

int tu_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return -1;
	fputs(text, f);
	return fclose(f) == 0 ? 0 : -1;
}

void tu_sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

int tu_sup_start(struct tu_sup *s, const char *dir, const char *const *extra)
{
	char *log;

	if (tu_sup_spawn(s, dir, extra, NULL) == 0 && tu_wait_for_socket(s->sock, 10000) == 0)
		return 0;
	log = tu_read_file(s->log);
	fprintf(stderr, "the supervisor in %s did not start; its log:\n%s\n", dir,
	        log != NULL ? log : "(none)");
	free(log);
	return -1;
}

int tu_sup_spawn(struct tu_sup *s, const char *dir, const char *const *extra,
                 const char *const *extra_env)
{
	char *argv[64];
	int n = 0;

	free(s->sock);
	free(s->log);
	s->dir = (char *)dir;
	s->sock = tu_fmt("%s/idem.sock", dir);
	s->log = tu_fmt("%s/supervisor.log", dir);
	argv[n++] = (char *)tu_bin("idem-supervisor");
	argv[n++] = "--env=/dev/null";
	argv[n++] = tu_fmt("--socket=%s", s->sock);
	argv[n++] = tu_fmt("--database=%s/app.db", dir);
	argv[n++] = tu_fmt("--state-database=%s/state.db", dir);
	argv[n++] = tu_fmt("--supplier-database=%s/supplier.db", dir);
	argv[n++] = tu_fmt("--supplier-socket=%s/supplier.sock", dir);
	for (const char *const *e = extra; e != NULL && *e != NULL && n < 62; e++)
		argv[n++] = (char *)*e;
	argv[n] = NULL;
	s->pid = tu_spawn(argv, extra_env, s->log);
	for (int i = 2; i < 7; i++)
		free(argv[i]);
	return s->pid < 0 ? -1 : 0;
}

int tu_stop_child(pid_t pid, int timeout_ms)
{
	int rc;

	kill(pid, SIGTERM);
	rc = tu_wait_exit(pid, timeout_ms);
	if (rc < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	return rc;
}

int tu_sup_stop(struct tu_sup *s)
{
	int rc;

	if (s->pid <= 0)
		return -1;
	rc = tu_stop_child(s->pid, 20000);
	s->pid = 0;
	return rc;
}

void tu_sup_kill9(struct tu_sup *s)
{
	if (s->pid <= 0)
		return;
	kill(s->pid, SIGKILL);
	waitpid(s->pid, NULL, 0);
	s->pid = 0;
}

void tu_sup_free(struct tu_sup *s)
{
	if (s->pid > 0)
		tu_sup_kill9(s);
	free(s->sock);
	free(s->log);
	s->sock = s->log = NULL;
}

int tu_fixture_setup(void **state, const char *tag)
{
	struct tu_fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	f->dir = tu_tmpdir(tag);
	*state = f;
	return f->dir ? 0 : -1;
}

int tu_fixture_teardown(void **state)
{
	struct tu_fixture *f = *state;

	tu_sup_free(&f->sup);
	if (getenv("IDEM_KEEP_TMP") == NULL)
		tu_rmrf(f->dir);
	else
		fprintf(stderr, "kept %s\n", f->dir);
	free(f->dir);
	free(f);
	return 0;
}

int tu_http(const struct tu_sup *s, const char *method, const char *path, const char *body,
            json_t **out)
{
	struct httpc_response r = {0};
	char err[512];
	int status;

	if (out != NULL)
		*out = NULL;
	if (httpc_request(s->sock, method, path, NULL, body, body ? strlen(body) : 0, 60000, &r,
	                  err, sizeof(err)) != 0) {
		fprintf(stderr, "tu_http %s %s: %s\n", method, path, err);
		return -1;
	}
	status = r.status;
	if (out != NULL)
		*out = json_loadb(r.body, r.body_len, 0, NULL);
	httpc_response_free(&r);
	return status;
}

int tu_start_order(const struct tu_sup *s, const char *order_id, const char *product, long quantity)
{
	char *body = tu_fmt("{\"input\":{\"order_id\":\"%s\",\"product_id\":\"%s\","
	                    "\"quantity\":%ld}}",
	                    order_id, product, quantity);
	int status = tu_http(s, "POST", "/v1/workflows", body, NULL);

	free(body);
	return status;
}

long long tu_sql_int(const char *db_path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long v = LLONG_MIN;

	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_busy_timeout(db, 5000) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	db_close(db);
	return v;
}

int tu_count_in_file(const char *path, const char *needle)
{
	char *text = tu_read_file(path);
	int n = 0;

	for (const char *p = text; p != NULL && (p = strstr(p, needle)) != NULL; p++)
		n++;
	free(text);
	return n;
}
