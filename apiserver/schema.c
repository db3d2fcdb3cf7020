/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Custom resources checked against their CRD's structural schema (an
 * OpenAPI v3 subset), as apiextensions-apiserver does: unknown fields are
 * pruned, `default`s applied, then every value is validated.  Errors are
 * field errors shaped like the real server's (kube-openapi's messages
 * wrapped in apimachinery's field.Error), collected as Status causes.
 *
 * Schemas come from cluster users: a CRD's schema is checked when the CRD
 * is written (nesting depth, size, types, patterns that compile) so that
 * validating an object later is bounded by the schema's size.
 */
#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver.h"
#include "core/pattern.h"

#define SCHEMA_MAX_DEPTH 48
#define SCHEMA_MAX_NODES 20000
#define SCHEMA_MAX_PATTERN 2048
#define SCHEMA_MAX_CAUSES 64
#define PATH_MAX_LEN 1024

/* ---- patterns ---- */

#define PATTERN_MAX_REPEAT 1000
#define PATTERN_MAX_COST 100000

/* Go's regexp refuses repeat counts whose product along nesting exceeds
 * 1000 ("invalid repeat count"), where glibc's regcomp would build whatever
 * (a{1000}){1000} asks for.  The cost (atoms once bounded repetitions are
 * unrolled) bounds what regcomp builds otherwise. */
static int pattern_cost(const char *p, char *err, size_t errlen) {
        double sums[64] = {0}, prods[64] = {0}, last = 0, last_prod = 1;
        size_t depth = 0;
        bool repeated = false, lazy = false; /* the last atom had a repetition (and a ?) */
        size_t rep_start = 0;                /* where that repetition began */
        for (size_t i = 0; p[i]; i++) {
                char c = p[i];
                bool is_repeat = c == '*' || c == '+' || c == '?' ||
                                 (c == '{' && p[i + 1] >= '0' && p[i + 1] <= '9');
                if (is_repeat && repeated) {
                        /* One ? after a repetition makes it non-greedy; more
                         * is a nested repetition, which Go refuses (and
                         * glibc would unroll exponentially). */
                        if (c == '?' && !lazy) {
                                lazy = true;
                                continue;
                        }
                        size_t end = c == '{' ? i + strcspn(p + i, "}") + 1 : i + 1;
                        if (end > strlen(p))
                                end = strlen(p);
                        snprintf(err, errlen, "invalid nested repetition operator: `%.*s`",
                                 (int)(end - rep_start), p + rep_start);
                        return -EINVAL;
                }
                if (!is_repeat)
                        repeated = lazy = false;
                if (c == '\\' && p[i + 1]) {
                        i++;
                        last = 1;
                        last_prod = 1;
                        sums[depth] += 1;
                } else if (c == '[') {
                        size_t j = i + 1;
                        if (p[j] == '^')
                                j++;
                        if (p[j] == ']')
                                j++;
                        while (p[j] && p[j] != ']')
                                j += p[j] == '\\' && p[j + 1] ? 2 : 1;
                        i = p[j] ? j : j - 1;
                        last = 1;
                        last_prod = 1;
                        sums[depth] += 1;
                } else if (c == '(') {
                        if (depth + 1 >= KOC_ELEMENTSOF(sums)) {
                                snprintf(err, errlen, "expression nests too deeply");
                                return -E2BIG;
                        }
                        depth++;
                        sums[depth] = 0;
                        prods[depth] = 1;
                } else if (c == ')' && depth > 0) {
                        last = sums[depth] > 0 ? sums[depth] : 1;
                        last_prod = prods[depth];
                        sums[--depth] += last;
                        if (last_prod > prods[depth])
                                prods[depth] = last_prod;
                } else if (c == '{') {
                        char *end;
                        unsigned long lo = strtoul(p + i + 1, &end, 10), hi = lo;
                        bool unbounded = false;
                        if (end == p + i + 1) {
                                last = 1;
                                last_prod = 1;
                                sums[depth] += 1;
                                continue;
                        }
                        if (*end == ',') {
                                char *e2;
                                hi = strtoul(end + 1, &e2, 10);
                                unbounded = e2 == end + 1;
                                end = e2;
                        }
                        if (*end != '}')
                                continue;
                        double k = unbounded || lo > hi ? (double)lo : (double)hi;
                        if (lo > PATTERN_MAX_REPEAT || hi > PATTERN_MAX_REPEAT ||
                            k * last_prod > PATTERN_MAX_REPEAT) {
                                snprintf(err, errlen, "invalid repeat count: `%.*s`",
                                         (int)(end - (p + i) + 1), p + i);
                                return -EINVAL;
                        }
                        last_prod *= k > 1 ? k : 1;
                        if (last_prod > prods[depth])
                                prods[depth] = last_prod;
                        sums[depth] += last * (k > 1 ? k - 1 : 0);
                        rep_start = i;
                        i = (size_t)(end - p);
                        repeated = true;
                } else if (c == '*' || c == '+' || c == '?') {
                        rep_start = i;
                        repeated = true;
                } else if (c != '|' && c != '^' && c != '$') {
                        last = 1;
                        last_prod = 1;
                        sums[depth] += 1;
                }
                if (sums[depth] > PATTERN_MAX_COST) {
                        snprintf(err, errlen, "expression too large");
                        return -E2BIG;
                }
        }
        return 0;
}

