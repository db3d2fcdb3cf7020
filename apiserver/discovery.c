/* SPDX-License-Identifier: Apache-2.0 */
/* Discovery documents (/version, /api, /api/v1, /apis, /apis/GROUP[/VERSION])
 * in the legacy (unaggregated) format, which kubectl and client-go accept. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver.h"

#define CRD_KEY "apiextensions.k8s.io/customresourcedefinitions"

static void add_verbs(cJSON *r) {
        static const char *const verbs[] = {"create", "delete", "deletecollection", "get",
                                            "list",   "patch",  "update",           "watch"};
        cJSON *v = cJSON_AddArrayToObject(r, "verbs");
        for (size_t i = 0; i < KOC_ELEMENTSOF(verbs); i++)
                cJSON_AddItemToArray(v, cJSON_CreateString(verbs[i]));
}

static void add_resource(cJSON *arr, const char *plural, const char *kind, bool namespaced,
                         bool status, const char *short_names) {
        char singular[256];
        cJSON *r = cJSON_CreateObject();

        snprintf(singular, sizeof singular, "%s", kind);
        for (char *p = singular; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        cJSON_AddStringToObject(r, "name", plural);
        cJSON_AddStringToObject(r, "singularName", singular);
        cJSON_AddBoolToObject(r, "namespaced", namespaced);
        cJSON_AddStringToObject(r, "kind", kind);
        add_verbs(r);
        if (short_names && *short_names) {
                cJSON *sn = cJSON_AddArrayToObject(r, "shortNames");
                char buf[128];
                snprintf(buf, sizeof buf, "%s", short_names);
                for (char *save = NULL, *t = strtok_r(buf, ",", &save); t;
                     t = strtok_r(NULL, ",", &save))
                        cJSON_AddItemToArray(sn, cJSON_CreateString(t));
        }
        cJSON_AddItemToArray(arr, r);
        if (status) {
                char sub[300];
                snprintf(sub, sizeof sub, "%s/status", plural);
                r = cJSON_CreateObject();
                cJSON_AddStringToObject(r, "name", sub);
                cJSON_AddStringToObject(r, "singularName", "");
                cJSON_AddBoolToObject(r, "namespaced", namespaced);
                cJSON_AddStringToObject(r, "kind", kind);
                cJSON *v = cJSON_AddArrayToObject(r, "verbs");
                cJSON_AddItemToArray(v, cJSON_CreateString("get"));
                cJSON_AddItemToArray(v, cJSON_CreateString("patch"));
                cJSON_AddItemToArray(v, cJSON_CreateString("update"));
                cJSON_AddItemToArray(arr, r);
        }
}

static bool has_resource(const cJSON *arr, const char *plural) {
        const cJSON *r;
        cJSON_ArrayForEach(r, arr) {
                const char *n = json_str(r, "name");
                if (n && strcmp(n, plural) == 0)
                        return true;
        }
        return false;
}

void each_group_version(server *srv, gv_fn fn, void *userdata) {
        size_t n;
        const resinfo *ri = builtin_resources(&n);
        strmap seen = {0};
        char key[512];

        for (size_t i = 0; i < n; i++) {
                snprintf(key, sizeof key, "%s/%s", ri[i].group, ri[i].version);
                if (!strmap_get(&seen, key)) {
                        strmap_put(&seen, key, (void *)1);
                        fn(ri[i].group, ri[i].version, userdata);
                }
        }
        collection *crds = strmap_get(&srv->collections, CRD_KEY);
        size_t b = 0;
        if (crds)
                for (strmap_entry *e = strmap_next(&crds->objects, &b, NULL); e;
                     e = strmap_next(&crds->objects, &b, e)) {
                        object *o = e->value;
                        const char *g = json_str(o->json, "spec.group");
                        const cJSON *v;
                        cJSON_ArrayForEach(v, json_path(o->json, "spec.versions")) {
                                const char *vn = json_str(v, "name");
                                if (!g || !vn)
                                        continue;
                                snprintf(key, sizeof key, "%s/%s", g, vn);
                                if (!strmap_get(&seen, key)) {
                                        strmap_put(&seen, key, (void *)1);
                                        fn(g, vn, userdata);
                                }
                        }
                }
        b = 0;
        for (strmap_entry *e = strmap_next(&srv->collections, &b, NULL); e;
             e = strmap_next(&srv->collections, &b, e)) {
                collection *c = e->value;
                if (!*c->group)
                        continue;
                snprintf(key, sizeof key, "%s/%s", c->group, c->version);
                if (!strmap_get(&seen, key)) {
                        strmap_put(&seen, key, (void *)1);
                        fn(c->group, c->version, userdata);
                }
        }
        strmap_clear(&seen, NULL);
}

typedef struct groups_ctx {
        cJSON *groups;
        const char *only; /* one group, or NULL */
} groups_ctx;

