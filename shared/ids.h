/* ids.h — what an identifier may be, in one place, for the config, the
 * control API and the apps:
 *   a name (NAMESPACE, TASKQUEUE, APP, an app's product or account ids):
 *     1..max characters of A-Z a-z 0-9 _ . -
 *   a workflow id: 1..max printable ASCII characters without a space,
 *     '/', '"' or '\' (it travels in URL paths, JSON and keys).
 * Nothing here logs. */
#ifndef IDEM_IDS_H
#define IDEM_IDS_H

#include <stddef.h>

int ids_name_ok(const char *s, size_t max);
int ids_workflow_id_ok(const char *s, size_t max);

#endif
