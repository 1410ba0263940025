/* api.c — the control API: HTTP/1.1 + JSON over evhttp, on the Unix
 * socket SOCKET and, when HTTP_LISTEN is set, on a loopback TCP port.
 *
 *   POST /v1/workflows                 start (idempotent by namespace + id)
 *   GET  /v1/workflows[?status=&limit=&after=&namespace=]
 *   GET  /v1/workflows/ID              one workflow with its steps
 *   GET  /v1/workflows/ID/history      its events
 *   GET  /v1/workflows/ID/wait[?timeout=30s]   long-poll until it closes
 *   GET  /v1/wait[?timeout=30s]        long-poll until none is running
 *   GET  /v1/stats                     counts, pool, engine counters
 *   GET  /v1/stock/PRODUCT, PUT /v1/stock/PRODUCT {"stock": N}
 *   GET  /v1/check                     the invariants (check.h), ok or not
 *   GET  /v1/health, GET /metrics (Prometheus text)
 *
 * Errors are {"error": "...", "status": N}. A start is answered only after
 * the commit that made it durable; so is a wait that saw a workflow close. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "appdb.h"
#include "check.h"
#include "clock.h"
#include "log.h"
#include "supervisor.h"

#define API_ID_MAX 128
#define API_WAIT_DEFAULT_MS 30000
#define API_WAIT_MAX_MS 3600000
#define API_LIST_DEFAULT 100
#define API_LIST_MAX 1000

struct api {
	struct sup *sup;
	struct evhttp *http;
	int unix_fd;
};

/* A request whose answer waits for a commit or a workflow: it follows the
 * connection so that a client that hangs up is noticed. */
struct pending {
	struct api *api;
	struct evhttp_request *req; /* NULL once the client is gone */
	struct waiter *waiter;
	int64_t wf_id; /* 0: waits for every workflow */
	int status;
	json_t *body; /* NEW ref to send after the commit */
};

/* ---- replies --------------------------------------------------------------- */

static const char *reason_of(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 409:
		return "Conflict";
	case 413:
		return "Payload Too Large";
	case 503:
		return "Service Unavailable";
	default:
		return "Internal Server Error";
	}
}

/* Sends body (STOLEN) as JSON with status. */
static void reply(struct evhttp_request *req, int status, json_t *body)
{
	struct evbuffer *buf = evbuffer_new();
	char *text = json_dumps(body, JSON_COMPACT);

	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	                  "application/json");
	evbuffer_add_printf(buf, "%s\n", text ? text : "{}");
	evhttp_send_reply(req, status, reason_of(status), buf);
	evbuffer_free(buf);
	free(text);
	json_decref(body);
}

