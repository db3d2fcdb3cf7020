/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the API server posts to the webhook server (framework/manager/
 * webhook.c): the AdmissionReview and ConversionReview checks,
 * koc__webhook_check_review and _check_conversion_review, and the
 * conversion of an accepted ConversionReview's objects through a hub
 * (koc__webhooks_convert) with example.com Widget registered: hub v2,
 * spokes v1 and v3 that move a field and refuse objects without it.
 *
 * Input: one byte (bit 0: ConversionReview), then the request's body.
 *
 * Checked beyond "no crash, leak, UB": an accepted review has a request
 * object with a uid of 1 to 128 bytes; an AdmissionReview's operation is one
 * of the four and CREATE and UPDATE carry an object (UPDATE an oldObject);
 * a refusal says why.  A conversion's answer carries the request's uid and
 * a result; a Success has exactly one converted object per object, each of
 * the desired apiVersion; a Failure has a message and no objects.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <systemd/sd-event.h>

#include "framework/manager/manager-internal.h"

static koc__webhooks *webhooks;

/* v1 "size" <-> v2 "spec.size"; v3 "replicas" <-> v2 "spec.size". */
static int move(cJSON *o, const char *from, const char *to) {
        cJSON *spec = cJSON_GetObjectItemCaseSensitive(o, "spec");
        cJSON *v = strcmp(from, "spec.size") == 0
                           ? cJSON_DetachItemFromObjectCaseSensitive(spec, "size")
                           : cJSON_DetachItemFromObjectCaseSensitive(o, from);
        if (!v)
                return -EINVAL;
        if (strcmp(to, "spec.size") == 0) {
                if (!cJSON_IsObject(spec)) {
                        cJSON_DeleteItemFromObjectCaseSensitive(o, "spec");
                        spec = cJSON_AddObjectToObject(o, "spec");
                }
                if (!spec) {
                        cJSON_Delete(v);
                        return -ENOMEM;
                }
                cJSON_DeleteItemFromObjectCaseSensitive(spec, "size");
                cJSON_AddItemToObject(spec, "size", v);
        } else {
                cJSON_DeleteItemFromObjectCaseSensitive(o, to);
                cJSON_AddItemToObject(o, to, v);
        }
        return 0;
}

static int v1_to_hub(cJSON *o, void *userdata) {
        return move(o, "size", "spec.size");
}
static int v1_from_hub(cJSON *o, void *userdata) {
        return move(o, "spec.size", "size");
}
static int v3_to_hub(cJSON *o, void *userdata) {
        return move(o, "replicas", "spec.size");
}
static int v3_from_hub(cJSON *o, void *userdata) {
        return move(o, "spec.size", "replicas");
}

static void setup(void) {
        sd_event *e = NULL;
        koc_error err = {0};
        if (sd_event_new(&e) < 0 ||
            koc__webhooks_new(e, NULL, NULL, &(koc__webhooks_config){.disabled = true},
                              &webhooks) < 0 ||
            koc__webhooks_add_conversion(webhooks, "example.com", "Widget", "v2", &err) < 0 ||
            koc__webhooks_add_conversion_spoke(webhooks, "example.com", "Widget", "v1", v1_to_hub,
                                               v1_from_hub, NULL, &err) < 0 ||
            koc__webhooks_add_conversion_spoke(webhooks, "example.com", "Widget", "v3", v3_to_hub,
                                               v3_from_hub, NULL, &err) < 0)
                abort();
        sd_event_unref(e); /* the webhooks keep a reference */
}

static void check_admission(const cJSON *review) {
        const cJSON *rq = NULL;
        const char *why = koc__webhook_check_review(review, &rq);
        if (why) {
                if (!why[0] || rq)
                        abort();
                return;
        }
        if (!cJSON_IsObject(rq) || rq != cJSON_GetObjectItemCaseSensitive(review, "request"))
                abort();
        const char *uid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rq, "uid"));
        const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rq, "operation"));
        if (!uid || !uid[0] || strlen(uid) > 128 || !op)
                abort();
        bool create = strcmp(op, "CREATE") == 0, update = strcmp(op, "UPDATE") == 0;
        if (!create && !update && strcmp(op, "DELETE") != 0 && strcmp(op, "CONNECT") != 0)
                abort();
        if ((create || update) && !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(rq, "object")))
                abort();
        if (update && !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(rq, "oldObject")))
                abort();
}

static void check_conversion(const cJSON *review) {
        const cJSON *rq = NULL;
        const char *why = koc__webhook_check_conversion_review(review, &rq);
        if (why) {
                if (!why[0] || rq)
                        abort();
                return;
        }
        const char *uid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rq, "uid"));
        const char *desired =
                cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rq, "desiredAPIVersion"));
        const cJSON *objects = cJSON_GetObjectItemCaseSensitive(rq, "objects");
        if (!uid || !uid[0] || strlen(uid) > 128 || !desired || !cJSON_IsArray(objects))
                abort();

        cJSON *answer = koc__webhooks_convert(webhooks, rq, uid);
        if (!answer)
                return; /* out of memory (malloc_limit_mb) */
        const cJSON *resp = cJSON_GetObjectItemCaseSensitive(answer, "response");
        const cJSON *result = cJSON_GetObjectItemCaseSensitive(resp, "result");
        const char *status = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(result, "status"));
        const cJSON *converted = cJSON_GetObjectItemCaseSensitive(resp, "convertedObjects");
        const char *auid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(resp, "uid"));
        if (!auid || strcmp(auid, uid) != 0 || !status)
                abort();
        if (strcmp(status, "Success") == 0) {
                if (cJSON_GetArraySize(converted) != cJSON_GetArraySize(objects))
                        abort();
                const cJSON *o;
                cJSON_ArrayForEach(o, converted) {
                        const char *av = cJSON_GetStringValue(
                                cJSON_GetObjectItemCaseSensitive(o, "apiVersion"));
                        if (!cJSON_IsObject(o) || !av || strcmp(av, desired) != 0)
                                abort();
                }
        } else if (strcmp(status, "Failure") != 0 || converted ||
                   !cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(result, "message")))
                abort();
        cJSON_Delete(answer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (!webhooks)
                setup();
        if (size < 1)
                return 0;
        cJSON *review = cJSON_ParseWithLength((const char *)data + 1, size - 1);
        if (data[0] & 1)
                check_conversion(review);
        else
                check_admission(review);
        cJSON_Delete(review);
        return 0;
}
