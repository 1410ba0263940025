/* test_powerlog.c — libidem_powerlog.so (tests/powerlog.c), the recorder
 * of the power-loss harness, judged by the logs it leaves.
 *
 * The test execs itself (--scenario ROOT OUT) with the library preloaded,
 * IDEM_POWERLOG_DIR and IDEM_POWERLOG_ROOT set. The scenario, a plain
 * program, does what a run does to its files: a file created, written
 * with pwrite, fdatasync'd, renamed into place; another unlinked and the
 * directory synced; write, writev, dup, fcntl dups, ftruncate and fsync on
 * the renamed file; an O_APPEND file; opens relative to the cwd, to a
 * dirfd and through a symlink; an SQLite database in WAL mode with
 * synchronous=FULL (SQLite's own open64, pwrite64 and fdatasync, called
 * through its function pointers); a file outside ROOT and a "-shm" file
 * (both unrecorded); then it forks, and both processes write from two
 * threads each. It notes the shared counter after its first fdatasync, as
 * a test driver would ("what I was told at seq N").
 *
 * The parent parses every ops.<pid> with its own reader of the format
 * written in powerlog.c and asserts: the exact records of the plain file
 * (ops, offsets, lengths, bytes, paths, increasing seqs), the files'
 * contents (the calls still did their work), the SQLite files' writes and
 * syncs, nothing outside ROOT nor any -shm, one log per process with seqs
 * 1..N between them and none twice. Without IDEM_POWERLOG_DIR the same
 * scenario leaves no log anywhere.
 *
 * The hold (--hold ROOT OUT): while IDEM_POWERLOG_DIR/hold names a file,
 * its sync waits and nothing of it is recorded; a sync of a file the hold
 * does not name goes at once; the held one goes when the hold is removed.
 *
 * Under ASan the library is not instrumented and is loaded before the ASan
 * runtime, hence verify_asan_link_order=0 for the scenario. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "testutil.h"

/* The op codes of powerlog.c. */
enum {
	OP_OPEN_CREATE = 1,
	OP_WRITE = 2,
	OP_TRUNCATE = 3,
	OP_FSYNC = 4,
	OP_DIRSYNC = 5,
	OP_RENAME = 6,
	OP_UNLINK = 7,
};

#define BLOCK 4096
#define FORK_WRITES 50 /* per thread */

/* ---- the scenario (a child process: exits, never asserts) ----------------- */

static void need(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "scenario: %s: %s\n", what, strerror(errno));
		exit(2);
	}
}

static void fill(unsigned char *b, size_t n, char first)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (unsigned char)(first + (int)(i % 26));
}

/* The shared counter, as a driver reads it; 0 when not recording. */
static uint64_t told_now(void)
{
	const char *dir = getenv("IDEM_POWERLOG_DIR");
	char *path = dir != NULL ? tu_fmt("%s/seq", dir) : NULL;
	int fd = path != NULL ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	uint64_t v = 0, *p;

	free(path);
	if (fd < 0)
		return 0;
	p = mmap(NULL, 8, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	need(p != MAP_FAILED, "map the seq file");
	v = __atomic_load_n(p, __ATOMIC_SEQ_CST);
	munmap(p, 8);
	return v;
}

static void put_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	need(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text), path);
	need(close(fd) == 0, path);
}

/* Created, written twice, synced, renamed into place; a victim unlinked,
 * the directory synced; then written, truncated and synced again through
 * the new name, a dup and an fcntl dup. */