static void reply_error(struct evhttp_request *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reply_error(struct evhttp_request *req, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	reply(req, status, json_pack("{s:s, s:i}", "error", msg, "status", status));
}

/* ---- pending requests -------------------------------------------------------- */

static void pending_closed(struct evhttp_connection *conn, void *arg)
{
	struct pending *p = arg;

	p->req = NULL;
	if (p->waiter != NULL) {
		engine_unwait(p->api->sup->engine, p->waiter);
		json_decref(p->body);
		free(p);
	}
}

static struct pending *pending_new(struct api *a, struct evhttp_request *req)
{
	struct pending *p = calloc(1, sizeof(*p));

	p->api = a;
	p->req = req;
	evhttp_connection_set_closecb(evhttp_request_get_connection(req), pending_closed, p);
	return p;
}

/* Answers (when the client is still there) and frees p. */
static void pending_finish(struct pending *p, int status, json_t *body)
{
	if (p->req != NULL) {
		evhttp_connection_set_closecb(evhttp_request_get_connection(p->req), NULL, NULL);
		reply(p->req, status, body);
	} else {
		json_decref(body);
	}
	free(p);
}

static void pending_deferred(void *arg)
{
	struct pending *p = arg;

	pending_finish(p, p->status, p->body);
}

/* Sends (status, body) once the current turn has committed. */
static void reply_after_commit(struct api *a, struct evhttp_request *req, int status, json_t *body)
{
	struct pending *p = pending_new(a, req);

	p->status = status;
	p->body = body;
	engine_defer(a->sup->engine, pending_deferred, p);
}

/* ---- request parsing ------------------------------------------------------------ */

/* The body as JSON (NEW ref), or NULL after a 400 naming the parser's
 * message and position. */
static json_t *body_json(struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(in);
	json_error_t jerr;
	json_t *j;

	if (n == 0) {
		reply_error(req, 400, "request body is empty: send a JSON object");
		return NULL;
	}
	j = json_loadb((const char *)evbuffer_pullup(in, (ev_ssize_t)n), n, 0, &jerr);
	if (j == NULL) {
		reply_error(req, 400, "bad JSON: %s at line %d column %d (byte %d)", jerr.text,
		            jerr.line, jerr.column, jerr.position);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		reply_error(req, 400, "bad request: the body must be a JSON object");
		return NULL;
	}
	return j;
}

/* Workflow ids and product ids: printable, no '/', bounded. */
static int valid_id(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return 0;
	for (; *s; s++)
		if (*s <= ' ' || *s == '/' || *s == '"' || *s == '\\' || *s == 0x7f)
			return 0;
	return 1;
}

struct query {
	struct evkeyvalq kv;
};

static const char *query_get(struct query *q, const char *key)
{
	return evhttp_find_header(&q->kv, key);
}

/* A duration parameter in [0, max], default def. Returns -1 after a 400. */
static int64_t query_duration(struct evhttp_request *req, struct query *q, const char *key,
                              int64_t def, int64_t max)
{
	const char *v = query_get(q, key);
	int64_t ms;

	if (v == NULL)
		return def;
	if (config_parse_duration(v, &ms) != 0 || ms > max) {
		reply_error(req, 400,
		            "bad %s=%s: give seconds (30) or a duration (500ms, 2m) "
		            "up to %llds",
		            key, v, (long long)(max / 1000));
		return -1;
	}
	return ms;
}

static const char *query_namespace(struct api *a, struct query *q)
{
	const char *ns = query_get(q, "namespace");

	return ns ? ns : a->sup->cfg.namespace_;
}

/* Finds the workflow named by the path; replies 404 and returns 0 when it
 * does not exist. */
static int find_wf(struct api *a, struct evhttp_request *req, struct query *q, const char *id,
                   int64_t *out)
{
	char err[512];
	const char *ns = query_namespace(a, q);
	int rc = store_wf_lookup(a->sup->store, ns, id, out, err, sizeof(err));

	if (rc < 0)
		reply_error(req, 500, "%s", err);
	else if (rc == 0)
		reply_error(req, 404,
		            "unknown workflow \"%s\" in namespace \"%s\" (see idemctl "
		            "list)",
		            id, ns);
	return rc > 0;
}

/* ---- handlers -------------------------------------------------------------------- */

static void handle_start(struct api *a, struct evhttp_request *req)
{
	json_t *body = body_json(req), *input = NULL, *out = NULL;
	const char *wid = NULL, *ns = a->sup->cfg.namespace_, *type = "inventory";
	const char *queue = a->sup->cfg.taskqueue;
	char err[1024];
	json_error_t jerr;
	int status;

	if (body == NULL)
		return;
	if (json_unpack_ex(body, &jerr, JSON_STRICT, "{s?s, s?s, s?s, s?s, s:o}", "workflow_id",
	                   &wid, "namespace", &ns, "type", &type, "task_queue", &queue, "input",
	                   &input) != 0 ||
	    !json_is_object(input)) {
		reply_error(req, 400,
		            "bad start request: %s (expected {\"workflow_id\"?: string, "
		            "\"namespace\"?: string, \"type\"?: string, \"task_queue\"?: string, "
		            "\"input\": object})",
		            json_is_object(input) || input == NULL ? jerr.text
		                                                   : "input must be an object");
		goto done;
	}
	if (wid == NULL)
		wid = json_string_value(json_object_get(input, "order_id"));
	if (wid == NULL || !valid_id(wid, API_ID_MAX) || !valid_id(ns, CONFIG_NAME_MAX - 1)) {
		reply_error(req, 400,
		            "bad start request: workflow_id (default: input.order_id) "
		            "and namespace must be 1..%d printable characters without spaces, "
		            "'/', '\"' or '\\'",
		            API_ID_MAX);
		goto done;
	}
	if (strcmp(queue, a->sup->cfg.taskqueue) != 0) {
		reply_error(req, 400,
		            "no workers serve task queue \"%s\": this supervisor's "
		            "workers serve \"%s\" (TASKQUEUE)",
		            queue, a->sup->cfg.taskqueue);
		goto done;
	}
	input = json_deep_copy(input);
	status = engine_start(a->sup->engine, ns, wid, type, input, &out, err, sizeof(err));
	json_decref(input);
	if (out == NULL)
		out = json_pack("{s:s, s:i}", "error", err, "status", status);
	reply_after_commit(a, req, status, out);
done:
	json_decref(body);
}

static void handle_get(struct api *a, struct evhttp_request *req, struct query *q, const char *id)
{
	char err[512];
	int64_t wid;
	json_t *wf;

	if (!find_wf(a, req, q, id, &wid))
		return;
	wf = store_wf_json(a->sup->store, wid, err, sizeof(err));
	if (wf == NULL)
		return reply_error(req, 500, "%s", err);
	reply(req, 200, wf);
}

static void handle_history(struct api *a, struct evhttp_request *req, struct query *q,
                           const char *id)
{
	char err[512];
	int64_t wid;
	json_t *wf, *events;

	if (!find_wf(a, req, q, id, &wid))
		return;
	wf = store_wf_json(a->sup->store, wid, err, sizeof(err));
	events = wf ? store_history_json(a->sup->store, wid, err, sizeof(err)) : NULL;
	if (events == NULL) {
		json_decref(wf);
		return reply_error(req, 500, "%s", err);
	}
	reply(req, 200, json_pack("{s:o, s:o}", "workflow", wf, "events", events));
}

static void wait_one_done(void *arg, int timed_out)
{
	struct pending *p = arg;
	char err[512];
	json_t *wf;

	p->waiter = NULL;
	wf = store_wf_json(p->api->sup->store, p->wf_id, err, sizeof(err));
	if (wf == NULL)
		return pending_finish(p, 500, json_pack("{s:s, s:i}", "error", err, "status", 500));
	pending_finish(p, 200, json_pack("{s:b, s:o}", "timed_out", timed_out, "workflow", wf));
}

static void handle_wait(struct api *a, struct evhttp_request *req, struct query *q, const char *id)
{
	int64_t timeout = query_duration(req, q, "timeout", API_WAIT_DEFAULT_MS, API_WAIT_MAX_MS);
	struct wf *wf;
	struct pending *p;
	int64_t wid;

	if (timeout < 0 || !find_wf(a, req, q, id, &wid))
		return;
	wf = engine_find(a->sup->engine, wid);
	p = pending_new(a, req);
	p->wf_id = wid;
	if (wf == NULL || wf->status != WF_RUNNING) {
		/* Closed already (and durable: running ones stay in memory until
		 * the commit that closed them has happened). */
		wait_one_done(p, 0);
		return;
	}
	p->waiter = engine_wait(a->sup->engine, wf, timeout, wait_one_done, p);
}

static json_t *counts(struct api *a, char *err, size_t errlen)
{
	return store_counts_json(a->sup->store, err, errlen);
}

static void wait_all_done(void *arg, int timed_out)
{
	struct pending *p = arg;
	char err[512];
	json_t *c;

	p->waiter = NULL;
	c = counts(p->api, err, sizeof(err));
	if (c == NULL)
		return pending_finish(p, 500, json_pack("{s:s, s:i}", "error", err, "status", 500));
	pending_finish(p, 200,
	               json_pack("{s:b, s:i, s:o}", "timed_out", timed_out, "running",
	                         engine_running_count(p->api->sup->engine), "counts", c));
}

static void handle_wait_all(struct api *a, struct evhttp_request *req, struct query *q)
{
	int64_t timeout = query_duration(req, q, "timeout", API_WAIT_DEFAULT_MS, API_WAIT_MAX_MS);
	struct pending *p;

	if (timeout < 0)
		return;
	p = pending_new(a, req);
	if (engine_running_count(a->sup->engine) == 0) {
		wait_all_done(p, 0);
		return;
	}
	p->waiter = engine_wait(a->sup->engine, NULL, timeout, wait_all_done, p);
}

static void handle_list(struct api *a, struct evhttp_request *req, struct query *q)
{
	const char *status = query_get(q, "status"), *v;
	enum wf_status ignored;
	long limit = API_LIST_DEFAULT;
	long long after = 0;
	char err[512], *end;
	json_t *list;

	if (status != NULL && wf_status_parse(status, &ignored) != 0)
		return reply_error(req, 400, "bad status=%s (allowed: running|completed|failed)",
		                   status);
	if ((v = query_get(q, "limit")) != NULL) {
		limit = strtol(v, &end, 10);
		if (*v == '\0' || *end != '\0' || limit < 1 || limit > API_LIST_MAX)
			return reply_error(req, 400, "bad limit=%s (allowed: 1..%d)", v,
			                   API_LIST_MAX);
	}
	if ((v = query_get(q, "after")) != NULL) {
		after = strtoll(v, &end, 10);
		if (*v == '\0' || *end != '\0' || after < 0)
			return reply_error(req, 400,
			                   "bad after=%s (a next_after value from a "
			                   "previous page)",
			                   v);
	}
	list = store_list_json(a->sup->store, query_get(q, "namespace"), status, (int)limit, after,
	                       err, sizeof(err));
	if (list == NULL)
		return reply_error(req, 500, "%s", err);
	reply(req, 200, list);
}

/* {"kill": N, ...} and {"before_effect": N, ...}: the planned faults. */
static json_t *faults_json(const struct engine_stats *s)
{
	json_t *kinds = json_object(), *points = json_object();

	for (int k = FAULT_KILL; k < FAULT_NKINDS; k++)
		json_object_set_new(kinds, fault_kind_name((enum fault_kind)k),
		                    json_integer(s->faults[k]));
	for (int p = 0; p < FAULT_NPOINTS; p++)
		json_object_set_new(points, fault_point_name((enum fault_point)p),
		                    json_integer(s->kills_at[p]));
	return json_pack("{s:o, s:o}", "by_kind", kinds, "kills_by_point", points);
}

static json_t *timeouts_json(const struct engine_stats *s)
{
	return json_pack("{s:I, s:I, s:I}", "start_to_close",
	                 (json_int_t)s->timeouts[TIMEOUT_START_TO_CLOSE], "heartbeat",
	                 (json_int_t)s->timeouts[TIMEOUT_HEARTBEAT], "schedule_to_close",
	                 (json_int_t)s->timeouts[TIMEOUT_SCHEDULE_TO_CLOSE]);
}

static json_t *engine_json(const struct engine_stats *s, int running)
{
	return json_pack("{s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "in_memory", running,
	                 "attempts", (json_int_t)s->attempts, "completed_steps",
	                 (json_int_t)s->completed_steps, "failed_attempts",
	                 (json_int_t)s->failed_attempts, "retries", (json_int_t)s->retries,
	                 "commits", (json_int_t)s->commits, "workflows_started",
	                 (json_int_t)s->workflows_started, "workflows_completed",
	                 (json_int_t)s->workflows_completed, "workflows_failed",
	                 (json_int_t)s->workflows_failed);
}

static void handle_stats(struct api *a, struct evhttp_request *req)
{
	char err[512];
	json_t *c = counts(a, err, sizeof(err));
	struct engine *e = a->sup->engine;

	if (c == NULL)
		return reply_error(req, 500, "%s", err);
	json_object_set_new(c, "task_queue", json_string(a->sup->cfg.taskqueue));
	json_object_set_new(c, "worker_restarts", json_integer(pool_total_restarts(a->sup->pool)));
	json_object_set_new(c, "pool", pool_json(a->sup->pool));
	json_object_set_new(c, "since_start",
	                    engine_json(engine_stats(e), engine_running_count(e)));
	json_object_set_new(c, "uptime_ms", json_integer(clock_mono_ms() - a->sup->started_mono));
	json_object_set_new(c, "faults", faults_json(engine_stats(e)));
	json_object_set_new(c, "timeouts", timeouts_json(engine_stats(e)));
	json_object_set_new(c, "worker_deaths", json_integer(engine_stats(e)->worker_deaths));
	json_object_set_new(c, "fault_seed", json_integer((json_int_t)a->sup->faults.seed));
	json_object_set_new(c, "activity_mode",
	                    json_string(a->sup->cfg.naive ? "naive" : "guarded"));
	json_object_set_new(c, "stopping", json_boolean(a->sup->stopping));
	reply(req, 200, c);
}

static void handle_stock(struct api *a, struct evhttp_request *req, const char *product)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const char *reason = "operator";
	json_int_t stock = 0;
	int64_t old = 0, now;
	json_error_t jerr;
	char err[512], why[300];
	json_t *body;
	int rc;

	if (!valid_id(product, CONFIG_PRODUCT_ID_MAX))
		return reply_error(req, 400,
		                   "bad product id \"%s\" (1..%d characters, no spaces "
		                   "or '/')",
		                   product, CONFIG_PRODUCT_ID_MAX);
	if (cmd == EVHTTP_REQ_GET) {
		rc = appdb_stock_get(a->sup->appdb, product, &now, err, sizeof(err));
		if (rc < 0)
			return reply_error(req, 500, "%s", err);
		if (rc == 0)
			return reply_error(req, 404,
			                   "unknown product \"%s\" (set it with idemctl "
			                   "stock set %s N)",
			                   product, product);
		return reply(
		    req, 200,
		    json_pack("{s:s, s:I}", "product_id", product, "stock", (json_int_t)now));
	}
	if (cmd != EVHTTP_REQ_PUT)
		return reply_error(req, 405, "use GET or PUT on /v1/stock/PRODUCT");
	if ((body = body_json(req)) == NULL)
		return;
	if (json_unpack_ex(body, &jerr, JSON_STRICT, "{s:I, s?s}", "stock", &stock, "reason",
	                   &reason) != 0 ||
	    stock < 0) {
		reply_error(req, 400,
		            "bad stock request: %s (expected {\"stock\": integer >= 0, "
		            "\"reason\"?: string})",
		            stock < 0 ? "stock is negative" : jerr.text);
		json_decref(body);
		return;
	}
	snprintf(why, sizeof(why), "operator: %s", reason);
	rc = appdb_stock_set(a->sup->appdb, product, stock, why, &old, err, sizeof(err));
	json_decref(body);
	if (rc != 0)
		return reply_error(req, 500, "%s", err);
	log_info("stock set by an operator", "product=%s old=%lld new=%lld", product,
	         (long long)old, (long long)stock);
	reply(req, 200,
	      json_pack("{s:s, s:I, s:I}", "product_id", product, "old_stock", (json_int_t)old,
	                "stock", stock));
}

