/* workflow.c — the transfer workflow: debit, then credit, and its
 * activities' options. Deterministic: it decides from its input and the
 * activities' results only. */
#include "transfer.h"
#include "transfer_input.h"

/* Checks the input with the activities' own check (transfer_input.h).
 * Nothing of the config is read: a transfer's input is all it needs. */
static int transfer_prepare(const struct idem_workflow *type, json_t *input,
                            const struct idem_config *cfg, char *err, size_t errlen)
{
	(void)type;
	(void)cfg;
	return transfer_input_check(input, err, errlen);
}

/* The activities' input: the start's four fields (a NEW object). */
static json_t *step_input(const json_t *in)
{
	return json_pack("{s:O, s:O, s:O, s:O}", "transfer_id", json_object_get(in, "transfer_id"),
	                 "from", json_object_get(in, "from"), "to", json_object_get(in, "to"),
	                 "amount", json_object_get(in, "amount"));
}

static json_int_t int_field(const json_t *obj, const char *key)
{
	return json_integer_value(json_object_get(obj, key));
}

/* debit, then credit: a failed debit (InsufficientFunds, UnknownAccount)
 * fails the transfer with nothing moved; a completed debit is always
 * followed by its credit. */
static enum idem_wf_outcome transfer_run(struct idem_wf_run *run)
{
	const json_t *in = run->input;
	json_t *debit = NULL, *credit = NULL;
	int rc;

	rc = idem_wf_activity(run, "debit", step_input(in), &debit);
	if (rc <= 0)
		return rc == 0 ? IDEM_WF_SUSPEND : IDEM_WF_FAIL;
	rc = idem_wf_activity(run, "credit", step_input(in), &credit);
	if (rc <= 0)
		return rc == 0 ? IDEM_WF_SUSPEND : IDEM_WF_FAIL;
	run->result = json_pack(
	    "{s:O, s:O, s:O, s:O, s:I, s:I}", "transfer_id", json_object_get(in, "transfer_id"),
	    "from", json_object_get(in, "from"), "to", json_object_get(in, "to"), "amount",
	    json_object_get(in, "amount"), "from_balance", int_field(debit, "balance"),
	    "to_balance", int_field(credit, "balance"));
	return IDEM_WF_DONE;
}

const struct idem_workflow transfer_workflows[] = {
    {.name = "transfer",
     .run = transfer_run,
     .prepare = transfer_prepare,
     .id_field = "transfer_id"},
    {0},
};

/* Neither heartbeats nor calls out. What retrying cannot heal fails the
 * step at once; the retry policies take the config's defaults. */
const struct idem_activity_options transfer_options[] = {
    {.name = "debit",
     .non_retryable = "InvalidInput,UnknownAccount,InsufficientFunds,TransferConflict"},
    {.name = "credit",
     .non_retryable = "InvalidInput,UnknownAccount,TransferConflict,DebitMissing"},
    {0},
};
