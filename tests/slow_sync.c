/* slow_sync.c — libidem_slow_sync.so, preloaded into a supervisor by the
 * tests to see what waits for a sync, without timing the disk:
 *  - IDEM_TEST_SYNC_DELAY_MS=N: every fdatasync() first sleeps N ms
 *    (test_storage: a reply that waited for a sync takes that long);
 *  - IDEM_TEST_HOLD_SYNC=SUFFIX:GATE: an fsync() or fdatasync() of a file
 *    whose path ends in SUFFIX waits while the file GATE exists, after
 *    creating GATE.held (test_startup: nothing may leave a restarted
 *    supervisor before its first sync of the state DB's WAL returns). */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void pause_ms(long n)
{
	struct timespec ts = {n / 1000, (n % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Whether fd's path ends in suffix. */
static int names(int fd, const char *suffix, size_t len)
{
	char link[64], path[4096];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n < (ssize_t)len)
		return 0;
	path[n] = '\0';
	return strncmp(path + n - (ssize_t)len, suffix, len) == 0;
}

static void hold(int fd)
{
	const char *spec = getenv("IDEM_TEST_HOLD_SYNC"), *colon;
	char held[4096];

	if (spec == NULL || (colon = strchr(spec, ':')) == NULL ||
	    !names(fd, spec, (size_t)(colon - spec)) || access(colon + 1, F_OK) != 0)
		return;
	snprintf(held, sizeof(held), "%s.held", colon + 1);
	close(open(held, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
	while (access(colon + 1, F_OK) == 0)
		pause_ms(10);
}

int fdatasync(int fd)
{
	static int (*real)(int);
	const char *ms = getenv("IDEM_TEST_SYNC_DELAY_MS");

	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "fdatasync");
	if (ms != NULL)
		pause_ms(atol(ms));
	hold(fd);
	return real(fd);
}

int fsync(int fd)
{
	static int (*real)(int);

	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "fsync");
	hold(fd);
	return real(fd);
}
