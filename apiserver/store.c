/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The generic object store: any resource under /api/v1 or /apis/GROUP/VERSION
 * is a collection of JSON objects keyed by "namespace/name".  The semantics
 * follow the real API server's generic registry: server-owned metadata,
 * optimistic concurrency on metadata.resourceVersion, finalizers, the status
 * subresource, and watch events for every change.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver.h"
#include "core/names.h"

#define CRD_KEY "apiextensions.k8s.io/customresourcedefinitions"

uint64_t server_next_rv(server *srv) {
        return ++srv->rv;
}

static void object_free(void *p) {
        object *o = p;
        if (!o)
                return;
        free(o->key);
        cJSON_Delete(o->json);
        free(o);
}

void collection_free(void *p) {
        collection *c = p;
        if (!c)
                return;
        strmap_clear(&c->objects, object_free);
        free(c->sorted);
        free(c->key);
        free(c->group);
        free(c->version);
        free(c->resource);
        free(c->kind);
        free(c);
}

static char *guess_kind(const char *resource) {
        size_t n = strlen(resource);
        char *k = malloc(n + 2);
        if (!k)
                return NULL;
        strcpy(k, resource);
        if (n > 3 && strcmp(k + n - 3, "ies") == 0)
                strcpy(k + n - 3, "y");
        else if (n > 1 && k[n - 1] == 's')
                k[n - 1] = 0;
        k[0] = (char)toupper((unsigned char)k[0]);
        return k;
}

/* Scope, kind and status subresource from a stored CRD, when there is one. */
static void apply_crd(server *srv, collection *c) {
        collection *crds = strmap_get(&srv->collections, CRD_KEY);
        char key[512];
        if (!crds || !*c->group)
                return;
        snprintf(key, sizeof key, "/%s.%s", c->resource, c->group);
        object *o = strmap_get(&crds->objects, key);
        if (!o)
                return;
        const char *scope = json_str(o->json, "spec.scope");
        const char *kind = json_str(o->json, "spec.names.kind");
        bool namespaced = c->namespaced, has_status = c->has_status;
        if (scope) {
                c->namespaced = strcmp(scope, "Cluster") != 0;
                c->known_scope = true;
        }
        if (kind && strcmp(kind, c->kind) != 0) {
                char *k = strdup(kind);
                if (k) {
                        free(c->kind);
                        c->kind = k;
                        srv->collections_gen++;
                }
        }
        const cJSON *versions = json_path(o->json, "spec.versions"), *v;
        bool status = false;
        cJSON_ArrayForEach(v, versions) if (json_path(v, "subresources.status")) status = true;
        c->has_status = status;
        if (c->namespaced != namespaced || c->has_status != has_status)
                srv->collections_gen++;
}

collection *collection_get(server *srv, const api_path *p, bool create) {
        char key[512];
        collection *c;

        snprintf(key, sizeof key, "%s/%s", p->group, p->resource);
        c = strmap_get(&srv->collections, key);
        if (c) {
                if (!c->known_scope)
                        apply_crd(srv, c);
                return c;
        }
        if (!create)
                return NULL;
        c = calloc(1, sizeof *c);
        if (!c)
                return NULL;
        const resinfo *ri = builtin_lookup(p->group, p->resource);
        c->key = strdup(key);
        c->group = strdup(p->group);
        c->version = strdup(ri ? ri->version : p->version);
        c->resource = strdup(p->resource);
        c->kind = ri ? strdup(ri->kind) : guess_kind(p->resource);
        if (!c->key || !c->group || !c->version || !c->resource || !c->kind ||
            strmap_put(&srv->collections, key, c) < 0) {
                collection_free(c);
                return NULL;
        }
        srv->collections_gen++;
        if (ri) {
                c->namespaced = ri->namespaced;
                c->has_status = ri->has_status;
                c->known_scope = true;
        } else if (cluster_scoped_resource(p->group, p->resource)) {
                c->namespaced = false;
                c->known_scope = true;
        } else {
                /* Custom resources: namespaced and with a status
                 * subresource unless their CRD says otherwise. */
                c->namespaced = true;
                c->has_status = true;
                apply_crd(srv, c);
        }
        return c;
}

/* Whether a CRD defines group/resource (resource "" : any resource of the
 * group). */
static bool crd_defines(server *srv, const char *group, const char *resource) {
        collection *crds = strmap_get(&srv->collections, CRD_KEY);
        size_t b = 0;
        if (!crds)
                return false;
        for (strmap_entry *e = strmap_next(&crds->objects, &b, NULL); e;
             e = strmap_next(&crds->objects, &b, e)) {
                object *o = e->value;
                const char *g = json_str(o->json, "spec.group");
                const char *plural = json_str(o->json, "spec.names.plural");
                if (g && strcmp(g, group) == 0 &&
                    (!*resource || (plural && strcmp(plural, resource) == 0)))
                        return true;
        }
        return false;
}

int store_resource_check(server *srv, const api_path *p) {
        if (builtin_served(p->group, p->resource) ||
            (!*p->group && cluster_scoped_resource(p->group, p->resource)) ||
            crd_defines(srv, p->group, p->resource))
                return 0;
        /* The real server: a resource unknown in a served group version is
         * a 404 Status; an unknown group is a plain "404 page not found". */
        return builtin_group(p->group) || crd_defines(srv, p->group, "") ? -ENOENT : -ENXIO;
}

static void object_key(const char *ns, const char *name, char *buf, size_t size) {
        snprintf(buf, size, "%s/%s", ns ? ns : "", name);
}

static const char *qarg(struct MHD_Connection *conn, const char *name) {
        return conn ? MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name) : NULL;
}

static void kind_group(const char *kind, const collection *c, char *buf, size_t size) {
        if (*c->group)
                snprintf(buf, size, "%s.%s", kind, c->group);
        else
                snprintf(buf, size, "%s", kind);
}

/* A 422 Invalid with one cause.  `kind` names the object in the message and
 * the details: the collection's kind, or (as the real server does for custom
 * resources' update preconditions) its resource. */
static void reply_invalid_as(reply *ret, const collection *c, const char *kind, const char *name,
                             const char *field, const char *reason, const char *detail) {
        char kg[300], msg[1500], cmsg[1200];
        cJSON *d = cJSON_CreateObject(), *causes, *cause;

        kind_group(kind, c, kg, sizeof kg);
        snprintf(msg, sizeof msg, "%s \"%s\" is invalid: %s: %s", kg, name ? name : "", field,
                 detail);
        snprintf(cmsg, sizeof cmsg, "%s", detail);
        if (name)
                cJSON_AddStringToObject(d, "name", name);
        if (*c->group)
                cJSON_AddStringToObject(d, "group", c->group);
        cJSON_AddStringToObject(d, "kind", kind);
        causes = cJSON_AddArrayToObject(d, "causes");
        cause = cJSON_CreateObject();
        cJSON_AddStringToObject(cause, "reason", reason);
        cJSON_AddStringToObject(cause, "message", cmsg);
        cJSON_AddStringToObject(cause, "field", field);
        cJSON_AddItemToArray(causes, cause);
        reply_status(ret, 422, "Invalid", msg, d);
}

static void reply_invalid(reply *ret, const collection *c, const char *name, const char *field,
                          const char *reason, const char *detail) {
        reply_invalid_as(ret, c, c->kind, name, field, reason, detail);
}

/* A 422 Invalid with several causes, its message as the real server's
 * aggregate ("[a: x, b: y]" when there are more than one). */
static void reply_invalid_causes(reply *ret, const collection *c, const char *name,
                                 cJSON *causes) {
        char kg[300];
        strbuf msg = {0};
        const cJSON *cause;
        int n = cJSON_GetArraySize(causes), i = 0;

        kind_group(c->kind, c, kg, sizeof kg);
        strbuf_printf(&msg, "%s \"%s\" is invalid: %s", kg, name ? name : "", n > 1 ? "[" : "");
        cJSON_ArrayForEach(cause, causes) {
                strbuf_printf(&msg, "%s%s: %s", i++ ? ", " : "", json_str(cause, "field") ?: "",
                              json_str(cause, "message") ?: "");
        }
        if (n > 1)
                strbuf_appends(&msg, "]");
        cJSON *d = cJSON_CreateObject();
        if (name)
                cJSON_AddStringToObject(d, "name", name);
        if (*c->group)
                cJSON_AddStringToObject(d, "group", c->group);
        cJSON_AddStringToObject(d, "kind", c->kind);
        cJSON_AddItemToObject(d, "causes", causes);
        reply_status(ret, 422, "Invalid", msg.data ? msg.data : "invalid", d);
        strbuf_free(&msg);
}

static cJSON *details_for(const collection *c, const char *name) {
        cJSON *d = cJSON_CreateObject();
        if (name)
                cJSON_AddStringToObject(d, "name", name);
        if (*c->group)
                cJSON_AddStringToObject(d, "group", c->group);
        cJSON_AddStringToObject(d, "kind", c->resource);
        return d;
}

static void reply_conflict(reply *ret, const collection *c, const char *name, const char *why) {
        char qr[256], msg[1024];
        qualified_resource(c->group, c->resource, qr, sizeof qr);
        snprintf(msg, sizeof msg, "Operation cannot be fulfilled on %s \"%s\": %s", qr, name, why);
        reply_status(ret, 409, "Conflict", msg, details_for(c, name));
}

static void reply_bad_request(reply *ret, const char *msg) {
        reply_status(ret, 400, "BadRequest", msg, NULL);
}

static void reply_decode_error(reply *ret, const collection *c, const char *why) {
        char msg[2048];
        snprintf(msg, sizeof msg, "%s in version \"%s\" cannot be handled as a %s: %s", c->kind,
                 c->version, c->kind, why);
        reply_bad_request(ret, msg);
}

