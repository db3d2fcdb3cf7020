/* koc-gen-types: turns an OpenAPI v3 schema (a CRD version's
 * openAPIV3Schema, or components.schemas with $ref) into the type model. */
#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "core/pattern.h"
#include "model.h"

#define KG_MAX_DEPTH 64

static bool name_taken(struct kg_gen *g, const char *n) {
        for (size_t i = 0; i < g->n_names; i++)
                if (!strcmp(g->names[i], n))
                        return true;
        return false;
}

static void name_add(struct kg_gen *g, char *n) {
        g->names = realloc(g->names, (g->n_names + 1) * sizeof *g->names);
        if (!g->names)
                kg_xmalloc(SIZE_MAX); /* exits */
        g->names[g->n_names++] = n;
}

static const char *const derived[] = {"", "_parse", "_to_json", "_validate", "_free", "_init", "_entry", NULL};

static bool stem_free(struct kg_gen *g, const char *stem) {
        for (size_t d = 0; derived[d]; d++) {
                char *n = kg_xprintf("%s%s", stem, derived[d]);
                bool t = name_taken(g, n);
                free(n);
                if (t)
                        return false;
        }
        return true;
}

/* A global C name derived from base (a type, with its functions, or an enum
 * constant): base itself, or base_2, base_3, ... when taken. */
char *kg_unique_name(struct kg_gen *g, const char *base) {
        char *n = kg_xstrdup(base);
        for (unsigned i = 2; !stem_free(g, n); i++) {
                free(n);
                n = kg_xprintf("%s_%u", base, i);
        }
        for (size_t d = 0; derived[d]; d++)
                name_add(g, kg_xprintf("%s%s", n, derived[d]));
        return n;
}

static void add_type(struct kg_gen *g, struct kg_type *t) {
        if (g->n_types == g->cap_types) {
                g->cap_types = g->cap_types ? g->cap_types * 2 : 64;
                g->types = realloc(g->types, g->cap_types * sizeof *g->types);
                if (!g->types)
                        kg_xmalloc(SIZE_MAX);
        }
        g->types[g->n_types++] = t;
}

static struct kg_type *new_type(enum kg_kind k) {
        struct kg_type *t = kg_xcalloc(1, sizeof *t);
        t->kind = k;
        t->min_len = t->max_len = t->min_items = t->max_items = t->min_props = t->max_props = -1;
        return t;
}

static bool opaque(struct kg_gen *g, const char *what) {
        for (size_t i = 0; i < g->n_opaque; i++)
                if (!strcmp(g->opaque[i], what))
                        return true;
        return false;
}

/* A count (minLength, maxItems, ...): negative, non-finite or absurd values
 * are no bound at all rather than undefined conversions. */
static long long num_or(const cJSON *s, const char *key, long long dflt) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, key);
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < 9e15))
                return dflt;
        return (long long)v->valuedouble;
}

static bool finite_number(const cJSON *v) {
        return cJSON_IsNumber(v) && isfinite(v->valuedouble);
}

static bool is_true(const cJSON *s, const char *key) {
        return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, key));
}

