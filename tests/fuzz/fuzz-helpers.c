/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The reconcile helpers on hostile metadata (framework/controller/helpers.c,
 * controller.c): koc_object_add/remove/has_finalizer,
 * koc_object_set_controller_reference, and the mapping of an owned object's
 * ownerReferences to the owner to enqueue (koc__owner_refs_foreach), on
 * duplicate entries, non-string items, huge lists and values of the wrong
 * type.
 *
 * Input: one flags byte, then "text NUL object": text is the finalizer and
 * the owner's uid; the object is JSON (not JSON: nothing to do).
 *
 * Checked beyond "no crash, leak, UB", each on the object as sent (printed
 * and parsed again):
 * - add then has is true, remove then has is false; add returns 1 exactly
 *   when has was false, remove 1 exactly when it was true; every other item
 *   of metadata.finalizers stays, in order; a refusal changes nothing;
 * - after set_controller_reference, ownerReferences is an array with our
 *   reference (controller: true) and no other controller; -EADDRINUSE exactly
 *   when another controller was there;
 * - an owned object enqueues at most one owner, the first reference with
 *   controller: true (metav1.GetControllerOf), and only when it is of the
 *   primary's kind and group.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "framework/controller/controller-internal.h"
#include "koc/controller.h"

static cJSON *md_of(const cJSON *o) {
        return cJSON_GetObjectItemCaseSensitive(o, "metadata");
}

/* The object as the server would get it. */
static cJSON *resent(const cJSON *o) {
        char *s = cJSON_PrintUnformatted(o);
        if (!s)
                abort();
        cJSON *j = cJSON_Parse(s);
        free(s);
        if (!j)
                abort();
        return j;
}

/* metadata.finalizers minus every string equal to f, printed. */
static char *others(const cJSON *o, const char *f) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(md_of(o), "finalizers");
        cJSON *rest = cJSON_CreateArray();
        if (cJSON_IsArray(list)) {
                const cJSON *i;
                cJSON_ArrayForEach(i, list) if (!cJSON_IsString(i) || strcmp(i->valuestring, f) != 0)
                        cJSON_AddItemToArray(rest, cJSON_Duplicate(i, true));
        }
        char *s = cJSON_PrintUnformatted(rest);
        cJSON_Delete(rest);
        if (!s)
                abort();
        return s;
}

static bool sent_has(const cJSON *o, const char *f) {
        cJSON *j = resent(o);
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(md_of(j), "finalizers"), *i;
        bool has = false;
        if (cJSON_IsArray(list))
                cJSON_ArrayForEach(i, list) has |= cJSON_IsString(i) && strcmp(i->valuestring, f) == 0;
        cJSON_Delete(j);
        return has;
}

static void check_unchanged(const cJSON *o, const char *before) {
        char *s = cJSON_PrintUnformatted(o);
        if (!s || strcmp(s, before) != 0)
                abort();
        free(s);
}

static void check_finalizers(cJSON *o, const char *f) {
        char *before = cJSON_PrintUnformatted(o);
        char *rest = others(o, f);
        bool had = koc_object_has_finalizer(o, f);
        int r = koc_object_add_finalizer(o, f);
        if ((!cJSON_IsObject(o) || !*f) && r != -EINVAL)
                abort();
        if (r < 0) {
                check_unchanged(o, before);
        } else {
                if (r != (had ? 0 : 1) || !koc_object_has_finalizer(o, f) || !sent_has(o, f))
                        abort();
                char *after = others(o, f);
                if (strcmp(after, rest) != 0)
                        abort();
                free(after);
        }
        free(before);

        before = cJSON_PrintUnformatted(o);
        had = koc_object_has_finalizer(o, f);
        r = koc_object_remove_finalizer(o, f);
        if (r < 0) {
                check_unchanged(o, before);
        } else {
                if (r != (had ? 1 : 0) || koc_object_has_finalizer(o, f) || sent_has(o, f))
                        abort();
                char *after = others(o, f);
                if (strcmp(after, rest) != 0)
                        abort();
                free(after);
        }
        free(before);
        free(rest);
}

static bool is_controller(const cJSON *ref) {
        return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ref, "controller"));
}

static const char *uid_of(const cJSON *ref) {
        return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ref, "uid"));
}

/* controllerutil's referSameObject: the same uid, or the same group, kind
 * and name (the owner below is example.com's Thing "owner"). */
static bool same_owner(const cJSON *ref, const char *uid) {
        if (uid_of(ref) && strcmp(uid_of(ref), uid) == 0)
                return true;
        const char *av = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ref, "apiVersion"));
        const char *kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ref, "kind"));
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ref, "name"));
        return av && kind && name && strncmp(av, "example.com/", 12) == 0 &&
               strcmp(kind, "Thing") == 0 && strcmp(name, "owner") == 0;
}

