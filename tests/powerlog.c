/* powerlog.c — libidem_powerlog.so, the recorder of the power-loss harness.
 * Preloaded into a whole run (LD_PRELOAD passes to every child through the
 * environment), it logs each operation on a file under a root that decides
 * what a power loss could leave on disk, so that a reader can rebuild that
 * disk at any cut point.
 *
 * Activation:
 *  - IDEM_POWERLOG_DIR=DIR: an existing directory, outside ROOT, for the
 *    logs. Unset or empty: the library only passes calls through. DIR and
 *    ROOT are absolute (else one line on stderr, and nothing recorded).
 *  - IDEM_POWERLOG_ROOT=ROOT: only files under ROOT are recorded (ROOT
 *    itself included, for its directory syncs), named by the real path of
 *    their directory + their last component, as resolved when they were
 *    opened (relative paths: against the cwd or the dirfd). Files ending
 *    in "-shm" are not recorded (SQLite rebuilds the wal-index). Unset
 *    while DIR is set: one line on stderr, and nothing is recorded.
 *
 * Order: DIR/seq holds a u64 counter (native endianness, 8 bytes) that
 * every process maps MAP_SHARED. A record takes the next number (from 1)
 * after its call returned successfully (a failed call is not recorded), so
 * the effect of a record happened before any higher number was taken. A
 * test driver maps DIR/seq read-only and reads the u64 (atomically) to note
 * "what I was told at seq N": every record of an operation that happened
 * before it was told has a seq <= N.
 *
 * Logs: one file per process, DIR/ops.<pid>, opened on its first record
 * (a forked child, whose pid differs, opens its own). Each record is one
 * write(2) under a process-wide mutex, so records never interleave, and a
 * file's records are in increasing seq; the seqs of all files together are
 * 1..N without a gap unless a process died between taking a seq and
 * writing its record. Record layout, little-endian, packed:
 *
 *     u64 seq; u32 pid; u32 op; u64 offset; u64 len;
 *     u32 path_len; u32 path2_len;                      (40 bytes)
 *     path bytes (path_len, no NUL); path2 bytes (path2_len);
 *     data bytes (len, for PL_WRITE only)
 *
 *  op                offset                   len                path2
 *  1 OPEN_CREATE     0                        0                  -
 *  2 WRITE           file offset written at   bytes written      -
 *  3 TRUNCATE        the new length           0                  -
 *  4 FSYNC           1 fdatasync, 0 fsync     seq before the call -
 *  5 DIRSYNC         1 fdatasync, 0 fsync     seq before the call -
 *  6 RENAME          renameat2 flags          0                  new path
 *  7 UNLINK          1 a directory, 0 a file  0                  -
 *
 * OPEN_CREATE: open/creat with O_CREAT made a file that did not exist. An
 * open with O_TRUNC of an existing file is a TRUNCATE to 0. WRITE: write,
 * pwrite, writev, pwritev (offset of an O_APPEND file: its size before).
 * FSYNC, DIRSYNC: len is the counter just before the call began: the
 * records with seq <= len certainly happened before the sync started and
 * are covered by it; those between len and the sync's own seq ran beside
 * it and may or may not be. DIRSYNC is a sync of a directory descriptor
 * (path = the directory). RENAME: recorded when either side is under ROOT
 * (the other side may not be); offset 2 (RENAME_EXCHANGE) means the two
 * swapped. UNLINK: unlink, unlinkat, rmdir.
 *
 * Hold: while DIR/hold exists, a sync of a recorded file or directory
 * whose path ends with one of the file's lines (every one, when the file
 * is empty) waits, polling every millisecond, before it begins, in
 * whatever process or thread calls it; the rest of the process runs on.
 * A driver writes the file to leave commits written but unsynced for as
 * long as it likes (then kills the process, or watches what a process
 * lets out before its syncs: the restart window), and removes it to let
 * the syncs go.
 *
 * Invariants: an intercepted call returns what the real one returned with
 * the errno it set (recording saves and restores errno); the mutex is never
 * held across a real call nor across fork() (pthread_atfork takes it); a
 * descriptor is recorded through only while it still names the file (dev,
 * inode) it was registered for.
 *
 * Not seen: writes through a shared mmap, stdio (glibc writes internally),
 * io_uring, sendfile, copy_file_range, fallocate, mkdir, link, sync,
 * syncfs, sync_file_range, O_TMPFILE files; renames done by another process
 * while this one holds the file open (its records keep the old name);
 * concurrent write() on one shared file offset; descriptors >= PL_MAXFD;
 * vfork children that call into the library before exec. */
#undef _FORTIFY_SOURCE /* this file defines open(), which it would inline */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum pl_op {
	PL_OPEN_CREATE = 1,
	PL_WRITE = 2,
	PL_TRUNCATE = 3,
	PL_FSYNC = 4,
	PL_DIRSYNC = 5,
	PL_RENAME = 6,
	PL_UNLINK = 7,
};

#define PL_HEADER 40      /* bytes before the paths */
#define PL_MAXFD 65536    /* descriptors at or above are not recorded */
#define PL_LOG_FD_MIN 512 /* the log's descriptor, away from the app's */
#define PL_STACK_REC 8192 /* a bigger record is malloc'd */

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef RWF_APPEND
#define RWF_APPEND 0x00000010
#endif

/* The fortified variants of open (not declared without _FORTIFY_SOURCE). */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);

