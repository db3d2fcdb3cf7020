/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kubernetes Status bodies, reasons and Retry-After values.
 *
 * Input: two bytes of HTTP code, then text used three ways: as a JSON body
 * for koc__status_parse, as a reason name, and as a Retry-After header value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/client-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 2)
                return 0;
        long code = (long)((data[0] << 8) | data[1]) % 1000;
        char *text = strndup((const char *)data + 2, size - 2);
        if (!text)
                return 0;

        cJSON *body = cJSON_ParseWithLength((const char *)data + 2, size - 2);
        koc_status st;
        koc__status_parse(body, code, &st);
        if ((unsigned)st.reason >= _KOC_REASON_MAX)
                abort();
        if (st.retry_after_usec > UINT64_C(86400) * 365 * KOC_USEC_PER_SEC)
                abort();
        if (st.message)
                (void)strlen(st.message);
        (void)strlen(koc_reason_to_string(st.reason));
        cJSON_Delete(body);

        koc_reason r = koc_reason_from_status(text, code);
        if ((unsigned)r >= _KOC_REASON_MAX)
                abort();

        uint64_t usec = 0;
        if (koc__parse_retry_after(text, UINT64_C(1795000000) * KOC_USEC_PER_SEC, &usec) == 0 &&
            usec > UINT64_C(86400) * KOC_USEC_PER_SEC)
                abort();
        free(text);
        return 0;
}
