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
 *   the app's own endpoints (shared/idem_app.h; the inventory's /v1/stock/P)
 *   GET  /v1/check                     the invariants (check.h), ok or not
 *   GET  /v1/health, GET /metrics (Prometheus text)
 *
 * Errors are {"error": "...", "status": N}: an endpoint asked with a method
 * it lacks is a 405 with Allow, a method libevent does not know a 501; only
 * the requests libevent refuses before route() get its HTML page
 * (docs/api.md, "Requests libevent answers itself"). A start is checked
 * in whole before anything is created (the workflow type's prepare() and
 * check_ids()). A start is answered
 * only after the commit that made it durable; so is a wait that saw a
 * workflow close. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "api.h"
#include "clock.h"
#include "pgconn.h"
#include "token.h"
#include "engine.h"
#include "faultctl.h"
#include "ids.h"
#include "log.h"
#include "metrics.h"
#include "offloop.h"
#include "pool.h"
#include "series.h"
#include "session.h"
#include "spawn_program.h"
#include "store.h"
#include "sup.h"
#include "textbuf.h"
#include "timer.h"
#include "ui.h"
#include "workflow.h"
#include "xalloc.h"

#define API_ID_MAX 128
#define API_WAIT_DEFAULT_MS 30000
#define API_WAIT_MAX_MS 3600000
#define API_LIST_DEFAULT 100
#define API_LIST_MAX 1000
/* A client that sends nothing for this long while its request is due, or
 * reads nothing of its reply, is dropped (evhttp's read and write
 * timeouts). A request being answered is not read (libevent 2.1), so a
 * long-poll waits as long as it asked. A request must also be in whole
 * within API_REQUEST_TIMEOUT of its first byte (see "request clocks"). */
#define API_IO_TIMEOUT_S 10
#define API_MAX_HEADERS 16384 /* request line and headers, per request */
#define API_LISTEN_BACKLOG 256
/* Out of descriptors: how often to look whether some are free again. */
#define API_FD_RETRY_MS 1000
/* How long SOCKET must stay answered to be another supervisor's. */
#define API_STALE_WAIT_MS 2000
#define API_STALE_POLL_MS 50

#define CLOCK_IDLE (-1) /* between requests */
#define CLOCK_CUT (-2)  /* answered 408: whatever else comes is dropped */

/* The request clock of one descriptor (see "request clocks"). */
struct req_clock {
	ino_t ino;        /* the socket's inode: which connection holds the fd */
	int64_t start_ms; /* first byte of the request being read; CLOCK_IDLE, CLOCK_CUT */
};

/* Requests waiting on an off-loop child: a check (handle_check) or a
 * panel (handle_panel). */
struct check_queue {
	struct pending **p;
	size_t n, cap;
};

/* A panel the app makes by a command (idem_app_panel.run): `idemctl
 * panel N --offline` off the loop; the requests that come while it runs
 * share its answer. */
struct panel_run {
	struct api *api;
	int index;
	struct offloop *o;
	struct event *timer; /* PANEL_TIMEOUT_MS after it started */
	struct check_queue waiting;
};

struct api {
	struct sup *sup;
	struct evhttp *http;
	struct req_clock *clocks; /* by descriptor */
	size_t nclocks;
	int unix_fd;
	int reserve_fd;         /* /dev/null, given up to refuse a connection */
	struct event *fd_timer; /* ends a descriptor shortage, or resumes */
	struct evconnlistener *listeners[2];
	int nlisteners;
	int fd_short; /* out of descriptors since the last check */
	int paused;   /* listeners disabled until fd_timer */
	long refused; /* connections refused in this shortage */
	struct api_stats stats;
	struct offloop *check;      /* the checker's child, while it runs */
	struct event *check_timer;  /* CHECK_TIMEOUT_MS after it started */
	struct check_queue running; /* the requests it will answer */
	struct check_queue next;    /* those that came since: the next check's */
	int tcp_port;               /* HTTP_LISTEN's port, as bound; 0: off */
	struct series *series;      /* the last minutes, for the dashboard */
	struct panel_run *panels;   /* one per panel of the app's */
	int npanels;
	char token[TOKEN_MAX + 1]; /* HTTP_LISTEN's bearer token; "" = none asked */
	struct sessions sessions;  /* the dashboard's sign-ins (session.h) */
};

/* A request whose answer waits for a commit or a workflow: it follows the
 * connection so that a client that hangs up is noticed. */
struct pending {
	struct api *api;
	struct evhttp_request *req; /* NULL once the client is gone */
	struct waiter *waiter;
	int64_t wf_id; /* 0: waits for every workflow */
	int status;
	int created;          /* a start that waits: whether it created the workflow */
	json_t *body;         /* NEW ref to send after the commit */
	struct event *hangup; /* watches a long-poll's client, or NULL */
	struct event *poll;   /* a wait for a workflow another supervisor runs */
	int64_t poll_until;   /* mono ms: that wait's end */
};

/* ---- replies --------------------------------------------------------------- */

static const char *reason_of(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 413:
		return "Payload Too Large";
	case 415:
		return "Unsupported Media Type";
	case 501:
		return "Not Implemented";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	default:
		return "Internal Server Error";
	}
}

/* Sends text (len bytes of JSON) and a newline with status. evhttp states
 * the length, but not in a reply to CONNECT (libevent 2.1), whose end a
 * client on a kept-alive connection could then not find: that one is
 * stated here. */
static void send_json(struct evhttp_request *req, int status, const char *text, size_t len)
{
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
	struct evbuffer *buf = evbuffer_new();
	char length[24];

	evhttp_add_header(headers, "Content-Type", "application/json");
	if (evhttp_request_get_command(req) == EVHTTP_REQ_CONNECT) {
		snprintf(length, sizeof(length), "%zu", len + 1);
		evhttp_add_header(headers, "Content-Length", length);
	}
	evbuffer_add(buf, text, len);
	evbuffer_add(buf, "\n", 1);
	evhttp_send_reply(req, status, reason_of(status), buf);
	evbuffer_free(buf);
}

/* Sends body (STOLEN) as JSON with status. */
static void reply(struct evhttp_request *req, int status, json_t *body)
{
	char *text = json_dumps(body, JSON_COMPACT);

	send_json(req, status, text ? text : "{}", text ? strlen(text) : 2);
	free(text);
	json_decref(body);
}

/* Sends text, a JSON document, with status. */
static void reply_text(struct evhttp_request *req, int status, const char *text)
{
	send_json(req, status, text, strlen(text));
}

/* {"error": msg, "status": status}; msg's bytes that are not ASCII become
 * '?' when they are not UTF-8 (a path in an error is the user's bytes). */
static json_t *error_body(const char *msg, int status)
{
	json_t *j = json_pack("{s:s, s:i}", "error", msg, "status", status);
	char *ascii;

	if (j != NULL)
		return j;
	ascii = xstrdup(msg);
	for (char *p = ascii; *p != '\0'; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_pack("{s:s, s:i}", "error", ascii, "status", status);
	free(ascii);
	return j;
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
	reply(req, status, error_body(msg, status));
}

/* ---- pending requests -------------------------------------------------------- */

static void pending_closed(struct evhttp_connection *conn, void *arg)
{
	struct pending *p = arg;

	p->req = NULL;
	if (p->hangup != NULL) {
		event_free(p->hangup);
		p->hangup = NULL;
	}
	if (p->waiter != NULL) {
		engine_unwait(p->api->sup->engine, p->waiter);
		json_decref(p->body);
		free(p);
	} else if (p->poll != NULL) {
		event_free(p->poll);
		json_decref(p->body);
		free(p);
	}
}

/* libevent 2.1 does not read a connection whose request is being
 * answered: a client that hung up during a long-poll would keep its
 * descriptor until the poll's timeout (up to an hour). So the socket is
 * watched: EOF or an error frees the connection now, and pending_closed
 * the poll (nginx's ngx_http_test_reading does the same with MSG_PEEK).
 * Bytes sent ahead (a pipelined request) are left to evhttp. */
static void pending_hangup_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pending *p = arg;
	char c;
	ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
		event_add(p->hangup, NULL);
		return;
	}
	if (n > 0 || p->req == NULL)
		return;
	evhttp_connection_free(evhttp_request_get_connection(p->req));
}

static void pending_watch(struct pending *p)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(p->req);
	struct bufferevent *bev = evhttp_connection_get_bufferevent(conn);
	evutil_socket_t fd = bev != NULL ? bufferevent_getfd(bev) : -1;

	if (fd < 0)
		return;
	p->hangup = event_new(p->api->sup->base, fd, EV_READ, pending_hangup_cb, p);
	if (p->hangup != NULL)
		event_add(p->hangup, NULL);
}

static struct pending *pending_new(struct api *a, struct evhttp_request *req)
{
	struct pending *p = xcalloc(1, sizeof(*p));

	p->api = a;
	p->req = req;
	evhttp_connection_set_closecb(evhttp_request_get_connection(req), pending_closed, p);
	return p;
}

/* Answers with body, or with text when body is NULL (when the client is
 * still there), and frees p and what it was given. */
