/* SPDX-License-Identifier: Apache-2.0 */
/*
 * RFC 3339 timestamps and Go durations.  A timestamp that parses must
 * survive a format/parse round trip; a duration that parses is finite.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s = strndup((const char *)data, size);
        if (!s)
                return 0;
        uint64_t t = 0, t2 = 0, d = 0;
        if (koc_parse_rfc3339(s, &t) == 0) {
                char buf[KOC_MICROTIME_MAX];
                koc_format_microtime(t, buf, sizeof buf);
                if (koc_parse_rfc3339(buf, &t2) < 0 || t2 != t)
                        abort();
        }
        if (koc_parse_duration(s, &d) == 0) {
                char buf[64];
                koc_format_duration(d, buf, sizeof buf);
        }
        free(s);
        return 0;
}
