/* faultvfs.h — storage faults: a shim SQLite VFS ("idem-fault") that wraps
 * the default VFS, passes every call through, and makes chosen xWrite,
 * xSync, xTruncate or xRead calls on one database (its main file, -wal
 * and -journal) fail with SQLITE_IOERR_* or SQLITE_FULL. One spec (the
 * FAULT_VFS key) says where and when:
 *
 *   target=state|app,op=write|sync|truncate|read|any[+op...],nth=N|rate=R
 *   [,mode=transient|persistent][,error=ioerr|full][,seed=S]
 *
 * Calls are counted per process, over the selected ops on the target's
 * files only. transient (the default): only the Nth call fails, or each
 * call with probability R (a hash of seed and call number, so a seed
 * replays the same calls); persistent: the first call that fails and
 * every later one. error=ioerr (the default) returns the code that fits
 * the op (SQLITE_IOERR_WRITE, _FSYNC, _TRUNCATE, _READ); error=full
 * returns SQLITE_FULL. Nothing here logs: callers do. */
#ifndef IDEM_FAULTVFS_H
#define IDEM_FAULTVFS_H

#include <stddef.h>
#include <stdint.h>

#define FAULTVFS_NAME "idem-fault"

enum faultvfs_op {
	FAULTVFS_WRITE = 1u << 0,
	FAULTVFS_SYNC = 1u << 1,
	FAULTVFS_TRUNCATE = 1u << 2,
	FAULTVFS_READ = 1u << 3,
	FAULTVFS_ANY = FAULTVFS_WRITE | FAULTVFS_SYNC | FAULTVFS_TRUNCATE | FAULTVFS_READ,
};

enum faultvfs_mode { FAULTVFS_TRANSIENT, FAULTVFS_PERSISTENT };
enum faultvfs_error { FAULTVFS_IOERR, FAULTVFS_FULL };

struct faultvfs_spec {
	int enabled;    /* 0 for the empty spec: no storage faults */
	char target[8]; /* "state" or "app" */
	unsigned ops;   /* enum faultvfs_op bits */
	long nth;       /* > 0: by call number */
	double rate;    /* when nth is 0: the probability of each call */
	enum faultvfs_mode mode;
	enum faultvfs_error error;
	uint64_t seed;
};

/* Parses spec ("" = off). Returns 0, or -1 with err naming the bad part
 * ("FAULT_VFS: op=wrtie is not one of write, sync, truncate, read, any"). */
int faultvfs_parse(const char *spec, struct faultvfs_spec *out, char *err, size_t errlen);

/* Registers the shim as the default VFS of this process for the files of
 * db_path when spec->target is role ("state" or "app"). Call it before
 * opening databases: a connection keeps the VFS it was opened with.
 * Calling it again replaces the spec and the target and restarts the
 * counts (files already open keep whether they are the target's).
 * Returns 1 when installed, 0 when the spec is off or names another role
 * (nothing done), -1 with err. */
int faultvfs_install(const struct faultvfs_spec *spec, const char *role, const char *db_path,
                     char *err, size_t errlen);

/* How many faults were injected so far in this process. */
long faultvfs_injected(void);

/* How many calls of the selected ops the target's files have had. */
long faultvfs_calls(void);

#endif
