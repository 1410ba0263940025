/* lockfile.h — one process per resource: an exclusive flock() on a file
 * that lives as long as the process holding it (PostgreSQL's
 * postmaster.pid, s6's lock), with the holder's pid and a word of its own
 * (the supervisor's socket) written inside for the one that is refused.
 * Nothing here logs or exits. */
#ifndef IDEM_LOCKFILE_H
#define IDEM_LOCKFILE_H

#include <stddef.h>
#include <sys/types.h>

enum lockfile_rc {
	LOCKFILE_TAKEN = 0,  /* ours until the process exits */
	LOCKFILE_HELD = -1,  /* another live process holds it: err names it */
	LOCKFILE_ERROR = -2, /* the file cannot be made or locked: err says why */
};

/* Takes the lock at path (created, with its directory, when missing):
 * flock(LOCK_EX) on a CLOEXEC descriptor, so no program the process
 * starts keeps it; then writes "PID NOTE\n" in it. A lock whose recorded
 * holder is gone is held for a moment by a child of the dead holder
 * between fork and exec: that one is waited for (up to 2 s). The
 * descriptor goes to *fd; closing it, or exiting, lets the lock go.
 * On LOCKFILE_HELD, *holder gets the live holder's pid and note (the
 * text after the pid, up to notelen - 1 bytes). Writes nothing to the
 * file unless the lock is taken. */
enum lockfile_rc lockfile_take(const char *path, const char *note, int *fd, pid_t *holder,
                               char *holder_note, size_t notelen, char *err, size_t errlen);

#endif
