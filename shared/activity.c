/* activity.c — the helpers idem_app.h offers an app's activities. */
#include "idem_app.h"

#include <stdarg.h>
#include <stdio.h>

int idem_activity_fail(struct idem_activity_outcome *out, const char *type, int retryable,
                       const char *fmt, ...)
{
	va_list ap;

	snprintf(out->error_type, sizeof(out->error_type), "%s", type);
	va_start(ap, fmt);
	vsnprintf(out->error_message, sizeof(out->error_message), fmt, ap);
	va_end(ap);
	out->retryable = retryable;
	return -1;
}

void idem_activity_at(const struct idem_activity_env *env, enum fault_point p,
                      const struct msg_task *t)
{
	if (env->hooks != NULL && env->hooks->at != NULL)
		env->hooks->at(env->hooks->arg, p, t);
}

void idem_activity_rollback(struct appconn *db)
{
	appconn_rollback(db);
}

int idem_activity_db_error(const struct idem_activity_env *env, struct idem_activity_outcome *out,
                           const char *activity, const char *err)
{
	idem_activity_rollback(env->db);
	return idem_activity_fail(out, "DatabaseError", 1, "%s: app DB: %s", activity, err);
}