static void check_controller_reference(cJSON *o, const char *uid) {
        const cJSON *refs = cJSON_GetObjectItemCaseSensitive(md_of(o), "ownerReferences"), *ref;
        bool other = false;
        if (cJSON_IsArray(refs))
                cJSON_ArrayForEach(ref, refs) other |= is_controller(ref) && !same_owner(ref, uid);
        cJSON *owner = cJSON_CreateObject();
        cJSON *omd = cJSON_AddObjectToObject(owner, "metadata");
        cJSON_AddStringToObject(omd, "name", "owner");
        cJSON_AddStringToObject(omd, "uid", uid);
        char *before = cJSON_PrintUnformatted(o);
        int r = koc_object_set_controller_reference(o, owner, "example.com/v1", "Thing");
        cJSON_Delete(owner);
        if (r < 0) {
                check_unchanged(o, before);
                if (!*uid) {
                        if (r != -EINVAL) /* an empty uid names no owner */
                                abort();
                } else if ((r == -EADDRINUSE) !=
                           (cJSON_IsObject(o) && cJSON_IsObject(md_of(o)) && other))
                        abort();
        } else {
                if (other)
                        abort();
                cJSON *j = resent(o);
                refs = cJSON_GetObjectItemCaseSensitive(md_of(j), "ownerReferences");
                bool ours = false;
                if (!cJSON_IsArray(refs))
                        abort();
                cJSON_ArrayForEach(ref, refs) {
                        if (!is_controller(ref))
                                continue;
                        if (!uid_of(ref) || strcmp(uid_of(ref), uid) != 0)
                                abort();
                        const char *name = cJSON_GetStringValue(
                                cJSON_GetObjectItemCaseSensitive(ref, "name"));
                        ours |= name && strcmp(name, "owner") == 0;
                }
                if (!ours)
                        abort();
                cJSON_Delete(j);
        }
        free(before);
}

struct owners {
        int calls;
        const char *name;
        const char *namespace_;
};

static void on_owner(const char *namespace_, const char *name, void *userdata) {
        struct owners *w = userdata;
        w->calls++;
        w->name = name;
        w->namespace_ = namespace_;
}

static void check_owner_refs(const cJSON *o, uint8_t flags) {
        koc_resource res = {
                .group = flags & 2 ? "example.com" : "",
                .version = "v1",
                .resource = flags & 2 ? "things" : "configmaps",
                .kind = flags & 2 ? "Thing" : "ConfigMap",
                .namespaced = flags & 4,
        };
        struct owners w = {0};
        koc__owner_refs_foreach(o, &res, on_owner, &w);
        if (w.calls > 1)
                abort();
        /* metav1.GetControllerOf: the first reference with controller: true. */
        const cJSON *md = md_of(o);
        const cJSON *refs = cJSON_GetObjectItemCaseSensitive(md, "ownerReferences"), *ref,
                    *first = NULL;
        if (cJSON_IsArray(refs))
                cJSON_ArrayForEach(ref, refs) if (is_controller(ref)) {
                        first = ref;
                        break;
                }
        if (w.calls == 0)
                return;
        if (!first || !cJSON_IsObject(md))
                abort();
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(first, "name"));
        const char *kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(first, "kind"));
        const char *api =
                cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(first, "apiVersion"));
        if (!name || w.name != name || !kind || strcmp(kind, res.kind) != 0 || !api)
                abort();
        const char *slash = strchr(api, '/');
        if (slash ? strncmp(api, res.group, (size_t)(slash - api)) != 0 ||
                            strlen(res.group) != (size_t)(slash - api)
                  : *res.group != '\0')
                abort();
        const char *ns = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(md, "namespace"));
        if (res.namespaced ? w.namespace_ != ns : w.namespace_ != NULL)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        uint8_t flags = data[0];
        const char *p = (const char *)data + 1, *end = (const char *)data + size;
        const char *z = memchr(p, 0, (size_t)(end - p));
        char *text = strndup(z ? p : "example.com/cleanup", z ? (size_t)(z - p) : 19);
        const char *json = z ? z + 1 : p;
        cJSON *o = cJSON_ParseWithLength(json, (size_t)(end - json));
        if (!text || !o) {
                free(text);
                cJSON_Delete(o);
                return 0;
        }
        check_owner_refs(o, flags);
        if (flags & 1)
                check_controller_reference(o, text);
        else
                check_finalizers(o, text);
        cJSON_Delete(o);
        free(text);
        return 0;
}