/* MicroTime as Go's time.Parse(RFC3339Micro) accepts it: exactly six
 * fractional digits, then Z or a numeric offset. */
static bool valid_microtime(const char *s) {
        static const char pattern[] = "dddd-dd-ddTdd:dd:dd.dddddd";
        size_t n = strlen(s);
        uint64_t usec;

        if (n < sizeof pattern)
                return false;
        for (size_t i = 0; i < sizeof pattern - 1; i++) {
                if (pattern[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != pattern[i])
                        return false;
        }
        const char *z = s + sizeof pattern - 1;
        if (!(strcmp(z, "Z") == 0 ||
              ((z[0] == '+' || z[0] == '-') && isdigit((unsigned char)z[1]) &&
               isdigit((unsigned char)z[2]) && z[3] == ':' && isdigit((unsigned char)z[4]) &&
               isdigit((unsigned char)z[5]) && z[6] == 0)))
                return false;
        return koc_parse_rfc3339(s, &usec) >= 0;
}

static bool is_int32(const cJSON *v) {
        return cJSON_IsNumber(v) && v->valuedouble == (double)(int64_t)v->valuedouble &&
               v->valuedouble >= -2147483648.0 && v->valuedouble <= 2147483647.0;
}

/* The checks of k8s.io/kubernetes/pkg/apis/coordination/validation plus the
 * JSON decoding of metav1.MicroTime (a decoding failure is a 400). */
static bool validate_lease(const collection *c, const cJSON *obj, const char *name, reply *ret) {
        const cJSON *spec = cJSON_GetObjectItemCaseSensitive(obj, "spec");
        char why[512];

        if (!spec || cJSON_IsNull(spec))
                return true;
        if (!cJSON_IsObject(spec)) {
                reply_decode_error(ret, c,
                                   "json: cannot unmarshal into Go struct field Lease.spec of type "
                                   "v1.LeaseSpec");
                return false;
        }
        static const char *const times[] = {"acquireTime", "renewTime"};
        for (size_t i = 0; i < KOC_ELEMENTSOF(times); i++) {
                const cJSON *t = cJSON_GetObjectItemCaseSensitive(spec, times[i]);
                if (!t || cJSON_IsNull(t))
                        continue;
                if (!cJSON_IsString(t) || !valid_microtime(t->valuestring)) {
                        snprintf(why, sizeof why,
                                 "parsing time \"%s\" as \"2006-01-02T15:04:05.000000Z07:00\": "
                                 "cannot parse as RFC 3339 with microseconds (field spec.%s)",
                                 cJSON_IsString(t) ? t->valuestring : "?", times[i]);
                        reply_decode_error(ret, c, why);
                        return false;
                }
        }
        static const char *const ints[] = {"leaseDurationSeconds", "leaseTransitions"};
        for (size_t i = 0; i < KOC_ELEMENTSOF(ints); i++) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(spec, ints[i]);
                if (!v || cJSON_IsNull(v))
                        continue;
                if (!is_int32(v)) {
                        snprintf(why, sizeof why,
                                 "json: cannot unmarshal into Go struct field LeaseSpec.spec.%s of "
                                 "type int32",
                                 ints[i]);
                        reply_decode_error(ret, c, why);
                        return false;
                }
        }
        static const char *const strs[] = {"holderIdentity", "strategy", "preferredHolder"};
        for (size_t i = 0; i < KOC_ELEMENTSOF(strs); i++) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(spec, strs[i]);
                if (v && !cJSON_IsNull(v) && !cJSON_IsString(v)) {
                        snprintf(why, sizeof why,
                                 "json: cannot unmarshal into Go struct field LeaseSpec.spec.%s of "
                                 "type string",
                                 strs[i]);
                        reply_decode_error(ret, c, why);
                        return false;
                }
        }
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(spec, "leaseDurationSeconds");
        if (cJSON_IsNumber(d) && d->valuedouble <= 0) {
                snprintf(why, sizeof why, "Invalid value: %d: must be greater than 0",
                         (int)d->valuedouble);
                reply_invalid(ret, c, name, "spec.leaseDurationSeconds", "FieldValueInvalid", why);
                return false;
        }
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(spec, "leaseTransitions");
        if (cJSON_IsNumber(t) && t->valuedouble < 0) {
                snprintf(why, sizeof why, "Invalid value: %d: must be greater than or equal to 0",
                         (int)t->valuedouble);
                reply_invalid(ret, c, name, "spec.leaseTransitions", "FieldValueInvalid", why);
                return false;
        }
        return true;
}

static void replace_or_add(cJSON *obj, const char *name, cJSON *item);

/* Secrets: stringData is write-only, merged into data (base64) like the
 * real server does, and the type defaults to Opaque. */
static void normalize_secret(const collection *c, cJSON *obj) {
        if (strcmp(c->key, "/secrets") != 0)
                return;
        cJSON *sd = cJSON_DetachItemFromObjectCaseSensitive(obj, "stringData"), *it;
        if (cJSON_IsObject(sd) && sd->child) {
                cJSON *data = json_ensure_object(obj, "data");
                cJSON_ArrayForEach(it, sd) {
                        if (!cJSON_IsString(it))
                                continue;
                        char *enc = base64_encode(it->valuestring, strlen(it->valuestring));
                        if (enc)
                                replace_or_add(data, it->string, cJSON_CreateString(enc));
                        free(enc);
                }
        }
        cJSON_Delete(sd);
        if (!json_str(obj, "type"))
                json_set_str(obj, "type", "Opaque");
}

const cJSON *crd_lookup(server *srv, const char *group, const char *resource) {
        collection *crds = strmap_get(&srv->collections, CRD_KEY);
        char key[512];
        if (!crds || !*group || builtin_served(group, resource))
                return NULL;
        snprintf(key, sizeof key, "/%s.%s", resource, group);
        object *o = strmap_get(&crds->objects, key);
        return o ? o->json : NULL;
}

/* The CRD defining c (a custom resource), or NULL. */
static const cJSON *crd_of(server *srv, const collection *c) {
        return crd_lookup(srv, c->group, c->resource);
}

/* fieldValidation=Strict: unknown fields are an error (the others, Warn
 * and Ignore, drop them silently here: no Warning headers). */
static bool strict_fields(struct MHD_Connection *conn) {
        const char *v = qarg(conn, "fieldValidation");
        return v && strcmp(v, "Strict") == 0;
}

/* Custom resources: pruning, defaults and validation against the CRD's
 * schema for the request's version (apiextensions-apiserver's decoding and
 * strategy).  A CRD's own schema is checked when it is written.  False with
 * ret filled when obj is refused. */
static bool validate_custom(server *srv, struct MHD_Connection *conn, const collection *c,
                            const api_path *p, cJSON *obj, const char *name, bool patch,
                            reply *ret) {
        char err[1200];
        if (strcmp(c->key, CRD_KEY) == 0) {
                char field[1100];
                if (schema_check_crd(obj, field, sizeof field, err, sizeof err) >= 0)
                        return true;
                reply_invalid(ret, c, name, field,
                              strncmp(err, "Unsupported", 11) == 0 ? "FieldValueNotSupported"
                              : strncmp(err, "Forbidden", 9) == 0  ? "FieldValueForbidden"
                                                                   : "FieldValueInvalid",
                              err);
                return false;
        }
        const cJSON *crd = crd_of(srv, c);
        const cJSON *schema = crd ? crd_version_schema(crd, p->version) : NULL;
        scale_info si;
        bool scale = crd && scale_paths(srv, c->group, c->resource, p->version, &si) == 0;
        if (!schema && !scale)
                return true;
        cJSON *causes = NULL;
        char *pruned = NULL;
        bool strict = strict_fields(conn);
        int r = schema ? schema_validate(schema, obj, p->sub != NULL, &causes,
                                         strict ? &pruned : NULL)
                       : 0;
        if (scale && r != -ENOMEM) {
                /* The checks of the scale subresource's paths follow the
                 * schema's, as in the real server's strategy. */
                if (!causes)
                        causes = cJSON_CreateArray();
                scale_validate_cr(&si, obj, p->sub != NULL, causes);
                if (cJSON_GetArraySize(causes) > 0)
                        r = -EINVAL;
                else {
                        cJSON_Delete(causes);
                        causes = NULL;
                }
        }
        if (pruned) {
                cJSON_Delete(causes);
                if (patch) {
                        snprintf(err, sizeof err, "strict decoding error: %.1000s", pruned);
                        reply_invalid(ret, c, name, "patch", "FieldValueInvalid", err);
                } else {
                        snprintf(err, sizeof err, "strict decoding error: %.1000s", pruned);
                        reply_decode_error(ret, c, err);
                }
                free(pruned);
                return false;
        }
        if (r == -ENOMEM) {
                reply_status(ret, 500, "InternalError", "out of memory", NULL);
                return false;
        }
        if (r < 0) {
                reply_invalid_causes(ret, c, name, causes);
                return false;
        }
        return true;
}

static bool is_lease(const collection *c) {
        return strcmp(c->group, "coordination.k8s.io") == 0 && strcmp(c->resource, "leases") == 0;
}

static bool validate_name(const collection *c, const char *name, reply *ret) {
        bool ns = strcmp(c->key, "/namespaces") == 0;
        /* Namespaces are labels, every other name here a subdomain, as the
         * real kube-apiserver validates them. */
        const char *bad = ns ? koc__dns1123_label_error(name) : koc__dns1123_subdomain_error(name);
        char why[1024];

        if (!bad)
                return true;
        snprintf(why, sizeof why, "Invalid value: \"%s\": %s", name, bad);
        reply_invalid(ret, c, name, "metadata.name", "FieldValueInvalid", why);
        return false;
}