/* Patterns are RE2 (Go's regexp) on the real server; here POSIX extended
 * expressions, translated by core/pattern.c (as the types koc-gen-types
 * writes do), after the bounds Go's parser would enforce. */
static int pattern_compile(const char *pattern, regex_t *ret, char *err, size_t errlen) {
        size_t n = strlen(pattern);
        if (n > SCHEMA_MAX_PATTERN) {
                snprintf(err, errlen, "pattern longer than %d bytes", SCHEMA_MAX_PATTERN);
                return -E2BIG;
        }
        int r = pattern_cost(pattern, err, errlen);
        if (r < 0)
                return r;
        _koc_cleanup_free_ char *posix = NULL;
        r = koc__pattern_to_posix(pattern, &posix, err, errlen);
        if (r < 0)
                return r;
        int rc = regcomp(ret, posix, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
                regerror(rc, ret, err, errlen);
                return -EINVAL;
        }
        return 0;
}

/* ---- checking a CRD's schema ---- */

static bool valid_type(const char *t) {
        static const char *const types[] = {"object", "array", "string", "integer",
                                            "number", "boolean"};
        for (size_t i = 0; i < KOC_ELEMENTSOF(types); i++)
                if (strcmp(t, types[i]) == 0)
                        return true;
        return false;
}

typedef struct check_ctx {
        size_t nodes;
        char *field, *msg;
        size_t fieldlen, msglen;
} check_ctx;

