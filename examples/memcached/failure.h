/* SPDX-License-Identifier: Apache-2.0 */
#ifndef MEMCACHED_FAILURE_H
#define MEMCACHED_FAILURE_H

#include <stddef.h>

#include <koc/koc.h>

/* Why the Deployment step of a reconcile failed with r, into why (the
 * Warning Event's and the condition's message): want NULL, building it
 * ran out of memory; cur NULL, the write failed (the server's words when
 * koc_reconcile_get_last_error has them for r); else the answer did not
 * parse, and why holds the parser's message on entry. */
void memcached_deployment_failure(koc_reconcile_context *ctx, int r, const cJSON *want,
                                  const cJSON *cur, char *why, size_t size);

#endif