/* The real functions, next after this library. */
static struct {
	int (*open)(const char *, int, ...);
	int (*open64)(const char *, int, ...);
	int (*open_2)(const char *, int);
	int (*open64_2)(const char *, int);
	int (*openat)(int, const char *, int, ...);
	int (*openat64)(int, const char *, int, ...);
	int (*openat_2)(int, const char *, int);
	int (*openat64_2)(int, const char *, int);
	int (*creat)(const char *, mode_t);
	int (*creat64)(const char *, mode_t);
	int (*close)(int);
	int (*close_range)(unsigned int, unsigned int, int);
	void (*closefrom)(int);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	int (*fcntl)(int, int, ...);
	int (*fcntl64)(int, int, ...);
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*pwrite)(int, const void *, size_t, off_t);
	ssize_t (*pwrite64)(int, const void *, size_t, off64_t);
	ssize_t (*writev)(int, const struct iovec *, int);
	ssize_t (*pwritev)(int, const struct iovec *, int, off_t);
	ssize_t (*pwritev64)(int, const struct iovec *, int, off64_t);
	ssize_t (*pwritev2)(int, const struct iovec *, int, off_t, int);
	ssize_t (*pwritev64v2)(int, const struct iovec *, int, off64_t, int);
	int (*ftruncate)(int, off_t);
	int (*ftruncate64)(int, off64_t);
	int (*truncate)(const char *, off_t);
	int (*truncate64)(const char *, off64_t);
	int (*fsync)(int);
	int (*fdatasync)(int);
	int (*rename)(const char *, const char *);
	int (*renameat)(int, const char *, int, const char *);
	int (*renameat2)(int, const char *, int, const char *, unsigned int);
	int (*unlink)(const char *);
	int (*unlinkat)(int, const char *, int);
	int (*rmdir)(const char *);
} real;

/* A descriptor that names a recorded file. */
struct pl_fd {
	char *path; /* malloc'd; NULL: not recorded (read without the lock) */
	dev_t dev;
	ino_t ino;
	int dir;
};

/* What a call on a recorded descriptor needs, copied out of the table. */
struct pl_target {
	char path[PATH_MAX];
	int dir;
	int append; /* O_APPEND: a write lands at the end */
	off_t size; /* before the call */
};

static pthread_once_t pl_once = PTHREAD_ONCE_INIT;
static int pl_active;          /* DIR and ROOT usable */
static char pl_dir[PATH_MAX];  /* real path of DIR */
static char pl_root[PATH_MAX]; /* real path of ROOT */
static char pl_hold[PATH_MAX]; /* DIR/hold: while it exists, syncs wait */
static size_t pl_root_len;     /* 0 when ROOT is "/" */
static uint64_t *pl_seq;       /* DIR/seq, shared by every process */
static pthread_mutex_t pl_lock = PTHREAD_MUTEX_INITIALIZER;
static int pl_log_fd = -1; /* DIR/ops.<pl_log_pid> */
static pid_t pl_log_pid;
static struct pl_fd pl_fds[PL_MAXFD]; /* under pl_lock */
static int pl_fds_hi;                 /* above the highest recorded fd */
static int pl_warned_fd;

/* ---- set-up ----------------------------------------------------------- */

/* One line on stderr, through the real write (stdio would allocate). */
static void pl_warn(const char *what, const char *detail)
{
	char line[PATH_MAX + 256];
	int n = snprintf(line, sizeof(line), "powerlog[%d]: %s%s%s\n", (int)getpid(), what,
	                 detail != NULL ? ": " : "", detail != NULL ? detail : "");

	if (n > 0 && real.write != NULL)
		(void)real.write(2, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

#define PL_RESOLVE(field, name) (*(void **)&real.field = dlsym(RTLD_NEXT, name))

static void pl_resolve_real(void)
{
	PL_RESOLVE(open, "open");
	PL_RESOLVE(open64, "open64");
	PL_RESOLVE(open_2, "__open_2");
	PL_RESOLVE(open64_2, "__open64_2");
	PL_RESOLVE(openat, "openat");
	PL_RESOLVE(openat64, "openat64");
	PL_RESOLVE(openat_2, "__openat_2");
	PL_RESOLVE(openat64_2, "__openat64_2");
	PL_RESOLVE(creat, "creat");
	PL_RESOLVE(creat64, "creat64");
	PL_RESOLVE(close, "close");
	PL_RESOLVE(close_range, "close_range");
	PL_RESOLVE(closefrom, "closefrom");
	PL_RESOLVE(dup, "dup");
	PL_RESOLVE(dup2, "dup2");
	PL_RESOLVE(dup3, "dup3");
	PL_RESOLVE(fcntl, "fcntl");
	PL_RESOLVE(fcntl64, "fcntl64");
	PL_RESOLVE(write, "write");
	PL_RESOLVE(pwrite, "pwrite");
	PL_RESOLVE(pwrite64, "pwrite64");
	PL_RESOLVE(writev, "writev");
	PL_RESOLVE(pwritev, "pwritev");
	PL_RESOLVE(pwritev64, "pwritev64");
	PL_RESOLVE(pwritev2, "pwritev2");
	PL_RESOLVE(pwritev64v2, "pwritev64v2");
	PL_RESOLVE(ftruncate, "ftruncate");
	PL_RESOLVE(ftruncate64, "ftruncate64");
	PL_RESOLVE(truncate, "truncate");
	PL_RESOLVE(truncate64, "truncate64");
	PL_RESOLVE(fsync, "fsync");
	PL_RESOLVE(fdatasync, "fdatasync");
	PL_RESOLVE(rename, "rename");
	PL_RESOLVE(renameat, "renameat");
	PL_RESOLVE(renameat2, "renameat2");
	PL_RESOLVE(unlink, "unlink");
	PL_RESOLVE(unlinkat, "unlinkat");
	PL_RESOLVE(rmdir, "rmdir");
}

/* Maps DIR/seq, creating it; the first process to make it 8 bytes wins
 * (a later ftruncate to the same size keeps its contents). */
static int pl_map_seq(void)
{
	char path[PATH_MAX];
	struct stat st;
	void *p = MAP_FAILED;
	int fd;

	if (snprintf(path, sizeof(path), "%s/seq", pl_dir) >= (int)sizeof(path))
		return -1;
	fd = real.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) == 0 && (st.st_size >= 8 || real.ftruncate(fd, 8) == 0))
		p = mmap(NULL, 8, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	real.close(fd);
	if (p == MAP_FAILED)
		return -1;
	pl_seq = p;
	return 0;
}

static void pl_prefork(void)
{
	pthread_mutex_lock(&pl_lock);
}

static void pl_postfork(void)
{
	pthread_mutex_unlock(&pl_lock);
}

static int pl_recorded(const char *path);
static void pl_track(int fd, const char *path, const struct stat *st);

/* Registers the recorded files this process inherited open (a parent's
 * redirection of stdout to a file under ROOT, say). */
static void pl_seed(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		char link[64], path[PATH_MAX];
		int fd = atoi(e->d_name);
		struct stat st;
		ssize_t n;

		if (e->d_name[0] == '.' || fd == dirfd(d))
			continue;
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, path, sizeof(path) - 1);
		if (n <= 0 || fstat(fd, &st) != 0 || st.st_nlink == 0)
			continue;
		path[n] = '\0';
		if (pl_recorded(path))
			pl_track(fd, path, &st);
	}
	closedir(d);
}

