/* faultvfs.c — the "idem-fault" shim VFS (faultvfs.h). Every method of the
 * VFS and of its files forwards to the default VFS it wraps; a file of the
 * target database (matched by its full path, plus "-wal" or "-journal")
 * may have an xWrite, xSync, xTruncate or xRead call fail instead of
 * reaching the disk. A shim file is this module's header followed by the
 * real VFS's file (szOsFile is the sum of both). Nothing here logs. */
#include "faultvfs.h"

#include <ctype.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "xalloc.h"

#define FV_PATH_MAX 4096
#define FV_NTH_MAX 1000000000L
#define FV_IO_VERSIONS 3 /* the io_methods versions this shim knows */

/* One open file: our header, then the real VFS's file. */
struct fv_file {
	sqlite3_file base;  /* pMethods: fv_io[] of the real file's version */
	sqlite3_file *real; /* right after this header */
	int target;         /* a file of the target database: faults apply */
};

/* The process's one shim. The spec and the path change only in
 * faultvfs_install (before databases are opened); the counts may be
 * touched by any thread that uses SQLite. */
static struct {
	sqlite3_vfs *real;
	int registered;
	struct faultvfs_spec spec;
	char path[FV_PATH_MAX]; /* the target's full path, as xOpen sees it */
	size_t pathlen;
	atomic_long calls;
	atomic_long injected;
	atomic_int tripped; /* persistent mode: the first fault happened */
} fv;

static sqlite3_vfs fv_vfs;
static sqlite3_io_methods fv_io[FV_IO_VERSIONS];

/* ---- the spec ---- */

enum part_bit {
	P_TARGET = 1 << 0,
	P_OP = 1 << 1,
	P_NTH = 1 << 2,
	P_RATE = 1 << 3,
	P_MODE = 1 << 4,
	P_ERROR = 1 << 5,
	P_SEED = 1 << 6,
};

/* One KEY=VALUE part of a spec being parsed. */
struct part {
	const char *key;
	const char *value;
	struct faultvfs_spec *out;
	char *err;
	size_t errlen;
};

static int bad(const struct part *p, const char *allowed)
{
	snprintf(p->err, p->errlen, "FAULT_VFS: %s=%s is not %s", p->key, p->value, allowed);
	return -1;
}

static int set_target(const struct part *p)
{
	if (strcmp(p->value, "state") != 0 && strcmp(p->value, "app") != 0)
		return bad(p, "one of state, app");
	snprintf(p->out->target, sizeof(p->out->target), "%s", p->value);
	return 0;
}

static unsigned op_bit(const char *name, size_t len)
{
	static const struct {
		const char *name;
		unsigned bit;
	} ops[] = {{"write", FAULTVFS_WRITE},
	           {"sync", FAULTVFS_SYNC},
	           {"truncate", FAULTVFS_TRUNCATE},
	           {"read", FAULTVFS_READ},
	           {"any", FAULTVFS_ANY}};

	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strlen(ops[i].name) == len && strncmp(ops[i].name, name, len) == 0)
			return ops[i].bit;
	return 0;
}

/* op=write+sync: every name must be known. */
static int set_op(const struct part *p)
{
	const char *s = p->value;
	unsigned ops = 0;

	for (;;) {
		size_t len = strcspn(s, "+");
		unsigned bit = op_bit(s, len);

		if (bit == 0) {
			snprintf(
			    p->err, p->errlen,
			    "FAULT_VFS: op=%.*s is not one of write, sync, truncate, read, any "
			    "(join several with '+')",
			    (int)len, s);
			return -1;
		}
		ops |= bit;
		if (s[len] == '\0')
			break;
		s += len + 1;
	}
	p->out->ops = ops;
	return 0;
}

static int set_nth(const struct part *p)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(p->value, &end, 10);
	if (!isdigit((unsigned char)*p->value) || *end != '\0' || errno != 0 || v < 1 ||
	    v > FV_NTH_MAX)
		return bad(p, "a call number (allowed: 1..1000000000)");
	p->out->nth = v;
	return 0;
}

static int set_rate(const struct part *p)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(p->value, &end);
	if (!(isdigit((unsigned char)*p->value) || *p->value == '.') || *end != '\0' ||
	    errno != 0 || !(v >= 0 && v <= 1))
		return bad(p, "a probability (allowed: 0..1, e.g. 0.05)");
	p->out->rate = v;
	return 0;
}

