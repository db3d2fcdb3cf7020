/* SPDX-License-Identifier: Apache-2.0 */
#include "selector.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef enum op { OP_EQ, OP_NE, OP_IN, OP_NOTIN, OP_EXISTS, OP_NOT_EXISTS, OP_GT, OP_LT } op;

typedef struct requirement {
        op op;
        char *key;
        char **values;
        size_t n_values;
        long long number; /* OP_GT, OP_LT */
} requirement;

struct koc_selector {
        requirement *reqs;
        size_t n;
};

/* Bounds what one selector may make us allocate: the API server refuses
 * far smaller selectors (its request line is bounded) long before these. */
#define MAX_REQUIREMENTS 256
#define MAX_VALUES 256

koc_selector *koc__selector_free(koc_selector *sel) {
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

static bool is_value_char(char c) {
        return isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.';
}

static bool is_key_char(char c) {
        return is_value_char(c) || c == '/';
}

/* Reads a key (or a value) token; "" when there is none. */
static char *token_of(const char **p, bool (*is_char)(char)) {
        skip_ws(p);
        const char *s = *p;
        while (is_char(**p))
                (*p)++;
        return strndup(s, (size_t)(*p - s));
}

static char *key_token(const char **p) {
        return token_of(p, is_key_char);
}

static char *value_token(const char **p) {
        return token_of(p, is_value_char);
}

/* A decimal integer, as strconv.ParseInt(s, 10, 64) reads it (a sign
 * allowed, nothing else around it). */
static bool parse_integer(const char *s, long long *ret) {
        char *end;
        if (!s || !*s || isspace((unsigned char)*s))
                return false;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno != 0 || *end)
                return false;
        *ret = v;
        return true;
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
                r->key = key_token(p);
                return r->key && *r->key ? 0 : -EINVAL;
        }
        r->key = key_token(p);
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
                return add_value(r, value_token(p));
        }
        if (**p == '>' || **p == '<') {
                /* apimachinery: exactly one value, an integer. */
                r->op = **p == '>' ? OP_GT : OP_LT;
                (*p)++;
                int e = add_value(r, value_token(p));
                if (e < 0)
                        return e;
                return parse_integer(r->values[0], &r->number) ? 0 : -EINVAL;
        }
        bool in = strncmp(*p, "in", 2) == 0 && !is_key_char((*p)[2]);
        bool notin = strncmp(*p, "notin", 5) == 0 && !is_key_char((*p)[5]);
        if (!in && !notin)
                return -EINVAL;
        r->op = in ? OP_IN : OP_NOTIN;
        *p += in ? 2 : 5;
        skip_ws(p);
        if (**p != '(')
                return -EINVAL;
        (*p)++;
        for (;;) {
                int e = add_value(r, value_token(p));
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

int koc__selector_parse(const char *s, koc_selector **ret, koc_error *err) {
        koc_selector *sel = calloc(1, sizeof *sel);
        const char *p = s ? s : "";

        if (!sel)
                return -ENOMEM;
        skip_ws(&p);
        while (*p) {
                if (sel->n >= MAX_REQUIREMENTS) {
                        koc__selector_free(sel);
                        return koc_error_set(err, -EINVAL,
                                             "label selector \"%s\": more than %d requirements", s,
                                             MAX_REQUIREMENTS);
                }
                requirement *nr = realloc(sel->reqs, (sel->n + 1) * sizeof *nr);
                if (!nr) {
                        koc__selector_free(sel);
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
                        koc__selector_free(sel);
                        if (r == -ENOMEM)
                                return r;
                        return koc_error_set(err, -EINVAL,
                                             "label selector \"%s\": cannot parse \"%s\"", s, at);
                }
                if (*p == ',') {
                        p++;
                        skip_ws(&p);
                        /* apimachinery: an identifier must follow a ','. */
                        if (!*p) {
                                koc__selector_free(sel);
                                return koc_error_set(err, -EINVAL,
                                                     "label selector \"%s\": nothing after the last ','",
                                                     s);
                        }
                }
        }
        *ret = sel;
        return 0;
}

bool koc__selector_is_empty(const koc_selector *sel) {
        return !sel || sel->n == 0;
}

bool koc__selector_matches(const koc_selector *sel, koc_label_lookup_t lookup, void *userdata) {
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
                case OP_GT:
                case OP_LT: {
                        long long n;
                        if (!parse_integer(v, &n) ||
                            !(r->op == OP_GT ? n > r->number : n < r->number))
                                return false;
                        break;
                }
                }
        }
        return true;
}

/* "a=b" and "a in (b)" select the same objects, as do "a!=b" and
 * "a notin (b)". */
static op canonical_op(const requirement *r) {
        if (r->op == OP_EQ)
                return OP_IN;
        if (r->op == OP_NE)
                return OP_NOTIN;
        return r->op;
}

static bool same_requirement(const requirement *a, const requirement *b) {
        if (canonical_op(a) != canonical_op(b) || strcmp(a->key, b->key) != 0 ||
            a->number != b->number || a->n_values != b->n_values)
                return false;
        for (size_t i = 0; i < a->n_values; i++) {
                bool found = false;
                for (size_t j = 0; !found && j < b->n_values; j++)
                        found = strcmp(a->values[i], b->values[j]) == 0;
                if (!found)
                        return false;
        }
        return true;
}

bool koc__selector_includes(const koc_selector *sel, const koc_selector *part) {
        if (koc__selector_is_empty(part))
                return true;
        if (!sel)
                return false;
        for (size_t i = 0; i < part->n; i++) {
                bool found = false;
                for (size_t j = 0; !found && j < sel->n; j++)
                        found = same_requirement(&part->reqs[i], &sel->reqs[j]);
                if (!found)
                        return false;
        }
        return true;
}
