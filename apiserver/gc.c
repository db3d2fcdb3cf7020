/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The garbage collector of owner references, as kube-controller-manager's
 * runs it, on the server's loop: every tick examines a bounded number of
 * objects (a cursor walks all collections in key order) and then acts:
 *
 *  - a dependent none of whose owners exists any more (matched by uid) is
 *    deleted; references to owners that are gone are removed when another
 *    owner remains;
 *  - a dependent of an owner being deleted in the foreground (finalizer
 *    foregroundDeletion) is deleted; once a full pass saw no dependent with
 *    blockOwnerDeletion left, the owner's finalizer goes and the owner with
 *    it;
 *  - a dependent of an owner being deleted with the Orphan policy loses its
 *    reference to it; once a full pass saw no such dependent, the owner's
 *    finalizer orphan goes.
 *
 * A pass that acted on nothing, left no owner pending and saw no write is
 * not repeated until the server's resourceVersion moves: every change to an
 * object moves it, and nothing else changes what a pass decides.
 *
 * An owner whose kind the server does not know (no built-in resource, CRD
 * or stored collection has it) is left alone, as the real collector cannot
 * resolve it either.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver.h"
#include "core/ratelimit.h"

#define GC_TICK_USEC (100 * 1000)
#define GC_EXAMINE_PER_TICK 2000 /* the default of srv->gc_examine_per_tick */
#define GC_ACTIONS_PER_TICK 200

typedef enum gc_verb { GC_DELETE, GC_DROP_REFS, GC_DROP_FINALIZER } gc_verb;

typedef struct gc_action {
        collection *col;
        char *key;
        char *uid;      /* the object's uid when the action was decided */
        gc_verb verb;
        char *what;     /* the finalizer to drop, or NULL */
        cJSON *drop;    /* uids of references to drop (GC_DROP_REFS) */
} gc_action;

/* An owner being deleted in the foreground or with Orphan, and how many of
 * its dependents the current pass saw that still hold it.  An owner first
 * noted after the pass's first tick is partial: dependents examined in
 * earlier ticks may hold it uncounted (it began deleting in between), so it
 * is not acted upon but carried into the next pass, which counts all of
 * them. */
typedef struct gc_owner {
        collection *col;
        char *key, *uid, *finalizer;
        size_t holders;
        bool partial;
} gc_owner;

typedef struct gc_state {
        sd_event_source *timer;
        char *cursor_col, *cursor_key; /* where the pass goes on (NULL: start) */
        bool first_tick;               /* the current tick began the pass */
        /* The server's resourceVersion when the pass began, whether the pass
         * acted, and, once a pass found nothing to do, the resourceVersion
         * it saw: until that moves, another pass would find the same. */
        uint64_t pass_rv, idle_rv;
        bool pass_acted, idle;
        gc_owner *owners;
        size_t n_owners, cap_owners;
} gc_state;

static void owners_free(gc_owner *o, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(o[i].key);
                free(o[i].uid);
                free(o[i].finalizer);
        }
        free(o);
}

static int cmp_col(const void *a, const void *b) {
        return strcmp((*(collection *const *)a)->key, (*(collection *const *)b)->key);
}

static bool has_finalizer(const cJSON *obj, const char *f) {
        const cJSON *it;
        cJSON_ArrayForEach(it, json_path(obj, "metadata.finalizers")) {
                if (cJSON_IsString(it) && strcmp(it->valuestring, f) == 0)
                        return true;
        }
        return false;
}

/* The group of an apiVersion ("apps/v1" -> "apps", "v1" -> ""). */
static void api_group(const char *api_version, char *buf, size_t size) {
        const char *slash = strchr(api_version, '/');
        snprintf(buf, size, "%.*s", slash ? (int)(slash - api_version) : 0, api_version);
}

static bool kind_known(server *srv, const char *group, const char *kind) {
        size_t n;
        const resinfo *ri = builtin_resources(&n);
        for (size_t i = 0; i < n; i++)
                if (strcmp(ri[i].group, group) == 0 && strcmp(ri[i].kind, kind) == 0)
                        return true;
        collection *crds = strmap_get(&srv->collections,
                                      "apiextensions.k8s.io/customresourcedefinitions");
        size_t b = 0;
        if (crds)
                for (strmap_entry *e = strmap_next(&crds->objects, &b, NULL); e;
                     e = strmap_next(&crds->objects, &b, e)) {
                        const cJSON *crd = ((object *)e->value)->json;
                        if (strcmp(json_str(crd, "spec.group") ?: "", group) == 0 &&
                            strcmp(json_str(crd, "spec.names.kind") ?: "", kind) == 0)
                                return true;
                }
        return false;
}

