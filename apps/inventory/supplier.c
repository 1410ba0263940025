/* idem-supplier — the stand-in for the external supplier API: HTTP+JSON on
 * a Unix socket (SUPPLIER_SOCKET), with its own SQLite ledger
 * (SUPPLIER_DATABASE) that de-duplicates orders by Idempotency-Key, the
 * convention of payment APIs:
 *
 *   POST /orders  Idempotency-Key: K  {"product_id":S,"quantity":N}
 *       201 {"supplier_order_id":"SO-1","product_id","quantity","replayed":false}
 *       200 the same order with "replayed":true when K was seen with the same body
 *       422 when K was seen with another body; 400 on a bad key or body
 *     Idem-Fault: F (optional, a fault plan of idem-supervisor, fault.h):
 *       unavailable      503 {"error":...}, nothing recorded
 *       record_then_die  record the order (or find its replay), commit,
 *                        then _exit(IDEM_EXIT_FAULT) without answering:
 *                        "did my request go through?"
 *       anything else    400 naming the allowed values
 *   GET /orders   200 {"orders":[{"supplier_order_id","idempotency_key",
 *                                 "product_id","quantity","created_at"}...]}
 *   GET /health   200 {"ok":true}
 *
 * Every answer is JSON, errors are {"error":"..."}. SIGTERM/SIGINT stop it
 * (exit 0); it also gets SIGTERM when its parent dies. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <jansson.h>

#include "clock.h"
#include "config.h"
#include "db.h"
#include "exitcodes.h"
#include "inventory.h"
#include "inventory_input.h"
#include "log.h"
#include "pdeath.h"
#include "xalloc.h"
#include "version.h"

/* The longest Idempotency-Key: the supplier order keys the inventory
 * workflow derives are bounded by it at start (inventory_input.h). */
#define KEY_MAX INVENTORY_KEY_MAX

static const char *const ledger_migrations[] = {
    "CREATE TABLE supplier_orders(id INTEGER PRIMARY KEY,"
    " idempotency_key TEXT NOT NULL UNIQUE, product_id TEXT NOT NULL,"
    " quantity INTEGER NOT NULL, created_at INTEGER NOT NULL);",
};

struct supplier {
	struct event_base *base;
	struct evhttp *http;
	struct event *sigterm;
	struct event *sigint;
	sqlite3 *db;
	struct stat sock_st; /* the socket we bound, to unlink only our own */
	int bound;
};

/* An order of the ledger. */
struct ledger_row {
	long long id;
	char product_id[KEY_MAX + 1];
	long long quantity;
};

/* Large (the seed table): static rather than on the stack. */
static struct idem_config cfg;

static void usage(FILE *f)
{
	fputs("usage: idem-supplier [config flags...]\n"
	      "\n"
	      "The stand-in for the external supplier API: HTTP+JSON on SUPPLIER_SOCKET with a\n"
	      "ledger in SUPPLIER_DATABASE that de-duplicates orders by Idempotency-Key.\n"
	      "idem-supervisor starts it; it can also run alone.\n"
	      "\n"
	      "  --env FILE                 read the configuration from FILE (default .env)\n"
	      "  --supplier-socket PATH     where to listen (SUPPLIER_SOCKET)\n"
	      "  --supplier-database PATH   the ledger (SUPPLIER_DATABASE)\n"
	      "  --max-body BYTES, --log-level LEVEL, ...\n"
	      "                             any key of .env-dist, lower-cased with '-' for '_'\n"
	      "  -h, --help                 show this help\n"
	      "  --version                  print the version (and git commit) and exit\n"
	      "\n"
	      "  POST /orders (header Idempotency-Key, body {\"product_id\":S,\"quantity\":N})\n"
	      "    optional header Idem-Fault: unavailable | record_then_die (fault injection:\n"
	      "    answer 503 without recording | record, then exit 5 without answering)\n"
	      "  GET /orders, GET /health\n",
	      f);
}

/* ---- responses ---- */