static void check_error(check_ctx *ctx, const char *path, const char *suffix, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void check_error(check_ctx *ctx, const char *path, const char *suffix, const char *fmt,
                        ...) {
        va_list ap;
        snprintf(ctx->field, ctx->fieldlen, "%s%s", path, suffix);
        va_start(ap, fmt);
        vsnprintf(ctx->msg, ctx->msglen, fmt, ap);
        va_end(ap);
}

static int check_node(check_ctx *ctx, const cJSON *s, char *path, size_t plen, unsigned depth);

static int check_child(check_ctx *ctx, const cJSON *s, char *path, size_t plen, unsigned depth,
                       const char *fmt, const char *name) {
        size_t n = plen;
        int w = snprintf(path + n, PATH_MAX_LEN - n, fmt, name);
        if (w < 0 || (size_t)w >= PATH_MAX_LEN - n)
                path[PATH_MAX_LEN - 1] = 0;
        int r = check_node(ctx, s, path, strlen(path), depth + 1);
        path[n] = 0;
        return r;
}

static int check_node(check_ctx *ctx, const cJSON *s, char *path, size_t plen, unsigned depth) {
        if (!cJSON_IsObject(s)) {
                check_error(ctx, path, "", "Invalid value: must be a schema object");
                return -EINVAL;
        }
        if (depth > SCHEMA_MAX_DEPTH) {
                check_error(ctx, path, "",
                            "Forbidden: the schema is nested more than %d levels deep",
                         SCHEMA_MAX_DEPTH);
                return -E2BIG;
        }
        if (++ctx->nodes > SCHEMA_MAX_NODES) {
                check_error(ctx, path, "", "Forbidden: the schema has more than %d nodes",
                         SCHEMA_MAX_NODES);
                return -E2BIG;
        }
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(s, "type");
        if (t && !(cJSON_IsString(t) && (!*t->valuestring || valid_type(t->valuestring)))) {
                check_error(ctx, path, ".type",
                            "Unsupported value: \"%.200s\": supported values: \"array\", "
                            "\"boolean\", \"integer\", \"number\", \"object\", \"string\"",
                            cJSON_IsString(t) ? t->valuestring : "(not a string)");
                return -EINVAL;
        }
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(s, "pattern");
        if (p) {
                regex_t re;
                char why[256];
                if (!cJSON_IsString(p)) {
                        check_error(ctx, path, ".pattern", "Invalid value: must be a string");
                        return -EINVAL;
                }
                int r = pattern_compile(p->valuestring, &re, why, sizeof why);
                if (r < 0) {
                        check_error(ctx, path, ".pattern",
                                    "Invalid value: \"%.200s\": must be a valid regular "
                                    "expression, but isn't: error parsing regexp: %s",
                                    p->valuestring, why);
                        return r;
                }
                regfree(&re);
        }
        static const char *const numeric[] = {"minimum", "maximum", "maxLength", "minLength",
                                              "maxItems", "minItems", "maxProperties",
                                              "minProperties", "multipleOf"};
        for (size_t i = 0; i < KOC_ELEMENTSOF(numeric); i++) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, numeric[i]);
                if (v && !cJSON_IsNumber(v)) {
                        char suffix[32];
                        snprintf(suffix, sizeof suffix, ".%s", numeric[i]);
                        check_error(ctx, path, suffix, "Invalid value: must be a number");
                        return -EINVAL;
                }
        }
        const cJSON *en = cJSON_GetObjectItemCaseSensitive(s, "enum");
        if (en && !cJSON_IsArray(en)) {
                check_error(ctx, path, ".enum", "Invalid value: must be a list");
                return -EINVAL;
        }
        const cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "required");
        if (req && !cJSON_IsArray(req)) {
                check_error(ctx, path, ".required", "Invalid value: must be a list");
                return -EINVAL;
        }
        const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties"), *it;
        if (props && !cJSON_IsObject(props)) {
                check_error(ctx, path, ".properties", "Invalid value: must be an object");
                return -EINVAL;
        }
        int r;
        cJSON_ArrayForEach(it, props) {
                if ((r = check_child(ctx, it, path, plen, depth, ".properties[%s]", it->string)) <
                    0)
                        return r;
        }
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
        if (items && (r = check_child(ctx, items, path, plen, depth, ".items%s", "")) < 0)
                return r;
        const cJSON *ap = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
        if (cJSON_IsObject(ap) &&
            (r = check_child(ctx, ap, path, plen, depth, ".additionalProperties%s", "")) < 0)
                return r;
        static const char *const lists[] = {"allOf", "anyOf", "oneOf"};
        for (size_t i = 0; i < KOC_ELEMENTSOF(lists); i++) {
                const cJSON *l = cJSON_GetObjectItemCaseSensitive(s, lists[i]);
                cJSON_ArrayForEach(it, l) {
                        if ((r = check_child(ctx, it, path, plen, depth, ".%s[]", lists[i])) < 0)
                                return r;
                }
        }
        const cJSON *no = cJSON_GetObjectItemCaseSensitive(s, "not");
        if (no && (r = check_child(ctx, no, path, plen, depth, ".not%s", "")) < 0)
                return r;
        return 0;
}