/* The owner a reference names, NULL when it does not exist; *known says
 * whether the kind could be resolved at all. */
static object *find_owner(server *srv, const cJSON *ref, const char *ns, bool *known,
                          collection **ret_col) {
        const char *av = json_str(ref, "apiVersion"), *kind = json_str(ref, "kind");
        const char *name = json_str(ref, "name"), *uid = json_str(ref, "uid");
        char group[256], key[600];
        *known = false;
        if (!av || !kind || !name || !uid)
                return NULL;
        api_group(av, group, sizeof group);
        size_t b = 0;
        for (strmap_entry *e = strmap_next(&srv->collections, &b, NULL); e;
             e = strmap_next(&srv->collections, &b, e)) {
                collection *c = e->value;
                if (strcmp(c->group, group) != 0 || strcmp(c->kind, kind) != 0)
                        continue;
                *known = true;
                snprintf(key, sizeof key, "%s/%s", c->namespaced && ns ? ns : "", name);
                object *o = strmap_get(&c->objects, key);
                if (o && strcmp(json_str(o->json, "metadata.uid") ?: "", uid) == 0) {
                        *ret_col = c;
                        return o;
                }
        }
        if (!*known)
                *known = kind_known(srv, group, kind);
        return NULL;
}

static gc_owner *owner_entry(gc_state *gc, const char *uid) {
        for (size_t i = 0; i < gc->n_owners; i++)
                if (strcmp(gc->owners[i].uid, uid) == 0)
                        return &gc->owners[i];
        return NULL;
}

static void note_owner(gc_state *gc, collection *c, const object *o, const char *finalizer) {
        const char *uid = json_str(o->json, "metadata.uid");
        if (!uid || owner_entry(gc, uid))
                return;
        if (gc->n_owners == gc->cap_owners) {
                size_t cap = gc->cap_owners ? gc->cap_owners * 2 : 16;
                gc_owner *v = realloc(gc->owners, cap * sizeof *v);
                if (!v)
                        return;
                gc->owners = v;
                gc->cap_owners = cap;
        }
        gc_owner *w = &gc->owners[gc->n_owners];
        *w = (gc_owner){.col = c,
                        .key = strdup(o->key),
                        .uid = strdup(uid),
                        .finalizer = strdup(finalizer),
                        .partial = !gc->first_tick};
        if (!w->key || !w->uid || !w->finalizer) {
                free(w->key);
                free(w->uid);
                free(w->finalizer);
                return;
        }
        gc->n_owners++;
}

static void add_action(gc_action *acts, size_t *n, collection *c, const object *o, gc_verb verb,
                       const char *what, cJSON *drop) {
        if (*n >= GC_ACTIONS_PER_TICK) {
                cJSON_Delete(drop);
                return;
        }
        acts[*n] = (gc_action){.col = c,
                               .key = strdup(o->key),
                               .uid = strdup(json_str(o->json, "metadata.uid") ?: ""),
                               .verb = verb,
                               .what = what ? strdup(what) : NULL,
                               .drop = drop};
        (*n)++;
}

