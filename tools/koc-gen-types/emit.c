/* koc-gen-types: writes the header and the source from the type model. */
#include <string.h>
#include <stdlib.h>

#include "model.h"

extern const char kg_runtime[];

/* A C string literal for any bytes (names in a schema are hostile). */
static void lit(FILE *f, const char *s) {
        fputc('"', f);
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if (*p == '"' || *p == '\\')
                        fprintf(f, "\\%c", *p);
                else if (*p < 32 || *p >= 127 || *p == '?')
                        fprintf(f, "\\%03o", *p);
                else
                        fputc(*p, f);
        }
        fputc('"', f);
}

/* A comment's text: its first sentence, at most 160 bytes, without the
 * characters that could end or nest the comment. */
static void doc(FILE *f, const char *indent, const char *d) {
        if (!d)
                return;
        char buf[200];
        size_t k = 0;
        for (const char *p = d; *p && k < 160; p++) {
                char ch = *p;
                if (ch == '\n' || ch == '\r' || ch == '\t')
                        ch = ' ';
                if ((ch == '/' && k > 0 && buf[k - 1] == '*') || (ch == '*' && k > 0 && buf[k - 1] == '/'))
                        ch = ' ';
                if ((unsigned char)ch < 32 || (unsigned char)ch >= 127)
                        ch = ' ';
                buf[k++] = ch;
                if (ch == '.' && (p[1] == ' ' || p[1] == 0 || p[1] == '\n'))
                        break;
        }
        buf[k] = 0;
        fprintf(f, "%s/* %s */\n", indent, buf);
}

static bool is_string_map(const struct kg_type *t) {
        return t->kind == KG_MAP && t->elem->kind == KG_STRING && !t->elem->num_as_string;
}

/* The C type of a value (an array's element, a map's value, a member). */
static const char *ctype(const struct kg_type *t) {
        switch (t->kind) {
        case KG_BOOL: return "bool";
        case KG_INT32: return "int32_t";
        case KG_INT64: return "int64_t";
        case KG_NUMBER: return "double";
        case KG_STRING: return "char *";
        case KG_INTORSTR: return "koc_int_or_string";
        case KG_JSON: return "cJSON *";
        case KG_ENUM:
        case KG_OBJECT: return t->cname;
        default: return "void *";
        }
}

static bool has_flag(const struct kg_type *t) {
        return t->kind != KG_STRING && t->kind != KG_JSON && t->kind != KG_ENUM;
}

static void emit_enum(FILE *h, const struct kg_type *t) {
        fprintf(h, "typedef enum %s {\n        %s = 0,\n", t->cname, t->enum_ids[0]);
        for (size_t i = 0; i < t->n_enum; i++) {
                fprintf(h, "        %s = %zu, /* ", t->enum_ids[i + 1], i + 1);
                /* the value, made safe for a comment */
                for (const char *p = t->enum_values[i]; *p; p++)
                        fputc((*p == '*' || *p == '/' || (unsigned char)*p < 32 || (unsigned char)*p >= 127) ? '_' : *p,
                              h);
                fprintf(h, " */\n");
        }
        fprintf(h, "} %s;\n\n", t->cname);
}

static void emit_struct(FILE *h, const struct kg_type *t) {
        fprintf(h, "struct %s {\n", t->cname);
        for (size_t i = 0; i < t->n_fields; i++) {
                const struct kg_field *f = &t->fields[i];
                const struct kg_type *ft = f->t;
                doc(h, "        ", f->doc);
                if (ft->kind == KG_ARRAY || ft->kind == KG_MAP) {
                        if (is_string_map(ft))
                                fprintf(h, "        koc_string_entry *%s;\n", f->c);
                        else if (ft->kind == KG_MAP)
                                fprintf(h, "        struct %s_entry *%s;\n", ft->cname, f->c);
                        else {
                                const char *ct = ctype(ft->elem);
                                fprintf(h, "        %s%s*%s;\n", ct, ct[strlen(ct) - 1] == '*' ? "" : " ", f->c);
                        }
                        fprintf(h, "        size_t %s;\n        bool %s; /* present even if empty */\n", f->len,
                                f->has);
                        continue;
                }
                const char *ct = ctype(ft);
                fprintf(h, "        %s%s%s;%s\n", ct, ct[strlen(ct) - 1] == '*' ? "" : " ", f->c,
                        f->required ? " /* required */" : "");
                if (has_flag(ft))
                        fprintf(h, "        bool %s;\n", f->has);
        }
        if (t->extra)
                fprintf(h, "        /* Fields the schema does not name (x-kubernetes-preserve-unknown-fields). */\n"
                           "        cJSON *%s;\n",
                        t->extra);
        fprintf(h, "};\n\n");
}

