/* spawn_program.c — how the supervisor starts a program: posix_spawn with
 * the descriptors it is given and no other of the supervisor's, and the
 * app's keys as flags (spawn_program.h). The pool's children (spawn.c)
 * and the checker (offloop.c) start this way. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "idem_app.h"
#include "spawn_program.h"
#include "xalloc.h"

extern char **environ;

/* posix_spawn rather than fork + exec: glibc's clone(CLONE_VM|CLONE_VFORK)
 * copies no page tables and takes no copy-on-write faults, which under
 * fault injection (a worker respawned per kill, 200 a second) was a tenth
 * of the supervisor's CPU. */
pid_t spawn_program(const char *path, char *const argv[], const int (*dups)[2], int ndups,
                    int null_stdin, const char *env_add)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, dfl;
	pid_t pid = -1;
	int rc, top = 2;
	char **envp = environ;

	if (posix_spawn_file_actions_init(&fa) != 0)
		return -1;
	if (posix_spawnattr_init(&at) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return -1;
	}
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	rc = null_stdin ? posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0) : 0;
	/* dup2 onto itself clears FD_CLOEXEC (glibc >= 2.29, POSIX 2024). */
	for (int i = 0; i < ndups && rc == 0; i++) {
		rc = posix_spawn_file_actions_adddup2(&fa, dups[i][0], dups[i][1]);
		if (dups[i][1] > top)
			top = dups[i][1];
	}
	if (rc == 0)
		rc = posix_spawn_file_actions_addclosefrom_np(&fa, top + 1);
	if (rc == 0)
		rc = posix_spawnattr_setsigmask(&at, &none);
	if (rc == 0)
		rc = posix_spawnattr_setsigdefault(&at, &dfl);
	if (rc == 0)
		rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	/* The child's own environment, not setenv here: other threads of the
	 * supervisor (its store's) may read the environment meanwhile. */
	if (rc == 0 && env_add != NULL) {
		size_t n = 0, k = 0, name = strcspn(env_add, "=");

		while (environ[n] != NULL)
			n++;
		envp = xcalloc(n + 2, sizeof(*envp));
		for (size_t i = 0; i < n; i++)
			if (strncmp(environ[i], env_add, name + 1) != 0)
				envp[k++] = environ[i];
		envp[k] = (char *)env_add;
	}
	if (rc == 0)
		rc = posix_spawn(&pid, path, &fa, &at, argv, envp);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	if (envp != environ)
		free(envp);
	if (rc != 0) {
		errno = rc;
		return -1;
	}
	return pid;
}

int spawn_app_flags(const struct idem_config *c, const struct idem_app *app, char **argv, int n,
                    char **owned)
{
	int k = 0;

	for (const struct config_app_key *d = app->keys;
	     d != NULL && d->name != NULL && k < SPAWN_KEYS_MAX; d++)
		if ((owned[k] = config_flag_arg(c, d->name)) != NULL)
			argv[n++] = owned[k++];
	return n;
}