static void pl_init(void)
{
	const char *dir = getenv("IDEM_POWERLOG_DIR"), *root = getenv("IDEM_POWERLOG_ROOT");

	pl_resolve_real();
	if (dir == NULL || *dir == '\0')
		return;
	if (root == NULL || *root == '\0') {
		pl_warn("IDEM_POWERLOG_ROOT is not set; recording nothing (set it to the directory "
		        "whose files to record)",
		        NULL);
		return;
	}
	if (dir[0] != '/' || root[0] != '/') {
		pl_warn("IDEM_POWERLOG_DIR and IDEM_POWERLOG_ROOT must be absolute (children may "
		        "run elsewhere); recording nothing",
		        dir[0] != '/' ? dir : root);
		return;
	}
	if (realpath(dir, pl_dir) == NULL) {
		pl_warn("IDEM_POWERLOG_DIR names no directory; recording nothing", dir);
		return;
	}
	if (realpath(root, pl_root) == NULL) {
		pl_warn("IDEM_POWERLOG_ROOT names no directory; recording nothing", root);
		return;
	}
	pl_root_len = strcmp(pl_root, "/") == 0 ? 0 : strlen(pl_root);
	if ((size_t)snprintf(pl_hold, sizeof(pl_hold), "%.*s/hold", PATH_MAX - 6, pl_dir) >=
	    sizeof(pl_hold)) {
		pl_warn("IDEM_POWERLOG_DIR is too long; recording nothing", pl_dir);
		return;
	}
	if (pl_map_seq() != 0) {
		pl_warn("cannot create and map IDEM_POWERLOG_DIR/seq; recording nothing", pl_dir);
		return;
	}
	pthread_atfork(pl_prefork, pl_postfork, pl_postfork);
	pl_seed();
	pl_active = 1;
}

/* Whether to record at all; resolves the real functions on first use. */
static int pl_on(void)
{
	pthread_once(&pl_once, pl_init);
	return pl_active;
}

/* ---- paths ------------------------------------------------------------ */

static int pl_ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Whether path is dir (n bytes) or under it. */
static int pl_under(const char *path, const char *dir, size_t n)
{
	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Whether an absolute, resolved path is one to record. */
static int pl_recorded(const char *path)
{
	return pl_under(path, pl_root, pl_root_len) && !pl_ends_with(path, "-shm");
}

/* The path of an open descriptor (a dirfd): from the table, or the
 * kernel's name for it. */
static int pl_fd_path(int fd, char out[PATH_MAX])
{
	char link[64];
	ssize_t n;
	int found = 0;

	if (fd >= 0 && fd < PL_MAXFD) {
		pthread_mutex_lock(&pl_lock);
		if (pl_fds[fd].path != NULL) {
			snprintf(out, PATH_MAX, "%s", pl_fds[fd].path);
			found = 1;
		}
		pthread_mutex_unlock(&pl_lock);
	}
	if (found)
		return 0;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, out, PATH_MAX - 1);
	if (n <= 0 || out[0] != '/')
		return -1;
	out[n] = '\0';
	return 0;
}

/* The absolute path that path names relative to dirfd (AT_FDCWD: the
 * cwd): the real path of its directory + its last component, since the
 * file itself may not exist (yet, or any more). Returns 0, or -1. */