static int set_mode(const struct part *p)
{
	if (strcmp(p->value, "transient") == 0)
		p->out->mode = FAULTVFS_TRANSIENT;
	else if (strcmp(p->value, "persistent") == 0)
		p->out->mode = FAULTVFS_PERSISTENT;
	else
		return bad(p, "one of transient, persistent");
	return 0;
}

static int set_error(const struct part *p)
{
	if (strcmp(p->value, "ioerr") == 0)
		p->out->error = FAULTVFS_IOERR;
	else if (strcmp(p->value, "full") == 0)
		p->out->error = FAULTVFS_FULL;
	else
		return bad(p, "one of ioerr, full");
	return 0;
}

static int set_seed(const struct part *p)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(p->value, &end, 10);
	if (!isdigit((unsigned char)*p->value) || *end != '\0' || errno != 0)
		return bad(p, "a number (allowed: 0..18446744073709551615)");
	p->out->seed = v;
	return 0;
}

static const struct {
	const char *key;
	int bit;
	int (*set)(const struct part *p);
} parts[] = {
    {"target", P_TARGET, set_target}, {"op", P_OP, set_op},       {"nth", P_NTH, set_nth},
    {"rate", P_RATE, set_rate},       {"mode", P_MODE, set_mode}, {"error", P_ERROR, set_error},
    {"seed", P_SEED, set_seed},
};

/* Parses one "key=value" (in place); *seen collects the keys. */
static int parse_part(char *text, struct faultvfs_spec *out, int *seen, char *err, size_t errlen)
{
	char *eq = strchr(text, '=');
	struct part p = {text, NULL, out, err, errlen};

	if (eq == NULL || eq == text) {
		snprintf(err, errlen, "FAULT_VFS: \"%s\" is not KEY=VALUE (e.g. op=write)", text);
		return -1;
	}
	*eq = '\0';
	p.value = eq + 1;
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		if (strcmp(parts[i].key, text) != 0)
			continue;
		if (*seen & parts[i].bit) {
			snprintf(err, errlen, "FAULT_VFS: %s= is given twice", text);
			return -1;
		}
		*seen |= parts[i].bit;
		return parts[i].set(&p);
	}
	snprintf(err, errlen,
	         "FAULT_VFS: unknown part %s= (allowed: target, op, nth, rate, mode, error, seed)",
	         text);
	return -1;
}

/* The rules between parts: what must be there, what excludes what. */
static int check_parts(int seen, char *err, size_t errlen)
{
	const char *missing = NULL;

	if (!(seen & P_TARGET))
		missing = "target= is missing (allowed: state, app)";
	else if (!(seen & P_OP))
		missing = "op= is missing (allowed: write, sync, truncate, read, any)";
	else if (!(seen & (P_NTH | P_RATE)))
		missing = "nth=N or rate=R is missing: say which calls fail";
	else if ((seen & P_NTH) && (seen & P_RATE))
		missing = "nth= and rate= exclude each other: give one";
	if (missing == NULL)
		return 0;
	snprintf(err, errlen, "FAULT_VFS: %s", missing);
	return -1;
}

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

int faultvfs_parse(const char *spec, struct faultvfs_spec *out, char *err, size_t errlen)
{
	char *copy = NULL, *save = NULL, *tok;
	int seen = 0, rc = -1;

	memset(out, 0, sizeof(*out));
	if (spec == NULL)
		return 0;
	copy = xstrdup(spec);
	if (*trim(copy) == '\0') {
		rc = 0;
		goto out;
	}
	for (tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save))
		if (parse_part(trim(tok), out, &seen, err, errlen) != 0)
			goto out;
	if (check_parts(seen, err, errlen) != 0)
		goto out;
	out->enabled = 1;
	rc = 0;
out:
	if (rc != 0)
		memset(out, 0, sizeof(*out));
	free(copy);
	return rc;
}

/* ---- deciding a fault ---- */

/* A uniform draw in [0, 1) from (seed, n): splitmix64's finalizer. */
static double draw(uint64_t seed, long n)
{
	uint64_t z = seed + (uint64_t)n * UINT64_C(0x9E3779B97F4A7C15);

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	z ^= z >> 31;
	return (double)(z >> 11) * 0x1.0p-53;
}

static int error_code(unsigned op)
{
	if (fv.spec.error == FAULTVFS_FULL)
		return SQLITE_FULL;
	switch (op) {
	case FAULTVFS_WRITE:
		return SQLITE_IOERR_WRITE;
	case FAULTVFS_SYNC:
		return SQLITE_IOERR_FSYNC;
	case FAULTVFS_TRUNCATE:
		return SQLITE_IOERR_TRUNCATE;
	default:
		return SQLITE_IOERR_READ;
	}
}

