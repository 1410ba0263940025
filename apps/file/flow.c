/* flow.c — workflow types defined in JSON (flow.h). flow_parse compiles a
 * definition into steps, templates and conditions, checking every
 * pointer and step name once, so that flow_run only walks them: it cannot
 * meet a malformed definition. Invariants: a compiled flow never changes
 * after flow_parse; flow_run keeps the engine's results (BORROWED) only
 * while it runs and builds each input anew (deep copies), so an input it
 * hands the engine shares nothing with the history, and the same history
 * gives the same calls. A jansson constructor that returns NULL aborts,
 * in one place (must()): out of memory aborts in xalloc already. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow.h"
#include "xalloc.h"

#define PATH_LEN 512 /* the JSON path in a parse error (truncated beyond) */

#define OPERATORS "eq, ne, lt, le, gt, ge, and, or, not, exists"
#define TYPES "string, integer, number, boolean, object, array, any"
#define POINTERS                                                                                   \
	"/input/..., /steps/NAME/result/..., /steps/NAME/key, /workflow/id, "                      \
	"/workflow/namespace, /step/key or /step/seq"
#define NAME_RULE "1..64 characters of A-Z a-z 0-9 _ -"
#define STEP_SCOPE "a step can refer only to the steps before it"
#define COMP_SCOPE "a compensation can refer only to its step and the steps before it"

/* ---- the compiled form ------------------------------------------------ */

enum ptr_root {
	PTR_INPUT,    /* /input/... */
	PTR_RESULT,   /* /steps/NAME/result/... */
	PTR_STEP_KEY, /* /steps/NAME/key */
	PTR_WF_ID,    /* /workflow/id */
	PTR_WF_NS,    /* /workflow/namespace */
	PTR_KEY,      /* /step/key */
	PTR_SEQ,      /* /step/seq */
};

struct ptr {
	enum ptr_root root;
	int step;      /* PTR_RESULT, PTR_STEP_KEY: the step's index */
	char **tokens; /* the pointer's tokens, unescaped */
	int ntokens;
	int first; /* the first token walked into the value (PTR_INPUT, PTR_RESULT) */
};

enum tpl_kind { TPL_LITERAL, TPL_REF, TPL_RAN, TPL_OBJECT, TPL_ARRAY };

struct tpl {
	enum tpl_kind kind;
	json_t *literal;  /* TPL_LITERAL */
	struct ptr *ptrs; /* TPL_REF: the first that resolves */
	int nptrs;
	int step;          /* TPL_RAN: the step's index */
	char **keys;       /* TPL_OBJECT: the members' names */
	struct tpl **kids; /* TPL_OBJECT, TPL_ARRAY */
	int nkids;
};

enum cond_op {
	COND_CONST,
	COND_EQ,
	COND_NE,
	COND_LT,
	COND_LE,
	COND_GT,
	COND_GE,
	COND_AND,
	COND_OR,
	COND_NOT,
	COND_EXISTS,
};

static const struct {
	const char *name;
	enum cond_op op;
} cond_ops[] = {
    {"eq", COND_EQ}, {"ne", COND_NE},   {"lt", COND_LT}, {"le", COND_LE},   {"gt", COND_GT},
    {"ge", COND_GE}, {"and", COND_AND}, {"or", COND_OR}, {"not", COND_NOT}, {"exists", COND_EXISTS},
};

struct cond {
	enum cond_op op;
	int value;          /* COND_CONST */
	struct tpl *a, *b;  /* the comparisons' operands; COND_EXISTS: a */
	struct cond **kids; /* COND_AND, COND_OR, COND_NOT */
	int nkids;
};

enum field_type { FT_STRING, FT_INTEGER, FT_NUMBER, FT_BOOLEAN, FT_OBJECT, FT_ARRAY, FT_ANY };

static const struct {
	const char *name;
	const char *give; /* "give an integer" */
} field_types[] = {
    [FT_STRING] = {"string", "a string"},  [FT_INTEGER] = {"integer", "an integer"},
    [FT_NUMBER] = {"number", "a number"},  [FT_BOOLEAN] = {"boolean", "a boolean"},
    [FT_OBJECT] = {"object", "an object"}, [FT_ARRAY] = {"array", "an array"},
    [FT_ANY] = {"any", "any JSON value"},
};

struct field {
	char *name;
	enum field_type type;
};

struct flow_step {
	char name[FLOW_NAME_MAX + 1];
	char *activity;
	struct tpl *input;      /* NULL: the workflow input */
	struct cond *when;      /* NULL: always */
	char *comp_activity;    /* NULL: nothing to compensate */
	struct tpl *comp_input; /* NULL: the workflow input */
	json_t *overrides;      /* its "retry" and "timeout" as written, or NULL */
	const struct idem_activity_options *options; /* NULL: its activity's */
};

struct flow {
	char *id_field; /* NULL: none */
	struct field *fields;
	int nfields;
	json_t *defaults; /* an object */
	struct flow_step *steps;
	int nsteps;
	struct tpl *result; /* NULL: {NAME: result} of the steps that ran */
};

/* The one policy for running out of memory in this file: abort. */
static void *must(void *p)
{
	if (p == NULL)
		abort();
	return p;
}

static void *alloc(size_t n, size_t size)
{
	return xcalloc(n > 0 ? n : 1, size);
}

static void ptr_clear(struct ptr *p)
{
	for (int i = 0; i < p->ntokens; i++)
		free(p->tokens[i]);
	free(p->tokens);
}

static void tpl_free(struct tpl *t)
{
	if (t == NULL)
		return;
	json_decref(t->literal);
	for (int i = 0; i < t->nptrs; i++)
		ptr_clear(&t->ptrs[i]);
	for (int i = 0; i < t->nkids; i++) {
		if (t->keys != NULL)
			free(t->keys[i]);
		tpl_free(t->kids[i]);
	}
	free(t->ptrs);
	free(t->keys);
	free(t->kids);
	free(t);
}