static void add_group_version(const char *group, const char *version, void *userdata) {
        groups_ctx *ctx = userdata;
        char gv[300];
        cJSON *g = NULL, *it;

        if (!*group || (ctx->only && strcmp(ctx->only, group) != 0))
                return;
        snprintf(gv, sizeof gv, "%s/%s", group, version);
        cJSON_ArrayForEach(it, ctx->groups) if (strcmp(json_str(it, "name") ?: "", group) == 0) g =
                it;
        if (!g) {
                g = cJSON_CreateObject();
                cJSON_AddStringToObject(g, "name", group);
                cJSON_AddArrayToObject(g, "versions");
                cJSON *pv = cJSON_AddObjectToObject(g, "preferredVersion");
                cJSON_AddStringToObject(pv, "groupVersion", gv);
                cJSON_AddStringToObject(pv, "version", version);
                cJSON_AddItemToArray(ctx->groups, g);
        }
        cJSON *v = cJSON_CreateObject();
        cJSON_AddStringToObject(v, "groupVersion", gv);
        cJSON_AddStringToObject(v, "version", version);
        cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(g, "versions"), v);
}

cJSON *discovery_resource_list(server *srv, const char *group, const char *version) {
        cJSON *l = cJSON_CreateObject(), *arr;
        char gv[300];
        size_t n;
        const resinfo *ri = builtin_resources(&n);

        if (*group)
                snprintf(gv, sizeof gv, "%s/%s", group, version);
        else
                snprintf(gv, sizeof gv, "%s", version);
        cJSON_AddStringToObject(l, "kind", "APIResourceList");
        cJSON_AddStringToObject(l, "apiVersion", "v1");
        cJSON_AddStringToObject(l, "groupVersion", gv);
        arr = cJSON_AddArrayToObject(l, "resources");
        for (size_t i = 0; i < n; i++)
                if (strcmp(ri[i].group, group) == 0 && strcmp(ri[i].version, version) == 0)
                        add_resource(arr, ri[i].resource, ri[i].kind, ri[i].namespaced,
                                     ri[i].has_status, ri[i].short_names);
        collection *crds = strmap_get(&srv->collections, CRD_KEY);
        size_t b = 0;
        if (crds)
                for (strmap_entry *e = strmap_next(&crds->objects, &b, NULL); e;
                     e = strmap_next(&crds->objects, &b, e)) {
                        object *o = e->value;
                        const char *g = json_str(o->json, "spec.group");
                        const char *plural = json_str(o->json, "spec.names.plural");
                        const char *kind = json_str(o->json, "spec.names.kind");
                        const char *scope = json_str(o->json, "spec.scope");
                        if (!g || !plural || !kind || strcmp(g, group) != 0 ||
                            has_resource(arr, plural))
                                continue;
                        const cJSON *v;
                        bool served = false, status = false;
                        cJSON_ArrayForEach(v, json_path(o->json, "spec.versions")) {
                                if (strcmp(json_str(v, "name") ?: "", version) == 0) {
                                        served = true;
                                        status = json_path(v, "subresources.status") != NULL;
                                }
                        }
                        if (!served)
                                continue;
                        char sn[128] = "";
                        const cJSON *s;
                        cJSON_ArrayForEach(s, json_path(o->json, "spec.names.shortNames")) {
                                if (cJSON_IsString(s) &&
                                    strlen(sn) + strlen(s->valuestring) + 2 < sizeof sn) {
                                        if (*sn)
                                                strcat(sn, ",");
                                        strcat(sn, s->valuestring);
                                }
                        }
                        add_resource(arr, plural, kind, !scope || strcmp(scope, "Cluster") != 0,
                                     status, sn);
                }
        b = 0;
        for (strmap_entry *e = strmap_next(&srv->collections, &b, NULL); e;
             e = strmap_next(&srv->collections, &b, e)) {
                collection *c = e->value;
                if (strcmp(c->group, group) != 0 || strcmp(c->version, version) != 0 ||
                    has_resource(arr, c->resource))
                        continue;
                add_resource(arr, c->resource, c->kind, c->namespaced, c->has_status, NULL);
        }
        /* The scale subresources. */
        int n_res = cJSON_GetArraySize(arr);
        for (int i = 0; i < n_res; i++) {
                const cJSON *r = cJSON_GetArrayItem(arr, i);
                const char *name = json_str(r, "name");
                scale_info si;
                char sub[300];
                if (!name || strchr(name, '/') || scale_paths(srv, group, name, version, &si) < 0)
                        continue;
                snprintf(sub, sizeof sub, "%s/scale", name);
                cJSON *s = cJSON_CreateObject();
                cJSON_AddStringToObject(s, "name", sub);
                cJSON_AddStringToObject(s, "singularName", "");
                const cJSON *nsd = cJSON_GetObjectItemCaseSensitive(r, "namespaced");
                cJSON_AddBoolToObject(s, "namespaced", cJSON_IsTrue(nsd));
                cJSON_AddStringToObject(s, "group", "autoscaling");
                cJSON_AddStringToObject(s, "version", "v1");
                cJSON_AddStringToObject(s, "kind", "Scale");
                cJSON *v = cJSON_AddArrayToObject(s, "verbs");
                cJSON_AddItemToArray(v, cJSON_CreateString("get"));
                cJSON_AddItemToArray(v, cJSON_CreateString("patch"));
                cJSON_AddItemToArray(v, cJSON_CreateString("update"));
                cJSON_AddItemToArray(arr, s);
        }
        return l;
}

