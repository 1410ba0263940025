/* api_stubs.h — a stand-in back end for supervisor/api.c (see
 * api_stubs.c): the harness drives the real api.c against it. */
#ifndef IDEM_FUZZ_API_STUBS_H
#define IDEM_FUZZ_API_STUBS_H

#include "api.h"
#include "engine.h"
#include "metrics.h"
#include "pool.h"
#include "store.h"
#include "sup.h"
#include "workflow.h"

/* The stand-in engine of sup (sup->base must be set). */
struct engine *stub_engine_new(struct sup *sup);
void stub_engine_free(struct engine *e);

/* What engine_turn_end does for the API: runs the deferred replies. */
void stub_turn_end(struct engine *e);

/* Every armed wait times out in the next turn, as it would at its
 * timeout. */
void stub_expire_waits(struct engine *e);

#endif