static const char *str_of(const cJSON *s, const char *key) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, key);
        return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int read_checks(struct kg_gen *g, struct kg_type *t, const cJSON *s, const char *path) {
        const cJSON *v;
        if (finite_number(v = cJSON_GetObjectItemCaseSensitive(s, "minimum"))) {
                t->has_min = true;
                t->min = v->valuedouble;
                t->excl_min = is_true(s, "exclusiveMinimum");
        }
        if (finite_number(v = cJSON_GetObjectItemCaseSensitive(s, "maximum"))) {
                t->has_max = true;
                t->max = v->valuedouble;
                t->excl_max = is_true(s, "exclusiveMaximum");
        }
        t->min_len = num_or(s, "minLength", -1);
        t->max_len = num_or(s, "maxLength", -1);
        t->min_items = num_or(s, "minItems", -1);
        t->max_items = num_or(s, "maxItems", -1);
        t->min_props = num_or(s, "minProperties", -1);
        t->max_props = num_or(s, "maxProperties", -1);
        const char *f = str_of(s, "format");
        if (f && (!strcmp(f, "date-time") || !strcmp(f, "byte") || !strcmp(f, "date")))
                t->format = kg_xstrdup(f);
        const char *p = str_of(s, "pattern");
        if (p) {
                t->pattern_src = kg_xstrdup(p);
                char why[160] = "";
                regex_t re;
                int r = koc__pattern_to_posix(p, &t->pattern, why, sizeof why);
                if (r == -ENOMEM) {
                        fprintf(stderr, "koc-gen-types: out of memory\n");
                        exit(1);
                }
                if (r == 0 && regcomp(&re, t->pattern, REG_EXTENDED | REG_NOSUB) != 0)
                        r = -EINVAL;
                else if (r == 0)
                        regfree(&re);
                if (r < 0) {
                        g->error = kg_xprintf("%s: pattern %s is not supported (RE2 as POSIX extended "
                                              "regular expressions%s%s)",
                                              path, p, *why ? ": " : "", why);
                        return -1;
                }
        }
        return 0;
}

static char *join_path(const char *path, const char *seg) {
        return *path ? kg_xprintf("%s.%s", path, seg) : kg_xstrdup(seg);
}

static struct kg_type *resolve_object(struct kg_gen *g, const cJSON *s, const cJSON *props, const char *cname,
                                      const char *path, int depth) {
        struct kg_type *t = new_type(KG_OBJECT);
        t->cname = kg_unique_name(g, cname);
        size_t n = (size_t)cJSON_GetArraySize(props);
        t->fields = kg_xcalloc(n, sizeof *t->fields);
        /* Member names of this struct, with has_ and _len companions. */
        char **used = kg_xcalloc(n * 3 + 2, sizeof *used);
        size_t n_used = 0;
        const cJSON *p;
        cJSON_ArrayForEach(p, props) {
                /* A key the document repeats is one property (the first). */
                bool seen = false;
                for (size_t i = 0; i < t->n_fields && !seen; i++)
                        seen = !strcmp(t->fields[i].json, p->string);
                if (seen)
                        continue;
                char *base = kg_snake(p->string);
                if (kg_is_reserved(base)) {
                        char *b2 = kg_xprintf("%s_", base);
                        free(base);
                        base = b2;
                }
                char *c = kg_xstrdup(base);
                for (unsigned i = 2;; i++) {
                        char *has = kg_xprintf("has_%s", c), *len = kg_xprintf("%s_len", c);
                        bool clash = false;
                        for (size_t u = 0; u < n_used; u++)
                                if (!strcmp(used[u], c) || !strcmp(used[u], has) || !strcmp(used[u], len))
                                        clash = true;
                        if (!clash) {
                                struct kg_field *f = &t->fields[t->n_fields++];
                                f->json = kg_xstrdup(p->string);
                                f->c = c;
                                f->has = has;
                                f->len = len;
                                used[n_used++] = c;
                                used[n_used++] = has;
                                used[n_used++] = len;
                                break;
                        }
                        free(has);
                        free(len);
                        free(c);
                        c = kg_xprintf("%s_%u", base, i);
                }
                free(base);
        }
        /* Children, after all member names are fixed. */
        for (size_t i = 0; i < t->n_fields; i++) {
                struct kg_field *f = &t->fields[i];
                const cJSON *ps = cJSON_GetObjectItemCaseSensitive(props, f->json);
                char *stem = kg_snake(f->json);
                char *child = kg_xprintf("%s_%s", t->cname, stem);
                char *cpath = join_path(path, f->json);
                free(stem);
                f->t = kg_resolve(g, ps, child, cpath, depth + 1);
                free(child);
                free(cpath);
                if (!f->t)
                        return NULL;
                const char *d = str_of(ps, "description");
                if (d)
                        f->doc = kg_xstrdup(d);
        }
        const cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "required");
        const cJSON *r;
        cJSON_ArrayForEach(r, req) {
                if (!cJSON_IsString(r))
                        continue;
                for (size_t i = 0; i < t->n_fields; i++)
                        if (!strcmp(t->fields[i].json, r->valuestring))
                                t->fields[i].required = true;
        }
        if (is_true(s, "x-kubernetes-preserve-unknown-fields")) {
                char *e = kg_xstrdup("extra_fields");
                for (unsigned i = 2;; i++) {
                        bool clash = false;
                        for (size_t u = 0; u < n_used; u++)
                                clash |= !strcmp(used[u], e);
                        if (!clash)
                                break;
                        free(e);
                        e = kg_xprintf("extra_fields_%u", i);
                }
                t->extra = e;
        }
        free(used);
        t->min_props = num_or(s, "minProperties", -1);
        t->max_props = num_or(s, "maxProperties", -1);
        add_type(g, t);
        return t;
}

