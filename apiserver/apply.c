/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Field ownership (metadata.managedFields) and server-side apply, the subset
 * koc-apiserver implements (apiserver/README.md lists it).
 *
 * A field set is kept in the FieldsV1 form the real server writes: nested
 * objects keyed "f:NAME", an empty object for an owned field.  Maps are
 * granular (each key is a field); lists and scalars are atomic (the whole
 * value is one field), so the real server's associative and set lists
 * (containers by name, finalizers) are coarser here.  Updates (create, PUT,
 * merge and JSON patches) give their manager the fields they added or
 * changed and take them from every other manager; an apply owns exactly the
 * fields of its configuration, conflicts with another manager that owns a
 * field it would change (unless forced, which takes the field over), and
 * removes the fields it applied before and applies no longer, when no other
 * manager owns them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver.h"
#include "core/util.h"
#include "koc/time.h"

#define MAX_DEPTH 32

/* --- metadata only --------------------------------------------------------------------- */

/* One media range of an Accept header: "application/json;as=X;g=G;v=V". */
static accept_as accept_range(const char *r, size_t n) {
        char buf[512], *save = NULL;
        snprintf(buf, sizeof buf, "%.*s", (int)(n < sizeof buf ? n : sizeof buf - 1), r);
        const char *as = NULL, *g = NULL, *v = NULL;
        char *tok = strtok_r(buf, ";", &save);
        for (tok = tok ? strtok_r(NULL, ";", &save) : NULL; tok; tok = strtok_r(NULL, ";", &save)) {
                while (*tok == ' ')
                        tok++;
                if (strncmp(tok, "as=", 3) == 0)
                        as = tok + 3;
                else if (strncmp(tok, "g=", 2) == 0)
                        g = tok + 2;
                else if (strncmp(tok, "v=", 2) == 0)
                        v = tok + 2;
        }
        if (!as || !g || strcmp(g, "meta.k8s.io") != 0 || !v ||
            (strcmp(v, "v1") != 0 && strcmp(v, "v1beta1") != 0))
                return ACCEPT_OBJECT;
        if (strcmp(as, "PartialObjectMetadata") == 0)
                return ACCEPT_METADATA;
        if (strcmp(as, "PartialObjectMetadataList") == 0)
                return ACCEPT_METADATA_LIST;
        if (strcmp(as, "Table") == 0)
                return ACCEPT_TABLE;
        return ACCEPT_OBJECT;
}

accept_as accept_parse(struct MHD_Connection *conn) {
        const char *a = conn ? MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Accept") : NULL;
        /* The first range that asks for metadata wins; a client lists its
         * preference first. */
        while (a && *a) {
                size_t n = strcspn(a, ",");
                accept_as r = accept_range(a, n);
                if (r != ACCEPT_OBJECT)
                        return r;
                a += n;
                if (*a == ',')
                        a++;
        }
        return ACCEPT_OBJECT;
}

cJSON *partial_metadata(const cJSON *obj) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "kind", "PartialObjectMetadata");
        cJSON_AddStringToObject(p, "apiVersion", "meta.k8s.io/v1");
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
        cJSON_AddItemToObject(p, "metadata", md ? cJSON_Duplicate(md, true) : cJSON_CreateObject());
        return p;
}

typedef struct fpath {
        const char *k[MAX_DEPTH];
        int n;
} fpath;

/* Fields the server owns or that are not fields of the object's content. */
static bool ignored(const fpath *p, bool has_status) {
        static const char *const meta[] = {
                "name",
                "namespace",
                "uid",
                "resourceVersion",
                "generation",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "managedFields",
                "selfLink",
        };
        if (p->n == 1)
                return strcmp(p->k[0], "apiVersion") == 0 || strcmp(p->k[0], "kind") == 0 ||
                       (has_status && strcmp(p->k[0], "status") == 0);
        if (p->n == 2 && strcmp(p->k[0], "metadata") == 0)
                for (size_t i = 0; i < KOC_ELEMENTSOF(meta); i++)
                        if (strcmp(p->k[1], meta[i]) == 0)
                                return true;
        return false;
}

static void fpath_print(const fpath *p, char *buf, size_t size) {
        size_t off = 0;
        buf[0] = 0;
        for (int i = 0; i < p->n && off < size; i++) {
                int w = snprintf(buf + off, size - off, ".%s", p->k[i]);
                if (w < 0)
                        break;
                off += (size_t)w;
        }
}

static const cJSON *obj_lookup(const cJSON *obj, const fpath *p) {
        for (int i = 0; obj && i < p->n; i++)
                obj = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, p->k[i]) : NULL;
        return obj;
}

