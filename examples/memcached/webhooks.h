/* SPDX-License-Identifier: Apache-2.0 */
#ifndef MEMCACHED_WEBHOOKS_H
#define MEMCACHED_WEBHOOKS_H

#include <koc/koc.h>

/* With --webhook-bind-address set (cfg), registers the defaulter, the
 * validator and the v1 conversion of memcacheds on m (before
 * koc_manager_run()); 0 without it, -EINVAL when one cannot be registered
 * (the cause is logged). */
int memcached_add_webhooks(koc_manager *m, const koc_manager_config *cfg,
                           const koc_resource *memcacheds);

#endif