static void pending_answer(struct pending *p, int status, json_t *body, char *text)
{
	if (p->hangup != NULL)
		event_free(p->hangup);
	if (p->req != NULL) {
		evhttp_connection_set_closecb(evhttp_request_get_connection(p->req), NULL, NULL);
		if (body != NULL)
			reply(p->req, status, body);
		else
			reply_text(p->req, status,
			           text != NULL ? text
			                        : "{\"error\": \"no answer could be made\"}");
	} else {
		json_decref(body);
	}
	free(text);
	free(p);
}

static void pending_finish(struct pending *p, int status, json_t *body)
{
	pending_answer(p, status, body, NULL);
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

/* The key a JSON_REJECT_DUPLICATES error stopped at, decoded into key
 * ("" when it cannot be found). jansson stops just past the key's closing
 * quote; its opening quote is the first one before it that no odd run of
 * backslashes escapes. */
static void duplicate_key(const char *text, size_t n, int pos, char *key, size_t len)
{
	int start = pos - 2, bs;
	json_t *k = NULL;

	key[0] = '\0';
	if (pos < 2 || (size_t)pos > n || text[pos - 1] != '"')
		return;
	for (; start >= 0; start--) {
		if (text[start] != '"')
			continue;
		for (bs = 0; start - bs - 1 >= 0 && text[start - bs - 1] == '\\'; bs++)
			;
		if (bs % 2 == 0)
			break;
	}
	if (start >= 0)
		k = json_loadb(text + start, (size_t)(pos - start), JSON_DECODE_ANY, NULL);
	if (json_is_string(k))
		snprintf(key, len, "%.*s", textbuf_utf8_prefix(json_string_value(k), len - 1),
		         json_string_value(k));
	json_decref(k);
}

/* The body as JSON (NEW ref), or NULL after a 400 naming the parser's
 * message and position, or the key given twice (a duplicate would
 * otherwise silently take the last value). */
static json_t *body_json(struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(in);
	const char *text;
	char key[128];
	json_error_t jerr;
	json_t *j;

	if (n == 0) {
		reply_error(req, 400, "request body is empty: send a JSON object");
		return NULL;
	}
	text = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
	j = json_loadb(text, n, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL && json_error_code(&jerr) == json_error_duplicate_key) {
		duplicate_key(text, n, jerr.position, key, sizeof(key));
		reply_error(req, 400,
		            "bad JSON: key \"%s\" appears twice in one object (line %d column %d): "
		            "send each key once",
		            key, jerr.line, jerr.column);
		return NULL;
	}
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
	/* An id or namespace no start would accept names no workflow, and
	 * is not sent to the state DB (PostgreSQL refuses bytes that are not
	 * UTF-8, and the error would fail the turn's transaction). */
	int rc = ids_workflow_id_ok(id, API_ID_MAX) && ids_name_ok(ns, CONFIG_NAME_MAX - 1)
	             ? store_wf_lookup(a->sup->store, ns, id, out, err, sizeof(err))
	             : 0;

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

/* Workflow id as the API shows it: from memory while the engine holds it
 * (running, or closed in this turn), else from the state DB. NULL with
 * err on a state-DB error. */
static json_t *wf_view(struct api *a, int64_t id, char *err, size_t errlen)
{
	struct wf *wf = engine_find(a->sup->engine, id);
	json_t *view;

	if (wf == NULL)
		return store_wf_json(a->sup->store, id, err, errlen);
	view = wf_json(wf);
	if (store_shared(a->sup->store))
		json_object_set_new(view, "owner",
		                    json_pack("{s:I, s:s}", "run",
		                              (json_int_t)store_run_id(a->sup->store), "supervisor",
		                              store_run_name(a->sup->store)));
	return view;
}

/* A long-poll's answer (GET .../wait, or a start that waits: that one
 * answers with the start's status and says whether it created the
 * workflow). */
static void wait_one_done(void *arg, int timed_out)
{
	struct pending *p = arg;
	struct wf *held = engine_find(p->api->sup->engine, p->wf_id);
	char err[512];
	json_t *wf, *body;

	p->waiter = NULL;
	/* Held in memory (the common case: woken as it closes): written as
	 * text from what the workflow keeps, not built and dumped. */
	if (held != NULL) {
		struct textbuf text = {0};
		char *view = wf_json_text(held);

		textbuf_puts(&text, timed_out ? "{\"timed_out\":true,\"workflow\":"
		                              : "{\"timed_out\":false,\"workflow\":");
		textbuf_puts(&text, view);
		textbuf_puts(&text, p->status == 0 ? "}"
		                    : p->created   ? ",\"created\":true}"
		                                   : ",\"created\":false}");
		free(view);
		return pending_answer(p, p->status != 0 ? p->status : 200, NULL,
		                      textbuf_take(&text, NULL));
	}
	wf = wf_view(p->api, p->wf_id, err, sizeof(err));
	if (wf == NULL)
		return pending_finish(p, 500, error_body(err, 500));
	body = json_pack("{s:b, s:o}", "timed_out", timed_out, "workflow", wf);
	if (p->status != 0)
		json_object_set_new(body, "created", json_boolean(p->created));
	pending_finish(p, p->status != 0 ? p->status : 200, body);
}

/* ---- workflows another supervisor runs ------------------------------------------- */

/* Several supervisors on one state DB: a workflow that is not in this
 * one's memory may be running in another's. A wait for it polls the
 * state DB until it closes (or this supervisor adopts it, and waits as
 * for its own). */
#define API_REMOTE_POLL_MS 100

/* Whether workflow id runs in another supervisor. */
static int runs_elsewhere(struct api *a, int64_t id)
{
	char err[512];

	if (!store_shared(a->sup->store) || engine_find(a->sup->engine, id) != NULL)
		return 0;
	return store_wf_running(a->sup->store, id, err, sizeof(err)) > 0;
}

static void remote_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pending *p = arg;
	struct wf *mine = engine_find(p->api->sup->engine, p->wf_id);
	int64_t left = p->poll_until - clock_mono_ms();
	int running = mine == NULL && runs_elsewhere(p->api, p->wf_id);

	(void)fd;
	(void)what;
	if (running && left > 0) {
		struct timeval tv = {0, API_REMOTE_POLL_MS * 1000};

		event_add(p->poll, &tv);
		return;
	}
	event_free(p->poll);
	p->poll = NULL;
	if (mine != NULL && mine->status == WF_RUNNING && left > 0) {
		p->waiter = engine_wait(p->api->sup->engine, mine, left, wait_one_done, p);
		return;
	}
	wait_one_done(p, running || (mine != NULL && mine->status == WF_RUNNING));
}

static void wait_elsewhere(struct pending *p, int64_t timeout_ms)
{
	struct timeval tv = {0, API_REMOTE_POLL_MS * 1000};

	p->poll_until = clock_mono_ms() + timeout_ms;
	p->poll = evtimer_new(p->api->sup->base, remote_poll_cb, p);
	event_add(p->poll, &tv);
	pending_watch(p);
}

/* Whether field is a valid workflow id (or, with name, a valid name: the
 * namespace, as NAMESPACE is; ids.h); else a 400 naming it, its limit and
 * its length. */
static int id_ok(struct evhttp_request *req, const char *field, const char *v, size_t max, int name)
{
	size_t n = strlen(v);

	if (name ? ids_name_ok(v, max) : ids_workflow_id_ok(v, max))
		return 1;
	if (n == 0 || n > max)
		reply_error(req, 400, "bad start request: %s is %zu bytes: give 1..%zu", field, n,
		            max);
	else if (name)
		reply_error(
		    req, 400,
		    "bad start request: %s \"%s\" has a character that is not allowed: give "
		    "1..%zu characters of A-Z a-z 0-9 _ . -",
		    field, v, max);
	else
		reply_error(
		    req, 400,
		    "bad start request: %s \"%s\" has a character that is not allowed: give "
		    "1..%zu printable ASCII characters without spaces, '/', '\"' or '\\'",
		    field, v, max);
	return 0;
}

/* The ids of a start: the workflow id (given, or the input field the
 * type names as its default) and the namespace, each valid (engine_start
 * checks what the workflow type derives from them). Returns 0, or -1
 * after a 400. */
static int start_ids(struct evhttp_request *req, const struct idem_workflow *t, const char *ns,
                     const char *wid)
{
	if (wid == NULL && t->id_field != NULL) {
		reply_error(
		    req, 400,
		    "bad start request: no workflow_id, and input.%s (its default) is not a "
		    "string: give either",
		    t->id_field);
		return -1;
	}
	if (wid == NULL) {
		reply_error(req, 400, "bad start request: no workflow_id: give one");
		return -1;
	}
	if (!id_ok(req, "workflow_id", wid, API_ID_MAX, 0) ||
	    !id_ok(req, "namespace", ns, CONFIG_NAME_MAX - 1, 1))
		return -1;
	return 0;
}

/* What a start came to, in HTTP. */
static const int start_status[] = {
    [START_CREATED] = 201, [START_EXISTS] = 200,   [START_CONFLICT] = 409,
    [START_INVALID] = 400, [START_STOPPING] = 503, [START_FAILED] = 500,
};

/* POST /v1/workflows?wait=D: the reply waits (up to D) until the workflow
 * has closed, like GET .../wait, and says whether it timed out. start is
 * engine_start's answer (status, body STOLEN, id). */
static void start_and_wait(struct api *a, struct evhttp_request *req, int64_t wait_ms, int status,
                           json_t *body, int64_t id)
{
	struct wf *wf = engine_find(a->sup->engine, id);
	struct pending *p;

	if (wf == NULL && runs_elsewhere(a, id)) {
		p = pending_new(a, req);
		p->wf_id = id;
		p->status = status;
		p->created = json_is_true(json_object_get(body, "created"));
		json_decref(body);
		wait_elsewhere(p, wait_ms);
		return;
	}
	if (wf == NULL || wf->status != WF_RUNNING) {
		/* Closed already (a start of a finished workflow): answer
		 * after this turn's commit, as any start. */
		json_object_set_new(body, "timed_out", json_false());
		reply_after_commit(a, req, status, body);
		return;
	}
	p = pending_new(a, req);
	p->wf_id = id;
	p->status = status;
	p->created = json_is_true(json_object_get(body, "created"));
	json_decref(body);
	/* The waiter fires after the commit that closed the workflow, or at
	 * its timeout, which is in a later turn than this start's commit. */
	p->waiter = engine_wait(a->sup->engine, wf, wait_ms, wait_one_done, p);
	pending_watch(p);
}

static void handle_start(struct api *a, struct evhttp_request *req, struct query *q,
                         const char *unused)
{
	int64_t wait_ms = query_duration(req, q, "wait", 0, API_WAIT_MAX_MS), id;
	json_t *body, *input = NULL, *out = NULL;
	const char *wid = NULL, *ns = a->sup->cfg.namespace_,
	           *type = a->sup->app->workflows[0].name;
	const struct idem_workflow *t;
	const char *queue = a->sup->cfg.taskqueue;
	char err[1024];
	json_error_t jerr;
	int status;

	if (wait_ms < 0)
		return;
	body = body_json(req);
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
	if ((t = wf_type_find(a->sup->app, type)) == NULL) {
		wf_type_unknown(a->sup->app, type, err, sizeof(err));
		reply_error(req, 400, "%s", err);
		goto done;
	}
	if (wid == NULL && t->id_field != NULL)
		wid = json_string_value(json_object_get(input, t->id_field));
	if (start_ids(req, t, ns, wid) != 0)
		goto done;
	if (strcmp(queue, a->sup->cfg.taskqueue) != 0) {
		reply_error(req, 400,
		            "no workers serve task queue \"%s\": this supervisor's "
		            "workers serve \"%s\" (TASKQUEUE)",
		            queue, a->sup->cfg.taskqueue);
		goto done;
	}
	input = json_deep_copy(input);
	status = start_status[engine_start(a->sup->engine, ns, wid, type, input, &out, &id, err,
	                                   sizeof(err))];
	json_decref(input);
	if (out == NULL)
		out = error_body(err, status);
	else if (status >= 400)
		json_object_set_new(out, "status", json_integer(status));
	if (wait_ms > 0 && (status == 200 || status == 201))
		start_and_wait(a, req, wait_ms, status, out, id);
	else
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
	wf = wf_view(a, wid, err, sizeof(err));
	if (wf == NULL)
		return reply_error(req, 500, "%s", err);
	reply_after_commit(a, req, 200, wf);
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
	reply_after_commit(a, req, 200, json_pack("{s:o, s:o}", "workflow", wf, "events", events));
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
	if (wf == NULL && runs_elsewhere(a, wid)) {
		wait_elsewhere(p, timeout);
		return;
	}
	if (wf == NULL) {
		/* Closed and durable: a workflow stays in memory until the
		 * commit that closed it. One closed in this very turn is waited
		 * for below and answered after that commit. */
		wait_one_done(p, 0);
		return;
	}
	p->waiter = engine_wait(a->sup->engine, wf, timeout, wait_one_done, p);
	pending_watch(p);
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
		return pending_finish(p, 500, error_body(err, 500));
	pending_finish(p, 200,
	               json_pack("{s:b, s:i, s:o}", "timed_out", timed_out, "running",
	                         engine_running_count(p->api->sup->engine), "counts", c));
}

static void handle_wait_all(struct api *a, struct evhttp_request *req, struct query *q,
                            const char *unused)
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
	pending_watch(p);
}