static void obj_delete(cJSON *obj, const fpath *p) {
        for (int i = 0; obj && i < p->n - 1; i++)
                obj = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, p->k[i]) : NULL;
        if (cJSON_IsObject(obj))
                cJSON_DeleteItemFromObjectCaseSensitive(obj, p->k[p->n - 1]);
}

/* --- field sets --------------------------------------------------------------------- */

static cJSON *fs_child(const cJSON *fs, const char *k) {
        char name[512];
        snprintf(name, sizeof name, "f:%s", k);
        return cJSON_GetObjectItemCaseSensitive(fs, name);
}

static bool fs_has(const cJSON *fs, const fpath *p) {
        for (int i = 0; fs && i < p->n; i++)
                fs = fs_child(fs, p->k[i]);
        return cJSON_IsObject(fs) && (!fs->child || cJSON_GetObjectItemCaseSensitive(fs, "."));
}

static void fs_add(cJSON *fs, const fpath *p) {
        char name[512];
        for (int i = 0; fs && i < p->n; i++) {
                cJSON *next = fs_child(fs, p->k[i]);
                if (!next) {
                        snprintf(name, sizeof name, "f:%s", p->k[i]);
                        next = cJSON_AddObjectToObject(fs, name);
                }
                fs = next;
        }
}

/* Removes the field and the parents left empty by its removal. */
static void fs_remove(cJSON *fs, const fpath *p) {
        cJSON *chain[MAX_DEPTH + 1];
        chain[0] = fs;
        for (int i = 0; i < p->n; i++) {
                chain[i + 1] = chain[i] ? fs_child(chain[i], p->k[i]) : NULL;
                if (!chain[i + 1])
                        return;
        }
        for (int i = p->n; i > 0; i--) {
                if (i < p->n && chain[i]->child)
                        break;
                cJSON_DetachItemViaPointer(chain[i - 1], chain[i]);
                cJSON_Delete(chain[i]);
        }
}

typedef void (*leaf_fn)(const fpath *p, void *userdata);

static void fs_leaves_rec(const cJSON *fs, fpath *p, leaf_fn fn, void *userdata) {
        const cJSON *c;
        if (!fs->child || cJSON_GetObjectItemCaseSensitive(fs, "."))
                fn(p, userdata);
        if (p->n >= MAX_DEPTH)
                return;
        cJSON_ArrayForEach(c, fs) {
                if (!c->string || strncmp(c->string, "f:", 2) != 0)
                        continue;
                p->k[p->n++] = c->string + 2;
                fs_leaves_rec(c, p, fn, userdata);
                p->n--;
        }
}

static void fs_leaves(const cJSON *fs, leaf_fn fn, void *userdata) {
        fpath p = {.n = 0};
        const cJSON *c;
        if (!fs)
                return;
        /* The root itself is not a field. */
        cJSON_ArrayForEach(c, fs) {
                if (!c->string || strncmp(c->string, "f:", 2) != 0)
                        continue;
                p.k[0] = c->string + 2;
                p.n = 1;
                fs_leaves_rec(c, &p, fn, userdata);
        }
}

/* The fields of an object: every scalar, list and empty map, outside the
 * ignored ones. */
static void obj_fields_rec(const cJSON *obj, fpath *p, bool has_status, cJSON *fs) {
        const cJSON *c;
        cJSON_ArrayForEach(c, obj) {
                if (p->n >= MAX_DEPTH)
                        return;
                p->k[p->n++] = c->string;
                if (!ignored(p, has_status)) {
                        if (cJSON_IsObject(c) && c->child)
                                obj_fields_rec(c, p, has_status, fs);
                        else
                                fs_add(fs, p);
                }
                p->n--;
        }
}

static cJSON *obj_fields(const cJSON *obj, bool has_status) {
        cJSON *fs = cJSON_CreateObject();
        fpath p = {.n = 0};
        if (fs && cJSON_IsObject(obj))
                obj_fields_rec(obj, &p, has_status, fs);
        return fs;
}

/* --- managedFields entries ----------------------------------------------------------- */

static cJSON *entries_of(cJSON *obj) {
        cJSON *md = json_ensure_object(obj, "metadata");
        cJSON *mf = cJSON_GetObjectItemCaseSensitive(md, "managedFields");
        if (!cJSON_IsArray(mf)) {
                cJSON_DeleteItemFromObjectCaseSensitive(md, "managedFields");
                mf = cJSON_AddArrayToObject(md, "managedFields");
        }
        return mf;
}

