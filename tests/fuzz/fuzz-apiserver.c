/* SPDX-License-Identifier: Apache-2.0 */
/*
 * koc-apiserver's label and field selectors (apiserver/select.c) and its
 * JSON merge patch and JSON patch (apiserver/patch.c).
 *
 * Input: byte 0 picks the parser; for selectors the rest is the query text
 * (matched against a few labels and an object when it parses); for patches
 * the rest is "document NUL patch", both JSON.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver/apiserver.h"

static cJSON *labels, *pod;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        (void)argc;
        (void)argv;
        labels = cJSON_Parse("{\"app\":\"web\",\"tier\":\"front\",\"a.b/c\":\"\",\"x\":\"1\"}");
        pod = cJSON_Parse("{\"metadata\":{\"name\":\"a\",\"namespace\":\"ns\"},"
                          "\"spec\":{\"nodeName\":\"n1\"},\"status\":{\"phase\":\"Running\"},"
                          "\"type\":\"Normal\"}");
        if (!labels || !pod)
                abort();
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        /* A copy with a NUL after it; may hold a NUL inside (the separator). */
        char *s = malloc(size);
        if (!s)
                return 0;
        memcpy(s, data + 1, size - 1);
        s[size - 1] = '\0';
        char err[256] = "";
        selector *sel = NULL;
        switch (data[0] % 4) {
        case 0:
                if (selector_parse_labels(s, &sel, err, sizeof err) >= 0) {
                        (void)selector_match_labels(sel, labels);
                        (void)selector_match_labels(sel, NULL);
                        selector_free(sel);
                }
                break;
        case 1:
                if (selector_parse_fields(s, &sel, err, sizeof err) >= 0) {
                        (void)selector_match_fields(sel, pod);
                        const char *name = selector_field_name(sel);
                        if (name)
                                (void)strlen(name);
                        selector_free(sel);
                }
                break;
        default: {
                size_t n = strlen(s);
                cJSON *doc = cJSON_ParseWithLength(s, n);
                cJSON *patch = n + 1 < size - 1 ? cJSON_Parse(s + n + 1) : NULL;
                if (!doc || !patch) {
                        cJSON_Delete(doc);
                        cJSON_Delete(patch);
                        break;
                }
                if (data[0] % 4 == 2) {
                        cJSON *m = merge_patch(doc, patch);
                        cJSON_Delete(m);
                } else {
                        (void)json_patch(&doc, patch, err, sizeof err);
                }
                cJSON_Delete(doc);
                cJSON_Delete(patch);
                break;
        }
        }
        free(s);
        return 0;
}