static void handle_metrics(struct api *a, struct evhttp_request *req)
{
	const struct engine_stats *s = engine_stats(a->sup->engine);
	struct evbuffer *buf = evbuffer_new();
	char err[512];
	json_t *c = counts(a, err, sizeof(err)), *wfs;
	const char *key;
	json_t *v;

	if (c == NULL) {
		evbuffer_free(buf);
		return reply_error(req, 500, "%s", err);
	}
	wfs = json_object_get(c, "workflows");
	evbuffer_add_printf(buf, "# HELP idem_workflows Workflows in the state DB by status.\n"
	                         "# TYPE idem_workflows gauge\n");
	json_object_foreach(wfs, key, v) evbuffer_add_printf(
	    buf, "idem_workflows{status=\"%s\"} %lld\n", key, (long long)json_integer_value(v));
	evbuffer_add_printf(buf,
	                    "# TYPE idem_attempts_total counter\nidem_attempts_total %lld\n"
	                    "# TYPE idem_retries_total counter\nidem_retries_total %lld\n"
	                    "# TYPE idem_failed_attempts_total counter\n"
	                    "idem_failed_attempts_total %lld\n"
	                    "# TYPE idem_commits_total counter\nidem_commits_total %lld\n"
	                    "# TYPE idem_worker_restarts_total counter\n"
	                    "idem_worker_restarts_total %d\n"
	                    "# TYPE idem_workers_busy gauge\nidem_workers_busy %d\n"
	                    "# TYPE idem_workflows_in_memory gauge\nidem_workflows_in_memory %d\n",
	                    (long long)s->attempts, (long long)s->retries,
	                    (long long)s->failed_attempts, (long long)s->commits,
	                    pool_total_restarts(a->sup->pool), pool_busy_count(a->sup->pool),
	                    engine_running_count(a->sup->engine));
	json_decref(c);
	evbuffer_add_printf(buf,
	                    "# HELP idem_faults_total Faults planned, by kind and crash point.\n"
	                    "# TYPE idem_faults_total counter\n");
	for (int k = FAULT_ASYNC_KILL; k < FAULT_NKINDS; k++)
		evbuffer_add_printf(buf, "idem_faults_total{kind=\"%s\"} %lld\n",
		                    fault_kind_name((enum fault_kind)k), (long long)s->faults[k]);
	for (int p = 0; p < FAULT_NPOINTS; p++)
		evbuffer_add_printf(buf, "idem_faults_total{kind=\"kill\",point=\"%s\"} %lld\n",
		                    fault_point_name((enum fault_point)p),
		                    (long long)s->kills_at[p]);
	evbuffer_add_printf(buf,
	                    "# TYPE idem_timeouts_total counter\n"
	                    "idem_timeouts_total{kind=\"start_to_close\"} %lld\n"
	                    "idem_timeouts_total{kind=\"heartbeat\"} %lld\n"
	                    "idem_timeouts_total{kind=\"schedule_to_close\"} %lld\n"
	                    "# TYPE idem_worker_deaths_total counter\n"
	                    "idem_worker_deaths_total %lld\n",
	                    (long long)s->timeouts[0], (long long)s->timeouts[1],
	                    (long long)s->timeouts[2], (long long)s->worker_deaths);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	                  "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, "OK", buf);
	evbuffer_free(buf);
}

