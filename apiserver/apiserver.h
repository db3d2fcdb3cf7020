/* SPDX-License-Identifier: Apache-2.0 */
/* koc-apiserver internals, shared by its source files.  Everything runs on
 * one sd-event loop thread: there are no locks. */
#pragma once

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "core/util.h"
#include "koc/log.h"
#include "core/mhd-glue.h"

#define COMPONENT "apiserver"
#define MAX_BODY_SIZE (3u * 1024 * 1024)

/* ---- small helpers (util.c) ---- */

typedef struct strbuf {
        char *data;
        size_t len, cap;
} strbuf;

int strbuf_append(strbuf *b, const char *s, size_t n);
int strbuf_appends(strbuf *b, const char *s);
int strbuf_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_consume(strbuf *b, size_t n);
void strbuf_free(strbuf *b);

/* A string-keyed hash map owning copies of its keys (values are not owned). */
typedef struct strmap_entry {
        char *key;
        void *value;
        struct strmap_entry *next;
} strmap_entry;
typedef struct strmap {
        strmap_entry **buckets;
        size_t n_buckets, n;
} strmap;

void *strmap_get(const strmap *m, const char *key);
int strmap_put(strmap *m, const char *key, void *value);
void *strmap_remove(strmap *m, const char *key);
void strmap_clear(strmap *m, void (*free_value)(void *));
/* Iteration: for (size_t i = 0; ...) over buckets via strmap_next. */
strmap_entry *strmap_next(const strmap *m, size_t *bucket, strmap_entry *e);

/* JSON helpers. */
const char *json_str(const cJSON *obj, const char *path); /* dotted path, string value or NULL */
cJSON *json_path(const cJSON *obj, const char *path);     /* dotted path, any value or NULL */
cJSON *json_ensure_object(cJSON *parent, const char *name);
void json_set_str(cJSON *obj, const char *name, const char *value);
char *base64_encode(const void *data, size_t len);
/* Decodes into a NUL-terminated malloc'ed buffer; NULL when invalid. */
char *base64_decode(const char *s, size_t *ret_len);

/* ---- resource descriptions (resources.c) ---- */

typedef struct resinfo {
        const char *group; /* "" for the core group */
        const char *version;
        const char *resource; /* plural */
        const char *kind;
        bool namespaced;
        bool has_status;
        const char *short_names; /* comma-separated or NULL */
} resinfo;

const resinfo *builtin_resources(size_t *ret_n);
const resinfo *builtin_lookup(const char *group, const char *resource);
bool cluster_scoped_resource(const char *group, const char *resource);
/* A group of the real server's built-in API (core is ""). */
bool builtin_group(const char *group);
/* A built-in resource koc-apiserver stores (described or not in discovery). */
bool builtin_served(const char *group, const char *resource);
/* Whether the real server accepts `field` in a field selector on the type. */
bool field_label_supported(const char *group, const char *resource, const char *field);

/* ---- API paths ---- */

typedef struct api_path {
        char *buf; /* owns the strings below */
        const char *group;
        const char *version;
        const char *ns;       /* NULL: no namespace in the path */
        const char *resource; /* NULL: the path names a group/version only */
        const char *name;
        const char *sub;
} api_path;

/* 0 on success, -ENOENT when the path is not an API resource path. */
int api_path_parse(const char *url, api_path *ret);
void api_path_free(api_path *p);

/* ---- selectors (select.c) ---- */

typedef struct selector selector;
/* NULL or "" give an empty selector that matches everything.  Returns
 * -EINVAL with the reason in err on bad syntax.  Label selectors are read by
 * the library's parser (core/selector.h), the one koc has; field selectors
 * by select.c's own (the library never evaluates one). */
int selector_parse_labels(const char *s, selector **ret, char *err, size_t errlen);
int selector_parse_fields(const char *s, selector **ret, char *err, size_t errlen);
bool selector_match_labels(const selector *sel, const cJSON *labels);
bool selector_match_fields(const selector *sel, const cJSON *obj);
/* When the field selector requires metadata.name=X (or ==), returns X. */
const char *selector_field_name(const selector *sel);
/* The first field of the selector that fails supported(group, resource,
 * field), or NULL when all are supported. */
const char *selector_unsupported_field(const selector *sel, const char *group, const char *resource,
                                       bool (*supported)(const char *, const char *, const char *));
