/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Lease record's JSON codec (see lease-record.h).  Reading is lenient
 * where client-go is (absent fields, any RFC 3339 fraction) and strict where
 * a guess would be unsafe: an over-long holder is marked truncated, never
 * ours; an over-long leaseDurationSeconds is clamped, never dropped.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lease-record.h"
#include "core/util.h"
#include "koc/time.h"

static void copy_str(char *dst, size_t size, const char *src) {
        snprintf(dst, size, "%s", src ? src : "");
}

static int parse_time(const cJSON *spec, const char *field, uint64_t *ret) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(spec, field);
        *ret = 0;
        if (!cJSON_IsString(v) || !v->valuestring[0])
                return 0;
        if (koc_parse_rfc3339(v->valuestring, ret) < 0)
                *ret = 0; /* unreadable timestamps are not used for decisions */
        return 0;
}

int koc__lease_record_from_json(const cJSON *obj, lease_record *ret) {
        lease_record r = {0};
        if (!cJSON_IsObject(obj))
                return -EINVAL;
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
        if (!cJSON_IsObject(meta))
                return -EINVAL;
        const cJSON *rv = cJSON_GetObjectItemCaseSensitive(meta, "resourceVersion");
        if (cJSON_IsString(rv)) {
                if (strlen(rv->valuestring) >= sizeof r.resource_version)
                        return -EINVAL;
                copy_str(r.resource_version, sizeof r.resource_version, rv->valuestring);
        }
        const cJSON *spec = cJSON_GetObjectItemCaseSensitive(obj, "spec");
        if (cJSON_IsObject(spec)) {
                const cJSON *h = cJSON_GetObjectItemCaseSensitive(spec, "holderIdentity");
                if (cJSON_IsString(h)) {
                        if (strlen(h->valuestring) >= sizeof r.holder)
                                r.holder_truncated = true;
                        copy_str(r.holder, sizeof r.holder, h->valuestring);
                }
                const cJSON *d = cJSON_GetObjectItemCaseSensitive(spec, "leaseDurationSeconds");
                /* Any positive int32 is valid; more is clamped, never
                 * dropped: a shorter wait than the holder's would let us take
                 * over while it still leads. */
                if (cJSON_IsNumber(d) && d->valuedouble > 0)
                        r.lease_duration_seconds =
                                d->valuedouble < INT32_MAX ? (int64_t)d->valuedouble : INT32_MAX;
                const cJSON *t = cJSON_GetObjectItemCaseSensitive(spec, "leaseTransitions");
                if (cJSON_IsNumber(t) && t->valuedouble > 0 && t->valuedouble < 4e9)
                        r.lease_transitions = (uint64_t)t->valuedouble;
                parse_time(spec, "acquireTime", &r.acquire_time);
                parse_time(spec, "renewTime", &r.renew_time);
        }
        *ret = r;
        return 0;
}

static bool set_string(cJSON *obj, const char *key, const char *value) {
        koc__json_delete_all(obj, key);
        return cJSON_AddStringToObject(obj, key, value) != NULL;
}

static bool set_number(cJSON *obj, const char *key, double value) {
        koc__json_delete_all(obj, key);
        return cJSON_AddNumberToObject(obj, key, value) != NULL;
}

static cJSON *object_child(cJSON *obj, const char *key) {
        cJSON *c = cJSON_GetObjectItemCaseSensitive(obj, key);
        if (!cJSON_IsObject(c)) {
                koc__json_delete_all(obj, key);
                return cJSON_AddObjectToObject(obj, key);
        }
        /* Keep the first (the one koc__lease_record_from_json reads), drop any
         * duplicate after it. */
        cJSON_DetachItemViaPointer(obj, c);
        koc__json_delete_all(obj, key);
        if (!cJSON_AddItemToObject(obj, key, c)) {
                cJSON_Delete(c);
                return NULL;
        }
        return c;
}

cJSON *koc__lease_record_to_json(const cJSON *base, const char *namespace_, const char *name,
                                 const lease_record *rec) {
        char acquire[KOC_MICROTIME_MAX], renew[KOC_MICROTIME_MAX];
        cJSON *o = base ? cJSON_Duplicate(base, true) : cJSON_CreateObject();
        if (!o)
                return NULL;
        cJSON *meta = object_child(o, "metadata");
        cJSON *spec = object_child(o, "spec");
        bool ok = meta && spec && set_string(o, "apiVersion", "coordination.k8s.io/v1") &&
                  set_string(o, "kind", "Lease") && set_string(meta, "name", name) &&
                  set_string(meta, "namespace", namespace_);
        if (ok) {
                /* Server-maintained fields that must not be echoed back. */
                koc__json_delete_all(meta, "managedFields");
                koc__json_delete_all(o, "status");
                if (rec->resource_version[0])
                        ok = set_string(meta, "resourceVersion", rec->resource_version);
                else
                        koc__json_delete_all(meta, "resourceVersion");
        }
        /* client-go writes every field of the record, holderIdentity "" included. */
        ok = ok && set_string(spec, "holderIdentity", rec->holder) &&
             set_number(spec, "leaseDurationSeconds", (double)rec->lease_duration_seconds) &&
             set_string(spec, "acquireTime",
                        koc_format_microtime(rec->acquire_time, acquire, sizeof acquire)) &&
             set_string(spec, "renewTime",
                        koc_format_microtime(rec->renew_time, renew, sizeof renew)) &&
             set_number(spec, "leaseTransitions", (double)rec->lease_transitions);
        if (!ok) {
                cJSON_Delete(o);
                return NULL;
        }
        return o;
}