static const char *reason_of(int code)
{
	switch (code) {
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
	case 422:
		return "Unprocessable Entity";
	case 503:
		return "Service Unavailable";
	}
	return "Internal Server Error";
}

/* Sends body (stolen) as the JSON answer; NULL (json_pack refused a
 * string that is not UTF-8) is a 500. */
static void reply_json(struct evhttp_request *req, int code, json_t *body)
{
	struct evbuffer *out = evbuffer_new();
	char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;

	json_decref(body);
	if (text == NULL) {
		code = 500;
		text = xstrdup("{\"error\":\"the answer could not be encoded as JSON\"}");
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	                  "application/json");
	evbuffer_add(out, text, strlen(text));
	evbuffer_add(out, "\n", 1);
	evhttp_send_reply(req, code, reason_of(code), out);
	evbuffer_free(out);
	free(text);
}

static void reply_error(struct evhttp_request *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reply_error(struct evhttp_request *req, int code, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	reply_json(req, code, json_pack("{s:s}", "error", msg));
}

/* ---- the ledger ---- */

static int ledger_find(sqlite3 *db, const char *key, struct ledger_row *row, char *err,
                       size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (db_prepare(db,
	               "SELECT id, product_id, quantity FROM supplier_orders"
	               " WHERE idempotency_key = ?",
	               &st, err, errlen) != 0)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = db_step_row(db, st, "reading the ledger", err, errlen);
	if (rc == 1) {
		row->id = sqlite3_column_int64(st, 0);
		db_column_copy(st, 1, row->product_id, sizeof(row->product_id));
		row->quantity = sqlite3_column_int64(st, 2);
	}
	sqlite3_finalize(st);
	return rc;
}

static int ledger_insert(sqlite3 *db, const char *key, const char *product_id, long long quantity,
                         long long *id, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (db_prepare(db,
	               "INSERT INTO supplier_orders(idempotency_key, product_id, quantity,"
	               " created_at) VALUES(?, ?, ?, ?)",
	               &st, err, errlen) != 0)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, product_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, quantity);
	sqlite3_bind_int64(st, 4, clock_wall_ms());
	if (sqlite3_step(st) == SQLITE_DONE) {
		*id = sqlite3_last_insert_rowid(db);
		rc = 0;
	} else {
		db_fail(db, "recording the order", err, errlen);
	}
	sqlite3_finalize(st);
	return rc;
}

/* Records the order under key unless the key is known. Returns 1 with the
 * existing *row, 0 with the new one, -1 with err. One transaction. */
static int ledger_order(sqlite3 *db, const char *key, const char *product_id, long long quantity,
                        struct ledger_row *row, char *err, size_t errlen)
{
	int found;

	if (db_exec(db, "BEGIN IMMEDIATE", err, errlen) != 0)
		return -1;
	found = ledger_find(db, key, row, err, errlen);
	if (found == 0) {
		snprintf(row->product_id, sizeof(row->product_id), "%s", product_id);
		row->quantity = quantity;
		if (ledger_insert(db, key, product_id, quantity, &row->id, err, errlen) != 0)
			found = -1;
	}
	if (found >= 0 && db_exec(db, "COMMIT", err, errlen) != 0)
		found = -1;
	if (found < 0 && !sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return found;
}

/* ---- handlers ---- */

static json_t *order_json(const struct ledger_row *row, int replayed) /* new */
{
	char id[32];

	snprintf(id, sizeof(id), "SO-%lld", row->id);
	return json_pack("{s:s, s:s, s:I, s:b}", "supplier_order_id", id, "product_id",
	                 row->product_id, "quantity", (json_int_t)row->quantity, "replayed",
	                 replayed);
}

/* Parses {"product_id":S,"quantity":N>0}. Returns the document (new) with
 * *product_id borrowed from it, or NULL after answering 400. */
static json_t *read_order_body(struct evhttp_request *req, const char **product_id,
                               json_int_t *quantity)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *data = len > 0 ? (const char *)evbuffer_pullup(in, -1) : "";
	json_error_t e;
	json_t *doc = json_loadb(data, len, JSON_REJECT_DUPLICATES, &e); /* new */

