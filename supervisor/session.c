/* session.c — the dashboard's sign-ins on HTTP_LISTEN (session.h). */
#include "session.h"

#include <string.h>

int session_new(struct sessions *t, int64_t now, char *id)
{
	int slot = 0;

	/* A free or ended slot, else the one that ends first. */
	for (int i = 0; i < SESSION_MAX; i++) {
		if (t->s[i].id[0] == '\0' || t->s[i].until <= now) {
			slot = i;
			break;
		}
		if (t->s[i].until < t->s[slot].until)
			slot = i;
	}
	if (token_random(id) != 0)
		return -1;
	memcpy(t->s[slot].id, id, TOKEN_RANDOM_LEN + 1);
	t->s[slot].until = now + SESSION_TTL_MS;
	return 0;
}

int session_valid(const struct sessions *t, const char *id, int64_t now)
{
	int ok = 0;

	if (strlen(id) != TOKEN_RANDOM_LEN)
		return 0;
	for (int i = 0; i < SESSION_MAX; i++)
		ok |= t->s[i].id[0] != '\0' && t->s[i].until > now && token_equal(id, t->s[i].id);
	return ok;
}

void session_end(struct sessions *t, const char *id)
{
	for (int i = 0; i < SESSION_MAX; i++)
		if (t->s[i].id[0] != '\0' && strcmp(t->s[i].id, id) == 0)
			t->s[i].id[0] = '\0';
}
