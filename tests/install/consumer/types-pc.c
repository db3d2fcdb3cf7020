/* libkoc-types through pkg-config (koc-types.pc). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <koc/types/k8s.h>

int main(void) {
        koc_core_v1_config_map cm = {.metadata = {.name = "c"}};
        cJSON *j = koc_core_v1_config_map_to_json(&cm);
        char *t = j ? cJSON_PrintUnformatted(j) : NULL;
        int bad = !t || strcmp(t, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\"}}") != 0;
        if (bad)
                fprintf(stderr, "types-pc: %s\n", t ? t : "(null)");
        free(t);
        cJSON_Delete(j);
        return bad;
}
