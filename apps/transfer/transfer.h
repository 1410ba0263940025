/* transfer.h — the transfer app's parts, joined in app.c: a money
 * transfer between two accounts of the app DB, a debit then a credit.
 *
 * Its activities, run by a worker against the app DB one attempt at a
 * time (activities.c), both with the start's input (transfer_input.h):
 *
 *   debit  {"transfer_id","from","to","amount"}
 *     -> {"transfer_id","account_id","amount","balance","replayed"}
 *     Takes amount from `from` once per transfer_id: the lookup, the
 *     balance update and the debits row are one transaction. Refuses an
 *     unknown account (from or to: a debit whose credit could not land is
 *     never made) with UnknownAccount and a short balance with
 *     InsufficientFunds, both non-retryable and applying nothing.
 *   credit {"transfer_id","from","to","amount"}
 *     -> {"transfer_id","account_id","amount","balance","replayed"}
 *     Gives amount to `to` once per transfer_id, in one transaction with
 *     its credits row, and only when this workflow's debit is there
 *     (DebitMissing otherwise: no credit without its debit).
 *
 * A transfer id belongs to the workflow that first applied it: another
 * workflow naming it is refused (TransferConflict), never handed the
 * first one's result.
 *
 * Faults (shared/fault.h): both offer each crash point to env->hooks
 * (before_effect, after_effect, after_commit), where the worker carries
 * out a kill plan. In naive mode (env->naive) both run without their
 * guards, so a retry after a commit applies twice: the control
 * experiment the checker must catch. */
#ifndef IDEM_TRANSFER_H
#define IDEM_TRANSFER_H

#include "idem_app.h"

extern const struct idem_workflow transfer_workflows[];
extern const struct idem_activity_options transfer_options[];
extern const struct idem_activity transfer_activities[];
extern const struct idem_app_route transfer_routes[];
extern const struct idem_app_panel transfer_panels[];
extern const struct config_app_key transfer_keys[];
/* idemctl's: start's flags and the balance command (ctl.c). */
extern const struct idem_start_flag transfer_start_flags[];
extern const struct idem_app_command transfer_commands[];

/* open_db() of the app: transfer_db_open() with the accounts of
 * TRANSFER_ACCOUNTS. */
int transfer_open_db(const char *where, enum db_sync sync, const struct idem_config *seed_cfg,
                     struct appconn **out, char *err, size_t errlen);

/* The checker's rules (check.c): the kinds, the totals and the rules. */
extern const char *const transfer_check_kinds[];
extern const struct idem_check_total_label transfer_check_total_labels[];
extern const struct idem_check_rule transfer_check_totals[];
extern const struct idem_check_rule transfer_check_rules[];

#endif
