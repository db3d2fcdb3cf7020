/* SPDX-License-Identifier: Apache-2.0 */
/*
 * OpenAPI documents: /openapi/v3 (the index of group versions, each with a
 * hash in its URL as clients cache by it), /openapi/v3/api/v1 and
 * /openapi/v3/apis/GROUP/VERSION, and /openapi/v2 (JSON).
 *
 * What kubectl needs from them: for each resource, a PATCH operation
 * tagged with its group-version-kind and taking the fieldValidation query
 * parameter, so that `kubectl apply` (validation on, the default) lets the
 * server validate with fieldValidation=Strict; and the schemas, which
 * `kubectl explain` shows.  Custom resources have their CRD's schema;
 * built-in types a permissive one (koc-apiserver does not carry their
 * schemas).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver.h"

/* "cache.example.com" -> "com.example.cache"; "" -> "io.k8s.api.core";
 * built-in groups as the real server names them (io.k8s.api.apps, ...). */
static void schema_prefix(const char *group, char *buf, size_t size) {
        if (!*group) {
                snprintf(buf, size, "io.k8s.api.core");
                return;
        }
        if (builtin_group(group)) {
                char g[256];
                snprintf(g, sizeof g, "%s", group);
                char *dot = strchr(g, '.');
                if (dot)
                        *dot = 0;
                snprintf(buf, size, "io.k8s.api.%s", g);
                return;
        }
        /* Reverse the labels. */
        size_t n = strlen(group), out = 0;
        buf[0] = 0;
        for (size_t end = n; end > 0 && out + 1 < size;) {
                size_t start = end;
                while (start > 0 && group[start - 1] != '.')
                        start--;
                int w = snprintf(buf + out, size - out, "%s%.*s", out ? "." : "",
                                 (int)(end - start), group + start);
                if (w < 0 || (size_t)w >= size - out)
                        break;
                out += (size_t)w;
                end = start > 0 ? start - 1 : 0;
        }
}

static void schema_name(const char *group, const char *version, const char *kind, char *buf,
                        size_t size) {
        char prefix[300];
        schema_prefix(group, prefix, sizeof prefix);
        snprintf(buf, size, "%s.%s.%s", prefix, version, kind);
}

static cJSON *gvk(const char *group, const char *version, const char *kind) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "group", group);
        cJSON_AddStringToObject(o, "kind", kind);
        cJSON_AddStringToObject(o, "version", version);
        return o;
}

static void add_param(cJSON *params, const char *name, const char *in, bool v3) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "name", name);
        cJSON_AddStringToObject(p, "in", in);
        if (strcmp(in, "path") == 0)
                cJSON_AddBoolToObject(p, "required", true);
        if (v3) {
                cJSON *s = cJSON_AddObjectToObject(p, "schema");
                cJSON_AddStringToObject(s, "type", "string");
        } else
                cJSON_AddStringToObject(p, "type", "string");
        cJSON_AddItemToArray(params, p);
}

/* One operation (get, put, patch, delete) on one object of the resource. */
static cJSON *operation(const char *verb, const char *group, const char *version,
                        const char *kind, const char *ref, bool namespaced, bool v3) {
        cJSON *op = cJSON_CreateObject();
        char id[400];
        snprintf(id, sizeof id, "%s%s%s", verb, namespaced ? "Namespaced" : "", kind);
        cJSON_AddStringToObject(op, "operationId", id);
        cJSON *params = cJSON_AddArrayToObject(op, "parameters");
        add_param(params, "name", "path", v3);
        if (namespaced)
                add_param(params, "namespace", "path", v3);
        add_param(params, "dryRun", "query", v3);
        if (strcmp(verb, "get") != 0 && strcmp(verb, "delete") != 0) {
                add_param(params, "fieldManager", "query", v3);
                add_param(params, "fieldValidation", "query", v3);
        }
        if (strcmp(verb, "patch") == 0)
                add_param(params, "force", "query", v3);
        cJSON *responses = cJSON_AddObjectToObject(op, "responses");
        cJSON *ok = cJSON_AddObjectToObject(responses, "200");
        cJSON_AddStringToObject(ok, "description", "OK");
        if (v3) {
                cJSON *content = cJSON_AddObjectToObject(ok, "content");
                cJSON *json = cJSON_AddObjectToObject(content, "application/json");
                cJSON *schema = cJSON_AddObjectToObject(json, "schema");
                cJSON_AddStringToObject(schema, "$ref", ref);
        } else {
                cJSON *schema = cJSON_AddObjectToObject(ok, "schema");
                cJSON_AddStringToObject(schema, "$ref", ref);
        }
        cJSON_AddStringToObject(op, "x-kubernetes-action", strcmp(verb, "replace") == 0 ? "put"
                                                                                        : verb);
        cJSON_AddItemToObject(op, "x-kubernetes-group-version-kind", gvk(group, version, kind));
        return op;
}

