/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JSON Patch diff (what a defaulting webhook answers): for any two
 * documents, apply(diff(a, b), a) == b, or a refusal (-EINVAL for an object
 * with a key twice, -ELOOP too deep), never a crash.
 *
 * Input: document a, a NUL byte, document b.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonpatch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const uint8_t *nul = memchr(data, 0, size);
        if (!nul || size > 1 << 16)
                return 0;
        char *buf = malloc(size + 1);
        if (!buf)
                return 0;
        memcpy(buf, data, size);
        buf[size] = '\0';
        cJSON *a = cJSON_Parse(buf), *b = cJSON_Parse(buf + (nul - data) + 1), *ops = NULL;
        free(buf);
        if (a && b) {
                int r = koc__jsonpatch_diff(a, b, &ops);
                if (r < 0 && r != -EINVAL && r != -ELOOP && r != -ENOMEM)
                        abort();
                /* An object with a key twice does not even equal a copy of
                 * itself (cJSON_Compare(b, b) is true by identity). */
                cJSON *b2 = cJSON_Duplicate(b, 1);
                if (r == 0 && b2 && cJSON_Compare(b, b2, 1)) {
                        cJSON *out = NULL;
                        if (koc__jsonpatch_apply(a, ops, &out) < 0 || !cJSON_Compare(out, b, 1))
                                abort();
                        cJSON_Delete(out);
                }
                cJSON_Delete(b2);
                /* Applying the patch to b itself must be harmless too. */
                if (r == 0) {
                        cJSON *out = NULL;
                        koc__jsonpatch_apply(b, ops, &out);
                        cJSON_Delete(out);
                }
        }
        cJSON_Delete(ops);
        cJSON_Delete(a);
        cJSON_Delete(b);
        return 0;
}
