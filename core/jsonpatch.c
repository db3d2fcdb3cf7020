/* SPDX-License-Identifier: Apache-2.0 */
/*
 * RFC 6902 diff and apply (jsonpatch.h).  The diff walks both documents
 * together: members of an object only in a are removed, only in b added,
 * in both compared again; arrays are compared index by index over their
 * common length, then grown at their end (add at each new index) or shrunk
 * from their end (remove, highest index first, so that each index is still
 * valid when its operation applies); anything else that differs is replaced.
 */
#include "core/jsonpatch.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *koc__jsonpointer_append(const char *pointer, const char *token) {
        size_t pl = strlen(pointer), n = 0;

        for (const char *p = token; *p; p++)
                n += (*p == '~' || *p == '/') ? 2 : 1;
        char *out = malloc(pl + 1 + n + 1), *o;
        if (!out)
                return NULL;
        memcpy(out, pointer, pl);
        o = out + pl;
        *o++ = '/';
        for (const char *p = token; *p; p++) {
                if (*p == '~' || *p == '/') {
                        *o++ = '~';
                        *o++ = *p == '~' ? '0' : '1';
                } else
                        *o++ = *p;
        }
        *o = '\0';
        return out;
}

static bool has_duplicate_keys(const cJSON *o) {
        for (const cJSON *x = o->child; x; x = x->next)
                for (const cJSON *y = x->next; y; y = y->next)
                        if (x->string && y->string && strcmp(x->string, y->string) == 0)
                                return true;
        return false;
}

static int add_op(cJSON *ops, const char *op, const char *path, const cJSON *value) {
        cJSON *o = cJSON_CreateObject();

        if (!o)
                return -ENOMEM;
        cJSON_AddItemToArray(ops, o);
        if (!cJSON_AddStringToObject(o, "op", op) || !cJSON_AddStringToObject(o, "path", path))
                return -ENOMEM;
        if (value) {
                cJSON *v = cJSON_Duplicate(value, true);
                if (!v)
                        return -ENOMEM;
                cJSON_AddItemToObject(o, "value", v);
        }
        return 0;
}

static int diff_at(const cJSON *a, const cJSON *b, const char *path, unsigned depth, cJSON *ops);

static int diff_child(const cJSON *a, const cJSON *b, const char *path, const char *token,
                      unsigned depth, cJSON *ops) {
        char *p = koc__jsonpointer_append(path, token);
        if (!p)
                return -ENOMEM;
        int r = diff_at(a, b, p, depth + 1, ops);
        free(p);
        return r;
}

static int op_child(cJSON *ops, const char *op, const char *path, const char *token,
                    const cJSON *value) {
        char *p = koc__jsonpointer_append(path, token);
        if (!p)
                return -ENOMEM;
        int r = add_op(ops, op, p, value);
        free(p);
        return r;
}

