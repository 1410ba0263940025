#include "fault.h"

#include <stdio.h>
#include <string.h>

static const char *const kind_names[FAULT_NKINDS] = {
    "none", "kill", "async_kill", "error", "delay", "peer",
};
static const char *const point_names[FAULT_NPOINTS] = {
    "before_effect",
    "after_effect",
    "after_commit",
    "mid_reply",
};
static const char *const mode_names[] = {"unavailable", "record_then_die"};

const char *fault_kind_name(enum fault_kind k)
{
	return kind_names[k];
}

const char *fault_point_name(enum fault_point p)
{
	return point_names[p];
}

const char *fault_peer_mode_name(enum fault_peer_mode m)
{
	return mode_names[m];
}

int fault_point_parse(const char *name, enum fault_point *out)
{
	for (int i = 0; i < FAULT_NPOINTS; i++)
		if (strcmp(name, point_names[i]) == 0) {
			*out = (enum fault_point)i;
			return 0;
		}
	return -1;
}

int fault_point_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n >= FAULT_POINT_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
		      name[i] == '_'))
			return 0;
	return 1;
}

static void set_point(struct fault_plan *p, enum fault_point point, const char *name)
{
	p->kind = FAULT_KILL;
	p->point = point;
	snprintf(p->point_name, sizeof(p->point_name), "%s",
	         name != NULL ? name : point_names[point]);
}

/* FNV-1a over the bytes, then a splitmix64 finaliser. */
static uint64_t mix(uint64_t h, const void *data, size_t n)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static uint64_t finish(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

double fault_roll(uint64_t seed, const char *ns, const char *workflow_id, int step, int attempt,
                  const char *kind)
{
	uint64_t h = mix(0xcbf29ce484222325ull, &seed, sizeof(seed));
	int32_t nums[2] = {step, attempt};

	/* The NUL terminators keep ("ab","c") apart from ("a","bc"). */
	h = mix(h, ns, strlen(ns) + 1);
	h = mix(h, workflow_id, strlen(workflow_id) + 1);
	h = mix(h, nums, sizeof(nums));
	h = mix(h, kind, strlen(kind) + 1);
	return (double)(finish(h) >> 11) * 0x1.0p-53;
}

int fault_enabled(const struct fault_config *c)
{
	double sum = c->async_kill_rate + c->error_rate + c->delay_rate + c->peer_rate;

	for (int i = 0; i < FAULT_NPOINTS; i++)
		sum += c->kill_rate[i];
	return sum > 0;
}

static int activity_listed(const char *list, const char *activity)
{
	size_t n = strlen(activity);

	if (list[0] == '\0')
		return 1;
	for (const char *p = list; *p != '\0';) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len == n && strncmp(p, activity, n) == 0)
			return 1;
		p += len + (end != NULL);
	}
	return 0;
}

/* A kill planned at one of the activity's own points: u, in [0, body),
 * picks which. */
static void named_kill(const char *const *points, double u, double body, struct fault_plan *out)
{
	size_t n = 0, i;

	while (points[n] != NULL)
		n++;
	i = (size_t)(u / body * (double)n);
	set_point(out, FAULT_NAMED_POINT, points[i < n ? i : n - 1]);
}

void fault_plan_for(const struct fault_config *c, const char *ns, const char *workflow_id, int step,
                    int attempt, const char *activity, int peer, const char *const *points,
                    struct fault_plan *out)
{
#define ROLL(kind) fault_roll(c->seed, ns, workflow_id, step, attempt, kind)
	double u, edge = 0;

	memset(out, 0, sizeof(*out));
	if ((c->max_attempt > 0 && attempt > c->max_attempt) ||
	    !activity_listed(c->activities, activity))
		return;
	u = ROLL("kill");
	if (points != NULL && points[0] != NULL) {
		double body = c->kill_rate[FAULT_BEFORE_EFFECT] + c->kill_rate[FAULT_AFTER_EFFECT] +
		              c->kill_rate[FAULT_AFTER_COMMIT];

		if (u < body) {
			named_kill(points, u, body, out);
			return;
		}
		if (u < body + c->kill_rate[FAULT_MID_REPLY]) {
			set_point(out, FAULT_MID_REPLY, NULL);
			return;
		}
	} else {
		for (int i = 0; i < FAULT_NPOINTS; i++) {
			edge += c->kill_rate[i];
			if (u < edge) {
				set_point(out, (enum fault_point)i, NULL);
				return;
			}
		}
	}
	if (ROLL("async_kill") < c->async_kill_rate) {
		out->kind = FAULT_ASYNC_KILL;
		out->ms = (int64_t)(ROLL("async_kill_delay") * (double)(c->async_kill_max_ms + 1));
	} else if (ROLL("error") < c->error_rate) {
		out->kind = FAULT_ERROR;
		out->after_effect = ROLL("error_when") < 0.5;
	} else if (ROLL("delay") < c->delay_rate) {
		out->kind = FAULT_DELAY;
		out->ms = c->delay_ms;
	} else if (peer && ROLL("peer") < c->peer_rate) {
		out->kind = FAULT_PEER;
		out->mode =
		    ROLL("peer_mode") < 0.5 ? FAULT_PEER_UNAVAILABLE : FAULT_PEER_RECORD_THEN_DIE;
	}
#undef ROLL
}