/* Map entry types, declared before the structs that point to them. */
static void emit_map_entries(FILE *h, const struct kg_type *t) {
        for (size_t i = 0; i < t->n_fields; i++) {
                const struct kg_type *ft = t->fields[i].t;
                if (ft->kind != KG_MAP || is_string_map(ft))
                        continue;
                const char *ct = ctype(ft->elem);
                fprintf(h, "struct %s_entry {\n        char *key;\n        %s%s%s;\n};\n\n", ft->cname, ct,
                        ct[strlen(ct) - 1] == '*' ? "" : " ", "value");
        }
}

/* --- source ---------------------------------------------------------------- */

static void emit_enum_values(FILE *c, const struct kg_type *t) {
        fprintf(c, "static const char *const %s__values[] = {", t->cname);
        for (size_t i = 0; i < t->n_enum; i++) {
                fputs(i ? ", " : "", c);
                lit(c, t->enum_values[i]);
        }
        fprintf(c, "};\n");
}

/* Parses JSON `src` into the lvalue `dst` of type t (not an array or map). */
static void parse_value(FILE *c, const struct kg_type *t, const char *src, const char *dst) {
        switch (t->kind) {
        case KG_BOOL: fprintf(c, "if ((r = kg_p_bool(c, %s, &%s)) < 0) return r;\n", src, dst); break;
        case KG_INT32: fprintf(c, "if ((r = kg_p_i32(c, %s, &%s)) < 0) return r;\n", src, dst); break;
        case KG_INT64: fprintf(c, "if ((r = kg_p_i64(c, %s, &%s)) < 0) return r;\n", src, dst); break;
        case KG_NUMBER: fprintf(c, "if ((r = kg_p_num(c, %s, &%s)) < 0) return r;\n", src, dst); break;
        case KG_STRING:
                fprintf(c, "if ((r = kg_p_%s(c, %s, &%s)) < 0) return r;\n", t->num_as_string ? "qty" : "str", src,
                        dst);
                break;
        case KG_ENUM:
                fprintf(c, "if ((r = kg_p_enum(c, %s, %s__values, %zu, &e)) < 0) return r;\n%s = (%s)e;\n", src,
                        t->cname, t->n_enum, dst, t->cname);
                break;
        case KG_INTORSTR: fprintf(c, "if ((r = kg_p_ios(c, %s, &%s)) < 0) return r;\n", src, dst); break;
        case KG_JSON: fprintf(c, "if ((r = kg_p_json(c, %s, &%s)) < 0) return r;\n", src, dst); break;
        case KG_OBJECT: fprintf(c, "if ((r = %s__p(c, %s, &%s)) < 0) return r;\n", t->cname, src, dst); break;
        default: break;
        }
}

/* A new cJSON for the value `v` of type t (NULL when out of memory). */
static char *json_expr(const struct kg_type *t, const char *v) {
        switch (t->kind) {
        case KG_BOOL: return kg_xprintf("cJSON_CreateBool(%s)", v);
        case KG_INT32:
        case KG_INT64:
        case KG_NUMBER: return kg_xprintf("cJSON_CreateNumber((double)%s)", v);
        case KG_STRING: return kg_xprintf("kg_j_str(%s)", v);
        case KG_ENUM: return kg_xprintf("kg_j_enum(%s__values, %zu, (int)%s)", t->cname, t->n_enum, v);
        case KG_INTORSTR: return kg_xprintf("kg_j_ios(&%s)", v);
        case KG_JSON: return kg_xprintf("kg_j_json(%s)", v);
        case KG_OBJECT: return kg_xprintf("%s__j(&%s)", t->cname, v);
        default: return kg_xstrdup("NULL");
        }
}