static void scenario_plain(const char *root, const char *out)
{
	unsigned char b1[BLOCK], b2[BLOCK];
	char *tmp = tu_fmt("%s/plain.tmp", root), *fin = tu_fmt("%s/plain", root);
	char *victim = tu_fmt("%s/victim", root), *told = tu_fmt("%s/told", out), num[32];
	struct iovec iov[2] = {{"12", 2}, {"345", 3}};
	int fd, dfd, fd2, ro;

	fill(b1, sizeof(b1), 'a');
	fill(b2, sizeof(b2), 'A');
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	need(fd >= 0, "create plain.tmp");
	errno = EDOM;
	need(pwrite(fd, b1, BLOCK, 0) == BLOCK, "pwrite block 1");
	need(errno == EDOM, "a recorded pwrite keeps errno");
	need(pwrite(fd, b2, BLOCK, BLOCK) == BLOCK, "pwrite block 2");
	need(fdatasync(fd) == 0, "fdatasync plain.tmp");
	snprintf(num, sizeof(num), "%" PRIu64, told_now());
	put_file(told, num);
	need(rename(tmp, fin) == 0, "rename plain.tmp plain");
	need(unlink(victim) == 0, "unlink victim");
	dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	need(dfd >= 0 && fsync(dfd) == 0 && close(dfd) == 0, "fsync the root directory");
	need(lseek(fd, 10, SEEK_SET) == 10 && write(fd, "xyz", 3) == 3, "write at 10");
	need(writev(fd, iov, 2) == 5, "writev at 13");
	fd2 = dup(fd);
	need(fd2 >= 0 && pwrite(fd2, "dup!", 4, 2 * BLOCK) == 4 && close(fd2) == 0, "pwrite a dup");
	fd2 = fcntl(fd, F_DUPFD_CLOEXEC, 100);
	need(fd2 >= 100 && ftruncate(fd2, 8000) == 0 && close(fd2) == 0, "ftruncate an fcntl dup");
	ro = open(fin, O_RDONLY | O_CLOEXEC);
	need(ro >= 0 && ftruncate(ro, 1) == -1 && (errno == EINVAL || errno == EBADF),
	     "ftruncate of a read-only descriptor fails as ever");
	need(close(ro) == 0, "close the read-only descriptor");
	need(fsync(-1) == -1 && errno == EBADF, "fsync(-1) fails with EBADF");
	need(fsync(fd) == 0 && close(fd) == 0, "fsync plain");
	free(tmp);
	free(fin);
	free(victim);
	free(told);
}

/* O_APPEND, O_TRUNC, a relative path, a dirfd, a symlink, creat,
 * truncate. */