/* The invariants over what is committed (the checker opens its own
 * read-only connection). 200 whether they hold or not: the report says. */
static void handle_check(struct api *a, struct evhttp_request *req)
{
	const struct idem_config *c = &a->sup->cfg;
	char err[1024];
	json_t *report =
	    check_run(c->state_database, c->database, c->supplier_database, err, sizeof(err));

	if (report == NULL)
		return reply_error(req, 500, "check: %s", err);
	reply(req, 200, report);
}

/* ---- routing ------------------------------------------------------------------------ */

/* Splits "/v1/workflows/ID/wait" into up to 4 decoded segments. */
static int split_path(const char *path, char seg[4][API_ID_MAX * 3 + 1])
{
	int n = 0;

	while (*path == '/')
		path++;
	while (*path != '\0') {
		const char *end = strchr(path, '/');
		size_t len = end ? (size_t)(end - path) : strlen(path);
		char raw[API_ID_MAX * 3 + 1];
		char *dec;

		if (n == 4 || len >= sizeof(raw))
			return -1;
		memcpy(raw, path, len);
		raw[len] = '\0';
		dec = evhttp_uridecode(raw, 0, NULL);
		snprintf(seg[n++], API_ID_MAX * 3 + 1, "%s", dec ? dec : "");
		free(dec);
		path += len;
		while (*path == '/')
			path++;
	}
	return n;
}