int schema_check_crd(const cJSON *crd, char *field, size_t fieldlen, char *msg, size_t msglen) {
        const cJSON *versions = json_path(crd, "spec.versions"), *v;
        char path[PATH_MAX_LEN];
        int i = 0, n = cJSON_GetArraySize(versions);

        cJSON_ArrayForEach(v, versions) {
                /* The scale subresource's paths: where /scale writes. */
                static const char *const scale[][3] = {
                        {"specReplicasPath", ".spec.", "should be a json path under .spec"},
                        {"statusReplicasPath", ".status.", "should be a json path under .status"},
                        {"labelSelectorPath", NULL,
                         "should be a json path under either .spec or .status"},
                };
                for (size_t k = 0; k < KOC_ELEMENTSOF(scale); k++) {
                        const cJSON *sp = json_path(json_path(v, "subresources.scale"), scale[k][0]);
                        if (!sp)
                                continue;
                        const char *val = cJSON_IsString(sp) ? sp->valuestring : "";
                        bool ok = scale[k][1] ? strncmp(val, scale[k][1], strlen(scale[k][1])) == 0
                                              : strncmp(val, ".spec.", 6) == 0 ||
                                                        strncmp(val, ".status.", 8) == 0;
                        if (ok && strlen(val) < 256 && !strstr(val, ".."))
                                continue;
                        if (n == 1)
                                snprintf(field, fieldlen, "spec.subresources.scale.%s",
                                         scale[k][0]);
                        else
                                snprintf(field, fieldlen,
                                         "spec.versions[%d].subresources.scale.%s", i,
                                         scale[k][0]);
                        snprintf(msg, msglen, "Invalid value: \"%.200s\": %s", val, scale[k][2]);
                        return -EINVAL;
                }
                const cJSON *s = json_path(v, "schema.openAPIV3Schema");
                if (s) {
                        check_ctx ctx = {.field = field, .fieldlen = fieldlen, .msg = msg,
                                         .msglen = msglen};
                        /* The real server names a single version's schema by
                         * its internal place, spec.validation. */
                        if (n == 1)
                                snprintf(path, sizeof path, "spec.validation.openAPIV3Schema");
                        else
                                snprintf(path, sizeof path,
                                         "spec.versions[%d].schema.openAPIV3Schema", i);
                        int r = check_node(&ctx, s, path, strlen(path), 0);
                        if (r < 0)
                                return r;
                }
                i++;
        }
        return 0;
}

const cJSON *crd_version(const cJSON *crd, const char *version) {
        const cJSON *v;
        cJSON_ArrayForEach(v, json_path(crd, "spec.versions")) {
                const char *name = json_str(v, "name");
                if (name && strcmp(name, version) == 0)
                        return v;
        }
        return NULL;
}

const cJSON *crd_version_schema(const cJSON *crd, const char *version) {
        return json_path(crd_version(crd, version), "schema.openAPIV3Schema");
}

/* ---- validating objects ---- */

/* The compiled patterns, keyed by their text: the CRD's write compiled each
 * already, and every write of a custom resource would compile them again
 * for each string value.  A bounded set, replaced round-robin; the server
 * runs on one thread. */
#define PATTERN_CACHE_SIZE 64

typedef struct cached_pattern {
        char *text;
        regex_t re;
} cached_pattern;

static cached_pattern pattern_cache[PATTERN_CACHE_SIZE];
static size_t pattern_cache_next;

/* The compiled pattern, or NULL when it does not compile (or memory is
 * short); the cache owns it. */
static const regex_t *pattern_get(const char *pattern) {
        for (size_t i = 0; i < PATTERN_CACHE_SIZE; i++)
                if (pattern_cache[i].text && strcmp(pattern_cache[i].text, pattern) == 0)
                        return &pattern_cache[i].re;
        char why[128];
        regex_t re;
        char *text = strdup(pattern);
        if (!text || pattern_compile(pattern, &re, why, sizeof why) < 0) {
                free(text);
                return NULL;
        }
        cached_pattern *slot = &pattern_cache[pattern_cache_next];
        pattern_cache_next = (pattern_cache_next + 1) % PATTERN_CACHE_SIZE;
        if (slot->text) {
                regfree(&slot->re);
                free(slot->text);
        }
        slot->text = text;
        slot->re = re;
        return &slot->re;
}

void schema_done(void) {
        for (size_t i = 0; i < PATTERN_CACHE_SIZE; i++)
                if (pattern_cache[i].text) {
                        regfree(&pattern_cache[i].re);
                        free(pattern_cache[i].text);
                        pattern_cache[i].text = NULL;
                }
        pattern_cache_next = 0;
}

typedef struct vctx {
        cJSON *causes;
        size_t n;
        /* The prefix of paths in kube-openapi's messages that the field path
         * has and the message not (a status write validates from status). */
        size_t msg_skip;
        cJSON *pruned; /* unknown fields removed, for fieldValidation (NULL: not wanted) */
        size_t n_pruned;
} vctx;