static void emit_list(FILE *c, const char *type, const char *name, const void *vals, size_t n, bool ints) {
        fprintf(c, "static const %s %s[] = {", type, name);
        for (size_t i = 0; i < n; i++) {
                fputs(i ? ", " : "", c);
                if (ints)
                        fprintf(c, "INT64_C(%lld)", (long long)((const int64_t *)vals)[i]);
                else
                        lit(c, ((char *const *)vals)[i]);
        }
        fprintf(c, "};\n");
}

static bool value_checked(const struct kg_type *t) {
        switch (t->kind) {
        case KG_INT32:
        case KG_INT64:
        case KG_NUMBER: return t->has_min || t->has_max || t->n_int_enum;
        case KG_STRING: return t->min_len >= 0 || t->max_len >= 0 || t->pattern || t->format || t->n_str_enum;
        case KG_ENUM:
        case KG_OBJECT: return true;
        default: return false;
        }
}

/* Statements checking value `v` of type t; tables are emitted before the
 * function as <id>__en / <id>__re. */
static void check_value(FILE *c, const struct kg_type *t, const char *v, const char *id) {
        switch (t->kind) {
        case KG_INT32:
        case KG_INT64:
        case KG_NUMBER:
                if (t->has_min || t->has_max)
                        fprintf(c, "if ((r = kg_v_num(c, (double)%s, %d, %.17g, %.17g)) < 0) return r;\n", v,
                                (t->has_min ? 1 : 0) | (t->excl_min ? 2 : 0) | (t->has_max ? 4 : 0) |
                                        (t->excl_max ? 8 : 0),
                                t->has_min ? t->min : 0.0, t->has_max ? t->max : 0.0);
                if (t->n_int_enum)
                        fprintf(c, "if ((r = kg_v_int_enum(c, (int64_t)%s, %s__en, %zu)) < 0) return r;\n", v, id,
                                t->n_int_enum);
                break;
        case KG_STRING:
                if (!value_checked(t))
                        break;
                /* A pattern is compiled once, by its first use (kg_re_get). */
                if (t->pattern) {
                        fputs("{\nstatic kg_re re = {", c);
                        lit(c, t->pattern);
                        fputs(", ", c);
                        lit(c, t->pattern_src);
                        fputs(", 0, {0}};\n", c);
                }
                fprintf(c, "if ((r = kg_v_str(c, %s, %lld, %lld, %s, ", v, t->min_len, t->max_len,
                        t->pattern ? "&re" : "NULL");
                if (t->format)
                        lit(c, t->format);
                else
                        fputs("NULL", c);
                if (t->n_str_enum)
                        fprintf(c, ", %s__en, %zu)) < 0) return r;\n", id, t->n_str_enum);
                else
                        fprintf(c, ", NULL, 0)) < 0) return r;\n");
                if (t->pattern)
                        fputs("}\n", c);
                break;
        case KG_ENUM: fprintf(c, "if ((r = kg_v_enum(c, (int)%s, %zu)) < 0) return r;\n", v, t->n_enum); break;
        case KG_OBJECT: fprintf(c, "if ((r = %s__v(c, &%s)) < 0) return r;\n", t->cname, v); break;
        default: break;
        }
}

static void check_tables(FILE *c, const struct kg_type *t, const char *id) {
        if (t->n_int_enum) {
                char *n = kg_xprintf("%s__en", id);
                emit_list(c, "int64_t", n, t->int_enum, t->n_int_enum, true);
                free(n);
        }
        if (t->n_str_enum) {
                char *n = kg_xprintf("%s__en", id);
                emit_list(c, "char *const", n, t->str_enum, t->n_str_enum, false);
                free(n);
        }
}