static bool entry_is(const cJSON *e, const char *manager, const char *operation) {
        const char *m = json_str(e, "manager"), *op = json_str(e, "operation");
        return m && op && strcmp(m, manager) == 0 && strcmp(op, operation) == 0 &&
               !cJSON_GetObjectItemCaseSensitive(e, "subresource");
}

static cJSON *entry_fields(cJSON *e) {
        cJSON *fs = cJSON_GetObjectItemCaseSensitive(e, "fieldsV1");
        if (!cJSON_IsObject(fs)) {
                cJSON_DeleteItemFromObjectCaseSensitive(e, "fieldsV1");
                fs = cJSON_AddObjectToObject(e, "fieldsV1");
        }
        return fs;
}

/* The manager's entry for the operation, made (last) when absent. */
static cJSON *entry_get(cJSON *mf, const char *manager, const char *operation,
                        const char *api_version) {
        cJSON *e;
        cJSON_ArrayForEach(e, mf) if (entry_is(e, manager, operation)) return e;
        e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "manager", manager);
        cJSON_AddStringToObject(e, "operation", operation);
        cJSON_AddStringToObject(e, "apiVersion", api_version);
        cJSON_AddStringToObject(e, "time", "");
        cJSON_AddStringToObject(e, "fieldsType", "FieldsV1");
        cJSON_AddObjectToObject(e, "fieldsV1");
        cJSON_AddItemToArray(mf, e);
        return e;
}

static void entry_touch(cJSON *e, const char *api_version) {
        char ts[64];
        koc__format_timestamp(koc_now_realtime_usec(), 0, ts, sizeof ts);
        cJSON_ReplaceItemInObjectCaseSensitive(e, "time", cJSON_CreateString(ts));
        cJSON_ReplaceItemInObjectCaseSensitive(e, "apiVersion", cJSON_CreateString(api_version));
}

/* FieldsV1 is written with its keys sorted, as the real server does. */
static void fs_sort(cJSON *fs) {
        cJSON *sorted = NULL, *c;
        while ((c = fs->child)) {
                cJSON_DetachItemViaPointer(fs, c);
                fs_sort(c);
                cJSON **at = &sorted;
                while (*at && strcmp((*at)->string, c->string) <= 0)
                        at = &(*at)->next;
                c->next = *at;
                *at = c;
        }
        /* Relink as cJSON keeps its lists: prev of the head is the tail. */
        cJSON *prev = NULL;
        for (c = sorted; c; c = c->next) {
                c->prev = prev;
                prev = c;
        }
        if (sorted)
                sorted->prev = prev;
        fs->child = sorted;
}

/* Entries that own nothing go, and the list goes when it is empty. */
static void entries_prune(cJSON *obj) {
        cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
        cJSON *mf = cJSON_GetObjectItemCaseSensitive(md, "managedFields");
        cJSON *e = mf ? mf->child : NULL;
        while (e) {
                cJSON *next = e->next;
                cJSON *fs = cJSON_GetObjectItemCaseSensitive(e, "fieldsV1");
                if (!cJSON_IsObject(fs) || !fs->child)
                        cJSON_Delete(cJSON_DetachItemViaPointer(mf, e));
                else
                        fs_sort(fs);
                e = next;
        }
        if (mf && !mf->child)
                cJSON_DeleteItemFromObjectCaseSensitive(md, "managedFields");
}

/* --- updates --------------------------------------------------------------------------- */

typedef struct update_ctx {
        const cJSON *old, *new_;
        cJSON *mine;
        cJSON *mf;
        bool changed;
} update_ctx;

static void update_leaf(const fpath *p, void *userdata) {
        update_ctx *u = userdata;
        const cJSON *a = u->old ? obj_lookup(u->old, p) : NULL, *b = obj_lookup(u->new_, p);
        if (a && cJSON_Compare(a, b, true))
                return;
        u->changed = true;
        fs_add(entry_fields(u->mine), p);
        cJSON *e;
        cJSON_ArrayForEach(e, u->mf) if (e != u->mine) fs_remove(entry_fields(e), p);
}

typedef struct gone_ctx {
        const cJSON *new_;
        cJSON *mf;
        bool changed;
} gone_ctx;

static void gone_leaf(const fpath *p, void *userdata) {
        gone_ctx *g = userdata;
        if (obj_lookup(g->new_, p))
                return;
        cJSON *e;
        cJSON_ArrayForEach(e, g->mf) if (fs_has(entry_fields(e), p)) {
                fs_remove(entry_fields(e), p);
                g->changed = true;
        }
}

