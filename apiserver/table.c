/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Table output (Accept: application/json;as=Table;g=meta.k8s.io;v=v1), what
 * `kubectl get` asks for: custom resources get their CRD version's
 * additionalPrinterColumns (simple JSONPaths) after Name, or Name and Age
 * when it declares none; a few built-in types get the real server's
 * columns (ConfigMap, Secret, Namespace, Lease, Deployment); every other
 * type Name and Age.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver.h"
#include "core/util.h"
#include "koc/time.h"

static const char name_desc[] =
        "Name must be unique within a namespace. Is required when creating resources, although "
        "some resources may allow a client to request the generation of an appropriate name "
        "automatically. Name is primarily intended for creation idempotence and configuration "
        "definition. Cannot be updated. More info: "
        "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
static const char age_desc[] =
        "CreationTimestamp is a timestamp representing the server time when this object was "
        "created. It is not guaranteed to be set in happens-before order across separate "
        "operations. Clients may not set this value. It is represented in RFC3339 form and is in "
        "UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
        "https://git.k8s.io/community/contributors/devel/sig-architecture/"
        "api-conventions.md#metadata";

/* Built-in columns: what each cell is computed from. */
typedef enum cell_kind {
        CELL_NAME,
        CELL_AGE,
        CELL_PATH,       /* a ".a.b" path, its value as is (null when absent) */
        CELL_PATH_INT,   /* a ".a.b" path, 0 when absent */
        CELL_COUNT,      /* number of keys of the objects at path and path2 */
        CELL_READY,      /* "status.readyReplicas/spec.replicas" */
        CELL_CONTAINERS, /* the template's container names, comma-separated */
        CELL_IMAGES,
        CELL_SELECTOR, /* spec.selector as a label selector string */
} cell_kind;

typedef struct column {
        const char *name, *type;
        int priority;
        cell_kind kind;
        const char *path, *path2;
} column;

typedef struct printer {
        const char *group, *resource;
        column cols[9];
} printer;

static const printer printers[] = {
        {"", "configmaps",
         {{"Name", "string", 0, CELL_NAME, NULL, NULL},
          {"Data", "string", 0, CELL_COUNT, ".data", ".binaryData"},
          {"Age", "string", 0, CELL_AGE, NULL, NULL}}},
        {"", "secrets",
         {{"Name", "string", 0, CELL_NAME, NULL, NULL},
          {"Type", "string", 0, CELL_PATH, ".type", NULL},
          {"Data", "string", 0, CELL_COUNT, ".data", NULL},
          {"Age", "string", 0, CELL_AGE, NULL, NULL}}},
        {"", "namespaces",
         {{"Name", "string", 0, CELL_NAME, NULL, NULL},
          {"Status", "string", 0, CELL_PATH, ".status.phase", NULL},
          {"Age", "string", 0, CELL_AGE, NULL, NULL}}},
        {"coordination.k8s.io", "leases",
         {{"Name", "string", 0, CELL_NAME, NULL, NULL},
          {"Holder", "string", 0, CELL_PATH, ".spec.holderIdentity", NULL},
          {"Age", "string", 0, CELL_AGE, NULL, NULL}}},
        {"apps", "deployments",
         {{"Name", "string", 0, CELL_NAME, NULL, NULL},
          {"Ready", "string", 0, CELL_READY, NULL, NULL},
          {"Up-to-date", "string", 0, CELL_PATH_INT, ".status.updatedReplicas", NULL},
          {"Available", "string", 0, CELL_PATH_INT, ".status.availableReplicas", NULL},
          {"Age", "string", 0, CELL_AGE, NULL, NULL},
          {"Containers", "string", 1, CELL_CONTAINERS, NULL, NULL},
          {"Images", "string", 1, CELL_IMAGES, NULL, NULL},
          {"Selector", "string", 1, CELL_SELECTOR, NULL, NULL}}},
};

static const column default_cols[] = {
        {"Name", "string", 0, CELL_NAME, NULL, NULL},
        {"Age", "date", 0, CELL_AGE, NULL, NULL},
};

