/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>

#include "framework/manager/manager-internal.h"

int koc__manager_renewal_verdict(bool leading, bool state_is_leader, int elector_error,
                                 uint64_t now, uint64_t *confirmed_at, uint64_t limit) {
        if (elector_error < 0)
                return elector_error;
        if (!leading)
                return 0;
        if (state_is_leader) {
                *confirmed_at = now;
                return 0;
        }
        if (now < *confirmed_at || now - *confirmed_at <= limit)
                return 0;
        return -ETIMEDOUT;
}
