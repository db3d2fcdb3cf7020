/* SPDX-License-Identifier: Apache-2.0 */
/* Small containers and JSON/base64 helpers of koc-apiserver. */
#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver.h"

int strbuf_append(strbuf *b, const char *s, size_t n) {
        if (b->len + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 256;
                while (cap < b->len + n + 1)
                        cap *= 2;
                char *d = realloc(b->data, cap);
                if (!d)
                        return -ENOMEM;
                b->data = d;
                b->cap = cap;
        }
        memcpy(b->data + b->len, s, n);
        b->len += n;
        b->data[b->len] = 0;
        return 0;
}

int strbuf_appends(strbuf *b, const char *s) {
        return strbuf_append(b, s, strlen(s));
}

int strbuf_printf(strbuf *b, const char *fmt, ...) {
        va_list ap;
        char small[512];
        int n;

        va_start(ap, fmt);
        n = vsnprintf(small, sizeof small, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -EINVAL;
        if ((size_t)n < sizeof small)
                return strbuf_append(b, small, (size_t)n);
        char *big = malloc((size_t)n + 1);
        if (!big)
                return -ENOMEM;
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        int r = strbuf_append(b, big, (size_t)n);
        free(big);
        return r;
}

void strbuf_consume(strbuf *b, size_t n) {
        if (n >= b->len) {
                b->len = 0;
                if (b->data)
                        b->data[0] = 0;
                /* Give back large buffers once drained. */
                if (b->cap > 64 * 1024) {
                        free(b->data);
                        b->data = NULL;
                        b->cap = 0;
                }
                return;
        }
        memmove(b->data, b->data + n, b->len - n + 1);
        b->len -= n;
}

void strbuf_free(strbuf *b) {
        free(b->data);
        *b = (strbuf){0};
}

static size_t hash_str(const char *s) {
        size_t h = 1469598103934665603ULL;
        for (; *s; s++) {
                h ^= (unsigned char)*s;
                h *= 1099511628211ULL;
        }
        return h;
}

void *strmap_get(const strmap *m, const char *key) {
        if (!m->n_buckets)
                return NULL;
        for (strmap_entry *e = m->buckets[hash_str(key) & (m->n_buckets - 1)]; e; e = e->next)
                if (strcmp(e->key, key) == 0)
                        return e->value;
        return NULL;
}

static int strmap_grow(strmap *m) {
        size_t n = m->n_buckets ? m->n_buckets * 2 : 64;
        strmap_entry **b = calloc(n, sizeof *b);
        if (!b)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_buckets; i++) {
                strmap_entry *e = m->buckets[i], *next;
                for (; e; e = next) {
                        next = e->next;
                        size_t h = hash_str(e->key) & (n - 1);
                        e->next = b[h];
                        b[h] = e;
                }
        }
        free(m->buckets);
        m->buckets = b;
        m->n_buckets = n;
        return 0;
}

int strmap_put(strmap *m, const char *key, void *value) {
        if (m->n + 1 > m->n_buckets && strmap_grow(m) < 0)
                return -ENOMEM;
        size_t h = hash_str(key) & (m->n_buckets - 1);
        for (strmap_entry *e = m->buckets[h]; e; e = e->next)
                if (strcmp(e->key, key) == 0) {
                        e->value = value;
                        return 0;
                }
        strmap_entry *e = malloc(sizeof *e);
        if (!e)
                return -ENOMEM;
        e->key = strdup(key);
        if (!e->key) {
                free(e);
                return -ENOMEM;
        }
        e->value = value;
        e->next = m->buckets[h];
        m->buckets[h] = e;
        m->n++;
        return 0;
}

void *strmap_remove(strmap *m, const char *key) {
        if (!m->n_buckets)
                return NULL;
        strmap_entry **pp = &m->buckets[hash_str(key) & (m->n_buckets - 1)];
        for (; *pp; pp = &(*pp)->next)
                if (strcmp((*pp)->key, key) == 0) {
                        strmap_entry *e = *pp;
                        void *v = e->value;
                        *pp = e->next;
                        free(e->key);
                        free(e);
                        m->n--;
                        return v;
                }
        return NULL;
}

void strmap_clear(strmap *m, void (*free_value)(void *)) {
        for (size_t i = 0; i < m->n_buckets; i++) {
                strmap_entry *e = m->buckets[i], *next;
                for (; e; e = next) {
                        next = e->next;
                        if (free_value)
                                free_value(e->value);
                        free(e->key);
                        free(e);
                }
        }
        free(m->buckets);
        *m = (strmap){0};
}

strmap_entry *strmap_next(const strmap *m, size_t *bucket, strmap_entry *e) {
        if (e && e->next)
                return e->next;
        for (size_t i = e ? *bucket + 1 : *bucket; i < m->n_buckets; i++)
                if (m->buckets[i]) {
                        *bucket = i;
                        return m->buckets[i];
                }
        *bucket = m->n_buckets;
        return NULL;
}

cJSON *json_path(const cJSON *obj, const char *path) {
        char part[256];
        const cJSON *cur = obj;

        while (cur && *path) {
                const char *dot = strchr(path, '.');
                size_t n = dot ? (size_t)(dot - path) : strlen(path);
                if (n >= sizeof part)
                        return NULL;
                memcpy(part, path, n);
                part[n] = 0;
                if (!cJSON_IsObject(cur))
                        return NULL;
                cur = cJSON_GetObjectItemCaseSensitive(cur, part);
                path += n + (dot ? 1 : 0);
        }
        return (cJSON *)cur;
}

const char *json_str(const cJSON *obj, const char *path) {
        const cJSON *v = json_path(obj, path);
        return cJSON_IsString(v) ? v->valuestring : NULL;
}

cJSON *json_ensure_object(cJSON *parent, const char *name) {
        cJSON *o = cJSON_GetObjectItemCaseSensitive(parent, name);
        if (cJSON_IsObject(o))
                return o;
        if (o)
                cJSON_DeleteItemFromObjectCaseSensitive(parent, name);
        return cJSON_AddObjectToObject(parent, name);
}

void json_set_str(cJSON *obj, const char *name, const char *value) {
        cJSON *v = cJSON_CreateString(value);
        if (!v)
                return;
        if (cJSON_GetObjectItemCaseSensitive(obj, name))
                cJSON_ReplaceItemInObjectCaseSensitive(obj, name, v);
        else
                cJSON_AddItemToObject(obj, name, v);
}

char *base64_encode(const void *data, size_t len) {
        char *out = malloc(4 * ((len + 2) / 3) + 1);
        if (!out)
                return NULL;
        EVP_EncodeBlock((unsigned char *)out, data, (int)len);
        return out;
}

char *base64_decode(const char *s, size_t *ret_len) {
        size_t n = strlen(s);
        if (n % 4 != 0)
                return NULL;
        unsigned char *out = malloc(n / 4 * 3 + 1);
        if (!out)
                return NULL;
        int r = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
        if (r < 0) {
                free(out);
                return NULL;
        }
        /* EVP_DecodeBlock counts the padding as data bytes. */
        if (n >= 1 && s[n - 1] == '=')
                r--;
        if (n >= 2 && s[n - 2] == '=')
                r--;
        out[r] = 0;
        if (ret_len)
                *ret_len = (size_t)r;
        return (char *)out;
}
