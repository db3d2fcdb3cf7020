/* The installed koc_generate_types() and libkoc-types: a CRD's type and a
 * built-in Deployment, from a separate project. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <koc/types/k8s.h>

#include "crd-types.h"

int main(void) {
        cJSON *j = cJSON_Parse("{\"spec\":{\"size\":9}}");
        memcached m;
        char err[128];
        if (!j || memcached_parse(j, &m, err, sizeof err) < 0 || memcached_validate(&m, err, sizeof err) >= 0 ||
            strcmp(err, "spec.size: must be <= 5, got 9") != 0) {
                fprintf(stderr, "consumer-types: the CRD's type: '%s'\n", err);
                return 1;
        }
        memcached_free(&m);
        cJSON_Delete(j);
        koc_apps_v1_deployment d = {.metadata = {.name = "m"}, .spec = {.replicas = 2, .has_replicas = true}};
        cJSON *out = koc_apps_v1_deployment_to_json(&d);
        char *text = out ? cJSON_PrintUnformatted(out) : NULL;
        if (!text || strcmp(text, "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"m\"},"
                                  "\"spec\":{\"replicas\":2}}") != 0) {
                fprintf(stderr, "consumer-types: Deployment: %s\n", text ? text : "(null)");
                return 1;
        }
        free(text);
        cJSON_Delete(out);
        return 0;
}