static char *present(const struct kg_field *f) {
        const struct kg_type *t = f->t;
        switch (t->kind) {
        case KG_STRING:
        case KG_JSON: return kg_xprintf("o->%s != NULL", f->c);
        case KG_ENUM: return kg_xprintf("o->%s != 0", f->c);
        case KG_OBJECT: return kg_xprintf("(o->%s || %s__z(&o->%s))", f->has, t->cname, f->c);
        case KG_ARRAY:
        case KG_MAP: return kg_xprintf("(o->%s || o->%s > 0)", f->has, f->len);
        default: return kg_xprintf("o->%s", f->has);
        }
}

static void emit_parse(FILE *c, const struct kg_type *t) {
        if (t->extra) {
                fprintf(c, "static const char *const %s__known[] = {", t->cname);
                for (size_t i = 0; i < t->n_fields; i++) {
                        fputs(i ? ", " : "", c);
                        lit(c, t->fields[i].json);
                }
                fprintf(c, "};\n");
        }
        fprintf(c, "static int %s__p(kg_ctx *c, const cJSON *j, %s *o) {\n", t->cname, t->cname);
        fprintf(c, "const cJSON *v, *it;\nsize_t m, m2, n, i;\nint r, e;\n"
                   "(void)it; (void)m2; (void)n; (void)i; (void)e;\n");
        fprintf(c, "if (!cJSON_IsObject(j)) return kg_expect(c, \"object\", j);\n");
        for (size_t k = 0; k < t->n_fields; k++) {
                const struct kg_field *f = &t->fields[k];
                const struct kg_type *ft = f->t;
                fprintf(c, "v = cJSON_GetObjectItemCaseSensitive(j, ");
                lit(c, f->json);
                fprintf(c, ");\nif (v && !cJSON_IsNull(v)) {\nm = kg_push(c, ");
                lit(c, f->json);
                fprintf(c, ");\n");
                char *dst = kg_xprintf("o->%s", f->c);
                if (ft->kind == KG_ARRAY || ft->kind == KG_MAP) {
                        bool arr = ft->kind == KG_ARRAY;
                        fprintf(c, "if (!cJSON_Is%s(v)) return kg_expect(c, \"%s\", v);\n", arr ? "Array" : "Object",
                                arr ? "array" : "object");
                        fprintf(c, "o->%s = true;\nn = kg_count(v);\n", f->has);
                        fprintf(c, "if (n > 0) {\nif (!(o->%s = calloc(n, sizeof *o->%s))) return kg_nomem(c);\n"
                                   "o->%s = n;\n}\ni = 0;\ncJSON_ArrayForEach(it, v) {\n",
                                f->c, f->c, f->len);
                        char *el;
                        if (arr) {
                                fprintf(c, "m2 = kg_push_index(c, i);\n");
                                el = kg_xprintf("o->%s[i]", f->c);
                        } else {
                                fprintf(c, "m2 = kg_push_key(c, it->string);\n"
                                           "if (!(o->%s[i].key = strdup(it->string ? it->string : \"\"))) return "
                                           "kg_nomem(c);\n",
                                        f->c);
                                el = kg_xprintf("o->%s[i].value", f->c);
                        }
                        if (ft->elem->kind == KG_JSON)
                                fprintf(c, "if ((r = kg_p_json(c, it, &%s)) < 0) return r;\n", el);
                        else
                                parse_value(c, ft->elem, "it", el);
                        free(el);
                        fprintf(c, "kg_pop(c, m2);\ni++;\n}\n");
                } else {
                        parse_value(c, ft, "v", dst);
                        if (has_flag(ft))
                                fprintf(c, "o->%s = true;\n", f->has);
                }
                free(dst);
                fprintf(c, "kg_pop(c, m);\n}\n");
        }
        if (t->extra)
                fprintf(c, "if ((r = kg_p_extra(c, j, %s__known, %zu, &o->%s)) < 0) return r;\n", t->cname,
                        t->n_fields, t->extra);
        fprintf(c, "(void)r; (void)m;\nreturn 0;\n}\n\n");
}

