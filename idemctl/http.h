/* http.h — idemctl's side of the control API: one request to the
 * supervisor (c->endpoint: a Unix socket or http://HOST:PORT), its JSON
 * answer, the message when it cannot be reached or refuses, and --json's
 * copy of the answer on stdout. */
#ifndef IDEMCTL_HTTP_H
#define IDEMCTL_HTTP_H

#include <stddef.h>

#include <jansson.h>

#include "ctl.h"

/* Sends one request (body borrowed, may be NULL); wait_ms extends the
 * exchange's timeout. Returns 0 with *status and *doc (NEW reference; an
 * answer that is not JSON becomes an {"error"} with status >= 300), or 2
 * after saying why the supervisor could not be reached. */
int http_request(const struct ctl *c, const char *method, const char *path, const json_t *body,
                 int wait_ms, int *status, json_t **doc);
/* GET path: returns 0 with *doc (NEW reference), or the exit code (a
 * refusal has been reported as http_refused does). */
int http_get(const struct ctl *c, const char *path, int wait_ms, json_t **doc);
/* The server refused (status >= 300): says why and returns 1. */
int http_refused(const struct ctl *c, int status, const json_t *doc);
/* Prints doc as one compact JSON document on stdout. */
void http_print_json(const json_t *doc);

/* Percent-encodes one path segment or query value. */
void http_escape(const char *s, char *out, size_t len);
/* Appends "?query" (when not NULL) and the namespace parameter (when one
 * was chosen) to the path in buf. */
void http_add_query(const struct ctl *c, const char *query, char *buf, size_t len);
/* "/v1/workflows/ID[/tail][?query][&namespace=NS]" for a workflow id. */
void http_wf_path(const struct ctl *c, const char *id, const char *tail, const char *query,
                  char *buf, size_t len);

/* What an app's command is lent (shared/idem_app.h): the functions
 * above, on c, without a wait. */
void http_app_ctl(struct ctl *c, struct idem_ctl *out);

#endif