typedef struct find_ctx {
        const char *group, *version;
        bool found;
} find_ctx;

static void find_gv(const char *group, const char *version, void *userdata) {
        find_ctx *f = userdata;
        if (strcmp(group, f->group) == 0 && (!f->version || strcmp(version, f->version) == 0))
                f->found = true;
}

int discovery_handle(server *srv, const char *url, reply *ret) {
        cJSON *doc = NULL;
        char buf[512];

        if (strcmp(url, "/version") == 0) {
                doc = cJSON_CreateObject();
                cJSON_AddStringToObject(doc, "major", "1");
                cJSON_AddStringToObject(doc, "minor", "35");
                cJSON_AddStringToObject(doc, "gitVersion", "v1.35.0+koc");
                cJSON_AddStringToObject(doc, "gitCommit",
                                        "0000000000000000000000000000000000000000");
                cJSON_AddStringToObject(doc, "gitTreeState", "clean");
                cJSON_AddStringToObject(doc, "buildDate", "2026-01-01T00:00:00Z");
                cJSON_AddStringToObject(doc, "goVersion", "go1.25.0");
                cJSON_AddStringToObject(doc, "compiler", "gc");
                cJSON_AddStringToObject(doc, "platform", "linux/amd64");
        } else if (strcmp(url, "/api") == 0 || strcmp(url, "/api/") == 0) {
                doc = cJSON_CreateObject();
                cJSON_AddStringToObject(doc, "kind", "APIVersions");
                cJSON *v = cJSON_AddArrayToObject(doc, "versions");
                cJSON_AddItemToArray(v, cJSON_CreateString("v1"));
                cJSON *a = cJSON_AddArrayToObject(doc, "serverAddressByClientCIDRs");
                cJSON *e = cJSON_CreateObject();
                cJSON_AddStringToObject(e, "clientCIDR", "0.0.0.0/0");
                cJSON_AddStringToObject(e, "serverAddress", "127.0.0.1");
                cJSON_AddItemToArray(a, e);
        } else if (strcmp(url, "/api/v1") == 0 || strcmp(url, "/api/v1/") == 0) {
                doc = discovery_resource_list(srv, "", "v1");
        } else if (strcmp(url, "/apis") == 0 || strcmp(url, "/apis/") == 0) {
                groups_ctx ctx = {.groups = cJSON_CreateArray()};
                doc = cJSON_CreateObject();
                cJSON_AddStringToObject(doc, "kind", "APIGroupList");
                cJSON_AddStringToObject(doc, "apiVersion", "v1");
                each_group_version(srv, add_group_version, &ctx);
                cJSON_AddItemToObject(doc, "groups", ctx.groups);
        } else if (strncmp(url, "/apis/", 6) == 0) {
                char group[256] = "", version[64] = "";
                const char *g = url + 6, *slash = strchr(g, '/');
                size_t gl = slash ? (size_t)(slash - g) : strlen(g);
                if (gl == 0 || gl >= sizeof group)
                        return -ENOENT;
                memcpy(group, g, gl);
                if (slash) {
                        snprintf(version, sizeof version, "%s", slash + 1);
                        char *end = strchr(version, '/');
                        if (end && end[1])
                                return -ENOENT;
                        if (end)
                                *end = 0;
                }
                find_ctx f = {group, *version ? version : NULL, false};
                each_group_version(srv, find_gv, &f);
                if (!f.found)
                        return -ENOENT;
                if (*version)
                        doc = discovery_resource_list(srv, group, version);
                else {
                        groups_ctx ctx = {.groups = cJSON_CreateArray(), .only = group};
                        each_group_version(srv, add_group_version, &ctx);
                        doc = cJSON_DetachItemFromArray(ctx.groups, 0);
                        cJSON_Delete(ctx.groups);
                        if (!doc)
                                return -ENOENT;
                        cJSON_AddStringToObject(doc, "kind", "APIGroup");
                        cJSON_AddStringToObject(doc, "apiVersion", "v1");
                }
        } else
                return -ENOENT;
        (void)buf;
        reply_json(ret, 200, doc);
        cJSON_Delete(doc);
        return 0;
}