static void set_rv(cJSON *obj, uint64_t rv) {
        char buf[32];
        snprintf(buf, sizeof buf, "%" PRIu64, rv);
        json_set_str(json_ensure_object(obj, "metadata"), "resourceVersion", buf);
}

static void now_timestamp(char *buf, size_t size) {
        koc__format_timestamp(koc_now_realtime_usec(), 0, buf, size);
}

static void replace_or_add(cJSON *obj, const char *name, cJSON *item) {
        if (!item)
                return;
        if (cJSON_GetObjectItemCaseSensitive(obj, name))
                cJSON_ReplaceItemInObjectCaseSensitive(obj, name, item);
        else
                cJSON_AddItemToObject(obj, name, item);
}

/* Copies obj[name] from src into dst (or removes it from dst when src has none). */
static void copy_field(cJSON *dst, const cJSON *src, const char *name) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(src, name);
        if (v)
                replace_or_add(dst, name, cJSON_Duplicate(v, true));
        else
                cJSON_DeleteItemFromObjectCaseSensitive(dst, name);
}

static bool has_finalizers(const cJSON *obj) {
        const cJSON *f = json_path(obj, "metadata.finalizers");
        return cJSON_IsArray(f) && cJSON_GetArraySize(f) > 0;
}

/* True when anything other than metadata and status differs. */
static bool spec_changed(const cJSON *a, const cJSON *b) {
        cJSON *x = cJSON_Duplicate(a, true), *y = cJSON_Duplicate(b, true);
        static const char *const skip[] = {"metadata", "status", "kind", "apiVersion"};
        for (size_t i = 0; i < KOC_ELEMENTSOF(skip); i++) {
                cJSON_DeleteItemFromObjectCaseSensitive(x, skip[i]);
                cJSON_DeleteItemFromObjectCaseSensitive(y, skip[i]);
        }
        bool changed = !cJSON_Compare(x, y, true);
        cJSON_Delete(x);
        cJSON_Delete(y);
        return changed;
}

static const char *api_version_of(const api_path *p, char *buf, size_t size) {
        if (*p->group)
                snprintf(buf, size, "%s/%s", p->group, p->version);
        else
                snprintf(buf, size, "%s", p->version);
        return buf;
}

/* Fills kind and apiVersion when missing, and puts them first, where the
 * real server's encoder puts them. */
static void fill_type_meta(cJSON *obj, const collection *c, const api_path *p) {
        char av[300];
        const char *kind = json_str(obj, "kind"), *apiv = json_str(obj, "apiVersion");
        cJSON *k = cJSON_CreateString(kind && *kind ? kind : c->kind);
        cJSON *a = cJSON_CreateString(apiv && *apiv ? apiv : api_version_of(p, av, sizeof av));
        if (!k || !a) {
                cJSON_Delete(k);
                cJSON_Delete(a);
                return;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(obj, "kind");
        cJSON_DeleteItemFromObjectCaseSensitive(obj, "apiVersion");
        cJSON_AddItemToObject(obj, "apiVersion", a);
        cJSON_AddItemToObject(obj, "kind", k);
        /* Move both to the front. */
        cJSON_DetachItemViaPointer(obj, a);
        cJSON_DetachItemViaPointer(obj, k);
        if (obj->child) {
                /* Position 0 is the one cJSON 1.7.15 inserts reliably. */
                if (!cJSON_InsertItemInArray(obj, 0, a))
                        cJSON_AddItemToArray(obj, a);
                if (!cJSON_InsertItemInArray(obj, 0, k))
                        cJSON_AddItemToArray(obj, k);
        } else {
                cJSON_AddItemToArray(obj, k);
                cJSON_AddItemToArray(obj, a);
        }
}

static cJSON *parse_body(const collection *c, const char *body, size_t len, reply *ret) {
        const char *end = NULL;
        cJSON *obj = cJSON_ParseWithLengthOpts(body, len, &end, false);
        char msg[512];

        if (!obj) {
                snprintf(msg, sizeof msg,
                         "the object provided is unrecognized (must be of type %s): couldn't get "
                         "version/kind; json parse error: invalid JSON near offset %zu",
                         c ? c->kind : "object", end ? (size_t)(end - body) : (size_t)0);
                reply_bad_request(ret, msg);
                return NULL;
        }
        if (!cJSON_IsObject(obj)) {
                cJSON_Delete(obj);
                snprintf(msg, sizeof msg,
                         "the object provided is unrecognized (must be of type %s): couldn't get "
                         "version/kind; json parse error: expected a JSON object",
                         c ? c->kind : "object");
                reply_bad_request(ret, msg);
                return NULL;
        }
        return obj;
}

static bool content_type_is(const char *ct, const char *want) {
        size_t n = strlen(want);
        if (!ct)
                return false;
        while (*ct == ' ')
                ct++;
        return strncasecmp(ct, want, n) == 0 && (ct[n] == 0 || ct[n] == ';' || ct[n] == ' ');
}

static void reply_unsupported_media(reply *ret, const char *ct, bool patch) {
        char msg[600];
        if (patch)
                snprintf(msg, sizeof msg,
                         "the body of the request was in an unknown format - accepted media types "
                         "include: application/json-patch+json, application/merge-patch+json, "
                         "application/apply-patch+yaml, application/strategic-merge-patch+json");
        else
                snprintf(msg, sizeof msg,
                         "the body of the request was in an unknown format - accepted media types "
                         "include: application/json");
        reply_status(ret, 415, "UnsupportedMediaType", msg, NULL);
}

static bool check_json_content_type(const char *ct, reply *ret) {
        if (!ct || !*ct || content_type_is(ct, "application/json"))
                return true;
        reply_unsupported_media(ret, ct, false);
        return false;
}

static bool dry_run(struct MHD_Connection *conn) {
        const char *d = qarg(conn, "dryRun");
        return d && *d;
}

/* The manager of a write that is not an apply: the fieldManager argument,
 * else the User-Agent up to its first '/', as the real server names it. */
static const char *update_manager(struct MHD_Connection *conn, char *buf, size_t size) {
        if (!conn)
                return NULL;
        const char *fm = qarg(conn, "fieldManager");
        if (fm && *fm)
                return fm;
        const char *ua = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "User-Agent");
        size_t n = ua ? strcspn(ua, "/") : 0;
        snprintf(buf, size, "%.*s", (int)(n > 128 ? 128 : n), ua ? ua : "");
        return buf;
}

/* ---- verbs ---- */

/* The real server's 406 for a list asked as an object or the reverse. */
static void reply_not_acceptable(reply *ret, const collection *c, bool want_list) {
        char msg[600];
        snprintf(msg, sizeof msg, "you requested %s, but the requested object is %s (*%s.%s%s)",
                 want_list ? "PartialObjectMetadataList" : "PartialObjectMetadata",
                 want_list ? "not a list" : "a list", *c->group ? c->group : "core", c->kind,
                 want_list ? "" : "List");
        reply_status(ret, 406, "NotAcceptable", msg, NULL);
}

static void do_get(server *srv, struct MHD_Connection *conn, collection *c, const api_path *p,
                   reply *ret) {
        char key[600];
        accept_as as = accept_parse(conn);
        if (as == ACCEPT_METADATA_LIST)
                return reply_not_acceptable(ret, c, true);
        object_key(c->namespaced ? p->ns : NULL, p->name, key, sizeof key);
        object *o = strmap_get(&c->objects, key);
        if (!o || (c->namespaced && !p->ns))
                return reply_not_found(ret, p, p->name);
        if (as == ACCEPT_METADATA || as == ACCEPT_TABLE) {
                const cJSON *one = o->json;
                cJSON *m = as == ACCEPT_METADATA
                                   ? partial_metadata(o->json)
                                   : table_build(srv, c, p->version, &one, 1,
                                                 qarg(conn, "includeObject"));
                if (as == ACCEPT_TABLE)
                        copy_field(json_ensure_object(m, "metadata"),
                                   json_path(o->json, "metadata"), "resourceVersion");
                reply_json(ret, 200, m);
                cJSON_Delete(m);
                return;
        }
        reply_json(ret, 200, o->json);
}

/* resourceVersionMatch needs a resourceVersion and no continue token
 * (apimachinery's ValidateListOptions). */
static bool check_rv_match(struct MHD_Connection *conn, const collection *c, reply *ret) {
        const char *m = qarg(conn, "resourceVersionMatch"), *rv = qarg(conn, "resourceVersion");
        const char *cont = qarg(conn, "continue");
        const char *why = NULL;
        char msg[400];

        if (!m || !*m)
                return true;
        if (strcmp(m, "NotOlderThan") != 0 && strcmp(m, "Exact") != 0)
                why = "resourceVersionMatch: Unsupported value: supported values: \"Exact\", "
                      "\"NotOlderThan\", \"\"";
        else if (!rv || !*rv)
                why = "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless "
                      "resourceVersion is provided";
        else if (cont && *cont)
                why = "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when "
                      "continue is provided";
        else if (strcmp(m, "Exact") == 0 && strcmp(rv, "0") == 0)
                why = "resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is "
                      "forbidden for resourceVersion \"0\"";
        if (!why)
                return true;
        snprintf(msg, sizeof msg, "%s \"\" is invalid: %s", c->kind, why);
        reply_status(ret, 422, "Invalid", msg, NULL);
        return false;
}

/* Whether resourceVersion rv, as a request gives it, is not o's. */
static bool rv_stale(const char *rv, const object *o) {
        return strtoull(rv, NULL, 10) != o->rv || !isdigit((unsigned char)rv[0]);
}

static int cmp_object(const void *a, const void *b) {
        return strcmp((*(object *const *)a)->key, (*(object *const *)b)->key);
}