/* SQLITE_OK to let the call through, else the error it fails with. */
static int fault(const struct fv_file *f, unsigned op)
{
	long n;
	int fire;

	if (!f->target || !fv.spec.enabled || !(fv.spec.ops & op))
		return SQLITE_OK;
	n = atomic_fetch_add(&fv.calls, 1) + 1;
	if (fv.spec.mode == FAULTVFS_PERSISTENT && atomic_load(&fv.tripped))
		fire = 1;
	else if (fv.spec.nth > 0)
		fire = n == fv.spec.nth;
	else
		fire = draw(fv.spec.seed, n) < fv.spec.rate;
	if (!fire)
		return SQLITE_OK;
	atomic_store(&fv.tripped, 1);
	atomic_fetch_add(&fv.injected, 1);
	return error_code(op);
}

/* ---- the file methods: forward, or fail ---- */

static sqlite3_file *real_of(sqlite3_file *file)
{
	return ((struct fv_file *)file)->real;
}

static int fv_close(sqlite3_file *file)
{
	sqlite3_file *r = real_of(file);

	return r->pMethods->xClose(r);
}

static int fv_read(sqlite3_file *file, void *buf, int amt, sqlite3_int64 off)
{
	sqlite3_file *r = real_of(file);
	int rc = fault((struct fv_file *)file, FAULTVFS_READ);

	return rc != SQLITE_OK ? rc : r->pMethods->xRead(r, buf, amt, off);
}

static int fv_write(sqlite3_file *file, const void *buf, int amt, sqlite3_int64 off)
{
	sqlite3_file *r = real_of(file);
	int rc = fault((struct fv_file *)file, FAULTVFS_WRITE);

	return rc != SQLITE_OK ? rc : r->pMethods->xWrite(r, buf, amt, off);
}

static int fv_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	sqlite3_file *r = real_of(file);
	int rc = fault((struct fv_file *)file, FAULTVFS_TRUNCATE);

	return rc != SQLITE_OK ? rc : r->pMethods->xTruncate(r, size);
}

static int fv_sync(sqlite3_file *file, int flags)
{
	sqlite3_file *r = real_of(file);
	int rc = fault((struct fv_file *)file, FAULTVFS_SYNC);

	return rc != SQLITE_OK ? rc : r->pMethods->xSync(r, flags);
}

static int fv_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
	sqlite3_file *r = real_of(file);

	return r->pMethods->xFileSize(r, size);
}

static int fv_lock(sqlite3_file *file, int level)
{
	sqlite3_file *r = real_of(file);

	return r->pMethods->xLock(r, level);
}

static int fv_unlock(sqlite3_file *file, int level)
{
	sqlite3_file *r = real_of(file);

	return r->pMethods->xUnlock(r, level);
}

static int fv_check_reserved_lock(sqlite3_file *file, int *out)
{
	sqlite3_file *r = real_of(file);

	return r->pMethods->xCheckReservedLock(r, out);
}

static int fv_file_control(sqlite3_file *file, int op, void *arg)
{
	sqlite3_file *r = real_of(file);

	return r->pMethods->xFileControl(r, op, arg);
}

static int fv_sector_size(sqlite3_file *file)
{
	sqlite3_file *r = real_of(file);

	return r->pMethods->xSectorSize(r);
}

static int fv_device_characteristics(sqlite3_file *file)
{
	sqlite3_file *r = real_of(file);

	return r->pMethods->xDeviceCharacteristics(r);
}

static int fv_shm_map(sqlite3_file *file, int page, int pgsz, int extend, void volatile **pp)
{
	sqlite3_file *r = real_of(file);

	return r->pMethods->xShmMap(r, page, pgsz, extend, pp);
}

static int fv_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
	sqlite3_file *r = real_of(file);

	return r->pMethods->xShmLock(r, offset, n, flags);
}

static void fv_shm_barrier(sqlite3_file *file)
{
	sqlite3_file *r = real_of(file);

	r->pMethods->xShmBarrier(r);
}

static int fv_shm_unmap(sqlite3_file *file, int delete_flag)
{
	sqlite3_file *r = real_of(file);

	return r->pMethods->xShmUnmap(r, delete_flag);
}

static int fv_fetch(sqlite3_file *file, sqlite3_int64 off, int amt, void **pp)
{
	sqlite3_file *r = real_of(file);

	return r->pMethods->xFetch(r, off, amt, pp);
}