static struct kg_type *json_type(void) {
        return new_type(KG_JSON);
}

static struct kg_type *element(struct kg_gen *g, const cJSON *s, const char *cname, const char *path, int depth) {
        struct kg_type *e = kg_resolve(g, s, cname, path, depth);
        if (e && (e->kind == KG_ARRAY || e->kind == KG_MAP))
                return json_type(); /* arrays of arrays and maps of maps stay cJSON */
        return e;
}

struct kg_type *kg_resolve(struct kg_gen *g, const cJSON *s, const char *cname, const char *path, int depth) {
        if (!cJSON_IsObject(s) || depth > KG_MAX_DEPTH || opaque(g, path))
                return json_type();
        const char *ref = str_of(s, "$ref");
        const cJSON *all = cJSON_GetObjectItemCaseSensitive(s, "allOf");
        if (!ref && cJSON_GetArraySize(all) == 1)
                ref = str_of(cJSON_GetArrayItem(all, 0), "$ref");
        if (ref)
                return kg_resolve_ref(g, ref, depth + 1);
        const char *type = str_of(s, "type");
        const char *format = str_of(s, "format");
        if (is_true(s, "x-kubernetes-int-or-string") || (format && !strcmp(format, "int-or-string")))
                return new_type(KG_INTORSTR);
        const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
        struct kg_type *t = NULL;
        if (!type) {
                const cJSON *one = cJSON_GetObjectItemCaseSensitive(s, "oneOf");
                bool str = false, num = false;
                const cJSON *o;
                cJSON_ArrayForEach(o, one) {
                        const char *ot = str_of(o, "type");
                        str |= ot && !strcmp(ot, "string");
                        num |= ot && (!strcmp(ot, "number") || !strcmp(ot, "integer"));
                }
                if (str && num) {
                        t = new_type(KG_STRING);
                        t->num_as_string = true;
                } else if (cJSON_GetArraySize(props) > 0)
                        type = "object";
                else
                        return json_type();
        }
        if (t)
                ;
        else if (!strcmp(type, "boolean"))
                t = new_type(KG_BOOL);
        else if (!strcmp(type, "integer")) {
                t = new_type(format && !strcmp(format, "int32") ? KG_INT32 : KG_INT64);
                const cJSON *en = cJSON_GetObjectItemCaseSensitive(s, "enum"), *v;
                cJSON_ArrayForEach(v, en) {
                        /* Values no int64_t holds can never match: left out. */
                        if (!cJSON_IsNumber(v) || !(v->valuedouble >= -9.2e18 && v->valuedouble <= 9.2e18))
                                continue;
                        t->int_enum = realloc(t->int_enum, (t->n_int_enum + 1) * sizeof *t->int_enum);
                        if (!t->int_enum)
                                kg_xmalloc(SIZE_MAX);
                        t->int_enum[t->n_int_enum++] = (int64_t)v->valuedouble;
                }
        } else if (!strcmp(type, "number"))
                t = new_type(KG_NUMBER);
        else if (!strcmp(type, "string")) {
                const cJSON *en = cJSON_GetObjectItemCaseSensitive(s, "enum"), *v;
                size_t n = 0;
                cJSON_ArrayForEach(v, en) n += cJSON_IsString(v);
                if (n > 0 && !g->string_enums) {
                        t = new_type(KG_ENUM);
                        t->cname = kg_unique_name(g, cname);
                        t->upper = kg_upper(t->cname);
                        t->enum_values = kg_xcalloc(n, sizeof(char *));
                        t->enum_ids = kg_xcalloc(n + 1, sizeof(char *));
                        char *unset = kg_xprintf("%s_UNSET", t->upper);
                        t->enum_ids[0] = kg_unique_name(g, unset);
                        free(unset);
                        cJSON_ArrayForEach(v, en) {
                                if (!cJSON_IsString(v))
                                        continue;
                                bool dup = false;
                                for (size_t i = 0; i < t->n_enum; i++)
                                        dup |= !strcmp(t->enum_values[i], v->valuestring);
                                if (dup)
                                        continue;
                                char *u = *v->valuestring ? kg_upper(v->valuestring) : kg_xstrdup("EMPTY");
                                char *id = kg_xprintf("%s_%s", t->upper, u);
                                t->enum_values[t->n_enum] = kg_xstrdup(v->valuestring);
                                t->enum_ids[++t->n_enum] = kg_unique_name(g, id);
                                free(u);
                                free(id);
                        }
                        add_type(g, t);
                } else {
                        t = new_type(KG_STRING);
                        t->str_enum = kg_xcalloc(n, sizeof(char *));
                        cJSON_ArrayForEach(v, en) if (cJSON_IsString(v)) t->str_enum[t->n_str_enum++] =
                                kg_xstrdup(v->valuestring);
                }
        } else if (!strcmp(type, "array")) {
                t = new_type(KG_ARRAY);
                char *c = kg_xprintf("%s_item", cname), *p = kg_xprintf("%s[]", path);
                const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
                t->elem = items ? element(g, items, c, p, depth + 1) : json_type();
                free(c);
                free(p);
                if (!t->elem)
                        return NULL;
        } else if (!strcmp(type, "object")) {
                const cJSON *ap = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
                if (cJSON_GetArraySize(props) > 0) {
                        t = resolve_object(g, s, props, cname, path, depth);
                        if (!t)
                                return NULL;
                } else if (cJSON_IsObject(ap) || cJSON_IsTrue(ap)) {
                        t = new_type(KG_MAP);
                        t->cname = kg_unique_name(g, cname); /* <cname>_entry */
                        char *c = kg_xprintf("%s_value", cname), *p = kg_xprintf("%s{}", path);
                        t->elem = cJSON_IsObject(ap) ? element(g, ap, c, p, depth + 1) : json_type();
                        free(c);
                        free(p);
                        if (!t->elem)
                                return NULL;
                } else
                        return json_type(); /* free-form object, preserve-unknown-fields, embedded */
        } else
                return json_type();
        if (read_checks(g, t, s, path) < 0)
                return NULL;
        return t;
}