static int collection_sort(collection *c) {
        if (c->sorted && !c->sorted_stale)
                return 0;
        object **v = realloc(c->sorted, (c->objects.n + 1) * sizeof *v);
        if (!v)
                return -ENOMEM;
        size_t n = 0, b = 0;
        for (strmap_entry *e = strmap_next(&c->objects, &b, NULL); e;
             e = strmap_next(&c->objects, &b, e))
                v[n++] = e->value;
        qsort(v, n, sizeof *v, cmp_object);
        c->sorted = v;
        c->n_sorted = n;
        c->sorted_stale = false;
        return 0;
}

/* The first index whose key is above `key` (or at or above, when `inclusive`). */
static size_t sorted_bound(const collection *c, const char *key, bool inclusive) {
        size_t lo = 0, hi = c->n_sorted;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int d = strcmp(c->sorted[mid]->key, key);
                if (d < 0 || (d == 0 && !inclusive))
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

static int cmp_item(const void *a, const void *b) {
        return strcmp(((const snapshot_item *)a)->key, ((const snapshot_item *)b)->key);
}

/* A list is one snapshot: the first page is the current state at the
 * server's resourceVersion, which the continue token carries, and every
 * further page is cut from the state at that resourceVersion (rebuilt from
 * the watch history), as etcd serves it on the real server.  When the
 * history no longer reaches back that far the answer is 410 Expired, as the
 * real server's is after a compaction. */
static void do_list(server *srv, struct MHD_Connection *conn, collection *c, const api_path *p,
                    reply *ret) {
        selector *ls = NULL, *fs = NULL;
        char err[512], av[300], kind[300], rvs[32];
        snapshot_item *all = NULL;
        size_t n_all = 0, n = 0;
        const char *limit_s = qarg(conn, "limit"), *cont = qarg(conn, "continue");
        long limit = 0;
        char *start = NULL;
        uint64_t list_rv = srv->rv;

        if (selector_parse_labels(qarg(conn, "labelSelector"), &ls, err, sizeof err) < 0 ||
            selector_parse_fields(qarg(conn, "fieldSelector"), &fs, err, sizeof err) < 0) {
                reply_bad_request(ret, err);
                goto out;
        }
        const char *bad_field =
                selector_unsupported_field(fs, c->group, c->resource, field_label_supported);
        if (bad_field) {
                snprintf(err, sizeof err, "field label not supported: %s", bad_field);
                reply_bad_request(ret, err);
                goto out;
        }
        if (!check_rv_match(conn, c, ret))
                goto out;
        if (limit_s && *limit_s) {
                char *end;
                limit = strtol(limit_s, &end, 10);
                if (*end || limit < 0)
                        limit = 0;
        }
        if (cont && *cont) {
                size_t len;
                char *raw = base64_decode(cont, &len);
                cJSON *tok = raw ? cJSON_Parse(raw) : NULL;
                const char *st = json_str(tok, "start");
                const cJSON *trv = cJSON_GetObjectItemCaseSensitive(tok, "rv");
                if (st && cJSON_IsNumber(trv) && trv->valuedouble >= 0 &&
                    trv->valuedouble <= (double)srv->rv) {
                        start = strdup(st);
                        list_rv = (uint64_t)trv->valuedouble;
                }
                cJSON_Delete(tok);
                free(raw);
                if (!start) {
                        reply_bad_request(ret, "continue key is not valid: illegal base64 data");
                        goto out;
                }
        }
        int r = 0;
        bool paged = false;   /* the current state, already filtered and cut */
        bool more = false;    /* keys after the page */
        size_t remaining = 0; /* how many, when there are no selectors */
        bool filtered = (ls && !selector_empty(ls)) || (fs && !selector_empty(fs));
        if (list_rv < srv->rv)
                r = history_snapshot(srv, c, list_rv, &all, &n_all);
        else if ((r = collection_sort(c)) >= 0) {
                /* The current state: a namespace's keys ("ns/...") are one
                 * range of the sorted objects; the page starts after the
                 * continue key and ends at the limit. */
                char lo_key[300], hi_key[300];
                size_t lo = 0, hi = c->n_sorted;
                if (p->ns && c->namespaced) {
                        snprintf(lo_key, sizeof lo_key, "%s/", p->ns);
                        snprintf(hi_key, sizeof hi_key, "%s0", p->ns); /* '0' follows '/' */
                        lo = sorted_bound(c, lo_key, true);
                        hi = sorted_bound(c, hi_key, true);
                }
                if (start) {
                        size_t after = sorted_bound(c, start, false);
                        if (after > lo)
                                lo = after;
                }
                if (!(all = malloc((hi > lo ? hi - lo : 0) * sizeof *all + sizeof *all)))
                        r = -ENOMEM;
                size_t i = lo;
                for (; r >= 0 && i < hi && (limit <= 0 || n_all < (size_t)limit); i++) {
                        object *o = c->sorted[i];
                        if (selector_match_labels(ls, json_path(o->json, "metadata.labels")) &&
                            selector_match_fields(fs, o->json))
                                all[n_all++] = (snapshot_item){o->key, o->json, false};
                }
                more = r >= 0 && i < hi;
                remaining = more && !filtered ? hi - i : 0;
                paged = true;
        }
        if (r == -ESTALE) {
                reply_status(ret, 410, "Expired",
                             "The provided continue parameter is too old to display a consistent "
                             "list result. You can start a new list without the continue "
                             "parameter.",
                             NULL);
                goto out;
        }
        if (r < 0) {
                reply_status(ret, 500, "InternalError", "out of memory", NULL);
                goto out;
        }
        for (size_t i = 0; i < n_all && !paged; i++) {
                const cJSON *o = all[i].json;
                const char *ns = json_str(o, "metadata.namespace");
                bool keep = !(p->ns && c->namespaced && (!ns || strcmp(ns, p->ns) != 0)) &&
                            !(start && strcmp(all[i].key, start) <= 0) &&
                            selector_match_labels(ls, json_path(o, "metadata.labels")) &&
                            selector_match_fields(fs, o);
                if (keep)
                        all[n++] = all[i];
                else if (all[i].owned)
                        free((char *)all[i].key);
        }
        size_t shown;
        if (paged) {
                n = shown = n_all;
        } else {
                qsort(all, n, sizeof *all, cmp_item);
                shown = limit > 0 && (size_t)limit < n ? (size_t)limit : n;
                more = shown < n;
                remaining = filtered ? 0 : n - shown;
        }

        accept_as as = accept_parse(conn);
        if (as == ACCEPT_METADATA) {
                reply_not_acceptable(ret, c, false);
                goto out;
        }
        cJSON *list = cJSON_CreateObject(), *meta, *arr;
        snprintf(kind, sizeof kind, "%sList", c->kind);
        cJSON_AddStringToObject(list, "kind",
                                as == ACCEPT_METADATA_LIST ? "PartialObjectMetadataList" : kind);
        cJSON_AddStringToObject(list, "apiVersion",
                                as == ACCEPT_METADATA_LIST ? "meta.k8s.io/v1"
                                                           : api_version_of(p, av, sizeof av));
        meta = cJSON_AddObjectToObject(list, "metadata");
        snprintf(rvs, sizeof rvs, "%" PRIu64, list_rv);
        cJSON_AddStringToObject(meta, "resourceVersion", rvs);
        if (more && shown > 0) {
                cJSON *tok = cJSON_CreateObject();
                cJSON_AddStringToObject(tok, "v", "meta.k8s.io/v1");
                cJSON_AddNumberToObject(tok, "rv", (double)list_rv);
                cJSON_AddStringToObject(tok, "start", all[shown - 1].key);
                char *raw = cJSON_PrintUnformatted(tok);
                char *enc = raw ? base64_encode(raw, strlen(raw)) : NULL;
                if (enc)
                        cJSON_AddStringToObject(meta, "continue", enc);
                /* As the real server: only for lists without selectors. */
                if (remaining)
                        cJSON_AddNumberToObject(meta, "remainingItemCount", (double)remaining);
                free(enc);
                free(raw);
                cJSON_Delete(tok);
        }
        if (as == ACCEPT_TABLE) {
                const cJSON **objs = malloc((shown + 1) * sizeof *objs);
                cJSON *t = NULL;
                for (size_t i = 0; objs && i < shown; i++)
                        objs[i] = all[i].json;
                if (objs)
                        t = table_build(srv, c, p->version, objs, shown,
                                        qarg(conn, "includeObject"));
                free(objs);
                if (!t) {
                        cJSON_Delete(list);
                        reply_status(ret, 500, "InternalError", "out of memory", NULL);
                        goto out;
                }
                cJSON_ReplaceItemInObjectCaseSensitive(
                        t, "metadata", cJSON_DetachItemFromObjectCaseSensitive(list, "metadata"));
                cJSON_Delete(list);
                reply_json(ret, 200, t);
                cJSON_Delete(t);
                goto out;
        }
        arr = cJSON_AddArrayToObject(list, "items");
        /* Items reference the stored objects (cJSON references are never
         * freed with the list), so the list is printed without copying. */
        for (size_t i = 0; i < shown; i++)
                if (as == ACCEPT_METADATA_LIST)
                        cJSON_AddItemToArray(arr, partial_metadata(all[i].json));
                else
                        cJSON_AddItemReferenceToArray(arr, (cJSON *)all[i].json);
        reply_json(ret, 200, list);
        cJSON_Delete(list);
out:
        free(start);
        snapshot_free(all, n);
        selector_free(ls);
        selector_free(fs);
}

static void random_suffix(char *buf, size_t n) {
        static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
        for (size_t i = 0; i < n; i++)
                buf[i] = alphabet[koc__random_u64(sizeof alphabet - 1)];
        buf[n] = 0;
}

static object *store_put(collection *c, const char *key, cJSON *obj, uint64_t rv) {
        object *o = strmap_get(&c->objects, key);
        if (o) {
                cJSON_Delete(o->json);
                o->json = obj;
                o->rv = rv;
                return o;
        }
        o = calloc(1, sizeof *o);
        if (!o || !(o->key = strdup(key)) || strmap_put(&c->objects, key, o) < 0) {
                if (o)
                        free(o->key);
                free(o);
                cJSON_Delete(obj);
                return NULL;
        }
        o->json = obj;
        o->rv = rv;
        c->sorted_stale = true;
        return o;
}

/* Objects are capped at the request body limit, so that patches cannot
 * grow one without bound (etcd caps objects too). */
static bool too_big(const cJSON *obj, reply *ret) {
        char *json = cJSON_PrintUnformatted(obj);
        size_t n = json ? strlen(json) : 0;
        cJSON_free(json);
        if (json && n <= MAX_BODY_SIZE)
                return false;
        char msg[128];
        snprintf(msg, sizeof msg, "Request entity too large: the object would exceed %u bytes",
                 MAX_BODY_SIZE);
        reply_status(ret, json ? 413 : 500, json ? "RequestEntityTooLarge" : "InternalError",
                     json ? msg : "out of memory", NULL);
        return true;
}

/* A CRD is served at once: report it NamesAccepted and Established, as
 * the real server's controllers do a moment after creation (clients such
 * as envtest wait for Established). */
static void crd_established(cJSON *crd, const char *ts) {
        static const char *const types[][2] = {
                {"NamesAccepted", "NoConflicts"},
                {"Established", "InitialNamesAccepted"},
        };
        cJSON *st = cJSON_AddObjectToObject(crd, "status"),
              *conds = cJSON_AddArrayToObject(st, "conditions");
        for (size_t i = 0; i < KOC_ELEMENTSOF(types); i++) {
                cJSON *cond = cJSON_CreateObject();
                cJSON_AddStringToObject(cond, "type", types[i][0]);
                cJSON_AddStringToObject(cond, "status", "True");
                cJSON_AddStringToObject(cond, "lastTransitionTime", ts);
                cJSON_AddStringToObject(cond, "reason", types[i][1]);
                cJSON_AddStringToObject(cond, "message",
                                        i == 0 ? "no conflicts found"
                                               : "the initial names have been accepted");
                cJSON_AddItemToArray(conds, cond);
        }
        const cJSON *names = json_path(crd, "spec.names");
        if (names)
                cJSON_AddItemToObject(st, "acceptedNames", cJSON_Duplicate(names, true));
        cJSON *stored = cJSON_AddArrayToObject(st, "storedVersions"), *v;
        cJSON_ArrayForEach(v, json_path(crd, "spec.versions")) {
                if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "storage")) &&
                    json_str(v, "name"))
                        cJSON_AddItemToArray(stored, cJSON_CreateString(json_str(v, "name")));
        }
}