selector *selector_free(selector *sel);
/* True for a selector without requirements (it matches everything). */
bool selector_empty(const selector *sel);

/* ---- patches (patch.c) ---- */

/* RFC 7386.  Returns a new document (the target is not modified). */
cJSON *merge_patch(const cJSON *target, const cJSON *patch);
/* RFC 6902, applied in place on *doc (which may be replaced).  On failure
 * returns -EINVAL (bad patch) or -ECANCELED (a "test" failed), message in err. */
int json_patch(cJSON **doc, const cJSON *ops, char *err, size_t errlen);

/* ---- custom resources' structural schemas (schema.c) ---- */

/* 0 when every version's openAPIV3Schema of the CRD is usable (bounded
 * depth and size, known types, patterns that compile); else a negative
 * errno, the field path in field and the error ("Invalid value: ...") in
 * msg. */
int schema_check_crd(const cJSON *crd, char *field, size_t fieldlen, char *msg, size_t msglen);
/* The entry of spec.versions named version in the CRD, or NULL. */
const cJSON *crd_version(const cJSON *crd, const char *version);
/* Frees the compiled patterns schema_validate() keeps. */
void schema_done(void);
/* The openAPIV3Schema of version in the CRD, or NULL. */
const cJSON *crd_version_schema(const cJSON *crd, const char *version);
/* Prunes unknown fields of obj, applies defaults and validates it against
 * schema (status_only: the status part against properties.status).  0, or
 * -EINVAL and *ret_causes (a Status causes array, to free).  ret_pruned
 * (optional) gets the unknown fields removed, as "unknown field \"a.b\""
 * joined by ", " (NULL: none; to free). */
int schema_validate(const cJSON *schema, cJSON *obj, bool status_only, cJSON **ret_causes,
                    char **ret_pruned);

/* ---- protobuf request bodies (protobuf.c) ---- */

/* Converts a Kubernetes protobuf body (ConfigMap, Secret, Namespace,
 * ServiceAccount, Lease) to JSON; NULL with a message for anything else. */
char *protobuf_to_json(const void *data, size_t len, char *err, size_t errlen);

/* ---- the server ---- */

typedef struct server server;
typedef struct collection collection;
typedef struct watch watch;

typedef struct object {
        char *key; /* "ns/name" ("/name" when cluster-scoped) */
        cJSON *json;
        uint64_t rv;
} object;

struct collection {
        char *key; /* "group/resource" */
        char *group;
        char *version; /* preferred version: the first one seen */
        char *resource;
        char *kind;
        bool namespaced; /* from the built-in table or the CRD, else guessed */
        bool known_scope;
        bool has_status;
        strmap objects;
        /* The objects in key order, rebuilt on the first list after a key
         * was added or removed (paged lists then cost O(log n + page)). */
        object **sorted;
        size_t n_sorted;
        bool sorted_stale;
        uint64_t changed_rv; /* the resourceVersion of its latest change */
        watch *watches;
};

/* A change, kept in the bounded history for watch resumption. */
typedef struct event {
        uint64_t rv;
        char type; /* 'A'dded, 'M'odified, 'D'eleted */
        collection *col;
        cJSON *obj;        /* the object as of this change */
        cJSON *old_labels; /* labels before a MODIFIED change (NULL: none) */
        char *json;        /* obj serialised */
        size_t size;       /* approximate memory held, for the history budget */
} event;

#define HISTORY_MAX_BYTES (256u * 1024 * 1024)

typedef struct fault_action {
        uint64_t latency_ms;
        bool hang;
        int error_code;
        unsigned retry_after;
        bool drop;
        int64_t watch_close_after_ms; /* -1: none */
} fault_action;

typedef struct request request;

struct server {
        sd_event *event;
        struct MHD_Daemon *daemon;
        koc_mhd_loop *mhd;
        char *token;
        uint64_t rv; /* global resourceVersion counter */
        strmap collections;
        /* Moves when a collection is added or its kind, scope or status
         * subresource changes (what discovery shows of it). */
        uint64_t collections_gen;
        /* watch history: a ring of the last history_max events */
        event **history;
        size_t history_max, history_start, history_len;
        /* objects the garbage collector examines per tick (--gc-examine-per-tick) */
        size_t gc_examine_per_tick;
        uint64_t history_floor; /* events with rv > floor are all in the ring */
        size_t history_bytes;
        watch *all_watches;
        size_t n_watches;
        uint64_t bookmark_interval_usec;
        bool watch_list_disabled; /* --feature-gates WatchList=false */
        sd_event_source *bookmark_timer;
        sd_event_source *sweep_timer;
        size_t watch_buffer_max;
        /* faults */
        cJSON *faults;    /* array of rules, each with a remaining "count" */
        request *hanging; /* requests held by a "hang" rule */
        bool stopping;
        /* metrics */
        strmap metrics;
        uint64_t started_usec;
        /* the garbage collector (gc.c) */
        struct gc_state *gc;
        /* --log-writes: one JSON line per write request answered, or NULL */
        FILE *write_log;
};

