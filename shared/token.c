/* token.c — see token.h. */
#include "token.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"

int token_random(char *out)
{
	unsigned char raw[TOKEN_RANDOM_LEN / 2];

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return -1;
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
	return 0;
}

/* What a token is made of: base64's and hex's characters, which go into
 * a header and a cookie as they are. */
static int token_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("-._~+/=", c) != NULL);
}

/* Makes path's directory entry durable. */
static void sync_dir(const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	int fd;

	snprintf(dir, sizeof(dir), "%.*s",
	         slash == NULL ? 1 : (int)(slash - path + (slash == path)),
	         slash == NULL ? "." : path);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

/* A new token into path, which must not exist: written whole and synced
 * under a name of its own, then linked to path, so that no reader (a
 * supervisor starting at the same time, one started after a crash) ever
 * sees a file without its token. Returns 0, 1 when path exists now (read
 * it), or -1 with err. */
static int token_make(const char *path, char *out, char *err, size_t errlen)
{
	char line[TOKEN_RANDOM_LEN + 2], tmp[4200];
	int fd, rc, e;
	ssize_t n;

	if (token_random(line) != 0) {
		snprintf(err, errlen, "API_TOKEN_FILE %s: no random bytes for a token: %s", path,
		         strerror(errno));
		return -1;
	}
	if (db_make_parent_dirs(path, err, errlen) != 0)
		return -1;
	snprintf(tmp, sizeof(tmp), "%s.%ld.new", path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "API_TOKEN_FILE %s: cannot make %s: %s", path, tmp,
		         strerror(errno));
		return -1;
	}
	memcpy(out, line, TOKEN_RANDOM_LEN + 1);
	strcat(line, "\n");
	n = write(fd, line, strlen(line));
	if (n != (ssize_t)strlen(line) || fsync(fd) != 0) {
		snprintf(err, errlen, "API_TOKEN_FILE %s: cannot write it: %s", path,
		         n < 0 ? strerror(errno) : "short write");
		close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	rc = link(tmp, path);
	e = errno;
	unlink(tmp);
	if (rc != 0 && e == EEXIST)
		return 1; /* made meanwhile by another: read it */
	if (rc != 0) {
		snprintf(err, errlen, "API_TOKEN_FILE %s: cannot make it: %s", path, strerror(e));
		return -1;
	}
	sync_dir(path);
	return 0;
}

int token_load(const char *path, int make, char *out, int *made, char *err, size_t errlen)
{
	char buf[TOKEN_MAX + 2];
	struct stat st;
	ssize_t n;
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), rc;

	if (made != NULL)
		*made = 0;
	if (fd < 0 && errno == ENOENT && make) {
		if ((rc = token_make(path, out, err, errlen)) <= 0) {
			if (made != NULL)
				*made = rc == 0;
			return rc;
		}
		fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0) {
		snprintf(err, errlen, "cannot read API_TOKEN_FILE %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "API_TOKEN_FILE %s is not a regular file", path);
		close(fd);
		return -1;
	}
	if (make && (st.st_uid != geteuid() || (st.st_mode & 077) != 0)) {
		snprintf(err, errlen,
		         "API_TOKEN_FILE %s is %s (mode %04o): the token lets anyone use the "
		         "control API over TCP; chown it to this user and chmod 600 it, or delete "
		         "it to have a new one made",
		         path, st.st_uid != geteuid() ? "another user's" : "readable by others",
		         (unsigned)(st.st_mode & 07777));
		close(fd);
		return -1;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "cannot read API_TOKEN_FILE %s: %s", path, strerror(errno));
		return -1;
	}
	buf[n] = '\0';
	while (len < (size_t)n && token_char(buf[len]))
		len++;
	if (len < TOKEN_MIN || len > TOKEN_MAX ||
	    (len < (size_t)n && buf[len] != '\n' && buf[len] != '\r')) {
		snprintf(
		    err, errlen,
		    "API_TOKEN_FILE %s holds no token (%d to %d of A-Z a-z 0-9 - . _ ~ + / = on "
		    "its first line): write one there%s",
		    path, TOKEN_MIN, TOKEN_MAX,
		    make ? ", or delete the file to have one made" : "");
		return -1;
	}
	memcpy(out, buf, len);
	out[len] = '\0';
	return 0;
}

int token_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned diff = la != lb;

	for (size_t i = 0; i < la; i++)
		diff |= (unsigned)(a[i] ^ b[i % (lb ? lb : 1)]);
	return diff == 0;
}