/* "io.k8s.api.apps.v1.Deployment" -> "apps_v1_deployment",
 * "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" -> "meta_v1_object_meta". */
static char *ref_cname(struct kg_gen *g, const char *name) {
        const char *strip[] = {"io.k8s.api.", "io.k8s.apimachinery.pkg.apis.", "io.k8s.apimachinery.pkg.",
                               "io.k8s.", NULL};
        const char *s = name;
        for (size_t i = 0; strip[i]; i++)
                if (!strncmp(s, strip[i], strlen(strip[i]))) {
                        s += strlen(strip[i]);
                        break;
                }
        char *snake = kg_snake(s);
        char *c = kg_xprintf("%s%s", g->prefix, snake);
        free(snake);
        return c;
}

struct kg_type *kg_resolve_ref(struct kg_gen *g, const char *ref, int depth) {
        const char *pre = "#/components/schemas/";
        const char *name = !strncmp(ref, pre, strlen(pre)) ? ref + strlen(pre) : ref;
        for (size_t i = 0; i < g->n_refs; i++)
                if (!strcmp(g->ref_names[i], name))
                        /* A type still being resolved refers to itself: that edge stays cJSON. */
                        return g->ref_types[i] ? g->ref_types[i] : json_type();
        if (opaque(g, name))
                return json_type();
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(g->schemas, name);
        if (!s) {
                g->error = kg_xprintf("$ref %s: no such schema", ref);
                return NULL;
        }
        size_t slot = g->n_refs++;
        g->ref_names = realloc(g->ref_names, g->n_refs * sizeof *g->ref_names);
        g->ref_types = realloc(g->ref_types, g->n_refs * sizeof *g->ref_types);
        if (!g->ref_names || !g->ref_types)
                kg_xmalloc(SIZE_MAX);
        g->ref_names[slot] = kg_xstrdup(name);
        g->ref_types[slot] = NULL;
        char *c = ref_cname(g, name);
        struct kg_type *t = kg_resolve(g, s, c, name, depth);
        free(c);
        g->ref_types[slot] = t;
        return t;
}