	if (doc == NULL) {
		reply_error(req, 400, "invalid JSON body: %s (line %d, column %d, position %d)",
		            e.text, e.line, e.column, e.position);
		return NULL;
	}
	if (json_unpack_ex(doc, &e, 0, "{s:s, s:I}", "product_id", product_id, "quantity",
	                   quantity) != 0) {
		reply_error(req, 400,
		            "invalid order: %s (position %d); expected "
		            "{\"product_id\":\"...\",\"quantity\":N}",
		            e.text, e.position);
	} else if (**product_id == '\0' || strlen(*product_id) > KEY_MAX) {
		reply_error(req, 400, "invalid order: product_id must be 1..%d characters",
		            KEY_MAX);
	} else if (*quantity <= 0) {
		reply_error(req, 400,
		            "invalid order: quantity must be > 0 (got %" JSON_INTEGER_FORMAT ")",
		            *quantity);
	} else {
		return doc;
	}
	json_decref(doc);
	return NULL;
}

static const char *read_key(struct evhttp_request *req)
{
	const char *key =
	    evhttp_find_header(evhttp_request_get_input_headers(req), "Idempotency-Key");

	if (key != NULL && *key != '\0' && strlen(key) <= KEY_MAX)
		return key;
	reply_error(req, 400,
	            "the Idempotency-Key header is %s: send 1..%d characters that name this order "
	            "and stay the same on every retry",
	            key == NULL    ? "missing"
	            : *key == '\0' ? "empty"
	                           : "too long",
	            KEY_MAX);
	return NULL;
}

/* The Idem-Fault header: what a planned fault asks of this request. */
enum sup_fault { SUP_FAULT_NONE, SUP_FAULT_UNAVAILABLE, SUP_FAULT_RECORD_THEN_DIE };

/* Reads Idem-Fault into *f. Returns 0, or -1 after answering 400. */
static int read_fault(struct evhttp_request *req, enum sup_fault *f)
{
	const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), "Idem-Fault");

	*f = SUP_FAULT_NONE;
	if (v == NULL)
		return 0;
	if (strcmp(v, "unavailable") == 0) {
		*f = SUP_FAULT_UNAVAILABLE;
		return 0;
	}
	if (strcmp(v, "record_then_die") == 0) {
		*f = SUP_FAULT_RECORD_THEN_DIE;
		return 0;
	}
	reply_error(req, 400,
	            "the Idem-Fault header is \"%.100s\": allowed values are unavailable and "
	            "record_then_die (or leave the header out)",
	            v);
	return -1;
}

/* record_then_die: the order is committed; die before answering. */
static _Noreturn void die_before_answer(const char *key, const struct ledger_row *row, int found)
{
	char qk[600];

	log_info("injected fault: recorded the order, dying before the answer",
	         "supplier_order_id=SO-%lld key=%s replayed=%s exit=%d", row->id,
	         log_quote(qk, sizeof(qk), key), found ? "true" : "false", IDEM_EXIT_FAULT);
	_exit(IDEM_EXIT_FAULT);
}

static void answer_order(struct evhttp_request *req, const char *key, const char *product_id,
                         json_int_t quantity, const struct ledger_row *row, int found)
{
	char qk[600], qp[600];

	log_quote(qk, sizeof(qk), key);
	log_quote(qp, sizeof(qp), row->product_id);
	if (!found) {
		log_info("order recorded",
		         "supplier_order_id=SO-%lld key=%s product_id=%s quantity=%lld", row->id,
		         qk, qp, row->quantity);
		reply_json(req, 201, order_json(row, 0));
	} else if (strcmp(row->product_id, product_id) == 0 && row->quantity == quantity) {
		log_info("order replayed", "supplier_order_id=SO-%lld key=%s", row->id, qk);
		reply_json(req, 200, order_json(row, 1));
	} else {
		log_warn("idempotency key reused with another request", "key=%s", qk);
		reply_error(
		    req, 422,
		    "Idempotency-Key \"%s\" was used with a different request (order SO-%lld: "
		    "product_id \"%s\", quantity %lld); use a new key for a new order",
		    key, row->id, row->product_id, row->quantity);
	}
}