/* A path as kube-openapi's messages name it. */
static const char *msg_path(const vctx *ctx, const char *path) {
        size_t n = strlen(path);
        return path + (ctx->msg_skip < n ? ctx->msg_skip : n);
}

/* A number as Go's %v prints a float64 (or an int64 when integral). */
static void format_number(double d, char *buf, size_t size) {
        if (d == floor(d) && fabs(d) < 1e21) {
                snprintf(buf, size, "%.0f", d);
                return;
        }
        for (int prec = 1; prec <= 17; prec++) {
                snprintf(buf, size, "%.*g", prec, d);
                if (strtod(buf, NULL) == d)
                        break;
        }
        /* Go writes exponents with at least two digits and a sign: 1e+30. */
}

static const char *json_type_name(const cJSON *v) {
        if (cJSON_IsNull(v))
                return "null";
        if (cJSON_IsBool(v))
                return "boolean";
        if (cJSON_IsString(v))
                return "string";
        if (cJSON_IsArray(v))
                return "array";
        if (cJSON_IsObject(v))
                return "object";
        if (cJSON_IsNumber(v))
                return v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) < 9.3e18
                               ? "integer"
                               : "number";
        return "unknown";
}

/* A bad value as field.Error prints it: %q for strings, %v for numbers and
 * booleans, JSON for the rest. */
static void format_value(const cJSON *v, char *buf, size_t size) {
        if (cJSON_IsString(v)) {
                char *q = cJSON_PrintUnformatted(v);
                snprintf(buf, size, "%.400s", q ? q : "\"\"");
                cJSON_free(q);
        } else if (cJSON_IsNumber(v))
                format_number(v->valuedouble, buf, size);
        else if (cJSON_IsBool(v))
                snprintf(buf, size, "%s", cJSON_IsTrue(v) ? "true" : "false");
        else if (cJSON_IsNull(v) || !v)
                snprintf(buf, size, "\"null\"");
        else {
                char *j = cJSON_PrintUnformatted(v);
                snprintf(buf, size, "%.400s", j ? j : "");
                cJSON_free(j);
        }
}

static void add_cause(vctx *ctx, const char *field, const char *reason, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void add_cause(vctx *ctx, const char *field, const char *reason, const char *fmt, ...) {
        char msg[1400];
        va_list ap;
        if (ctx->n++ >= SCHEMA_MAX_CAUSES)
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "reason", reason);
        cJSON_AddStringToObject(c, "message", msg);
        cJSON_AddStringToObject(c, "field", field);
        cJSON_AddItemToArray(ctx->causes, c);
}

/* "Invalid value: V: P in body DETAIL" */
static void invalid(vctx *ctx, const char *path, const cJSON *v, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void invalid(vctx *ctx, const char *path, const cJSON *v, const char *fmt, ...) {
        char val[512], detail[600];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
        format_value(v, val, sizeof val);
        add_cause(ctx, path, "FieldValueInvalid", "Invalid value: %s: %s in body %s", val,
                  msg_path(ctx, path), detail);
}

static void type_invalid(vctx *ctx, const char *path, const cJSON *v, const char *want) {
        const char *got = json_type_name(v);
        add_cause(ctx, path, "FieldValueTypeInvalid",
                  "Invalid value: \"%s\": %s in body must be of type %s: \"%s\"", got,
                  msg_path(ctx, path), want, got);
}

static bool type_matches(const char *type, const cJSON *v, bool int_or_string) {
        if (int_or_string)
                return cJSON_IsString(v) ||
                       (cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble));
        if (!type || !*type)
                return true;
        if (strcmp(type, "object") == 0)
                return cJSON_IsObject(v);
        if (strcmp(type, "array") == 0)
                return cJSON_IsArray(v);
        if (strcmp(type, "string") == 0)
                return cJSON_IsString(v);
        if (strcmp(type, "boolean") == 0)
                return cJSON_IsBool(v);
        if (strcmp(type, "number") == 0)
                return cJSON_IsNumber(v);
        if (strcmp(type, "integer") == 0)
                return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) &&
                       isfinite(v->valuedouble);
        return true;
}

static bool flag(const cJSON *s, const char *name) {
        return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, name));
}

static double num(const cJSON *s, const char *name, bool *found) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, name);
        *found = cJSON_IsNumber(v);
        return *found ? v->valuedouble : 0;
}

