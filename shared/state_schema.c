/* state_schema.c — see state_schema.h. */
#include "state_schema.h"

const char *const state_schema_sqlite[] = {
    "CREATE TABLE workflows ("
    "  id INTEGER PRIMARY KEY,"
    "  namespace TEXT NOT NULL,"
    "  workflow_id TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  input TEXT NOT NULL,"
    "  status TEXT NOT NULL,"
    "  result TEXT,"
    "  error TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  closed_at INTEGER,"
    "  UNIQUE (namespace, workflow_id));"
    "CREATE INDEX workflows_status ON workflows(status, id);"
    "CREATE TABLE steps ("
    "  wf INTEGER NOT NULL REFERENCES workflows(id),"
    "  seq INTEGER NOT NULL,"
    "  activity TEXT NOT NULL,"
    "  input TEXT NOT NULL,"
    "  status TEXT NOT NULL,"
    "  attempt INTEGER NOT NULL,"
    "  heartbeat TEXT,"
    "  result TEXT,"
    "  error_type TEXT,"
    "  error_message TEXT,"
    "  next_attempt_at INTEGER NOT NULL,"
    "  PRIMARY KEY (wf, seq)) WITHOUT ROWID;"
    "CREATE TABLE events ("
    "  id INTEGER PRIMARY KEY,"
    "  wf INTEGER NOT NULL REFERENCES workflows(id),"
    "  seq INTEGER,"
    "  attempt INTEGER,"
    "  kind TEXT NOT NULL,"
    "  ts INTEGER NOT NULL,"
    "  pid INTEGER,"
    "  detail TEXT);"
    "CREATE INDEX events_wf ON events(wf, id);",
    /* 2: when a step was first scheduled, for SCHEDULE_TO_CLOSE_TIMEOUT. */
    "ALTER TABLE steps ADD COLUMN scheduled_at INTEGER NOT NULL DEFAULT 0;",
    /* 3: the counts GET /v1/stats and /metrics show, kept up to date in
     * each turn's transaction instead of counted over every row at each
     * request (which blocked the loop for 0.15 s at 100,000 workflows). */
    "CREATE TABLE counters (id INTEGER PRIMARY KEY CHECK (id = 1), doc TEXT NOT NULL);"
    "INSERT INTO counters SELECT 1, json_group_object(name, n) FROM ("
    "  SELECT 'workflows.' || status AS name, count(*) AS n FROM workflows GROUP BY status"
    "  UNION ALL SELECT 'steps.' || status, count(*) FROM steps GROUP BY status"
    "  UNION ALL SELECT 'events.' || kind, count(*) FROM events GROUP BY kind"
    "  UNION ALL SELECT 'attempts.total', coalesce(sum(attempt), 0) FROM steps);",
    /* 4: RETENTION. Closed workflows by the time they closed, for the
     * pruner; and per namespace, how many were pruned and the latest
     * closed_at among them (the checker excuses an app's row applied by
     * then whose workflow is gone). */
    "CREATE INDEX IF NOT EXISTS workflows_closed ON workflows(closed_at, id)"
    "  WHERE closed_at IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS pruned (namespace TEXT PRIMARY KEY,"
    "  workflows INTEGER NOT NULL,"
    "  through INTEGER NOT NULL);",
    /* 5: the fault plans a supervisor ran under: the config's at each
     * start, and each change made at runtime (PUT /v1/faults, SIGHUP).
     * An attempt's "started" event names the plan in force (its id), so
     * that the run replays from its history. */
    "CREATE TABLE IF NOT EXISTS fault_plans (id INTEGER PRIMARY KEY,"
    "  ts INTEGER NOT NULL,"
    "  supervisor INTEGER,"
    "  action TEXT NOT NULL,"
    "  plan TEXT NOT NULL,"
    "  until INTEGER);",
};

const int state_schema_sqlite_n =
    (int)(sizeof(state_schema_sqlite) / sizeof(state_schema_sqlite[0]));