/* Decides what to do with one object. */
static void examine(server *srv, gc_state *gc, collection *c, object *o, gc_action *acts,
                    size_t *n_acts) {
        const cJSON *refs = json_path(o->json, "metadata.ownerReferences"), *ref;
        const char *ns = json_str(o->json, "metadata.namespace");
        bool deleting = json_path(o->json, "metadata.deletionTimestamp") != NULL;

        if (deleting && has_finalizer(o->json, "foregroundDeletion"))
                note_owner(gc, c, o, "foregroundDeletion");
        if (deleting && has_finalizer(o->json, "orphan"))
                note_owner(gc, c, o, "orphan");
        if (!cJSON_IsArray(refs) || !refs->child)
                return;
        size_t solid = 0, absent = 0, unknown = 0;
        bool owner_foreground = false;
        cJSON *drop = cJSON_CreateArray();
        cJSON_ArrayForEach(ref, refs) {
                bool known;
                collection *oc = NULL;
                object *owner = find_owner(srv, ref, ns, &known, &oc);
                const char *uid = json_str(ref, "uid") ?: "";
                if (!owner) {
                        if (known) {
                                absent++;
                                cJSON_AddItemToArray(drop, cJSON_CreateString(uid));
                        } else
                                unknown++;
                        continue;
                }
                bool odel = json_path(owner->json, "metadata.deletionTimestamp") != NULL;
                if (odel && has_finalizer(owner->json, "orphan")) {
                        /* Orphan: this reference goes; the owner waits for
                         * that. */
                        note_owner(gc, oc, owner, "orphan");
                        gc_owner *w = owner_entry(gc, uid);
                        if (w)
                                w->holders++;
                        cJSON_AddItemToArray(drop, cJSON_CreateString(uid));
                        solid++; /* it exists: the dependent stays */
                        continue;
                }
                if (odel && has_finalizer(owner->json, "foregroundDeletion")) {
                        note_owner(gc, oc, owner, "foregroundDeletion");
                        gc_owner *w = owner_entry(gc, uid);
                        if (w && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
                                         ref, "blockOwnerDeletion")))
                                w->holders++;
                        owner_foreground = true;
                        /* Dropped when another owner keeps the dependent. */
                        cJSON_AddItemToArray(drop, cJSON_CreateString(uid));
                        continue;
                }
                solid++;
        }
        /* An owner of a kind that cannot be resolved counts as present. */
        if (solid + unknown == 0 && (absent > 0 || owner_foreground)) {
                /* Every owner is gone or going in the foreground. */
                cJSON_Delete(drop);
                if (!deleting)
                        add_action(acts, n_acts, c, o, GC_DELETE, NULL, NULL);
                return;
        }
        if (cJSON_GetArraySize(drop) > 0 && !deleting) {
                add_action(acts, n_acts, c, o, GC_DROP_REFS, NULL, drop);
                return;
        }
        cJSON_Delete(drop);
}

static object *still_there(const gc_action *a) {
        object *o = strmap_get(&a->col->objects, a->key);
        if (!o || strcmp(json_str(o->json, "metadata.uid") ?: "", a->uid) != 0)
                return NULL;
        return o;
}

static void act(server *srv, gc_action *a) {
        object *o = still_there(a);
        if (!o)
                return;
        if (a->verb == GC_DELETE) {
                koc_log_debug(COMPONENT, "garbage collector: deleting %s %s (its owners are gone)",
                              a->col->resource, a->key);
                store_gc_delete(srv, a->col, o);
                return;
        }
        cJSON *obj = cJSON_Duplicate(o->json, true);
        cJSON *meta = json_path(obj, "metadata");
        if (!obj || !meta) {
                cJSON_Delete(obj);
                return;
        }
        const char *list_name = a->verb == GC_DROP_REFS ? "ownerReferences" : "finalizers";
        cJSON *list = cJSON_GetObjectItemCaseSensitive(meta, list_name), *it, *next;
        for (it = list ? list->child : NULL; it; it = next) {
                next = it->next;
                bool drop = false;
                if (a->verb == GC_DROP_REFS) {
                        const cJSON *d;
                        const char *uid = json_str(it, "uid") ?: "";
                        cJSON_ArrayForEach(d, a->drop) if (strcmp(d->valuestring, uid) == 0) drop =
                                true;
                } else
                        drop = cJSON_IsString(it) && strcmp(it->valuestring, a->what) == 0;
                if (drop)
                        cJSON_Delete(cJSON_DetachItemViaPointer(list, it));
        }
        if (list && !list->child)
                cJSON_DeleteItemFromObjectCaseSensitive(meta, list_name);
        static koc__ratelimit rl = KOC__RATELIMIT_INIT(10 * KOC_USEC_PER_SEC, 1);
        if (store_gc_update(srv, a->col, o, obj) < 0)
                koc__log_ratelimited(&rl, KOC_LOG_WARN, COMPONENT,
                                     "garbage collector: cannot update %s %s (it is invalid?)",
                                     a->col->resource, a->key);
}

/* The end of a pass: owners none of whose dependents still holds them lose
 * their finalizer; partial owners are kept, counted afresh, for the next
 * pass. */
static void end_pass(gc_state *gc, gc_action *acts, size_t *n_acts) {
        size_t kept = 0;
        for (size_t i = 0; i < gc->n_owners; i++) {
                gc_owner *w = &gc->owners[i];
                object *o = strmap_get(&w->col->objects, w->key);
                if (o && strcmp(json_str(o->json, "metadata.uid") ?: "", w->uid) != 0)
                        o = NULL; /* another object under the same name */
                if (w->partial && o) {
                        w->partial = false;
                        w->holders = 0;
                        gc->owners[kept++] = *w;
                        continue;
                }
                if (!w->holders && o && has_finalizer(o->json, w->finalizer))
                        add_action(acts, n_acts, w->col, o, GC_DROP_FINALIZER, w->finalizer,
                                   NULL);
                free(w->key);
                free(w->uid);
                free(w->finalizer);
        }
        gc->n_owners = kept;
        if (!kept) {
                free(gc->owners);
                gc->owners = NULL;
                gc->cap_owners = 0;
        }
        free(gc->cursor_col);
        free(gc->cursor_key);
        gc->cursor_col = gc->cursor_key = NULL;
}