/* UTF-8 characters, as Go's utf8.RuneCountInString counts maxLength. */
static size_t utf8_len(const char *s) {
        size_t n = 0;
        for (; *s; s++)
                if (((unsigned char)*s & 0xC0) != 0x80)
                        n++;
        return n;
}

static void validate_node(vctx *ctx, const cJSON *s, cJSON *v, char *path, size_t plen,
                          unsigned depth, bool root);

static void child_path(char *path, size_t plen, const char *fmt, const char *name, size_t idx) {
        int w = name ? snprintf(path + plen, PATH_MAX_LEN - plen, fmt, name)
                     : snprintf(path + plen, PATH_MAX_LEN - plen, fmt, idx);
        if (w < 0 || (size_t)w >= PATH_MAX_LEN - plen)
                path[PATH_MAX_LEN - 1] = 0;
}

static void note_pruned(vctx *ctx, const char *path, const char *name) {
        char buf[PATH_MAX_LEN + 64];
        if (!ctx->pruned || ctx->n_pruned >= 32)
                return;
        snprintf(buf, sizeof buf, "%s%s%.200s", msg_path(ctx, path),
                 *msg_path(ctx, path) ? "." : "",
                 name);
        cJSON_AddItemToArray(ctx->pruned, cJSON_CreateString(buf));
        ctx->n_pruned++;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "unknown field \"a\", unknown field \"b\"", sorted as the real server's. */
static char *join_pruned(const cJSON *pruned) {
        const char *v[32];
        size_t n = 0;
        const cJSON *it;
        strbuf b = {0};
        cJSON_ArrayForEach(it, pruned) if (n < KOC_ELEMENTSOF(v) && cJSON_IsString(it)) v[n++] =
                it->valuestring;
        if (n == 0)
                return NULL;
        qsort(v, n, sizeof *v, cmp_str);
        for (size_t i = 0; i < n; i++)
                strbuf_printf(&b, "%sunknown field \"%s\"", i ? ", " : "", v[i]);
        return b.data;
}

/* Pruning and defaulting of one object node. */
static void prune_and_default(vctx *ctx, const cJSON *s, cJSON *v, const char *path, bool root) {
        const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
        bool preserve = flag(s, "x-kubernetes-preserve-unknown-fields");
        bool embedded = flag(s, "x-kubernetes-embedded-resource");
        const cJSON *ap = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");

        for (cJSON *f = v->child, *next; f; f = next) {
                next = f->next;
                bool meta = (root || embedded) && (strcmp(f->string, "apiVersion") == 0 ||
                                                   strcmp(f->string, "kind") == 0 ||
                                                   strcmp(f->string, "metadata") == 0);
                const cJSON *ps = cJSON_GetObjectItemCaseSensitive(props, f->string);
                if (meta)
                        continue;
                if (!ps && !preserve && !ap) {
                        note_pruned(ctx, path, f->string);
                        cJSON_Delete(cJSON_DetachItemViaPointer(v, f));
                        continue;
                }
                /* A null where null is not allowed: the default, or nothing. */
                if (ps && cJSON_IsNull(f) && !flag(ps, "nullable")) {
                        const cJSON *d = cJSON_GetObjectItemCaseSensitive(ps, "default");
                        if (d)
                                cJSON_ReplaceItemViaPointer(v, f, cJSON_Duplicate(d, true));
                        else
                                cJSON_Delete(cJSON_DetachItemViaPointer(v, f));
                }
        }
        const cJSON *ps;
        cJSON_ArrayForEach(ps, props) {
                const cJSON *d = cJSON_GetObjectItemCaseSensitive(ps, "default");
                if (d && !cJSON_GetObjectItemCaseSensitive(v, ps->string))
                        cJSON_AddItemToObject(v, ps->string, cJSON_Duplicate(d, true));
        }
}

static void validate_object(vctx *ctx, const cJSON *s, cJSON *v, char *path, size_t plen,
                            unsigned depth, bool root) {
        const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
        const cJSON *ap = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
        cJSON *it;
        const char *sep = plen ? "." : "";
        char fmt[16];

        snprintf(fmt, sizeof fmt, "%s%%s", sep);
        prune_and_default(ctx, s, v, path, root);
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(s, "required")) {
                if (cJSON_IsString(it) && !cJSON_GetObjectItemCaseSensitive(v, it->valuestring)) {
                        child_path(path, plen, fmt, it->valuestring, 0);
                        add_cause(ctx, path, "FieldValueRequired", "Required value");
                        path[plen] = 0;
                }
        }
        bool found;
        double maxp = num(s, "maxProperties", &found);
        int nprops = cJSON_GetArraySize(v);
        if (found && nprops > maxp)
                add_cause(ctx, path, "FieldValueTooMany",
                          "Too many: %d: must have at most %.0f items",
                          nprops, maxp);
        double minp = num(s, "minProperties", &found);
        if (found && nprops < minp)
                invalid(ctx, path, v, "should have at least %.0f properties", minp);
        cJSON_ArrayForEach(it, v) {
                bool meta = root && (strcmp(it->string, "apiVersion") == 0 ||
                                     strcmp(it->string, "kind") == 0 ||
                                     strcmp(it->string, "metadata") == 0);
                if (meta)
                        continue;
                const cJSON *ps = cJSON_GetObjectItemCaseSensitive(props, it->string);
                if (!ps && cJSON_IsObject(ap))
                        ps = ap;
                if (!ps)
                        continue;
                child_path(path, plen, fmt, it->string, 0);
                validate_node(ctx, ps, it, path, strlen(path), depth + 1, false);
                path[plen] = 0;
        }
}

