/* example.c — a tiny idem activity in C: creates one marker file per idempotency key, once.
 *
 *   cc -std=c11 -Wall -Wextra -o example example.c
 *   echo '{"note":"hi"}' | IDEM_IDEMPOTENCY_KEY=default/w1/0 IDEM_DATA_DIR=/tmp ./example
 *
 * The effect is the file DATA_DIR/example-KEY.done, created with O_EXCL:
 * a retry finds it and applies nothing. Crash points: before_effect,
 * after_effect. Its input must be a JSON object (else InvalidInput, for
 * good); a file it cannot create is a retryable IOError. */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>

#include "idem_activity.h"

/* DATA_DIR/example-KEY.done, with '/' and '%' of KEY percent-encoded. */
static char *marker_path(const char *dir, const char *key)
{
	size_t n = strlen(dir) + 3 * strlen(key) + 32;
	char *path = malloc(n), *p;

	if (path == NULL)
		return NULL;
	p = path + snprintf(path, n, "%s/example-", dir);
	for (; *key != '\0'; key++)
		p += *key == '/' || *key == '%' ? sprintf(p, "%%%02X", (unsigned char)*key)
		                                : sprintf(p, "%c", *key);
	strcpy(p, ".done");
	return path;
}

int main(void)
{
	size_t len = 0;
	char *input = idem_read_input(&len), *path, *result = NULL;
	const char *key = idem_idempotency_key(), *dir = getenv("IDEM_DATA_DIR"), *p;
	const char *previous = idem_previous_heartbeat();
	size_t result_len;
	FILE *out;
	int fd, replayed = 0;

	if (input == NULL)
		idem_fail("IOError", "cannot read the input from stdin", 1);
	for (p = input; *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'; p++)
		;
	if (*p != '{') {
		char msg[160];
		snprintf(msg, sizeof(msg), "the input is not a JSON object: %.100s", input);
		idem_fail("InvalidInput", msg, 0);
	}
	if (key == NULL)
		idem_fail("NoIdempotencyKey", "IDEM_IDEMPOTENCY_KEY is not set (run me under idem)",
		          0);
	path = marker_path(dir != NULL ? dir : ".", key);
	if (path == NULL)
		idem_fail("OutOfMemory", "cannot build the marker's path", 1);

	idem_point("before_effect");
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (fd < 0 && errno == EEXIST) {
		replayed = 1; /* an earlier attempt applied it: apply nothing */
	} else if (fd < 0) {
		char msg[512];
		snprintf(msg, sizeof(msg), "cannot create %.400s: %s", path, strerror(errno));
		idem_fail("IOError", msg, 1);
	} else {
		if (write(fd, input, len) != (ssize_t)len || fsync(fd) != 0) {
			/* the marker exists: the effect is its creation, not its content */
		}
		close(fd);
		idem_heartbeat("{\"created\": true}");
		idem_point("after_effect");
	}

	out = open_memstream(&result, &result_len);
	if (out == NULL)
		idem_fail("OutOfMemory", "cannot build the result", 1);
	fputs("{\"key\":", out);
	idem_fputs_json(key, out);
	fprintf(out, ",\"replayed\":%s,\"input_bytes\":%zu,\"previous_heartbeat\":%s}",
	        replayed ? "true" : "false", len, previous != NULL ? previous : "null");
	if (fclose(out) != 0)
		idem_fail("OutOfMemory", "cannot build the result", 1);
	free(path);
	free(input);
	idem_succeed(result);
}
