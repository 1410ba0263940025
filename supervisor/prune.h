/* prune.h — RETENTION: closed workflows past their namespace's retention
 * leave the state DB, a small batch per loop turn (store_prune). */
#ifndef IDEM_PRUNE_H
#define IDEM_PRUNE_H

struct sup;
struct prune;

/* Starts the pruner on sup's loop (nothing to do, and NULL, when every
 * namespace is kept forever). */
struct prune *prune_start(struct sup *sup);
void prune_free(struct prune *p);

#endif