static void handle_list(struct api *a, struct evhttp_request *req, struct query *q,
                        const char *unused)
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
	if ((v = query_get(q, "namespace")) != NULL && !ids_name_ok(v, CONFIG_NAME_MAX - 1))
		return reply_error(req, 400,
		                   "bad namespace=%s (allowed: 1..%d characters of A-Z a-z "
		                   "0-9 _ . -)",
		                   v, CONFIG_NAME_MAX - 1);
	if ((v = query_get(q, "prefix")) != NULL) {
		const char *after_id = query_get(q, "after_id");

		if (status != NULL || query_get(q, "after") != NULL)
			return reply_error(req, 400,
			                   "prefix= is a search by id: it takes namespace=, "
			                   "limit= and after_id= (not status= or after=)");
		if (*v == '\0' || !ids_workflow_id_ok(v, API_ID_MAX))
			return reply_error(req, 400,
			                   "bad prefix=%.140s (the start of a workflow id: 1..%d "
			                   "printable ASCII characters, no space, /, \" or \\)",
			                   v, API_ID_MAX);
		if (after_id != NULL && !ids_workflow_id_ok(after_id, API_ID_MAX))
			return reply_error(req, 400,
			                   "bad after_id=%.140s (a next_after_id value from a "
			                   "previous page)",
			                   after_id);
		list = store_search_json(a->sup->store,
		                         query_get(q, "namespace") ? query_get(q, "namespace")
		                                                   : a->sup->cfg.namespace_,
		                         v, after_id, (int)limit, err, sizeof(err));
	} else {
		list = store_list_json(a->sup->store, query_get(q, "namespace"), status, (int)limit,
		                       after, err, sizeof(err));
	}
	if (list == NULL)
		return reply_error(req, 500, "%s", err);
	reply_after_commit(a, req, 200, list);
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

/* {"spawns": N, "deaths": {"planned_kill": N, ...}}: worker processes. */
static json_t *workers_json(const struct pool_stats *m)
{
	json_t *deaths = json_object();

	for (int c = 0; c < DEATH_NCAUSES; c++)
		json_object_set_new(deaths, death_cause_name((enum death_cause)c),
		                    json_integer(m->deaths[c]));
	return json_pack("{s:I, s:o}", "spawns", (json_int_t)m->spawns, "deaths", deaths);
}

static void handle_stats(struct api *a, struct evhttp_request *req, struct query *q,
                         const char *unused)
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
	json_object_set_new(json_object_get(c, "faults"), "plan_changes",
	                    json_integer(faultctl_changes(a->sup->faultctl)));
	json_object_set_new(json_object_get(c, "faults"), "plan",
	                    json_string(faultctl_source(a->sup->faultctl)));
	json_object_set_new(c, "timeouts", timeouts_json(engine_stats(e)));
	json_object_set_new(c, "worker_deaths", json_integer(engine_stats(e)->worker_deaths));
	json_object_set_new(c, "workers", workers_json(pool_stats(a->sup->pool)));
	json_object_set_new(c, "queue_depth", json_integer(engine_stats(e)->queue_depth));
	json_object_set_new(c, "fault_seed", json_integer((json_int_t)a->sup->faults.seed));
	json_object_set_new(c, "activity_mode",
	                    json_string(a->sup->cfg.naive ? "naive" : "guarded"));
	json_object_set_new(c, "stopping", json_boolean(a->sup->stopping));
	reply(req, 200, c);
}

/* GET /v1/series?seconds=N: the last N seconds, per second (series.h). */
static void handle_series(struct api *a, struct evhttp_request *req, struct query *q,
                          const char *unused)
{
	const char *v = query_get(q, "seconds");
	long seconds = 300;
	char *end;

	if (v != NULL) {
		seconds = strtol(v, &end, 10);
		if (*v == '\0' || *end != '\0' || seconds < 1 || seconds > SERIES_LEN)
			return reply_error(req, 400, "bad seconds=%.40s (allowed: 1..%d)", v,
			                   SERIES_LEN);
	}
	reply(req, 200, series_json(a->series, (int)seconds));
}

/* GET /v1/app: what the dashboard shows of the app and this supervisor
 * (its workflow types, activities, panels, store and fault plan). */