static int diff_objects(const cJSON *a, const cJSON *b, const char *path, unsigned depth,
                        cJSON *ops) {
        int r;

        if (has_duplicate_keys(a) || has_duplicate_keys(b))
                return -EINVAL;
        for (const cJSON *x = a->child; x; x = x->next) {
                if (!x->string)
                        return -EINVAL;
                const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, x->string);
                r = y ? diff_child(x, y, path, x->string, depth, ops)
                      : op_child(ops, "remove", path, x->string, NULL);
                if (r < 0)
                        return r;
        }
        for (const cJSON *y = b->child; y; y = y->next) {
                if (!y->string)
                        return -EINVAL;
                if (cJSON_GetObjectItemCaseSensitive(a, y->string))
                        continue;
                r = op_child(ops, "add", path, y->string, y);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int diff_arrays(const cJSON *a, const cJSON *b, const char *path, unsigned depth,
                       cJSON *ops) {
        int na = cJSON_GetArraySize(a), nb = cJSON_GetArraySize(b), i = 0, r;
        const cJSON *x = a->child, *y = b->child;
        char idx[24];

        for (; x && y; x = x->next, y = y->next, i++) {
                snprintf(idx, sizeof idx, "%d", i);
                r = diff_child(x, y, path, idx, depth, ops);
                if (r < 0)
                        return r;
        }
        for (; y; y = y->next, i++) {
                snprintf(idx, sizeof idx, "%d", i);
                r = op_child(ops, "add", path, idx, y);
                if (r < 0)
                        return r;
        }
        for (int j = na - 1; j >= nb; j--) {
                snprintf(idx, sizeof idx, "%d", j);
                r = op_child(ops, "remove", path, idx, NULL);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int diff_at(const cJSON *a, const cJSON *b, const char *path, unsigned depth, cJSON *ops) {
        if (depth > KOC__JSONPATCH_MAX_DEPTH)
                return -ELOOP;
        if (cJSON_IsObject(a) && cJSON_IsObject(b))
                return diff_objects(a, b, path, depth, ops);
        if (cJSON_IsArray(a) && cJSON_IsArray(b))
                return diff_arrays(a, b, path, depth, ops);
        if (cJSON_IsObject(b) && has_duplicate_keys(b))
                return -EINVAL;
        if ((a->type & 0xff) == (b->type & 0xff) && !cJSON_IsObject(a) && !cJSON_IsArray(a) &&
            cJSON_Compare(a, b, true))
                return 0;
        return add_op(ops, "replace", path, b);
}

int koc__jsonpatch_diff(const cJSON *a, const cJSON *b, cJSON **ret) {
        if (!a || !b || !ret)
                return -EINVAL;
        cJSON *ops = cJSON_CreateArray();
        if (!ops)
                return -ENOMEM;
        int r = diff_at(a, b, "", 0, ops);
        if (r < 0) {
                cJSON_Delete(ops);
                return r;
        }
        *ret = ops;
        return 0;
}

/* --- apply ------------------------------------------------------------------------ */

/* The next token of pointer *p (after its '/'), unescaped into a new string;
 * *p moves past it.  NULL on a bad escape or out of memory. */
static char *next_token(const char **p) {
        const char *s = *p + 1, *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        char *t = malloc(n + 1), *o = t;

        if (!t)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                if (s[i] != '~') {
                        *o++ = s[i];
                        continue;
                }
                if (i + 1 >= n || (s[i + 1] != '0' && s[i + 1] != '1')) {
                        free(t);
                        return NULL;
                }
                *o++ = s[++i] == '0' ? '~' : '/';
        }
        *o = '\0';
        *p = s + n;
        return t;
}

/* An array index: digits without a leading zero, below limit (inclusive
 * when allow_end).  -1 when not. */
static int parse_index(const char *t, int size, bool allow_end) {
        long v = 0;

        if (!t[0] || (t[0] == '0' && t[1]) || strlen(t) > 9)
                return -1;
        for (const char *c = t; *c; c++) {
                if (*c < '0' || *c > '9')
                        return -1;
                v = v * 10 + (*c - '0');
        }
        if (v > size || (v == size && !allow_end))
                return -1;
        return (int)v;
}

/* Inserts v before index i (i may be the size: appended).  Not with
 * cJSON_InsertItemInArray, which some cJSON builds refuse for the last
 * index. */
static bool insert(cJSON *array, int i, cJSON *v) {
        cJSON *tail = NULL;

        while (cJSON_GetArraySize(array) > i) {
                cJSON *x = cJSON_DetachItemFromArray(array, i);
                x->next = tail; /* a stack, in reverse */
                tail = x;
        }
        cJSON *rev = NULL;
        while (tail) {
                cJSON *n = tail->next;
                tail->next = rev;
                rev = tail;
                tail = n;
        }
        bool ok = cJSON_AddItemToArray(array, v);
        while (rev) {
                cJSON *n = rev->next;
                rev->next = NULL;
                cJSON_AddItemToArray(array, rev);
                rev = n;
        }
        return ok;
}

static int apply_one(cJSON **root, const char *op, const char *path, const cJSON *value) {
        bool add = strcmp(op, "add") == 0, remove = strcmp(op, "remove") == 0;
        bool replace = strcmp(op, "replace") == 0;
        cJSON *parent = NULL, *cur = *root;
        char *tok = NULL;
        unsigned depth = 0;

        if (!add && !remove && !replace)
                return -EINVAL;
        if ((add || replace) && !value)
                return -EINVAL;
        if (path[0] == '\0') {
                if (remove)
                        return -EINVAL;
                cJSON *v = cJSON_Duplicate(value, true);
                if (!v)
                        return -ENOMEM;
                cJSON_Delete(*root);
                *root = v;
                return 0;
        }
        if (path[0] != '/')
                return -EINVAL;
        const char *p = path;
        while (*p) {
                if (++depth > KOC__JSONPATCH_MAX_DEPTH) {
                        free(tok);
                        return -ELOOP;
                }
                free(tok);
                tok = next_token(&p);
                if (!tok)
                        return -EINVAL;
                parent = cur;
                if (!*p)
                        break;
                if (cJSON_IsObject(cur))
                        cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
                else if (cJSON_IsArray(cur)) {
                        int i = parse_index(tok, cJSON_GetArraySize(cur), false);
                        cur = i < 0 ? NULL : cJSON_GetArrayItem(cur, i);
                } else
                        cur = NULL;
                if (!cur) {
                        free(tok);
                        return -EINVAL;
                }
        }
        int r = 0;
        cJSON *v = NULL;
        if (!remove && !(v = cJSON_Duplicate(value, true))) {
                free(tok);
                return -ENOMEM;
        }
        if (cJSON_IsObject(parent)) {
                cJSON *old = cJSON_GetObjectItemCaseSensitive(parent, tok);
                if ((remove || replace) && !old)
                        r = -EINVAL;
                else if (remove)
                        cJSON_DeleteItemFromObjectCaseSensitive(parent, tok);
                else if (old ? cJSON_ReplaceItemInObjectCaseSensitive(parent, tok, v)
                             : cJSON_AddItemToObject(parent, tok, v))
                        v = NULL;
                else
                        r = -ENOMEM;
        } else if (cJSON_IsArray(parent)) {
                int n = cJSON_GetArraySize(parent);
                int i = add && strcmp(tok, "-") == 0 ? n : parse_index(tok, n, add);
                if (i < 0)
                        r = -EINVAL;
                else if (remove)
                        cJSON_DeleteItemFromArray(parent, i);
                else if (replace ? cJSON_ReplaceItemInArray(parent, i, v) : insert(parent, i, v))
                        v = NULL;
                else
                        r = -ENOMEM;
        } else
                r = -EINVAL;
        cJSON_Delete(v);
        free(tok);
        return r;
}

int koc__jsonpatch_apply(const cJSON *doc, const cJSON *patch, cJSON **ret) {
        if (!doc || !cJSON_IsArray(patch) || !ret)
                return -EINVAL;
        cJSON *out = cJSON_Duplicate(doc, true);
        if (!out)
                return -ENOMEM;
        for (const cJSON *o = patch->child; o; o = o->next) {
                const cJSON *op = cJSON_GetObjectItemCaseSensitive(o, "op");
                const cJSON *path = cJSON_GetObjectItemCaseSensitive(o, "path");
                int r = -EINVAL;
                if (cJSON_IsString(op) && cJSON_IsString(path))
                        r = apply_one(&out, op->valuestring, path->valuestring,
                                      cJSON_GetObjectItemCaseSensitive(o, "value"));
                if (r < 0) {
                        cJSON_Delete(out);
                        return r;
                }
        }
        *ret = out;
        return 0;
}
