/* activities.c — runs an app's activity by name (activities.h). */
#include "activities.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

int activity_run(const struct idem_activity_env *env, const struct msg_task *t,
                 struct idem_activity_outcome *out)
{
	const struct idem_activity *a;
	size_t used = 0;
	char names[256] = "";

	assert(env != NULL && env->app != NULL && env->db != NULL && t != NULL && out != NULL);
	memset(out, 0, sizeof(*out));
	for (a = env->app->activities; a->name != NULL; a++) {
		if (t->activity != NULL && strcmp(t->activity, a->name) == 0)
			return a->run(env, t, out);
		if (used < sizeof(names))
			used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s",
			                         used ? " and " : "", a->name);
	}
	snprintf(out->error_type, sizeof(out->error_type), "UnknownActivity");
	snprintf(out->error_message, sizeof(out->error_message),
	         "unknown activity \"%s\" (this worker runs %s)",
	         t->activity != NULL ? t->activity : "", names);
	out->retryable = 0;
	return -1;
}
