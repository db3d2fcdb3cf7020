/* SPDX-License-Identifier: Apache-2.0 */
/* JSON merge patch (RFC 7386) and JSON patch (RFC 6902). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver.h"

cJSON *merge_patch(const cJSON *target, const cJSON *patch) {
        if (!cJSON_IsObject(patch))
                return cJSON_Duplicate(patch, true);
        cJSON *result =
                cJSON_IsObject(target) ? cJSON_Duplicate(target, true) : cJSON_CreateObject();
        if (!result)
                return NULL;
        const cJSON *item;
        cJSON_ArrayForEach(item, patch) {
                if (cJSON_IsNull(item)) {
                        cJSON_DeleteItemFromObjectCaseSensitive(result, item->string);
                        continue;
                }
                cJSON *cur = cJSON_GetObjectItemCaseSensitive(result, item->string);
                cJSON *merged = merge_patch(cur, item);
                if (!merged) {
                        cJSON_Delete(result);
                        return NULL;
                }
                if (cur)
                        cJSON_ReplaceItemInObjectCaseSensitive(result, item->string, merged);
                else
                        cJSON_AddItemToObject(result, item->string, merged);
        }
        return result;
}

/* Splits a JSON pointer into unescaped tokens, in place in a copy. */
static int pointer_split(const char *path, char **ret_buf, char ***ret_tokens, size_t *ret_n) {
        if (*path && *path != '/')
                return -EINVAL;
        char *buf = strdup(path);
        size_t cap = 1;
        for (const char *p = path; *p; p++)
                cap += *p == '/';
        char **tokens = calloc(cap, sizeof *tokens);
        size_t n = 0;
        if (!buf || !tokens) {
                free(buf);
                free(tokens);
                return -ENOMEM;
        }
        char *p = buf;
        while (*p == '/') {
                *p++ = 0;
                char *tok = p, *w = p;
                while (*p && *p != '/') {
                        if (p[0] == '~' && p[1] == '0') {
                                *w++ = '~';
                                p += 2;
                        } else if (p[0] == '~' && p[1] == '1') {
                                *w++ = '/';
                                p += 2;
                        } else
                                *w++ = *p++;
                }
                char next = *p;
                *w = 0;
                tokens[n++] = tok;
                if (next == '/')
                        *p = '/';
                else
                        break;
        }
        *ret_buf = buf;
        *ret_tokens = tokens;
        *ret_n = n;
        return 0;
}

static bool parse_index(const char *tok, int size, bool allow_end, int *ret) {
        if (allow_end && strcmp(tok, "-") == 0) {
                *ret = size;
                return true;
        }
        if (!*tok || (tok[0] == '0' && tok[1]))
                return false;
        long v = 0;
        for (const char *p = tok; *p; p++) {
                if (!isdigit((unsigned char)*p) || v > 1000000)
                        return false;
                v = v * 10 + (*p - '0');
        }
        if (v > (allow_end ? size : size - 1))
                return false;
        *ret = (int)v;
        return true;
}

static cJSON *resolve(cJSON *doc, char **tokens, size_t n) {
        cJSON *cur = doc;
        for (size_t i = 0; cur && i < n; i++) {
                if (cJSON_IsObject(cur))
                        cur = cJSON_GetObjectItemCaseSensitive(cur, tokens[i]);
                else if (cJSON_IsArray(cur)) {
                        int idx;
                        if (!parse_index(tokens[i], cJSON_GetArraySize(cur), false, &idx))
                                return NULL;
                        cur = cJSON_GetArrayItem(cur, idx);
                } else
                        return NULL;
        }
        return cur;
}

typedef struct pointer {
        char *buf;
        char **tokens;
        size_t n;
} pointer;

static void pointer_free(pointer *p) {
        free(p->buf);
        free(p->tokens);
}

/* cJSON_InsertItemInArray of cJSON 1.7.15 refuses positions other than
 * the first (a check on prev links that parsed arrays do not pass), so the
 * tail is moved aside and appended again. */
static void insert_at(cJSON *array, int idx, cJSON *value) {
        cJSON tail = {0};
        tail.type = cJSON_Array;
        while (cJSON_GetArraySize(array) > idx)
                cJSON_AddItemToArray(&tail, cJSON_DetachItemFromArray(array, idx));
        cJSON_AddItemToArray(array, value);
        while (tail.child)
                cJSON_AddItemToArray(array, cJSON_DetachItemFromArray(&tail, 0));
}

/* Adds (or, with replace, replaces) value at the pointer; takes value. */
static int put(cJSON **doc, const pointer *ptr, cJSON *value, bool replace) {
        if (ptr->n == 0) {
                cJSON_Delete(*doc);
                *doc = value;
                return 0;
        }
        cJSON *parent = resolve(*doc, ptr->tokens, ptr->n - 1);
        const char *last = ptr->tokens[ptr->n - 1];
        if (cJSON_IsObject(parent)) {
                if (cJSON_GetObjectItemCaseSensitive(parent, last))
                        cJSON_ReplaceItemInObjectCaseSensitive(parent, last, value);
                else if (replace)
                        goto fail;
                else
                        cJSON_AddItemToObject(parent, last, value);
                return 0;
        }
        if (cJSON_IsArray(parent)) {
                int size = cJSON_GetArraySize(parent), idx;
                if (!parse_index(last, size, !replace, &idx))
                        goto fail;
                if (replace)
                        cJSON_ReplaceItemInArray(parent, idx, value);
                else if (idx == size)
                        cJSON_AddItemToArray(parent, value);
                else
                        insert_at(parent, idx, value);
                return 0;
        }
fail:
        cJSON_Delete(value);
        return -ENOENT;
}