static void validate_array(vctx *ctx, const cJSON *s, cJSON *v, char *path, size_t plen,
                           unsigned depth) {
        bool found;
        int n = cJSON_GetArraySize(v);
        double max = num(s, "maxItems", &found);
        if (found && n > max)
                add_cause(ctx, path, "FieldValueTooMany",
                          "Too many: %d: must have at most %.0f items",
                          n, max);
        double min = num(s, "minItems", &found);
        if (found && n < min) {
                char val[32];
                snprintf(val, sizeof val, "%d", n);
                add_cause(ctx, path, "FieldValueInvalid",
                          "Invalid value: %s: %s in body should have at least %.0f items", val,
                          msg_path(ctx, path), min);
        }
        if (flag(s, "uniqueItems")) {
                for (cJSON *a = v->child; a; a = a->next)
                        for (cJSON *b = a->next; b; b = b->next)
                                if (cJSON_Compare(a, b, true)) {
                                        invalid(ctx, path, v, "shouldn't contain duplicates");
                                        goto items;
                                }
        }
items:;
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
        if (!cJSON_IsObject(items))
                return;
        size_t i = 0;
        for (cJSON *it = v->child; it; it = it->next, i++) {
                child_path(path, plen, "[%zu]", NULL, i);
                validate_node(ctx, items, it, path, strlen(path), depth + 1, false);
                path[plen] = 0;
        }
}

