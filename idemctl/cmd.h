/* cmd.h — idemctl's own commands, in main.c's table with the app's
 * (shared/idem_app.h). Each gets the arguments after its name and returns
 * the exit code (ctl.h). By group:
 *   cmd_workflow.c  start, show, get, list, wait
 *   cmd_stats.c     stats (and stats --watch), top
 *   cmd_check.c     check (online, --offline, --wait), panel
 *   cmd_faults.c    faults (and faults set, off, reset) */
#ifndef IDEMCTL_CMD_H
#define IDEMCTL_CMD_H

#include "ctl.h"

/* start [--type T] [--input JSON] [the app's flags] [--workflow-id ID]
 * [--wait SECONDS]: POST /v1/workflows. */
int cmd_start(struct ctl *c, int argc, char **argv);
int cmd_show(struct ctl *c, int argc, char **argv);
int cmd_get(struct ctl *c, int argc, char **argv);
int cmd_list(struct ctl *c, int argc, char **argv);
int cmd_wait(struct ctl *c, int argc, char **argv);
int cmd_stats(struct ctl *c, int argc, char **argv);
/* top [--interval SECONDS] [--count N]: the pool and the counters, live. */
int cmd_top(struct ctl *c, int argc, char **argv);
/* Exits 0 when every invariant holds and no workflow runs, 1 when one is
 * violated, 6 when none is but some workflow still runs. */
int cmd_check(struct ctl *c, int argc, char **argv);
int cmd_panel(struct ctl *c, int argc, char **argv);
/* faults [set --RATE R ... [--for D] | off [--for D] | reset]: GET or PUT
 * /v1/faults. */
int cmd_faults(struct ctl *c, int argc, char **argv);

#endif