static void emit_to_json(FILE *c, const struct kg_type *t) {
        fprintf(c, "static cJSON *%s__j(const %s *o) {\ncJSON *j = cJSON_CreateObject(), *a;\nsize_t i;\n"
                   "(void)a; (void)i;\nif (!j) return NULL;\n",
                t->cname, t->cname);
        for (size_t k = 0; k < t->n_fields; k++) {
                const struct kg_field *f = &t->fields[k];
                const struct kg_type *ft = f->t;
                char *v = kg_xprintf("o->%s", f->c);
                if (ft->kind == KG_ARRAY || ft->kind == KG_MAP) {
                        bool arr = ft->kind == KG_ARRAY;
                        fprintf(c, "if (o->%s || o->%s > 0) {\nif (!kg_add(j, ", f->has, f->len);
                        lit(c, f->json);
                        fprintf(c, ", a = cJSON_Create%s())) goto fail;\nfor (i = 0; o->%s && i < o->%s; i++)\n",
                                arr ? "Array" : "Object", f->c, f->len);
                        char *el = kg_xprintf(arr ? "o->%s[i]" : "o->%s[i].value", f->c);
                        char *e = json_expr(ft->elem, el);
                        if (arr)
                                fprintf(c, "if (!kg_append(a, %s)) goto fail;\n}\n", e);
                        else
                                fprintf(c, "if (!kg_add(a, o->%s[i].key ? o->%s[i].key : \"\", %s)) goto fail;\n}\n",
                                        f->c, f->c, e);
                        free(el);
                        free(e);
                        free(v);
                        continue;
                }
                const char *fixed = NULL;
                if (t->gv && ft->kind == KG_STRING && !strcmp(f->json, "apiVersion"))
                        fixed = t->gv;
                if (t->kind_name && ft->kind == KG_STRING && !strcmp(f->json, "kind"))
                        fixed = t->kind_name;
                char *e = json_expr(ft, v);
                if (fixed) {
                        fprintf(c, "if (!kg_add(j, ");
                        lit(c, f->json);
                        fprintf(c, ", cJSON_CreateString(%s ? %s : ", v, v);
                        lit(c, fixed);
                        fprintf(c, "))) goto fail;\n");
                } else {
                        char *p = present(f);
                        fprintf(c, "if (%s && !kg_add(j, ", p);
                        lit(c, f->json);
                        fprintf(c, ", %s)) goto fail;\n", e);
                        free(p);
                }
                free(e);
                free(v);
        }
        if (t->extra)
                fprintf(c, "if (o->%s && !kg_add_extra(j, o->%s)) goto fail;\n", t->extra, t->extra);
        fprintf(c, "return j;\nfail:\ncJSON_Delete(j);\nreturn NULL;\n}\n\n");
}