static void validate_scalar(vctx *ctx, const cJSON *s, const cJSON *v, const char *path) {
        bool found;
        char lim[64];
        /* kube-openapi reports the first failing check of a number
         * (multipleOf, maximum, minimum) and of a string (maxLength,
         * minLength, pattern). */
        if (cJSON_IsNumber(v)) {
                double d = v->valuedouble;
                double mul = num(s, "multipleOf", &found);
                double max, min;
                bool ex;
                if (found && mul > 0 && fmod(d, mul) != 0) {
                        format_number(mul, lim, sizeof lim);
                        invalid(ctx, path, v, "should be a multiple of %s", lim);
                } else if ((max = num(s, "maximum", &found)), (ex = flag(s, "exclusiveMaximum")),
                           found && (ex ? d >= max : d > max)) {
                        format_number(max, lim, sizeof lim);
                        invalid(ctx, path, v, "should be less than %s%s", ex ? "" : "or equal to ",
                                lim);
                } else if ((min = num(s, "minimum", &found)), (ex = flag(s, "exclusiveMinimum")),
                           found && (ex ? d <= min : d < min)) {
                        format_number(min, lim, sizeof lim);
                        invalid(ctx, path, v, "should be greater than %s%s",
                                ex ? "" : "or equal to ", lim);
                }
        }
        if (cJSON_IsString(v)) {
                size_t n_before = ctx->n;
                size_t len = utf8_len(v->valuestring);
                double max = num(s, "maxLength", &found);
                if (found && (double)len > max)
                        add_cause(ctx, path, "FieldValueTooLong",
                                  "Too long: may not be more than %.0f bytes", max);
                double min = found && (double)len > max ? 0 : num(s, "minLength", &found);
                if (found && min > 0 && (double)len < min)
                        invalid(ctx, path, v, "should be at least %.0f chars long", min);
                const char *pattern = json_str(s, "pattern");
                const regex_t *re = ctx->n == n_before && pattern ? pattern_get(pattern) : NULL;
                if (re && regexec(re, v->valuestring, 0, NULL, 0) != 0)
                        invalid(ctx, path, v, "should match '%s'", pattern);
        }
        const cJSON *en = cJSON_GetObjectItemCaseSensitive(s, "enum"), *e;
        if (cJSON_IsArray(en)) {
                cJSON_ArrayForEach(e, en) if (cJSON_Compare(e, v, true)) return;
                strbuf b = {0};
                char val[512];
                cJSON_ArrayForEach(e, en) {
                        format_value(e, val, sizeof val);
                        if (cJSON_IsString(e))
                                strbuf_printf(&b, "%s%s", b.len ? ", " : "", val);
                        else
                                strbuf_printf(&b, "%s\"%s\"", b.len ? ", " : "", val);
                }
                format_value(v, val, sizeof val);
                add_cause(ctx, path, "FieldValueNotSupported",
                          "Unsupported value: %s: supported values: %.600s", val,
                          b.data ? b.data : "");
                strbuf_free(&b);
        }
}

static void validate_node(vctx *ctx, const cJSON *s, cJSON *v, char *path, size_t plen,
                          unsigned depth, bool root) {
        if (depth > SCHEMA_MAX_DEPTH + 1 || !cJSON_IsObject(s))
                return;
        const char *type = json_str(s, "type");
        bool ios = flag(s, "x-kubernetes-int-or-string");
        if (cJSON_IsNull(v)) {
                if (!flag(s, "nullable") && type && *type)
                        type_invalid(ctx, path, v, type);
                return;
        }
        if (!type_matches(type, v, ios)) {
                type_invalid(ctx, path, v, ios ? "integer,string" : type);
                return;
        }
        if (cJSON_IsObject(v))
                validate_object(ctx, s, v, path, plen, depth, root);
        else if (cJSON_IsArray(v))
                validate_array(ctx, s, v, path, plen, depth);
        else
                validate_scalar(ctx, s, v, path);
        const cJSON *sub;
        cJSON_ArrayForEach(sub, cJSON_GetObjectItemCaseSensitive(s, "allOf")) {
                if (cJSON_IsObject(sub) && !cJSON_GetObjectItemCaseSensitive(sub, "properties"))
                        validate_node(ctx, sub, v, path, plen, depth + 1, false);
        }
}

int schema_validate(const cJSON *schema, cJSON *obj, bool status_only, cJSON **ret_causes,
                    char **ret_pruned) {
        char path[PATH_MAX_LEN] = "";
        vctx ctx = {.causes = cJSON_CreateArray(),
                    .pruned = ret_pruned ? cJSON_CreateArray() : NULL};

        if (!ctx.causes || (ret_pruned && !ctx.pruned)) {
                cJSON_Delete(ctx.causes);
                cJSON_Delete(ctx.pruned);
                return -ENOMEM;
        }
        if (status_only) {
                const cJSON *ss = json_path(schema, "properties.status");
                cJSON *st = cJSON_GetObjectItemCaseSensitive(obj, "status");
                if (ss && st) {
                        strcpy(path, "status");
                        ctx.msg_skip = strlen("status.");
                        /* Messages of the status validator name paths from
                         * status ("replicas in body ..."). */
                        validate_node(&ctx, ss, st, path, strlen(path), 1, false);
                }
        } else
                validate_node(&ctx, schema, obj, path, 0, 0, true);
        if (ret_pruned)
                *ret_pruned = join_pruned(ctx.pruned);
        cJSON_Delete(ctx.pruned);
        if (ctx.n == 0) {
                cJSON_Delete(ctx.causes);
                *ret_causes = NULL;
                return 0;
        }
        *ret_causes = ctx.causes;
        return -EINVAL;
}
