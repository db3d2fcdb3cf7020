/* koc-gen-types: allocation, names, and the YAML/JSON loader. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "model.h"

/* The generator is a build tool: running out of memory ends it. */
void *kg_xmalloc(size_t n) {
        void *p = malloc(n ? n : 1);
        if (!p) {
                fprintf(stderr, "koc-gen-types: out of memory\n");
                exit(1);
        }
        return p;
}

void *kg_xcalloc(size_t n, size_t m) {
        void *p = calloc(n ? n : 1, m ? m : 1);
        if (!p) {
                fprintf(stderr, "koc-gen-types: out of memory\n");
                exit(1);
        }
        return p;
}

char *kg_xstrdup(const char *s) {
        size_t n = strlen(s) + 1;
        return memcpy(kg_xmalloc(n), s, n);
}

char *kg_xprintf(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0)
                n = 0;
        char *s = kg_xmalloc((size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(s, (size_t)n + 1, fmt, ap);
        va_end(ap);
        return s;
}

/* camelCase, kebab-case, dotted and other non-identifier names become
 * snake_case identifiers: every run of characters that are not [A-Za-z0-9]
 * is one '_', an upper-case letter after a lower-case letter or a digit (or
 * before a lower-case letter inside an upper-case run: "HTTPGet" ->
 * "http_get") starts a word.  A leading digit gets "n_"; the empty name is
 * "x".  The mapping is deterministic; collisions are resolved by callers. */
char *kg_snake(const char *s) {
        size_t n = strlen(s);
        char *o = kg_xmalloc(n * 2 + 4);
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                unsigned char ch = (unsigned char)s[i];
                if (isalnum(ch) && ch < 128) {
                        if (isupper(ch)) {
                                bool prev_low = i > 0 && (islower((unsigned char)s[i - 1]) ||
                                                          isdigit((unsigned char)s[i - 1]));
                                bool acr_end = i > 0 && isupper((unsigned char)s[i - 1]) && i + 1 < n &&
                                               islower((unsigned char)s[i + 1]);
                                if ((prev_low || acr_end) && k > 0 && o[k - 1] != '_')
                                        o[k++] = '_';
                                o[k++] = (char)tolower(ch);
                        } else
                                o[k++] = (char)ch;
                } else if (k > 0 && o[k - 1] != '_')
                        o[k++] = '_';
        }
        while (k > 0 && o[k - 1] == '_')
                k--;
        o[k] = 0;
        if (k == 0) {
                free(o);
                return kg_xstrdup("x");
        }
        if (isdigit((unsigned char)o[0])) {
                char *p = kg_xprintf("n_%s", o);
                free(o);
                return p;
        }
        return o;
}

char *kg_upper(const char *s) {
        char *o = kg_snake(s);
        for (char *p = o; *p; p++)
                *p = (char)toupper((unsigned char)*p);
        return o;
}

/* C11 keywords, C++ keywords (the headers are usable from C++) and names the
 * headers use: such a member gets a trailing '_'. */
bool kg_is_reserved(const char *s) {
        static const char *const words[] = {
                "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
                "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
                "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch",
                "typedef", "union", "unsigned", "void", "volatile", "while", "bool", "true", "false",
                "class", "namespace", "template", "new", "delete", "private", "public", "protected",
                "this", "operator", "virtual", "friend", "typename", "using", "try", "catch", "throw",
                "explicit", "mutable", "export", "asm", "alignas", "alignof", "noexcept", "nullptr",
                "NULL", "errno", "assert", "and", "or", "not", "xor", "concept", "requires",
        };
        for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
                if (!strcmp(words[i], s))
                        return true;
        return false;
}

/* --- YAML into cJSON ------------------------------------------------------ */

#define KG_YAML_DEPTH 256

static cJSON *yaml_scalar(const yaml_event_t *ev) {
        const char *v = (const char *)ev->data.scalar.value;
        size_t n = ev->data.scalar.length;
        if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
                return cJSON_CreateString(v);
        if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "TRUE"))
                return cJSON_CreateTrue();
        if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "FALSE"))
                return cJSON_CreateFalse();
        if (n == 0 || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL"))
                return cJSON_CreateNull();
        char *end = NULL;
        errno = 0;
        double d = strtod(v, &end);
        if (end && *end == 0 && errno == 0 && (isdigit((unsigned char)v[0]) || v[0] == '-' || v[0] == '+' ||
                                               v[0] == '.'))
                return cJSON_CreateNumber(d);
        return cJSON_CreateString(v);
}

static int yaml_node(yaml_parser_t *p, yaml_event_t *first, cJSON **ret, int depth, char *err, size_t errlen);

static int yaml_next(yaml_parser_t *p, yaml_event_t *ev, char *err, size_t errlen) {
        if (!yaml_parser_parse(p, ev)) {
                snprintf(err, errlen, "line %zu: %s", p->problem_mark.line + 1,
                         p->problem ? p->problem : "invalid YAML");
                return -EINVAL;
        }
        return 0;
}