static void emit_validate(FILE *c, const struct kg_type *t) {
        for (size_t k = 0; k < t->n_fields; k++) {
                const struct kg_field *f = &t->fields[k];
                const struct kg_type *vt = (f->t->kind == KG_ARRAY || f->t->kind == KG_MAP) ? f->t->elem : f->t;
                char *id = kg_xprintf("%s__%s", t->cname, f->c);
                check_tables(c, vt, id);
                free(id);
        }
        fprintf(c, "static int %s__v(kg_ctx *c, const %s *o) {\nsize_t m, m2, i;\nint r;\n"
                   "(void)m; (void)m2; (void)i; (void)r;\n",
                t->cname, t->cname);
        for (size_t k = 0; k < t->n_fields; k++) {
                const struct kg_field *f = &t->fields[k];
                const struct kg_type *ft = f->t;
                bool coll = ft->kind == KG_ARRAY || ft->kind == KG_MAP;
                const struct kg_type *vt = coll ? ft->elem : ft;
                bool count = coll && (ft->kind == KG_ARRAY ? (ft->min_items >= 0 || ft->max_items >= 0)
                                                          : (ft->min_props >= 0 || ft->max_props >= 0));
                if (!f->required && !value_checked(vt) && !count)
                        continue;
                char *p = present(f);
                char *id = kg_xprintf("%s__%s", t->cname, f->c);
                fprintf(c, "m = kg_push(c, ");
                lit(c, f->json);
                fprintf(c, ");\n");
                if (f->required)
                        fprintf(c, "if (!(%s)) return kg_missing(c);\n", p);
                fprintf(c, "if (%s) {\n", p);
                if (count) {
                        if (ft->kind == KG_ARRAY)
                                fprintf(c, "if ((r = kg_v_count(c, o->%s, %lld, %lld, \"items\")) < 0) return r;\n",
                                        f->len, ft->min_items, ft->max_items);
                        else
                                fprintf(c,
                                        "if ((r = kg_v_count(c, o->%s, %lld, %lld, \"properties\")) < 0) return r;\n",
                                        f->len, ft->min_props, ft->max_props);
                }
                if (coll && value_checked(vt)) {
                        bool arr = ft->kind == KG_ARRAY;
                        fprintf(c, "for (i = 0; o->%s && i < o->%s; i++) {\n", f->c, f->len);
                        if (arr)
                                fprintf(c, "m2 = kg_push_index(c, i);\n");
                        else
                                fprintf(c, "m2 = kg_push_key(c, o->%s[i].key);\n", f->c);
                        char *el = kg_xprintf(arr ? "o->%s[i]" : "o->%s[i].value", f->c);
                        check_value(c, vt, el, id);
                        free(el);
                        fprintf(c, "kg_pop(c, m2);\n}\n");
                } else if (!coll) {
                        char *v = kg_xprintf("o->%s", f->c);
                        check_value(c, vt, v, id);
                        free(v);
                }
                fprintf(c, "}\nkg_pop(c, m);\n");
                free(p);
                free(id);
        }
        fprintf(c, "return 0;\n}\n\n");
}

static void free_value(FILE *c, const struct kg_type *t, const char *v) {
        switch (t->kind) {
        case KG_STRING: fprintf(c, "free(%s);\n", v); break;
        case KG_JSON: fprintf(c, "cJSON_Delete(%s);\n", v); break;
        case KG_INTORSTR: fprintf(c, "free(%s.string_value);\n", v); break;
        case KG_OBJECT: fprintf(c, "%s__f(&%s);\n", t->cname, v); break;
        default: break;
        }
}

static void emit_free_and_z(FILE *c, const struct kg_type *t) {
        fprintf(c, "static void %s__f(%s *o) {\nsize_t i;\n(void)i;\n", t->cname, t->cname);
        for (size_t k = 0; k < t->n_fields; k++) {
                const struct kg_field *f = &t->fields[k];
                const struct kg_type *ft = f->t;
                char *v = kg_xprintf("o->%s", f->c);
                if (ft->kind == KG_ARRAY || ft->kind == KG_MAP) {
                        bool arr = ft->kind == KG_ARRAY;
                        char *el = kg_xprintf(arr ? "o->%s[i]" : "o->%s[i].value", f->c);
                        fprintf(c, "for (i = 0; o->%s && i < o->%s; i++) {\n", f->c, f->len);
                        if (!arr)
                                fprintf(c, "free(o->%s[i].key);\n", f->c);
                        free_value(c, ft->elem, el);
                        fprintf(c, "}\nfree(o->%s);\n", f->c);
                        free(el);
                } else
                        free_value(c, ft, v);
                free(v);
        }
        if (t->extra)
                fprintf(c, "cJSON_Delete(o->%s);\n", t->extra);
        fprintf(c, "memset(o, 0, sizeof *o);\n}\n\n");

        fprintf(c, "static bool %s__z(const %s *o) {\nreturn false", t->cname, t->cname);
        for (size_t k = 0; k < t->n_fields; k++) {
                char *p = present(&t->fields[k]);
                fprintf(c, " ||\n%s", p);
                free(p);
        }
        if (t->extra)
                fprintf(c, " ||\no->%s != NULL", t->extra);
        fprintf(c, ";\n}\n\n");
}