static void handle_app_info(struct api *a, struct evhttp_request *req, struct query *q,
                            const char *unused)
{
	const struct idem_app *app = a->sup->app;
	const struct idem_config *c = &a->sup->cfg;
	json_t *types = json_array(), *acts = json_array(), *panels = json_array();

	for (const struct idem_workflow *w = app->workflows; w != NULL && w->name != NULL; w++)
		json_array_append_new(
		    types, json_pack("{s:s, s:s?}", "type", w->name, "id_field", w->id_field));
	for (const struct idem_activity *x = app->activities; x != NULL && x->name != NULL; x++)
		json_array_append_new(acts, json_string(x->name));
	for (int i = 0; app->panels != NULL && app->panels[i].title != NULL; i++) {
		const struct idem_app_panel *p = &app->panels[i];
		char path[32];

		snprintf(path, sizeof(path), "/v1/panels/%d", i);
		json_array_append_new(panels, json_pack("{s:s, s:s, s:s?}", "title", p->title,
		                                        "path", p->run != NULL ? path : p->path,
		                                        "about", p->about));
	}
	reply(req, 200,
	      json_pack("{s:s, s:s?, s:o, s:o, s:o, s:s, s:s, s:s, s:s?, s:s, s:o}", "app",
	                app->name, "summary", app->summary, "workflows", types, "activities", acts,
	                "panels", panels, "namespace", c->namespace_, "task_queue", c->taskqueue,
	                "state_store", store_shared(a->sup->store) ? "postgresql" : "sqlite",
	                "supervisor", store_run_name(a->sup->store), "activity_mode",
	                c->naive ? "naive" : "guarded", "faults",
	                faultctl_rates_json(&a->sup->faults)));
}

/* GET /v1/faults: the fault plan in force, the config's, and the latest
 * changes (faultctl.h). */
static void handle_faults(struct api *a, struct evhttp_request *req, struct query *q,
                          const char *unused)
{
	char err[512];
	json_t *doc = faultctl_json(a->sup->faultctl);
	json_t *recent = store_fault_plans_json(a->sup->store, 20, err, sizeof(err));

	if (recent == NULL) {
		json_decref(doc);
		return reply_error(req, 500, "%s", err);
	}
	json_object_set_new(doc, "recent", recent);
	reply(req, 200, doc);
}

/* PUT /v1/faults: a runtime fault plan, off, or the config's again; the
 * answer (the plan now in force) leaves once its record is committed. */
static void handle_faults_put(struct api *a, struct evhttp_request *req, struct query *q,
                              const char *unused)
{
	char err[1024];
	json_t *body = body_json(req);
	int rc;

	if (body == NULL)
		return;
	rc = faultctl_apply(a->sup->faultctl, body, err, sizeof(err));
	json_decref(body);
	if (rc == -1)
		return reply_error(req, 400, "faults: %s; nothing was changed", err);
	if (rc != 0)
		return reply_error(req, 500, "%s", err);
	reply_after_commit(a, req, 200, faultctl_json(a->sup->faultctl));
}

/* An endpoint of the app's (struct idem_app_route), on the app DB. */
static void handle_app(struct api *a, struct evhttp_request *req, const struct idem_app_route *r,
                       const char *arg)
{
	json_t *body = NULL, *out = NULL;
	char err[1024] = "";
	int status;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET && (body = body_json(req)) == NULL)
		return;
	status = r->handle(a->sup->appdb, arg, body, &out, err, sizeof(err));
	json_decref(body);
	if (status < 400 && out != NULL)
		return reply(req, status, out);
	json_decref(out);
	reply_error(req, status >= 400 ? status : 500, "%s",
	            err[0] ? err : "the app gave no answer");
}

static void handle_metrics(struct api *a, struct evhttp_request *req, struct query *q,
                           const char *unused)
{
	struct evbuffer *buf = evbuffer_new();
	char err[512];

	if (metrics_write(a->sup, buf, err, sizeof(err)) != 0) {
		evbuffer_free(buf);
		return reply_error(req, 500, "%s", err);
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	                  "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, "OK", buf);
	evbuffer_free(buf);
}

/* ---- the checker, off the loop ---------------------------------------------- */

#define CHECK_ARGS_MAX (12 + SPAWN_KEYS_MAX)
/* A check past this is killed: a file app's check command that never
 * exits would otherwise hold every later check. */
#define CHECK_TIMEOUT_MS (10 * 60 * 1000)

static void check_queue_add(struct check_queue *q, struct pending *p)
{
	if (q->n == q->cap) {
		q->cap = q->cap * 2 + 4;
		q->p = xrealloc(q->p, q->cap * sizeof(*q->p));
	}
	q->p[q->n++] = p;
}

/* Answers every request of q with status and body (each a reference)
 * and empties q. */
static void check_answer(struct check_queue *q, int status, json_t *body)
{
	struct pending **waiting = q->p;
	size_t n = q->n;

	*q = (struct check_queue){0};
	for (size_t i = 0; i < n; i++)
		pending_finish(waiting[i], status, json_incref(body));
	free(waiting);
	json_decref(body);
}

static void check_done(json_t *report, const char *err, void *arg);

/* Starts the checker for the requests in a->running: `idemctl check
 * --offline --json` beside the supervisor, on its databases and its app's
 * keys as flags, whole (no .env: the values are the ones this supervisor
 * runs with). When it cannot start, they are answered 503. */
/* Starts idemctl beside the supervisor, off the loop (offloop.h), on
 * its databases and its app's keys as flags, whole (no .env: the values
 * are the ones this supervisor runs with), with tail (the command and its
 * arguments) last. NULL with err when it cannot start. */
static struct offloop *ctl_spawn(struct api *a, const char *const *tail, offloop_done done,
                                 void *arg, char *err, size_t errlen)
{
	const struct idem_config *c = &a->sup->cfg;
	char path[CONFIG_PATH_MAX + 16], *argv[CHECK_ARGS_MAX];
	char *flags[SPAWN_KEYS_MAX] = {NULL}, *saved_env = NULL;
	int n = 0, k, env_set = 0;
	struct offloop *o;

	snprintf(path, sizeof(path), "%s/idemctl", a->sup->bindir);
	argv[n++] = "idemctl";
	argv[n++] = "--env=/dev/null";
	argv[n++] = "--json";
	argv[n++] = "--app";
	argv[n++] = (char *)c->app;
	/* A PostgreSQL URL may hold a password: it goes through the
	 * environment, which only this user can read, not through argv,
	 * which anyone's ps shows. */
	if (pgconn_is_url(c->state_database)) {
		const char *had = getenv("STATE_DATABASE");

		saved_env = had != NULL ? xstrdup(had) : NULL;
		setenv("STATE_DATABASE", c->state_database, 1);
		env_set = 1;
	} else {
		argv[n++] = "--state-database";
		argv[n++] = (char *)c->state_database;
	}
	if (!pgconn_is_url(c->database)) { /* else in the environment: main.c */
		argv[n++] = "--database";
		argv[n++] = (char *)c->database;
	}
	k = n;
	n = spawn_app_flags(c, a->sup->app, argv, n, flags);
	k = n - k;
	for (int i = 0; tail[i] != NULL && n < CHECK_ARGS_MAX - 1; i++)
		argv[n++] = (char *)tail[i];
	argv[n] = NULL;
	o = offloop_spawn(a->sup->base, path, argv, done, arg, err, errlen);
	/* Only this child gets it: workers and helpers started later must
	 * not inherit a password. */
	if (env_set) {
		if (saved_env != NULL)
			setenv("STATE_DATABASE", saved_env, 1);
		else
			unsetenv("STATE_DATABASE");
		free(saved_env);
	}
	for (int i = 0; i < k; i++)
		free(flags[i]);
	return o;
}

/* Starts the checker for the requests in a->running: `idemctl check
 * --offline --json` (ctl_spawn). When it cannot start, they are answered
 * 503. */
static void check_start(struct api *a)
{
	static const char *const tail[] = {"check", "--offline", NULL};
	char err[512], msg[1024];

	a->check = ctl_spawn(a, tail, check_done, a, err, sizeof(err));
	if (a->check == NULL) {
		snprintf(msg, sizeof(msg),
		         "check: %s (the checker is idemctl, beside idem-supervisor); try again",
		         err);
		check_answer(&a->running, 503, error_body(msg, 503));
		return;
	}
	timer_in(a->check_timer, CHECK_TIMEOUT_MS);
	log_debug("checker started", "pid=%ld", (long)offloop_pid(a->check));
}

/* The requests that came while a check ran: their own check, whose
 * snapshot is taken after they came. */
static void check_next(struct api *a)
{
	if (a->next.n == 0 || a->sup->stopping)
		return;
	a->running = a->next;
	a->next = (struct check_queue){0};
	check_start(a);
}

/* Answers every request waiting on the check that ended, then starts the
 * next one. */
static void check_done(json_t *report, const char *err, void *arg)
{
	struct api *a = arg;
	char msg[1024];

	a->check = NULL;
	evtimer_del(a->check_timer);
	if (report != NULL && !json_is_object(json_object_get(report, "counts"))) {
		json_decref(report);
		report = NULL;
		err = "idemctl printed no check report";
	}
	if (report != NULL) {
		check_answer(&a->running, 200, report);
	} else {
		/* idemctl's line is "idemctl: check: WHY" */
		if (strncmp(err, "idemctl: ", 9) == 0)
			err += 9;
		snprintf(msg, sizeof(msg), "%s%s",
		         strncmp(err, "check: ", 7) == 0 ? "" : "check: ", err);
		log_warn("the checker failed", "error=\"%s\"", msg);
		check_answer(&a->running, 500, error_body(msg, 500));
	}
	check_next(a);
}

static void check_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct api *a = arg;
	char msg[160];

	(void)fd;
	(void)what;
	offloop_cancel(a->check);
	a->check = NULL;
	snprintf(msg, sizeof(msg), "check: the checker ran for more than %d minutes; it was killed",
	         CHECK_TIMEOUT_MS / 60000);
	log_warn("the checker ran too long; killed", "limit_ms=%d", CHECK_TIMEOUT_MS);
	check_answer(&a->running, 504, error_body(msg, 504));
	check_next(a);
}