/* store.c */
typedef struct reply {
        int code;
        char *body; /* JSON, malloc'ed */
        unsigned retry_after;
} reply;

collection *collection_get(server *srv, const api_path *p, bool create);
void collection_free(void *c);
uint64_t server_next_rv(server *srv);
void store_init(server *srv);
/* Executes one resource request (not watch). verb: get, list, create,
 * update, patch, delete, deletecollection. */
void store_handle(server *srv, struct MHD_Connection *conn, const char *verb, const api_path *p,
                  const char *body, size_t body_len, const char *content_type, reply *ret);
/* 0 when the path's resource is served; -ENOENT for a resource the group
 * version does not have (404 Status), -ENXIO for an unknown group (404 text). */
int store_resource_check(server *srv, const api_path *p);

/* ---- metadata-only answers (apply.c) ---- */

/* What the Accept header asks for: the object, or its metadata only
 * (application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1). */
typedef enum accept_as {
        ACCEPT_OBJECT,
        ACCEPT_METADATA,
        ACCEPT_METADATA_LIST,
        ACCEPT_TABLE, /* application/json;as=Table;g=meta.k8s.io;v=v1 (or v1beta1) */
} accept_as;
accept_as accept_parse(struct MHD_Connection *conn);
/* {"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":...} */
cJSON *partial_metadata(const cJSON *obj);

/* ---- field ownership and server-side apply (apply.c) ---- */

/* A non-apply write by manager (NULL: not tracked): obj (the new object)
 * gets old's managedFields (its own are dropped), with the fields it added
 * or changed owned by manager ("Update") and taken from the others, and the
 * fields it removed owned by nobody. */
void managed_fields_update(cJSON *obj, const cJSON *old, const char *manager,
                           const char *api_version, bool has_status);
/* Applies a configuration for manager onto live (NULL: a create).  0 and
 * *ret_obj (the new object, managedFields included), or -EBUSY with a 409
 * Conflict in ret, or -ENOMEM. */
int apply_config(const cJSON *live, const cJSON *applied, const char *manager, bool force,
                 const char *api_version, bool has_status, cJSON **ret_obj, reply *ret);

/* ---- answers (status.c) ---- */

/* Fills a Status body into ret. */
void reply_status(reply *ret, int code, const char *reason, const char *message, cJSON *details);
void reply_not_found(reply *ret, const api_path *p, const char *name);
void reply_json(reply *ret, int code, const cJSON *obj);
/* "leases.coordination.k8s.io" or "configmaps" */
void qualified_resource(const char *group, const char *resource, char *buf, size_t size);

/* watch.c */
void watch_emit(server *srv, collection *col, char type, const cJSON *obj, const cJSON *old_labels);
/* Starts a watch on the connection; returns the MHD response to queue (or
 * NULL with ret filled with an error).  close_after_ms >= 0 ends the stream
 * early; drop cuts the connection right after the response headers. */
struct MHD_Response *watch_start(server *srv, struct MHD_Connection *conn, const api_path *p,
                                 int64_t close_after_ms, bool drop, reply *ret);
void watch_stop_all(server *srv);
int watch_init(server *srv);
void watch_done(server *srv);
void history_free(server *srv);
/* The objects of c as they were at resourceVersion rv (a consistent
 * snapshot for continued lists), from the current objects and the watch
 * history; -ESTALE when the history no longer covers rv.  Items borrow the
 * JSON; free the array with snapshot_free(). */
typedef struct snapshot_item {
        const char *key;
        const cJSON *json;
        bool owned; /* key is a copy */
} snapshot_item;
int history_snapshot(server *srv, collection *c, uint64_t rv, snapshot_item **ret, size_t *ret_n);
void snapshot_free(snapshot_item *items, size_t n);

