/* slow_sync.c — libidem_slow_sync.so, preloaded by test_storage into a
 * supervisor: every fdatasync() first sleeps IDEM_TEST_SYNC_DELAY_MS
 * milliseconds, so that a test can see whether something waited for a
 * sync (it then takes at least that long) without timing the disk. */
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int fdatasync(int fd)
{
	static int (*real)(int);
	const char *ms = getenv("IDEM_TEST_SYNC_DELAY_MS");

	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "fdatasync");
	if (ms != NULL) {
		long n = atol(ms);
		struct timespec ts = {n / 1000, (n % 1000) * 1000000L};

		nanosleep(&ts, NULL);
	}
	return real(fd);
}
