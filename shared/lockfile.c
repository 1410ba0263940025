/* lockfile.c — see lockfile.h. */
#include "lockfile.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "db.h"

#define LOCKFILE_WAIT_MS 2000 /* a dead holder's children exec within this */
#define LOCKFILE_POLL_MS 20

/* Whether pid runs (a zombie has closed its files, so it holds nothing). */
static int alive(pid_t pid)
{
	char path[64], buf[256], *paren;
	FILE *f;
	size_t n;

	if (pid <= 0 || pid == getpid() || (kill(pid, 0) != 0 && errno != EPERM))
		return 0;
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return 1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	paren = strrchr(buf, ')');
	return paren == NULL || paren[1] != ' ' || (paren[2] != 'Z' && paren[2] != 'X');
}

/* The pid and note recorded in the file open at fd. */
static pid_t recorded(int fd, char *note, size_t notelen)
{
	char buf[1024], *end;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	long pid;

	if (notelen > 0)
		note[0] = '\0';
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	pid = strtol(buf, &end, 10);
	if (end == buf || pid <= 0)
		return 0;
	end += strspn(end, " ");
	end[strcspn(end, "\n")] = '\0';
	if (notelen > 0)
		snprintf(note, notelen, "%s", end);
	return (pid_t)pid;
}

static int record(int fd, const char *note, char *err, size_t errlen, const char *path)
{
	char buf[1024];
	int n = snprintf(buf, sizeof(buf), "%ld %s\n", (long)getpid(), note);

	if (n < 0 || (size_t)n >= sizeof(buf))
		n = (int)sizeof(buf) - 1;
	if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
		snprintf(err, errlen, "cannot write lock file %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

enum lockfile_rc lockfile_take(const char *path, const char *note, int *fd, pid_t *holder,
                               char *holder_note, size_t notelen, char *err, size_t errlen)
{
	const struct timespec pause = {0, LOCKFILE_POLL_MS * 1000000L};
	int lfd;

	*fd = -1;
	*holder = 0;
	if (db_make_parent_dirs(path, err, errlen) != 0)
		return LOCKFILE_ERROR;
	lfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (lfd < 0) {
		snprintf(err, errlen, "cannot open lock file %s: %s", path, strerror(errno));
		return LOCKFILE_ERROR;
	}
	for (int waited = 0; flock(lfd, LOCK_EX | LOCK_NB) != 0; waited += LOCKFILE_POLL_MS) {
		pid_t pid;

		if (errno != EWOULDBLOCK && errno != EINTR) {
			snprintf(err, errlen, "cannot lock %s: %s", path, strerror(errno));
			close(lfd);
			return LOCKFILE_ERROR;
		}
		pid = recorded(lfd, holder_note, notelen);
		if (alive(pid) || waited >= LOCKFILE_WAIT_MS) {
			*holder = pid;
			snprintf(err, errlen, "%s is locked by pid %ld", path, (long)pid);
			close(lfd);
			return LOCKFILE_HELD;
		}
		nanosleep(&pause, NULL);
	}
	if (record(lfd, note, err, errlen, path) != 0) {
		close(lfd);
		return LOCKFILE_ERROR;
	}
	*fd = lfd;
	return LOCKFILE_TAKEN;
}
