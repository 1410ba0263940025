/* activities.h — how a worker runs one attempt of an app's activity
 * (shared/idem_app.h): the app's table finds it by name. */
#ifndef IDEM_ACTIVITIES_H
#define IDEM_ACTIVITIES_H

#include "idem_app.h"
#include "msg.h"

/* Runs one attempt of t->activity, from env->app's activities. Returns 0
 * with out->result, or -1 with the error fields set; an activity the app
 * does not have is a non-retryable UnknownActivity naming it and the
 * ones it has. */
int activity_run(const struct idem_activity_env *env, const struct msg_task *t,
                 struct idem_activity_outcome *out);

#endif
