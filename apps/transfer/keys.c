/* keys.c — the transfer app's configuration key: the accounts a new app
 * DB starts with (TRANSFER_ACCOUNTS, parsed here), each
 * "ACCOUNT:BALANCE", comma-separated. */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ids.h"
#include "transfer.h"
#include "transfer_db.h"

static const char *trim_span(const char *p, const char **end)
{
	while (p < *end && isspace((unsigned char)*p))
		p++;
	while (*end > p && isspace((unsigned char)(*end)[-1]))
		(*end)--;
	return p;
}

static int account_listed(const struct transfer_account *a, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(a[i].account_id, id) == 0)
			return 1;
	return 0;
}

/* How much of an entry a message repeats. */
static int show_len(int len)
{
	return len > 80 ? 80 : len;
}

/* Parses entry number idx, the text [p, end), into *out. */
static int account_entry(int idx, const char *p, const char *end, struct transfer_account *out,
                         char *msg, size_t len)
{
	const char *colon = memchr(p, ':', (size_t)(end - p));
	int n = (int)(end - p), idlen = colon ? (int)(colon - p) : 0;
	int numlen = colon ? (int)(end - colon - 1) : 0;
	char num[32];

	if (colon == NULL) {
		snprintf(msg, len, "entry %d \"%.*s\" is not ACCOUNT:BALANCE (example: A:1000)",
		         idx, show_len(n), p);
		return -1;
	}
	snprintf(out->account_id, sizeof(out->account_id), "%.*s", idlen, p);
	if (idlen > TRANSFER_ID_MAX || !ids_name_ok(out->account_id, TRANSFER_ID_MAX)) {
		snprintf(msg, len,
		         "entry %d has a bad account id \"%.*s\" (allowed: 1..%d characters of "
		         "A-Z a-z 0-9 _ . -)",
		         idx, show_len(idlen), p, TRANSFER_ID_MAX);
		return -1;
	}
	snprintf(num, sizeof(num), "%.*s", numlen, colon + 1);
	if (numlen >= (int)sizeof(num) || config_parse_int(num, &out->balance) != 0 ||
	    out->balance < 0 || out->balance > TRANSFER_BALANCE_MAX) {
		snprintf(msg, len,
		         "entry %d \"%.*s\" has a bad balance \"%.*s\" (allowed: 0..%" PRId64 ")",
		         idx, show_len(n), p, show_len(numlen), colon + 1, TRANSFER_BALANCE_MAX);
		return -1;
	}
	return 0;
}

int transfer_accounts_parse(const char *text, struct transfer_account *accounts, size_t *n,
                            char *msg, size_t len)
{
	const char *p = text, *next, *start, *end;

	*n = 0;
	if (*p == '\0')
		return 0;
	for (;; p = next + 1) {
		next = p + strcspn(p, ",");
		end = next;
		start = trim_span(p, &end);
		if (*n == TRANSFER_ACCOUNTS_MAX) {
			snprintf(msg, len, "has more than %d accounts", TRANSFER_ACCOUNTS_MAX);
			return -1;
		}
		if (account_entry((int)*n + 1, start, end, &accounts[*n], msg, len) < 0)
			return -1;
		if (account_listed(accounts, *n, accounts[*n].account_id)) {
			snprintf(msg, len, "entry %d repeats account \"%s\"", (int)*n + 1,
			         accounts[*n].account_id);
			return -1;
		}
		(*n)++;
		if (*next == '\0')
			return 0;
	}
}

static int accounts_check(const char *value, char *msg, size_t len)
{
	static struct transfer_account accounts[TRANSFER_ACCOUNTS_MAX];
	size_t n;

	return transfer_accounts_parse(value, accounts, &n, msg, len);
}

const struct config_app_key transfer_keys[] = {
    {"TRANSFER_ACCOUNTS", "A:1000,B:1000,C:1000",
     "ACCOUNT:BALANCE,... (balance 0..1000000000000, \"\" = none)",
     "accounts created with these balances when the transfer app's database is new",
     CONFIG_APP_TEXT, 0, 0, accounts_check, 1, 1},
    {0},
};
