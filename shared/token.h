/* token.h — the control API's bearer token on HTTP_LISTEN: a file
 * (API_TOKEN_FILE) that the supervisor makes at its first start, 0600
 * with a random token, and that its clients (idemctl --http) read. The
 * Unix socket needs none: its mode and group say who may connect. */
#ifndef IDEM_TOKEN_H
#define IDEM_TOKEN_H

#include <stddef.h>

#define TOKEN_MAX 256 /* characters of a token */
#define TOKEN_MIN 16
#define TOKEN_OFF "none"    /* API_TOKEN_FILE's value that turns the token off */
#define TOKEN_RANDOM_LEN 64 /* characters of a token made here: 32 random bytes as hex */

/* Writes 32 random bytes as hex into out (TOKEN_RANDOM_LEN + 1 bytes).
 * Returns 0, or -1 with errno when the kernel gives none. */
int token_random(char *out);

/* Reads the token of path into out (TOKEN_MAX + 1 bytes). With make, a
 * missing file is made (and its directory, with the umask: the
 * supervisor's makes it 0700), atomically: 32 random bytes as
 * hex, *made set; and a file others may read, or not this user's, is
 * refused. Returns 0, or -1 with err naming the file and the fix. */
int token_load(const char *path, int make, char *out, int *made, char *err, size_t errlen);

/* Whether a and b are the same token, in a time that does not depend on
 * where they differ. */
int token_equal(const char *a, const char *b);

#endif