static int pl_resolve(int dirfd, const char *path, char out[PATH_MAX])
{
	char buf[PATH_MAX], at[PATH_MAX], real_dir[PATH_MAX];
	const char *dirpart = ".", *base;
	char *slash;
	size_t n;

	if (path[0] == '/' || dirfd == AT_FDCWD) {
		if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
			return -1;
	} else if (pl_fd_path(dirfd, at) != 0 ||
	           snprintf(buf, sizeof(buf), "%s/%s", at, path) >= (int)sizeof(buf)) {
		return -1;
	}
	n = strlen(buf);
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	slash = strrchr(buf, '/');
	base = slash != NULL ? slash + 1 : buf;
	if (*base == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
		return realpath(buf, out) != NULL ? 0 : -1;
	if (slash == buf) {
		dirpart = "/";
	} else if (slash != NULL) {
		*slash = '\0';
		dirpart = buf;
	}
	if (realpath(dirpart, real_dir) == NULL)
		return -1;
	n = strlen(real_dir);
	return snprintf(out, PATH_MAX, "%s/%s", n > 1 ? real_dir : "", base) < PATH_MAX ? 0 : -1;
}

/* ---- the descriptor table (callers hold pl_lock) ----------------------- */

static void pl_forget_locked(int fd)
{
	if (fd < 0 || fd >= PL_MAXFD || pl_fds[fd].path == NULL)
		return;
	free(pl_fds[fd].path);
	__atomic_store_n(&pl_fds[fd].path, NULL, __ATOMIC_RELEASE);
}

static void pl_set_locked(int fd, char *path, dev_t dev, ino_t ino, int dir)
{
	pl_forget_locked(fd);
	pl_fds[fd].dev = dev;
	pl_fds[fd].ino = ino;
	pl_fds[fd].dir = dir;
	__atomic_store_n(&pl_fds[fd].path, path, __ATOMIC_RELEASE);
	if (fd >= pl_fds_hi)
		pl_fds_hi = fd + 1;
}

/* Registers fd as naming path (a recorded file or directory). */
static void pl_track(int fd, const char *path, const struct stat *st)
{
	char *copy;

	if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode))
		return;
	if (fd >= PL_MAXFD) {
		if (!__atomic_exchange_n(&pl_warned_fd, 1, __ATOMIC_RELAXED))
			pl_warn("a descriptor beyond the table; its file is not recorded", path);
		return;
	}
	copy = strdup(path);
	if (copy == NULL) {
		pl_warn("out of memory; not recorded", path);
		return;
	}
	pthread_mutex_lock(&pl_lock);
	pl_set_locked(fd, copy, st->st_dev, st->st_ino, S_ISDIR(st->st_mode));
	pthread_mutex_unlock(&pl_lock);
}

static void pl_forget(int fd)
{
	pthread_mutex_lock(&pl_lock);
	pl_forget_locked(fd);
	pthread_mutex_unlock(&pl_lock);
}

static int pl_tracked(int fd)
{
	return fd >= 0 && fd < PL_MAXFD &&
	       __atomic_load_n(&pl_fds[fd].path, __ATOMIC_ACQUIRE) != NULL;
}

/* Forgets [lo, hi], and the log's descriptor if it is there: the app is
 * closing or replacing it. */
static void pl_release(int lo, int hi)
{
	if (!pl_on() || lo < 0)
		return;
	pthread_mutex_lock(&pl_lock);
	if (pl_log_fd >= lo && pl_log_fd <= hi)
		pl_log_fd = -1;
	for (int fd = lo; fd <= hi && fd < pl_fds_hi; fd++)
		pl_forget_locked(fd);
	pthread_mutex_unlock(&pl_lock);
}

/* newfd is now a duplicate of oldfd. */
static void pl_dup(int oldfd, int newfd)
{
	char *copy = NULL;

	if (!pl_on() || newfd < 0 || newfd >= PL_MAXFD || oldfd == newfd)
		return;
	pthread_mutex_lock(&pl_lock);
	if (pl_tracked(oldfd))
		copy = strdup(pl_fds[oldfd].path);
	if (copy != NULL)
		pl_set_locked(newfd, copy, pl_fds[oldfd].dev, pl_fds[oldfd].ino, pl_fds[oldfd].dir);
	else
		pl_forget_locked(newfd);
	pthread_mutex_unlock(&pl_lock);
}

/* A rename of from to to: descriptors of the file replaced at to no
 * longer name a recorded file; those under from now name to (or, out of
 * ROOT, nothing). exchange: the two swap. */
static void pl_rename_fds(const char *from, const char *to, int exchange)
{
	size_t nf = strlen(from), nt = strlen(to);

	pthread_mutex_lock(&pl_lock);
	for (int fd = 0; fd < pl_fds_hi; fd++) {
		char *p = pl_fds[fd].path, *q;
		const char *src = from, *dst = to;
		size_t ns = nf, nd = nt;

		if (p == NULL)
			continue;
		if (exchange && pl_under(p, to, nt)) {
			src = to;
			dst = from;
			ns = nt;
			nd = nf;
		} else if (!exchange && strcmp(p, to) == 0) {
			pl_forget_locked(fd);
			continue;
		}
		if (!pl_under(p, src, ns))
			continue;
		q = malloc(nd + strlen(p + ns) + 1);
		if (q != NULL) {
			memcpy(q, dst, nd);
			strcpy(q + nd, p + ns);
		}
		if (q != NULL && pl_recorded(q)) {
			free(p);
			__atomic_store_n(&pl_fds[fd].path, q, __ATOMIC_RELEASE);
		} else {
			free(q);
			pl_forget_locked(fd);
		}
	}
	pthread_mutex_unlock(&pl_lock);
}

static void pl_unlink_fds(const char *path)
{
	pthread_mutex_lock(&pl_lock);
	for (int fd = 0; fd < pl_fds_hi; fd++)
		if (pl_fds[fd].path != NULL && strcmp(pl_fds[fd].path, path) == 0)
			pl_forget_locked(fd);
	pthread_mutex_unlock(&pl_lock);
}

/* Copies out what a call on fd needs when fd names a recorded file that
 * it still names (the same dev and inode as when registered). Returns 1,
 * or 0 (not recorded: pass the call through). Keeps errno. */