static bool namespace_exists(server *srv, const char *ns) {
        collection *nss = strmap_get(&srv->collections, "/namespaces");
        char key[300];
        snprintf(key, sizeof key, "/%s", ns);
        return nss && strmap_get(&nss->objects, key);
}

/* A body of another kind (or API group) than the resource is refused, as the
 * real server's decoder refuses to convert it. */
static bool check_kind(const collection *c, const api_path *p, const cJSON *obj, reply *ret) {
        const char *kind = json_str(obj, "kind"), *apiv = json_str(obj, "apiVersion");
        const char *slash = apiv ? strchr(apiv, '/') : NULL;
        size_t glen = slash ? (size_t)(slash - apiv) : 0;
        bool group_ok = !apiv || !*apiv ||
                        (slash ? strlen(p->group) == glen && strncmp(apiv, p->group, glen) == 0
                               : !*p->group);
        char msg[700];

        if ((!kind || !*kind || strcmp(kind, c->kind) == 0) && group_ok)
                return true;
        snprintf(msg, sizeof msg,
                 "%s in version \"%s\" cannot be handled as a %s: no kind \"%s\" is registered "
                 "for version \"%s\"",
                 kind && *kind ? kind : c->kind, apiv && *apiv ? apiv : p->version, c->kind,
                 kind && *kind ? kind : c->kind, apiv && *apiv ? apiv : p->version);
        reply_bad_request(ret, msg);
        return false;
}

/* Creates obj (taken) in c. */
static void create_object(server *srv, struct MHD_Connection *conn, collection *c,
                          const api_path *p, cJSON *obj, bool applied, reply *ret) {
        char key[600], name_buf[300], ts[64], uid[37], mgr[200], av[300];
        cJSON *meta;

        meta = json_ensure_object(obj, "metadata");
        const char *name = json_str(obj, "metadata.name");
        const char *gen = json_str(obj, "metadata.generateName");
        if (!name || !*name) {
                if (!gen || !*gen) {
                        reply_invalid(ret, c, NULL, "metadata.name", "FieldValueRequired",
                                      "Required value: name or generateName is required");
                        goto out;
                }
                char suffix[6];
                /* Retry a few times on the (unlikely) collision, like the
                 * real server's generateName retries. */
                for (int i = 0; i < 8; i++) {
                        random_suffix(suffix, 5);
                        snprintf(name_buf, sizeof name_buf, "%.240s%s", gen, suffix);
                        object_key(c->namespaced ? p->ns : NULL, name_buf, key, sizeof key);
                        if (!strmap_get(&c->objects, key))
                                break;
                }
                json_set_str(meta, "name", name_buf);
                name = json_str(obj, "metadata.name");
        }
        const char *bns = json_str(obj, "metadata.namespace");
        if (!check_kind(c, p, obj, ret))
                goto out;
        if (c->namespaced) {
                if (!p->ns) {
                        reply_status(ret, 404, "NotFound",
                                     "the server could not find the requested resource", NULL);
                        goto out;
                }
                if (!namespace_exists(srv, p->ns)) {
                        /* The NamespaceLifecycle admission plugin of the real server. */
                        api_path nsp = {.group = "", .version = "v1", .resource = "namespaces"};
                        reply_not_found(ret, &nsp, p->ns);
                        goto out;
                }
                if (bns && *bns && strcmp(bns, p->ns) != 0) {
                        reply_bad_request(ret,
                                          "the namespace of the provided object does not match the "
                                          "namespace sent on the request");
                        goto out;
                }
                json_set_str(meta, "namespace", p->ns);
        } else
                cJSON_DeleteItemFromObjectCaseSensitive(meta, "namespace");
        if (!validate_name(c, name, ret))
                goto out;
        if (is_lease(c) && !validate_lease(c, obj, name, ret))
                goto out;
        normalize_secret(c, obj);
        object_key(c->namespaced ? p->ns : NULL, name, key, sizeof key);
        if (strmap_get(&c->objects, key)) {
                char qr[256], msg[700];
                qualified_resource(c->group, c->resource, qr, sizeof qr);
                snprintf(msg, sizeof msg, "%s \"%s\" already exists", qr, name);
                reply_status(ret, 409, "AlreadyExists", msg, details_for(c, name));
                goto out;
        }
        fill_type_meta(obj, c, p);
        koc_uuid_random(uid);
        json_set_str(meta, "uid", uid);
        now_timestamp(ts, sizeof ts);
        json_set_str(meta, "creationTimestamp", ts);
        cJSON_DeleteItemFromObjectCaseSensitive(meta, "deletionTimestamp");
        cJSON_DeleteItemFromObjectCaseSensitive(meta, "deletionGracePeriodSeconds");
        cJSON_DeleteItemFromObjectCaseSensitive(meta, "generation");
        /* Like the real strategies: the types with a status subresource
         * (custom resources, workloads) track generation; ConfigMaps and
         * Leases do not. */
        if (c->has_status)
                cJSON_AddNumberToObject(meta, "generation", 1);
        if (c->has_status) {
                cJSON_DeleteItemFromObjectCaseSensitive(obj, "status");
                if (strcmp(c->key, "/namespaces") == 0) {
                        cJSON *st = cJSON_AddObjectToObject(obj, "status");
                        cJSON_AddStringToObject(st, "phase", "Active");
                } else if (strcmp(c->key, CRD_KEY) == 0)
                        crd_established(obj, ts);
        }
        if (!validate_custom(srv, conn, c, p, obj, name, false, ret))
                goto out;
        if (!applied)
                managed_fields_update(obj, NULL, update_manager(conn, mgr, sizeof mgr),
                                      api_version_of(p, av, sizeof av), c->has_status);
        if (too_big(obj, ret))
                goto out;
        if (dry_run(conn)) {
                set_rv(obj, srv->rv);
                reply_json(ret, 201, obj);
                goto out;
        }
        uint64_t rv = server_next_rv(srv);
        set_rv(obj, rv);
        object *o = store_put(c, key, obj, rv);
        obj = NULL;
        if (!o) {
                reply_status(ret, 500, "InternalError", "out of memory", NULL);
                return;
        }
        watch_emit(srv, c, 'A', o->json, NULL);
        reply_json(ret, 201, o->json);
out:
        cJSON_Delete(obj);
}

/* The real server answers an immediate delete with a Status, except for the
 * types whose strategy returns the deleted object. */
static bool returns_deleted_object(const collection *c) {
        return !builtin_served(c->group, c->resource) || strcmp(c->key, "/pods") == 0 ||
               strcmp(c->key, "/namespaces") == 0 || strcmp(c->key, CRD_KEY) == 0;
}

