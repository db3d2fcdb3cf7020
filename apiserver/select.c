/* SPDX-License-Identifier: Apache-2.0 */
/* Label and field selectors, with the syntax of k8s.io/apimachinery. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver.h"
#include "core/selector.h"

enum op { OP_EQ, OP_NE };

typedef struct requirement {
        char *key;
        enum op op;
        char **values;
        size_t n_values;
} requirement;

struct selector {
        koc_selector *labels; /* a label selector */
        requirement *reqs;    /* a field selector */
        size_t n;
};

selector *selector_free(selector *sel) {
        if (!sel)
                return NULL;
        koc__selector_free(sel->labels);
        for (size_t i = 0; i < sel->n; i++) {
                free(sel->reqs[i].key);
                for (size_t j = 0; j < sel->reqs[i].n_values; j++)
                        free(sel->reqs[i].values[j]);
                free(sel->reqs[i].values);
        }
        free(sel->reqs);
        free(sel);
        return NULL;
}

static requirement *add_req(selector *sel) {
        requirement *r = realloc(sel->reqs, (sel->n + 1) * sizeof *r);
        if (!r)
                return NULL;
        sel->reqs = r;
        r = &sel->reqs[sel->n++];
        *r = (requirement){0};
        return r;
}

static int add_value(requirement *r, const char *s, size_t n) {
        char **v = realloc(r->values, (r->n_values + 1) * sizeof *v);
        if (!v)
                return -ENOMEM;
        r->values = v;
        v[r->n_values] = strndup(s, n);
        if (!v[r->n_values])
                return -ENOMEM;
        r->n_values++;
        return 0;
}

/* Label selectors are read by the library's parser (core/selector.h), so
 * that the server selects exactly what a koc client's cache keeps; field
 * selectors are the server's alone (the library sends them, it never
 * evaluates one), and read here. */
int selector_parse_labels(const char *s, selector **ret, char *err, size_t errlen) {
        selector *sel = calloc(1, sizeof *sel);
        koc_error e = {0};
        if (!sel)
                return -ENOMEM;
        int r = koc__selector_parse(s, &sel->labels, &e);
        if (r < 0) {
                snprintf(err, errlen, "unable to parse requirement: %s",
                         e.message[0] ? e.message : strerror(-r));
                selector_free(sel);
                return r;
        }
        *ret = sel;
        return 0;
}

static const char *json_label(const char *key, void *userdata) {
        const cJSON *v = cJSON_IsObject(userdata)
                                 ? cJSON_GetObjectItemCaseSensitive(userdata, key)
                                 : NULL;
        return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Field selectors: "a.b=x,c!=y" with backslash escapes in values. */
int selector_parse_fields(const char *s, selector **ret, char *err, size_t errlen) {
        selector *sel = calloc(1, sizeof *sel);
        const char *p = s ? s : "";
        int r;

        if (!sel)
                return -ENOMEM;
        while (*p) {
                requirement *q = add_req(sel);
                if (!q) {
                        r = -ENOMEM;
                        goto out;
                }
                const char *k = p;
                while (*p && *p != '=' && *p != '!' && *p != ',')
                        p++;
                if (p == k || !*p || *p == ',') {
                        snprintf(err, errlen, "invalid selector: '%s'; can't understand '%.*s'", s,
                                 (int)(p - k), k);
                        r = -EINVAL;
                        goto out;
                }
                q->key = strndup(k, (size_t)(p - k));
                if (!q->key) {
                        r = -ENOMEM;
                        goto out;
                }
                if (p[0] == '!' && p[1] == '=') {
                        q->op = OP_NE;
                        p += 2;
                } else if (p[0] == '=' && p[1] == '=') {
                        q->op = OP_EQ;
                        p += 2;
                } else if (p[0] == '=') {
                        q->op = OP_EQ;
                        p += 1;
                } else {
                        snprintf(err, errlen, "invalid selector: '%s'", s);
                        r = -EINVAL;
                        goto out;
                }
                strbuf v = {0};
                while (*p && *p != ',') {
                        if (*p == '\\' && p[1])
                                p++;
                        if (strbuf_append(&v, p, 1) < 0) {
                                strbuf_free(&v);
                                r = -ENOMEM;
                                goto out;
                        }
                        p++;
                }
                r = add_value(q, v.data ? v.data : "", v.len);
                strbuf_free(&v);
                if (r < 0)
                        goto out;
                if (*p == ',')
                        p++;
        }
        *ret = sel;
        return 0;
out:
        selector_free(sel);
        return r;
}

static bool in_values(const requirement *q, const char *v) {
        for (size_t i = 0; i < q->n_values; i++)
                if (strcmp(q->values[i], v) == 0)
                        return true;
        return false;
}

static bool match_one(const requirement *q, const char *v) {
        return q->op == OP_EQ ? in_values(q, v) : !in_values(q, v);
}

bool selector_match_labels(const selector *sel, const cJSON *labels) {
        return !sel || koc__selector_matches(sel->labels, json_label, (void *)labels);
}

bool selector_match_fields(const selector *sel, const cJSON *obj) {
        if (!sel)
                return true;
        for (size_t i = 0; i < sel->n; i++) {
                const cJSON *v = json_path(obj, sel->reqs[i].key);
                char num[64];
                const char *s = NULL;
                if (cJSON_IsString(v))
                        s = v->valuestring;
                else if (cJSON_IsBool(v))
                        s = cJSON_IsTrue(v) ? "true" : "false";
                else if (cJSON_IsNumber(v)) {
                        snprintf(num, sizeof num, "%.15g", v->valuedouble);
                        s = num;
                }
                /* A missing field compares as the empty string, as the real
                 * server's field sets do (metadata.namespace of a
                 * cluster-scoped object is ""). */
                if (!match_one(&sel->reqs[i], s ? s : ""))
                        return false;
        }
        return true;
}

const char *selector_field_name(const selector *sel) {
        if (!sel)
                return NULL;
        for (size_t i = 0; i < sel->n; i++)
                if (sel->reqs[i].op == OP_EQ && strcmp(sel->reqs[i].key, "metadata.name") == 0)
                        return sel->reqs[i].values[0];
        return NULL;
}

const char *selector_unsupported_field(const selector *sel, const char *group, const char *resource,
                                       bool (*supported)(const char *, const char *,
                                                         const char *)) {
        if (!sel)
                return NULL;
        for (size_t i = 0; i < sel->n; i++)
                if (!supported(group, resource, sel->reqs[i].key))
                        return sel->reqs[i].key;
        return NULL;
}

bool selector_empty(const selector *sel) {
        return !sel || (sel->n == 0 && koc__selector_is_empty(sel->labels));
}