static int fv_unfetch(sqlite3_file *file, sqlite3_int64 off, void *p)
{
	sqlite3_file *r = real_of(file);

	return r->pMethods->xUnfetch(r, off, p);
}

/* fv_io[v - 1] has version v: the methods of a version the real file
 * lacks are NULL, as SQLite expects. */
static void init_io_methods(void)
{
	static const sqlite3_io_methods all = {
	    .iVersion = FV_IO_VERSIONS,
	    .xClose = fv_close,
	    .xRead = fv_read,
	    .xWrite = fv_write,
	    .xTruncate = fv_truncate,
	    .xSync = fv_sync,
	    .xFileSize = fv_file_size,
	    .xLock = fv_lock,
	    .xUnlock = fv_unlock,
	    .xCheckReservedLock = fv_check_reserved_lock,
	    .xFileControl = fv_file_control,
	    .xSectorSize = fv_sector_size,
	    .xDeviceCharacteristics = fv_device_characteristics,
	    .xShmMap = fv_shm_map,
	    .xShmLock = fv_shm_lock,
	    .xShmBarrier = fv_shm_barrier,
	    .xShmUnmap = fv_shm_unmap,
	    .xFetch = fv_fetch,
	    .xUnfetch = fv_unfetch,
	};

	for (int v = 1; v <= FV_IO_VERSIONS; v++) {
		sqlite3_io_methods *m = &fv_io[v - 1];

		*m = all;
		m->iVersion = v;
		if (v < 2) {
			m->xShmMap = NULL;
			m->xShmLock = NULL;
			m->xShmBarrier = NULL;
			m->xShmUnmap = NULL;
		}
		if (v < 3) {
			m->xFetch = NULL;
			m->xUnfetch = NULL;
		}
	}
}

/* ---- the VFS methods: forward to the real VFS ---- */

/* The main file, "-wal" or "-journal" of the target database. */
static int is_target(const char *name)
{
	return name != NULL && fv.pathlen > 0 && strncmp(name, fv.path, fv.pathlen) == 0 &&
	       (name[fv.pathlen] == '\0' || name[fv.pathlen] == '-');
}

static int fv_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
                   int *out_flags)
{
	struct fv_file *f = (struct fv_file *)file;
	const sqlite3_io_methods *m;
	int rc, v;

	(void)vfs;
	f->real = (sqlite3_file *)(f + 1);
	memset(f->real, 0, (size_t)fv.real->szOsFile);
	f->target = is_target(name);
	rc = fv.real->xOpen(fv.real, name, f->real, flags, out_flags);
	m = f->real->pMethods;
	v = m == NULL ? 0 : m->iVersion < FV_IO_VERSIONS ? m->iVersion : FV_IO_VERSIONS;
	/* Set even when the open failed: SQLite closes a file with methods. */
	f->base.pMethods = v > 0 ? &fv_io[v - 1] : NULL;
	return rc;
}

static int fv_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	return fv.real->xDelete(fv.real, name, sync_dir);
}

static int fv_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	return fv.real->xAccess(fv.real, name, flags, out);
}

static int fv_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	return fv.real->xFullPathname(fv.real, name, n, out);
}

static void *fv_dlopen(sqlite3_vfs *vfs, const char *name)
{
	return fv.real->xDlOpen(fv.real, name);
}

static void fv_dlerror(sqlite3_vfs *vfs, int n, char *msg)
{
	fv.real->xDlError(fv.real, n, msg);
}

static void (*fv_dlsym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
	return fv.real->xDlSym(fv.real, h, sym);
}

static void fv_dlclose(sqlite3_vfs *vfs, void *h)
{
	fv.real->xDlClose(fv.real, h);
}

static int fv_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	return fv.real->xRandomness(fv.real, n, out);
}

static int fv_sleep(sqlite3_vfs *vfs, int us)
{
	return fv.real->xSleep(fv.real, us);
}

static int fv_current_time(sqlite3_vfs *vfs, double *t)
{
	return fv.real->xCurrentTime(fv.real, t);
}

static int fv_get_last_error(sqlite3_vfs *vfs, int n, char *msg)
{
	return fv.real->xGetLastError(fv.real, n, msg);
}

static int fv_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *t)
{
	return fv.real->xCurrentTimeInt64(fv.real, t);
}

static int fv_set_system_call(sqlite3_vfs *vfs, const char *name, sqlite3_syscall_ptr p)
{
	return fv.real->xSetSystemCall(fv.real, name, p);
}

