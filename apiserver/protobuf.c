/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Decoding of the Kubernetes protobuf encoding for the few built-in types
 * that kubectl sends as protobuf (kubectl create configmap / secret /
 * namespace use typed clients, which encode request bodies as
 * application/vnd.kubernetes.protobuf).  The body is the "k8s\0" magic and
 * a runtime.Unknown envelope whose raw field is the object; the field
 * numbers come from k8s.io/api/.../generated.proto.  Responses stay JSON:
 * those clients accept it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver.h"

enum ftype {
        F_STRING,
        F_BYTES,
        F_INT,
        F_BOOL,
        F_MSG,
        F_MAP_SS,
        F_MAP_SB,
        F_TIME,
        F_MICROTIME,
        F_RSTRING,
        F_RMSG
};

typedef struct pschema pschema;
typedef struct pfield {
        unsigned num;
        const char *name;
        enum ftype type;
        const pschema *sub;
} pfield;
struct pschema {
        const pfield *fields;
        size_t n;
};

#define SCHEMA(name, ...)                                                                          \
        static const pfield name##_fields[] = {__VA_ARGS__};                                       \
        static const pschema name = {name##_fields, KOC_ELEMENTSOF(name##_fields)}

SCHEMA(owner_ref, {1, "kind", F_STRING, NULL}, {3, "name", F_STRING, NULL},
       {4, "uid", F_STRING, NULL}, {5, "apiVersion", F_STRING, NULL},
       {6, "controller", F_BOOL, NULL}, {7, "blockOwnerDeletion", F_BOOL, NULL});
SCHEMA(object_meta, {1, "name", F_STRING, NULL}, {2, "generateName", F_STRING, NULL},
       {3, "namespace", F_STRING, NULL}, {5, "uid", F_STRING, NULL},
       {6, "resourceVersion", F_STRING, NULL}, {7, "generation", F_INT, NULL},
       {8, "creationTimestamp", F_TIME, NULL}, {9, "deletionTimestamp", F_TIME, NULL},
       {10, "deletionGracePeriodSeconds", F_INT, NULL}, {11, "labels", F_MAP_SS, NULL},
       {12, "annotations", F_MAP_SS, NULL}, {13, "ownerReferences", F_RMSG, &owner_ref},
       {14, "finalizers", F_RSTRING, NULL});
SCHEMA(configmap, {1, "metadata", F_MSG, &object_meta}, {2, "data", F_MAP_SS, NULL},
       {3, "binaryData", F_MAP_SB, NULL}, {4, "immutable", F_BOOL, NULL});
SCHEMA(secret, {1, "metadata", F_MSG, &object_meta}, {2, "data", F_MAP_SB, NULL},
       {3, "type", F_STRING, NULL}, {4, "stringData", F_MAP_SS, NULL},
       {5, "immutable", F_BOOL, NULL});
SCHEMA(namespace_spec, {1, "finalizers", F_RSTRING, NULL});
SCHEMA(namespace, {1, "metadata", F_MSG, &object_meta}, {2, "spec", F_MSG, &namespace_spec});
SCHEMA(service_account, {1, "metadata", F_MSG, &object_meta});
SCHEMA(lease_spec, {1, "holderIdentity", F_STRING, NULL}, {2, "leaseDurationSeconds", F_INT, NULL},
       {3, "acquireTime", F_MICROTIME, NULL}, {4, "renewTime", F_MICROTIME, NULL},
       {5, "leaseTransitions", F_INT, NULL}, {6, "strategy", F_STRING, NULL},
       {7, "preferredHolder", F_STRING, NULL});
SCHEMA(lease, {1, "metadata", F_MSG, &object_meta}, {2, "spec", F_MSG, &lease_spec});

typedef struct reader {
        const uint8_t *p, *end;
} reader;

static int read_varint(reader *r, uint64_t *ret) {
        uint64_t v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
                if (r->p >= r->end)
                        return -EBADMSG;
                uint8_t b = *r->p++;
                v |= (uint64_t)(b & 0x7f) << shift;
                if (!(b & 0x80)) {
                        *ret = v;
                        return 0;
                }
        }
        return -EBADMSG;
}

