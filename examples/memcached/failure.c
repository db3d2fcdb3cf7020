/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <string.h>

#include "failure.h"

void memcached_deployment_failure(koc_reconcile_context *ctx, int r, const cJSON *want,
                                  const cJSON *cur, char *why, size_t size) {
        koc_error err = {0};
        char parsed[256];
        if (r >= 0)
                return;
        if (!want)
                snprintf(why, size, "cannot build the Deployment: %s", strerror(-r));
        else if (cur) {
                snprintf(parsed, sizeof parsed, "%s", why);
                snprintf(why, size, "the Deployment written cannot be read: %s", parsed);
        } else if (koc_reconcile_get_last_error(ctx, &err) == r)
                snprintf(why, size, "%s", err.message);
        else /* nothing sent, or an earlier failure's words: not this one's */
                snprintf(why, size, "cannot write the Deployment: %s", strerror(-r));
}
