/* http.c — see http.h: one request to the supervisor through shared/httpc,
 * its JSON answer, and what to say when it cannot be reached or refuses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmt.h"
#include "http.h"
#include "httpc.h"
#include "token.h"

/* HTTP_LISTEN's token, read once from API_TOKEN_FILE for --http; when it
 * cannot be read, why (said with the server's 401). */
static char token_header[TOKEN_MAX + 32];
static char token_err[1024];
static int token_read;

static const char *bearer(const struct ctl *c)
{
	char token[TOKEN_MAX + 1];

	const char *host = c->endpoint + 7;

	/* HTTP_LISTEN is a loopback address: the token goes nowhere else. */
	if (strncmp(c->endpoint, "http://", 7) != 0 ||
	    strcmp(c->cfg.api_token_file, TOKEN_OFF) == 0 ||
	    !(strncmp(host, "127.", 4) == 0 || strncmp(host, "localhost:", 10) == 0 ||
	      strncmp(host, "[::1]:", 6) == 0 || strcmp(host, "localhost") == 0))
		return NULL;
	if (!token_read) {
		token_read = 1;
		if (token_load(c->cfg.api_token_file, 0, token, NULL, token_err,
		               sizeof(token_err)) == 0)
			snprintf(token_header, sizeof(token_header), "Authorization: Bearer %s",
			         token);
	}
	return token_header[0] != '\0' ? token_header : NULL;
}

void http_escape(const char *s, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	for (; *s && n + 4 < len; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || strchr("-._~", ch) != NULL) {
			out[n++] = (char)ch;
		} else {
			out[n++] = '%';
			out[n++] = hex[ch >> 4];
			out[n++] = hex[ch & 15];
		}
	}
	out[n] = '\0';
}

void http_add_query(const struct ctl *c, const char *query, char *buf, size_t len)
{
	char esc[CONFIG_NAME_MAX * 3];
	char sep = '?';

	if (query != NULL) {
		fmt_append(buf, len, "?%s", query);
		sep = '&';
	}
	if (!c->ns_given)
		return;
	http_escape(c->cfg.namespace_, esc, sizeof(esc));
	fmt_append(buf, len, "%cnamespace=%s", sep, esc);
}

int http_request(const struct ctl *c, const char *method, const char *path, const json_t *body,
                 int wait_ms, int *status, json_t **doc)
{
	const char *headers[3] = {NULL, NULL, NULL}, *auth = bearer(c);
	struct httpc_response resp;
	char err[1024], *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	int n = 0, rc;

	if (body != NULL)
		headers[n++] = "Content-Type: application/json";
	if (auth != NULL)
		headers[n++] = auth;
	rc = httpc_request(c->endpoint, method, path, n > 0 ? headers : NULL, text,
	                   text ? strlen(text) : 0, c->timeout_ms + wait_ms, &resp, err,
	                   sizeof(err));

	free(text);
	*doc = NULL;
	if (rc != 0 && strstr(err, "cannot connect") == NULL)
		return ctl_fail(IDEM_EXIT_USAGE, "%s", err);
	if (rc != 0)
		return ctl_fail(IDEM_EXIT_USAGE, "%s; start idem-supervisor, or check %s", err,
		                strncmp(c->endpoint, "http://", 7) == 0
		                    ? "--http URL against its HTTP_LISTEN"
		                    : "SOCKET (.env, environment or --socket PATH)");
	*status = resp.status;
	*doc = json_loadb(resp.body ? resp.body : "", resp.body_len, 0, NULL);
	if (*doc == NULL) {
		*doc = json_pack("{s:s%, s:i}", "error", resp.body ? resp.body : "",
		                 resp.body_len < 300 ? resp.body_len : 300, "status", resp.status);
		if (resp.status < 300) /* not the API we know: refuse to guess */
			*status = 502;
	}
	httpc_response_free(&resp);
	return 0;
}

void http_print_json(const json_t *doc)
{
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;

	if (text != NULL)
		printf("%s\n", text);
	free(text);
}

int http_refused(const struct ctl *c, int status, const json_t *doc)
{
	if (c->json)
		http_print_json(doc);
	if (status == 401 && token_err[0] != '\0')
		return ctl_fail(IDEM_EXIT_FAIL,
		                "%s; here, %s (--api-token-file PATH names another)",
		                ctl_str(doc, "error", "the server asks a token"), token_err);
	return ctl_fail(IDEM_EXIT_FAIL, "%s",
	                ctl_str(doc, "error", "the server refused the request"));
}

int http_get(const struct ctl *c, const char *path, int wait_ms, json_t **doc)
{
	int status = 0, rc = http_request(c, "GET", path, NULL, wait_ms, &status, doc);

	if (rc != 0)
		return rc;
	if (status >= 300) {
		rc = http_refused(c, status, *doc);
		json_decref(*doc);
		*doc = NULL;
	}
	return rc;
}

void http_wf_path(const struct ctl *c, const char *id, const char *tail, const char *query,
                  char *buf, size_t len)
{
	char esc[CTL_PATH_MAX / 2];

	http_escape(id, esc, sizeof(esc));
	snprintf(buf, len, "/v1/workflows/%s%s", esc, tail);
	http_add_query(c, query, buf, len);
}

static int app_request(const struct idem_ctl *ic, const char *method, const char *path,
                       const json_t *body, int *status, json_t **reply)
{
	return http_request(ic->ctl, method, path, body, 0, status, reply);
}

static int app_refused(const struct idem_ctl *ic, int status, const json_t *reply)
{
	return http_refused(ic->ctl, status, reply);
}

void http_app_ctl(struct ctl *c, struct idem_ctl *out)
{
	*out = (struct idem_ctl){.json = c->json,
	                         .request = app_request,
	                         .refused = app_refused,
	                         .print_json = http_print_json,
	                         .escape = http_escape,
	                         .fail = ctl_fail,
	                         .parse_number = ctl_parse_number,
	                         .ctl = c};
}
