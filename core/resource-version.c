/* SPDX-License-Identifier: Apache-2.0 */
#include "resource-version.h"

#include <string.h>

bool koc__rv_is_ordered(const char *s) {
        if (!s || s[0] < '0' || s[0] > '9')
                return false;
        if (s[0] == '0')
                return s[1] == '\0';
        return s[strspn(s, "0123456789")] == '\0';
}

/* Digits only and no leading zero: the longer string is the larger number,
 * and strings of one length order as numbers do.  No width limit, so no
 * overflow. */
enum koc_rv_order koc__rv_compare(const char *a, const char *b) {
        if (!koc__rv_is_ordered(a) || !koc__rv_is_ordered(b))
                return KOC_RV_UNORDERED;
        size_t la = strlen(a), lb = strlen(b);
        int c = la != lb ? (la > lb ? 1 : -1) : strcmp(a, b);
        return c > 0 ? KOC_RV_NEWER : c < 0 ? KOC_RV_OLDER : KOC_RV_SAME;
}
