/* SPDX-License-Identifier: Apache-2.0 */
/*
 * koc-example-memcached's admission webhooks (koc/webhook.h), served by every
 * replica when --webhook-bind-address is set: a defaulter (spec.containerPort
 * defaults to 11211), a validator (metadata.name at most 40 characters;
 * spec.size changes by at most 3 at once), and the conversion between
 * v1alpha1 (the hub, stored) and v1, where spec.size is called spec.replicas.
 */
#include <errno.h>
#include <string.h>

#include "webhooks.h"

static int set_defaults(koc_admission *a, cJSON *object, void *userdata) {
        cJSON *spec = cJSON_GetObjectItemCaseSensitive(object, "spec");
        if (!spec)
                spec = cJSON_AddObjectToObject(object, "spec");
        if (!cJSON_IsObject(spec))
                return koc_admission_deny(a, "spec: must be an object");
        if (!cJSON_GetObjectItemCaseSensitive(spec, "containerPort") &&
            !cJSON_AddNumberToObject(spec, "containerPort", 11211))
                return -ENOMEM;
        return 0;
}

static double spec_size(const cJSON *object) {
        const cJSON *spec = cJSON_GetObjectItemCaseSensitive(object, "spec");
        return cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(spec, "size"));
}

static int validate(koc_admission *a, void *userdata) {
        const cJSON *obj = koc_admission_get_object(a), *old = koc_admission_get_old_object(a);
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(md, "name"));
        if (name && strlen(name) > 40)
                return koc_admission_deny(a, "metadata.name: must be at most 40 characters (it "
                                             "has %zu)", strlen(name));
        if (obj && old && strcmp(koc_admission_get_operation(a), "UPDATE") == 0) {
                double from = spec_size(old), to = spec_size(obj);
                if (to - from > 3 || from - to > 3)
                        return koc_admission_deny(a, "spec.size: may change by at most 3 at "
                                                     "once (from %.0f to %.0f)", from, to);
        }
        return 0;
}

/* v1 is a spoke of the hub v1alpha1: spec.replicas there, spec.size here. */
static int rename_spec_field(cJSON *object, const char *from, const char *to) {
        cJSON *spec = cJSON_GetObjectItemCaseSensitive(object, "spec");
        cJSON *v = cJSON_IsObject(spec) ? cJSON_DetachItemFromObjectCaseSensitive(spec, from) : NULL;
        if (v)
                cJSON_AddItemToObject(spec, to, v);
        return 0;
}

static int v1_to_hub(cJSON *object, void *userdata) {
        return rename_spec_field(object, "replicas", "size");
}

static int v1_from_hub(cJSON *object, void *userdata) {
        return rename_spec_field(object, "size", "replicas");
}

int memcached_add_webhooks(koc_manager *m, const koc_manager_config *cfg,
                           const koc_resource *memcacheds) {
        if (!cfg->webhook_bind_address || strcmp(cfg->webhook_bind_address, "0") == 0)
                return 0;
        if (koc_webhook_add_defaulter(m, memcacheds, set_defaults, NULL) < 0 ||
            koc_webhook_add_validator(m, memcacheds, validate, NULL) < 0 ||
            koc_webhook_add_conversion(m, memcacheds->group, memcacheds->kind, "v1alpha1") < 0 ||
            koc_webhook_add_conversion_spoke(m, memcacheds->group, memcacheds->kind, "v1",
                                             v1_to_hub, v1_from_hub, NULL) < 0)
                return -EINVAL;
        return 0;
}
