/* file_app_internal.h — what app.c (loading) and run.c (running its
 * commands) share of a file-defined app. */
#ifndef IDEM_FILE_APP_INTERNAL_H
#define IDEM_FILE_APP_INTERNAL_H

#include "file_app.h"
#include "flow.h"

struct file_activity {
	char *name;
	char **command; /* NULL-ended */
	char **naive;   /* NULL-ended, or NULL: the naive run uses command */
};

struct file_app {
	struct idem_app app; /* what idem sees; its lists point into the rest */
	char *file;          /* the idem.json read */
	char *dir;           /* its directory, absolute: every command's cwd */
	const struct idem_app *base;
	struct file_activity *acts;
	int nacts;
	char **setup;             /* NULL-ended, or NULL */
	char **check;             /* NULL-ended, or NULL */
	int check_kinds_declared; /* its lines are violations only under those kinds */
	char *data_dir;           /* the directory of DATABASE, once open_db has run */
	struct idem_helper helper;
	char *helper_socket; /* relative to the data directory */
	struct flow **flows; /* the workflow types' definitions */
	int nflows;
	/* Its panels: the base app's first (nbase_panels), then its own,
	 * each a command (panel_cmds[i - nbase_panels]). */
	struct idem_app_panel *panels;
	int nbase_panels;
	char ***panel_cmds;
	void **owned; /* every allocation of the load (app.c) */
	size_t nowned, capowned;
};

/* The app this process loaded (one at most). */
extern struct file_app *file_app_loaded;

/* run.c */
int file_app_open_db(const char *path, enum db_sync sync, const struct idem_config *fill_cfg,
                     struct appconn **out, char *err, size_t errlen);
int file_app_run_activity(const struct idem_activity_env *env, const struct msg_task *t,
                          struct idem_activity_outcome *out);
int file_app_check(struct idem_check *c, const struct idem_config *cfg, const char *state_db,
                   char *err, size_t errlen);
int file_app_panel(int index, const struct idem_config *cfg, json_t **out, char *err,
                   size_t errlen);
enum idem_wf_outcome file_app_run_flow(struct idem_wf_run *run);
int file_app_prepare(const struct idem_workflow *type, json_t *input, const struct idem_config *cfg,
                     char *err, size_t errlen);

#endif
