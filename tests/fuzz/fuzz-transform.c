/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The object transform of the controller cache (koc__store_make_object in
 * framework/cache/store.c): the default strip of metadata.managedFields
 * and the kubectl last-applied-configuration annotation, then a user
 * transform, on hostile JSON (metadata or annotations that are not objects,
 * the fields given twice, huge or odd names).
 *
 * Input: byte 0 picks the user transform: none; one that rebuilds metadata
 * from a few of its fields (a common way to save memory); one that drops
 * metadata altogether; one that renames the object and drops its status.
 * The rest is the object's JSON.
 *
 * Checked: an object without a string metadata.name is refused (-EINVAL) and
 * any other is stored; the record's key, namespace and name are the ones the
 * API server sent, whatever the transform did; the cached JSON parses and
 * holds no managedFields and no last-applied annotation anywhere in metadata;
 * without a user transform it is the input with exactly those removed.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "framework/cache/store.h"

#define LAST_APPLIED "kubectl.kubernetes.io/last-applied-configuration"

static void keep_some_metadata(cJSON *obj, void *userdata) {
        (void)userdata;
        cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
        cJSON *slim = cJSON_CreateObject();
        if (!slim)
                abort();
        static const char *const keep[] = {"name", "namespace", "resourceVersion", "labels"};
        for (size_t i = 0; i < sizeof keep / sizeof *keep; i++) {
                cJSON *v = cJSON_GetObjectItemCaseSensitive(md, keep[i]);
                if (v)
                        cJSON_AddItemToObject(slim, keep[i], cJSON_Duplicate(v, true));
        }
        if (md)
                cJSON_ReplaceItemViaPointer(obj, md, slim);
        else
                cJSON_Delete(slim);
}

static void drop_metadata(cJSON *obj, void *userdata) {
        (void)userdata;
        cJSON_DeleteItemFromObjectCaseSensitive(obj, "metadata");
}

static void rename_and_drop_status(cJSON *obj, void *userdata) {
        (void)userdata;
        cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
        if (cJSON_IsObject(md))
                cJSON_ReplaceItemInObjectCaseSensitive(md, "name", cJSON_CreateString("renamed"));
        cJSON_DeleteItemFromObjectCaseSensitive(obj, "status");
}

static const char *str_field(const cJSON *o, const char *name) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
        return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Every member called name, not only the first one. */
static void delete_all(cJSON *o, const char *name) {
        if (!cJSON_IsObject(o))
                return;
        while (cJSON_GetObjectItemCaseSensitive(o, name))
                cJSON_DeleteItemFromObjectCaseSensitive(o, name);
}

static bool has_member(const cJSON *o, const char *name) {
        const cJSON *c;
        cJSON_ArrayForEach(c, o) {
                if (c->string && strcmp(c->string, name) == 0)
                        return true;
        }
        return false;
}

/* The cache's readers see the first metadata (the way cJSON looks members
 * up); it may keep no copy of what the strip removes, a second
 * "managedFields" or "annotations" member included. */
static void check_stripped(const cJSON *j) {
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(j, "metadata"), *a;
        if (has_member(md, "managedFields"))
                abort();
        cJSON_ArrayForEach(a, (cJSON_IsObject(md) ? md : NULL)) {
                if (a->string && strcmp(a->string, "annotations") == 0 &&
                    has_member(a, LAST_APPLIED))
                        abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        cJSON *obj = cJSON_ParseWithLength((const char *)data + 1, size - 1);
        if (!obj)
                return 0;
        cJSON *orig = cJSON_Duplicate(obj, true);
        if (!orig)
                abort();
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(orig, "metadata");
        const char *name = str_field(md, "name"), *ns = str_field(md, "namespace");
        char key[4200] = "";
        if (name)
                snprintf(key, sizeof key, "%s%s%s", ns && *ns ? ns : "", ns && *ns ? "/" : "",
                         name);

        koc_store *s = NULL;
        if (koc__store_new(&s) < 0)
                abort();
        static const koc_transform_t transforms[] = {NULL, keep_some_metadata, drop_metadata,
                                                     rename_and_drop_status};
        koc_transform_t t = transforms[data[0] % 4];
        if (t)
                koc__store_set_transform(s, t, NULL, NULL);

        koc_object *o = NULL;
        int r = koc__store_make_object(s, obj, &o);
        if (!name || !*name) {
                if (r != -EINVAL || o)
                        abort();
        } else {
                if (r < 0 || strcmp(koc_object_get_key(o), key) != 0 ||
                    strcmp(koc_object_get_name(o), name) != 0 ||
                    strcmp(koc_object_get_namespace(o), ns ? ns : "") != 0)
                        abort();
                cJSON *j = NULL;
                if (koc_object_parse(o, &j) < 0)
                        abort();
                check_stripped(j);
                if (!t) {
                        /* Exactly managedFields and the annotation went. */
                        cJSON *want = cJSON_Duplicate(orig, true), *a;
                        cJSON *wmd = cJSON_GetObjectItemCaseSensitive(want, "metadata");
                        delete_all(wmd, "managedFields");
                        cJSON_ArrayForEach(a, (cJSON_IsObject(wmd) ? wmd : NULL)) {
                                if (a->string && strcmp(a->string, "annotations") == 0)
                                        delete_all(a, LAST_APPLIED);
                        }
                        char *w = cJSON_PrintUnformatted(want);
                        if (!w || strcmp(w, koc_object_get_json(o, NULL)) != 0)
                                abort();
                        cJSON_free(w);
                        cJSON_Delete(want);
                }
                cJSON_Delete(j);
                koc_object_unref(o);
        }
        koc__store_free(s);
        cJSON_Delete(orig);
        cJSON_Delete(obj);
        return 0;
}