static void gc_tick(server *srv, gc_state *gc) {
        if (gc->idle && srv->rv == gc->idle_rv)
                return;
        gc->idle = false;
        size_t n_cols = srv->collections.n, k = 0, examined = 0, n_acts = 0;
        collection **cols = malloc((n_cols + 1) * sizeof *cols);
        gc_action *acts = calloc(GC_ACTIONS_PER_TICK, sizeof *acts);
        if (!cols || !acts)
                goto out;
        gc->first_tick = !gc->cursor_col;
        if (gc->first_tick) {
                gc->pass_rv = srv->rv;
                gc->pass_acted = false;
        }
        size_t b = 0;
        for (strmap_entry *e = strmap_next(&srv->collections, &b, NULL); e && k < n_cols;
             e = strmap_next(&srv->collections, &b, e))
                cols[k++] = e->value;
        qsort(cols, k, sizeof *cols, cmp_col);
        size_t ci = 0;
        while (ci < k && gc->cursor_col && strcmp(cols[ci]->key, gc->cursor_col) < 0)
                ci++;
        bool finished = true;
        for (; ci < k; ci++) {
                collection *c = cols[ci];
                if (store_sorted(c) < 0) {
                        finished = false;
                        break;
                }
                bool same = gc->cursor_col && strcmp(c->key, gc->cursor_col) == 0;
                size_t i = store_sorted_after(c, same ? gc->cursor_key : NULL);
                for (; i < c->n_sorted; i++) {
                        if (examined >= (srv->gc_examine_per_tick ? srv->gc_examine_per_tick
                                                                  : GC_EXAMINE_PER_TICK) ||
                            n_acts >= GC_ACTIONS_PER_TICK)
                                break;
                        examine(srv, gc, c, c->sorted[i], acts, &n_acts);
                        examined++;
                }
                if (i < c->n_sorted) {
                        /* The budget is spent: go on from here next tick. */
                        char *col = strdup(c->key), *key = strdup(c->sorted[i - (i > 0)]->key);
                        if (i == 0) {
                                free(key);
                                key = NULL;
                        }
                        free(gc->cursor_col);
                        free(gc->cursor_key);
                        gc->cursor_col = col;
                        gc->cursor_key = key;
                        finished = false;
                        break;
                }
        }
        if (finished)
                end_pass(gc, acts, &n_acts);
        if (n_acts > 0)
                gc->pass_acted = true;
        if (finished && !gc->pass_acted && gc->n_owners == 0 && srv->rv == gc->pass_rv) {
                gc->idle = true;
                gc->idle_rv = srv->rv;
        }
        /* The actions change the collections: only now. */
        for (size_t i = 0; i < n_acts; i++)
                act(srv, &acts[i]);
out:
        for (size_t i = 0; acts && i < n_acts; i++) {
                free(acts[i].key);
                free(acts[i].uid);
                free(acts[i].what);
                cJSON_Delete(acts[i].drop);
        }
        free(acts);
        free(cols);
}

static int on_gc_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        server *srv = userdata;
        (void)usec;
        if (!srv->stopping)
                gc_tick(srv, srv->gc);
        (void)sd_event_source_set_time_relative(s, GC_TICK_USEC);
        return 0;
}

int gc_init(server *srv) {
        gc_state *gc = calloc(1, sizeof *gc);
        if (!gc)
                return -ENOMEM;
        int r = sd_event_add_time_relative(srv->event, &gc->timer, CLOCK_BOOTTIME, GC_TICK_USEC,
                                           10 * 1000, on_gc_timer, srv);
        if (r < 0) {
                free(gc);
                return r;
        }
        (void)sd_event_source_set_enabled(gc->timer, SD_EVENT_ON);
        srv->gc = gc;
        return 0;
}

void gc_done(server *srv) {
        gc_state *gc = srv->gc;
        if (!gc)
                return;
        sd_event_source_disable_unref(gc->timer);
        owners_free(gc->owners, gc->n_owners);
        free(gc->cursor_col);
        free(gc->cursor_key);
        free(gc);
        srv->gc = NULL;
}