static int yaml_node(yaml_parser_t *p, yaml_event_t *ev, cJSON **ret, int depth, char *err, size_t errlen) {
        if (depth > KG_YAML_DEPTH) {
                snprintf(err, errlen, "line %zu: nested deeper than %d levels", ev->start_mark.line + 1,
                         KG_YAML_DEPTH);
                return -EINVAL;
        }
        switch (ev->type) {
        case YAML_SCALAR_EVENT:
                *ret = yaml_scalar(ev);
                return *ret ? 0 : -ENOMEM;
        case YAML_ALIAS_EVENT:
                snprintf(err, errlen, "line %zu: YAML aliases are not supported", ev->start_mark.line + 1);
                return -EINVAL;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
                bool seq = ev->type == YAML_SEQUENCE_START_EVENT;
                cJSON *o = seq ? cJSON_CreateArray() : cJSON_CreateObject();
                for (;;) {
                        yaml_event_t e, v;
                        int r = yaml_next(p, &e, err, errlen);
                        if (r < 0) {
                                cJSON_Delete(o);
                                return r;
                        }
                        if (e.type == YAML_SEQUENCE_END_EVENT || e.type == YAML_MAPPING_END_EVENT) {
                                yaml_event_delete(&e);
                                break;
                        }
                        cJSON *item = NULL;
                        if (seq) {
                                r = yaml_node(p, &e, &item, depth + 1, err, errlen);
                                yaml_event_delete(&e);
                                if (r < 0) {
                                        cJSON_Delete(o);
                                        return r;
                                }
                                cJSON_AddItemToArray(o, item);
                                continue;
                        }
                        if (e.type != YAML_SCALAR_EVENT) {
                                snprintf(err, errlen, "line %zu: only scalar mapping keys are supported",
                                         e.start_mark.line + 1);
                                yaml_event_delete(&e);
                                cJSON_Delete(o);
                                return -EINVAL;
                        }
                        char *key = kg_xstrdup((const char *)e.data.scalar.value);
                        yaml_event_delete(&e);
                        r = yaml_next(p, &v, err, errlen);
                        if (r >= 0) {
                                r = yaml_node(p, &v, &item, depth + 1, err, errlen);
                                yaml_event_delete(&v);
                        }
                        if (r < 0) {
                                free(key);
                                cJSON_Delete(o);
                                return r;
                        }
                        cJSON_AddItemToObject(o, key, item);
                        free(key);
                }
                *ret = o;
                return 0;
        }
        default:
                snprintf(err, errlen, "line %zu: unexpected YAML event", ev->start_mark.line + 1);
                return -EINVAL;
        }
}

/* Every document of a YAML stream, as a JSON array. */
static cJSON *yaml_load(FILE *f, char *err, size_t errlen) {
        yaml_parser_t p;
        if (!yaml_parser_initialize(&p))
                return NULL;
        yaml_parser_set_input_file(&p, f);
        cJSON *docs = cJSON_CreateArray();
        for (;;) {
                yaml_event_t ev;
                if (yaml_next(&p, &ev, err, errlen) < 0)
                        goto fail;
                yaml_event_type_t t = ev.type;
                if (t == YAML_STREAM_END_EVENT) {
                        yaml_event_delete(&ev);
                        break;
                }
                if (t == YAML_DOCUMENT_START_EVENT) {
                        yaml_event_delete(&ev);
                        yaml_event_t root;
                        if (yaml_next(&p, &root, err, errlen) < 0)
                                goto fail;
                        if (root.type == YAML_DOCUMENT_END_EVENT) {
                                yaml_event_delete(&root);
                                continue;
                        }
                        cJSON *doc = NULL;
                        int r = yaml_node(&p, &root, &doc, 0, err, errlen);
                        yaml_event_delete(&root);
                        if (r < 0)
                                goto fail;
                        cJSON_AddItemToArray(docs, doc);
                        continue;
                }
                yaml_event_delete(&ev);
        }
        yaml_parser_delete(&p);
        return docs;
fail:
        yaml_parser_delete(&p);
        cJSON_Delete(docs);
        return NULL;
}

/* A JSON file (first non-blank byte '{') or a YAML stream; YAML gives an
 * array of its documents, JSON the document itself. */
cJSON *kg_load_file(const char *path, char *err, size_t errlen) {
        FILE *f = fopen(path, "rb");
        if (!f) {
                snprintf(err, errlen, "%s", strerror(errno));
                return NULL;
        }
        int ch;
        while ((ch = fgetc(f)) != EOF && isspace(ch))
                ;
        rewind(f);
        cJSON *out = NULL;
        if (ch == '{') {
                size_t cap = 1 << 20, n = 0;
                char *buf = kg_xmalloc(cap);
                size_t got;
                while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
                        n += got;
                        if (cap - n < 2) {
                                cap *= 2;
                                char *nb = realloc(buf, cap);
                                if (!nb) {
                                        free(buf);
                                        fclose(f);
                                        snprintf(err, errlen, "out of memory");
                                        return NULL;
                                }
                                buf = nb;
                        }
                }
                buf[n] = 0;
                out = cJSON_ParseWithLength(buf, n);
                if (!out)
                        snprintf(err, errlen, "invalid JSON");
                free(buf);
        } else {
                snprintf(err, errlen, "invalid YAML");
                out = yaml_load(f, err, errlen);
        }
        fclose(f);
        return out;
}