static cJSON *detach(cJSON *doc, const pointer *ptr) {
        if (ptr->n == 0)
                return NULL;
        cJSON *parent = resolve(doc, ptr->tokens, ptr->n - 1);
        const char *last = ptr->tokens[ptr->n - 1];
        if (cJSON_IsObject(parent))
                return cJSON_DetachItemFromObjectCaseSensitive(parent, last);
        if (cJSON_IsArray(parent)) {
                int idx;
                if (!parse_index(last, cJSON_GetArraySize(parent), false, &idx))
                        return NULL;
                return cJSON_DetachItemFromArray(parent, idx);
        }
        return NULL;
}

/* Bytes that the copy operations of one JSON patch may add in all. */
#define PATCH_COPY_LIMIT ((size_t)3 * 1024 * 1024)

static int apply_op(cJSON **doc, const cJSON *op, size_t *copied, char *err, size_t errlen) {
        const char *name = json_str(op, "op"), *path = json_str(op, "path"),
                   *from = json_str(op, "from");
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(op, "value");
        pointer ptr = {0}, fptr = {0};
        int r;

        if (!name || !path) {
                snprintf(err, errlen, "invalid JSON patch operation: missing op or path");
                return -EINVAL;
        }
        if (pointer_split(path, &ptr.buf, &ptr.tokens, &ptr.n) < 0) {
                snprintf(err, errlen, "invalid JSON pointer %s", path);
                return -EINVAL;
        }
        if (strcmp(name, "add") == 0 || strcmp(name, "replace") == 0) {
                if (!value) {
                        snprintf(err, errlen, "missing value for %s operation", name);
                        r = -EINVAL;
                        goto out;
                }
                r = put(doc, &ptr, cJSON_Duplicate(value, true), name[0] == 'r');
                if (r < 0)
                        snprintf(err, errlen,
                                 "%s operation does not apply: doc is missing path: %s", name,
                                 path);
        } else if (strcmp(name, "remove") == 0) {
                cJSON *v = detach(*doc, &ptr);
                r = v ? 0 : -ENOENT;
                cJSON_Delete(v);
                if (r < 0)
                        snprintf(err, errlen,
                                 "remove operation does not apply: doc is missing path: %s", path);
        } else if (strcmp(name, "test") == 0) {
                cJSON *v = resolve(*doc, ptr.tokens, ptr.n);
                r = v && value && cJSON_Compare(v, value, true) ? 0 : -ECANCELED;
                if (r < 0)
                        snprintf(err, errlen,
                                 "testing value %s failed: test operation does not apply", path);
        } else if (strcmp(name, "move") == 0 || strcmp(name, "copy") == 0) {
                if (!from || pointer_split(from, &fptr.buf, &fptr.tokens, &fptr.n) < 0) {
                        snprintf(err, errlen, "invalid from in %s operation", name);
                        r = -EINVAL;
                        goto out;
                }
                cJSON *v;
                if (name[0] == 'm')
                        v = detach(*doc, &fptr);
                else {
                        cJSON *src = resolve(*doc, fptr.tokens, fptr.n);
                        v = src ? cJSON_Duplicate(src, true) : NULL;
                        /* Each copy can double the document: bound what all
                         * copies of one patch add up to, as the real server
                         * does (jsonpatch's AccumulatedCopySizeLimit). */
                        char *text = v ? cJSON_PrintUnformatted(v) : NULL;
                        size_t size = text ? strlen(text) : 0;
                        free(text);
                        *copied += size;
                        if (v && (!size || *copied > PATCH_COPY_LIMIT)) {
                                cJSON_Delete(v);
                                snprintf(err, errlen,
                                         "unable to copy %s: the patch would use too much memory",
                                         from);
                                r = -EINVAL;
                                goto out;
                        }
                }
                if (!v) {
                        snprintf(err, errlen,
                                 "%s operation does not apply: doc is missing from path: %s", name,
                                 from);
                        r = -ENOENT;
                        goto out;
                }
                r = put(doc, &ptr, v, false);
                if (r < 0)
                        snprintf(err, errlen,
                                 "%s operation does not apply: doc is missing path: %s", name,
                                 path);
        } else {
                snprintf(err, errlen, "Unexpected kind: %s", name);
                r = -EINVAL;
        }
out:
        pointer_free(&ptr);
        pointer_free(&fptr);
        return r;
}

int json_patch(cJSON **doc, const cJSON *ops, char *err, size_t errlen) {
        const cJSON *op;
        size_t copied = 0;
        if (!cJSON_IsArray(ops)) {
                snprintf(err, errlen,
                         "json: cannot unmarshal object into Go value of type jsonpatch.Patch");
                return -EINVAL;
        }
        cJSON_ArrayForEach(op, ops) {
                int r = apply_op(doc, op, &copied, err, errlen);
                if (r < 0)
                        return r == -ENOENT ? -EINVAL : r;
        }
        return 0;
}