static sqlite3_syscall_ptr fv_get_system_call(sqlite3_vfs *vfs, const char *name)
{
	return fv.real->xGetSystemCall(fv.real, name);
}

static const char *fv_next_system_call(sqlite3_vfs *vfs, const char *name)
{
	return fv.real->xNextSystemCall(fv.real, name);
}

/* The shim's VFS object, shaped after the real one: the same version
 * (at most 3) and path limit, a file big enough for both headers. */
static void init_vfs(sqlite3_vfs *real)
{
	sqlite3_vfs *v = &fv_vfs;

	memset(v, 0, sizeof(*v));
	v->iVersion = real->iVersion < 3 ? real->iVersion : 3;
	v->szOsFile = (int)sizeof(struct fv_file) + real->szOsFile;
	v->mxPathname = real->mxPathname;
	v->zName = FAULTVFS_NAME;
	v->xOpen = fv_open;
	v->xDelete = fv_delete;
	v->xAccess = fv_access;
	v->xFullPathname = fv_full_pathname;
	v->xDlOpen = real->xDlOpen ? fv_dlopen : NULL;
	v->xDlError = real->xDlError ? fv_dlerror : NULL;
	v->xDlSym = real->xDlSym ? fv_dlsym : NULL;
	v->xDlClose = real->xDlClose ? fv_dlclose : NULL;
	v->xRandomness = fv_randomness;
	v->xSleep = fv_sleep;
	v->xCurrentTime = fv_current_time;
	v->xGetLastError = real->xGetLastError ? fv_get_last_error : NULL;
	if (v->iVersion >= 2)
		v->xCurrentTimeInt64 = real->xCurrentTimeInt64 ? fv_current_time_int64 : NULL;
	if (v->iVersion >= 3) {
		v->xSetSystemCall = real->xSetSystemCall ? fv_set_system_call : NULL;
		v->xGetSystemCall = real->xGetSystemCall ? fv_get_system_call : NULL;
		v->xNextSystemCall = real->xNextSystemCall ? fv_next_system_call : NULL;
	}
}

/* Finds the VFS to wrap and registers the shim as the default, once. */
static int register_shim(char *err, size_t errlen)
{
	sqlite3_vfs *real;
	int rc;

	if (fv.registered)
		return 0;
	real = sqlite3_vfs_find(NULL);
	if (real == NULL) {
		snprintf(err, errlen, "FAULT_VFS: SQLite has no default VFS to wrap");
		return -1;
	}
	fv.real = real;
	init_io_methods();
	init_vfs(real);
	rc = sqlite3_vfs_register(&fv_vfs, 1);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "FAULT_VFS: cannot register the %s VFS: %s", FAULTVFS_NAME,
		         sqlite3_errstr(rc));
		return -1;
	}
	fv.registered = 1;
	return 0;
}

/* The target's full path as the real VFS writes it (xOpen gets that). */
static int target_path(const char *db_path, char *err, size_t errlen)
{
	int n = fv.real->mxPathname + 1 < FV_PATH_MAX ? fv.real->mxPathname + 1 : FV_PATH_MAX;
	int rc;

	if (db_path == NULL || *db_path == '\0') {
		snprintf(err, errlen, "FAULT_VFS: the database path is empty");
		return -1;
	}
	rc = fv.real->xFullPathname(fv.real, db_path, n, fv.path);
	if ((rc & 0xff) != SQLITE_OK) {
		snprintf(err, errlen, "FAULT_VFS: cannot resolve the database path %s: %s", db_path,
		         sqlite3_errstr(rc));
		fv.path[0] = '\0';
		fv.pathlen = 0;
		return -1;
	}
	fv.pathlen = strlen(fv.path);
	return 0;
}

int faultvfs_install(const struct faultvfs_spec *spec, const char *role, const char *db_path,
                     char *err, size_t errlen)
{
	if (!spec->enabled || role == NULL || strcmp(spec->target, role) != 0)
		return 0;
	if (register_shim(err, errlen) != 0 || target_path(db_path, err, errlen) != 0)
		return -1;
	fv.spec = *spec;
	atomic_store(&fv.calls, 0);
	atomic_store(&fv.injected, 0);
	atomic_store(&fv.tripped, 0);
	return 1;
}

long faultvfs_injected(void)
{
	return atomic_load(&fv.injected);
}

long faultvfs_calls(void)
{
	return atomic_load(&fv.calls);
}