static void cond_free(struct cond *c)
{
	if (c == NULL)
		return;
	tpl_free(c->a);
	tpl_free(c->b);
	for (int i = 0; i < c->nkids; i++)
		cond_free(c->kids[i]);
	free(c->kids);
	free(c);
}

int flow_step_count(const struct flow *f)
{
	return f->nsteps;
}

const char *flow_step_activity(const struct flow *f, int i)
{
	return f->steps[i].activity;
}

const json_t *flow_step_overrides(const struct flow *f, int i)
{
	return f->steps[i].overrides;
}

void flow_step_set_options(struct flow *f, int i, const struct idem_activity_options *o)
{
	f->steps[i].options = o;
}

void flow_free(struct flow *f)
{
	if (f == NULL)
		return;
	for (int i = 0; i < f->nsteps; i++) {
		free(f->steps[i].activity);
		tpl_free(f->steps[i].input);
		cond_free(f->steps[i].when);
		free(f->steps[i].comp_activity);
		tpl_free(f->steps[i].comp_input);
		json_decref(f->steps[i].overrides);
	}
	for (int i = 0; i < f->nfields; i++)
		free(f->fields[i].name);
	free(f->fields);
	free(f->steps);
	json_decref(f->defaults);
	tpl_free(f->result);
	free(f->id_field);
	free(f);
}

const char *flow_id_field(const struct flow *f)
{
	return f->id_field;
}

static int type_ok(enum field_type t, const json_t *v)
{
	switch (t) {
	case FT_STRING:
		return json_is_string(v);
	case FT_INTEGER:
		return json_is_integer(v);
	case FT_NUMBER:
		return json_is_number(v);
	case FT_BOOLEAN:
		return json_is_boolean(v);
	case FT_OBJECT:
		return json_is_object(v);
	case FT_ARRAY:
		return json_is_array(v);
	default:
		return 1;
	}
}

static int step_index(const struct flow *f, const char *name)
{
	for (int i = 0; i < f->nsteps; i++)
		if (strcmp(f->steps[i].name, name) == 0)
			return i;
	return -1;
}

/* ---- the parser: messages ------------------------------------------------- */

struct parser {
	struct flow *f;
	const char *prefix;
	int (*known)(void *arg, const char *name);
	void *arg;
	char *err;
	size_t errlen;
	/* what the template being compiled may name: */
	int see;           /* the steps before this index */
	int self;          /* the step it belongs to; -1: the result */
	const char *scope; /* the rule, for messages */
};

/* Writes "PREFIX.PATH" and then fmt (which starts with ": " or " is")
 * into the caller's err; returns -1. */