/* faults.c */
int faults_add(server *srv, const cJSON *rule, char *err, size_t errlen);
void faults_clear(server *srv);
cJSON *faults_list(server *srv);
void faults_match(server *srv, const char *group, const char *resource, const char *verb,
                  fault_action *ret);

/* metrics.c */
void metrics_observe(server *srv, const char *verb, const char *resource, int code, double seconds);
char *metrics_render(server *srv);
void metrics_free(server *srv);

/* discovery.c: 0 when handled (ret filled), -ENOENT otherwise. */
int discovery_handle(server *srv, const char *url, reply *ret);
/* Calls fn for each (group, version) served, built-in first. */
typedef void (*gv_fn)(const char *group, const char *version, void *userdata);
void each_group_version(server *srv, gv_fn fn, void *userdata);
/* The APIResourceList of a group version (to free). */
cJSON *discovery_resource_list(server *srv, const char *group, const char *version);

/* openapi.c: /openapi/v2, /openapi/v3[/...]; 0 when handled (ret filled),
 * -ENOENT otherwise. */
int openapi_handle(server *srv, struct MHD_Connection *conn, const char *url, reply *ret);
/* Frees the documents openapi_handle() keeps. */
void openapi_free(void);

/* scale.c: the /scale subresource. */
typedef struct scale_info {
        const char *spec, *status, *selector; /* ".spec.replicas"; borrowed */
        bool builtin;                         /* selector from spec.selector */
} scale_info;
/* 0 when group/resource in version has a scale subresource (ret filled,
 * its strings borrowed from the CRD), else -ENOENT. */
int scale_paths(server *srv, const char *group, const char *resource, const char *version,
                scale_info *ret);
/* The autoscaling/v1 Scale of obj (to free). */
cJSON *scale_of(const cJSON *obj, const scale_info *si);
/* Sets the spec replicas of obj (creating the objects on the path). */
int scale_set_replicas(cJSON *obj, const scale_info *si, double replicas);
/* The real server's checks of a custom resource's specReplicasPath (or,
 * for status writes, statusReplicasPath), appended to causes. */
void scale_validate_cr(const scale_info *si, const cJSON *obj, bool status, cJSON *causes);

/* A metav1.LabelSelector as labels.Selector.String() writes it (to free). */
char *label_selector_string(const cJSON *sel);

/* table.c: a meta.k8s.io/v1 Table of objs (borrowed) with the columns of
 * c's type (a CRD version's printer columns, a few built-in printers, else
 * Name and Age); include is the includeObject argument (NULL: Metadata). */
cJSON *table_build(server *srv, const collection *c, const char *version, const cJSON *const *objs,
                   size_t n, const char *include);

/* store.c, for the garbage collector: the objects of c in key order
 * (c->sorted), the index after key (NULL: 0); a delete as a client's
 * (finalizers honoured); an update of o to obj (taken). */
int store_sorted(collection *c);
size_t store_sorted_after(collection *c, const char *key);
void store_gc_delete(server *srv, collection *c, object *o);
int store_gc_update(server *srv, collection *c, object *o, cJSON *obj);

/* gc.c: the garbage collector of owner references, on the server's loop. */
int gc_init(server *srv);
void gc_done(server *srv);

/* store.c: the stored CRD defining group/resource, or NULL. */
const cJSON *crd_lookup(server *srv, const char *group, const char *resource);

/* http.c */
enum MHD_Result http_access(void *cls, struct MHD_Connection *conn, const char *url,
                            const char *method, const char *version, const char *upload_data,
                            size_t *upload_data_size, void **con_cls);
void http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                    enum MHD_RequestTerminationCode toe);
/* Resumes the requests held by "hang" faults. */
void http_release_hanging(server *srv);
/* Resumes every parked request (shutdown). */
void http_release_all(server *srv);

/* tls.c */
int tls_make_certs(char **ret_ca_pem, char **ret_cert_pem, char **ret_key_pem);

/* reviews.c: TokenReview and SubjectAccessReview (--user, --allow). */
int reviews_add_user(const char *arg);  /* TOKEN=NAME[:GROUP,...] */
int reviews_add_allow(const char *arg); /* NAME:VERB:PATH */
void reviews_free(void);
bool reviews_is_review(const api_path *p);
void reviews_handle(server *srv, const char *verb, const api_path *p, const char *body,
                    size_t len, reply *r);