static void scenario_opens(const char *root, const char *out)
{
	char *app = tu_fmt("%s/app.log", root), *sub = tu_fmt("%s/sub", root);
	char *sym = tu_fmt("%s/link/sym.f", out), *cr = tu_fmt("%s/creat.f", root);
	char *trunc_path = tu_fmt("%s/sym.f", root);
	int fd, sd;

	fd = open(app, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	need(fd >= 0 && write(fd, "hello", 5) == 5 && write(fd, "hello", 5) == 5, "append");
	need(close(fd) == 0, "close app.log");
	fd = open(app, O_WRONLY | O_TRUNC | O_CLOEXEC);
	need(fd >= 0 && close(fd) == 0, "open app.log with O_TRUNC");
	need(chdir(sub) == 0, "chdir sub");
	fd = open("rel.f", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	need(fd >= 0 && write(fd, "r", 1) == 1 && close(fd) == 0, "relative open");
	need(chdir("/") == 0, "chdir /");
	sd = open(sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	need(sd >= 0, "open sub");
	fd = openat(sd, "at.f", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	need(fd >= 0 && pwrite(fd, "at", 2, 0) == 2 && close(fd) == 0, "openat");
	need(unlinkat(sd, "at.f", 0) == 0 && close(sd) == 0, "unlinkat");
	fd = open(sym, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	need(fd >= 0 && write(fd, "s", 1) == 1 && close(fd) == 0, "open through a symlink");
	fd = creat(cr, 0644);
	need(fd >= 0 && close(fd) == 0, "creat");
	need(truncate(trunc_path, 0) == 0, "truncate sym.f");
	free(app);
	free(sub);
	free(sym);
	free(cr);
	free(trunc_path);
}

/* Outside ROOT and a -shm: done, and not recorded. */
static void scenario_unrecorded(const char *root, const char *out)
{
	char *o1 = tu_fmt("%s/outside.f", out), *o2 = tu_fmt("%s/outside2.f", out);
	char *shm = tu_fmt("%s/x.db-shm", root);
	int fd;

	fd = open(o1, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	need(fd >= 0 && pwrite(fd, "out", 3, 0) == 3 && fsync(fd) == 0 && close(fd) == 0,
	     "write outside ROOT");
	need(rename(o1, o2) == 0 && unlink(o2) == 0, "rename and unlink outside ROOT");
	fd = open(shm, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	need(fd >= 0 && pwrite(fd, "shm", 3, 0) == 3 && fdatasync(fd) == 0 && close(fd) == 0,
	     "write a -shm");
	need(unlink(shm) == 0, "unlink the -shm");
	free(o1);
	free(o2);
	free(shm);
}

static void scenario_sqlite(const char *root)
{
	char *path = tu_fmt("%s/db.sqlite", root), *wal = tu_fmt("%s/db.sqlite-wal", root);
	sqlite3 *db = NULL;
	struct stat st;

	need(sqlite3_open(path, &db) == SQLITE_OK, "sqlite3_open");
	need(sqlite3_exec(db,
	                  "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
	                  "CREATE TABLE t(x); INSERT INTO t VALUES(42);",
	                  NULL, NULL, NULL) == SQLITE_OK,
	     sqlite3_errmsg(db));
	need(stat(wal, &st) == 0 && st.st_size > 0, "the WAL holds the commits");
	need(sqlite3_close(db) == SQLITE_OK, "sqlite3_close");
	free(path);
	free(wal);
}

struct writer {
	const char *root, *role;
	int n;
};

static void *writer_main(void *arg)
{
	const struct writer *w = arg;
	char *path = tu_fmt("%s/fork.%s.%d", w->root, w->role, w->n);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644), ok = fd >= 0;

	for (int i = 0; ok && i < FORK_WRITES; i++)
		ok = pwrite(fd, "four", 4, 4 * i) == 4;
	ok = ok && fdatasync(fd) == 0 && close(fd) == 0;
	free(path);
	return ok ? arg : NULL;
}

/* Two threads writing a file each; 0 when both did. */
static int write_from_threads(const char *root, const char *role)
{
	struct writer w[2] = {{root, role, 0}, {root, role, 1}};
	pthread_t t[2];
	void *r0 = NULL, *r1 = NULL;

	if (pthread_create(&t[0], NULL, writer_main, &w[0]) != 0)
		return -1;
	if (pthread_create(&t[1], NULL, writer_main, &w[1]) != 0) {
		pthread_join(t[0], NULL);
		return -1;
	}
	pthread_join(t[0], &r0);
	pthread_join(t[1], &r1);
	return r0 != NULL && r1 != NULL ? 0 : -1;
}

static void scenario_fork(const char *root)
{
	pid_t child = fork();
	int st;

	need(child >= 0, "fork");
	if (child == 0)
		_exit(write_from_threads(root, "child") == 0 ? 0 : 3);
	need(write_from_threads(root, "parent") == 0, "the parent's threads write");
	need(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	     "the forked child writes");
}

static int scenario(const char *root, const char *out)
{
	scenario_plain(root, out);
	scenario_opens(root, out);
	scenario_unrecorded(root, out);
	scenario_sqlite(root);
	scenario_fork(root);
	return 0;
}

/* Syncs ROOT/free, then ROOT/held.wal, noting OUT/free-synced and
 * OUT/held-synced after each (the driver holds the second). */
static int scenario_hold(const char *root, const char *out)
{
	const char *names[] = {"free", "held.wal"}, *notes[] = {"free-synced", "held-synced"};

	for (int i = 0; i < 2; i++) {
		char path[PATH_MAX], note[PATH_MAX];
		int fd;

		snprintf(path, sizeof(path), "%s/%s", root, names[i]);
		snprintf(note, sizeof(note), "%s/%s", out, notes[i]);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		need(fd >= 0 && write(fd, "x", 1) == 1 && fdatasync(fd) == 0 && close(fd) == 0,
		     names[i]);
		put_file(note, "synced");
	}
	return 0;
}

/* ---- the reader --------------------------------------------------------- */

struct rec {
	uint64_t seq, offset, len;
	uint32_t pid, op;
	char *path, *path2;
	unsigned char *data;
};

struct log {
	struct rec *r;
	size_t n;
	pid_t pids[8];
	int npids;
};

static uint64_t le(const unsigned char *p, int bytes)
{
	uint64_t v = 0;

	for (int i = bytes - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static char *dup_bytes(const unsigned char *p, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* Appends the records of one ops.<pid> file: each whole, of that pid, in
 * increasing seq. */
static void parse_log(const char *path, pid_t pid, struct log *lg)
{
	size_t len, at = 0;
	unsigned char *buf = slurp(path, &len);
	uint64_t last = 0;

	while (at < len) {
		struct rec r = {0};
		uint64_t n1, n2;

		assert_true(len - at >= 40);
		r.seq = le(buf + at, 8);
		r.pid = (uint32_t)le(buf + at + 8, 4);
		r.op = (uint32_t)le(buf + at + 12, 4);
		r.offset = le(buf + at + 16, 8);
		r.len = le(buf + at + 24, 8);
		n1 = le(buf + at + 32, 4);
		n2 = le(buf + at + 36, 4);
		at += 40;
		assert_true(r.op >= OP_OPEN_CREATE && r.op <= OP_UNLINK);
		assert_true(len - at >= n1 + n2 + (r.op == OP_WRITE ? r.len : 0));
		r.path = dup_bytes(buf + at, n1);
		r.path2 = dup_bytes(buf + at + n1, n2);
		at += n1 + n2;
		if (r.op == OP_WRITE) {
			r.data = (unsigned char *)dup_bytes(buf + at, r.len);
			at += r.len;
		}
		assert_int_equal(r.pid, (uint32_t)pid);
		assert_true(r.seq > last);
		last = r.seq;
		lg->r = realloc(lg->r, (lg->n + 1) * sizeof(*lg->r));
		assert_non_null(lg->r);
		lg->r[lg->n++] = r;
	}
	free(buf);
}

static int by_seq(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Every ops.<pid> of dir, records sorted by seq. */
static void read_logs(const char *dir, struct log *lg)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		char *path;

		if (strncmp(e->d_name, "ops.", 4) != 0)
			continue;
		assert_true(lg->npids < 8);
		lg->pids[lg->npids] = (pid_t)atoi(e->d_name + 4);
		path = tu_fmt("%s/%s", dir, e->d_name);
		parse_log(path, lg->pids[lg->npids++], lg);
		free(path);
	}
	closedir(d);
	qsort(lg->r, lg->n, sizeof(*lg->r), by_seq);
}

static void free_logs(struct log *lg)
{
	for (size_t i = 0; i < lg->n; i++) {
		free(lg->r[i].path);
		free(lg->r[i].path2);
		free(lg->r[i].data);
	}
	free(lg->r);
}

/* The nth (from 0) record of op on path; NULL when there are fewer. */
static const struct rec *find(const struct log *lg, uint32_t op, const char *path, int nth)
{
	for (size_t i = 0; i < lg->n; i++)
		if (lg->r[i].op == op && strcmp(lg->r[i].path, path) == 0 && nth-- == 0)
			return &lg->r[i];
	return NULL;
}

static int count(const struct log *lg, uint32_t op, const char *path)
{
	int n = 0;

	while (find(lg, op, path, n) != NULL)
		n++;
	return n;
}

/* ---- the tests ----------------------------------------------------------- */

struct fx {
	char *top, *root, *out, *logs;
	char root_real[PATH_MAX];
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char *p;

	if (f == NULL || (f->top = tu_tmpdir("powerlog")) == NULL)
		return -1;
	f->root = tu_fmt("%s/root", f->top);
	f->out = tu_fmt("%s/out", f->top);
	f->logs = tu_fmt("%s/logs", f->top);
	if (mkdir(f->root, 0755) != 0 || mkdir(f->out, 0755) != 0 || mkdir(f->logs, 0755) != 0 ||
	    realpath(f->root, f->root_real) == NULL)
		return -1;
	p = tu_fmt("%s/sub", f->root);
	if (mkdir(p, 0755) != 0)
		return -1;
	free(p);
	p = tu_fmt("%s/victim", f->root);
	if (tu_write_file(p, "doomed") != 0)
		return -1;
	free(p);
	p = tu_fmt("%s/link", f->out);
	if (symlink(f->root, p) != 0)
		return -1;
	free(p);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	if (getenv("IDEM_KEEP_TMP") != NULL)
		fprintf(stderr, "kept %s\n", f->top);
	else
		tu_rmrf(f->top);
	free(f->top);
	free(f->root);
	free(f->out);
	free(f->logs);
	free(f);
	return 0;
}

/* Starts this program as "mode ROOT OUT" (--scenario, --hold) with the
 * library preloaded (logs: IDEM_POWERLOG_DIR, or NULL to leave it unset),
 * its output in log. Returns its pid. */
static pid_t spawn_scenario(const struct fx *f, const char *mode, const char *logs, const char *log)
{
	char self[PATH_MAX];
	const char *asan = getenv("ASAN_OPTIONS");
	char *env[] = {
	    tu_fmt("LD_PRELOAD=%s/libidem_powerlog.so", IDEM_BIN_DIR),
	    tu_fmt("ASAN_OPTIONS=%s%sverify_asan_link_order=0", asan ? asan : "", asan ? ":" : ""),
	    tu_fmt("IDEM_POWERLOG_ROOT=%s", f->root),
	    logs != NULL ? tu_fmt("IDEM_POWERLOG_DIR=%s", logs) : NULL,
	    NULL,
	};
	char *argv[] = {self, (char *)mode, f->root, f->out, NULL};
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	pid_t pid;

	assert_true(n > 0);
	self[n] = '\0';
	pid = tu_spawn(argv, (const char *const *)env, log);
	assert_true(pid > 0);
	for (int i = 0; i < 4; i++)
		free(env[i]);
	return pid;
}

/* Runs the scenario with the library preloaded (logs: IDEM_POWERLOG_DIR,
 * or NULL to leave it unset); asserts it exits 0. Returns its pid. */
static pid_t run_scenario(const struct fx *f, const char *logs)
{
	char *log = tu_fmt("%s/scenario.log", f->top);
	pid_t pid = spawn_scenario(f, "--scenario", logs, log);
	int rc;

	rc = tu_wait_exit(pid, 60000);
	if (rc != 0) {
		char *text = tu_read_file(log);

		fprintf(stderr, "%s", text != NULL ? text : "");
		free(text);
		fail_msg("the scenario exited %d", rc);
	}
	free(log);
	return pid;
}

/* What the scenario leaves in ROOT, recorded or not: plain's bytes and the
 * database's row. */
static void assert_results(const struct fx *f)
{
	unsigned char want[8000];
	char *plain = tu_fmt("%s/plain", f->root), *db = tu_fmt("%s/db.sqlite", f->root);
	size_t len;
	unsigned char *got = slurp(plain, &len);

	fill(want, BLOCK, 'a');
	fill(want + BLOCK, 8000 - BLOCK, 'A');
	memcpy(want + 10, "xyz12345", 8);
	assert_int_equal(len, sizeof(want));
	assert_memory_equal(got, want, sizeof(want));
	assert_int_equal(tu_sql_int(db, "SELECT x FROM t"), 42);
	free(got);
	free(plain);
	free(db);
}

struct want {
	uint32_t op;
	const char *name, *name2;
	uint64_t offset, len;
	const char *data; /* NULL: none, or checked apart */
};

/* The records of plain.tmp and plain, exactly; victim's unlink and the
 * directory's sync between the rename and the writes that follow; the
 * driver's seq between the fdatasync and the rename. */
static void assert_plain(const struct fx *f, const struct log *lg)
{
	unsigned char b1[BLOCK], b2[BLOCK];
	const struct want want[] = {
	    {OP_OPEN_CREATE, "plain.tmp", "", 0, 0, NULL},
	    {OP_WRITE, "plain.tmp", "", 0, BLOCK, (const char *)b1},
	    {OP_WRITE, "plain.tmp", "", BLOCK, BLOCK, (const char *)b2},
	    {OP_FSYNC, "plain.tmp", "", 1, 0, NULL},
	    {OP_RENAME, "plain.tmp", "plain", 0, 0, NULL},
	    {OP_WRITE, "plain", "", 10, 3, "xyz"},
	    {OP_WRITE, "plain", "", 13, 5, "12345"},
	    {OP_WRITE, "plain", "", 2 * BLOCK, 4, "dup!"},
	    {OP_TRUNCATE, "plain", "", 8000, 0, NULL},
	    {OP_FSYNC, "plain", "", 0, 0, NULL},
	};
	const struct rec *got[sizeof(want) / sizeof(want[0])];
	char *tmp = tu_fmt("%s/plain.tmp", f->root_real), *fin = tu_fmt("%s/plain", f->root_real);
	char *victim = tu_fmt("%s/victim", f->root_real), *told_path = tu_fmt("%s/told", f->out);
	char *told = tu_read_file(told_path);
	const struct rec *unl = find(lg, OP_UNLINK, victim, 0);
	const struct rec *dsync = find(lg, OP_DIRSYNC, f->root_real, 0);
	size_t k = 0;

	fill(b1, sizeof(b1), 'a');
	fill(b2, sizeof(b2), 'A');
	for (size_t i = 0; i < lg->n; i++)
		if (strcmp(lg->r[i].path, tmp) == 0 || strcmp(lg->r[i].path, fin) == 0) {
			assert_true(k < sizeof(want) / sizeof(want[0]));
			got[k++] = &lg->r[i];
		}
	assert_int_equal(k, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < k; i++) {
		char *path = tu_fmt("%s/%s", f->root_real, want[i].name);
		char *path2 = *want[i].name2 ? tu_fmt("%s/%s", f->root_real, want[i].name2) : NULL;

		assert_int_equal(got[i]->op, want[i].op);
		assert_string_equal(got[i]->path, path);
		assert_string_equal(got[i]->path2, path2 != NULL ? path2 : "");
		assert_int_equal(got[i]->offset, want[i].offset);
		if (want[i].op == OP_FSYNC) /* the seq before the sync: after the writes */
			assert_true(got[i]->len >= got[i - 1]->seq && got[i]->len < got[i]->seq);
		else
			assert_int_equal(got[i]->len, want[i].len);
		if (want[i].data != NULL)
			assert_memory_equal(got[i]->data, want[i].data, want[i].len);
		free(path);
		free(path2);
	}
	assert_non_null(unl);
	assert_non_null(dsync);
	assert_int_equal(unl->offset, 0);
	assert_true(got[4]->seq < unl->seq && unl->seq < dsync->seq && dsync->seq < got[5]->seq);
	assert_true(dsync->len >= unl->seq);
	assert_non_null(told);
	assert_true(strtoull(told, NULL, 10) >= got[3]->seq);
	assert_true(strtoull(told, NULL, 10) < got[4]->seq);
	free(tmp);
	free(fin);
	free(victim);
	free(told_path);
	free(told);
}

static void assert_opens(const struct fx *f, const struct log *lg)
{
	char *app = tu_fmt("%s/app.log", f->root_real), *rel = tu_fmt("%s/sub/rel.f", f->root_real);
	char *at = tu_fmt("%s/sub/at.f", f->root_real), *sym = tu_fmt("%s/sym.f", f->root_real);
	char *cr = tu_fmt("%s/creat.f", f->root_real);
	const struct rec *r;

	assert_non_null(find(lg, OP_OPEN_CREATE, app, 0));
	r = find(lg, OP_WRITE, app, 0);
	assert_true(r != NULL && r->offset == 0 && r->len == 5);
	r = find(lg, OP_WRITE, app, 1);
	assert_true(r != NULL && r->offset == 5 && r->len == 5); /* O_APPEND: at the end */
	r = find(lg, OP_TRUNCATE, app, 0);
	assert_true(r != NULL && r->offset == 0 && r->seq > find(lg, OP_WRITE, app, 1)->seq);
	assert_non_null(find(lg, OP_OPEN_CREATE, rel, 0));
	assert_non_null(find(lg, OP_WRITE, rel, 0));
	assert_non_null(find(lg, OP_OPEN_CREATE, at, 0));
	assert_non_null(find(lg, OP_WRITE, at, 0));
	assert_non_null(find(lg, OP_UNLINK, at, 0));
	assert_non_null(find(lg, OP_OPEN_CREATE, sym, 0));
	r = find(lg, OP_WRITE, sym, 0);
	assert_true(r != NULL && r->len == 1 && r->data[0] == 's');
	assert_non_null(find(lg, OP_TRUNCATE, sym, 0));
	assert_non_null(find(lg, OP_OPEN_CREATE, cr, 0));
	assert_null(find(lg, OP_TRUNCATE, cr, 0)); /* created, not truncated */
	free(app);
	free(rel);
	free(at);
	free(sym);
	free(cr);
}

/* SQLite's own calls: the database and its WAL created, written and
 * synced; the WAL's header first; the WAL removed on close. */
static void assert_sqlite(const struct fx *f, const struct log *lg)
{
	char *db = tu_fmt("%s/db.sqlite", f->root_real), *wal = tu_fmt("%s-wal", db);
	const struct rec *hdr = find(lg, OP_WRITE, wal, 0);

	assert_non_null(find(lg, OP_OPEN_CREATE, db, 0));
	assert_true(count(lg, OP_WRITE, db) >= 1);
	assert_true(count(lg, OP_FSYNC, db) >= 1);
	assert_non_null(find(lg, OP_OPEN_CREATE, wal, 0));
	assert_true(hdr != NULL && hdr->offset == 0 && hdr->len == 32);
	assert_true(count(lg, OP_WRITE, wal) >= 3);
	assert_true(count(lg, OP_FSYNC, wal) >= 1);
	assert_true(find(lg, OP_FSYNC, wal, 0)->seq > hdr->seq);
	assert_non_null(find(lg, OP_UNLINK, wal, 0));
	free(db);
	free(wal);
}

/* Nothing outside ROOT, no -shm; seqs 1..N, each once, N the counter. */
static void assert_scope_and_seqs(const struct fx *f, const struct log *lg)
{
	size_t n = strlen(f->root_real), len;
	char *seq_path = tu_fmt("%s/seq", f->logs);
	unsigned char *seq = slurp(seq_path, &len);

	for (size_t i = 0; i < lg->n; i++) {
		const char *p[2] = {lg->r[i].path, lg->r[i].path2};

		for (int j = 0; j < 2; j++) {
			size_t m = strlen(p[j]);

			if (j == 1 && m == 0)
				continue;
			if (strncmp(p[j], f->root_real, n) != 0 ||
			    (p[j][n] != '\0' && p[j][n] != '/'))
				fail_msg("recorded outside ROOT: %s", p[j]);
			if (m >= 4 && strcmp(p[j] + m - 4, "-shm") == 0)
				fail_msg("recorded a -shm: %s", p[j]);
		}
		assert_int_equal(lg->r[i].seq, i + 1);
	}
	assert_int_equal(len, 8);
	assert_int_equal(le(seq, 8), lg->n); /* x86_64: native is little-endian */
	free(seq);
	free(seq_path);
}

/* Two logs, the scenario's and its forked child's, each with its own
 * threads' writes. */
static void assert_fork(const struct fx *f, const struct log *lg, pid_t scenario)
{
	pid_t child = lg->pids[0] == scenario ? lg->pids[1] : lg->pids[0];

	assert_int_equal(lg->npids, 2);
	assert_true(lg->pids[0] == scenario || lg->pids[1] == scenario);
	assert_true(child != scenario && child > 0);
	for (int t = 0; t < 2; t++) {
		char *mine = tu_fmt("%s/fork.parent.%d", f->root_real, t);
		char *its = tu_fmt("%s/fork.child.%d", f->root_real, t);

		assert_int_equal(count(lg, OP_WRITE, mine), FORK_WRITES);
		assert_int_equal(count(lg, OP_WRITE, its), FORK_WRITES);
		for (int i = 0; i < FORK_WRITES; i++) {
			const struct rec *a = find(lg, OP_WRITE, mine, i),
			                 *b = find(lg, OP_WRITE, its, i);

			assert_int_equal(a->pid, (uint32_t)scenario);
			assert_int_equal(b->pid, (uint32_t)child);
			assert_int_equal(a->offset, 4 * i);
			assert_int_equal(b->offset, 4 * i);
			assert_memory_equal(b->data, "four", 4);
		}
		assert_int_equal(find(lg, OP_FSYNC, its, 0)->pid, (uint32_t)child);
		free(mine);
		free(its);
	}
}

static void test_records_a_run(void **state)
{
	const struct fx *f = *state;
	struct log lg = {0};
	pid_t pid = run_scenario(f, f->logs);

	assert_results(f);
	read_logs(f->logs, &lg);
	assert_scope_and_seqs(f, &lg);
	assert_plain(f, &lg);
	assert_opens(f, &lg);
	assert_sqlite(f, &lg);
	assert_fork(f, &lg, pid);
	free_logs(&lg);
}

/* Whether dir holds a log: "seq" or an "ops.<pid>". */
static int holds_log(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int found = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		found |= strncmp(e->d_name, "ops.", 4) == 0 || strcmp(e->d_name, "seq") == 0;
	closedir(d);
	return found;
}

static void test_without_dir_records_nothing(void **state)
{
	const struct fx *f = *state;
	char *sub = tu_fmt("%s/sub", f->root);
	DIR *d;
	int entries = 0;

	run_scenario(f, NULL);
	assert_results(f);
	assert_false(holds_log(f->root));
	assert_false(holds_log(sub));
	assert_false(holds_log(f->out));
	assert_false(holds_log(f->top));
	d = opendir(f->logs);
	assert_non_null(d);
	while (readdir(d) != NULL)
		entries++;
	closedir(d);
	assert_int_equal(entries, 2); /* . and .. */
	free(sub);
}

static void test_a_hold_holds_the_syncs_it_names(void **state)
{
	const struct fx *f = *state;
	char *log = tu_fmt("%s/hold.log", f->top);
	char *hold = tu_fmt("%s/hold", f->logs), *free_note = tu_fmt("%s/free-synced", f->out);
	char *held_note = tu_fmt("%s/held-synced", f->out);
	char *held = tu_fmt("%s/held.wal", f->root_real), *freed = tu_fmt("%s/free", f->root_real);
	struct log lg = {0};
	pid_t pid;

	assert_int_equal(tu_write_file(hold, "other.wal\nheld.wal\n"), 0);
	pid = spawn_scenario(f, "--hold", f->logs, log);
	for (int ms = 0; access(free_note, F_OK) != 0 && ms < 20000; ms += 10)
		tu_sleep_ms(10);
	assert_int_equal(access(free_note, F_OK), 0); /* not named: not held */
	tu_sleep_ms(300);
	assert_int_not_equal(access(held_note, F_OK), 0); /* named: still waiting */
	read_logs(f->logs, &lg);
	assert_int_equal(count(&lg, OP_FSYNC, freed), 1);
	assert_int_equal(count(&lg, OP_FSYNC, held), 0);
	free_logs(&lg);
	memset(&lg, 0, sizeof(lg));
	assert_int_equal(unlink(hold), 0);
	assert_int_equal(tu_wait_exit(pid, 20000), 0);
	assert_int_equal(access(held_note, F_OK), 0);
	read_logs(f->logs, &lg);
	assert_int_equal(count(&lg, OP_FSYNC, held), 1);
	/* the sync began when the hold ended: it covers the write before it */
	assert_true(find(&lg, OP_FSYNC, held, 0)->len >= find(&lg, OP_WRITE, held, 0)->seq);
	free_logs(&lg);
	free(log);
	free(hold);
	free(free_note);
	free(held_note);
	free(held);
	free(freed);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_records_a_run, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_without_dir_records_nothing, fx_setup,
	                                    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_a_hold_holds_the_syncs_it_names, fx_setup,
	                                    fx_teardown),
	};

	if (argc == 4 && strcmp(argv[1], "--scenario") == 0)
		return scenario(argv[2], argv[3]);
	if (argc == 4 && strcmp(argv[1], "--hold") == 0)
		return scenario_hold(argv[2], argv[3]);
	/* This process is not recorded; neither may its scenarios be, but
	 * by the environment each test gives them. */
	unsetenv("IDEM_POWERLOG_DIR");
	unsetenv("IDEM_POWERLOG_ROOT");
	unsetenv("LD_PRELOAD");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