/* The invariants over what is committed. The checker reads the whole
 * history, so it runs in a program of its own (offloop.h) and the loop
 * goes on. A request waits for a check that starts after it came: the
 * one it starts, or, while one runs, the next, which the requests that
 * came meanwhile share. 200 whether they hold or not: the report says. */
static void handle_check(struct api *a, struct evhttp_request *req, struct query *q,
                         const char *unused)
{
	check_queue_add(a->check != NULL ? &a->next : &a->running, pending_new(a, req));
	if (a->check == NULL)
		check_start(a);
}

/* ---- an app's panels made by a command ---------------------------------------- */

/* Longer than the file app's own limit on a panel's command (10 s), so
 * that its error, which names the command, is what a request gets. */
#define PANEL_TIMEOUT_MS (30 * 1000)

static void panel_done(json_t *doc, const char *err, void *arg)
{
	struct panel_run *pr = arg;
	char msg[1200];

	pr->o = NULL;
	evtimer_del(pr->timer);
	if (doc != NULL)
		return check_answer(&pr->waiting, 200, doc);
	if (strncmp(err, "idemctl: ", 9) == 0) /* idemctl's line: "idemctl: panel: WHY" */
		err += 9;
	snprintf(msg, sizeof(msg), "%s", err);
	log_warn("an app's panel failed", "panel=%d error=\"%s\"", pr->index, msg);
	check_answer(&pr->waiting, 500, error_body(msg, 500));
}

static void panel_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct panel_run *pr = arg;
	char msg[160];

	(void)fd;
	(void)what;
	offloop_cancel(pr->o);
	pr->o = NULL;
	snprintf(msg, sizeof(msg), "panel %d: its command ran for more than %d s; it was killed",
	         pr->index, PANEL_TIMEOUT_MS / 1000);
	check_answer(&pr->waiting, 504, error_body(msg, 504));
}

/* GET /v1/panels/N: an app's panel that its command makes (the dashboard
 * asks every few seconds while the overview is open). */
static void handle_panel(struct api *a, struct evhttp_request *req, struct query *q, const char *id)
{
	char *end, err[512], msg[700], index[16];
	long n = strtol(id, &end, 10);
	const struct idem_app_panel *p;
	struct panel_run *pr;
	const char *tail[] = {"panel", index, "--offline", NULL};

	if (*id == '\0' || *end != '\0' || n < 0 || n >= a->npanels)
		return reply_error(req, 404,
		                   "no panel \"%.40s\": the app %s has %d (GET /v1/app lists them)",
		                   id, a->sup->app->name, a->npanels);
	p = &a->sup->app->panels[n];
	if (p->run == NULL)
		return reply_error(req, 404, "panel %ld (%s) is served at %s", n, p->title,
		                   p->path);
	pr = &a->panels[n];
	check_queue_add(&pr->waiting, pending_new(a, req));
	if (pr->o != NULL)
		return;
	snprintf(index, sizeof(index), "%ld", n);
	pr->o = ctl_spawn(a, tail, panel_done, pr, err, sizeof(err));
	if (pr->o == NULL) {
		snprintf(msg, sizeof(msg),
		         "panel %ld: %s (panels are made by idemctl, beside "
		         "idem-supervisor); try again",
		         n, err);
		return check_answer(&pr->waiting, 503, error_body(msg, 503));
	}
	timer_in(pr->timer, PANEL_TIMEOUT_MS);
}

static void panels_new(struct api *a)
{
	const struct idem_app_panel *p = a->sup->app->panels;

	while (p != NULL && p[a->npanels].title != NULL)
		a->npanels++;
	a->panels = xcalloc((size_t)a->npanels + 1, sizeof(*a->panels));
	for (int i = 0; i < a->npanels; i++) {
		a->panels[i].api = a;
		a->panels[i].index = i;
		a->panels[i].timer = evtimer_new(a->sup->base, panel_timeout_cb, &a->panels[i]);
	}
}

static void panels_free(struct api *a)
{
	for (int i = 0; i < a->npanels; i++) {
		struct panel_run *pr = &a->panels[i];

		offloop_cancel(pr->o);
		check_answer(
		    &pr->waiting, 503,
		    error_body("panel: the supervisor is stopping; ask the next one", 503));
		event_free(pr->timer);
	}
	free(a->panels);
}

/* ---- request clocks ------------------------------------------------------ */

/* libevent 2.1's read timeout starts again at every read, so a client that
 * sends its request a byte every few seconds would keep its connection, and
 * a descriptor, for as long as the header and body limits allow: hours.
 * (libevent 2.2 has evhttp_set_newreqcb for this; 2.1 does not.) So each
 * connection's input buffer is watched: a request's clock starts with its
 * first byte and stops when the request is whole (route); a byte that
 * arrives more than API_REQUEST_TIMEOUT after the first is dropped with
 * what came before it, the client gets a 408 that names the limit, and the
 * socket is shut down, which evhttp reads as EOF and frees the connection.
 * libevent 2.1 does not say when it frees a connection, so clocks are kept
 * by descriptor and the socket's inode tells a new connection from the one
 * that held the descriptor before. */
static struct api *listening_api;

static struct req_clock *req_clock(struct api *a, evutil_socket_t fd)
{
	if (fd < 0)
		return NULL;
	if ((size_t)fd >= a->nclocks) {
		size_t n = a->nclocks ? a->nclocks : 64;
		struct req_clock *c;

		while (n <= (size_t)fd)
			n *= 2;
		c = xrealloc(a->clocks, n * sizeof(*c));
		for (size_t i = a->nclocks; i < n; i++)
			c[i] = (struct req_clock){0, CLOCK_IDLE};
		a->clocks = c;
		a->nclocks = n;
	}
	return &a->clocks[fd];
}

static void request_too_slow(struct api *a, struct bufferevent *bev, struct evbuffer *in,
                             evutil_socket_t fd, int64_t took_ms)
{
	int64_t limit = a->sup->cfg.api_request_timeout_ms;
	char msg[512];
	int n;

	a->stats.request_timeouts++;
	log_warn("control API: a request was not in within API_REQUEST_TIMEOUT; closing its "
	         "connection",
	         "fd=%d took_ms=%lld limit_ms=%lld bytes=%zu", (int)fd, (long long)took_ms,
	         (long long)limit, evbuffer_get_length(in));
	evbuffer_drain(in, evbuffer_get_length(in));
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
		char body[256];
		int blen = snprintf(body, sizeof(body),
		                    "{\"error\":\"request not complete within %lld%s of its first "
		                    "byte (API_REQUEST_TIMEOUT): send the whole request at once\","
		                    "\"status\":408}\n",
		                    (long long)(limit % 1000 ? limit : limit / 1000),
		                    limit % 1000 ? "ms" : "s");

		n = snprintf(msg, sizeof(msg),
		             "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
		             "Connection: close\r\nContent-Length: %d\r\n\r\n%s",
		             blen, body);
		(void)send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	shutdown(fd, SHUT_RDWR);
}

/* Runs inside evbuffer_read, before evhttp parses what came: what it
 * drains, evhttp never sees. A read takes at most 4 KiB, so after a 408
 * the connection stays cut: bytes still in the socket (Linux delivers them
 * after the shutdown) are dropped too, until evhttp reads EOF. */
static void req_clock_cb(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg)
{
	struct bufferevent *bev = arg;
	struct api *a = listening_api;
	evutil_socket_t fd = bufferevent_getfd(bev);
	struct req_clock *c;
	struct stat st;
	int64_t now;

	if (info->n_added == 0 || a == NULL || fstat(fd, &st) != 0 || !(c = req_clock(a, fd)))
		return;
	now = clock_mono_ms();
	if (c->ino != st.st_ino) {
		c->ino = st.st_ino;
		c->start_ms = now;
	} else if (c->start_ms == CLOCK_CUT) {
		evbuffer_drain(in, evbuffer_get_length(in));
	} else if (c->start_ms == CLOCK_IDLE) {
		c->start_ms = now;
	} else if (now - c->start_ms > a->sup->cfg.api_request_timeout_ms) {
		int64_t took = now - c->start_ms;

		c->start_ms = CLOCK_CUT;
		request_too_slow(a, bev, in, fd, took);
	}
}

/* evhttp's bufferevent for a new connection, as evhttp makes it, with the
 * request clock on its input. */
static struct bufferevent *api_bevcb(struct event_base *base, void *arg)
{
	struct bufferevent *bev = bufferevent_socket_new(base, -1, 0);

	(void)arg;
	if (bev != NULL && evbuffer_add_cb(bufferevent_get_input(bev), req_clock_cb, bev) == NULL) {
		bufferevent_free(bev);
		return NULL;
	}
	return bev;
}

