/* koc-gen-types: the schema model shared by the loader, the resolver and the
 * C writer.  See README.md in this folder for the mapping. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum kg_kind {
        KG_BOOL,
        KG_INT32,
        KG_INT64,
        KG_NUMBER,
        KG_STRING,
        KG_ENUM,
        KG_INTORSTR,
        KG_JSON,
        KG_OBJECT,
        KG_ARRAY,
        KG_MAP,
};

struct kg_type;

struct kg_field {
        char *json;  /* property name in JSON */
        char *c;     /* C member name */
        char *has;   /* "has_<c>" */
        char *len;   /* "<c>_len" */
        struct kg_type *t;
        bool required;
        char *doc;
};

struct kg_type {
        enum kg_kind kind;
        char *cname;         /* objects and enums: the C type name */
        char *upper;         /* enums: the constants' prefix */
        /* objects */
        struct kg_field *fields;
        size_t n_fields;
        char *extra;         /* member keeping unknown fields, or NULL (pruned) */
        const char *gv;      /* root objects: apiVersion written when unset */
        const char *kind_name;
        bool emitted;
        bool resolving;
        /* arrays and maps: the element */
        struct kg_type *elem;
        /* enums */
        char **enum_values;
        char **enum_ids;
        size_t n_enum;
        /* validation */
        bool has_min, has_max, excl_min, excl_max;
        double min, max;
        long long min_len, max_len, min_items, max_items, min_props, max_props;
        char *pattern;       /* already in POSIX ERE form */
        char *pattern_src;   /* as written in the schema */
        char *format;        /* "date-time", "byte", ... */
        bool num_as_string;  /* Quantity: accepts a JSON number */
        int64_t *int_enum;   /* integer enum */
        size_t n_int_enum;
        char **str_enum;     /* string enum kept as char * */
        size_t n_str_enum;
};

struct kg_gen {
        const char *prefix;      /* C prefix of every name */
        char **opaque;           /* $ref names or property paths kept as cJSON */
        size_t n_opaque;
        bool string_enums;       /* enums stay char * (built-in types) */
        cJSON *schemas;          /* components.schemas (OpenAPI input) */
        /* every object and enum type, in dependency order (children first) */
        struct kg_type **types;
        size_t n_types;
        size_t cap_types;
        /* $ref memo */
        char **ref_names;
        struct kg_type **ref_types;
        size_t n_refs;
        /* C names in use (types, functions' stems) */
        char **names;
        size_t n_names;
        /* roots, for the header's comment */
        struct kg_type **roots;
        size_t n_roots;
        char *error;
};

/* util.c */
void *kg_xmalloc(size_t n);
void *kg_xcalloc(size_t n, size_t m);
char *kg_xstrdup(const char *s);
char *kg_xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *kg_snake(const char *s);
char *kg_upper(const char *s);
bool kg_is_reserved(const char *s);
cJSON *kg_load_file(const char *path, char *err, size_t errlen);

/* model.c */
struct kg_type *kg_resolve(struct kg_gen *g, const cJSON *schema, const char *cname, const char *path,
                           int depth);
struct kg_type *kg_resolve_ref(struct kg_gen *g, const char *ref, int depth);
struct kg_type *kg_root_object(struct kg_gen *g, const cJSON *schema, const char *cname, const char *gv,
                               const char *kind);
char *kg_unique_name(struct kg_gen *g, const char *base);

/* emit.c */
int kg_emit(struct kg_gen *g, FILE *h, FILE *c, const char *header_name, const char *guard,
            const char *source);
