/* transfer_input.h — the input of the transfer workflow and of its two
 * activities, checked by one function: by the workflow type's prepare()
 * when a start is asked and by debit and credit before they touch
 * anything. So whatever an activity would refuse as InvalidInput is
 * refused at start, and the two sides cannot drift apart. Never logs.
 *
 *   start, debit, credit   {"transfer_id":S, "from":S, "to":S, "amount":N}
 *
 * The three take the same four fields, all required, no other allowed:
 * the ids are 1..TRANSFER_ID_MAX characters of A-Z a-z 0-9 _ . -, from
 * and to differ, amount is an integer 1..TRANSFER_AMOUNT_MAX. */
#ifndef IDEM_TRANSFER_INPUT_H
#define IDEM_TRANSFER_INPUT_H

#include <jansson.h>
#include <stddef.h>

#define TRANSFER_ID_MAX 64             /* bytes of a transfer or account id */
#define TRANSFER_AMOUNT_MAX 1000000000 /* the largest amount one transfer moves */

/* Checks input: a JSON object with exactly the four fields, each of its
 * type and in its range, from != to. Returns 0, or -1 with err naming the
 * field, what is wrong and what to give ("input.amount=0 is out of range:
 * give an integer 1..1000000000"). */
int transfer_input_check(const json_t *input, char *err, size_t errlen);

#endif