/* apimachinery's duration.HumanDuration. */
static void human_duration(int64_t seconds, char *buf, size_t size) {
        if (seconds < -1) {
                snprintf(buf, size, "<invalid>");
                return;
        }
        if (seconds < 0)
                seconds = 0;
        if (seconds < 120) {
                snprintf(buf, size, "%llds", (long long)seconds);
                return;
        }
        int64_t minutes = seconds / 60;
        if (minutes < 10) {
                int64_t s = seconds % 60;
                if (s == 0)
                        snprintf(buf, size, "%lldm", (long long)minutes);
                else
                        snprintf(buf, size, "%lldm%llds", (long long)minutes, (long long)s);
                return;
        }
        if (minutes < 180) {
                snprintf(buf, size, "%lldm", (long long)minutes);
                return;
        }
        int64_t hours = seconds / 3600;
        if (hours < 8) {
                int64_t m = minutes % 60;
                if (m == 0)
                        snprintf(buf, size, "%lldh", (long long)hours);
                else
                        snprintf(buf, size, "%lldh%lldm", (long long)hours, (long long)m);
        } else if (hours < 48)
                snprintf(buf, size, "%lldh", (long long)hours);
        else if (hours < 24 * 8) {
                int64_t h = hours % 24;
                if (h == 0)
                        snprintf(buf, size, "%lldd", (long long)(hours / 24));
                else
                        snprintf(buf, size, "%lldd%lldh", (long long)(hours / 24), (long long)h);
        } else if (hours < 24 * 365 * 2)
                snprintf(buf, size, "%lldd", (long long)(hours / 24));
        else if (hours < 24 * 365 * 8) {
                int64_t dy = (hours / 24) % 365;
                if (dy == 0)
                        snprintf(buf, size, "%lldy", (long long)(hours / 24 / 365));
                else
                        snprintf(buf, size, "%lldy%lldd", (long long)(hours / 24 / 365),
                                 (long long)dy);
        } else
                snprintf(buf, size, "%lldy", (long long)(hours / 24 / 365));
}

static cJSON *age_of(const char *ts) {
        uint64_t usec;
        char buf[32];
        if (!ts || koc_parse_rfc3339(ts, &usec) < 0)
                return cJSON_CreateString("<unknown>");
        int64_t d = ((int64_t)koc_now_realtime_usec() - (int64_t)usec) / 1000000;
        human_duration(d, buf, sizeof buf);
        return cJSON_CreateString(buf);
}

/* A CRD column's JSONPath, the subset ".a.b[0].c" (others give null). */
static const cJSON *jsonpath(const cJSON *obj, const char *path) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s", path);
        char *s = buf;
        if (*s == '{') {
                size_t n = strlen(s);
                if (n < 2 || s[n - 1] != '}')
                        return NULL;
                s[n - 1] = 0;
                s++;
        }
        if (*s == '$')
                s++;
        const cJSON *cur = obj;
        while (*s && cur) {
                if (*s == '.') {
                        s++;
                        size_t n = strcspn(s, ".[");
                        char key[256];
                        if (n == 0 || n >= sizeof key)
                                return NULL;
                        memcpy(key, s, n);
                        key[n] = 0;
                        cur = cJSON_IsObject(cur) ? cJSON_GetObjectItemCaseSensitive(cur, key)
                                                  : NULL;
                        s += n;
                } else if (*s == '[') {
                        char *end;
                        long i = strtol(s + 1, &end, 10);
                        if (*end != ']' || !cJSON_IsArray(cur))
                                return NULL;
                        cur = i >= 0 ? cJSON_GetArrayItem(cur, (int)i) : NULL;
                        s = end + 1;
                } else
                        return NULL;
        }
        return cur;
}

static cJSON *template_list(const cJSON *obj, const char *field) {
        strbuf b = {0};
        const cJSON *c;
        strbuf_appends(&b, "");
        cJSON_ArrayForEach(c, json_path(obj, "spec.template.spec.containers")) {
                const char *v = json_str(c, field);
                strbuf_printf(&b, "%s%s", b.len ? "," : "", v ? v : "");
        }
        cJSON *r = cJSON_CreateString(b.data ? b.data : "");
        strbuf_free(&b);
        return r;
}

static cJSON *builtin_cell(const column *col, const cJSON *obj) {
        const cJSON *v;
        switch (col->kind) {
        case CELL_NAME:
                return cJSON_CreateString(json_str(obj, "metadata.name") ?: "");
        case CELL_AGE:
                return age_of(json_str(obj, "metadata.creationTimestamp"));
        case CELL_PATH:
                v = jsonpath(obj, col->path);
                return v ? cJSON_Duplicate(v, true) : cJSON_CreateNull();
        case CELL_PATH_INT:
                v = jsonpath(obj, col->path);
                return cJSON_CreateNumber(cJSON_IsNumber(v) ? v->valuedouble : 0);
        case CELL_COUNT: {
                int n = cJSON_GetArraySize(jsonpath(obj, col->path));
                if (col->path2)
                        n += cJSON_GetArraySize(jsonpath(obj, col->path2));
                return cJSON_CreateNumber(n);
        }
        case CELL_READY: {
                const cJSON *ready = json_path(obj, "status.readyReplicas");
                const cJSON *want = json_path(obj, "spec.replicas");
                char buf[64];
                snprintf(buf, sizeof buf, "%.0f/%.0f",
                         cJSON_IsNumber(ready) ? ready->valuedouble : 0,
                         cJSON_IsNumber(want) ? want->valuedouble : 0);
                return cJSON_CreateString(buf);
        }
        case CELL_CONTAINERS:
                return template_list(obj, "name");
        case CELL_IMAGES:
                return template_list(obj, "image");
        case CELL_SELECTOR: {
                char *s = label_selector_string(json_path(obj, "spec.selector"));
                cJSON *r = cJSON_CreateString(s ? s : "");
                free(s);
                return r;
        }
        }
        return cJSON_CreateNull();
}