/* The schema served for a kind: the CRD's for custom resources (with
 * apiVersion, kind and metadata declared, as the real server adds them),
 * else one that accepts anything. */
static cJSON *kind_schema(server *srv, const char *group, const char *version, const char *kind,
                          const char *plural) {
        const cJSON *schema = NULL;
        const cJSON *crd = crd_lookup(srv, group, plural);
        if (crd)
                schema = crd_version_schema(crd, version);
        cJSON *s = schema ? cJSON_Duplicate(schema, true) : cJSON_CreateObject();
        if (!s)
                return NULL;
        if (!schema) {
                cJSON_AddStringToObject(s, "type", "object");
                cJSON_AddBoolToObject(s, "x-kubernetes-preserve-unknown-fields", true);
        }
        cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
        if (!cJSON_IsObject(props)) {
                cJSON_DeleteItemFromObjectCaseSensitive(s, "properties");
                props = cJSON_AddObjectToObject(s, "properties");
        }
        static const char *const meta[][2] = {
                {"apiVersion", "string"}, {"kind", "string"}, {"metadata", "object"}};
        for (size_t i = 0; i < KOC_ELEMENTSOF(meta); i++) {
                if (cJSON_GetObjectItemCaseSensitive(props, meta[i][0]))
                        continue;
                cJSON *m = cJSON_AddObjectToObject(props, meta[i][0]);
                cJSON_AddStringToObject(m, "type", meta[i][1]);
                if (strcmp(meta[i][1], "object") == 0)
                        cJSON_AddBoolToObject(m, "x-kubernetes-preserve-unknown-fields", true);
        }
        cJSON *g = cJSON_AddArrayToObject(s, "x-kubernetes-group-version-kind");
        cJSON_AddItemToArray(g, gvk(group, version, kind));
        return s;
}

/* Adds the paths and schemas of one group version to doc. */
static void add_group_version_doc(server *srv, cJSON *doc, const char *group, const char *version,
                                  bool v3) {
        cJSON *list = discovery_resource_list(srv, group, version), *r;
        cJSON *paths = cJSON_GetObjectItemCaseSensitive(doc, "paths");
        cJSON *schemas = v3 ? json_path(doc, "components.schemas")
                            : cJSON_GetObjectItemCaseSensitive(doc, "definitions");
        char base[300], path[700], name[600], ref[700];

        if (*group)
                snprintf(base, sizeof base, "/apis/%s/%s", group, version);
        else
                snprintf(base, sizeof base, "/api/%s", version);
        cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(list, "resources")) {
                const char *plural = json_str(r, "name"), *kind = json_str(r, "kind");
                bool namespaced = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "namespaced"));
                if (!plural || !kind || strchr(plural, '/'))
                        continue;
                schema_name(group, version, kind, name, sizeof name);
                snprintf(ref, sizeof ref, "%s%s", v3 ? "#/components/schemas/" : "#/definitions/",
                         name);
                if (!cJSON_GetObjectItemCaseSensitive(schemas, name)) {
                        cJSON *s = kind_schema(srv, group, version, kind, plural);
                        if (s)
                                cJSON_AddItemToObject(schemas, name, s);
                }
                snprintf(path, sizeof path, "%s%s/%s/{name}", base,
                         namespaced ? "/namespaces/{namespace}" : "", plural);
                if (cJSON_GetObjectItemCaseSensitive(paths, path))
                        continue;
                cJSON *item = cJSON_AddObjectToObject(paths, path);
                static const char *const verbs[][2] = {{"get", "read"},
                                                       {"put", "replace"},
                                                       {"patch", "patch"},
                                                       {"delete", "delete"}};
                for (size_t i = 0; i < KOC_ELEMENTSOF(verbs); i++)
                        cJSON_AddItemToObject(item, verbs[i][0],
                                              operation(verbs[i][1], group, version, kind, ref,
                                                        namespaced, v3));
        }
        cJSON_Delete(list);
}

