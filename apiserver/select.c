/* SPDX-License-Identifier: Apache-2.0 */
/* Label and field selectors, with the syntax of k8s.io/apimachinery. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver.h"

enum op { OP_EQ, OP_NE, OP_IN, OP_NOTIN, OP_EXISTS, OP_NOTEXISTS, OP_GT, OP_LT };

typedef struct requirement {
        char *key;
        enum op op;
        char **values;
        size_t n_values;
} requirement;

struct selector {
        requirement *reqs;
        size_t n;
};

selector *selector_free(selector *sel) {
        if (!sel)
                return NULL;
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

static bool is_key_char(char c) {
        return isalnum((unsigned char)c) || c == '.' || c == '_' || c == '-' || c == '/';
}

static bool is_value_char(char c) {
        return isalnum((unsigned char)c) || c == '.' || c == '_' || c == '-';
}

static const char *skip_ws(const char *p) {
        while (*p == ' ' || *p == '\t')
                p++;
        return p;
}

static int fail(char *err, size_t errlen, const char *what, const char *s) {
        snprintf(err, errlen, "unable to parse requirement: %s in %s", what, s);
        return -EINVAL;
}

int selector_parse_labels(const char *s, selector **ret, char *err, size_t errlen) {
        selector *sel = calloc(1, sizeof *sel);
        const char *p = s ? s : "";
        int r;

        if (!sel)
                return -ENOMEM;
        p = skip_ws(p);
        while (*p) {
                requirement *q = add_req(sel);
                bool negate = false;
                if (!q) {
                        r = -ENOMEM;
                        goto out;
                }
                if (*p == '!') {
                        negate = true;
                        p = skip_ws(p + 1);
                }
                const char *k = p;
                while (is_key_char(*p))
                        p++;
                if (p == k) {
                        r = fail(err, errlen, "missing key", s);
                        goto out;
                }
                q->key = strndup(k, (size_t)(p - k));
                if (!q->key) {
                        r = -ENOMEM;
                        goto out;
                }
                p = skip_ws(p);
                if (negate) {
                        q->op = OP_NOTEXISTS;
                } else if (*p == ',' || *p == 0) {
                        q->op = OP_EXISTS;
                } else if (p[0] == '=' || p[0] == '!' || p[0] == '>' || p[0] == '<') {
                        if (p[0] == '=' && p[1] == '=') {
                                q->op = OP_EQ;
                                p += 2;
                        } else if (p[0] == '=') {
                                q->op = OP_EQ;
                                p += 1;
                        } else if (p[0] == '!' && p[1] == '=') {
                                q->op = OP_NE;
                                p += 2;
                        } else if (p[0] == '>' || p[0] == '<') {
                                q->op = p[0] == '>' ? OP_GT : OP_LT;
                                p += 1;
                        } else {
                                r = fail(err, errlen, "invalid operator", s);
                                goto out;
                        }
                        p = skip_ws(p);
                        const char *v = p;
                        while (is_value_char(*p))
                                p++;
                        if ((q->op == OP_GT || q->op == OP_LT) && p == v) {
                                r = fail(err, errlen, "missing value", s);
                                goto out;
                        }
                        if ((r = add_value(q, v, (size_t)(p - v))) < 0)
                                goto out;
                } else if ((strncmp(p, "in", 2) == 0 && (p[2] == ' ' || p[2] == '(')) ||
                           (strncmp(p, "notin", 5) == 0 && (p[5] == ' ' || p[5] == '('))) {
                        q->op = p[0] == 'i' ? OP_IN : OP_NOTIN;
                        p = skip_ws(p + (q->op == OP_IN ? 2 : 5));
                        if (*p != '(') {
                                r = fail(err, errlen, "expected '('", s);
                                goto out;
                        }
                        p++;
                        for (;;) {
                                p = skip_ws(p);
                                const char *v = p;
                                while (is_value_char(*p))
                                        p++;
                                if ((r = add_value(q, v, (size_t)(p - v))) < 0)
                                        goto out;
                                p = skip_ws(p);
                                if (*p == ',') {
                                        p++;
                                        continue;
                                }
                                if (*p == ')') {
                                        p++;
                                        break;
                                }
                                r = fail(err, errlen, "expected ',' or ')'", s);
                                goto out;
                        }
                } else {
                        r = fail(err, errlen, "invalid operator", s);
                        goto out;
                }
                p = skip_ws(p);
                if (*p == ',') {
                        p = skip_ws(p + 1);
                        if (!*p) {
                                r = fail(err, errlen, "trailing ','", s);
                                goto out;
                        }
                } else if (*p) {
                        r = fail(err, errlen, "unexpected character", s);
                        goto out;
                }
        }
        *ret = sel;
        return 0;
out:
        selector_free(sel);
        return r;
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
        switch (q->op) {
        case OP_EQ:
        case OP_IN:
                return v && in_values(q, v);
        case OP_NE:
        case OP_NOTIN:
                return !v || !in_values(q, v);
        case OP_EXISTS:
                return v != NULL;
        case OP_NOTEXISTS:
                return v == NULL;
        case OP_GT:
        case OP_LT: {
                char *end1, *end2;
                if (!v)
                        return false;
                long long a = strtoll(v, &end1, 10), b = strtoll(q->values[0], &end2, 10);
                if (*end1 || *end2)
                        return false;
                return q->op == OP_GT ? a > b : a < b;
        }
        }
        return false;
}

bool selector_match_labels(const selector *sel, const cJSON *labels) {
        if (!sel)
                return true;
        for (size_t i = 0; i < sel->n; i++) {
                const cJSON *v =
                        cJSON_IsObject(labels)
                                ? cJSON_GetObjectItemCaseSensitive(labels, sel->reqs[i].key)
                                : NULL;
                if (!match_one(&sel->reqs[i], cJSON_IsString(v) ? v->valuestring : NULL))
                        return false;
        }
        return true;
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
        return !sel || sel->n == 0;
}