/* The request is whole: its clock stops. */
static void req_clock_stop(struct api *a, struct evhttp_request *req)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
	struct req_clock *c = bev ? req_clock(a, bufferevent_getfd(bev)) : NULL;

	if (c != NULL && c->start_ms != CLOCK_CUT)
		c->start_ms = CLOCK_IDLE;
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

static void handle_health(struct api *a, struct evhttp_request *req, struct query *q,
                          const char *unused)
{
	reply(req, 200, json_pack("{s:b, s:b}", "ok", 1, "stopping", a->sup->stopping));
}

typedef void (*handler_fn)(struct api *a, struct evhttp_request *req, struct query *q,
                           const char *id);

/* The endpoints, one line per path and method. A path segment in capitals
 * (ID, PRODUCT) stands for any one segment, which the handler gets as id.
 * An endpoint asked with a method it lacks answers 405 with Allow. */
/* Over TCP (below, with the browser checks). */
static void handle_login(struct api *a, struct evhttp_request *req, struct query *q,
                         const char *unused);
static void handle_logout(struct api *a, struct evhttp_request *req, struct query *q,
                          const char *unused);

static const struct endpoint {
	const char *path;
	enum evhttp_cmd_type method;
	handler_fn fn;
} endpoints[] = {
    {"/v1/workflows", EVHTTP_REQ_GET, handle_list},
    {"/v1/workflows", EVHTTP_REQ_POST, handle_start},
    {"/v1/workflows/ID", EVHTTP_REQ_GET, handle_get},
    {"/v1/workflows/ID/history", EVHTTP_REQ_GET, handle_history},
    {"/v1/workflows/ID/wait", EVHTTP_REQ_GET, handle_wait},
    {"/v1/wait", EVHTTP_REQ_GET, handle_wait_all},
    {"/v1/stats", EVHTTP_REQ_GET, handle_stats},
    {"/v1/check", EVHTTP_REQ_GET, handle_check},
    {"/v1/health", EVHTTP_REQ_GET, handle_health},
    {"/v1/series", EVHTTP_REQ_GET, handle_series},
    {"/v1/app", EVHTTP_REQ_GET, handle_app_info},
    {"/v1/panels/ID", EVHTTP_REQ_GET, handle_panel},
    {"/v1/faults", EVHTTP_REQ_GET, handle_faults},
    {"/v1/faults", EVHTTP_REQ_PUT, handle_faults_put},
    {"/v1/login", EVHTTP_REQ_POST, handle_login},
    {"/v1/logout", EVHTTP_REQ_POST, handle_logout},
    {"/metrics", EVHTTP_REQ_GET, handle_metrics},
};

/* The methods libevent 2.1 knows. evhttp reads no body for HEAD, TRACE
 * and a method it does not know: bytes sent as one would be read as the
 * next request, so the answer to those closes the connection. */
static const struct method {
	enum evhttp_cmd_type cmd;
	const char *name;
	int has_body;
} methods[] = {
    {EVHTTP_REQ_GET, "GET", 1},       {EVHTTP_REQ_POST, "POST", 1},
    {EVHTTP_REQ_PUT, "PUT", 1},       {EVHTTP_REQ_HEAD, "HEAD", 0},
    {EVHTTP_REQ_DELETE, "DELETE", 1}, {EVHTTP_REQ_OPTIONS, "OPTIONS", 1},
    {EVHTTP_REQ_TRACE, "TRACE", 0},   {EVHTTP_REQ_CONNECT, "CONNECT", 1},
    {EVHTTP_REQ_PATCH, "PATCH", 1},
};

static const struct method *method_find(enum evhttp_cmd_type cmd)
{
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (methods[i].cmd == cmd)
			return &methods[i];
	return NULL;
}

/* Whether the n segments match pattern; *id is the one a placeholder
 * matched. */
static int path_match(const char *pattern, char seg[4][API_ID_MAX * 3 + 1], int n, const char **id)
{
	const char *p = pattern + 1;
	int i = 0;

	for (; *p != '\0'; i++) {
		size_t len = strcspn(p, "/");

		if (i >= n)
			return 0;
		if (*p >= 'A' && *p <= 'Z')
			*id = seg[i];
		else if (strlen(seg[i]) != len || strncmp(seg[i], p, len) != 0)
			return 0;
		p += len + (p[len] == '/');
	}
	return i == n;
}

/* "GET, POST": the methods in mask, in the table's order. */
static void methods_text(unsigned mask, char *buf, size_t len)
{
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (mask & methods[i].cmd)
			snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", buf[0] ? ", " : "",
			         methods[i].name);
}

static void reply_not_allowed(struct evhttp_request *req, const struct method *m, const char *path,
                              unsigned allowed)
{
	char allow[64];

	methods_text(allowed, allow, sizeof(allow));
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
	reply_error(req, 405, "method %s is not allowed on %s: use %s", m->name, path, allow);
}

static void reply_not_found(struct evhttp_request *req, char seg[4][API_ID_MAX * 3 + 1], int n,
                            const char *path)
{
	if (n >= 2 && strcmp(seg[0], "v1") == 0 && strcmp(seg[1], "workflows") == 0)
		reply_error(req, 404, "no such endpoint (try /v1/workflows/ID, /history or /wait)");
	else if (n < 2 || strcmp(seg[0], "v1") != 0)
		reply_error(req, 404, "no such endpoint \"%s\" (the API lives under /v1)", path);
	else
		reply_error(req, 404, "no such endpoint \"%s\"", path);
}

/* The endpoint for the path (split in n segments) and method, or NULL
 * after a 404 or 405. */
/* The method called name ("GET"), or NULL. */
static const struct method *method_named(const char *name)
{
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strcmp(methods[i].name, name) == 0)
			return &methods[i];
	return NULL;
}

/* What route() calls for an app's endpoint (*route says which). */
static const struct endpoint app_endpoint = {"", 0, NULL};

/* The endpoint of idem's, or the app's (*route), that path and the
 * method name; NULL after a 404 or a 405. */
static const struct endpoint *endpoint_find(struct api *a, struct evhttp_request *req,
                                            const struct method *m, const char *path,
                                            char seg[4][API_ID_MAX * 3 + 1], int n, const char **id,
                                            const struct idem_app_route **route)
{
	unsigned allowed = 0;
	const char *shown = NULL;

	for (size_t i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); i++) {
		if (!path_match(endpoints[i].path, seg, n, id))
			continue;
		if (endpoints[i].method == m->cmd)
			return &endpoints[i];
		allowed |= endpoints[i].method;
		shown = endpoints[i].path;
	}
	for (const struct idem_app_route *r = a->sup->app->routes; r != NULL && r->path != NULL;
	     r++) {
		const struct method *rm = method_named(r->method);

		if (rm == NULL || !path_match(r->path, seg, n, id))
			continue;
		if (rm->cmd == m->cmd) {
			*route = r;
			return &app_endpoint;
		}
		allowed |= rm->cmd;
		shown = r->path;
	}
	if (allowed != 0)
		reply_not_allowed(req, m, shown, allowed);
	else
		reply_not_found(req, seg, n, path);
	return NULL;
}

/* ---- browsers ----------------------------------------------------------------------- */

/* Whether req came over HTTP_LISTEN (TCP), where a browser can reach the
 * API; the Unix socket is out of a web page's reach. */
static int over_tcp(struct evhttp_request *req)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	const struct sockaddr *sa = conn != NULL ? evhttp_connection_get_addr(conn) : NULL;

	return sa != NULL && (sa->sa_family == AF_INET || sa->sa_family == AF_INET6);
}

/* Whether text is one of this supervisor's loopback names with its port:
 * "localhost:PORT", "127.0.0.1:PORT" or "[::1]:PORT" (the port may be left
 * out when it is 80). */
static int own_authority(const struct api *a, const char *text, size_t len)
{
	static const char *const names[] = {"localhost", "127.0.0.1", "[::1]"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t n = strlen(names[i]);
		char port[16];

		if (len < n || strncasecmp(text, names[i], n) != 0)
			continue;
		if (len == n)
			return a->tcp_port == 80;
		snprintf(port, sizeof(port), ":%d", a->tcp_port);
		if (len - n == strlen(port) && strncmp(text + n, port, len - n) == 0)
			return 1;
	}
	return 0;
}

/* What keeps a web page on another origin from using the API through a
 * user's browser (DNS rebinding, CSRF), over TCP only: the Host must be
 * this supervisor's loopback address, an Origin must be its own (and a
 * browser's Sec-Fetch-Site must not say another site), and a change must
 * be sent as application/json, which a cross-origin page can
 * only send after a CORS preflight that idem never grants (no
 * Access-Control-Allow-* header is ever sent; OPTIONS is not served).
 * Returns 1 to go on, or 0 after the refusal. */