/* A whole object: apiVersion, kind and metadata are always members, even
 * when the schema leaves them out (a CRD's schema may list spec only). */
struct kg_type *kg_root_object(struct kg_gen *g, const cJSON *schema, const char *cname, const char *gv,
                               const char *kind) {
        cJSON *s = cJSON_Duplicate(schema, 1);
        if (!s || !cJSON_IsObject(s)) {
                cJSON_Delete(s);
                s = cJSON_CreateObject();
        }
        cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
        if (!cJSON_IsObject(props)) {
                cJSON_DeleteItemFromObjectCaseSensitive(s, "properties");
                props = cJSON_AddObjectToObject(s, "properties");
        }
        /* A CRD's schema may constrain metadata (name, labels) but the object
         * carries all of ObjectMeta: it stays a cJSON *, never pruned to the
         * few fields the schema names. */
        cJSON_DeleteItemFromObjectCaseSensitive(props, "metadata");
        const char *std[] = {"apiVersion", "kind", "metadata"};
        for (int i = 2; i >= 0; i--) {
                if (cJSON_GetObjectItemCaseSensitive(props, std[i]))
                        continue;
                cJSON *p = cJSON_CreateObject();
                cJSON_AddStringToObject(p, "type", i == 2 ? "object" : "string");
                cJSON *k = cJSON_CreateString(std[i]);
                p->string = k->valuestring;
                k->valuestring = NULL;
                cJSON_Delete(k);
                /* Prepend, so that the three come first as in every Kubernetes object. */
                p->next = props->child;
                if (props->child) {
                        p->prev = props->child->prev;
                        props->child->prev = p;
                } else
                        p->prev = p;
                props->child = p;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(s, "type");
        cJSON_AddStringToObject(s, "type", "object");
        /* The header's <ROOT>_API_VERSION and <ROOT>_KIND macros: no enum constant may take them. */
        char *u = kg_upper(cname);
        name_add(g, kg_xprintf("%s_API_VERSION", u));
        name_add(g, kg_xprintf("%s_KIND", u));
        free(u);
        struct kg_type *t = kg_resolve(g, s, cname, "", 0);
        cJSON_Delete(s);
        if (t && t->kind == KG_OBJECT) {
                t->gv = gv;
                t->kind_name = kind;
        }
        return t;
}