/* Reads one field header and, for length-delimited fields, its payload. */
static int read_field(reader *r, unsigned *ret_num, unsigned *ret_wire, uint64_t *ret_varint,
                      reader *ret_payload) {
        uint64_t key, len;
        if (read_varint(r, &key) < 0)
                return -EBADMSG;
        *ret_num = (unsigned)(key >> 3);
        *ret_wire = (unsigned)(key & 7);
        switch (*ret_wire) {
        case 0:
                return read_varint(r, ret_varint);
        case 1:
                if (r->end - r->p < 8)
                        return -EBADMSG;
                r->p += 8;
                return 0;
        case 5:
                if (r->end - r->p < 4)
                        return -EBADMSG;
                r->p += 4;
                return 0;
        case 2:
                if (read_varint(r, &len) < 0 || len > (uint64_t)(r->end - r->p))
                        return -EBADMSG;
                ret_payload->p = r->p;
                ret_payload->end = r->p + len;
                r->p += len;
                return 0;
        default:
                return -EBADMSG;
        }
}

static cJSON *decode(reader *r, const pschema *s, int depth);

static char *dup_bytes(const reader *r) {
        return strndup((const char *)r->p, (size_t)(r->end - r->p));
}

static int decode_map_entry(reader *r, bool bytes_value, cJSON *map) {
        char *key = NULL, *value = NULL;
        size_t value_len = 0;
        while (r->p < r->end) {
                unsigned num, wire;
                uint64_t v;
                reader pl = {0};
                if (read_field(r, &num, &wire, &v, &pl) < 0 || (wire == 2 && num > 2)) {
                        free(key);
                        free(value);
                        return -EBADMSG;
                }
                if (wire != 2)
                        continue;
                if (num == 1) {
                        free(key);
                        key = dup_bytes(&pl);
                } else if (num == 2) {
                        free(value);
                        value_len = (size_t)(pl.end - pl.p);
                        value = bytes_value ? base64_encode(pl.p, value_len) : dup_bytes(&pl);
                }
        }
        if (key)
                cJSON_AddItemToObject(map, key, cJSON_CreateString(value ? value : ""));
        free(key);
        free(value);
        return 0;
}

static cJSON *decode_time(reader *r, int digits) {
        int64_t sec = 0, nanos = 0;
        char buf[64];
        while (r->p < r->end) {
                unsigned num, wire;
                uint64_t v = 0;
                reader pl;
                if (read_field(r, &num, &wire, &v, &pl) < 0)
                        return NULL;
                if (wire == 0 && num == 1)
                        sec = (int64_t)v;
                else if (wire == 0 && num == 2)
                        nanos = (int32_t)v;
        }
        if (sec < 0 || nanos < 0)
                return NULL;
        koc__format_timestamp((uint64_t)sec * 1000000 + (uint64_t)nanos / 1000, digits, buf,
                              sizeof buf);
        return cJSON_CreateString(buf);
}

static cJSON *decode(reader *r, const pschema *s, int depth) {
        cJSON *obj = cJSON_CreateObject();
        if (!obj || depth > 8)
                goto fail;
        while (r->p < r->end) {
                unsigned num, wire;
                uint64_t v = 0;
                reader pl = {0};
                const pfield *f = NULL;
                if (read_field(r, &num, &wire, &v, &pl) < 0)
                        goto fail;
                for (size_t i = 0; i < s->n; i++)
                        if (s->fields[i].num == num)
                                f = &s->fields[i];
                if (!f)
                        continue;
                bool lendelim = f->type != F_INT && f->type != F_BOOL;
                if (lendelim != (wire == 2))
                        goto fail;
                cJSON *item = NULL, *arr;
                switch (f->type) {
                case F_STRING: {
                        /* Go's JSON omits empty strings (omitempty); its
                         * protobuf encoder writes them. */
                        if (pl.p == pl.end)
                                continue;
                        char *str = dup_bytes(&pl);
                        item = cJSON_CreateString(str ? str : "");
                        free(str);
                        break;
                }
                case F_BYTES: {
                        char *b64 = base64_encode(pl.p, (size_t)(pl.end - pl.p));
                        item = cJSON_CreateString(b64 ? b64 : "");
                        free(b64);
                        break;
                }
                case F_INT:
                        item = cJSON_CreateNumber((double)(int64_t)v);
                        break;
                case F_BOOL:
                        item = cJSON_CreateBool(v != 0);
                        break;
                case F_MSG:
                        item = decode(&pl, f->sub, depth + 1);
                        if (!item)
                                goto fail;
                        break;
                case F_TIME:
                case F_MICROTIME:
                        /* A zero time (before the epoch) is "unset". */
                        item = decode_time(&pl, f->type == F_TIME ? 0 : 6);
                        if (!item)
                                continue;
                        break;
                case F_MAP_SS:
                case F_MAP_SB:
                        arr = json_ensure_object(obj, f->name);
                        if (!arr || decode_map_entry(&pl, f->type == F_MAP_SB, arr) < 0)
                                goto fail;
                        continue;
                case F_RSTRING:
                case F_RMSG:
                        arr = cJSON_GetObjectItemCaseSensitive(obj, f->name);
                        if (!arr)
                                arr = cJSON_AddArrayToObject(obj, f->name);
                        if (f->type == F_RMSG)
                                item = decode(&pl, f->sub, depth + 1);
                        else {
                                char *str = dup_bytes(&pl);
                                item = cJSON_CreateString(str ? str : "");
                                free(str);
                        }
                        if (!item || !arr)
                                goto fail;
                        cJSON_AddItemToArray(arr, item);
                        continue;
                }
                if (!item)
                        goto fail;
                cJSON_DeleteItemFromObjectCaseSensitive(obj, f->name);
                cJSON_AddItemToObject(obj, f->name, item);
        }
        return obj;
fail:
        cJSON_Delete(obj);
        return NULL;
}