static void emit_public(FILE *c, const struct kg_type *t) {
        const char *n = t->cname;
        fprintf(c,
                "void %s_init(%s *o) {\nif (o) memset(o, 0, sizeof *o);\n}\n\n"
                "void %s_free(%s *o) {\nif (o) %s__f(o);\n}\n\n"
                "int %s_parse(const cJSON *json, %s *ret, char *err, size_t errlen) {\n"
                "kg_ctx c;\n%s tmp;\nint r;\nkg_ctx_init(&c, err, errlen);\n"
                "if (!ret) return kg_fail(&c, -EINVAL, \"no object to parse into\");\n"
                "memset(&tmp, 0, sizeof tmp);\nr = %s__p(&c, json, &tmp);\n"
                "if (r < 0) {\n%s__f(&tmp);\nreturn r;\n}\n*ret = tmp;\nreturn 0;\n}\n\n"
                "cJSON *%s_to_json(const %s *o) {\nreturn o ? %s__j(o) : NULL;\n}\n\n"
                "int %s_validate(const %s *o, char *err, size_t errlen) {\nkg_ctx c;\n"
                "kg_ctx_init(&c, err, errlen);\n"
                "if (!o) return kg_fail(&c, -EINVAL, \"no object to validate\");\nreturn %s__v(&c, o);\n}\n\n",
                n, n, n, n, n, n, n, n, n, n, n, n, n, n, n, n);
}

/* Copies the generated functions from `in` to `out` indented by brace depth
 * (braces inside string and character literals do not count), so that the
 * output reads like code written by hand. */
static void indent_copy(const char *in, FILE *out) {
        int depth = 0;
        while (*in) {
                const char *eol = strchr(in, '\n');
                size_t n = eol ? (size_t)(eol - in) : strlen(in);
                const char *p = in;
                while (p < in + n && (*p == ' ' || *p == '\t'))
                        p++;
                size_t len = n - (size_t)(p - in);
                int d = depth - (len > 0 && *p == '}');
                if (len > 0) {
                        bool label = len > 1 && p[len - 1] == ':' && !memchr(p, ' ', len);
                        for (int i = 0; i < (label ? 0 : d); i++)
                                fputs("        ", out);
                        fwrite(p, 1, len, out);
                }
                fputc('\n', out);
                char quote = 0;
                for (size_t i = 0; i < len; i++) {
                        char ch = p[i];
                        if (quote) {
                                if (ch == '\\')
                                        i++;
                                else if (ch == quote)
                                        quote = 0;
                        } else if (ch == '"' || ch == '\'')
                                quote = ch;
                        else if (ch == '{')
                                depth++;
                        else if (ch == '}' && depth > 0)
                                depth--;
                }
                in += n + (eol ? 1 : 0);
        }
}