static void add_column_def(cJSON *defs, const char *name, const char *type, const char *format,
                           const char *desc, int priority) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "name", name);
        cJSON_AddStringToObject(d, "type", type);
        cJSON_AddStringToObject(d, "format", format);
        cJSON_AddStringToObject(d, "description", desc);
        cJSON_AddNumberToObject(d, "priority", priority);
        cJSON_AddItemToArray(defs, d);
}

static cJSON *row_object(const cJSON *obj, const char *include) {
        if (include && strcmp(include, "None") == 0)
                return NULL;
        if (include && strcmp(include, "Object") == 0)
                return cJSON_Duplicate(obj, true);
        return partial_metadata(obj);
}

cJSON *table_build(server *srv, const collection *c, const char *version, const cJSON *const *objs,
                   size_t n, const char *include) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "kind", "Table");
        cJSON_AddStringToObject(t, "apiVersion", "meta.k8s.io/v1");
        cJSON_AddObjectToObject(t, "metadata");
        cJSON *defs = cJSON_AddArrayToObject(t, "columnDefinitions");
        cJSON *rows = cJSON_AddArrayToObject(t, "rows");

        /* A CRD's printer columns for the version. */
        const cJSON *crd = crd_lookup(srv, c->group, c->resource), *v, *pcols = NULL;
        cJSON_ArrayForEach(v, json_path(crd, "spec.versions")) {
                if (strcmp(json_str(v, "name") ?: "", version) == 0)
                        pcols = cJSON_GetObjectItemCaseSensitive(v, "additionalPrinterColumns");
        }
        if (crd && cJSON_GetArraySize(pcols) > 0) {
                const cJSON *col;
                char desc[700];
                add_column_def(defs, "Name", "string", "name", name_desc, 0);
                cJSON_ArrayForEach(col, pcols) {
                        const cJSON *d = cJSON_GetObjectItemCaseSensitive(col, "description");
                        const cJSON *prio = cJSON_GetObjectItemCaseSensitive(col, "priority");
                        snprintf(desc, sizeof desc,
                                 "Custom resource definition column (in JSONPath format): %.500s",
                                 json_str(col, "jsonPath") ?: "");
                        add_column_def(defs, json_str(col, "name") ?: "",
                                       json_str(col, "type") ?: "string",
                                       json_str(col, "format") ?: "",
                                       cJSON_IsString(d) ? d->valuestring : desc,
                                       cJSON_IsNumber(prio) ? (int)prio->valueint : 0);
                }
                for (size_t i = 0; i < n; i++) {
                        cJSON *row = cJSON_CreateObject();
                        cJSON *cells = cJSON_AddArrayToObject(row, "cells");
                        const char *name = json_str(objs[i], "metadata.name");
                        cJSON_AddItemToArray(cells, cJSON_CreateString(name ? name : ""));
                        cJSON_ArrayForEach(col, pcols) {
                                const char *jp = json_str(col, "jsonPath");
                                const cJSON *val = jsonpath(objs[i], jp ? jp : "");
                                const char *type = json_str(col, "type") ?: "";
                                if (val && strcmp(type, "date") == 0 && cJSON_IsString(val))
                                        cJSON_AddItemToArray(cells, age_of(val->valuestring));
                                else
                                        cJSON_AddItemToArray(cells, val ? cJSON_Duplicate(val, true)
                                                                        : cJSON_CreateNull());
                        }
                        cJSON *o = row_object(objs[i], include);
                        if (o)
                                cJSON_AddItemToObject(row, "object", o);
                        cJSON_AddItemToArray(rows, row);
                }
                return t;
        }
        const column *cols = default_cols;
        size_t ncols = KOC_ELEMENTSOF(default_cols);
        for (size_t i = 0; i < KOC_ELEMENTSOF(printers); i++) {
                if (strcmp(printers[i].group, c->group) == 0 &&
                    strcmp(printers[i].resource, c->resource) == 0) {
                        cols = printers[i].cols;
                        for (ncols = 0; ncols < KOC_ELEMENTSOF(printers[i].cols) &&
                                        printers[i].cols[ncols].name;
                             ncols++)
                                ;
                }
        }
        for (size_t k = 0; k < ncols; k++)
                add_column_def(defs, cols[k].name, cols[k].type,
                               cols[k].kind == CELL_NAME ? "name" : "",
                               cols[k].kind == CELL_NAME  ? name_desc
                               : cols[k].kind == CELL_AGE ? age_desc
                                                          : "",
                               cols[k].priority);
        for (size_t i = 0; i < n; i++) {
                cJSON *row = cJSON_CreateObject(), *cells = cJSON_AddArrayToObject(row, "cells");
                for (size_t k = 0; k < ncols; k++)
                        cJSON_AddItemToArray(cells, builtin_cell(&cols[k], objs[i]));
                cJSON *o = row_object(objs[i], include);
                if (o)
                        cJSON_AddItemToObject(row, "object", o);
                cJSON_AddItemToArray(rows, row);
        }
        return t;
}
