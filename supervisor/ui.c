/* ui.c — see ui.h. */
#include "ui.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <string.h>

const struct ui_asset *ui_find(const char *path)
{
	const char *name;

	if (strcmp(path, "/") == 0)
		name = "index.html";
	else if (strncmp(path, "/ui/", 4) == 0)
		name = path + 4;
	else
		return NULL;
	for (const struct ui_asset *f = ui_assets; f->name != NULL; f++)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

void ui_send(struct evhttp_request *req, const struct ui_asset *f)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *buf = evbuffer_new();

	evhttp_add_header(h, "Content-Type", f->type);
	/* Everything the page loads or asks comes from this supervisor:
	 * no inline script, no other origin, no frame around it. */
	evhttp_add_header(h, "Content-Security-Policy",
	                  "default-src 'none'; script-src 'self'; style-src 'self'; "
	                  "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
	                  "form-action 'none'; frame-ancestors 'none'");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "X-Frame-Options", "DENY");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	evhttp_add_header(h, "Cache-Control", "no-cache");
	evbuffer_add_reference(buf, f->data, f->len, NULL, NULL);
	evhttp_send_reply(req, 200, "OK", buf);
	evbuffer_free(buf);
}
