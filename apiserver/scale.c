/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The /scale subresource (autoscaling/v1 Scale) of Deployments,
 * StatefulSets, ReplicaSets and of custom resources whose CRD version
 * declares subresources.scale (specReplicasPath, statusReplicasPath,
 * labelSelectorPath), and the checks the real server makes on those paths
 * when custom resources are written.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver.h"

/* A ".a.b" path (a CRD's jsonPath subset, checked when the CRD was
 * written: no empty segment) in obj; NULL when absent. */
static const cJSON *dot_path(const cJSON *obj, const char *path) {
        return json_path(obj, path + (path[0] == '.'));
}

static bool builtin_scalable(const char *group, const char *resource) {
        return strcmp(group, "apps") == 0 &&
               (strcmp(resource, "deployments") == 0 || strcmp(resource, "statefulsets") == 0 ||
                strcmp(resource, "replicasets") == 0);
}

int scale_paths(server *srv, const char *group, const char *resource, const char *version,
                scale_info *ret) {
        *ret = (scale_info){0};
        if (builtin_scalable(group, resource)) {
                *ret = (scale_info){.spec = ".spec.replicas",
                                    .status = ".status.replicas",
                                    .builtin = true};
                return 0;
        }
        const cJSON *crd = crd_lookup(srv, group, resource);
        const cJSON *s = json_path(crd_version(crd, version), "subresources.scale");
        if (!cJSON_IsObject(s))
                return -ENOENT;
        ret->spec = json_str(s, "specReplicasPath");
        ret->status = json_str(s, "statusReplicasPath");
        ret->selector = json_str(s, "labelSelectorPath");
        return ret->spec && ret->status ? 0 : -ENOENT;
}

typedef struct req_str {
        const char *key;
        char *text;
} req_str;

static int cmp_req(const void *a, const void *b) {
        return strcmp(((const req_str *)a)->key, ((const req_str *)b)->key);
}

static int cmp_cstr(const void *a, const void *b) {
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A metav1.LabelSelector as labels.Selector.String() writes it:
 * requirements sorted by key, values sorted. */
char *label_selector_string(const cJSON *sel) {
        req_str reqs[64];
        size_t n = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(sel, "matchLabels")) {
                if (n < KOC_ELEMENTSOF(reqs) && cJSON_IsString(it)) {
                        strbuf b = {0};
                        strbuf_printf(&b, "%s=%s", it->string, it->valuestring);
                        reqs[n++] = (req_str){it->string, b.data};
                }
        }
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(sel, "matchExpressions")) {
                const char *key = json_str(it, "key"), *op = json_str(it, "operator");
                if (!key || !op || n >= KOC_ELEMENTSOF(reqs))
                        continue;
                strbuf b = {0};
                if (strcmp(op, "Exists") == 0)
                        strbuf_printf(&b, "%s", key);
                else if (strcmp(op, "DoesNotExist") == 0)
                        strbuf_printf(&b, "!%s", key);
                else {
                        const char *vals[64];
                        size_t nv = 0;
                        const cJSON *v;
                        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(it, "values"))
                                if (nv < KOC_ELEMENTSOF(vals) && cJSON_IsString(v))
                                        vals[nv++] = v->valuestring;
                        qsort(vals, nv, sizeof *vals, cmp_cstr);
                        strbuf_printf(&b, "%s %s (", key, strcmp(op, "In") == 0 ? "in" : "notin");
                        for (size_t i = 0; i < nv; i++)
                                strbuf_printf(&b, "%s%s", i ? "," : "", vals[i]);
                        strbuf_appends(&b, ")");
                }
                reqs[n++] = (req_str){key, b.data};
        }
        /* Stable for equal keys: insertion sort. */
        for (size_t i = 1; i < n; i++)
                for (size_t j = i; j > 0 && cmp_req(&reqs[j - 1], &reqs[j]) > 0; j--) {
                        req_str t = reqs[j];
                        reqs[j] = reqs[j - 1];
                        reqs[j - 1] = t;
                }
        strbuf out = {0};
        strbuf_appends(&out, "");
        for (size_t i = 0; i < n; i++) {
                if (reqs[i].text)
                        strbuf_printf(&out, "%s%s", out.len ? "," : "", reqs[i].text);
                free(reqs[i].text);
        }
        return out.data;
}