static void delete_now(server *srv, collection *c, object *o, reply *ret) {
        uint64_t rv = server_next_rv(srv);
        set_rv(o->json, rv);
        watch_emit(srv, c, 'D', o->json, NULL);
        if (ret && returns_deleted_object(c))
                reply_json(ret, 200, o->json);
        else if (ret) {
                cJSON *d = cJSON_CreateObject();
                const char *uid = json_str(o->json, "metadata.uid");
                cJSON_AddStringToObject(d, "name", json_str(o->json, "metadata.name") ?: "");
                if (*c->group)
                        cJSON_AddStringToObject(d, "group", c->group);
                cJSON_AddStringToObject(d, "kind", c->resource);
                if (uid)
                        cJSON_AddStringToObject(d, "uid", uid);
                reply_status(ret, 200, NULL, NULL, d);
        }
        object_free(strmap_remove(&c->objects, o->key));
        c->sorted_stale = true;
}

/* Common tail of update and patch: `obj` is the complete new object. */
static void update_object(server *srv, struct MHD_Connection *conn, collection *c,
                          const api_path *p, object *o, cJSON *obj, bool rv_checked, bool applied,
                          reply *ret) {
        const char *status_sub = p->sub;
        char mgr[200], av[300];
        const char *brv;
        cJSON *meta;

        meta = json_ensure_object(obj, "metadata");
        const char *bname = json_str(obj, "metadata.name");
        if (bname && strcmp(bname, p->name) != 0) {
                char msg[700];
                snprintf(msg, sizeof msg,
                         "the name of the object (%s) does not match the name on the URL (%s)",
                         bname, p->name);
                reply_bad_request(ret, msg);
                goto out;
        }
        const char *bns = json_str(obj, "metadata.namespace");
        if (c->namespaced && bns && *bns && strcmp(bns, p->ns) != 0) {
                reply_bad_request(
                        ret, "the namespace of the provided object does not match the namespace "
                             "sent on the request");
                goto out;
        }
        brv = json_str(obj, "metadata.resourceVersion");
        if (!rv_checked) {
                if (!brv || !*brv) {
                        /* As kube-apiserver's strategies: Leases and custom
                         * resources allow no unconditional update (the latter
                         * said of the resource, the value an int64 there). */
                        if (is_lease(c)) {
                                reply_invalid(
                                        ret, c, p->name, "metadata.resourceVersion",
                                        "FieldValueInvalid",
                                        "Invalid value: 0x0: must be specified for an update");
                                goto out;
                        }
                        if (crd_of(srv, c)) {
                                reply_invalid_as(
                                        ret, c, c->resource, p->name, "metadata.resourceVersion",
                                        "FieldValueInvalid",
                                        "Invalid value: 0: must be specified for an update");
                                goto out;
                        }
                } else if (rv_stale(brv, o)) {
                        reply_conflict(
                                ret, c, p->name,
                                "the object has been modified; please apply your changes to the "
                                "latest version and try again");
                        goto out;
                }
        }
        if (status_sub) {
                /* Only the status changes through the status subresource. */
                cJSON *merged = cJSON_Duplicate(o->json, true);
                copy_field(merged, obj, "status");
                cJSON_Delete(obj);
                obj = merged;
                meta = json_ensure_object(obj, "metadata");
                if (!validate_custom(srv, conn, c, p, obj, p->name, rv_checked && !applied, ret))
                        goto out;
        } else {
                json_set_str(meta, "name", p->name);
                if (c->namespaced)
                        json_set_str(meta, "namespace", p->ns);
                else
                        cJSON_DeleteItemFromObjectCaseSensitive(meta, "namespace");
                fill_type_meta(obj, c, p);
                if (c->has_status)
                        copy_field(obj, o->json, "status");
                const cJSON *ometa = cJSON_GetObjectItemCaseSensitive(o->json, "metadata");
                copy_field(meta, ometa, "uid");
                copy_field(meta, ometa, "creationTimestamp");
                copy_field(meta, ometa, "deletionTimestamp");
                copy_field(meta, ometa, "deletionGracePeriodSeconds");
                copy_field(meta, ometa, "generation");
                if (is_lease(c) && !validate_lease(c, obj, p->name, ret))
                        goto out;
                normalize_secret(c, obj);
                if (!validate_custom(srv, conn, c, p, obj, p->name, rv_checked && !applied, ret))
                        goto out;
                const cJSON *g = cJSON_GetObjectItemCaseSensitive(meta, "generation");
                if (cJSON_IsNumber(g) && spec_changed(o->json, obj))
                        cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(meta, "generation"),
                                             g->valuedouble + 1);
                if (!applied)
                        managed_fields_update(obj, o->json, update_manager(conn, mgr, sizeof mgr),
                                              api_version_of(p, av, sizeof av), c->has_status);
        }
        /* A no-op update keeps the resourceVersion and sends no event. */
        set_rv(obj, o->rv);
        if (cJSON_Compare(obj, o->json, true)) {
                reply_json(ret, 200, o->json);
                goto out;
        }
        if (too_big(obj, ret))
                goto out;
        if (dry_run(conn)) {
                reply_json(ret, 200, obj);
                goto out;
        }
        cJSON *old_labels = cJSON_Duplicate(json_path(o->json, "metadata.labels"), true);
        uint64_t rv = server_next_rv(srv);
        set_rv(obj, rv);
        cJSON_Delete(o->json);
        o->json = obj;
        o->rv = rv;
        obj = NULL;
        if (json_path(o->json, "metadata.deletionTimestamp") && !has_finalizers(o->json)) {
                /* The last finalizer is gone: the object goes now. */
                cJSON_Delete(old_labels);
                delete_now(srv, c, o, ret);
                goto out;
        }
        watch_emit(srv, c, 'M', o->json, old_labels);
        cJSON_Delete(old_labels);
        reply_json(ret, 200, o->json);
out:
        cJSON_Delete(obj);
}

static object *lookup(collection *c, const api_path *p) {
        char key[600];
        if (c->namespaced && !p->ns)
                return NULL;
        object_key(c->namespaced ? p->ns : NULL, p->name, key, sizeof key);
        return strmap_get(&c->objects, key);
}

static void do_create(server *srv, struct MHD_Connection *conn, collection *c, const api_path *p,
                      const char *body, size_t len, const char *ct, reply *ret) {
        cJSON *obj;
        if (!check_json_content_type(ct, ret))
                return;
        if (!(obj = parse_body(c, body, len, ret)))
                return;
        create_object(srv, conn, c, p, obj, false, ret);
}

/* The strategies of the real server whose AllowCreateOnUpdate() is true:
 * a PUT to a missing name creates the object (201). */
static bool allow_create_on_update(const collection *c) {
        static const char *const keys[] = {
                "coordination.k8s.io/leases",
                "coordination.k8s.io/leasecandidates",
                "/endpoints",
                "/events",
                "events.k8s.io/events",
        };
        for (size_t i = 0; i < KOC_ELEMENTSOF(keys); i++)
                if (strcmp(c->key, keys[i]) == 0)
                        return true;
        return false;
}

static void do_update(server *srv, struct MHD_Connection *conn, collection *c, const api_path *p,
                      const char *body, size_t len, const char *ct, reply *ret) {
        cJSON *obj;
        if (!check_json_content_type(ct, ret))
                return;
        if (!(obj = parse_body(c, body, len, ret)))
                return;
        if (!check_kind(c, p, obj, ret)) {
                cJSON_Delete(obj);
                return;
        }
        object *o = lookup(c, p);
        if (!o && (!allow_create_on_update(c) || p->sub || (c->namespaced && !p->ns))) {
                cJSON_Delete(obj);
                return reply_not_found(ret, p, p->name);
        }
        if (!o) {
                const char *bname = json_str(obj, "metadata.name");
                if (bname && strcmp(bname, p->name) != 0) {
                        char msg[700];
                        snprintf(msg, sizeof msg,
                                 "the name of the object (%s) does not match the name on the URL "
                                 "(%s)",
                                 bname, p->name);
                        cJSON_Delete(obj);
                        return reply_bad_request(ret, msg);
                }
                cJSON *meta = json_ensure_object(obj, "metadata");
                json_set_str(meta, "name", p->name);
                cJSON_DeleteItemFromObjectCaseSensitive(meta, "resourceVersion");
                return create_object(srv, conn, c, p, obj, false, ret);
        }
        update_object(srv, conn, c, p, o, obj, false, false, ret);
}

/* Server-side apply (apply.c has the field ownership): creates the object
 * when it does not exist, else merges the configuration into it. */
