/* session.h — the dashboard's sign-ins on HTTP_LISTEN. POST /v1/login
 * trades the control API's token for a session: a random id, kept here in
 * memory with its end, that the browser keeps as its cookie. The token
 * itself never leaves the page that typed it; a session ends at its time,
 * at POST /v1/logout, or when the supervisor stops. */
#ifndef IDEM_SESSION_H
#define IDEM_SESSION_H

#include <stdint.h>

#include "token.h"

#define SESSION_MAX 64                      /* sign-ins kept at once */
#define SESSION_TTL_MS (12LL * 3600 * 1000) /* how long one lasts */

struct sessions {
	struct {
		char id[TOKEN_RANDOM_LEN + 1]; /* "" = a free slot */
		int64_t until;                 /* monotonic ms it ends */
	} s[SESSION_MAX];
};

/* Starts a session at now (monotonic ms) and writes its id into id
 * (TOKEN_RANDOM_LEN + 1 bytes). With every slot taken, the one nearest
 * its end makes room. Returns 0, or -1 when no random id could be made. */
int session_new(struct sessions *t, int64_t now, char *id);

/* Whether id names a session that has not ended at now; compared in a
 * time that does not depend on where ids differ. */
int session_valid(const struct sessions *t, const char *id, int64_t now);

/* Ends the session named id, if any. */
void session_end(struct sessions *t, const char *id);

#endif