static int browser_safe(struct api *a, struct evhttp_request *req, const struct method *m,
                        const char *path)
{
	const struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	const char *host = evhttp_find_header(h, "Host");
	const char *origin = evhttp_find_header(h, "Origin");
	const char *type = evhttp_find_header(h, "Content-Type");
	const char *site = evhttp_find_header(h, "Sec-Fetch-Site");
	const char *mode = evhttp_find_header(h, "Sec-Fetch-Mode");

	if (!over_tcp(req))
		return 1;
	if (host == NULL || !own_authority(a, host, strlen(host))) {
		reply_error(req, 403,
		            "Host \"%.100s\" is not this supervisor's address (HTTP_LISTEN=%s): "
		            "over TCP idem answers requests for localhost, 127.0.0.1 or [::1] at "
		            "port %d only, so that a web page whose name now points here (DNS "
		            "rebinding) cannot use it",
		            host != NULL ? host : "", a->sup->cfg.http_listen, a->tcp_port);
		return 0;
	}
	/* A page elsewhere can still make a browser send a GET without an
	 * Origin (<img src>, <script src>): browsers say where it comes from
	 * in Sec-Fetch-Site. Only a link to the dashboard's page may come
	 * from another site: it starts nothing. */
	if (site != NULL && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0 &&
	    !(m->cmd == EVHTTP_REQ_GET && ui_find(path) != NULL && mode != NULL &&
	      strcmp(mode, "navigate") == 0)) {
		reply_error(req, 403,
		            "cross-site request refused (Sec-Fetch-Site: %.40s): a web page "
		            "elsewhere may not use the control API through a user's browser",
		            site);
		return 0;
	}
	if (origin != NULL && (strncmp(origin, "http://", 7) != 0 ||
	                       !own_authority(a, origin + 7, strlen(origin + 7)))) {
		reply_error(req, 403,
		            "cross-origin request refused: Origin \"%.100s\" is not this "
		            "supervisor's (http://%s); a web page elsewhere may not use the "
		            "control API through a user's browser",
		            origin, a->sup->cfg.http_listen);
		return 0;
	}
	if ((m->cmd & (EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH)) &&
	    (type == NULL || strncasecmp(type, "application/json", 16) != 0 ||
	     (type[16] != '\0' && type[16] != ';' && type[16] != ' '))) {
		reply_error(req, 415,
		            "a %s over TCP must be sent with Content-Type: application/json (got "
		            "\"%.60s\"); nothing was changed",
		            m->name, type != NULL ? type : "none");
		return 0;
	}
	return 1;
}

/* The dashboard's cookie: one name per port, for the supervisors of one
 * machine share the name localhost. */
static void cookie_name(const struct api *a, char *buf, size_t len)
{
	snprintf(buf, len, "idem_session_%d", a->tcp_port);
}

/* The value of cookie name in a Cookie header, or -1. */
static int cookie_value(const char *header, const char *name, char *out, size_t len)
{
	size_t n = strlen(name);

	for (const char *p = header; p != NULL && *p != '\0'; p = strchr(p, ';')) {
		size_t v;

		while (*p == ';' || *p == ' ')
			p++;
		if (strncmp(p, name, n) != 0 || p[n] != '=')
			continue;
		p += n + 1;
		v = strcspn(p, "; ");
		if (v >= len)
			return -1;
		memcpy(out, p, v);
		out[v] = '\0';
		return 0;
	}
	return -1;
}

/* Whether req may use the API: over TCP it must carry HTTP_LISTEN's token
 * as Authorization: Bearer TOKEN, or the dashboard's cookie naming a
 * session that POST /v1/login started. */
static int authorized(const struct api *a, struct evhttp_request *req)
{
	const struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	const char *auth = evhttp_find_header(h, "Authorization");
	const char *cookie = evhttp_find_header(h, "Cookie");
	char got[TOKEN_MAX + 1], name[32];

	if (a->token[0] == '\0' || !over_tcp(req))
		return 1;
	if (auth != NULL && strncasecmp(auth, "Bearer ", 7) == 0 && strlen(auth + 7) <= TOKEN_MAX)
		return token_equal(auth + 7, a->token);
	cookie_name(a, name, sizeof(name));
	return cookie != NULL && cookie_value(cookie, name, got, sizeof(got)) == 0 &&
	       session_valid(&a->sessions, got, clock_mono_ms());
}

static void reply_unauthorized(struct api *a, struct evhttp_request *req)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
	                  "Bearer realm=\"idem\"");
	reply_error(req, 401,
	            "this TCP listener needs the control API's token: send Authorization: Bearer "
	            "TOKEN, with the token from API_TOKEN_FILE (%s) on the supervisor's machine "
	            "(idemctl --http reads it there; the dashboard asks for it)",
	            a->sup->cfg.api_token_file);
}

/* POST /v1/login {"token": T}: the dashboard's way in. The token buys a
 * session (session.h), whose id comes back as an HttpOnly, SameSite=Strict
 * cookie: the page's scripts cannot read it, and no request a page of
 * another site starts carries it. A browser keeps cookies per host, not
 * per port: a page of another port of localhost (the same site) is sent
 * it, which docs/api.md says; it is not the token, and it ends. */
static void handle_login(struct api *a, struct evhttp_request *req, struct query *q,
                         const char *unused)
{
	json_t *body;
	const char *t;
	char name[32], id[TOKEN_RANDOM_LEN + 1], cookie[TOKEN_RANDOM_LEN + 128];

	if (a->token[0] == '\0' || !over_tcp(req))
		return reply_error(req, 400,
		                   "no token is asked here (the Unix socket, or HTTP_LISTEN with "
		                   "API_TOKEN_FILE=none)");
	if ((body = body_json(req)) == NULL)
		return;
	t = json_string_value(json_object_get(body, "token"));
	if (t == NULL) {
		json_decref(body);
		return reply_error(req, 400, "send {\"token\": \"...\"}");
	}
	if (strlen(t) > TOKEN_MAX || !token_equal(t, a->token)) {
		json_decref(body);
		return reply_error(
		    req, 401,
		    "wrong token: it is the first line of API_TOKEN_FILE (%s) on the "
		    "supervisor's machine",
		    a->sup->cfg.api_token_file);
	}
	json_decref(body);
	if (session_new(&a->sessions, clock_mono_ms(), id) != 0)
		return reply_error(req, 500, "no random bytes for a session: %s", strerror(errno));
	cookie_name(a, name, sizeof(name));
	snprintf(cookie, sizeof(cookie), "%s=%s; Max-Age=%lld; HttpOnly; SameSite=Strict; Path=/",
	         name, id, SESSION_TTL_MS / 1000);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Set-Cookie", cookie);
	reply(
	    req, 200,
	    json_pack("{s:b, s:I}", "ok", 1, "expires_in_s", (json_int_t)(SESSION_TTL_MS / 1000)));
}

/* POST /v1/logout: ends the dashboard's session and forgets its cookie. */
static void handle_logout(struct api *a, struct evhttp_request *req, struct query *q,
                          const char *unused)
{
	const char *sent = evhttp_find_header(evhttp_request_get_input_headers(req), "Cookie");
	char name[32], cookie[96], id[TOKEN_RANDOM_LEN + 1];

	cookie_name(a, name, sizeof(name));
	if (sent != NULL && cookie_value(sent, name, id, sizeof(id)) == 0)
		session_end(&a->sessions, id);
	snprintf(cookie, sizeof(cookie), "%s=; Max-Age=0; HttpOnly; SameSite=Strict; Path=/", name);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Set-Cookie", cookie);
	reply(req, 200, json_pack("{s:b}", "ok", 1));
}

static void route(struct evhttp_request *req, void *arg)
{
	struct api *a = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = evhttp_uri_get_path(uri), *qs = evhttp_uri_get_query(uri), *id = "";
	const struct method *m = method_find(evhttp_request_get_command(req));
	char seg[4][API_ID_MAX * 3 + 1];
	int n = split_path(path ? path : "/", seg);
	const struct endpoint *ep;
	const struct idem_app_route *app_route = NULL;
	const struct ui_asset *asset;
	struct query q;

	req_clock_stop(a, req);
	if (m == NULL || !m->has_body)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
	if (m == NULL)
		return reply_error(req, 501,
		                   "method not implemented: the control API answers GET, POST and "
		                   "PUT");
	if (!browser_safe(a, req, m, path ? path : "/"))
		return;
	if (m->cmd == EVHTTP_REQ_GET && (asset = ui_find(path ? path : "/")) != NULL)
		return ui_send(req, asset);
	/* Login is how one gets in; logout ends only the session its own
	 * cookie names, and must also forget a cookie whose session has
	 * already ended (a restart, its time). */
	if (!authorized(a, req) &&
	    !(m->cmd == EVHTTP_REQ_POST && path != NULL &&
	      (strcmp(path, "/v1/login") == 0 || strcmp(path, "/v1/logout") == 0)))
		return reply_unauthorized(a, req);
	if ((ep = endpoint_find(a, req, m, path ? path : "/", seg, n, &id, &app_route)) == NULL)
		return;
	TAILQ_INIT(&q.kv);
	if (qs != NULL && evhttp_parse_query_str(qs, &q.kv) != 0)
		reply_error(req, 400, "bad query string \"%s\"", qs);
	else if (ep == &app_endpoint)
		handle_app(a, req, app_route, id);
	else
		ep->fn(a, req, &q, id);
	evhttp_clear_headers(&q.kv);
}

/* ---- listening ---------------------------------------------------------------------- */

/* Whether something listens on sa. A supervisor just killed can leave its
 * listening socket for a moment to a child of its between fork and exec
 * (the descriptor is CLOEXEC): only a listener that stays is a live one. */