static void do_apply(server *srv, struct MHD_Connection *conn, collection *c, const api_path *p,
                     const char *body, size_t len, reply *ret) {
        const char *manager = qarg(conn, "fieldManager");
        const char *force_arg = qarg(conn, "force");
        bool force = force_arg && (strcmp(force_arg, "true") == 0 || strcmp(force_arg, "1") == 0);
        char msg[700], av[300];

        if (!manager || !*manager) {
                cJSON *d = cJSON_CreateObject(), *causes = cJSON_AddArrayToObject(d, "causes");
                cJSON *cause = cJSON_CreateObject();
                cJSON_AddStringToObject(d, "group", "meta.k8s.io");
                cJSON_AddStringToObject(d, "kind", "PatchOptions");
                cJSON_AddStringToObject(cause, "reason", "FieldValueRequired");
                cJSON_AddStringToObject(cause, "message",
                                        "Required value: is required for apply patch");
                cJSON_AddStringToObject(cause, "field", "fieldManager");
                cJSON_AddItemToArray(causes, cause);
                return reply_status(ret, 422, "Invalid",
                                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: "
                                    "Required value: is required for apply patch",
                                    d);
        }
        if (p->sub)
                return reply_bad_request(ret, "koc-apiserver does not apply configurations to "
                                              "subresources");
        cJSON *applied = cJSON_ParseWithLength(body, len);
        if (!cJSON_IsObject(applied)) {
                cJSON_Delete(applied);
                return reply_bad_request(ret, "error decoding apply configuration: koc-apiserver "
                                              "reads it as JSON (the JSON subset of YAML) only");
        }
        const char *apiv = json_str(applied, "apiVersion") ?: "";
        const char *kind = json_str(applied, "kind") ?: "";
        if (!*apiv || !*kind) {
                const char *slash = strchr(apiv, '/');
                snprintf(msg, sizeof msg, "invalid object type: %.*s/%s, Kind=%s",
                         slash ? (int)(slash - apiv) : 0, apiv, slash ? slash + 1 : apiv, kind);
                cJSON_Delete(applied);
                return reply_bad_request(ret, msg);
        }
        if (!check_kind(c, p, applied, ret)) {
                cJSON_Delete(applied);
                return;
        }
        const char *bname = json_str(applied, "metadata.name");
        if (bname && strcmp(bname, p->name) != 0) {
                snprintf(msg, sizeof msg,
                         "the name of the object (%s) does not match the name on the URL (%s)",
                         bname, p->name);
                cJSON_Delete(applied);
                return reply_bad_request(ret, msg);
        }
        object *o = lookup(c, p);
        const char *rv = json_str(applied, "metadata.resourceVersion");
        if (rv && *rv &&
            (!o || rv_stale(rv, o))) {
                cJSON_Delete(applied);
                if (!o)
                        return reply_not_found(ret, p, p->name);
                return reply_conflict(ret, c, p->name,
                                      "the object has been modified; please apply your changes to "
                                      "the latest version and try again");
        }
        cJSON *result = NULL;
        int r = apply_config(o ? o->json : NULL, applied, manager, force,
                             api_version_of(p, av, sizeof av), c->has_status, &result, ret);
        cJSON_Delete(applied);
        if (r == -ENOMEM)
                return reply_status(ret, 500, "InternalError", "out of memory", NULL);
        if (r < 0)
                return;
        cJSON *meta = json_ensure_object(result, "metadata");
        json_set_str(meta, "name", p->name);
        if (!o)
                return create_object(srv, conn, c, p, result, true, ret);
        update_object(srv, conn, c, p, o, result, true, true, ret);
}

/* The merge or JSON patch document of a PATCH body; NULL (ret answered) for
 * another media type or a body that is not one. */
static cJSON *parse_patch(const char *body, size_t len, const char *ct, bool *ret_merge,
                          reply *ret) {
        bool merge = content_type_is(ct, "application/merge-patch+json") ||
                     content_type_is(ct, "application/strategic-merge-patch+json");
        bool jsonp = content_type_is(ct, "application/json-patch+json");
        if (!merge && !jsonp) {
                reply_unsupported_media(ret, ct, true);
                return NULL;
        }
        const char *end = NULL;
        cJSON *patch = cJSON_ParseWithLengthOpts(body, len, &end, false);
        if (!patch || (merge && !cJSON_IsObject(patch)) || (jsonp && !cJSON_IsArray(patch))) {
                cJSON_Delete(patch);
                reply_bad_request(ret, merge ? "error decoding patch: invalid JSON object"
                                             : "error decoding patch: invalid JSON patch array");
                return NULL;
        }
        *ret_merge = merge;
        return patch;
}

/* cur with patch applied (patch is consumed) in *ret_result; -EINVAL (ret
 * answered) when a JSON patch operation fails. */
static int apply_patch(const collection *c, const char *name, const cJSON *cur, cJSON *patch,
                       bool merge, cJSON **ret_result, reply *ret) {
        char err[512];
        cJSON *result;
        int r = 0;
        if (merge) {
                result = merge_patch(cur, patch);
        } else {
                result = cJSON_Duplicate(cur, true);
                r = json_patch(&result, patch, err, sizeof err);
                if (r < 0) {
                        cJSON_Delete(result);
                        if (r == -ECANCELED)
                                reply_invalid(ret, c, name, "", "FieldValueInvalid", err);
                        else
                                reply_status(ret, 422, "Invalid", err, details_for(c, name));
                }
        }
        cJSON_Delete(patch);
        if (r < 0)
                return -EINVAL;
        *ret_result = result;
        return 0;
}

static void do_patch(server *srv, struct MHD_Connection *conn, collection *c, const api_path *p,
                     const char *body, size_t len, const char *ct, reply *ret) {
        bool merge = false;
        if (content_type_is(ct, "application/apply-patch+yaml"))
                return do_apply(srv, conn, c, p, body, len, ret);
        cJSON *patch = parse_patch(body, len, ct, &merge, ret);
        if (!patch)
                return;
        object *o = lookup(c, p);
        if (!o) {
                cJSON_Delete(patch);
                return reply_not_found(ret, p, p->name);
        }
        cJSON *result = NULL;
        if (apply_patch(c, p->name, o->json, patch, merge, &result, ret) < 0)
                return;
        if (!cJSON_IsObject(result)) {
                cJSON_Delete(result);
                reply_bad_request(ret, "the patch did not produce an object");
                return;
        }
        /* A resourceVersion in the patch is a precondition. */
        const char *rv = json_str(result, "metadata.resourceVersion");
        if (rv && *rv && rv_stale(rv, o)) {
                cJSON_Delete(result);
                reply_conflict(
                        ret, c, p->name,
                        "the object has been modified; please apply your changes to the latest "
                        "version and try again");
                return;
        }
        update_object(srv, conn, c, p, o, result, true, false, ret);
}

static bool check_preconditions(collection *c, object *o, const char *body, size_t len,
                                reply *ret) {
        cJSON *opts;
        bool ok = true;
        char why[512];

        if (!body || len == 0)
                return true;
        opts = cJSON_ParseWithLength(body, len);
        if (!opts) {
                reply_bad_request(ret, "invalid DeleteOptions: json parse error");
                return false;
        }
        const char *uid = json_str(opts, "preconditions.uid");
        const char *rv = json_str(opts, "preconditions.resourceVersion");
        const char *name = json_str(o->json, "metadata.name");
        if (uid && strcmp(uid, json_str(o->json, "metadata.uid") ?: "") != 0) {
                snprintf(why, sizeof why,
                         "Precondition failed: UID in precondition: %s, UID in object meta: %s",
                         uid, json_str(o->json, "metadata.uid") ?: "");
                reply_conflict(ret, c, name, why);
                ok = false;
        } else if (rv && rv_stale(rv, o)) {
                snprintf(why, sizeof why,
                         "the ResourceVersion in the precondition (%s) does not match the "
                         "ResourceVersion in record (%" PRIu64
                         "). The object might have been modified",
                         rv, o->rv);
                reply_conflict(ret, c, name, why);
                ok = false;
        }
        cJSON_Delete(opts);
        return ok;
}

static void delete_object(server *srv, collection *c, object *o, reply *ret) {
        if (has_finalizers(o->json)) {
                if (!json_path(o->json, "metadata.deletionTimestamp")) {
                        char ts[64];
                        cJSON *meta = json_ensure_object(o->json, "metadata");
                        now_timestamp(ts, sizeof ts);
                        json_set_str(meta, "deletionTimestamp", ts);
                        replace_or_add(meta, "deletionGracePeriodSeconds", cJSON_CreateNumber(0));
                        o->rv = server_next_rv(srv);
                        set_rv(o->json, o->rv);
                        watch_emit(srv, c, 'M', o->json, json_path(o->json, "metadata.labels"));
                }
                if (ret)
                        reply_json(ret, 200, o->json);
                return;
        }
        delete_now(srv, c, o, ret);
}

/* DeleteOptions.propagationPolicy (or the query argument, or the
 * deprecated orphanDependents): "Background" (NULL), "Foreground" or
 * "Orphan"; false with a 422 in ret when it is none of them. */
static bool propagation_policy(struct MHD_Connection *conn, const char *body, size_t len,
                               const char **ret_policy, reply *ret) {
        static const char *const policies[] = {"Background", "Foreground", "Orphan"};
        char pol[32] = "";
        const char *q = qarg(conn, "propagationPolicy");
        if (q)
                snprintf(pol, sizeof pol, "%s", q);
        cJSON *opts = body && len ? cJSON_ParseWithLength(body, len) : NULL;
        const char *bp = json_str(opts, "propagationPolicy");
        if (bp)
                snprintf(pol, sizeof pol, "%s", bp);
        const cJSON *orphan = cJSON_GetObjectItemCaseSensitive(opts, "orphanDependents");
        if (!*pol && cJSON_IsBool(orphan))
                snprintf(pol, sizeof pol, "%s", cJSON_IsTrue(orphan) ? "Orphan" : "Background");
        cJSON_Delete(opts);
        *ret_policy = NULL;
        if (!*pol)
                return true;
        for (size_t i = 0; i < KOC_ELEMENTSOF(policies); i++)
                if (strcmp(pol, policies[i]) == 0) {
                        *ret_policy = policies[i];
                        return true;
                }
        char msg[300];
        snprintf(msg, sizeof msg,
                 "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: "
                 "\"%.40s\": supported values: \"Foreground\", \"Background\", \"Orphan\", "
                 "\"nil\"",
                 pol);
        reply_status(ret, 422, "Invalid", msg, NULL);
        return false;
}

static void add_finalizer(cJSON *obj, const char *f) {
        cJSON *meta = json_ensure_object(obj, "metadata"), *it;
        cJSON *list = cJSON_GetObjectItemCaseSensitive(meta, "finalizers");
        if (!cJSON_IsArray(list)) {
                cJSON_DeleteItemFromObjectCaseSensitive(meta, "finalizers");
                list = cJSON_AddArrayToObject(meta, "finalizers");
        }
        cJSON_ArrayForEach(it, list) {
                if (cJSON_IsString(it) && strcmp(it->valuestring, f) == 0)
                        return;
        }
        cJSON_AddItemToArray(list, cJSON_CreateString(f));
}