/* A kill's point by name (a plan built by hand may give the enum only). */
static const char *kill_point(const struct fault_plan *p)
{
	if (p->point_name[0] != '\0' || p->point >= FAULT_NPOINTS)
		return p->point_name;
	return point_names[p->point];
}

json_t *fault_plan_json(const struct fault_plan *p)
{
	switch (p->kind) {
	case FAULT_KILL:
		return json_pack("{s:s, s:s}", "kind", "kill", "point", kill_point(p));
	case FAULT_ERROR:
		return json_pack("{s:s, s:s}", "kind", "error", "when",
		                 p->after_effect ? "after_effect" : "before_effect");
	case FAULT_DELAY:
		return json_pack("{s:s, s:I}", "kind", "delay", "ms", (json_int_t)p->ms);
	case FAULT_PEER:
		return json_pack("{s:s, s:s}", "kind", "peer", "mode", mode_names[p->mode]);
	default:
		return NULL;
	}
}

static int parse_kind(const char *name, enum fault_kind *out)
{
	for (int i = 0; i < FAULT_NKINDS; i++)
		if (strcmp(name, kind_names[i]) == 0) {
			*out = (enum fault_kind)i;
			return 0;
		}
	return -1;
}

int fault_plan_parse(const json_t *j, struct fault_plan *out, char *err, size_t errlen)
{
	const char *kind = NULL, *point = NULL, *when = NULL, *mode = NULL;
	json_int_t ms = 0;
	json_error_t jerr;

	memset(out, 0, sizeof(*out));
	if (j == NULL)
		return 0;
	if (json_unpack_ex((json_t *)j, &jerr, JSON_STRICT, "{s:s, s?s, s?s, s?I, s?s}", "kind",
	                   &kind, "point", &point, "when", &when, "ms", &ms, "mode", &mode) != 0) {
		snprintf(err, errlen, "fault: %s", jerr.text);
		return -1;
	}
	if (parse_kind(kind, &out->kind) != 0 || out->kind == FAULT_ASYNC_KILL) {
		snprintf(err, errlen, "fault: unknown kind \"%s\" (kill, error, delay, peer)",
		         kind);
		return -1;
	}
	if (out->kind == FAULT_KILL) {
		if (point == NULL || !fault_point_name_ok(point)) {
			snprintf(
			    err, errlen,
			    "fault: kill needs \"point\": before_effect, after_effect, "
			    "after_commit, mid_reply or a point the activity names ([a-z0-9_], "
			    "at most %d bytes)",
			    FAULT_POINT_NAME_MAX - 1);
			return -1;
		}
		if (fault_point_parse(point, &out->point) != 0)
			out->point = FAULT_NAMED_POINT;
		snprintf(out->point_name, sizeof(out->point_name), "%s", point);
	}
	out->after_effect = when != NULL && strcmp(when, "after_effect") == 0;
	out->ms = ms;
	if (out->kind == FAULT_PEER) {
		if (mode != NULL && strcmp(mode, mode_names[1]) == 0)
			out->mode = FAULT_PEER_RECORD_THEN_DIE;
		else if (mode == NULL || strcmp(mode, mode_names[0]) != 0) {
			snprintf(err, errlen,
			         "fault: peer needs \"mode\": unavailable or "
			         "record_then_die");
			return -1;
		}
	}
	return 0;
}

void fault_plan_describe(const struct fault_plan *p, char *buf, size_t len)
{
	switch (p->kind) {
	case FAULT_KILL:
		snprintf(buf, len, "kill at %s", kill_point(p));
		break;
	case FAULT_ASYNC_KILL:
		snprintf(buf, len, "async kill after %lld ms", (long long)p->ms);
		break;
	case FAULT_ERROR:
		snprintf(buf, len, "error %s the effect", p->after_effect ? "after" : "before");
		break;
	case FAULT_DELAY:
		snprintf(buf, len, "delay of %lld ms", (long long)p->ms);
		break;
	case FAULT_PEER:
		snprintf(buf, len, "peer %s", mode_names[p->mode]);
		break;
	default:
		snprintf(buf, len, "none");
	}
}
