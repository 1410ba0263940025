/* inventory.h — the inventory app's parts, joined in app.c. */
#ifndef IDEM_INVENTORY_H
#define IDEM_INVENTORY_H

#include "idem_app.h"

extern const struct idem_workflow inventory_workflows[];
extern const struct idem_activity_options inventory_options[];

#endif