static void orders_post(struct supplier *s, struct evhttp_request *req)
{
	const char *key = read_key(req);
	const char *product_id = NULL; /* borrowed from doc */
	json_int_t quantity = 0;
	json_t *doc = NULL; /* new */
	struct ledger_row row = {0};
	enum sup_fault fault = SUP_FAULT_NONE;
	char err[512], q[600];
	int found;

	if (key == NULL || read_fault(req, &fault) != 0)
		return;
	if (fault == SUP_FAULT_UNAVAILABLE) {
		log_info("injected fault: unavailable", "key=%s", log_quote(q, sizeof(q), key));
		reply_error(req, 503, "supplier unavailable (injected fault); retry later");
		return;
	}
	doc = read_order_body(req, &product_id, &quantity);
	if (doc == NULL)
		return;
	found = ledger_order(s->db, key, product_id, quantity, &row, err, sizeof(err));
	if (found < 0) {
		log_error("ledger write failed", "error=%s", log_quote(q, sizeof(q), err));
		reply_error(req, 503, "supplier ledger: %s; try again", err);
	} else if (fault == SUP_FAULT_RECORD_THEN_DIE) {
		die_before_answer(key, &row, found);
	} else {
		answer_order(req, key, product_id, quantity, &row, found);
	}
	json_decref(doc);
}

static json_t *ledger_list(sqlite3 *db, char *err, size_t errlen) /* new */
{
	sqlite3_stmt *st = NULL;
	json_t *orders = json_array(); /* new */
	int step;

	if (db_prepare(db,
	               "SELECT id, idempotency_key, product_id, quantity, created_at"
	               " FROM supplier_orders ORDER BY id",
	               &st, err, errlen) != 0)
		goto fail;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		char id[32];
		snprintf(id, sizeof(id), "SO-%lld", (long long)sqlite3_column_int64(st, 0));
		json_array_append_new(
		    orders, json_pack("{s:s, s:s, s:s, s:I, s:I}", "supplier_order_id", id,
		                      "idempotency_key", (const char *)sqlite3_column_text(st, 1),
		                      "product_id", (const char *)sqlite3_column_text(st, 2),
		                      "quantity", (json_int_t)sqlite3_column_int64(st, 3),
		                      "created_at", (json_int_t)sqlite3_column_int64(st, 4)));
	}
	if (step != SQLITE_DONE) {
		db_fail(db, "listing the ledger", err, errlen);
		goto fail;
	}
	sqlite3_finalize(st);
	return json_pack("{s:o}", "orders", orders);
fail:
	sqlite3_finalize(st);
	json_decref(orders);
	return NULL;
}

static void orders_get(struct supplier *s, struct evhttp_request *req)
{
	char err[512];
	json_t *body = ledger_list(s->db, err, sizeof(err)); /* new */

	if (body == NULL) {
		reply_error(req, 503, "supplier ledger: %s; try again", err);
		return;
	}
	reply_json(req, 200, body);
}

static void reply_not_allowed(struct evhttp_request *req, const char *path, const char *allow)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
	reply_error(req, 405, "%s allows only %s", path, allow);
}

static void route(struct evhttp_request *req, void *arg)
{
	struct supplier *s = arg;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	int get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;

	if (path == NULL)
		path = "";
	if (strcmp(path, "/orders") == 0) {
		if (cmd == EVHTTP_REQ_POST)
			orders_post(s, req);
		else if (get)
			orders_get(s, req);
		else
			reply_not_allowed(req, path, "GET, HEAD, POST");
	} else if (strcmp(path, "/health") == 0) {
		if (get)
			reply_json(req, 200, json_pack("{s:b}", "ok", 1));
		else
			reply_not_allowed(req, path, "GET, HEAD");
	} else {
		reply_error(req, 404,
		            "no such endpoint %s; try POST /orders, GET /orders, GET /health",
		            path);
	}
}