void managed_fields_update(cJSON *obj, const cJSON *old, const char *manager,
                           const char *api_version, bool has_status) {
        cJSON *md = json_ensure_object(obj, "metadata");
        /* A write's own managedFields are not taken: the stored ones are. */
        cJSON_DeleteItemFromObjectCaseSensitive(md, "managedFields");
        const cJSON *omf = old ? json_path(old, "metadata.managedFields") : NULL;
        if (omf)
                cJSON_AddItemToObject(md, "managedFields", cJSON_Duplicate(omf, true));
        if (!manager) {
                entries_prune(obj);
                return;
        }
        cJSON *mf = entries_of(obj);
        /* Fields that went lose their owners. */
        gone_ctx g = {.new_ = obj, .mf = mf};
        cJSON *e;
        cJSON_ArrayForEach(e, mf) {
                cJSON *copy = cJSON_Duplicate(entry_fields(e), true);
                fs_leaves(copy, gone_leaf, &g);
                cJSON_Delete(copy);
        }
        /* Fields added or changed belong to this manager. */
        cJSON *fields = obj_fields(obj, has_status);
        update_ctx u = {.old = old, .new_ = obj, .mf = mf};
        u.mine = entry_get(mf, manager, "Update", api_version);
        fs_leaves(fields, update_leaf, &u);
        cJSON_Delete(fields);
        if (u.changed)
                entry_touch(u.mine, api_version);
        entries_prune(obj);
}

/* --- apply ----------------------------------------------------------------------------- */

typedef struct conflict {
        char manager[600]; /* as the real server prints it */
        char path[600];
} conflict;

typedef struct apply_ctx {
        const cJSON *live, *applied;
        cJSON *mf, *mine;
        const char *manager;
        bool force;
        conflict *conflicts;
        size_t n_conflicts;
        cJSON *result;
        const cJSON *new_fields;
} apply_ctx;

static void print_manager(const cJSON *e, char *buf, size_t size) {
        const char *m = json_str(e, "manager") ?: "";
        const char *op = json_str(e, "operation") ?: "";
        const char *av = json_str(e, "apiVersion") ?: "";
        /* The real server names a manager by (name, operation, apiVersion),
         * without the time. */
        if (strcmp(op, "Update") != 0)
                snprintf(buf, size, "\"%s\"", m);
        else
                snprintf(buf, size, "\"%s\" using %s", m, av);
}

static void conflict_leaf(const fpath *p, void *userdata) {
        apply_ctx *a = userdata;
        const cJSON *lv = a->live ? obj_lookup(a->live, p) : NULL;
        if (!lv || cJSON_Compare(lv, obj_lookup(a->applied, p), true))
                return;
        cJSON *e;
        cJSON_ArrayForEach(e, a->mf) {
                if (e == a->mine || strcmp(json_str(e, "manager") ?: "", a->manager) == 0 ||
                    !fs_has(entry_fields(e), p))
                        continue;
                if (a->force) {
                        fs_remove(entry_fields(e), p);
                        continue;
                }
                conflict *n = realloc(a->conflicts, (a->n_conflicts + 1) * sizeof *n);
                if (!n)
                        return;
                a->conflicts = n;
                print_manager(e, n[a->n_conflicts].manager, sizeof n->manager);
                fpath_print(p, n[a->n_conflicts].path, sizeof n->path);
                a->n_conflicts++;
        }
}

/* A field this manager applied before and applies no longer goes, unless
 * another manager owns it too. */
static void dropped_leaf(const fpath *p, void *userdata) {
        apply_ctx *a = userdata;
        if (fs_has(a->new_fields, p))
                return;
        cJSON *e;
        cJSON_ArrayForEach(e, a->mf) if (e != a->mine && fs_has(entry_fields(e), p)) return;
        obj_delete(a->result, p);
}

static cJSON *merge_applied(const cJSON *live, const cJSON *applied, fpath *p, bool has_status) {
        cJSON *out = cJSON_IsObject(live) ? cJSON_Duplicate(live, true) : cJSON_CreateObject();
        const cJSON *c;
        cJSON_ArrayForEach(c, applied) {
                if (p->n >= MAX_DEPTH)
                        break;
                p->k[p->n++] = c->string;
                if (!ignored(p, has_status)) {
                        cJSON *cur = cJSON_GetObjectItemCaseSensitive(out, c->string);
                        cJSON *v = cJSON_IsObject(c) && c->child && cJSON_IsObject(cur)
                                           ? merge_applied(cur, c, p, has_status)
                                           : cJSON_Duplicate(c, true);
                        if (cur)
                                cJSON_ReplaceItemInObjectCaseSensitive(out, c->string, v);
                        else
                                cJSON_AddItemToObject(out, c->string, v);
                }
                p->n--;
        }
        return out;
}