cJSON *scale_of(const cJSON *obj, const scale_info *si) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "kind", "Scale");
        cJSON_AddStringToObject(s, "apiVersion", "autoscaling/v1");
        cJSON *meta = cJSON_AddObjectToObject(s, "metadata");
        static const char *const keep[] = {"name", "namespace", "uid", "resourceVersion",
                                           "creationTimestamp"};
        for (size_t i = 0; i < KOC_ELEMENTSOF(keep); i++) {
                const cJSON *v = json_path(json_path(obj, "metadata"), keep[i]);
                if (v)
                        cJSON_AddItemToObject(meta, keep[i], cJSON_Duplicate(v, true));
        }
        cJSON *spec = cJSON_AddObjectToObject(s, "spec");
        cJSON *status = cJSON_AddObjectToObject(s, "status");
        const cJSON *r = dot_path(obj, si->spec);
        if (cJSON_IsNumber(r) && r->valuedouble != 0)
                cJSON_AddNumberToObject(spec, "replicas", r->valuedouble);
        else if (!r && si->builtin)
                cJSON_AddNumberToObject(spec, "replicas", 1); /* the defaulted value */
        r = dot_path(obj, si->status);
        cJSON_AddNumberToObject(status, "replicas", cJSON_IsNumber(r) ? r->valuedouble : 0);
        if (si->builtin) {
                char *sel = label_selector_string(json_path(obj, "spec.selector"));
                if (sel && *sel)
                        cJSON_AddStringToObject(status, "selector", sel);
                free(sel);
        } else if (si->selector) {
                const cJSON *sel = dot_path(obj, si->selector);
                if (cJSON_IsString(sel) && *sel->valuestring)
                        cJSON_AddStringToObject(status, "selector", sel->valuestring);
        }
        return s;
}

int scale_set_replicas(cJSON *obj, const scale_info *si, double replicas) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s", si->spec[0] == '.' ? si->spec + 1 : si->spec);
        cJSON *cur = obj;
        char *save = NULL, *t = strtok_r(buf, ".", &save);
        while (t) {
                char *next = strtok_r(NULL, ".", &save);
                if (!cJSON_IsObject(cur))
                        return -EINVAL;
                if (!next) {
                        cJSON *n = cJSON_CreateNumber(replicas);
                        if (!n)
                                return -ENOMEM;
                        if (cJSON_GetObjectItemCaseSensitive(cur, t))
                                cJSON_ReplaceItemInObjectCaseSensitive(cur, t, n);
                        else
                                cJSON_AddItemToObject(cur, t, n);
                        return 0;
                }
                cJSON *child = cJSON_GetObjectItemCaseSensitive(cur, t);
                if (!child)
                        child = cJSON_AddObjectToObject(cur, t);
                cur = child;
                t = next;
        }
        return -EINVAL;
}

/* What unstructured.NestedInt64 says of a value that is not an int64. */
static bool nested_int64(const cJSON *obj, const char *path, double *ret, char *err,
                         size_t errlen) {
        const cJSON *v = dot_path(obj, path);
        *ret = 0;
        if (!v || cJSON_IsNull(v))
                return true;
        if (cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble)) {
                *ret = v->valuedouble;
                return true;
        }
        char val[300];
        const char *type = cJSON_IsString(v)   ? "string"
                           : cJSON_IsNumber(v) ? "float64"
                           : cJSON_IsBool(v)   ? "bool"
                           : cJSON_IsArray(v)  ? "[]interface {}"
                                               : "map[string]interface {}";
        if (cJSON_IsString(v))
                snprintf(val, sizeof val, "%.200s", v->valuestring);
        else if (cJSON_IsNumber(v))
                snprintf(val, sizeof val, "%g", v->valuedouble);
        else if (cJSON_IsBool(v))
                snprintf(val, sizeof val, "%s", cJSON_IsTrue(v) ? "true" : "false");
        else
                snprintf(val, sizeof val, "%s", cJSON_IsArray(v) ? "[...]" : "map[...]");
        snprintf(err, errlen, "%s accessor error: %s is of the type %s, expected int64", path, val,
                 type);
        return false;
}

static void add_invalid(cJSON *causes, const char *field, double value, const char *detail) {
        char msg[800];
        snprintf(msg, sizeof msg, "Invalid value: %.0f: %s", value, detail);
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "reason", "FieldValueInvalid");
        cJSON_AddStringToObject(c, "message", msg);
        cJSON_AddStringToObject(c, "field", field);
        cJSON_AddItemToArray(causes, c);
}

void scale_validate_cr(const scale_info *si, const cJSON *obj, bool status, cJSON *causes) {
        const char *path = status ? si->status : si->spec;
        char err[600];
        double v;
        if (!path)
                return;
        if (!nested_int64(obj, path, &v, err, sizeof err))
                add_invalid(causes, path, 0, err);
        else if (v < 0)
                add_invalid(causes, path, v, "should be a non-negative integer");
        else if (v > 2147483647.0)
                add_invalid(causes, path, v, "should be less than or equal to 2147483647");
}
