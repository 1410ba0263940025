/* ui.h — the dashboard: its files, built into idem-supervisor
 * (supervisor/ui, embedded by ui/embed.cmake), served at / and /ui/ on
 * the control API. */
#ifndef IDEM_UI_H
#define IDEM_UI_H

#include <stddef.h>

struct evhttp_request;

struct ui_asset {
	const char *name; /* "index.html", "app.js" */
	const char *type; /* its Content-Type */
	const unsigned char *data;
	size_t len;
};

/* NULL-named last (generated). */
extern const struct ui_asset ui_assets[];

/* The file for a GET of path: "/" is index.html, "/ui/NAME" is NAME;
 * NULL for any other path. */
const struct ui_asset *ui_find(const char *path);
/* Sends the file with headers that keep it to its own origin (a
 * Content-Security-Policy of 'self' only, no framing, no sniffing). */
void ui_send(struct evhttp_request *req, const struct ui_asset *f);

#endif
