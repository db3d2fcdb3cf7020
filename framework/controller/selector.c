/* SPDX-License-Identifier: Apache-2.0 */
#include "selector.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef enum op { OP_EQ, OP_NE, OP_IN, OP_NOTIN, OP_EXISTS, OP_NOT_EXISTS } op;

typedef struct requirement {
        op op;
        char *key;
        char **values;
        size_t n_values;
} requirement;

struct koc_selector {
        requirement *reqs;
        size_t n;
};

/* Bounds what one selector may make us allocate: the API server refuses
 * far smaller selectors long before these. */
#define MAX_REQUIREMENTS 256
#define MAX_VALUES 256

koc_selector *koc_selector_free(koc_selector *sel) {
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

static void skip_ws(const char **p) {
        while (**p == ' ' || **p == '\t')
                (*p)++;
}

static bool is_name_char(char c) {
        return isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.' || c == '/';
}

/* Reads a key or value token; "" when there is none. */
static char *token(const char **p) {
        skip_ws(p);
        const char *s = *p;
        while (is_name_char(**p))
                (*p)++;
        return strndup(s, (size_t)(*p - s));
}

static int add_value(requirement *r, char *v) {
        if (!v)
                return -ENOMEM;
        if (r->n_values >= MAX_VALUES) {
                free(v);
                return -EINVAL;
        }
        char **nv = realloc(r->values, (r->n_values + 1) * sizeof *nv);
        if (!nv) {
                free(v);
                return -ENOMEM;
        }
        r->values = nv;
        r->values[r->n_values++] = v;
        return 0;
}

static int parse_one(const char **p, requirement *r) {
        skip_ws(p);
        if (**p == '!') {
                (*p)++;
                r->op = OP_NOT_EXISTS;
                r->key = token(p);
                return r->key && *r->key ? 0 : -EINVAL;
        }
        r->key = token(p);
        if (!r->key)
                return -ENOMEM;
        if (!*r->key)
                return -EINVAL;
        skip_ws(p);
        if (**p == ',' || **p == '\0') {
                r->op = OP_EXISTS;
                return 0;
        }
        if (strncmp(*p, "==", 2) == 0 || strncmp(*p, "!=", 2) == 0 || **p == '=') {
                r->op = **p == '!' ? OP_NE : OP_EQ;
                *p += (**p == '=' && (*p)[1] != '=') ? 1 : 2;
                return add_value(r, token(p));
        }
        bool in = strncmp(*p, "in", 2) == 0 && !is_name_char((*p)[2]);
        bool notin = strncmp(*p, "notin", 5) == 0 && !is_name_char((*p)[5]);
        if (!in && !notin)
                return -EINVAL;
        r->op = in ? OP_IN : OP_NOTIN;
        *p += in ? 2 : 5;
        skip_ws(p);
        if (**p != '(')
                return -EINVAL;
        (*p)++;
        for (;;) {
                int e = add_value(r, token(p));
                if (e < 0)
                        return e;
                skip_ws(p);
                if (**p == ')') {
                        (*p)++;
                        return 0;
                }
                if (**p != ',')
                        return -EINVAL;
                (*p)++;
        }
}

int koc_selector_parse(const char *s, koc_selector **ret, koc_error *err) {
        koc_selector *sel = calloc(1, sizeof *sel);
        const char *p = s ? s : "";

        if (!sel)
                return -ENOMEM;
        skip_ws(&p);
        while (*p) {
                if (sel->n >= MAX_REQUIREMENTS) {
                        koc_selector_free(sel);
                        return koc_error_set(err, -EINVAL,
                                             "label selector \"%s\": more than %d requirements", s,
                                             MAX_REQUIREMENTS);
                }
                requirement *nr = realloc(sel->reqs, (sel->n + 1) * sizeof *nr);
                if (!nr) {
                        koc_selector_free(sel);
                        return -ENOMEM;
                }
                sel->reqs = nr;
                sel->reqs[sel->n] = (requirement){0};
                const char *at = p;
                int r = parse_one(&p, &sel->reqs[sel->n++]);
                skip_ws(&p);
                if (r == 0 && *p != ',' && *p != '\0')
                        r = -EINVAL;
                if (r < 0) {
                        koc_selector_free(sel);
                        if (r == -ENOMEM)
                                return r;
                        return koc_error_set(err, -EINVAL,
                                             "label selector \"%s\": cannot parse \"%s\"", s, at);
                }
                if (*p == ',')
                        p++;
        }
        *ret = sel;
        return 0;
}

bool koc_selector_is_empty(const koc_selector *sel) {
        return !sel || sel->n == 0;
}

bool koc_selector_matches(const koc_selector *sel, koc_label_lookup_t lookup, void *userdata) {
        if (!sel)
                return true;
        for (size_t i = 0; i < sel->n; i++) {
                const requirement *r = &sel->reqs[i];
                const char *v = lookup(r->key, userdata);
                bool in = false;
                for (size_t j = 0; v && j < r->n_values; j++)
                        in = in || strcmp(v, r->values[j]) == 0;
                switch (r->op) {
                case OP_EQ:
                case OP_IN:
                        if (!in)
                                return false;
                        break;
                case OP_NE:
                case OP_NOTIN:
                        /* As on the API server, an object without the
                         * label matches "!=" and "notin". */
                        if (in)
                                return false;
                        break;
                case OP_EXISTS:
                        if (!v)
                                return false;
                        break;
                case OP_NOT_EXISTS:
                        if (v)
                                return false;
                        break;
                }
        }
        return true;
}