/* ---- setup ---- */

static int mkdir_parents(const char *path, char *err, size_t errlen)
{
	char dir[CONFIG_PATH_MAX];

	snprintf(dir, sizeof(dir), "%s", path);
	for (char *p = dir + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create directory %s for socket %s: %s", dir,
			         path, strerror(errno));
			return -1;
		}
		*p = '/';
	}
	return 0;
}

/* Binds and listens on path, replacing a stale socket file. */
static int listen_unix(struct supplier *s, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd = -1;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen,
		         "SUPPLIER_SOCKET %s is longer than %zu bytes; use a shorter path", path,
		         sizeof(sa.sun_path) - 1);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen,
		         "SUPPLIER_SOCKET %s exists and is not a socket; remove it or choose "
		         "another path",
		         path);
		return -1;
	}
	if (mkdir_parents(path, err, errlen) != 0)
		return -1;
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 128) != 0 ||
	    stat(path, &s->sock_st) != 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	s->bound = 1;
	return fd;
}

/* Binds and listens on http://HOST:PORT (a supplier on a host of its
 * own, which the supervisors reach over TCP). */
static int listen_tcp(const char *url, char *err, size_t errlen)
{
	char host[256];
	const char *h = url + strlen("http://"), *colon = strrchr(h, ':');
	struct evutil_addrinfo hints = {
	    .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = EVUTIL_AI_PASSIVE};
	struct evutil_addrinfo *ai = NULL;
	char *end = NULL;
	long port = colon != NULL ? strtol(colon + 1, &end, 10) : 0;
	int fd = -1, one = 1;

	if (colon == NULL || colon == h || (size_t)(colon - h) >= sizeof(host) || *end != '\0' ||
	    port < 1 || port > 65535) {
		snprintf(err, errlen, "SUPPLIER_SOCKET %s: expected http://HOST:PORT", url);
		return -1;
	}
	snprintf(host, sizeof(host), "%.*s", (int)(colon - h), h);
	if (host[0] == '[' && host[strlen(host) - 1] == ']') { /* [::1] */
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	if (evutil_getaddrinfo(host, colon + 1, &hints, &ai) != 0 || ai == NULL) {
		snprintf(err, errlen, "SUPPLIER_SOCKET %s: cannot resolve %s", url, host);
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 128) != 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", url, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	evutil_freeaddrinfo(ai);
	return fd;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct supplier *s = arg;

	log_info("stopping", "signal=%d", (int)sig);
	event_base_loopbreak(s->base);
}

static int setup_events(struct supplier *s, char *err, size_t errlen)
{
	int fd;

	s->base = event_base_new();
	s->http = s->base != NULL ? evhttp_new(s->base) : NULL;
	if (s->http == NULL) { /* out of memory aborts: no backend could start */
		snprintf(err, errlen, "cannot set up libevent (event_base_new failed)");
		return -1;
	}
	evhttp_set_max_body_size(s->http, (ev_ssize_t)cfg.max_body);
	evhttp_set_timeout(s->http, 30);
	evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
	                                        EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	                                        EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(s->http, route, s);
	if (strncmp(config_text(&cfg, "SUPPLIER_SOCKET"), "http://", 7) == 0)
		fd = listen_tcp(config_text(&cfg, "SUPPLIER_SOCKET"), err, errlen);
	else
		fd = listen_unix(s, config_text(&cfg, "SUPPLIER_SOCKET"), err, errlen);
	if (fd < 0)
		return -1;
	if (evhttp_accept_socket(s->http, fd) != 0) {
		close(fd);
		snprintf(err, errlen, "cannot accept on %s", config_text(&cfg, "SUPPLIER_SOCKET"));
		return -1;
	}
	s->sigterm = evsignal_new(s->base, SIGTERM, on_signal, s);
	s->sigint = evsignal_new(s->base, SIGINT, on_signal, s);
	if (s->sigterm == NULL || s->sigint == NULL || evsignal_add(s->sigterm, NULL) != 0 ||
	    evsignal_add(s->sigint, NULL) != 0) {
		snprintf(err, errlen, "cannot watch SIGTERM and SIGINT");
		return -1;
	}
	return 0;
}

/* Removes the socket file if it is still the one we bound (a newer
 * supplier may have replaced it). */
static void unlink_own_socket(const struct supplier *s)
{
	struct stat st;

	if (s->bound && stat(config_text(&cfg, "SUPPLIER_SOCKET"), &st) == 0 &&
	    st.st_ino == s->sock_st.st_ino && st.st_dev == s->sock_st.st_dev)
		unlink(config_text(&cfg, "SUPPLIER_SOCKET"));
}

static void teardown(struct supplier *s)
{
	if (s->http != NULL)
		evhttp_free(s->http);
	if (s->sigterm != NULL)
		event_free(s->sigterm);
	if (s->sigint != NULL)
		event_free(s->sigint);
	if (s->base != NULL)
		event_base_free(s->base);
	db_close(s->db);
	unlink_own_socket(s);
}

static int open_ledger(struct supplier *s, char *err, size_t errlen)
{
	return db_open_migrated(config_text(&cfg, "SUPPLIER_DATABASE"), DB_SYNC_FULL,
	                        ledger_migrations, 1, &s->db, err, errlen);
}

static int parse_args(int argc, char **argv, int *help, char *err, size_t errlen)
{
	int *rest = NULL;
	int nrest = 0;
	int rc = -1;

	if (config_help_asked(argc, argv)) {
		*help = 1;
		return 0;
	}
	rest = xcalloc((size_t)argc, sizeof(*rest));
	if (config_add_keys(inventory_keys, err, errlen) == 0 &&
	    config_load(&cfg, argc, argv, rest, &nrest, err, errlen) == 0) {
		rc = 0;
		if (nrest > 0) {
			snprintf(err, errlen, "unknown argument \"%s\"; see idem-supplier --help",
			         argv[rest[0]]);
			rc = -1;
		}
	}
	free(rest);
	return rc;
}

int main(int argc, char **argv)
{
	struct supplier s = {0};
	char err[768], q[900], q2[600];
	int help = 0;
	int rc = IDEM_EXIT_FAIL;

	idem_version_exit(argc, argv, "idem-supplier");
	/* Before anything allocates: out of memory aborts (xalloc.h). */
	xalloc_install_json();
	event_set_mem_functions(xmalloc, xrealloc, free);
	/* Started by a supervisor that died before it could ask: nothing
	 * would ever stop this process. */
	if (!config_help_asked(argc, argv) && pdeath_arm(SIGTERM, "idem-supplier") != 0)
		return IDEM_EXIT_OK;
	if (parse_args(argc, argv, &help, err, sizeof(err)) != 0) {
		fprintf(stderr, "idem-supplier: %s\n", err);
		return IDEM_EXIT_USAGE;
	}
	if (help) {
		usage(stdout);
		return IDEM_EXIT_OK;
	}
	signal(SIGPIPE, SIG_IGN);
	log_init("supplier", cfg.log_level);
	log_set_format(cfg.log_format);
	if (open_ledger(&s, err, sizeof(err)) != 0) {
		log_error("cannot open the ledger", "error=%s", log_quote(q, sizeof(q), err));
		rc = IDEM_EXIT_DB;
		goto out;
	}
	if (setup_events(&s, err, sizeof(err)) != 0) {
		log_error("cannot start", "error=%s", log_quote(q, sizeof(q), err));
		goto out;
	}
	log_info("listening", "socket=%s database=%s",
	         log_quote(q, sizeof(q), config_text(&cfg, "SUPPLIER_SOCKET")),
	         log_quote(q2, sizeof(q2), config_text(&cfg, "SUPPLIER_DATABASE")));
	if (event_base_dispatch(s.base) < 0) {
		log_error("event loop failed", "");
		goto out;
	}
	rc = IDEM_EXIT_OK;
out:
	teardown(&s);
	log_info("stopped", "exit=%d", rc);
	return rc;
}
