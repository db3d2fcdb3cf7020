/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Lease's JSON form: a coordination.k8s.io/v1 Lease object read into the
 * state machine's lease_record (fsm.h) and written back from one.  The driver
 * (leader.c) translates with these both ways; the state machine itself never
 * sees JSON.
 */
#pragma once

#include <cjson/cJSON.h>

#include "fsm.h"

/* Parses a coordination.k8s.io/v1 Lease object.  Tolerates what client-go and
 * other writers produce: absent fields, RFC 3339 times with any fraction.
 * -EINVAL when obj is not an object or has no metadata. */
int koc__lease_record_from_json(const cJSON *obj, lease_record *ret);
/* The object to send: a copy of base (the last object read, to keep labels,
 * annotations and other spec fields) or a new Lease, with spec set from rec
 * and metadata.resourceVersion set to rec->resource_version (omitted when
 * empty).  NULL on allocation failure. */
cJSON *koc__lease_record_to_json(const cJSON *base, const char *namespace_, const char *name,
                                 const lease_record *rec);