static int pl_target(int fd, struct pl_target *t)
{
	int saved = errno, ok = 0, flags;
	dev_t dev = 0;
	ino_t ino = 0;
	struct stat st;

	if (!pl_on() || !pl_tracked(fd))
		return 0;
	pthread_mutex_lock(&pl_lock);
	if (pl_fds[fd].path != NULL) {
		snprintf(t->path, sizeof(t->path), "%s", pl_fds[fd].path);
		t->dir = pl_fds[fd].dir;
		dev = pl_fds[fd].dev;
		ino = pl_fds[fd].ino;
		ok = 1;
	}
	pthread_mutex_unlock(&pl_lock);
	if (ok && (fstat(fd, &st) != 0 || st.st_dev != dev || st.st_ino != ino)) {
		pl_forget(fd); /* closed behind the table's back, reused */
		ok = 0;
	}
	if (ok) {
		flags = real.fcntl(fd, F_GETFL);
		t->append = flags >= 0 && (flags & O_APPEND) != 0;
		t->size = st.st_size;
	}
	errno = saved;
	return ok;
}

/* ---- records ---------------------------------------------------------- */

static unsigned char *pl_put(unsigned char *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (unsigned char)(v >> (8 * i));
	return p + bytes;
}

/* Opens this process's log unless it is open (under pl_lock). A forked
 * child finds its parent's descriptor: it closes it and opens its own. */
static int pl_log_ready(pid_t me)
{
	char path[PATH_MAX];
	int fd, high;

	if (pl_log_fd >= 0 && pl_log_pid == me)
		return 0;
	if (pl_log_fd >= 0)
		real.close(pl_log_fd);
	pl_log_fd = -1;
	if (snprintf(path, sizeof(path), "%s/ops.%d", pl_dir, (int)me) >= (int)sizeof(path))
		return -1;
	fd = real.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0) {
		pl_warn("cannot open the log; records are lost", path);
		return -1;
	}
	high = real.fcntl(fd, F_DUPFD_CLOEXEC, PL_LOG_FD_MIN);
	if (high >= 0) {
		real.close(fd);
		fd = high;
	}
	pl_log_fd = fd;
	pl_log_pid = me;
	return 0;
}

/* Takes the next seq and appends rec (len bytes, its seq and pid still
 * to fill) to this process's log, in one write. */
static void pl_append(unsigned char *rec, size_t len)
{
	pid_t me = getpid();

	pthread_mutex_lock(&pl_lock);
	if (pl_log_ready(me) == 0) {
		uint64_t seq = __atomic_add_fetch(pl_seq, 1, __ATOMIC_SEQ_CST);
		size_t done = 0;

		pl_put(pl_put(rec, seq, 8), (uint64_t)me, 4);
		while (done < len) {
			ssize_t n = real.write(pl_log_fd, rec + done, len - done);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				pl_warn("cannot write the log; a record is lost", pl_dir);
				break;
			}
			done += (size_t)n;
		}
	}
	pthread_mutex_unlock(&pl_lock);
}

/* Records op; data: the first len bytes of iov, for PL_WRITE. Keeps
 * errno. */
static void pl_record(enum pl_op op, const char *path, const char *path2, uint64_t offset,
                      uint64_t len, const struct iovec *iov, int iovcnt)
{
	int saved = errno;
	size_t n1 = strlen(path), n2 = path2 != NULL ? strlen(path2) : 0;
	size_t data = op == PL_WRITE ? (size_t)len : 0, total = PL_HEADER + n1 + n2 + data;
	unsigned char stack[PL_STACK_REC], *rec = total <= sizeof(stack) ? stack : malloc(total);
	unsigned char *p;

	if (rec == NULL) {
		pl_warn("out of memory for a record; it is lost", path);
		errno = saved;
		return;
	}
	p = pl_put(rec + 12, (uint64_t)op, 4);
	p = pl_put(pl_put(p, offset, 8), len, 8);
	p = pl_put(pl_put(p, n1, 4), n2, 4);
	memcpy(p, path, n1);
	memcpy(p + n1, path2 != NULL ? path2 : "", n2);
	p += n1 + n2;
	for (int i = 0; i < iovcnt && data > 0; i++) {
		size_t k = iov[i].iov_len < data ? iov[i].iov_len : data;

		memcpy(p, iov[i].iov_base, k);
		p += k;
		data -= k;
	}
	pl_append(rec, total);
	if (rec != stack)
		free(rec);
	errno = saved;
}

static uint64_t pl_seq_now(void)
{
	return __atomic_load_n(pl_seq, __ATOMIC_SEQ_CST);
}

/* ---- open ------------------------------------------------------------- */