static int unix_in_use(const struct sockaddr_un *sa)
{
	for (int waited = 0;; waited += API_STALE_POLL_MS) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		int live = fd >= 0 && (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 ||
		                       errno == EAGAIN);

		if (fd >= 0)
			close(fd);
		if (!live)
			return 0;
		if (waited >= API_STALE_WAIT_MS)
			return 1;
		usleep(API_STALE_POLL_MS * 1000);
	}
}

/* Binds the Unix socket, refusing to steal one a live supervisor answers on. */
/* Who may use the control socket: its user alone (0600), or with
 * SOCKET_GROUP that group too (0660, the group's). The group may then
 * pass through the socket's directory (g+x, not g+r: it cannot list the
 * databases beside it) when that is the 0700 directory the supervisor
 * made (umask 077: main.c); any other directory is the operator's, and
 * is left as it is. Called once the socket listens: until then it is
 * 0700 (the umask), its user's alone. */
static int socket_access(const char *path, const char *group, char *err, size_t errlen)
{
	char dir[CONFIG_PATH_MAX], *slash;
	const struct group *g;
	struct stat st;
	int fd;

	if (group[0] == '\0') {
		if (chmod(path, 0600) == 0)
			return 0;
		snprintf(err, errlen, "SOCKET=%s: cannot make it 0600: %s", path, strerror(errno));
		return -1;
	}
	if ((g = getgrnam(group)) == NULL || chown(path, (uid_t)-1, g->gr_gid) != 0 ||
	    chmod(path, 0660) != 0) {
		snprintf(err, errlen,
		         "SOCKET_GROUP=%s: cannot give SOCKET=%s to it: %s (the supervisor's user "
		         "must be a member of the group)",
		         group, path, g == NULL ? "no such group" : strerror(errno));
		return -1;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0 || st.st_uid != geteuid() ||
	    (st.st_mode & 07777) != 0700) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	if (fchown(fd, (uid_t)-1, g->gr_gid) != 0 || fchmod(fd, 0710) != 0) {
		snprintf(err, errlen, "SOCKET_GROUP=%s: cannot let it into %s: %s", group, dir,
		         strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int listen_unix(const char *path, const char *group, char *err, size_t errlen)
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
	if (unix_in_use(&sa)) {
		snprintf(err, errlen,
		         "SOCKET=%s is in use by another idem-supervisor; stop it "
		         "or choose another SOCKET",
		         path);
		close(fd);
		return -1;
	}
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(fd, API_LISTEN_BACKLOG) != 0)
		goto fail;
	if (socket_access(path, group, err, errlen) != 0) {
		close(fd);
		unlink(path);
		return -1;
	}
	return fd;
fail:
	snprintf(err, errlen, "cannot listen on SOCKET=%s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

/* Out of descriptors, accept() fails and leaves the connection in the
 * backlog, and the listener fires again at once, forever. So a descriptor
 * is kept in reserve: given up, it lets the connection be accepted and
 * closed (its client sees the close instead of hanging), then it is taken
 * back. The connections already open are served as usual. One log line
 * when a shortage starts, one when descriptors are free again. */
static void fd_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct api *a = arg;
	int spare = a->reserve_fd >= 0 ? fcntl(a->reserve_fd, F_DUPFD_CLOEXEC, 0) : -1;

	if (a->reserve_fd < 0)
		a->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (spare < 0) {
		timer_in(a->fd_timer, API_FD_RETRY_MS);
		return;
	}
	close(spare);
	for (int i = 0; a->paused && i < a->nlisteners; i++)
		evconnlistener_enable(a->listeners[i]);
	a->paused = 0;
	if (a->fd_short)
		log_info("control API: file descriptors available again", "refused=%ld",
		         a->refused);
	a->fd_short = 0;
	a->refused = 0;
}

/* The listeners' error callback gets evhttp's argument, not ours: it uses
 * listening_api, the one control API of the process. */

static void accept_error_cb(struct evconnlistener *lev, void *arg)
{
	struct api *a = listening_api;
	int err = EVUTIL_SOCKET_ERROR(), fd;

	if (!a->fd_short)
		log_error(err == EMFILE || err == ENFILE
		              ? "control API: out of file descriptors; refusing new connections "
		                "until some are free (raise ulimit -n)"
		              : "control API: accept failed; refusing new connections for now",
		          "error=\"%s\"", strerror(err));
	a->fd_short = 1;
	a->refused++;
	if (a->reserve_fd >= 0)
		close(a->reserve_fd);
	fd = accept4(evconnlistener_get_fd(lev), NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0)
		close(fd);
	a->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || a->reserve_fd < 0) {
		/* Nothing to give up, or accept() fails for another reason:
		 * rather than spin, stop listening for a while. */
		for (int i = 0; i < a->nlisteners; i++)
			evconnlistener_disable(a->listeners[i]);
		a->paused = 1;
	}
	timer_in(a->fd_timer, API_FD_RETRY_MS);
}

static int api_listener(struct api *a, struct evhttp_bound_socket *bound)
{
	struct evconnlistener *lev = bound ? evhttp_bound_socket_get_listener(bound) : NULL;

	if (lev == NULL)
		return -1;
	listening_api = a;
	evconnlistener_set_error_cb(lev, accept_error_cb);
	a->listeners[a->nlisteners++] = lev;
	return 0;
}

/* HTTP_LISTEN's token (API_TOKEN_FILE), made at the first start. */
static int token_setup(struct api *a, char *err, size_t errlen)
{
	const char *path = a->sup->cfg.api_token_file;
	int made = 0;

	if (strcmp(path, TOKEN_OFF) == 0) {
		log_warn("the TCP listener asks no token (API_TOKEN_FILE=none): every user of this "
		         "machine may use the control API on HTTP_LISTEN",
		         "http=%s", a->sup->cfg.http_listen);
		return 0;
	}
	if (token_load(path, 1, a->token, &made, err, errlen) != 0)
		return -1;
	if (made)
		log_info("made the control API's token for HTTP_LISTEN (give it to who may use it)",
		         "file=%s", path);
	return 0;
}

int api_start(struct sup *sup, struct api **out, char *err, size_t errlen)
{
	struct api *a = xcalloc(1, sizeof(*a));

	a->sup = sup;
	a->unix_fd = -1;
	a->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	a->fd_timer = evtimer_new(sup->base, fd_timer_cb, a);
	a->check_timer = evtimer_new(sup->base, check_timeout_cb, a);
	a->series = series_new(sup);
	panels_new(a);
	a->http = evhttp_new(sup->base);
	evhttp_set_max_body_size(a->http, (ev_ssize_t)sup->cfg.max_body);
	evhttp_set_max_headers_size(a->http, API_MAX_HEADERS);
	/* Every method, the ones libevent does not know included (its
	 * EVHTTP_REQ_UNKNOWN_, 1 << 15 in 2.1): route() answers them in JSON
	 * (405 with Allow, or 501) where libevent would send its HTML 501. */
	evhttp_set_allowed_methods(a->http, 0xffff);
	evhttp_set_timeout(a->http, API_IO_TIMEOUT_S);
	evhttp_set_gencb(a->http, route, a);
	evhttp_set_bevcb(a->http, api_bevcb, a);
	listening_api = a;
	a->unix_fd = listen_unix(sup->cfg.socket, sup->cfg.socket_group, err, errlen);
	if (a->unix_fd < 0 ||
	    api_listener(a, evhttp_accept_socket_with_handle(a->http, a->unix_fd)) != 0)
		goto fail;
	if (sup->cfg.http_listen[0] != '\0' && token_setup(a, err, errlen) != 0)
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
		struct evhttp_bound_socket *bound =
		    evhttp_bind_socket_with_handle(a->http, host, (ev_uint16_t)port);
		struct sockaddr_storage ss;
		socklen_t sslen = sizeof(ss);

		if (api_listener(a, bound) != 0) {
			snprintf(err, errlen, "cannot listen on HTTP_LISTEN=%s: %s",
			         sup->cfg.http_listen, strerror(errno));
			goto fail;
		}
		/* the port as bound (HTTP_LISTEN may say 0): what Host must name */
		a->tcp_port = port;
		if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss,
		                &sslen) == 0)
			a->tcp_port =
			    ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
			                                   : ((struct sockaddr_in *)&ss)->sin_port);
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

const struct api_stats *api_stats(const struct api *a)
{
	return &a->stats;
}

void api_free(struct api *a)
{
	if (a == NULL)
		return;
	offloop_cancel(a->check);
	if (a->check_timer != NULL)
		event_free(a->check_timer);
	check_answer(&a->running, 503,
	             error_body("check: the supervisor is stopping; ask the next one", 503));
	check_answer(&a->next, 503,
	             error_body("check: the supervisor is stopping; ask the next one", 503));
	panels_free(a);
	evhttp_free(a->http);
	if (a->unix_fd >= 0)
		unlink(a->sup->cfg.socket);
	if (a->reserve_fd >= 0)
		close(a->reserve_fd);
	event_free(a->fd_timer);
	series_free(a->series);
	free(a->clocks);
	if (listening_api == a)
		listening_api = NULL;
	free(a);
}