int kg_emit(struct kg_gen *g, FILE *h, FILE *out, const char *header_name, const char *guard, const char *source) {
        char *body = NULL;
        size_t body_len = 0;
        FILE *c = open_memstream(&body, &body_len);
        if (!c)
                return -1;
        fprintf(h, "/* Generated by koc-gen-types from %s: do not edit, change the schema. */\n", source);
        fprintf(h, "#ifndef %s\n#define %s\n\n#include <cjson/cJSON.h>\n#include <stdbool.h>\n#include <stddef.h>\n"
                   "#include <stdint.h>\n\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n",
                guard, guard);
        fprintf(h, "#ifndef KOC_GEN_TYPES_COMMON\n#define KOC_GEN_TYPES_COMMON 1\n"
                   "/* x-kubernetes-int-or-string: an int32 or a string. */\n"
                   "typedef struct koc_int_or_string {\n        bool is_string;\n        int32_t int_value;\n"
                   "        char *string_value;\n} koc_int_or_string;\n\n"
                   "/* One entry of a map of strings (labels, annotations, data). */\n"
                   "typedef struct koc_string_entry {\n        char *key;\n        char *value;\n} koc_string_entry;\n\n"
                   "/* Sets a scalar member and its has_ flag: KOC_SET(d.spec, replicas, 3). */\n"
                   "#define KOC_SET(obj, member, v) ((obj).member = (v), (obj).has_##member = true)\n"
                   "/* The same in a designated initializer: {KOC_HAS(replicas, 3), .selector = ...}. */\n"
                   "#define KOC_HAS(member, v) .member = (v), .has_##member = true\n"
                   "#endif\n\n");
        for (size_t i = 0; i < g->n_roots; i++) {
                const struct kg_type *t = g->roots[i];
                if (!t->gv)
                        continue;
                char *u = kg_upper(t->cname);
                fprintf(h, "#define %s_API_VERSION ", u);
                lit(h, t->gv);
                fprintf(h, "\n#define %s_KIND ", u);
                lit(h, t->kind_name);
                fprintf(h, "\n");
                free(u);
        }
        fprintf(h, "\n");
        for (size_t i = 0; i < g->n_types; i++)
                if (g->types[i]->kind == KG_ENUM)
                        emit_enum(h, g->types[i]);
        for (size_t i = 0; i < g->n_types; i++)
                if (g->types[i]->kind == KG_OBJECT)
                        fprintf(h, "typedef struct %s %s;\n", g->types[i]->cname, g->types[i]->cname);
        fprintf(h, "\n");
        for (size_t i = 0; i < g->n_types; i++)
                if (g->types[i]->kind == KG_OBJECT) {
                        emit_map_entries(h, g->types[i]);
                        emit_struct(h, g->types[i]);
                }
        for (size_t i = 0; i < g->n_types; i++) {
                const struct kg_type *t = g->types[i];
                if (t->kind != KG_OBJECT)
                        continue;
                const char *n = t->cname;
                const char *vis = "__attribute__((visibility(\"default\")))";
                fprintf(h,
                        "%s void %s_init(%s *o);\n%s void %s_free(%s *o);\n"
                        "%s int %s_parse(const cJSON *json, %s *ret, char *err, size_t errlen);\n"
                        "%s cJSON *%s_to_json(const %s *o);\n"
                        "%s int %s_validate(const %s *o, char *err, size_t errlen);\n\n",
                        vis, n, n, vis, n, n, vis, n, n, vis, n, n, vis, n, n);
        }
        fprintf(h, "#ifdef __cplusplus\n}\n#endif\n\n#endif\n");

        fprintf(out, "/* Generated by koc-gen-types from %s: do not edit, change the schema. */\n", source);
        fprintf(out, "#include \"%s\"\n\n", header_name);
        fputs(kg_runtime, out);
        fprintf(out, "\n/* --- types --- */\n\n");
        for (size_t i = 0; i < g->n_types; i++)
                if (g->types[i]->kind == KG_ENUM)
                        emit_enum_values(c, g->types[i]);
        for (size_t i = 0; i < g->n_types; i++) {
                const struct kg_type *t = g->types[i];
                if (t->kind != KG_OBJECT)
                        continue;
                fprintf(c, "static int %s__p(kg_ctx *c, const cJSON *j, %s *o);\n", t->cname, t->cname);
                fprintf(c, "static cJSON *%s__j(const %s *o);\n", t->cname, t->cname);
                fprintf(c, "static int %s__v(kg_ctx *c, const %s *o);\n", t->cname, t->cname);
                fprintf(c, "static void %s__f(%s *o);\n", t->cname, t->cname);
                fprintf(c, "__attribute__((unused)) static bool %s__z(const %s *o);\n", t->cname, t->cname);
        }
        fprintf(c, "\n");
        for (size_t i = 0; i < g->n_types; i++) {
                const struct kg_type *t = g->types[i];
                if (t->kind != KG_OBJECT)
                        continue;
                emit_parse(c, t);
                emit_to_json(c, t);
                emit_validate(c, t);
                emit_free_and_z(c, t);
                emit_public(c, t);
        }
        bool failed = ferror(c) != 0;
        if (fclose(c) != 0 || failed || !body) {
                free(body);
                return -1;
        }
        indent_copy(body, out);
        free(body);
        return ferror(h) || ferror(out) ? -1 : 0;
}