static const pschema *schema_for(const char *api_version, const char *kind) {
        static const struct {
                const char *api_version, *kind;
                const pschema *schema;
        } types[] = {
                {"v1", "ConfigMap", &configmap},
                {"v1", "Secret", &secret},
                {"v1", "Namespace", &namespace},
                {"v1", "ServiceAccount", &service_account},
                {"coordination.k8s.io/v1", "Lease", &lease},
        };
        for (size_t i = 0; i < KOC_ELEMENTSOF(types); i++)
                if (strcmp(types[i].api_version, api_version) == 0 &&
                    strcmp(types[i].kind, kind) == 0)
                        return types[i].schema;
        return NULL;
}

char *protobuf_to_json(const void *data, size_t len, char *err, size_t errlen) {
        reader r = {data, (const uint8_t *)data + len};
        char api_version[128] = "", kind[128] = "";
        reader raw = {0};
        bool have_raw = false;

        if (len < 4 || memcmp(data, "k8s\0", 4) != 0) {
                snprintf(err, errlen, "protobuf body without the k8s magic");
                return NULL;
        }
        r.p += 4;
        while (r.p < r.end) {
                unsigned num, wire;
                uint64_t v;
                reader pl = {0};
                if (read_field(&r, &num, &wire, &v, &pl) < 0) {
                        snprintf(err, errlen, "malformed protobuf envelope");
                        return NULL;
                }
                if (wire != 2)
                        continue;
                if (num == 1) {
                        while (pl.p < pl.end) {
                                unsigned n2, w2;
                                uint64_t v2;
                                reader s = {0};
                                if (read_field(&pl, &n2, &w2, &v2, &s) < 0) {
                                        snprintf(err, errlen, "malformed protobuf type meta");
                                        return NULL;
                                }
                                if (w2 == 2 && (n2 == 1 || n2 == 2))
                                        snprintf(n2 == 1 ? api_version : kind, 128, "%.*s",
                                                 (int)(s.end - s.p), (const char *)s.p);
                        }
                } else if (num == 2) {
                        raw = pl;
                        have_raw = true;
                }
        }
        const pschema *schema = schema_for(api_version, kind);
        if (!schema || !have_raw) {
                snprintf(err, errlen, "protobuf is not supported for %s %s; send application/json",
                         api_version, kind);
                return NULL;
        }
        cJSON *obj = decode(&raw, schema, 0);
        if (!obj) {
                snprintf(err, errlen, "malformed protobuf %s", kind);
                return NULL;
        }
        /* The store puts kind and apiVersion first. */
        cJSON_AddStringToObject(obj, "kind", kind);
        cJSON_AddStringToObject(obj, "apiVersion", api_version);
        char *json = cJSON_PrintUnformatted(obj);
        cJSON_Delete(obj);
        return json;
}
