/* SPDX-License-Identifier: Apache-2.0 */
/*
 * koc-apiserver's structural schemas (apiserver/schema.c): a CRD's schema
 * is checked as on a CRD write, and when it is accepted an object is
 * pruned, defaulted and validated against it, as a whole and as a status
 * write.  Both come from cluster users.
 *
 * Input: "schema NUL object", both JSON.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver/apiserver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        size_t n1 = strlen(s);
        const char *second = n1 < size ? s + n1 + 1 : "{}";
        cJSON *schema = cJSON_Parse(s), *obj = cJSON_Parse(second);
        cJSON *crd = cJSON_CreateObject(), *spec = cJSON_AddObjectToObject(crd, "spec");
        cJSON *versions = cJSON_AddArrayToObject(spec, "versions"), *v = cJSON_CreateObject();
        cJSON_AddStringToObject(v, "name", "v1");
        cJSON_AddItemToObject(cJSON_AddObjectToObject(v, "schema"), "openAPIV3Schema",
                              schema ? schema : cJSON_CreateObject());
        cJSON_AddItemToArray(versions, v);
        char field[1100], msg[1200];
        if (obj && schema_check_crd(crd, field, sizeof field, msg, sizeof msg) == 0) {
                const cJSON *sch = crd_version_schema(crd, "v1");
                for (int status = 0; status < 2; status++) {
                        cJSON *copy = cJSON_Duplicate(obj, true), *causes = NULL;
                        char *pruned = NULL;
                        int r = schema_validate(sch, copy, status, &causes, &pruned);
                        if ((r < 0) != (causes != NULL) && r != -ENOMEM)
                                abort();
                        free(pruned);
                        cJSON_Delete(causes);
                        cJSON_Delete(copy);
                }
        }
        cJSON_Delete(crd);
        cJSON_Delete(obj);
        free(s);
        return 0;
}