static cJSON *new_doc(bool v3) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, v3 ? "openapi" : "swagger", v3 ? "3.0.0" : "2.0");
        cJSON *info = cJSON_AddObjectToObject(doc, "info");
        cJSON_AddStringToObject(info, "title", "Kubernetes");
        cJSON_AddStringToObject(info, "version", "v1.35.0+koc");
        cJSON_AddObjectToObject(doc, "paths");
        if (v3)
                cJSON_AddObjectToObject(cJSON_AddObjectToObject(doc, "components"), "schemas");
        else
                cJSON_AddObjectToObject(doc, "definitions");
        return doc;
}

static cJSON *gv_doc(server *srv, const char *group, const char *version) {
        cJSON *doc = new_doc(true);
        add_group_version_doc(srv, doc, group, version, true);
        return doc;
}

/* FNV-1a, 64 bits, in upper-case hex: the hash in the index's URLs changes
 * whenever a document does, so clients' caches stay right. */
static void doc_hash(const cJSON *doc, char *buf, size_t size) {
        char *s = cJSON_PrintUnformatted(doc);
        uint64_t h = 0xcbf29ce484222325ULL;
        for (const char *p = s ? s : ""; *p; p++) {
                h ^= (unsigned char)*p;
                h *= 0x100000001b3ULL;
        }
        cJSON_free(s);
        snprintf(buf, size, "%016llX", (unsigned long long)h);
}

/* The /openapi/v3 documents, kept until a CRD changes or a collection
 * comes or changes (all they are made of besides the built-in tables):
 * clients fetch the index and the group versions again and again.  The
 * server runs on one thread. */
#define OPENAPI_CACHE_MAX 256 /* group versions */

typedef struct gv_entry {
        cJSON *doc;
        char hash[32];
} gv_entry;

static struct {
        bool valid;
        uint64_t crd_rv, collections_gen;
        strmap docs; /* "group/version" -> gv_entry */
        cJSON *index;
} cache;

static void gv_entry_free(void *p) {
        gv_entry *e = p;
        cJSON_Delete(e->doc);
        free(e);
}

static void cache_drop(void) {
        strmap_clear(&cache.docs, gv_entry_free);
        cJSON_Delete(cache.index);
        cache.index = NULL;
        cache.valid = false;
}

void openapi_free(void) {
        cache_drop();
}

/* Drops the documents when what they are made of has changed. */
static void cache_check(server *srv) {
        collection *crds = strmap_get(&srv->collections,
                                      "apiextensions.k8s.io/customresourcedefinitions");
        uint64_t crd_rv = crds ? crds->changed_rv : 0;
        if (cache.valid && cache.crd_rv == crd_rv && cache.collections_gen == srv->collections_gen)
                return;
        cache_drop();
        cache.crd_rv = crd_rv;
        cache.collections_gen = srv->collections_gen;
        cache.valid = true;
}

/* The document of a group version and its hash, valid until the next
 * call; NULL when memory is short. */
static const gv_entry *gv_get(server *srv, const char *group, const char *version) {
        char key[400];
        snprintf(key, sizeof key, "%s/%s", group, version);
        gv_entry *e = strmap_get(&cache.docs, key);
        if (e)
                return e;
        e = calloc(1, sizeof *e);
        if (!e)
                return NULL;
        e->doc = gv_doc(srv, group, version);
        if (!e->doc) {
                free(e);
                return NULL;
        }
        doc_hash(e->doc, e->hash, sizeof e->hash);
        if (cache.docs.n >= OPENAPI_CACHE_MAX)
                strmap_clear(&cache.docs, gv_entry_free);
        if (strmap_put(&cache.docs, key, e) < 0) {
                gv_entry_free(e);
                return NULL;
        }
        return e;
}

typedef struct index_ctx {
        server *srv;
        cJSON *paths;
        bool failed;
} index_ctx;