static int pl_needs_mode(int flags)
{
	return (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE;
}

/* Whether path existed before an open with flags (that may create it).
 * Keeps errno. */
static int pl_existed(int dirfd, const char *path, int flags)
{
	int saved = errno, rc;
	struct stat st;

	if (!pl_on() || (flags & O_CREAT) == 0)
		return 1;
	rc = fstatat(dirfd, path, &st, 0) == 0;
	errno = saved;
	return rc;
}

/* After an open that returned fd: registers it if it names a recorded
 * file (forgets it otherwise) and records a creation or a truncation.
 * Keeps errno. */
static void pl_opened(int fd, int dirfd, const char *path, int flags, int existed)
{
	int saved = errno;
	char abs[PATH_MAX];
	struct stat st;

	if (fd < 0 || !pl_on())
		return;
	if ((flags & O_TMPFILE) == O_TMPFILE || pl_resolve(dirfd, path, abs) != 0 ||
	    !pl_recorded(abs) || fstat(fd, &st) != 0) {
		pl_forget(fd);
		errno = saved;
		return;
	}
	pl_forget(fd);
	pl_track(fd, abs, &st);
	if (!existed)
		pl_record(PL_OPEN_CREATE, abs, NULL, 0, 0, NULL, 0);
	else if ((flags & O_TRUNC) != 0 && S_ISREG(st.st_mode))
		pl_record(PL_TRUNCATE, abs, NULL, 0, 0, NULL, 0);
	errno = saved;
}

static mode_t pl_mode(int flags, va_list ap)
{
	return pl_needs_mode(flags) ? va_arg(ap, mode_t) : 0;
}

/* The four opens that take a mode: one of *fn (a path) or *fn_at (a
 * directory descriptor and a path) is the real call, read only after
 * pl_existed() has looked the real functions up. */
static int pl_open_mode(int (*const *fn)(const char *, int, ...),
                        int (*const *fn_at)(int, const char *, int, ...), int dirfd,
                        const char *path, int flags, mode_t mode)
{
	int existed = pl_existed(dirfd, path, flags);
	int fd = fn != NULL ? (*fn)(path, flags, mode) : (*fn_at)(dirfd, path, flags, mode);

	pl_opened(fd, dirfd, path, flags, existed);
	return fd;
}

int open(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = pl_mode(flags, ap);
	va_end(ap);
	return pl_open_mode(&real.open, NULL, AT_FDCWD, path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = pl_mode(flags, ap);
	va_end(ap);
	return pl_open_mode(&real.open64, NULL, AT_FDCWD, path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = pl_mode(flags, ap);
	va_end(ap);
	return pl_open_mode(NULL, &real.openat, dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = pl_mode(flags, ap);
	va_end(ap);
	return pl_open_mode(NULL, &real.openat64, dirfd, path, flags, mode);
}

/* The fortified opens take no mode: they refuse O_CREAT. */
static int pl_open_2(int (*const *fn)(const char *, int), const char *path, int flags)
{
	int fd;

	pl_on(); /* looks the real functions up: *fn only after it */
	fd = (*fn)(path, flags);
	pl_opened(fd, AT_FDCWD, path, flags, 1);
	return fd;
}

static int pl_openat_2(int (*const *fn)(int, const char *, int), int dirfd, const char *path,
                       int flags)
{
	int fd;

	pl_on();
	fd = (*fn)(dirfd, path, flags);
	pl_opened(fd, dirfd, path, flags, 1);
	return fd;
}

int __open_2(const char *path, int flags)
{
	return pl_open_2(&real.open_2, path, flags);
}

int __open64_2(const char *path, int flags)
{
	return pl_open_2(&real.open64_2, path, flags);
}

int __openat_2(int dirfd, const char *path, int flags)
{
	return pl_openat_2(&real.openat_2, dirfd, path, flags);
}

int __openat64_2(int dirfd, const char *path, int flags)
{
	return pl_openat_2(&real.openat64_2, dirfd, path, flags);
}

int creat(const char *path, mode_t mode)
{
	int flags = O_CREAT | O_WRONLY | O_TRUNC, existed, fd;

	existed = pl_existed(AT_FDCWD, path, flags);
	fd = real.creat(path, mode);
	pl_opened(fd, AT_FDCWD, path, flags, existed);
	return fd;
}

int creat64(const char *path, mode_t mode)
{
	int flags = O_CREAT | O_WRONLY | O_TRUNC, existed, fd;

	existed = pl_existed(AT_FDCWD, path, flags);
	fd = real.creat64(path, mode);
	pl_opened(fd, AT_FDCWD, path, flags, existed);
	return fd;
}

/* ---- close, dup, fcntl -------------------------------------------------- */

/* The table forgets before the real close: after it, another thread may
 * open the same number. */
int close(int fd)
{
	pl_release(fd, fd);
	return real.close(fd);
}

int close_range(unsigned int first, unsigned int last, int flags)
{
	pl_on();
	if (real.close_range == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if ((flags & CLOSE_RANGE_CLOEXEC) == 0 && first <= INT_MAX)
		pl_release((int)first, last > INT_MAX ? INT_MAX : (int)last);
	return real.close_range(first, last, flags);
}

void closefrom(int lowfd)
{
	pl_on();
	pl_release(lowfd < 0 ? 0 : lowfd, INT_MAX);
	if (real.closefrom != NULL)
		real.closefrom(lowfd);
}

int dup(int oldfd)
{
	int fd;

	pl_on();
	fd = real.dup(oldfd);
	pl_dup(oldfd, fd);
	return fd;
}

static int pl_dup2(int oldfd, int newfd, int rc)
{
	if (rc >= 0)
		pl_dup(oldfd, rc);
	return rc;
}

/* dup2 and dup3 onto the log's descriptor: the app replaces it. */
static void pl_dup_onto(int oldfd, int newfd)
{
	if (pl_on() && oldfd != newfd && newfd == __atomic_load_n(&pl_log_fd, __ATOMIC_RELAXED))
		pl_release(newfd, newfd);
}

int dup2(int oldfd, int newfd)
{
	pl_dup_onto(oldfd, newfd);
	return pl_dup2(oldfd, newfd, real.dup2(oldfd, newfd));
}

int dup3(int oldfd, int newfd, int flags)
{
	pl_dup_onto(oldfd, newfd);
	return pl_dup2(oldfd, newfd, real.dup3(oldfd, newfd, flags));
}

enum pl_arg { PL_ARG_NONE, PL_ARG_INT, PL_ARG_PTR };

/* What fcntl's third argument is for cmd (an unknown cmd: a pointer,
 * which is how glibc reads every one). */
static enum pl_arg pl_fcntl_arg(int cmd)
{
	switch (cmd) {
	case F_GETFD:
	case F_GETFL:
	case F_GETOWN:
	case F_GETSIG:
	case F_GETLEASE:
	case F_GETPIPE_SZ:
	case F_GET_SEALS:
		return PL_ARG_NONE;
	case F_DUPFD:
	case F_DUPFD_CLOEXEC:
	case F_SETFD:
	case F_SETFL:
	case F_SETOWN:
	case F_SETSIG:
	case F_SETLEASE:
	case F_NOTIFY:
	case F_SETPIPE_SZ:
	case F_ADD_SEALS:
		return PL_ARG_INT;
	default:
		return PL_ARG_PTR;
	}
}

/* fcntl and fcntl64: the argument passed on with the type it was given. */
static int pl_fcntl(int (*fn)(int, int, ...), int fd, int cmd, va_list ap)
{
	enum pl_arg kind = pl_fcntl_arg(cmd);
	int rc;

	if (kind == PL_ARG_NONE)
		rc = fn(fd, cmd);
	else if (kind == PL_ARG_INT)
		rc = fn(fd, cmd, va_arg(ap, int));
	else
		rc = fn(fd, cmd, va_arg(ap, void *));
	if (rc >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))
		pl_dup(fd, rc);
	return rc;
}

int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	int rc;

	pl_on();
	va_start(ap, cmd);
	rc = pl_fcntl(real.fcntl, fd, cmd, ap);
	va_end(ap);
	return rc;
}

int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	int rc;

	pl_on();
	va_start(ap, cmd);
	rc = pl_fcntl(real.fcntl64 != NULL ? real.fcntl64 : real.fcntl, fd, cmd, ap);
	va_end(ap);
	return rc;
}

/* ---- writes ----------------------------------------------------------- */

/* After a write of n bytes of iov at offset (at: the call's own offset,
 * -1 for the file position), records it. */
static void pl_wrote(const struct pl_target *t, off_t at, off_t pos, const struct iovec *iov,
                     int iovcnt, ssize_t n)
{
	off_t offset = t->append ? t->size : at >= 0 ? at : pos;

	if (n > 0 && !t->dir && offset >= 0)
		pl_record(PL_WRITE, t->path, NULL, (uint64_t)offset, (uint64_t)n, iov, iovcnt);
}

/* The file position before a write() (keeps errno). */
static off_t pl_pos(int fd)
{
	int saved = errno;
	off_t pos = lseek(fd, 0, SEEK_CUR);

	errno = saved;
	return pos;
}

ssize_t write(int fd, const void *buf, size_t n)
{
	struct pl_target t;
	struct iovec iov = {(void *)buf, n};
	off_t pos;
	ssize_t rc;

	if (!pl_target(fd, &t))
		return real.write(fd, buf, n);
	pos = pl_pos(fd);
	rc = real.write(fd, buf, n);
	pl_wrote(&t, -1, pos, &iov, 1, rc);
	return rc;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t offset)
{
	struct pl_target t;
	struct iovec iov = {(void *)buf, n};
	ssize_t rc;

	if (!pl_target(fd, &t))
		return real.pwrite(fd, buf, n, offset);
	rc = real.pwrite(fd, buf, n, offset);
	pl_wrote(&t, offset, -1, &iov, 1, rc);
	return rc;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t offset)
{
	struct pl_target t;
	struct iovec iov = {(void *)buf, n};
	ssize_t rc;

	if (!pl_target(fd, &t))
		return real.pwrite64(fd, buf, n, offset);
	rc = real.pwrite64(fd, buf, n, offset);
	pl_wrote(&t, (off_t)offset, -1, &iov, 1, rc);
	return rc;
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
	struct pl_target t;
	off_t pos;
	ssize_t rc;

	if (!pl_target(fd, &t))
		return real.writev(fd, iov, iovcnt);
	pos = pl_pos(fd);
	rc = real.writev(fd, iov, iovcnt);
	pl_wrote(&t, -1, pos, iov, iovcnt, rc);
	return rc;
}

ssize_t pwritev(int fd, const struct iovec *iov, int iovcnt, off_t offset)
{
	struct pl_target t;
	ssize_t rc;

	if (!pl_target(fd, &t))
		return real.pwritev(fd, iov, iovcnt, offset);
	rc = real.pwritev(fd, iov, iovcnt, offset);
	pl_wrote(&t, offset, -1, iov, iovcnt, rc);
	return rc;
}

ssize_t pwritev64(int fd, const struct iovec *iov, int iovcnt, off64_t offset)
{
	struct pl_target t;
	ssize_t rc;

	if (!pl_target(fd, &t))
		return real.pwritev64(fd, iov, iovcnt, offset);
	rc = real.pwritev64(fd, iov, iovcnt, offset);
	pl_wrote(&t, (off_t)offset, -1, iov, iovcnt, rc);
	return rc;
}

/* pwritev2: offset -1 is the file position; RWF_APPEND, the end. */
static ssize_t pl_pwritev2(ssize_t (*fn)(int, const struct iovec *, int, off_t, int), int fd,
                           const struct iovec *iov, int iovcnt, off_t offset, int flags)
{
	struct pl_target t;
	off_t pos = -1;
	ssize_t rc;

	if (fn == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (!pl_target(fd, &t))
		return fn(fd, iov, iovcnt, offset, flags);
	if ((flags & RWF_APPEND) != 0)
		t.append = 1;
	if (offset == -1)
		pos = pl_pos(fd);
	rc = fn(fd, iov, iovcnt, offset, flags);
	pl_wrote(&t, offset, pos, iov, iovcnt, rc);
	return rc;
}

ssize_t pwritev2(int fd, const struct iovec *iov, int iovcnt, off_t offset, int flags)
{
	pl_on();
	return pl_pwritev2(real.pwritev2, fd, iov, iovcnt, offset, flags);
}

ssize_t pwritev64v2(int fd, const struct iovec *iov, int iovcnt, off64_t offset, int flags)
{
	pl_on();
	return pl_pwritev2(real.pwritev64v2, fd, iov, iovcnt, (off_t)offset, flags);
}

/* ---- sizes and syncs -------------------------------------------------- */

static int pl_ftruncate(off_t len, int rc, const struct pl_target *t)
{
	if (rc == 0 && !t->dir)
		pl_record(PL_TRUNCATE, t->path, NULL, (uint64_t)len, 0, NULL, 0);
	return rc;
}

int ftruncate(int fd, off_t len)
{
	struct pl_target t;

	if (!pl_target(fd, &t))
		return real.ftruncate(fd, len);
	return pl_ftruncate(len, real.ftruncate(fd, len), &t);
}

int ftruncate64(int fd, off64_t len)
{
	struct pl_target t;

	if (!pl_target(fd, &t))
		return real.ftruncate64(fd, len);
	return pl_ftruncate((off_t)len, real.ftruncate64(fd, len), &t);
}

/* After a successful truncate(path): records it if path is recorded. */
static int pl_truncated(const char *path, off_t len, int rc)
{
	int saved = errno;
	char abs[PATH_MAX];

	if (rc == 0 && pl_on() && pl_resolve(AT_FDCWD, path, abs) == 0 && pl_recorded(abs))
		pl_record(PL_TRUNCATE, abs, NULL, (uint64_t)len, 0, NULL, 0);
	errno = saved;
	return rc;
}

int truncate(const char *path, off_t len)
{
	pl_on();
	return pl_truncated(path, len, real.truncate(path, len));
}

int truncate64(const char *path, off64_t len)
{
	pl_on();
	return pl_truncated(path, (off_t)len, real.truncate64(path, len));
}

/* Whether DIR/hold exists and names path (see Hold above). */
static int pl_hold_names(const char *path)
{
	char buf[1024], *save = NULL;
	size_t n = 0;
	ssize_t got;
	int fd = real.open(pl_hold, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	while (n < sizeof(buf) - 1 && (got = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
		n += (size_t)got;
	real.close(fd);
	buf[n] = '\0';
	if (n == 0)
		return 1;
	for (char *line = strtok_r(buf, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save))
		if (pl_ends_with(path, line))
			return 1;
	return 0;
}

/* Waits while DIR/hold names path. */
static void pl_held(const char *path)
{
	const struct timespec ms = {0, 1000000};
	int saved = errno;

	while (pl_hold_names(path))
		nanosleep(&ms, NULL);
	errno = saved;
}

/* fsync (data 0) or fdatasync (data 1): FSYNC of a file, DIRSYNC of a
 * directory, with the seq the sync certainly covers. */
static int pl_sync(int (*fn)(int), int fd, int data)
{
	struct pl_target t;
	uint64_t before;
	int rc;

	if (!pl_target(fd, &t))
		return fn(fd);
	pl_held(t.path);
	before = pl_seq_now();
	rc = fn(fd);
	if (rc == 0)
		pl_record(t.dir ? PL_DIRSYNC : PL_FSYNC, t.path, NULL, (uint64_t)data, before, NULL,
		          0);
	return rc;
}

int fsync(int fd)
{
	pl_on();
	return pl_sync(real.fsync, fd, 0);
}

int fdatasync(int fd)
{
	pl_on();
	return pl_sync(real.fdatasync, fd, 1);
}

/* ---- names ------------------------------------------------------------ */

/* After a successful rename (flags: renameat2's). Keeps errno. */
static int pl_renamed(int rc, int oldfd, const char *from, int newfd, const char *to,
                      unsigned int flags)
{
	int saved = errno;
	char a[PATH_MAX], b[PATH_MAX];

	if (rc == 0 && pl_on() && pl_resolve(oldfd, from, a) == 0 &&
	    pl_resolve(newfd, to, b) == 0) {
		if (strcmp(a, b) != 0)
			pl_rename_fds(a, b, (flags & RENAME_EXCHANGE) != 0);
		if (pl_recorded(a) || pl_recorded(b))
			pl_record(PL_RENAME, a, b, flags, 0, NULL, 0);
	}
	errno = saved;
	return rc;
}

int rename(const char *from, const char *to)
{
	pl_on();
	return pl_renamed(real.rename(from, to), AT_FDCWD, from, AT_FDCWD, to, 0);
}

int renameat(int oldfd, const char *from, int newfd, const char *to)
{
	pl_on();
	return pl_renamed(real.renameat(oldfd, from, newfd, to), oldfd, from, newfd, to, 0);
}

int renameat2(int oldfd, const char *from, int newfd, const char *to, unsigned int flags)
{
	pl_on();
	if (real.renameat2 == NULL) {
		errno = ENOSYS;
		return -1;
	}
	return pl_renamed(real.renameat2(oldfd, from, newfd, to, flags), oldfd, from, newfd, to,
	                  flags);
}

/* After a successful unlink or rmdir (dir). Keeps errno. */
static int pl_unlinked(int rc, int dirfd, const char *path, int dir)
{
	int saved = errno;
	char abs[PATH_MAX];

	if (rc == 0 && pl_on() && pl_resolve(dirfd, path, abs) == 0 && pl_recorded(abs)) {
		pl_unlink_fds(abs);
		pl_record(PL_UNLINK, abs, NULL, (uint64_t)dir, 0, NULL, 0);
	}
	errno = saved;
	return rc;
}

int unlink(const char *path)
{
	pl_on();
	return pl_unlinked(real.unlink(path), AT_FDCWD, path, 0);
}

int unlinkat(int dirfd, const char *path, int flags)
{
	pl_on();
	return pl_unlinked(real.unlinkat(dirfd, path, flags), dirfd, path,
	                   (flags & AT_REMOVEDIR) != 0);
}

int rmdir(const char *path)
{
	pl_on();
	return pl_unlinked(real.rmdir(path), AT_FDCWD, path, 1);
}