static void do_delete(server *srv, struct MHD_Connection *conn, collection *c, const api_path *p,
                      const char *body, size_t len, reply *ret) {
        const char *policy;
        object *o = lookup(c, p);
        if (!o)
                return reply_not_found(ret, p, p->name);
        if (!check_preconditions(c, o, body, len, ret))
                return;
        if (!propagation_policy(conn, body, len, &policy, ret))
                return;
        if (dry_run(conn))
                return reply_json(ret, 200, o->json);
        /* Foreground and Orphan are finalizers the garbage collector
         * (gc.c) acts on and then removes, as on the real server. */
        if (policy && strcmp(policy, "Background") != 0 &&
            !json_path(o->json, "metadata.deletionTimestamp"))
                add_finalizer(o->json, strcmp(policy, "Foreground") == 0 ? "foregroundDeletion"
                                                                         : "orphan");
        delete_object(srv, c, o, ret);
}

/* ---- for the garbage collector (gc.c) ---- */

int store_sorted(collection *c) {
        return collection_sort(c);
}

size_t store_sorted_after(collection *c, const char *key) {
        return key ? sorted_bound(c, key, false) : 0;
}

void store_gc_delete(server *srv, collection *c, object *o) {
        delete_object(srv, c, o, NULL);
}

int store_gc_update(server *srv, collection *c, object *o, cJSON *obj) {
        char ns[256] = "", name[256];
        snprintf(ns, sizeof ns, "%s", json_str(o->json, "metadata.namespace") ?: "");
        snprintf(name, sizeof name, "%s", json_str(o->json, "metadata.name") ?: "");
        api_path p = {.group = c->group,
                      .version = c->version,
                      .ns = c->namespaced ? ns : NULL,
                      .resource = c->resource,
                      .name = name};
        reply r = {0};
        update_object(srv, NULL, c, &p, o, obj, true, false, &r);
        free(r.body);
        return r.code == 200 ? 0 : -EIO;
}

static void do_delete_collection(server *srv, struct MHD_Connection *conn, collection *c,
                                 const api_path *p, reply *ret) {
        /* List first (with the request's selectors), then delete each. */
        reply list = {0};
        do_list(srv, conn, c, p, &list);
        if (list.code != 200) {
                *ret = list;
                return;
        }
        cJSON *l = cJSON_Parse(list.body), *item;
        free(list.body);
        cJSON *items = cJSON_GetObjectItemCaseSensitive(l, "items");
        cJSON_DeleteItemFromObjectCaseSensitive(l, "metadata");
        cJSON_ArrayForEach(item, items) {
                char key[600];
                object_key(c->namespaced ? json_str(item, "metadata.namespace") : NULL,
                           json_str(item, "metadata.name") ?: "", key, sizeof key);
                object *o = strmap_get(&c->objects, key);
                if (!o || dry_run(conn))
                        continue;
                delete_object(srv, c, o, NULL);
        }
        cJSON *meta = cJSON_CreateObject();
        char rvs[32];
        snprintf(rvs, sizeof rvs, "%" PRIu64, srv->rv);
        cJSON_AddStringToObject(meta, "resourceVersion", rvs);
        cJSON_AddItemToObject(l, "metadata", meta);
        reply_json(ret, 200, l);
        cJSON_Delete(l);
}

/* The scale subresource: get, update and patch an autoscaling/v1 Scale,
 * written through to the object's replicas path as an update of the
 * object (validation, generation and watch events included). */
static void do_scale(server *srv, struct MHD_Connection *conn, collection *c, const api_path *p,
                     const char *verb, const char *body, size_t len, const char *ct,
                     reply *ret) {
        scale_info si;
        char err[512];
        if (!p->name || scale_paths(srv, c->group, c->resource, p->version, &si) < 0)
                return reply_status(ret, 404, "NotFound",
                                    "the server could not find the requested resource", NULL);
        object *o = lookup(c, p);
        if (!o)
                return reply_not_found(ret, p, p->name);
        cJSON *cur = scale_of(o->json, &si), *want = NULL;
        if (!cur)
                return reply_status(ret, 500, "InternalError", "out of memory", NULL);
        if (strcmp(verb, "get") == 0) {
                reply_json(ret, 200, cur);
                cJSON_Delete(cur);
                return;
        }
        if (strcmp(verb, "update") == 0) {
                if (check_json_content_type(ct, ret))
                        want = parse_body(c, body, len, ret);
        } else if (strcmp(verb, "patch") == 0) {
                bool merge = false;
                cJSON *patch = parse_patch(body, len, ct, &merge, ret);
                if (patch)
                        (void)apply_patch(c, p->name, cur, patch, merge, &want, ret);
        } else
                reply_status(ret, 405, "MethodNotAllowed",
                             "the server does not allow this method on the requested resource",
                             NULL);
        cJSON_Delete(cur);
        if (!want)
                return;
        const cJSON *r = json_path(want, "spec.replicas");
        double replicas = cJSON_IsNumber(r) ? r->valuedouble : 0;
        if ((r && !cJSON_IsNumber(r)) || replicas != floor(replicas) || replicas > 2147483647.0) {
                cJSON_Delete(want);
                return reply_bad_request(ret, "Scale in version \"v1\" cannot be handled as a "
                                              "Scale: json: cannot unmarshal spec.replicas into "
                                              "Go struct field ScaleSpec.spec.replicas of type "
                                              "int32");
        }
        if (si.builtin && replicas < 0) {
                cJSON_Delete(want);
                snprintf(err, sizeof err, "Invalid value: %.0f: must be greater than or equal to 0",
                         replicas);
                collection sc = {.group = "autoscaling", .kind = "Scale"};
                return reply_invalid(ret, &sc, p->name, "spec.replicas", "FieldValueInvalid", err);
        }
        const char *rv = json_str(want, "metadata.resourceVersion");
        bool stale = rv && *rv &&
                     rv_stale(rv, o);
        cJSON_Delete(want);
        if (stale)
                return reply_conflict(ret, c, p->name,
                                      "the object has been modified; please apply your changes to "
                                      "the latest version and try again");
        cJSON *obj = cJSON_Duplicate(o->json, true);
        if (!obj || scale_set_replicas(obj, &si, replicas) < 0) {
                cJSON_Delete(obj);
                return reply_status(ret, 500, "InternalError",
                                    "cannot set the replicas of the object", NULL);
        }
        api_path mp = *p;
        mp.sub = NULL;
        reply inner = {0};
        update_object(srv, conn, c, &mp, o, obj, true, false, &inner);
        cJSON *res = inner.code == 200 ? cJSON_Parse(inner.body) : NULL;
        cJSON *sc = res ? scale_of(res, &si) : NULL;
        if (sc) {
                free(inner.body);
                reply_json(ret, 200, sc);
        } else
                *ret = inner;
        cJSON_Delete(sc);
        cJSON_Delete(res);
}

void store_handle(server *srv, struct MHD_Connection *conn, const char *verb, const api_path *p,
                  const char *body, size_t body_len, const char *ct, reply *ret) {
        if (p->sub && strcmp(p->sub, "scale") == 0) {
                collection *c = collection_get(srv, p, true);
                if (!c)
                        return reply_status(ret, 500, "InternalError", "out of memory", NULL);
                if (p->ns && !c->namespaced)
                        return reply_status(ret, 404, "NotFound",
                                            "the server could not find the requested resource",
                                            NULL);
                return do_scale(srv, conn, c, p, verb, body, body_len, ct, ret);
        }
        if (p->sub && strcmp(p->sub, "status") != 0) {
                reply_status(ret, 404, "NotFound",
                             "the server could not find the requested resource", NULL);
                return;
        }
        collection *c = collection_get(srv, p, true);
        if (!c) {
                reply_status(ret, 500, "InternalError", "out of memory", NULL);
                return;
        }
        if ((p->ns && !c->namespaced) || (p->sub && !c->has_status)) {
                reply_status(ret, 404, "NotFound",
                             "the server could not find the requested resource", NULL);
                return;
        }
        if (strcmp(verb, "get") == 0)
                do_get(srv, conn, c, p, ret);
        else if (strcmp(verb, "list") == 0)
                do_list(srv, conn, c, p, ret);
        else if (strcmp(verb, "create") == 0)
                do_create(srv, conn, c, p, body, body_len, ct, ret);
        else if (strcmp(verb, "update") == 0)
                do_update(srv, conn, c, p, body, body_len, ct, ret);
        else if (strcmp(verb, "patch") == 0)
                do_patch(srv, conn, c, p, body, body_len, ct, ret);
        else if (strcmp(verb, "delete") == 0)
                do_delete(srv, conn, c, p, body, body_len, ret);
        else if (strcmp(verb, "deletecollection") == 0)
                do_delete_collection(srv, conn, c, p, ret);
        else
                reply_status(ret, 405, "MethodNotAllowed",
                             "the server does not allow this method on the requested resource",
                             NULL);
}

void store_init(server *srv) {
        static const char *const namespaces[] = {"default", "kube-system", "kube-public",
                                                 "kube-node-lease"};
        api_path p = {.group = "", .version = "v1", .resource = "namespaces"};
        for (size_t i = 0; i < KOC_ELEMENTSOF(namespaces); i++) {
                char body[256];
                reply r = {0};
                snprintf(body, sizeof body, "{\"metadata\":{\"name\":\"%s\"}}", namespaces[i]);
                store_handle(srv, NULL, "create", &p, body, strlen(body), "application/json", &r);
                free(r.body);
        }
}