static void route_workflows(struct api *a, struct evhttp_request *req, struct query *q,
                            char seg[4][API_ID_MAX * 3 + 1], int n, enum evhttp_cmd_type cmd)
{
	if (n == 2 && cmd == EVHTTP_REQ_POST)
		return handle_start(a, req);
	if (cmd != EVHTTP_REQ_GET)
		return reply_error(req, 405,
		                   "method not allowed here (POST /v1/workflows starts "
		                   "one; everything else is GET)");
	if (n == 2)
		return handle_list(a, req, q);
	if (n == 3)
		return handle_get(a, req, q, seg[2]);
	if (n == 4 && strcmp(seg[3], "history") == 0)
		return handle_history(a, req, q, seg[2]);
	if (n == 4 && strcmp(seg[3], "wait") == 0)
		return handle_wait(a, req, q, seg[2]);
	reply_error(req, 404, "no such endpoint (try /v1/workflows/ID, /history or /wait)");
}

static void route(struct evhttp_request *req, void *arg)
{
	struct api *a = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = evhttp_uri_get_path(uri), *qs = evhttp_uri_get_query(uri);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	char seg[4][API_ID_MAX * 3 + 1];
	struct query q;
	int n = split_path(path ? path : "/", seg);

	TAILQ_INIT(&q.kv);
	if (qs != NULL && evhttp_parse_query_str(qs, &q.kv) != 0) {
		reply_error(req, 400, "bad query string \"%s\"", qs);
		goto done;
	}
	if (n == 1 && strcmp(seg[0], "metrics") == 0 && cmd == EVHTTP_REQ_GET)
		handle_metrics(a, req);
	else if (n < 2 || strcmp(seg[0], "v1") != 0)
		reply_error(req, 404, "no such endpoint \"%s\" (the API lives under /v1)",
		            path ? path : "");
	else if (strcmp(seg[1], "workflows") == 0)
		route_workflows(a, req, &q, seg, n, cmd);
	else if (n == 2 && strcmp(seg[1], "wait") == 0 && cmd == EVHTTP_REQ_GET)
		handle_wait_all(a, req, &q);
	else if (n == 2 && strcmp(seg[1], "stats") == 0 && cmd == EVHTTP_REQ_GET)
		handle_stats(a, req);
	else if (n == 2 && strcmp(seg[1], "check") == 0 && cmd == EVHTTP_REQ_GET)
		handle_check(a, req);
	else if (n == 2 && strcmp(seg[1], "health") == 0 && cmd == EVHTTP_REQ_GET)
		reply(req, 200, json_pack("{s:b, s:b}", "ok", 1, "stopping", a->sup->stopping));
	else if (n == 3 && strcmp(seg[1], "stock") == 0)
		handle_stock(a, req, seg[2]);
	else
		reply_error(req, 404, "no such endpoint \"%s\"", path ? path : "");
done:
	evhttp_clear_headers(&q.kv);
}