static void index_gv(const char *group, const char *version, void *userdata) {
        index_ctx *ctx = userdata;
        char key[400], url[600];
        if (*group)
                snprintf(key, sizeof key, "apis/%s/%s", group, version);
        else
                snprintf(key, sizeof key, "api/%s", version);
        const gv_entry *gv = gv_get(ctx->srv, group, version);
        if (!gv) {
                ctx->failed = true;
                return;
        }
        snprintf(url, sizeof url, "/openapi/v3/%s?hash=%s", key, gv->hash);
        cJSON *e = cJSON_AddObjectToObject(ctx->paths, key);
        cJSON_AddStringToObject(e, "serverRelativeURL", url);
}

typedef struct v2_ctx {
        server *srv;
        cJSON *doc;
} v2_ctx;

static void v2_gv(const char *group, const char *version, void *userdata) {
        v2_ctx *ctx = userdata;
        add_group_version_doc(ctx->srv, ctx->doc, group, version, false);
}

typedef struct has_gv_ctx {
        const char *group, *version;
        bool found;
} has_gv_ctx;

static void has_gv(const char *group, const char *version, void *userdata) {
        has_gv_ctx *ctx = userdata;
        if (strcmp(group, ctx->group) == 0 && strcmp(version, ctx->version) == 0)
                ctx->found = true;
}

/* Whether the Accept header allows JSON (kubectl asks /openapi/v2 as
 * protobuf only). */
static bool accepts_json(struct MHD_Connection *conn) {
        const char *a = conn ? MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Accept") : NULL;
        return !a || !*a || strstr(a, "application/json") || strstr(a, "*/*");
}

/* The index of the group versions' documents (the cache owns it). */
static const cJSON *index_doc(server *srv) {
        if (cache.index)
                return cache.index;
        index_ctx ctx = {srv, NULL, false};
        cJSON *doc = cJSON_CreateObject();
        ctx.paths = cJSON_AddObjectToObject(doc, "paths");
        if (!ctx.paths) {
                cJSON_Delete(doc);
                return NULL;
        }
        each_group_version(srv, index_gv, &ctx);
        if (ctx.failed) {
                cJSON_Delete(doc);
                return NULL;
        }
        cache.index = doc;
        return doc;
}

int openapi_handle(server *srv, struct MHD_Connection *conn, const char *url, reply *ret) {
        cJSON *doc = NULL;
        const cJSON *cached = NULL;

        if (strncmp(url, "/openapi/", 9) != 0)
                return -ENOENT;
        if (strcmp(url, "/openapi/v3") == 0 || strcmp(url, "/openapi/v3/") == 0) {
                cache_check(srv);
                if (!(cached = index_doc(srv)))
                        return -ENOMEM;
        } else if (strncmp(url, "/openapi/v3/", 12) == 0) {
                char group[256] = "", version[64] = "";
                const char *rest = url + 12;
                if (strncmp(rest, "api/", 4) == 0 && !strchr(rest + 4, '/')) {
                        snprintf(version, sizeof version, "%s", rest + 4);
                } else if (strncmp(rest, "apis/", 5) == 0) {
                        const char *g = rest + 5, *slash = strchr(g, '/');
                        if (!slash || (size_t)(slash - g) >= sizeof group ||
                            strchr(slash + 1, '/'))
                                return -ENOENT;
                        memcpy(group, g, (size_t)(slash - g));
                        snprintf(version, sizeof version, "%s", slash + 1);
                } else
                        return -ENOENT;
                has_gv_ctx f = {group, version, false};
                each_group_version(srv, has_gv, &f);
                if (!f.found || !*version)
                        return -ENOENT;
                cache_check(srv);
                const gv_entry *gv = gv_get(srv, group, version);
                if (!gv)
                        return -ENOMEM;
                cached = gv->doc;
        } else if (strcmp(url, "/openapi/v2") == 0) {
                if (!accepts_json(conn)) {
                        reply_status(ret, 406, "NotAcceptable",
                                     "koc-apiserver serves /openapi/v2 as application/json only",
                                     NULL);
                        return 0;
                }
                v2_ctx ctx = {srv, new_doc(false)};
                each_group_version(srv, v2_gv, &ctx);
                doc = ctx.doc;
        } else
                return -ENOENT;
        if (cached) {
                reply_json(ret, 200, cached);
                return 0;
        }
        if (!doc)
                return -ENOMEM;
        reply_json(ret, 200, doc);
        cJSON_Delete(doc);
        return 0;
}