static void reply_conflicts(reply *ret, const conflict *cs, size_t n) {
        strbuf msg = {0};
        cJSON *d = cJSON_CreateObject(), *causes = cJSON_AddArrayToObject(d, "causes");
        char cmsg[700];
        for (size_t i = 0; i < n; i++) {
                cJSON *cause = cJSON_CreateObject();
                cJSON_AddStringToObject(cause, "reason", "FieldManagerConflict");
                snprintf(cmsg, sizeof cmsg, "conflict with %s", cs[i].manager);
                cJSON_AddStringToObject(cause, "message", cmsg);
                cJSON_AddStringToObject(cause, "field", cs[i].path);
                cJSON_AddItemToArray(causes, cause);
        }
        if (n == 1)
                strbuf_printf(&msg, "Apply failed with 1 conflict: conflict with %s: %s",
                              cs[0].manager, cs[0].path);
        else {
                strbuf_printf(&msg, "Apply failed with %zu conflicts: ", n);
                /* By manager, in sorted order, as the real server prints them. */
                bool *done = calloc(n, sizeof *done);
                for (size_t k = 0; done && k < n; k++) {
                        size_t best = SIZE_MAX;
                        for (size_t i = 0; i < n; i++)
                                if (!done[i] && (best == SIZE_MAX ||
                                                 strcmp(cs[i].manager, cs[best].manager) < 0))
                                        best = i;
                        if (best == SIZE_MAX)
                                break;
                        strbuf_printf(&msg, "%sconflicts with %s:", k ? "\n" : "",
                                      cs[best].manager);
                        for (size_t i = 0; i < n; i++)
                                if (!done[i] && strcmp(cs[i].manager, cs[best].manager) == 0) {
                                        strbuf_printf(&msg, "\n- %s", cs[i].path);
                                        done[i] = true;
                                }
                }
                free(done);
        }
        reply_status(ret, 409, "Conflict", msg.data ? msg.data : "Apply failed", d);
        strbuf_free(&msg);
}

int apply_config(const cJSON *live, const cJSON *applied, const char *manager, bool force,
                 const char *api_version, bool has_status, cJSON **ret_obj, reply *ret) {
        fpath p = {.n = 0};
        cJSON *result = merge_applied(live, applied, &p, has_status);
        cJSON *new_fields = obj_fields(applied, has_status);
        if (!result || !new_fields) {
                cJSON_Delete(result);
                cJSON_Delete(new_fields);
                return -ENOMEM;
        }
        cJSON *mf = entries_of(result);
        cJSON *mine = NULL, *e;
        cJSON_ArrayForEach(e, mf) if (entry_is(e, manager, "Apply")) mine = e;
        apply_ctx a = {.live = live,
                       .applied = applied,
                       .mf = mf,
                       .mine = mine,
                       .manager = manager,
                       .force = force,
                       .result = result,
                       .new_fields = new_fields};
        fs_leaves(new_fields, conflict_leaf, &a);
        if (a.n_conflicts > 0) {
                reply_conflicts(ret, a.conflicts, a.n_conflicts);
                free(a.conflicts);
                cJSON_Delete(result);
                cJSON_Delete(new_fields);
                return -EBUSY;
        }
        free(a.conflicts);
        cJSON *before = mine ? cJSON_Duplicate(entry_fields(mine), true) : NULL;
        if (before)
                fs_leaves(before, dropped_leaf, &a);
        bool same_fields = before && cJSON_Compare(before, new_fields, true);
        cJSON_Delete(before);
        if (!mine)
                mine = entry_get(mf, manager, "Apply", api_version);
        cJSON_ReplaceItemInObjectCaseSensitive(mine, "fieldsV1", new_fields);
        entries_prune(result);

        /* An apply that changes nothing keeps the stored managedFields (and
         * so the resourceVersion). */
        if (live && same_fields) {
                cJSON *x = cJSON_Duplicate(result, true), *y = cJSON_Duplicate(live, true);
                cJSON_DeleteItemFromObjectCaseSensitive(json_ensure_object(x, "metadata"),
                                                        "managedFields");
                cJSON_DeleteItemFromObjectCaseSensitive(json_ensure_object(y, "metadata"),
                                                        "managedFields");
                bool noop = cJSON_Compare(x, y, true);
                cJSON_Delete(x);
                cJSON_Delete(y);
                if (noop) {
                        cJSON_Delete(result);
                        *ret_obj = cJSON_Duplicate(live, true);
                        return *ret_obj ? 0 : -ENOMEM;
                }
        }
        cJSON_ArrayForEach(e, entries_of(result)) if (entry_is(e, manager, "Apply"))
                entry_touch(e, api_version);
        *ret_obj = result;
        return 0;
}