/* ---- listening ---------------------------------------------------------------------- */

/* Binds the Unix socket, refusing to steal one a live supervisor answers on. */
static int listen_unix(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	size_t len = strlen(path);

	if (len >= sizeof(sa.sun_path)) {
		snprintf(err, errlen,
		         "SOCKET=%s is too long for a Unix socket path (%zu bytes, "
		         "at most %zu)",
		         path, len, sizeof(sa.sun_path) - 1);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	memcpy(sa.sun_path, path, len + 1);
	if (fd < 0)
		goto fail;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EAGAIN) {
		snprintf(err, errlen,
		         "SOCKET=%s is in use by another idem-supervisor; stop it "
		         "or choose another SOCKET",
		         path);
		close(fd);
		return -1;
	}
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 256) != 0)
		goto fail;
	return fd;
fail:
	snprintf(err, errlen, "cannot listen on SOCKET=%s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

int api_start(struct sup *sup, struct api **out, char *err, size_t errlen)
{
	struct api *a = calloc(1, sizeof(*a));

	a->sup = sup;
	a->unix_fd = -1;
	a->http = evhttp_new(sup->base);
	evhttp_set_max_body_size(a->http, (ev_ssize_t)sup->cfg.max_body);
	evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT);
	evhttp_set_timeout(a->http, (int)(API_WAIT_MAX_MS / 1000) + 60);
	evhttp_set_gencb(a->http, route, a);
	a->unix_fd = listen_unix(sup->cfg.socket, err, errlen);
	if (a->unix_fd < 0 || evhttp_accept_socket(a->http, a->unix_fd) != 0)
		goto fail;
	if (sup->cfg.http_listen[0] != '\0') {
		char host[CONFIG_NAME_MAX];
		const char *colon = strrchr(sup->cfg.http_listen, ':');
		int port = atoi(colon + 1);

		snprintf(host, sizeof(host), "%.*s", (int)(colon - sup->cfg.http_listen),
		         sup->cfg.http_listen);
		if (host[0] == '[') {
			memmove(host, host + 1, strlen(host));
			host[strlen(host) - 1] = '\0';
		}
		if (evhttp_bind_socket(a->http, host, (ev_uint16_t)port) != 0) {
			snprintf(err, errlen, "cannot listen on HTTP_LISTEN=%s: %s",
			         sup->cfg.http_listen, strerror(errno));
			goto fail;
		}
	}
	log_info("control API listening", "socket=%s http=%s", sup->cfg.socket,
	         sup->cfg.http_listen[0] ? sup->cfg.http_listen : "off");
	*out = a;
	return 0;
fail:
	if (a->unix_fd >= 0 && err[0] == '\0')
		snprintf(err, errlen, "cannot serve the control API on %s", sup->cfg.socket);
	api_free(a);
	return -1;
}

void api_free(struct api *a)
{
	if (a == NULL)
		return;
	evhttp_free(a->http);
	if (a->unix_fd >= 0)
		unlink(a->sup->cfg.socket);
	free(a);
}