static int perr(struct parser *p, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int perr(struct parser *p, const char *path, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(p->err, p->errlen, "%s%s%s", p->prefix,
	                 p->prefix[0] != '\0' && path[0] != '\0' ? "." : "", path);

	if (n < 0 || (size_t)n >= p->errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* Appends to path (PATH_LEN bytes, truncated) and returns its old length,
 * which pops it: path[old] = '\0'. */
static size_t path_push(char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t path_push(char *path, const char *fmt, ...)
{
	size_t len = strlen(path);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(path + len, PATH_LEN - len, fmt, ap);
	va_end(ap);
	return len;
}

/* "a, b, c" of list (NULL-ended) into buf; "..." ends what does not fit. */
static void join(const char *const *list, int n, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 0; (n < 0 ? list[i] != NULL : i < n); i++) {
		int w = snprintf(buf + used, len - used, "%s%s", i > 0 ? ", " : "", list[i]);

		if (w < 0 || used + (size_t)w + 5 >= len) {
			snprintf(buf + used, len - used, "%s...", i > 0 ? ", " : "");
			return;
		}
		used += (size_t)w;
	}
}

static void step_names(const struct flow *f, char *buf, size_t len)
{
	const char **names = alloc((size_t)f->nsteps, sizeof(*names));

	for (int i = 0; i < f->nsteps; i++)
		names[i] = f->steps[i].name;
	join(names, f->nsteps, buf, len);
	free(names);
}

/* Fails on the first member of obj that known (NULL-ended) does not list. */
static int check_members(struct parser *p, const json_t *obj, const char *const *known,
                         const char *path)
{
	const char *key;
	json_t *v;
	char list[256];

	json_object_foreach((json_t *)obj, key, v)
	{
		int i = 0;

		while (known[i] != NULL && strcmp(known[i], key) != 0)
			i++;
		if (known[i] == NULL) {
			join(known, -1, list, sizeof(list));
			return perr(p, path, ": unknown member \"%s\" (known: %s)", key, list);
		}
	}
	return 0;
}

/* ---- the parser: pointers ------------------------------------------------- */

/* The index of the step name refers to, when the template may name it;
 * else -1 after the message: subject ("\"/steps/x/result\" refers to")
 * step "x", which ... */
static int step_ref(struct parser *p, const char *subject, const char *name, const char *path)
{
	int i = step_index(p->f, name);

	if (i < 0) {
		char names[256];

		step_names(p->f, names, sizeof(names));
		return perr(p, path, ": %s step \"%s\", which does not exist (steps: %s)", subject,
		            name, names);
	}
	if (i == p->self && i >= p->see)
		return perr(p, path, ": %s step \"%s\" itself, which has not run yet (%s)", subject,
		            name, p->scope);
	if (i >= p->see)
		return perr(p, path, ": %s step \"%s\", which runs after this one (%s)", subject,
		            name, p->scope);
	return i;
}

/* Splits text (which starts with "/") into out's unescaped tokens. */
static int ptr_split(struct parser *p, const char *text, const char *path, struct ptr *out)
{
	const char *s = text + 1;
	size_t n = 1;

	for (const char *c = s; *c != '\0'; c++)
		n += *c == '/';
	out->tokens = alloc(n, sizeof(char *));
	for (;;) {
		size_t len = strcspn(s, "/");
		char *tok = xmalloc(len + 1), *o = tok;

		out->tokens[out->ntokens++] = tok;
		for (size_t i = 0; i < len; i++) {
			if (s[i] != '~')
				*o++ = s[i];
			else if (i + 1 < len && (s[i + 1] == '0' || s[i + 1] == '1'))
				*o++ = s[++i] == '0' ? '~' : '/';
			else
				return perr(
				    p, path,
				    ": \"%s\" has a \"~\" that is not ~0 or ~1 (write ~0 for "
				    "\"~\" and ~1 for \"/\")",
				    text);
		}
		*o = '\0';
		if (s[len] == '\0')
			return 0;
		s += len + 1;
	}
}

/* /steps/NAME/result/... or /steps/NAME/key */
static int ptr_steps(struct parser *p, const char *text, const char *path, struct ptr *out)
{
	char subject[PATH_LEN];

	if (out->ntokens < 3)
		return perr(
		    p, path,
		    ": \"%s\" is incomplete (use /steps/NAME/result/... or /steps/NAME/key)", text);
	snprintf(subject, sizeof(subject), "\"%s\" refers to", text);
	out->step = step_ref(p, subject, out->tokens[1], path);
	if (out->step < 0)
		return -1;
	if (strcmp(out->tokens[2], "result") == 0) {
		out->root = PTR_RESULT;
		out->first = 3;
		return 0;
	}
	if (strcmp(out->tokens[2], "key") == 0 && out->ntokens == 3) {
		out->root = PTR_STEP_KEY;
		return 0;
	}
	return perr(p, path, ": \"%s\": after /steps/%s comes /result/... or /key", text,
	            out->tokens[1]);
}

/* /ROOT/A or /ROOT/B, nothing more: a or b. */
static int ptr_pair(struct parser *p, const char *text, const char *path, struct ptr *out,
                    const char *a, enum ptr_root ra, const char *b, enum ptr_root rb)
{
	const char *root = out->tokens[0];

	if (out->ntokens == 2 && strcmp(out->tokens[1], a) == 0)
		out->root = ra;
	else if (out->ntokens == 2 && strcmp(out->tokens[1], b) == 0)
		out->root = rb;
	else
		return perr(p, path, ": \"%s\" is not /%s/%s or /%s/%s", text, root, a, root, b);
	return 0;
}

static int ptr_compile(struct parser *p, const char *text, const char *path, struct ptr *out)
{
	const char *root;

	if (text[0] != '/')
		return perr(p, path, ": \"%s\" is not a JSON pointer (begin it with \"/\": %s)",
		            text, POINTERS);
	if (ptr_split(p, text, path, out) != 0)
		return -1;
	root = out->tokens[0];
	if (strcmp(root, "input") == 0) {
		out->root = PTR_INPUT;
		out->first = 1;
		return 0;
	}
	if (strcmp(root, "steps") == 0)
		return ptr_steps(p, text, path, out);
	if (strcmp(root, "workflow") == 0)
		return ptr_pair(p, text, path, out, "id", PTR_WF_ID, "namespace", PTR_WF_NS);
	if (strcmp(root, "step") == 0 && p->self < 0)
		return perr(
		    p, path,
		    ": \"%s\" means the step being called, and the result is built after the "
		    "last one (use /steps/NAME/key)",
		    text);
	if (strcmp(root, "step") == 0)
		return ptr_pair(p, text, path, out, "key", PTR_KEY, "seq", PTR_SEQ);
	return perr(p, path, ": \"%s\" begins with \"/%s\" (use %s)", text, root, POINTERS);
}

/* ---- the parser: templates -------------------------------------------------- */

static struct tpl *tpl_compile(struct parser *p, const json_t *v, char *path, int depth);

static struct tpl *tpl_new(enum tpl_kind kind)
{
	struct tpl *t = alloc(1, sizeof(*t));

	t->kind = kind;
	return t;
}

/* Returns t, or NULL after freeing it when rc says it failed. */
static struct tpl *tpl_done(struct tpl *t, int rc)
{
	if (rc == 0)
		return t;
	tpl_free(t);
	return NULL;
}

static int ref_list(struct parser *p, const json_t *v, char *path, struct tpl *t)
{
	t->nptrs = (int)json_array_size(v);
	t->ptrs = alloc((size_t)t->nptrs, sizeof(*t->ptrs));
	for (int i = 0; i < t->nptrs; i++) {
		const json_t *item = json_array_get(v, (size_t)i);
		size_t old = path_push(path, "[%d]", i);
		int rc = json_is_string(item)
		             ? ptr_compile(p, json_string_value(item), path, &t->ptrs[i])
		             : perr(p, path, " is %s; give a JSON pointer (a string)",
		                    msg_json_kind(item));

		path[old] = '\0';
		if (rc != 0)
			return -1;
	}
	return 0;
}

/* {"$ref": POINTER} or {"$ref": [POINTER, ...]} */
static struct tpl *tpl_ref(struct parser *p, const json_t *v, char *path)
{
	struct tpl *t = tpl_new(TPL_REF);
	size_t old = path_push(path, ".$ref");
	int rc;

	if (json_is_string(v)) {
		t->nptrs = 1;
		t->ptrs = alloc(1, sizeof(*t->ptrs));
		rc = ptr_compile(p, json_string_value(v), path, &t->ptrs[0]);
	} else if (json_is_array(v) && json_array_size(v) > 0) {
		rc = ref_list(p, v, path, t);
	} else {
		rc = perr(p, path,
		          " is %s; give a JSON pointer (\"/input/FIELD\") or an array of them (the "
		          "first that exists is used)",
		          json_is_array(v) ? "an empty array" : msg_json_kind(v));
	}
	path[old] = '\0';
	return tpl_done(t, rc);
}

/* {"$ran": STEP} */
static struct tpl *tpl_ran(struct parser *p, const json_t *v, char *path)
{
	struct tpl *t = tpl_new(TPL_RAN);
	size_t old = path_push(path, ".$ran");
	int rc = 0;

	if (!json_is_string(v))
		rc = perr(p, path, " is %s; give the name of a step", msg_json_kind(v));
	else if ((t->step = step_ref(p, "refers to", json_string_value(v), path)) < 0)
		rc = -1;
	path[old] = '\0';
	return tpl_done(t, rc);
}

/* A member of an object template whose name begins with "$". */
static int tpl_reserved(struct parser *p, const char *key, const char *path)
{
	if (strcmp(key, "$ref") == 0 || strcmp(key, "$ran") == 0)
		return perr(p, path,
		            ": an object with \"%s\" has no other member (write {\"%s\": ...} "
		            "alone)",
		            key, key);
	return perr(p, path,
	            ": member names beginning with \"$\" are reserved (a reference is "
	            "{\"$ref\": POINTER}, {\"$ref\": [POINTER, ...]} or {\"$ran\": STEP})");
}

static struct tpl *tpl_object(struct parser *p, const json_t *v, char *path, int depth)
{
	const char *key;
	json_t *val;
	struct tpl *t;
	int i = 0;

	if (json_object_size(v) == 1 && (val = json_object_get(v, "$ref")) != NULL)
		return tpl_ref(p, val, path);
	if (json_object_size(v) == 1 && (val = json_object_get(v, "$ran")) != NULL)
		return tpl_ran(p, val, path);
	t = tpl_new(TPL_OBJECT);
	t->nkids = (int)json_object_size(v);
	t->keys = alloc((size_t)t->nkids, sizeof(*t->keys));
	t->kids = alloc((size_t)t->nkids, sizeof(*t->kids));
	json_object_foreach((json_t *)v, key, val)
	{
		size_t old = path_push(path, ".%s", key);

		t->keys[i] = xstrdup(key);
		if (key[0] != '$')
			t->kids[i] = tpl_compile(p, val, path, depth + 1);
		else
			tpl_reserved(p, key, path);
		path[old] = '\0';
		if (t->kids[i++] == NULL)
			return tpl_done(t, -1);
	}
	return t;
}

static struct tpl *tpl_array(struct parser *p, const json_t *v, char *path, int depth)
{
	struct tpl *t = tpl_new(TPL_ARRAY);

	t->nkids = (int)json_array_size(v);
	t->kids = alloc((size_t)t->nkids, sizeof(*t->kids));
	for (int i = 0; i < t->nkids; i++) {
		size_t old = path_push(path, "[%d]", i);

		t->kids[i] = tpl_compile(p, json_array_get(v, (size_t)i), path, depth + 1);
		path[old] = '\0';
		if (t->kids[i] == NULL)
			return tpl_done(t, -1);
	}
	return t;
}

/* A template at depth levels of objects and arrays (the outermost is
 * 1). Returns a new template, or NULL with p's message. */
static struct tpl *tpl_compile(struct parser *p, const json_t *v, char *path, int depth)
{
	struct tpl *t;

	if (depth > FLOW_MAX_DEPTH && (json_is_object(v) || json_is_array(v))) {
		perr(p, path, ": nested more than %d levels deep (flatten it)", FLOW_MAX_DEPTH);
		return NULL;
	}
	if (json_is_object(v))
		return tpl_object(p, v, path, depth);
	if (json_is_array(v))
		return tpl_array(p, v, path, depth);
	t = tpl_new(TPL_LITERAL);
	t->literal = must(json_deep_copy(v));
	return t;
}

/* The template at member key of obj (path: its parent's), into *out;
 * absent: *out stays NULL. */
static int tpl_member(struct parser *p, const json_t *obj, const char *key, char *path,
                      struct tpl **out)
{
	const json_t *v = json_object_get(obj, key);
	size_t old;

	if (v == NULL)
		return 0;
	old = path_push(path, "%s%s", path[0] != '\0' ? "." : "", key);
	*out = tpl_compile(p, v, path, 1);
	path[old] = '\0';
	return *out != NULL ? 0 : -1;
}

/* ---- the parser: conditions ------------------------------------------------- */

static struct cond *cond_compile(struct parser *p, const json_t *v, char *path, int depth);

static struct cond *cond_new(enum cond_op op)
{
	struct cond *c = alloc(1, sizeof(*c));

	c->op = op;
	return c;
}

/* [A, B] of a comparison */
static int cond_operands(struct parser *p, struct cond *c, const json_t *v, char *path, int depth)
{
	size_t old;

	if (!json_is_array(v))
		return perr(p, path, " is %s; give two operands: [A, B]", msg_json_kind(v));
	if (json_array_size(v) != 2)
		return perr(p, path, " has %zu operands; give two: [A, B]", json_array_size(v));
	old = path_push(path, "[0]");
	c->a = tpl_compile(p, json_array_get(v, 0), path, depth + 1);
	path[old] = '\0';
	if (c->a == NULL)
		return -1;
	old = path_push(path, "[1]");
	c->b = tpl_compile(p, json_array_get(v, 1), path, depth + 1);
	path[old] = '\0';
	return c->b != NULL ? 0 : -1;
}

/* [C, ...] of and, or */
static int cond_list(struct parser *p, struct cond *c, const json_t *v, char *path, int depth)
{
	if (!json_is_array(v))
		return perr(p, path, " is %s; give an array of conditions", msg_json_kind(v));
	c->nkids = (int)json_array_size(v);
	c->kids = alloc((size_t)c->nkids, sizeof(*c->kids));
	for (int i = 0; i < c->nkids; i++) {
		size_t old = path_push(path, "[%d]", i);

		c->kids[i] = cond_compile(p, json_array_get(v, (size_t)i), path, depth + 1);
		path[old] = '\0';
		if (c->kids[i] == NULL)
			return -1;
	}
	return 0;
}

/* The operands of c, whose operator's value is v (path: the operator's). */
static int cond_args(struct parser *p, struct cond *c, const json_t *v, char *path, int depth)
{
	switch (c->op) {
	case COND_AND:
	case COND_OR:
		return cond_list(p, c, v, path, depth);
	case COND_NOT:
		c->nkids = 1;
		c->kids = alloc(1, sizeof(*c->kids));
		c->kids[0] = cond_compile(p, v, path, depth + 1);
		return c->kids[0] != NULL ? 0 : -1;
	case COND_EXISTS:
		c->a = tpl_compile(p, v, path, depth + 1);
		return c->a != NULL ? 0 : -1;
	default:
		return cond_operands(p, c, v, path, depth);
	}
}

static int cond_op_find(const char *name)
{
	for (size_t i = 0; i < sizeof(cond_ops) / sizeof(cond_ops[0]); i++)
		if (strcmp(cond_ops[i].name, name) == 0)
			return (int)cond_ops[i].op;
	return -1;
}

/* A condition at depth levels of nesting. Returns a new condition, or
 * NULL with p's message. */
static struct cond *cond_compile(struct parser *p, const json_t *v, char *path, int depth)
{
	struct cond *c;
	const char *key;
	size_t old;
	int op, rc;

	if (json_is_boolean(v)) {
		c = cond_new(COND_CONST);
		c->value = json_is_true(v);
		return c;
	}
	if (depth > FLOW_MAX_DEPTH) {
		perr(p, path, ": nested more than %d levels deep (flatten it)", FLOW_MAX_DEPTH);
		return NULL;
	}
	if (!json_is_object(v)) {
		perr(p, path, " is %s; give true, false or {\"OPERATOR\": ...} (%s)",
		     msg_json_kind(v), OPERATORS);
		return NULL;
	}
	if (json_object_size(v) != 1) {
		perr(p, path,
		     " has %zu members; a condition is one {\"OPERATOR\": ...} (combine several "
		     "with and, or)",
		     json_object_size(v));
		return NULL;
	}
	key = json_object_iter_key(json_object_iter((json_t *)v));
	if ((op = cond_op_find(key)) < 0) {
		perr(p, path, ": unknown operator \"%s\" (use %s)", key, OPERATORS);
		return NULL;
	}
	c = cond_new((enum cond_op)op);
	old = path_push(path, ".%s", key);
	rc = cond_args(p, c, json_object_get(v, key), path, depth);
	path[old] = '\0';
	if (rc == 0)
		return c;
	cond_free(c);
	return NULL;
}

/* ---- the parser: the definition ------------------------------------------- */

static int name_ok(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= FLOW_NAME_MAX &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

/* The member activity of obj, which must name one of the app's. */
static int activity_get(struct parser *p, const json_t *obj, char *path, char **out)
{
	const json_t *v = json_object_get(obj, "activity");
	const char *name = json_string_value(v);

	size_t old;

	if (v == NULL)
		return perr(
		    p, path,
		    ": missing \"activity\" (give the name of one of the app's activities)");
	old = path_push(path, ".activity");
	if (name == NULL)
		return perr(p, path, " is %s; give the name of an activity", msg_json_kind(v));
	if (p->known != NULL && !p->known(p->arg, name))
		return perr(p, path, ": unknown activity \"%s\"", name);
	path[old] = '\0';
	*out = xstrdup(name);
	return 0;
}

/* A step's object and its name (path: "steps[i]"), before the rest of
 * any step is read, so that a pointer may be told a later step's name. */
static int step_head(struct parser *p, const json_t *v, int i, char *path)
{
	static const char *const members[] = {"name",       "activity", "input",   "when",
	                                      "compensate", "retry",    "timeout", NULL};
	const json_t *name = json_object_get(v, "name");
	const char *s = json_string_value(name);
	int dup;

	if (!json_is_object(v))
		return perr(p, path, " is %s; give an object {\"name\", \"activity\", ...}",
		            msg_json_kind(v));
	if (check_members(p, v, members, path) != 0)
		return -1;
	if (name == NULL)
		return perr(p, path, ": missing \"name\" (give the step a unique name: %s)",
		            NAME_RULE);
	path_push(path, ".name");
	if (s == NULL)
		return perr(p, path, " is %s; give a unique name: %s", msg_json_kind(name),
		            NAME_RULE);
	if (!name_ok(s))
		return perr(p, path, ": \"%s\" is not a step name (use %s)", s, NAME_RULE);
	if ((dup = step_index(p->f, s)) >= 0)
		return perr(
		    p, path,
		    ": \"%s\" is already the name of steps[%d] (give each step its own name)", s,
		    dup);
	memcpy(p->f->steps[i].name, s, strlen(s) + 1);
	return 0;
}

static int step_compensate(struct parser *p, const json_t *v, int i, char *path)
{
	static const char *const members[] = {"activity", "input", NULL};
	struct flow_step *st = &p->f->steps[i];

	path_push(path, ".compensate");
	if (!json_is_object(v))
		return perr(p, path, " is %s; give {\"activity\": NAME, \"input\": TEMPLATE}",
		            msg_json_kind(v));
	if (check_members(p, v, members, path) != 0)
		return -1;
	if (activity_get(p, v, path, &st->comp_activity) != 0)
		return -1;
	return tpl_member(p, v, "input", path, &st->comp_input);
}

/* The rest of step i (path: "steps[i]"). */
static int step_body(struct parser *p, const json_t *v, int i, char *path)
{
	struct flow_step *st = &p->f->steps[i];
	const json_t *when = json_object_get(v, "when");
	const json_t *comp = json_object_get(v, "compensate");
	size_t old = strlen(path);

	p->see = p->self = i;
	p->scope = STEP_SCOPE;
	if (activity_get(p, v, path, &st->activity) != 0)
		return -1;
	if (tpl_member(p, v, "input", path, &st->input) != 0)
		return -1;
	if (when != NULL) {
		path_push(path, ".when");
		if ((st->when = cond_compile(p, when, path, 1)) == NULL)
			return -1;
		path[old] = '\0';
	}
	/* The app's loader reads these (flow_step_overrides): they are
	 * options, not the workflow's logic. */
	if (json_object_get(v, "retry") != NULL || json_object_get(v, "timeout") != NULL) {
		st->overrides = must(json_object());
		if (json_object_get(v, "retry") != NULL)
			json_object_set(st->overrides, "retry", json_object_get(v, "retry"));
		if (json_object_get(v, "timeout") != NULL)
			json_object_set(st->overrides, "timeout", json_object_get(v, "timeout"));
	}
	p->see = i + 1;
	p->scope = COMP_SCOPE;
	return comp != NULL ? step_compensate(p, comp, i, path) : 0;
}

static int parse_steps(struct parser *p, const json_t *steps, char *path)
{
	size_t n = json_array_size(steps);

	if (steps == NULL)
		return perr(p, "",
		            ": missing \"steps\" (give an array of steps, each {\"name\", "
		            "\"activity\"})");
	if (!json_is_array(steps))
		return perr(p, "steps", " is %s; give an array of steps", msg_json_kind(steps));
	if (n > FLOW_MAX_STEPS)
		return perr(p, "steps",
		            " has %zu steps; at most %d are allowed (split the work into several "
		            "workflow types)",
		            n, FLOW_MAX_STEPS);
	p->f->steps = alloc(n, sizeof(*p->f->steps));
	p->f->nsteps = (int)n;
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < (int)n; i++) {
			const json_t *v = json_array_get(steps, (size_t)i);

			snprintf(path, PATH_LEN, "steps[%d]", i);
			if ((pass == 0 ? step_head(p, v, i, path) : step_body(p, v, i, path)) != 0)
				return -1;
		}
	return 0;
}

static int type_find(const json_t *v)
{
	const char *name = json_string_value(v);

	for (int t = 0; name != NULL && t <= FT_ANY; t++)
		if (strcmp(field_types[t].name, name) == 0)
			return t;
	return -1;
}

/* "input": {FIELD: TYPE} */
static int parse_fields(struct parser *p, const json_t *spec)
{
	const char *key;
	json_t *v;

	if (spec == NULL)
		return 0;
	if (!json_is_object(spec))
		return perr(p, "input", " is %s; give an object {FIELD: TYPE} (types: %s)",
		            msg_json_kind(spec), TYPES);
	p->f->fields = alloc(json_object_size(spec), sizeof(*p->f->fields));
	json_object_foreach((json_t *)spec, key, v)
	{
		int t = type_find(v);

		if (!json_is_string(v))
			return perr(p, "input", ".%s is %s; give a type: %s", key, msg_json_kind(v),
			            TYPES);
		if (t < 0)
			return perr(p, "input", ".%s: unknown type \"%s\" (use %s)", key,
			            json_string_value(v), TYPES);
		p->f->fields[p->f->nfields].name = xstrdup(key);
		p->f->fields[p->f->nfields++].type = (enum field_type)t;
	}
	return 0;
}

static const struct field *field_find(const struct flow *f, const char *name)
{
	for (int i = 0; i < f->nfields; i++)
		if (strcmp(f->fields[i].name, name) == 0)
			return &f->fields[i];
	return NULL;
}

/* "defaults": {FIELD: VALUE}, each of its field's type */
static int parse_defaults(struct parser *p, const json_t *v)
{
	const char *key;
	json_t *val;

	if (v != NULL && !json_is_object(v))
		return perr(p, "defaults", " is %s; give an object {FIELD: VALUE}",
		            msg_json_kind(v));
	json_object_foreach((json_t *)v, key, val)
	{
		const struct field *fd = field_find(p->f, key);

		if (fd != NULL && !type_ok(fd->type, val))
			return perr(p, "defaults", ".%s is %s; give %s (the type of input.%s)", key,
			            msg_json_kind(val), field_types[fd->type].give, key);
	}
	p->f->defaults = v != NULL ? must(json_deep_copy(v)) : must(json_object());
	return 0;
}

static int parse_id_field(struct parser *p, const json_t *v)
{
	if (v == NULL)
		return 0;
	if (!json_is_string(v) || json_string_length(v) == 0)
		return perr(p, "id_field", " is %s; give the name of an input field",
		            json_is_string(v) ? "empty" : msg_json_kind(v));
	p->f->id_field = xstrdup(json_string_value(v));
	return 0;
}

static int parse_def(struct parser *p, const json_t *def, char *path)
{
	static const char *const members[] = {"id_field", "input",  "defaults",
	                                      "steps",    "result", NULL};

	if (!json_is_object(def))
		return perr(p, "", ": the definition is %s; give an object with \"steps\"",
		            def != NULL ? msg_json_kind(def) : "missing");
	if (check_members(p, def, members, "") != 0 ||
	    parse_id_field(p, json_object_get(def, "id_field")) != 0 ||
	    parse_fields(p, json_object_get(def, "input")) != 0 ||
	    parse_defaults(p, json_object_get(def, "defaults")) != 0 ||
	    parse_steps(p, json_object_get(def, "steps"), path) != 0)
		return -1;
	path[0] = '\0';
	p->see = p->f->nsteps;
	p->self = -1;
	return tpl_member(p, def, "result", path, &p->f->result);
}

struct flow *flow_parse(const json_t *def, const char *path_prefix,
                        int (*activity_known)(void *arg, const char *name), void *arg, char *err,
                        size_t errlen)
{
	struct parser p = {.prefix = path_prefix != NULL ? path_prefix : "",
	                   .known = activity_known,
	                   .arg = arg,
	                   .err = err,
	                   .errlen = errlen,
	                   .self = -1,
	                   .scope = STEP_SCOPE};
	char path[PATH_LEN] = "";

	p.f = alloc(1, sizeof(*p.f));
	if (parse_def(&p, def, path) == 0)
		return p.f;
	flow_free(p.f);
	return NULL;
}

/* ---- a start ------------------------------------------------------------- */

int flow_prepare(const struct flow *f, json_t *input, char *err, size_t errlen)
{
	const char *key;
	json_t *v;

	if (!json_is_object(input)) {
		snprintf(err, errlen, "input is %s; give a JSON object",
		         input != NULL ? msg_json_kind(input) : "missing");
		return -1;
	}
	json_object_foreach(f->defaults, key, v) if (json_object_get(input, key) == NULL)
	    json_object_set_new(input, key, must(json_deep_copy(v)));
	for (int i = 0; i < f->nfields; i++) {
		const struct field *fd = &f->fields[i];
		const json_t *val = json_object_get(input, fd->name);

		if (val == NULL) {
			snprintf(err, errlen, "input.%s: missing (give %s)", fd->name,
			         field_types[fd->type].give);
			return -1;
		}
		if (!type_ok(fd->type, val)) {
			snprintf(err, errlen, "input.%s is %s; give %s", fd->name,
			         msg_json_kind(val), field_types[fd->type].give);
			return -1;
		}
	}
	return 0;
}

/* ---- a replay: building values ---------------------------------------------- */

struct step_state {
	int seq;              /* its step number; -1: it has not completed */
	const json_t *result; /* BORROWED from the engine, for this run only */
};

struct exec {
	const struct flow *f;
	struct idem_wf_run *run;
	struct step_state *st; /* one per step */
};

/* An array index token: "0" or digits without a leading zero; else
 * (size_t)-1, which no array reaches. */
static size_t array_index(const char *tok)
{
	size_t n = strlen(tok);

	if (n == 0 || n > 9 || strspn(tok, "0123456789") != n || (tok[0] == '0' && n > 1))
		return (size_t)-1;
	return (size_t)strtoul(tok, NULL, 10);
}

/* The value at tokens under v: a NEW copy, or NULL when it is missing. */
static json_t *walk(const json_t *v, char *const *tokens, int n)
{
	for (int i = 0; i < n && v != NULL; i++) {
		if (json_is_object(v))
			v = json_object_get(v, tokens[i]);
		else if (json_is_array(v))
			v = json_array_get(v, array_index(tokens[i]));
		else
			v = NULL;
	}
	return v != NULL ? must(json_deep_copy(v)) : NULL;
}

/* "namespace/workflow_id/SEQ" (NEW) */
static json_t *step_key(const struct exec *x, int seq)
{
	return must(json_sprintf("%s/%s/%d", x->run->namespace_, x->run->workflow_id, seq));
}

/* The value p points at: NEW, or NULL when it is missing. */
static json_t *ptr_resolve(const struct exec *x, const struct ptr *p)
{
	switch (p->root) {
	case PTR_INPUT:
		return walk(x->run->input, p->tokens + p->first, p->ntokens - p->first);
	case PTR_RESULT:
		if (x->st[p->step].seq < 0)
			return NULL;
		return walk(x->st[p->step].result, p->tokens + p->first, p->ntokens - p->first);
	case PTR_STEP_KEY:
		return x->st[p->step].seq < 0 ? NULL : step_key(x, x->st[p->step].seq);
	case PTR_WF_ID:
		return must(json_string(x->run->workflow_id));
	case PTR_WF_NS:
		return must(json_string(x->run->namespace_));
	case PTR_KEY:
		return step_key(x, x->run->next_step);
	case PTR_SEQ:
		return must(json_integer(x->run->next_step));
	}
	return NULL;
}

/* The value of t: NEW, or NULL when t is a reference to something missing. */
static json_t *tpl_eval(const struct exec *x, const struct tpl *t)
{
	json_t *out = NULL, *v;

	switch (t->kind) {
	case TPL_LITERAL:
		return must(json_deep_copy(t->literal));
	case TPL_RAN:
		return must(json_boolean(x->st[t->step].seq >= 0));
	case TPL_REF:
		for (int i = 0; i < t->nptrs && out == NULL; i++)
			out = ptr_resolve(x, &t->ptrs[i]);
		return out;
	case TPL_OBJECT:
		out = must(json_object());
		for (int i = 0; i < t->nkids; i++)
			if ((v = tpl_eval(x, t->kids[i])) != NULL)
				json_object_set_new(out, t->keys[i], v);
		return out;
	case TPL_ARRAY:
		out = must(json_array());
		for (int i = 0; i < t->nkids; i++) {
			v = tpl_eval(x, t->kids[i]);
			json_array_append_new(out, v != NULL ? v : must(json_null()));
		}
		return out;
	}
	return NULL;
}

/* A call's input or the result (NEW): t's value, null when it is missing;
 * no template: the workflow input. */
static json_t *tpl_build(const struct exec *x, const struct tpl *t)
{
	json_t *v = t != NULL ? tpl_eval(x, t) : walk(x->run->input, NULL, 0);

	return v != NULL ? v : must(json_null());
}

/* ---- a replay: conditions --------------------------------------------------- */

static int number_order(const json_t *a, const json_t *b)
{
	double da, db;

	if (json_is_integer(a) && json_is_integer(b)) {
		json_int_t ia = json_integer_value(a), ib = json_integer_value(b);

		return (ia > ib) - (ia < ib);
	}
	da = json_number_value(a);
	db = json_number_value(b);
	return (da > db) - (da < db);
}

static int string_order(const json_t *a, const json_t *b)
{
	size_t la = json_string_length(a), lb = json_string_length(b);
	int c = memcmp(json_string_value(a), json_string_value(b), la < lb ? la : lb);

	return c != 0 ? c : (la > lb) - (la < lb);
}

/* a OP b: numbers by value, strings bytewise; other values are equal or
 * not, and never ordered. */
static int compare_values(enum cond_op op, const json_t *a, const json_t *b)
{
	int order;

	if (json_is_number(a) && json_is_number(b))
		order = number_order(a, b);
	else if (json_is_string(a) && json_is_string(b))
		order = string_order(a, b);
	else if (op == COND_EQ || op == COND_NE)
		return json_equal(a, b) == (op == COND_EQ);
	else
		return 0;
	switch (op) {
	case COND_EQ:
		return order == 0;
	case COND_NE:
		return order != 0;
	case COND_LT:
		return order < 0;
	case COND_LE:
		return order <= 0;
	case COND_GT:
		return order > 0;
	default:
		return order >= 0;
	}
}

static int cond_eval(const struct exec *x, const struct cond *c)
{
	json_t *a = NULL, *b = NULL;
	int holds;

	switch (c->op) {
	case COND_CONST:
		return c->value;
	case COND_AND:
		for (int i = 0; i < c->nkids; i++)
			if (!cond_eval(x, c->kids[i]))
				return 0;
		return 1;
	case COND_OR:
		for (int i = 0; i < c->nkids; i++)
			if (cond_eval(x, c->kids[i]))
				return 1;
		return 0;
	case COND_NOT:
		return !cond_eval(x, c->kids[0]);
	case COND_EXISTS:
		a = tpl_eval(x, c->a);
		holds = a != NULL;
		break;
	default:
		a = tpl_eval(x, c->a);
		b = tpl_eval(x, c->b);
		holds = a != NULL && b != NULL && compare_values(c->op, a, b);
		break;
	}
	json_decref(a);
	json_decref(b);
	return holds;
}

/* ---- a replay: steps and compensations ------------------------------------- */

/* Runs step i: 1 when it completed or was skipped, else what the call
 * said (0 pending, -1 failed). */
static int step_run(struct exec *x, int i)
{
	const struct flow_step *s = &x->f->steps[i];
	json_t *result = NULL;
	int seq = x->run->next_step, rc;

	if (s->when != NULL && !cond_eval(x, s->when))
		return 1;
	rc =
	    idem_wf_activity_with(x->run, s->activity, s->options, tpl_build(x, s->input), &result);
	if (rc == 1) {
		x->st[i].seq = seq;
		x->st[i].result = result;
	}
	return rc;
}

/* The engine says the history no longer matches: nothing to compensate
 * (the calls would not match it either). */
static int nondeterminism(const struct idem_wf_run *run)
{
	return strncmp(run->error, "nondeterminism", strlen("nondeterminism")) == 0;
}

/* Appends printf text to buf (len bytes), truncating. */
static void append(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

struct undo {
	char done[512];   /* "b, a": the compensations that completed */
	char failed[512]; /* "; compensation ACT of step NAME failed: ERROR"... */
};

/* Compensates step i when it completed and has a compensation: what the
 * call said (1 also when there is nothing to do). */
static int compensate_step(struct exec *x, int i, struct undo *u)
{
	const struct flow_step *s = &x->f->steps[i];
	json_t *result = NULL;
	int rc;

	if (x->st[i].seq < 0 || s->comp_activity == NULL)
		return 1;
	rc = idem_wf_activity(x->run, s->comp_activity, tpl_build(x, s->comp_input), &result);
	if (rc == 1)
		append(u->done, sizeof(u->done), "%s%s", u->done[0] != '\0' ? ", " : "", s->name);
	else if (rc < 0 && !nondeterminism(x->run))
		append(u->failed, sizeof(u->failed), "; compensation %s of step %s failed: %s",
		       s->comp_activity, s->name, x->run->error);
	return rc;
}

/* Step failed failed for good (run->error says why): compensates the
 * steps before it, latest first, all of them even when one fails. */
static enum idem_wf_outcome compensate(struct exec *x, int failed)
{
	struct idem_wf_run *run = x->run;
	char cause[sizeof(run->error)];
	struct undo u = {"", ""};

	if (nondeterminism(run))
		return IDEM_WF_FAIL;
	memcpy(cause, run->error, sizeof(cause));
	cause[sizeof(cause) - 1] = '\0';
	for (int i = failed - 1; i >= 0; i--) {
		int rc = compensate_step(x, i, &u);

		if (rc == 0)
			return IDEM_WF_SUSPEND;
		if (rc < 0 && nondeterminism(run))
			return IDEM_WF_FAIL;
	}
	memcpy(run->error, cause, sizeof(cause));
	append(run->error, sizeof(run->error), "%s%s%s", u.done[0] != '\0' ? "; compensated: " : "",
	       u.done, u.failed);
	return IDEM_WF_FAIL;
}

/* {NAME: result} of the steps that ran, in step order (NEW). */
static json_t *default_result(const struct exec *x)
{
	json_t *out = must(json_object());

	for (int i = 0; i < x->f->nsteps; i++)
		if (x->st[i].seq >= 0)
			json_object_set_new(out, x->f->steps[i].name,
			                    x->st[i].result != NULL
			                        ? must(json_deep_copy(x->st[i].result))
			                        : must(json_null()));
	return out;
}

enum idem_wf_outcome flow_run(const struct flow *f, struct idem_wf_run *run)
{
	struct exec x = {f, run, alloc((size_t)f->nsteps, sizeof(*x.st))};
	enum idem_wf_outcome out = IDEM_WF_DONE;
	int i, rc = 1;

	for (i = 0; i < f->nsteps; i++)
		x.st[i].seq = -1;
	for (i = 0; i < f->nsteps && rc == 1; i++)
		rc = step_run(&x, i);
	if (rc == 0)
		out = IDEM_WF_SUSPEND;
	else if (rc < 0)
		out = compensate(&x, i - 1);
	else
		run->result = f->result != NULL ? tpl_build(&x, f->result) : default_result(&x);
	free(x.st);
	return out;
}
