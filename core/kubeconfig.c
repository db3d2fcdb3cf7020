/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kubeconfig loading: libyaml's document API gives a node tree with line and
 * column marks; this file walks the few fields koc needs, merges several
 * files the way kubectl does (the first file to define a cluster, user or
 * context name wins; current-context comes from the first file that sets
 * it), and turns the selected context into a koc_cluster_config.
 *
 * Every error names the file, the field ("users[0].user.client-key-data")
 * and what was wrong.  Files are read whole, at most KOC_KUBECONFIG_MAX
 * bytes, before parsing, so bad input costs bounded memory; aliases are not
 * expanded (the walk only goes to a fixed depth).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include <cjson/cJSON.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cluster-config.h"
#include "koc/log.h"
#include "util.h"

/* Bounds on a file's YAML, see check_shape(). */
#define KC_MAX_DEPTH 64
#define KC_MAX_NODES 200000

typedef struct kc_file {
        char *path; /* as given */
        char *dir;  /* absolute directory, for relative paths */
        char *text; /* contents, until parsed */
        size_t len;
} kc_file;

typedef struct kc_cluster {
        char *name;
        const kc_file *file;
        size_t index;
        char *server, *ca, *ca_data, *tls_server_name, *proxy_url;
        int insecure;            /* -1 unset, 0, 1 */
        int disable_compression; /* -1 unset, 0, 1 */
        cJSON *exec_extension;   /* extensions[client.authentication.k8s.io/exec] */
} kc_cluster;

/* One as-user-extra entry: a key and its values. */
typedef struct kc_extra {
        char *key;
        char **values;
        size_t n_values;
} kc_extra;

typedef struct kc_user {
        char *name;
        const kc_file *file;
        size_t index;
        char *token, *token_file, *cert, *cert_data, *key, *key_data;
        char *username, *password;
        char *as, *as_uid;
        char **as_groups;
        size_t n_as_groups;
        kc_extra *as_extra;
        size_t n_as_extra;
        bool has_auth_provider;
        koc_exec_config *exec;
} kc_user;

typedef struct kc_context {
        char *name;
        const kc_file *file;
        size_t index;
        char *cluster, *user, *namespace;
} kc_context;

typedef struct kc_merged {
        kc_file *files;
        size_t n_files;
        kc_cluster *clusters;
        size_t n_clusters;
        kc_user *users;
        size_t n_users;
        kc_context *contexts;
        size_t n_contexts;
        char *current_context;
        const kc_file *current_context_file;
} kc_merged;

/* State while walking one file. */
typedef struct kc_walk {
        const kc_file *file;
        yaml_document_t *doc;
        koc_error *err;
        unsigned n_unknown; /* unknown keys warned about in this file */
} kc_walk;

static void free_secret(char *s) {
        if (s)
                OPENSSL_cleanse(s, strlen(s));
        free(s);
}

static void strv_free_n(char **v, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

static void merged_free(kc_merged *m) {
        for (size_t i = 0; i < m->n_clusters; i++) {
                kc_cluster *c = &m->clusters[i];
                free(c->name);
                free(c->server);
                free(c->ca);
                free(c->ca_data);
                free(c->tls_server_name);
                free_secret(c->proxy_url); /* may carry a proxy password */
                cJSON_Delete(c->exec_extension);
        }
        for (size_t i = 0; i < m->n_users; i++) {
                kc_user *u = &m->users[i];
                free(u->name);
                free_secret(u->token);
                free(u->token_file);
                free(u->cert);
                free(u->cert_data);
                free(u->key);
                free_secret(u->key_data);
                free(u->username);
                free_secret(u->password);
                free(u->as);
                free(u->as_uid);
                strv_free_n(u->as_groups, u->n_as_groups);
                for (size_t k = 0; k < u->n_as_extra; k++) {
                        free(u->as_extra[k].key);
                        strv_free_n(u->as_extra[k].values, u->as_extra[k].n_values);
                }
                free(u->as_extra);
                koc__exec_config_free(u->exec);
        }
        for (size_t i = 0; i < m->n_contexts; i++) {
                kc_context *c = &m->contexts[i];
                free(c->name);
                free(c->cluster);
                free(c->user);
                free(c->namespace);
        }
        for (size_t i = 0; i < m->n_files; i++) {
                free(m->files[i].path);
                free(m->files[i].dir);
                free(m->files[i].text);
        }
        free(m->clusters);
        free(m->users);
        free(m->contexts);
        free(m->files);
        free(m->current_context);
}

/* ---- YAML node helpers -------------------------------------------------- */

static const char *node_kind(const yaml_node_t *n) {
        switch (n->type) {
        case YAML_SCALAR_NODE:
                return "a scalar";
        case YAML_SEQUENCE_NODE:
                return "a list";
        case YAML_MAPPING_NODE:
                return "a mapping";
        default:
                return "nothing";
        }
}

static bool node_is_null(const yaml_node_t *n) {
        if (!n)
                return true;
        if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
                return false;
        const char *v = (const char *)n->data.scalar.value;
        return n->data.scalar.length == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
               strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

static int type_error(kc_walk *w, const char *field, const yaml_node_t *n, const char *expected) {
        return koc_error_set(w->err, -EINVAL, "%s: %s: expected %s, got %s (line %zu, column %zu)",
                             w->file->path, field, expected, node_kind(n), n->start_mark.line + 1,
                             n->start_mark.column + 1);
}

/* Looks up key in a mapping node; NULL when absent. */
static yaml_node_t *map_get(kc_walk *w, const yaml_node_t *map, const char *key) {
        for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
             p++) {
                yaml_node_t *k = yaml_document_get_node(w->doc, p->key);
                if (k && k->type == YAML_SCALAR_NODE &&
                    strlen((const char *)k->data.scalar.value) == k->data.scalar.length &&
                    strcmp((const char *)k->data.scalar.value, key) == 0)
                        return yaml_document_get_node(w->doc, p->value);
        }
        return NULL;
}

/* The keys of client-go's kubeconfig (clientcmd/api/v1), known even where koc
 * does not use them, so that only misspellings are warned about. */
static const char *const top_keys[] = {"apiVersion",      "kind",       "preferences",
                                       "clusters",        "users",      "contexts",
                                       "current-context", "extensions", NULL};
static const char *const cluster_keys[] = {"server",
                                           "tls-server-name",
                                           "insecure-skip-tls-verify",
                                           "certificate-authority",
                                           "certificate-authority-data",
                                           "proxy-url",
                                           "disable-compression",
                                           "extensions",
                                           NULL};
static const char *const user_keys[] = {"client-certificate",
                                        "client-certificate-data",
                                        "client-key",
                                        "client-key-data",
                                        "token",
                                        "tokenFile",
                                        "as",
                                        "as-uid",
                                        "as-groups",
                                        "as-user-extra",
                                        "username",
                                        "password",
                                        "auth-provider",
                                        "exec",
                                        "extensions",
                                        NULL};
static const char *const context_keys[] = {"cluster", "user", "namespace", "extensions", NULL};
static const char *const exec_keys[] = {"command",         "args",       "env",
                                        "apiVersion",      "installHint", "provideClusterInfo",
                                        "interactiveMode", NULL};

/* A hostile file with thousands of unknown keys gets this many lines. */
#define UNKNOWN_KEYS_LOGGED 8

/* A misspelled key ("tokn") would otherwise be ignored without a word, and
 * the user left to wonder why the token is not sent.  where is the field of
 * the mapping ("users[0].user"), or NULL at the top level. */
static void warn_unknown_keys(kc_walk *w, const yaml_node_t *map, const char *where,
                              const char *const *known) {
        for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
             p++) {
                yaml_node_t *k = yaml_document_get_node(w->doc, p->key);
                if (!k || k->type != YAML_SCALAR_NODE)
                        continue;
                const char *key = (const char *)k->data.scalar.value;
                bool found = false;
                for (size_t i = 0; known[i] && !found; i++)
                        found = strcmp(key, known[i]) == 0;
                if (found)
                        continue;
                if (++w->n_unknown > UNKNOWN_KEYS_LOGGED) {
                        if (w->n_unknown == UNKNOWN_KEYS_LOGGED + 1)
                                koc_log_warn("config", "%s: more unknown keys; not listing them",
                                             w->file->path);
                        continue;
                }
                koc_log_warn("config", "%s: %s%s%.64s: unknown key, ignored (line %zu)",
                             w->file->path, where ? where : "", where ? "." : "", key,
                             k->start_mark.line + 1);
        }
}

/* *ret = the mapping at key, NULL when absent or null. */
static int get_map(kc_walk *w, const yaml_node_t *map, const char *key, const char *field,
                   yaml_node_t **ret) {
        yaml_node_t *n = map_get(w, map, key);
        if (node_is_null(n)) {
                *ret = NULL;
                return 0;
        }
        if (n->type != YAML_MAPPING_NODE)
                return type_error(w, field, n, "a mapping");
        *ret = n;
        return 0;
}

static int get_list(kc_walk *w, const yaml_node_t *map, const char *key, const char *field,
                    yaml_node_t **ret) {
        yaml_node_t *n = map_get(w, map, key);
        if (node_is_null(n)) {
                *ret = NULL;
                return 0;
        }
        if (n->type != YAML_SEQUENCE_NODE)
                return type_error(w, field, n, "a list");
        *ret = n;
        return 0;
}

/* *ret = a copy of the string at key, NULL when absent, null or empty. */
static int get_string(kc_walk *w, const yaml_node_t *map, const char *key, const char *field,
                      char **ret) {
        yaml_node_t *n = map_get(w, map, key);
        *ret = NULL;
        if (node_is_null(n))
                return 0;
        if (n->type != YAML_SCALAR_NODE)
                return type_error(w, field, n, "a string");
        if (strlen((const char *)n->data.scalar.value) != n->data.scalar.length)
                return koc_error_set(w->err, -EINVAL, "%s: %s: contains a NUL character (line %zu)",
                                     w->file->path, field, n->start_mark.line + 1);
        if (n->data.scalar.length == 0)
                return 0;
        *ret = strdup((const char *)n->data.scalar.value);
        if (!*ret)
                return koc_error_set(w->err, -ENOMEM, "out of memory");
        return 0;
}

static int get_bool(kc_walk *w, const yaml_node_t *map, const char *key, const char *field,
                    int *ret) {
        yaml_node_t *n = map_get(w, map, key);
        *ret = -1;
        if (node_is_null(n))
                return 0;
        if (n->type != YAML_SCALAR_NODE)
                return type_error(w, field, n, "a boolean");
        const char *v = (const char *)n->data.scalar.value;
        if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
                if (strcmp(v, "true") == 0 || strcmp(v, "True") == 0 || strcmp(v, "TRUE") == 0) {
                        *ret = 1;
                        return 0;
                }
                if (strcmp(v, "false") == 0 || strcmp(v, "False") == 0 || strcmp(v, "FALSE") == 0) {
                        *ret = 0;
                        return 0;
                }
        }
        return koc_error_set(w->err, -EINVAL,
                             "%s: %s: expected true or false, got \"%.64s\" (line %zu, column %zu)",
                             w->file->path, field, v, n->start_mark.line + 1,
                             n->start_mark.column + 1);
}

/* A copy of a scalar node's text (empty allowed), or an error naming field. */
static int scalar_dup(kc_walk *w, const yaml_node_t *n, const char *field, char **ret) {
        if (!n || n->type != YAML_SCALAR_NODE)
                return type_error(w, field, n, "a string");
        if (strlen((const char *)n->data.scalar.value) != n->data.scalar.length)
                return koc_error_set(w->err, -EINVAL, "%s: %s: contains a NUL character (line %zu)",
                                     w->file->path, field, n->start_mark.line + 1);
        *ret = strdup((const char *)n->data.scalar.value);
        return *ret ? 0 : koc_error_set(w->err, -ENOMEM, "out of memory");
}

/* A list of strings (as-groups, an as-user-extra entry's values): *ret gets
 * n strings, none when the key is absent or null. */
static int list_strings(kc_walk *w, const yaml_node_t *list, const char *field, char ***ret,
                        size_t *ret_n) {
        size_t n = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
        char **v = calloc(n + 1, sizeof *v);
        if (!v)
                return koc_error_set(w->err, -ENOMEM, "out of memory");
        *ret = v;
        *ret_n = 0;
        for (size_t k = 0; k < n; k++) {
                char f[200];
                snprintf(f, sizeof f, "%s[%zu]", field, k);
                yaml_node_t *a = yaml_document_get_node(w->doc, list->data.sequence.items.start[k]);
                int r = scalar_dup(w, a, f, &v[k]);
                if (r < 0)
                        return r;
                (*ret_n)++;
        }
        return 0;
}

static int get_string_list(kc_walk *w, const yaml_node_t *map, const char *key, const char *field,
                           char ***ret, size_t *ret_n) {
        yaml_node_t *list = NULL;
        int r = get_list(w, map, key, field, &list);
        if (r < 0 || !list)
                return r;
        return list_strings(w, list, field, ret, ret_n);
}

/* as-user-extra: a mapping of keys to lists of strings, as client-go's
 * map[string][]string. */
static int get_extra(kc_walk *w, const yaml_node_t *map, const char *key, const char *field,
                     kc_extra **ret, size_t *ret_n) {
        yaml_node_t *m = NULL;
        int r = get_map(w, map, key, field, &m);
        if (r < 0 || !m)
                return r;
        size_t n = (size_t)(m->data.mapping.pairs.top - m->data.mapping.pairs.start);
        kc_extra *v = calloc(n + 1, sizeof *v);
        if (!v)
                return koc_error_set(w->err, -ENOMEM, "out of memory");
        *ret = v;
        *ret_n = 0;
        for (size_t k = 0; k < n; k++) {
                yaml_node_pair_t *p = &m->data.mapping.pairs.start[k];
                yaml_node_t *kn = yaml_document_get_node(w->doc, p->key);
                yaml_node_t *vn = yaml_document_get_node(w->doc, p->value);
                char f[200];
                snprintf(f, sizeof f, "%s (key %zu)", field, k);
                kc_extra *e = &v[(*ret_n)++];
                if ((r = scalar_dup(w, kn, f, &e->key)) < 0)
                        return r;
                if (!e->key[0])
                        return koc_error_set(w->err, -EINVAL, "%s: %s: an empty key (line %zu)",
                                             w->file->path, field, kn->start_mark.line + 1);
                /* Only for messages: a long key is cut at 64 bytes. */
                if (snprintf(f, sizeof f, "%s.%.64s", field, e->key) >= (int)sizeof f)
                        f[sizeof f - 1] = '\0';
                if (node_is_null(vn))
                        continue;
                if (vn->type != YAML_SEQUENCE_NODE)
                        return type_error(w, f, vn, "a list of strings");
                if ((r = list_strings(w, vn, f, &e->values, &e->n_values)) < 0)
                        return r;
        }
        return 0;
}

/* Grows an array of n elements of size sz by one zeroed element. */
static void *grow(void *arr, size_t n, size_t sz) {
        if (n >= SIZE_MAX / sz - 1)
                return NULL;
        void *a = realloc(arr, (n + 1) * sz);
        if (a)
                memset((char *)a + n * sz, 0, sz);
        return a;
}

/* Walks a named list ("clusters", "users", "contexts"); calls fn for each
 * element's inner mapping (the value of `inner`), with the element's name. */
typedef int (*kc_entry_fn)(kc_walk *w, kc_merged *m, const char *name, size_t index,
                           const yaml_node_t *inner);

static int walk_named_list(kc_walk *w, kc_merged *m, const yaml_node_t *root, const char *key,
                           const char *inner_key, kc_entry_fn fn) {
        yaml_node_t *list = NULL;
        int r = get_list(w, root, key, key, &list);
        if (r < 0 || !list)
                return r;
        size_t i = 0;
        for (yaml_node_item_t *it = list->data.sequence.items.start;
             it < list->data.sequence.items.top; it++, i++) {
                char field[128];
                yaml_node_t *el = yaml_document_get_node(w->doc, *it);
                snprintf(field, sizeof field, "%s[%zu]", key, i);
                if (!el || el->type != YAML_MAPPING_NODE)
                        return type_error(w, field, el, "a mapping");
                _koc_cleanup_free_ char *name = NULL;
                snprintf(field, sizeof field, "%s[%zu].name", key, i);
                r = get_string(w, el, "name", field, &name);
                if (r < 0)
                        return r;
                if (!name)
                        return koc_error_set(w->err, -EINVAL, "%s: %s: missing (line %zu)",
                                             w->file->path, field, el->start_mark.line + 1);
                yaml_node_t *inner = NULL;
                snprintf(field, sizeof field, "%s[%zu].%s", key, i, inner_key);
                r = get_map(w, el, inner_key, field, &inner);
                if (r < 0)
                        return r;
                if (!inner)
                        return koc_error_set(w->err, -EINVAL, "%s: %s: missing (line %zu)",
                                             w->file->path, field, el->start_mark.line + 1);
                r = fn(w, m, name, i, inner);
                if (r < 0)
                        return r;
        }
        return 0;
}

#define FIELD(buf, list, i, inner, key)                                                            \
        (snprintf(buf, sizeof buf, "%s[%zu].%s.%s", list, i, inner, key), buf)

/* A YAML node as JSON, the way Go's yaml-to-JSON conversion reads a
 * RawExtension: plain true/false/null and numbers keep their type, every
 * other scalar is a string.  Aliases share nodes in libyaml's document, so
 * *budget bounds the nodes written (an alias bomb stops there), and depth
 * is bounded too. */
static cJSON *yaml_to_json(kc_walk *w, const yaml_node_t *n, unsigned depth, size_t *budget) {
        if (!n || depth > KC_MAX_DEPTH || *budget == 0)
                return NULL;
        --*budget;
        if (n->type == YAML_SCALAR_NODE) {
                const char *v = (const char *)n->data.scalar.value;
                if (strlen(v) != n->data.scalar.length)
                        return NULL;
                if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
                        if (node_is_null(n))
                                return cJSON_CreateNull();
                        if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0)
                                return cJSON_CreateBool(v[0] == 't');
                        char *end = NULL;
                        double d = strtod(v, &end);
                        if (*v && end && !*end && strspn(v, "+-0123456789.eE") == strlen(v))
                                return cJSON_CreateNumber(d);
                }
                return cJSON_CreateString(v);
        }
        if (n->type == YAML_SEQUENCE_NODE) {
                cJSON *a = cJSON_CreateArray();
                for (yaml_node_item_t *it = n->data.sequence.items.start;
                     a && it < n->data.sequence.items.top; it++) {
                        cJSON *e = yaml_to_json(w, yaml_document_get_node(w->doc, *it), depth + 1,
                                                budget);
                        if (!e) {
                                cJSON_Delete(a);
                                return NULL;
                        }
                        cJSON_AddItemToArray(a, e);
                }
                return a;
        }
        if (n->type == YAML_MAPPING_NODE) {
                cJSON *o = cJSON_CreateObject();
                for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
                     o && p < n->data.mapping.pairs.top; p++) {
                        yaml_node_t *k = yaml_document_get_node(w->doc, p->key);
                        yaml_node_t *v = yaml_document_get_node(w->doc, p->value);
                        cJSON *e = k && k->type == YAML_SCALAR_NODE
                                           ? yaml_to_json(w, v, depth + 1, budget)
                                           : NULL;
                        if (!e) {
                                cJSON_Delete(o);
                                return NULL;
                        }
                        cJSON_AddItemToObject(o, (const char *)k->data.scalar.value, e);
                }
                return o;
        }
        return NULL;
}

/* clusters[].cluster.extensions: the entry client-go hands to exec plugins
 * as spec.cluster.config. */
static int get_exec_extension(kc_walk *w, const yaml_node_t *n, size_t i, cJSON **ret) {
        char f[160];
        yaml_node_t *list = NULL;
        int r = get_list(w, n, "extensions", FIELD(f, "clusters", i, "cluster", "extensions"),
                         &list);
        if (r < 0 || !list)
                return r;
        size_t k = 0;
        for (yaml_node_item_t *it = list->data.sequence.items.start;
             it < list->data.sequence.items.top; it++, k++) {
                yaml_node_t *el = yaml_document_get_node(w->doc, *it);
                snprintf(f, sizeof f, "clusters[%zu].cluster.extensions[%zu]", i, k);
                if (!el || el->type != YAML_MAPPING_NODE)
                        return type_error(w, f, el, "a mapping");
                _koc_cleanup_free_ char *name = NULL;
                if ((r = get_string(w, el, "name", f, &name)) < 0)
                        return r;
                if (!name || strcmp(name, "client.authentication.k8s.io/exec") != 0 || *ret)
                        continue;
                yaml_node_t *ext = map_get(w, el, "extension");
                if (node_is_null(ext))
                        continue;
                size_t budget = 10000;
                if (!(*ret = yaml_to_json(w, ext, 0, &budget)))
                        return koc_error_set(w->err, -EINVAL,
                                             "%s: %s.extension: not convertible to JSON (or more "
                                             "than 10000 nodes)",
                                             w->file->path, f);
        }
        return 0;
}

static int add_cluster(kc_walk *w, kc_merged *m, const char *name, size_t i, const yaml_node_t *n) {
        for (size_t k = 0; k < m->n_clusters; k++)
                if (strcmp(m->clusters[k].name, name) == 0)
                        return 0; /* the first definition wins */
        kc_cluster *a = grow(m->clusters, m->n_clusters, sizeof *a);
        if (!a)
                return koc_error_set(w->err, -ENOMEM, "out of memory");
        m->clusters = a;
        kc_cluster *c = &a[m->n_clusters++];
        c->file = w->file;
        c->index = i;
        c->insecure = -1;
        c->disable_compression = -1;
        if (!(c->name = strdup(name)))
                return koc_error_set(w->err, -ENOMEM, "out of memory");
        char f[160];
        int r;
        snprintf(f, sizeof f, "clusters[%zu].cluster", i);
        warn_unknown_keys(w, n, f, cluster_keys);
        if ((r = get_string(w, n, "server", FIELD(f, "clusters", i, "cluster", "server"),
                            &c->server)) < 0 ||
            (r = get_string(w, n, "certificate-authority",
                            FIELD(f, "clusters", i, "cluster", "certificate-authority"), &c->ca)) <
                    0 ||
            (r = get_string(w, n, "certificate-authority-data",
                            FIELD(f, "clusters", i, "cluster", "certificate-authority-data"),
                            &c->ca_data)) < 0 ||
            (r = get_string(w, n, "tls-server-name",
                            FIELD(f, "clusters", i, "cluster", "tls-server-name"),
                            &c->tls_server_name)) < 0 ||
            (r = get_bool(w, n, "insecure-skip-tls-verify",
                          FIELD(f, "clusters", i, "cluster", "insecure-skip-tls-verify"),
                          &c->insecure)) < 0 ||
            (r = get_string(w, n, "proxy-url", FIELD(f, "clusters", i, "cluster", "proxy-url"),
                            &c->proxy_url)) < 0 ||
            (r = get_bool(w, n, "disable-compression",
                          FIELD(f, "clusters", i, "cluster", "disable-compression"),
                          &c->disable_compression)) < 0 ||
            (r = get_exec_extension(w, n, i, &c->exec_extension)) < 0)
                return r;
        return 0;
}

static int parse_exec(kc_walk *w, const yaml_node_t *n, size_t i, koc_exec_config **ret) {
        char f[160];
        int r;
        _koc_cleanup_free_ char *where = NULL;
        if (asprintf(&where, "%s: users[%zu].user.exec", w->file->path, i) < 0)
                return koc_error_set(w->err, -ENOMEM, "out of memory");
        koc_exec_config *e = calloc(1, sizeof *e);
        if (!e)
                return koc_error_set(w->err, -ENOMEM, "out of memory");
        e->where = where;
        where = NULL;
        *ret = e; /* freed with the user on failure */

        if ((r = get_string(w, n, "command", FIELD(f, "users", i, "user", "exec.command"),
                            &e->command)) < 0)
                return r;
        if (!e->command)
                return koc_error_set(w->err, -EINVAL, "%s: %s: missing", w->file->path, f);
        /* client-go: a command with a slash in it is a path, and a relative
         * one is relative to the kubeconfig's directory, not to the working
         * directory of whatever runs the operator; a bare name is looked up
         * in PATH. */
        if (e->command[0] != '/' && strchr(e->command, '/')) {
                char *abs = NULL;
                if (asprintf(&abs, "%s/%s", w->file->dir, e->command) < 0)
                        return koc_error_set(w->err, -ENOMEM, "out of memory");
                free(e->command);
                e->command = abs;
        }
        snprintf(f, sizeof f, "users[%zu].user.exec", i);
        warn_unknown_keys(w, n, f, exec_keys);
        int provide = -1;
        if ((r = get_bool(w, n, "provideClusterInfo",
                          FIELD(f, "users", i, "user", "exec.provideClusterInfo"), &provide)) < 0)
                return r;
        e->provide_cluster_info = provide == 1;
        if ((r = get_string(w, n, "apiVersion", FIELD(f, "users", i, "user", "exec.apiVersion"),
                            &e->api_version)) < 0)
                return r;
        if (!e->api_version)
                return koc_error_set(w->err, -EINVAL, "%s: %s: missing", w->file->path, f);
        if (strcmp(e->api_version, "client.authentication.k8s.io/v1") != 0 &&
            strcmp(e->api_version, "client.authentication.k8s.io/v1beta1") != 0)
                return koc_error_set(w->err, -EINVAL,
                                     "%s: %s: \"%s\" is not supported (use "
                                     "client.authentication.k8s.io/v1 or v1beta1)",
                                     w->file->path, f, e->api_version);

        /* koc runs without a terminal: a plugin that insists on one
         * cannot work, so say so now rather than hang or fail later. */
        _koc_cleanup_free_ char *mode = NULL;
        if ((r = get_string(w, n, "interactiveMode",
                            FIELD(f, "users", i, "user", "exec.interactiveMode"), &mode)) < 0)
                return r;
        if (mode && strcmp(mode, "Never") != 0 && strcmp(mode, "IfAvailable") != 0)
                return koc_error_set(w->err, -ENOTSUP,
                                     "%s: %s: \"%s\" is not supported: koc runs without a "
                                     "terminal (use Never or IfAvailable)",
                                     w->file->path, f, mode);
        if ((r = get_string(w, n, "installHint", FIELD(f, "users", i, "user", "exec.installHint"),
                            &e->install_hint)) < 0)
                return r;

        yaml_node_t *args = NULL;
        if ((r = get_list(w, n, "args", FIELD(f, "users", i, "user", "exec.args"), &args)) < 0)
                return r;
        size_t n_args =
                args ? (size_t)(args->data.sequence.items.top - args->data.sequence.items.start)
                     : 0;
        e->argv = calloc(n_args + 2, sizeof(char *));
        if (!e->argv || !(e->argv[0] = strdup(e->command)))
                return koc_error_set(w->err, -ENOMEM, "out of memory");
        for (size_t k = 0; k < n_args; k++) {
                yaml_node_t *a = yaml_document_get_node(w->doc, args->data.sequence.items.start[k]);
                snprintf(f, sizeof f, "users[%zu].user.exec.args[%zu]", i, k);
                if (!a || a->type != YAML_SCALAR_NODE)
                        return type_error(w, f, a, "a string");
                if (strlen((const char *)a->data.scalar.value) != a->data.scalar.length)
                        return koc_error_set(w->err, -EINVAL, "%s: %s: contains a NUL character",
                                             w->file->path, f);
                if (!(e->argv[k + 1] = strdup((const char *)a->data.scalar.value)))
                        return koc_error_set(w->err, -ENOMEM, "out of memory");
                e->n_args++;
        }

        yaml_node_t *env = NULL;
        if ((r = get_list(w, n, "env", FIELD(f, "users", i, "user", "exec.env"), &env)) < 0)
                return r;
        size_t n_env =
                env ? (size_t)(env->data.sequence.items.top - env->data.sequence.items.start) : 0;
        if (n_env > 0 && !(e->env = calloc(n_env, sizeof *e->env)))
                return koc_error_set(w->err, -ENOMEM, "out of memory");
        for (size_t k = 0; k < n_env; k++) {
                yaml_node_t *a = yaml_document_get_node(w->doc, env->data.sequence.items.start[k]);
                snprintf(f, sizeof f, "users[%zu].user.exec.env[%zu]", i, k);
                if (!a || a->type != YAML_MAPPING_NODE)
                        return type_error(w, f, a, "a mapping");
                koc_exec_env *v = &e->env[e->n_env++];
                char f2[200];
                snprintf(f2, sizeof f2, "%s.name", f);
                if ((r = get_string(w, a, "name", f2, &v->name)) < 0)
                        return r;
                if (!v->name || strchr(v->name, '='))
                        return koc_error_set(w->err, -EINVAL,
                                             "%s: %s: missing or not a variable name",
                                             w->file->path, f2);
                snprintf(f2, sizeof f2, "%s.value", f);
                if ((r = get_string(w, a, "value", f2, &v->value)) < 0)
                        return r;
                if (!v->value && !(v->value = strdup("")))
                        return koc_error_set(w->err, -ENOMEM, "out of memory");
        }
        return 0;
}

static int add_user(kc_walk *w, kc_merged *m, const char *name, size_t i, const yaml_node_t *n) {
        for (size_t k = 0; k < m->n_users; k++)
                if (strcmp(m->users[k].name, name) == 0)
                        return 0;
        kc_user *a = grow(m->users, m->n_users, sizeof *a);
        if (!a)
                return koc_error_set(w->err, -ENOMEM, "out of memory");
        m->users = a;
        kc_user *u = &a[m->n_users++];
        u->file = w->file;
        u->index = i;
        if (!(u->name = strdup(name)))
                return koc_error_set(w->err, -ENOMEM, "out of memory");
        char f[160];
        int r;
        snprintf(f, sizeof f, "users[%zu].user", i);
        warn_unknown_keys(w, n, f, user_keys);
        if ((r = get_string(w, n, "token", FIELD(f, "users", i, "user", "token"), &u->token)) < 0 ||
            (r = get_string(w, n, "tokenFile", FIELD(f, "users", i, "user", "tokenFile"),
                            &u->token_file)) < 0 ||
            (r = get_string(w, n, "client-certificate",
                            FIELD(f, "users", i, "user", "client-certificate"), &u->cert)) < 0 ||
            (r = get_string(w, n, "client-certificate-data",
                            FIELD(f, "users", i, "user", "client-certificate-data"),
                            &u->cert_data)) < 0 ||
            (r = get_string(w, n, "client-key", FIELD(f, "users", i, "user", "client-key"),
                            &u->key)) < 0 ||
            (r = get_string(w, n, "client-key-data",
                            FIELD(f, "users", i, "user", "client-key-data"), &u->key_data)) < 0 ||
            (r = get_string(w, n, "username", FIELD(f, "users", i, "user", "username"),
                            &u->username)) < 0 ||
            (r = get_string(w, n, "password", FIELD(f, "users", i, "user", "password"),
                            &u->password)) < 0 ||
            (r = get_string(w, n, "as", FIELD(f, "users", i, "user", "as"), &u->as)) < 0 ||
            (r = get_string(w, n, "as-uid", FIELD(f, "users", i, "user", "as-uid"), &u->as_uid)) <
                    0 ||
            (r = get_string_list(w, n, "as-groups", FIELD(f, "users", i, "user", "as-groups"),
                                 &u->as_groups, &u->n_as_groups)) < 0 ||
            (r = get_extra(w, n, "as-user-extra", FIELD(f, "users", i, "user", "as-user-extra"),
                           &u->as_extra, &u->n_as_extra)) < 0)
                return r;
        yaml_node_t *ap = map_get(w, n, "auth-provider");
        u->has_auth_provider = !node_is_null(ap);
        yaml_node_t *exec = NULL;
        if ((r = get_map(w, n, "exec", FIELD(f, "users", i, "user", "exec"), &exec)) < 0)
                return r;
        if (exec && (r = parse_exec(w, exec, i, &u->exec)) < 0)
                return r;
        return 0;
}

static int add_context(kc_walk *w, kc_merged *m, const char *name, size_t i, const yaml_node_t *n) {
        for (size_t k = 0; k < m->n_contexts; k++)
                if (strcmp(m->contexts[k].name, name) == 0)
                        return 0;
        kc_context *a = grow(m->contexts, m->n_contexts, sizeof *a);
        if (!a)
                return koc_error_set(w->err, -ENOMEM, "out of memory");
        m->contexts = a;
        kc_context *c = &a[m->n_contexts++];
        c->file = w->file;
        c->index = i;
        if (!(c->name = strdup(name)))
                return koc_error_set(w->err, -ENOMEM, "out of memory");
        char f[160];
        int r;
        snprintf(f, sizeof f, "contexts[%zu].context", i);
        warn_unknown_keys(w, n, f, context_keys);
        if ((r = get_string(w, n, "cluster", FIELD(f, "contexts", i, "context", "cluster"),
                            &c->cluster)) < 0 ||
            (r = get_string(w, n, "user", FIELD(f, "contexts", i, "context", "user"), &c->user)) <
                    0 ||
            (r = get_string(w, n, "namespace", FIELD(f, "contexts", i, "context", "namespace"),
                            &c->namespace)) < 0)
                return r;
        return 0;
}

/* ---- files -------------------------------------------------------------- */

static int file_dir(const char *path, char **ret) {
        const char *slash = strrchr(path, '/');
        _koc_cleanup_free_ char *dir = NULL;
        if (!slash)
                dir = strdup(".");
        else if (slash == path)
                dir = strdup("/");
        else
                dir = strndup(path, (size_t)(slash - path));
        if (!dir)
                return -ENOMEM;
        if (dir[0] == '/') {
                *ret = dir;
                dir = NULL;
                return 0;
        }
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd))
                return -errno;
        if (asprintf(ret, "%s/%s", cwd, dir) < 0)
                return -ENOMEM;
        return 0;
}

static int yaml_error(const kc_file *file, yaml_parser_t *parser, koc_error *err) {
        if (parser->error == YAML_MEMORY_ERROR)
                return koc_error_set(err, -ENOMEM, "%s: out of memory parsing YAML", file->path);
        return koc_error_set(err, -EINVAL, "%s: line %zu, column %zu: YAML syntax error: %s%s%s",
                             file->path, parser->problem_mark.line + 1,
                             parser->problem_mark.column + 1,
                             parser->problem ? parser->problem : "invalid YAML",
                             parser->context ? " " : "", parser->context ? parser->context : "");
}

/* A first pass over the events, before the document is built: rejects
 * nesting deeper than KC_MAX_DEPTH (libyaml's scanner is quadratic in the
 * nesting depth, and a kubeconfig is 6 levels deep) and more than
 * KC_MAX_NODES nodes (the tree costs about 100 bytes a node), so that
 * hostile input costs bounded time and memory. */

static int check_shape(const kc_file *file, const char *text, size_t len, koc_error *err) {
        yaml_parser_t parser;
        if (!yaml_parser_initialize(&parser))
                return koc_error_set(err, -ENOMEM, "out of memory");
        yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
        int r = 0;
        size_t depth = 0, nodes = 0;
        for (;;) {
                yaml_event_t ev;
                if (!yaml_parser_parse(&parser, &ev)) {
                        r = yaml_error(file, &parser, err);
                        break;
                }
                yaml_event_type_t t = ev.type;
                size_t line = ev.start_mark.line + 1, col = ev.start_mark.column + 1;
                yaml_event_delete(&ev);
                if (t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT)
                        depth++;
                else if (t == YAML_SEQUENCE_END_EVENT || t == YAML_MAPPING_END_EVENT)
                        depth--;
                if (t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT ||
                    t == YAML_SCALAR_EVENT || t == YAML_ALIAS_EVENT)
                        nodes++;
                if (depth > KC_MAX_DEPTH) {
                        r = koc_error_set(err, -EINVAL,
                                          "%s: line %zu, column %zu: nested more than %d levels "
                                          "deep, not a kubeconfig",
                                          file->path, line, col, KC_MAX_DEPTH);
                        break;
                }
                if (nodes > KC_MAX_NODES) {
                        r = koc_error_set(err, -EFBIG,
                                          "%s: line %zu: more than %d YAML nodes, not a kubeconfig",
                                          file->path, line, KC_MAX_NODES);
                        break;
                }
                /* The document API reads only the first document. */
                if (t == YAML_STREAM_END_EVENT || t == YAML_DOCUMENT_END_EVENT)
                        break;
        }
        yaml_parser_delete(&parser);
        return r;
}

static int parse_file(kc_merged *m, const kc_file *file, const char *text, size_t len,
                      koc_error *err) {
        yaml_parser_t parser;
        yaml_document_t doc;
        int r0 = check_shape(file, text, len, err);
        if (r0 < 0)
                return r0;
        if (!yaml_parser_initialize(&parser))
                return koc_error_set(err, -ENOMEM, "out of memory");
        yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
        if (!yaml_parser_load(&parser, &doc)) {
                int r = yaml_error(file, &parser, err);
                yaml_parser_delete(&parser);
                return r;
        }
        yaml_parser_delete(&parser);

        kc_walk w = {.file = file, .doc = &doc, .err = err};
        _koc_cleanup_free_ char *cc = NULL;
        int r = 0;
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        if (!root || node_is_null(root))
                goto out; /* an empty kubeconfig, as kubectl allows */
        if (root->type != YAML_MAPPING_NODE) {
                r = type_error(&w, "(top level)", root, "a mapping");
                goto out;
        }
        warn_unknown_keys(&w, root, NULL, top_keys);
        r = get_string(&w, root, "current-context", "current-context", &cc);
        if (r < 0)
                goto out;
        if (cc && !m->current_context) {
                m->current_context = cc;
                m->current_context_file = file;
                cc = NULL;
        }
        r = walk_named_list(&w, m, root, "clusters", "cluster", add_cluster);
        if (r >= 0)
                r = walk_named_list(&w, m, root, "users", "user", add_user);
        if (r >= 0)
                r = walk_named_list(&w, m, root, "contexts", "context", add_context);
out:
        yaml_document_delete(&doc);
        return r;
}

static int load_file(kc_merged *m, const char *path, bool skip_missing, koc_error *err) {
        _koc_cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = koc__read_file_bounded(path, KOC_KUBECONFIG_MAX, &text, &len);
        if (r == -ENOENT && skip_missing)
                return 0;
        if (r == -EFBIG)
                return koc_error_set(err, r, "%s: larger than %u bytes, not a kubeconfig", path,
                                     KOC_KUBECONFIG_MAX);
        if (r < 0)
                return koc_error_set(err, r, "%s: cannot read kubeconfig: %s", path, strerror(-r));
        kc_file *a = grow(m->files, m->n_files, sizeof *a);
        if (!a)
                return koc_error_set(err, -ENOMEM, "out of memory");
        m->files = a;
        /* Entries point at m->files[i]; the array must not move after
         * parsing starts, so every file is added before any is parsed
         * (see merged_load). */
        kc_file *f = &a[m->n_files++];
        if (!(f->path = strdup(path)))
                return koc_error_set(err, -ENOMEM, "out of memory");
        r = file_dir(path, &f->dir);
        if (r < 0)
                return koc_error_set(err, r, "%s: %s", path, strerror(-r));
        f->text = text;
        f->len = len;
        text = NULL;
        return 1;
}

static int merged_load(kc_merged *m, const char *paths, koc_error *err) {
        /* KUBECONFIG-style list: missing files are skipped (as kubectl
         * does) when there is more than one; a single file must exist. */
        bool list = strchr(paths, ':') != NULL;
        _koc_cleanup_free_ char *copy = strdup(paths);
        if (!copy)
                return koc_error_set(err, -ENOMEM, "out of memory");
        size_t n = 0;
        for (char *s = copy, *save = NULL, *p; (p = strtok_r(s, ":", &save)); s = NULL) {
                if (n++ > 64)
                        return koc_error_set(err, -E2BIG, "%s: more than 64 kubeconfig files",
                                             paths);
                bool dup = false;
                for (size_t i = 0; i < m->n_files; i++)
                        if (strcmp(m->files[i].path, p) == 0)
                                dup = true;
                if (dup)
                        continue;
                int r = load_file(m, p, list, err);
                if (r < 0)
                        return r;
        }
        if (m->n_files == 0)
                return koc_error_set(err, -ENOENT, "%s: no kubeconfig file exists", paths);
        for (size_t i = 0; i < m->n_files; i++) {
                kc_file *f = &m->files[i];
                int r = parse_file(m, f, f->text, f->len, err);
                free(f->text);
                f->text = NULL;
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- building the configuration ---------------------------------------- */

static int resolve_path(const kc_file *f, const char *p, char **ret) {
        if (p[0] == '/')
                *ret = strdup(p);
        else if (asprintf(ret, "%s/%s", f->dir, p) < 0)
                *ret = NULL;
        return *ret ? 0 : -ENOMEM;
}

/* Decodes standard base64 (whitespace and line breaks allowed, padding
 * checked) with OpenSSL's EVP decoder. */
static int decode_base64(const char *in, koc_blob *ret, const char **ret_why) {
        size_t len = strlen(in);
        if (len > INT_MAX / 2) {
                *ret_why = "too long";
                return -EFBIG;
        }
        /* Padding may only end the data: "QQ==QQ==" is not base64. */
        const char *pad = strchr(in, '=');
        if (pad) {
                const char *q = pad;
                while (*q == '=' || *q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
                        q++;
                size_t n_pad = 0;
                for (const char *p = pad; *p; p++)
                        n_pad += *p == '=';
                if (*q || n_pad > 2) {
                        *ret_why = "invalid base64 (misplaced '=' padding)";
                        return -EINVAL;
                }
        }
        size_t n_chars = 0;
        for (const char *p = in; *p; p++) {
                if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
                        continue;
                if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                      (*p >= '0' && *p <= '9') || *p == '+' || *p == '/' || *p == '=')) {
                        *ret_why = "invalid base64 (unexpected character)";
                        return -EINVAL;
                }
                n_chars++;
        }
        if (n_chars % 4 != 0) {
                *ret_why = "invalid base64 (length is not a multiple of 4; missing padding?)";
                return -EINVAL;
        }
        unsigned char *out = malloc(len / 4 * 3 + 4);
        EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
        if (!out || !ctx) {
                free(out);
                EVP_ENCODE_CTX_free(ctx);
                *ret_why = "out of memory";
                return -ENOMEM;
        }
        int n1 = 0, n2 = 0;
        EVP_DecodeInit(ctx);
        int r1 = EVP_DecodeUpdate(ctx, out, &n1, (const unsigned char *)in, (int)len);
        int r2 = r1 < 0 ? -1 : EVP_DecodeFinal(ctx, out + n1, &n2);
        EVP_ENCODE_CTX_free(ctx);
        if (r1 < 0 || r2 < 0) {
                OPENSSL_cleanse(out, len / 4 * 3 + 4);
                free(out);
                *ret_why = "invalid base64";
                return -EINVAL;
        }
        if (n1 + n2 == 0) {
                free(out);
                *ret_why = "empty after base64 decoding";
                return -EINVAL;
        }
        ret->data = out;
        ret->size = (size_t)(n1 + n2);
        return 0;
}

enum pem_kind { PEM_CERT, PEM_KEY };

/* Checks that data holds at least one PEM certificate (or a private key), so
 * a wrong field fails at load time with its name rather than later as a TLS
 * error. */
static bool pem_ok(const unsigned char *data, size_t size, enum pem_kind kind) {
        if (size > INT_MAX)
                return false;
        BIO *bio = BIO_new_mem_buf(data, (int)size);
        if (!bio)
                return false;
        bool ok;
        if (kind == PEM_CERT) {
                X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
                ok = x != NULL;
                X509_free(x);
        } else {
                EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"");
                ok = k != NULL;
                EVP_PKEY_free(k);
        }
        BIO_free(bio);
        return ok;
}

static int pem_data(const kc_file *f, const char *field, const char *b64, enum pem_kind kind,
                    koc_blob *ret, koc_error *err) {
        const char *why = NULL;
        int r = decode_base64(b64, ret, &why);
        if (r < 0)
                return koc_error_set(err, r, "%s: %s: %s", f->path, field, why);
        if (!pem_ok(ret->data, ret->size, kind))
                return koc_error_set(err, -EINVAL, "%s: %s: decoded data is not a PEM %s", f->path,
                                     field, kind == PEM_CERT ? "certificate" : "private key");
        return 0;
}

static int pem_file(const kc_file *f, const char *field, const char *p, enum pem_kind kind,
                    char **ret, koc_error *err) {
        if (resolve_path(f, p, ret) < 0)
                return koc_error_set(err, -ENOMEM, "out of memory");
        _koc_cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = koc__read_file_bounded(*ret, KOC_KUBECONFIG_MAX, &text, &len);
        if (r < 0)
                return koc_error_set(err, r, "%s: %s: cannot read %s: %s", f->path, field, *ret,
                                     r == -EFBIG ? "file too large" : strerror(-r));
        bool ok = pem_ok((unsigned char *)text, len, kind);
        OPENSSL_cleanse(text, len);
        if (!ok)
                return koc_error_set(err, -EINVAL, "%s: %s: %s is not a PEM %s", f->path, field,
                                     *ret, kind == PEM_CERT ? "certificate" : "private key");
        return 0;
}

/* proxy-url: the schemes client-go accepts (http, https, socks5).  Go's
 * SOCKS5 dialer hands the host name to the proxy to resolve, which libcurl
 * calls socks5h.  Messages name the scheme but never print the URL, which may
 * carry the proxy's password. */
static int set_proxy(koc_cluster_config *cfg, const kc_file *f, const char *field, const char *url,
                     koc_error *err) {
        for (const unsigned char *p = (const unsigned char *)url; *p; p++)
                if (*p <= ' ' || *p == 0x7f)
                        return koc_error_set(err, -EINVAL,
                                             "%s: %s: contains whitespace or control characters",
                                             f->path, field);
        const char *sep = strstr(url, "://");
        char scheme[16] = "";
        size_t sl = sep ? (size_t)(sep - url) : 0;
        if (!sep || sl == 0 || sl >= sizeof scheme)
                return koc_error_set(err, -EINVAL,
                                     "%s: %s: not a URL with a scheme (use http://, https:// or "
                                     "socks5://)",
                                     f->path, field);
        for (size_t k = 0; k < sl; k++)
                scheme[k] = (char)tolower((unsigned char)url[k]);
        const char *curl_scheme = strcmp(scheme, "socks5") == 0  ? "socks5h"
                                  : strcmp(scheme, "http") == 0  ? "http"
                                  : strcmp(scheme, "https") == 0 ? "https"
                                                                 : NULL;
        if (!curl_scheme)
                return koc_error_set(err, -ENOTSUP,
                                     "%s: %s: unsupported scheme \"%.15s\" (use http, https or "
                                     "socks5)",
                                     f->path, field, scheme);
        _koc_cleanup_free_ char *proxy = NULL, *host = NULL;
        if (asprintf(&proxy, "%s://%s", curl_scheme, sep + 3) < 0)
                return koc_error_set(err, -ENOMEM, "out of memory");
        CURLU *u = curl_url();
        if (!u)
                return koc_error_set(err, -ENOMEM, "out of memory");
        CURLUcode uc = curl_url_set(u, CURLUPART_URL, proxy, CURLU_NON_SUPPORT_SCHEME);
        if (uc == CURLUE_OK)
                uc = curl_url_get(u, CURLUPART_HOST, &host, 0);
        char *password = NULL;
        bool has_password = uc == CURLUE_OK &&
                            curl_url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK &&
                            password && *password;
        if (password)
                curl_free(password);
        curl_url_cleanup(u);
        if (has_password && strcmp(scheme, "https") != 0)
                koc_log_warn("config",
                             "%s: %s: the proxy's password is sent unencrypted over %s:// "
                             "(use an https:// proxy)",
                             f->path, field, scheme);
        if (uc != CURLUE_OK || !host || !*host)
                return koc_error_set(err, -EINVAL, "%s: %s: not a valid %s:// URL%s%s", f->path,
                                     field, scheme, uc != CURLUE_OK ? ": " : "",
                                     uc != CURLUE_OK ? curl_url_strerror(uc) : "");
        cfg->proxy = proxy;
        proxy = NULL;
        cfg->proxy_tls = strcmp(scheme, "https") == 0;
        return 0;
}

static int build_cluster(koc_cluster_config *cfg, const kc_cluster *c, koc_error *err) {
        const char *path = c->file->path;
        char f[160];
        char where[PATH_MAX + 200];
        snprintf(where, sizeof where, "%s: %s", path,
                 FIELD(f, "clusters", c->index, "cluster", "server"));
        if (!c->server)
                return koc_error_set(err, -EINVAL, "%s: missing (cluster \"%s\")", where, c->name);
        int r = koc__cluster_config_set_server(cfg, c->server, c->tls_server_name, where, err);
        if (r < 0)
                return r;
        cfg->disable_compression = c->disable_compression == 1;
        if (c->proxy_url &&
            (r = set_proxy(cfg, c->file, FIELD(f, "clusters", c->index, "cluster", "proxy-url"),
                           c->proxy_url, err)) < 0)
                return r;
        if (!cfg->tls) {
                const char *tls_field = c->ca              ? "certificate-authority"
                                        : c->ca_data       ? "certificate-authority-data"
                                        : c->insecure == 1 ? "insecure-skip-tls-verify"
                                                           : NULL;
                if (tls_field)
                        return koc_error_set(err, -EINVAL,
                                             "%s: %s: set, but server \"%s\" is http://, not "
                                             "https://",
                                             path,
                                             FIELD(f, "clusters", c->index, "cluster", tls_field),
                                             c->server);
                return 0;
        }
        if (c->ca && c->ca_data)
                return koc_error_set(
                        err, -EINVAL,
                        "%s: %s: both certificate-authority and "
                        "certificate-authority-data are set; use one",
                        path,
                        FIELD(f, "clusters", c->index, "cluster", "certificate-authority-data"));
        if (c->insecure == 1 && (c->ca || c->ca_data))
                return koc_error_set(
                        err, -EINVAL,
                        "%s: %s: a certificate authority and "
                        "insecure-skip-tls-verify: true cannot both be set",
                        path,
                        FIELD(f, "clusters", c->index, "cluster", "insecure-skip-tls-verify"));
        if (c->ca_data) {
                r = pem_data(
                        c->file,
                        FIELD(f, "clusters", c->index, "cluster", "certificate-authority-data"),
                        c->ca_data, PEM_CERT, &cfg->ca_data, err);
                if (r < 0)
                        return r;
        } else if (c->ca) {
                r = pem_file(c->file,
                             FIELD(f, "clusters", c->index, "cluster", "certificate-authority"),
                             c->ca, PEM_CERT, &cfg->ca_file, err);
                if (r < 0)
                        return r;
        }
        if (c->insecure == 1) {
                cfg->insecure = true;
                koc_log_warn("config",
                             "%s: cluster \"%s\": insecure-skip-tls-verify is true: the API "
                             "server's certificate is NOT verified",
                             path, c->name);
        }
        return 0;
}

/* What net/http accepts in a header value: no control characters but tab.
 * A newline would add a header of the kubeconfig's choosing. */
static bool header_value_ok(const char *v) {
        for (const unsigned char *p = (const unsigned char *)v; *p; p++)
                if ((*p < ' ' && *p != '\t') || *p == 0x7f)
                        return false;
        return true;
}

static int add_header(struct curl_slist **l, const char *name, const char *value) {
        _koc_cleanup_free_ char *line = NULL;
        /* "Name;" is libcurl's spelling of a header with an empty value. */
        int k = *value ? asprintf(&line, "%s: %s", name, value) : asprintf(&line, "%s;", name);
        if (k < 0)
                return -ENOMEM;
        struct curl_slist *n = curl_slist_append(*l, line);
        if (!n)
                return -ENOMEM;
        *l = n;
        return 0;
}

/* client-go's headerKeyEscape: bytes that may not appear in a header name
 * (an HTTP token), and '%' itself, become %XX; the API server reverses it. */
static char *extra_header_name(const char *key) {
        static const char hex[] = "0123456789ABCDEF";
        size_t n = strlen(key);
        char *out = malloc(strlen("Impersonate-Extra-") + 3 * n + 1);
        if (!out)
                return NULL;
        char *o = stpcpy(out, "Impersonate-Extra-");
        for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
                if ((*p < 0x80 && isalnum(*p)) || (*p && strchr("!#$&'*+-.^_`|~", *p)))
                        *o++ = (char)*p;
                else {
                        *o++ = '%';
                        *o++ = hex[*p >> 4];
                        *o++ = hex[*p & 15];
                }
        }
        *o = '\0';
        return out;
}

/* as, as-uid, as-groups, as-user-extra: the headers client-go's
 * impersonating round tripper adds to every request. */
static int build_impersonation(koc_cluster_config *cfg, const kc_user *u, koc_error *err) {
        const char *path = u->file->path;
        char f[200];
        if (!u->as) {
                if (u->as_uid || u->n_as_groups > 0 || u->n_as_extra > 0)
                        return koc_error_set(err, -EINVAL,
                                             "%s: %s: missing: as-uid, as-groups and "
                                             "as-user-extra need a user to impersonate",
                                             path, FIELD(f, "users", u->index, "user", "as"));
                return 0;
        }
#define CHECK(value, ...)                                                                          \
        do {                                                                                       \
                if (!header_value_ok(value)) {                                                     \
                        snprintf(f, sizeof f, __VA_ARGS__);                                        \
                        return koc_error_set(err, -EINVAL,                                         \
                                             "%s: %s: contains control characters", path, f);      \
                }                                                                                  \
        } while (0)
        CHECK(u->as, "users[%zu].user.as", u->index);
        if (add_header(&cfg->headers, "Impersonate-User", u->as) < 0)
                return koc_error_set(err, -ENOMEM, "out of memory");
        if (u->as_uid) {
                CHECK(u->as_uid, "users[%zu].user.as-uid", u->index);
                if (add_header(&cfg->headers, "Impersonate-Uid", u->as_uid) < 0)
                        return koc_error_set(err, -ENOMEM, "out of memory");
        }
        for (size_t k = 0; k < u->n_as_groups; k++) {
                CHECK(u->as_groups[k], "users[%zu].user.as-groups[%zu]", u->index, k);
                if (add_header(&cfg->headers, "Impersonate-Group", u->as_groups[k]) < 0)
                        return koc_error_set(err, -ENOMEM, "out of memory");
        }
        for (size_t k = 0; k < u->n_as_extra; k++) {
                const kc_extra *e = &u->as_extra[k];
                _koc_cleanup_free_ char *name = extra_header_name(e->key);
                if (!name)
                        return koc_error_set(err, -ENOMEM, "out of memory");
                for (size_t j = 0; j < e->n_values; j++) {
                        CHECK(e->values[j], "users[%zu].user.as-user-extra.%.64s[%zu]", u->index,
                              e->key, j);
                        if (add_header(&cfg->headers, name, e->values[j]) < 0)
                                return koc_error_set(err, -ENOMEM, "out of memory");
                }
        }
#undef CHECK
        return 0;
}

/* A file that holds a credential and that group or others may read is
 * said once, at load: the operator's rights are anyone's on that host. */
static void warn_if_readable(const char *path, const char *what) {
        struct stat st;
        if (stat(path, &st) < 0 || !(st.st_mode & (S_IRGRP | S_IROTH)))
                return;
        koc_log_warn("config",
                     "%s: holds %s but is readable by %s (mode %04o); make it readable by its "
                     "owner only (chmod go-rwx)",
                     path, what,
                     (st.st_mode & S_IRGRP) && (st.st_mode & S_IROTH) ? "group and others"
                     : (st.st_mode & S_IRGRP)                          ? "its group"
                                                                       : "others",
                     (unsigned)(st.st_mode & 07777));
}

static void json_deletep(cJSON **p) {
        cJSON_Delete(*p);
}

/* provideClusterInfo: the cluster as client-go's ExecCredential spec.cluster
 * describes it, CA bundle inline whether the kubeconfig names a file or
 * carries the data. */
static int exec_cluster_json(const koc_cluster_config *cfg, const kc_cluster *c,
                             const kc_user *u, char **ret, koc_error *err) {
        char f[160];
        _koc_cleanup_(json_deletep) cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddStringToObject(o, "server", c->server))
                return koc_error_set(err, -ENOMEM, "out of memory");
        if (c->tls_server_name &&
            !cJSON_AddStringToObject(o, "tls-server-name", c->tls_server_name))
                return koc_error_set(err, -ENOMEM, "out of memory");
        if (c->insecure == 1 && !cJSON_AddTrueToObject(o, "insecure-skip-tls-verify"))
                return koc_error_set(err, -ENOMEM, "out of memory");
        _koc_cleanup_free_ char *pem = NULL;
        size_t pem_len = 0;
        if (cfg->ca_data.data) {
                if (!(pem = malloc(cfg->ca_data.size + 1)))
                        return koc_error_set(err, -ENOMEM, "out of memory");
                memcpy(pem, cfg->ca_data.data, cfg->ca_data.size);
                pem_len = cfg->ca_data.size;
        } else if (cfg->ca_file) {
                int r = koc__read_file_bounded(cfg->ca_file, KOC_KUBECONFIG_MAX, &pem, &pem_len);
                if (r < 0)
                        return koc_error_set(err, r,
                                             "%s: %s: cannot read %s for the exec plugin: %s",
                                             u->file->path,
                                             FIELD(f, "users", u->index, "user",
                                                   "exec.provideClusterInfo"),
                                             cfg->ca_file, strerror(-r));
        }
        if (pem) {
                _koc_cleanup_free_ char *b64 = malloc(4 * ((pem_len + 2) / 3) + 1);
                if (!b64 || pem_len > INT_MAX / 2)
                        return koc_error_set(err, -ENOMEM, "out of memory");
                EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)pem, (int)pem_len);
                if (!cJSON_AddStringToObject(o, "certificate-authority-data", b64))
                        return koc_error_set(err, -ENOMEM, "out of memory");
        }
        if (c->proxy_url && !cJSON_AddStringToObject(o, "proxy-url", c->proxy_url))
                return koc_error_set(err, -ENOMEM, "out of memory");
        if (c->disable_compression == 1 && !cJSON_AddTrueToObject(o, "disable-compression"))
                return koc_error_set(err, -ENOMEM, "out of memory");
        if (c->exec_extension) {
                cJSON *ext = cJSON_Duplicate(c->exec_extension, true);
                if (!ext || !cJSON_AddItemToObject(o, "config", ext)) {
                        cJSON_Delete(ext);
                        return koc_error_set(err, -ENOMEM, "out of memory");
                }
        }
        if (!(*ret = cJSON_PrintUnformatted(o)))
                return koc_error_set(err, -ENOMEM, "out of memory");
        return 0;
}

static int build_user(koc_cluster_config *cfg, kc_user *u, const kc_cluster *cl,
                      koc_error *err) {
        const char *path = u->file->path;
        char f[160];
        int r;
        if (u->has_auth_provider && !u->token && !u->token_file && !u->exec && !u->cert &&
            !u->cert_data)
                return koc_error_set(err, -ENOTSUP,
                                     "%s: %s: auth-provider plugins are not supported; use exec "
                                     "credentials or a token",
                                     path, FIELD(f, "users", u->index, "user", "auth-provider"));
        if (u->has_auth_provider)
                /* Only with another credential, which is what is sent. */
                koc_log_warn("config",
                             "%s: %s: auth-provider plugins are not supported; ignored, the "
                             "user's other credential is sent",
                             path, FIELD(f, "users", u->index, "user", "auth-provider"));
        if (u->cert && u->cert_data)
                return koc_error_set(
                        err, -EINVAL,
                        "%s: %s: both client-certificate and client-certificate-data "
                        "are set; use one",
                        path, FIELD(f, "users", u->index, "user", "client-certificate-data"));
        if (u->key && u->key_data)
                return koc_error_set(err, -EINVAL,
                                     "%s: %s: both client-key and client-key-data are set; use one",
                                     path, FIELD(f, "users", u->index, "user", "client-key-data"));
        bool has_cert = u->cert || u->cert_data, has_key = u->key || u->key_data;
        if (has_cert != has_key)
                return koc_error_set(
                        err, -EINVAL, "%s: %s: missing (%s is set)", path,
                        FIELD(f, "users", u->index, "user",
                              has_cert ? "client-key(-data)" : "client-certificate(-data)"),
                        has_cert ? "a client certificate" : "a client key");
        if (has_cert && !cfg->tls)
                return koc_error_set(
                        err, -EINVAL,
                        "%s: %s: a client certificate needs an https:// server, not "
                        "\"%s\"",
                        path,
                        FIELD(f, "users", u->index, "user",
                              u->cert ? "client-certificate" : "client-certificate-data"),
                        cfg->server);
        if (u->cert_data &&
            (r = pem_data(u->file, FIELD(f, "users", u->index, "user", "client-certificate-data"),
                          u->cert_data, PEM_CERT, &cfg->cert_data, err)) < 0)
                return r;
        if (u->cert &&
            (r = pem_file(u->file, FIELD(f, "users", u->index, "user", "client-certificate"),
                          u->cert, PEM_CERT, &cfg->cert_file, err)) < 0)
                return r;
        if (u->key_data &&
            (r = pem_data(u->file, FIELD(f, "users", u->index, "user", "client-key-data"),
                          u->key_data, PEM_KEY, &cfg->key_data, err)) < 0)
                return r;
        if (u->key && (r = pem_file(u->file, FIELD(f, "users", u->index, "user", "client-key"),
                                    u->key, PEM_KEY, &cfg->key_file, err)) < 0)
                return r;

        if (u->exec && (u->token || u->token_file))
                return koc_error_set(err, -EINVAL,
                                     "%s: %s: exec and token/tokenFile are both set; "
                                     "use one",
                                     path, FIELD(f, "users", u->index, "user", "exec"));
        if ((u->username || u->password) && (u->token || u->token_file || u->exec))
                return koc_error_set(err, -EINVAL,
                                     "%s: %s: basic auth (username/password) and %s are both "
                                     "set; use one",
                                     path,
                                     FIELD(f, "users", u->index, "user",
                                           u->username ? "username" : "password"),
                                     u->exec ? "exec" : u->token ? "token" : "tokenFile");
        if (u->username || u->password) {
                /* client-go sends whichever is set, the other empty. */
                if (u->username && !header_value_ok(u->username))
                        return koc_error_set(err, -EINVAL, "%s: %s: contains control characters",
                                             path,
                                             FIELD(f, "users", u->index, "user", "username"));
                if (!(cfg->username = strdup(u->username ? u->username : "")) ||
                    !(cfg->password = strdup(u->password ? u->password : "")))
                        return koc_error_set(err, -ENOMEM, "out of memory");
        }
        if ((r = build_impersonation(cfg, u, err)) < 0)
                return r;
        if (u->token_file) {
                /* client-go: tokenFile wins over token and is re-read. */
                if (resolve_path(u->file, u->token_file, &cfg->token_file) < 0)
                        return koc_error_set(err, -ENOMEM, "out of memory");
                const char *why = NULL;
                r = koc__read_token_file(cfg->token_file, &cfg->token, &why);
                if (r < 0)
                        return koc_error_set(err, r, "%s: %s: %s: %s", path,
                                             FIELD(f, "users", u->index, "user", "tokenFile"),
                                             cfg->token_file, why);
                cfg->token_kind = KOC_TOKEN_FILE;
                cfg->token_read_usec = cfg->now(cfg->now_userdata);
        } else if (u->token) {
                if (!koc__token_is_valid(u->token))
                        return koc_error_set(err, -EINVAL,
                                             "%s: %s: contains whitespace or control characters",
                                             path, FIELD(f, "users", u->index, "user", "token"));
                if (!(cfg->token = strdup(u->token)))
                        return koc_error_set(err, -ENOMEM, "out of memory");
                cfg->token_kind = KOC_TOKEN_STATIC;
        } else if (u->exec) {
                if (u->exec->provide_cluster_info &&
                    (r = exec_cluster_json(cfg, cl, u, &u->exec->cluster_json, err)) < 0)
                        return r;
                /* Bounded (10 s): run once at load, so that a broken plugin
                 * fails here with its name, not on the first request. */
                r = koc__exec_credential_run(u->exec, &cfg->token, &cfg->token_expiry_usec, err);
                if (r < 0)
                        return r;
                cfg->token_kind = KOC_TOKEN_EXEC;
                cfg->token_read_usec = cfg->now(cfg->now_userdata);
                cfg->exec = u->exec;
        }
        if (u->token || u->password || u->key_data)
                warn_if_readable(path, u->token      ? "a bearer token"
                                       : u->password ? "a password"
                                                     : "a client key");
        if (u->token_file)
                warn_if_readable(cfg->token_file, "a bearer token");
        if (u->key)
                warn_if_readable(cfg->key_file, "a client key");
        return 0;
}

static const kc_context *find_context(const kc_merged *m, const char *name) {
        for (size_t i = 0; i < m->n_contexts; i++)
                if (strcmp(m->contexts[i].name, name) == 0)
                        return &m->contexts[i];
        return NULL;
}

static int merged_build(kc_merged *m, const char *paths, const char *context,
                        koc_cluster_config **ret, koc_error *err) {
        char f[160];
        const kc_context *ctx;
        if (context && *context) {
                ctx = find_context(m, context);
                if (!ctx)
                        return koc_error_set(err, -ENOENT, "%s: context \"%s\" not found", paths,
                                             context);
        } else {
                if (!m->current_context)
                        return koc_error_set(err, -ENOENT,
                                             "%s: current-context: not set, and no context was "
                                             "given",
                                             paths);
                ctx = find_context(m, m->current_context);
                if (!ctx)
                        return koc_error_set(err, -ENOENT,
                                             "%s: current-context: context \"%s\" not found",
                                             m->current_context_file->path, m->current_context);
        }
        const char *cpath = ctx->file->path;
        if (!ctx->cluster)
                return koc_error_set(err, -EINVAL, "%s: %s: missing (context \"%s\")", cpath,
                                     FIELD(f, "contexts", ctx->index, "context", "cluster"),
                                     ctx->name);
        const kc_cluster *cl = NULL;
        for (size_t i = 0; i < m->n_clusters; i++)
                if (strcmp(m->clusters[i].name, ctx->cluster) == 0)
                        cl = &m->clusters[i];
        if (!cl)
                return koc_error_set(err, -ENOENT, "%s: %s: cluster \"%s\" not found", cpath,
                                     FIELD(f, "contexts", ctx->index, "context", "cluster"),
                                     ctx->cluster);
        kc_user *us = NULL;
        if (ctx->user) {
                for (size_t i = 0; i < m->n_users; i++)
                        if (strcmp(m->users[i].name, ctx->user) == 0)
                                us = &m->users[i];
                if (!us)
                        return koc_error_set(err, -ENOENT, "%s: %s: user \"%s\" not found", cpath,
                                             FIELD(f, "contexts", ctx->index, "context", "user"),
                                             ctx->user);
        }

        _koc_cleanup_(koc_cluster_config_unrefp) koc_cluster_config *cfg =
                koc__cluster_config_alloc();
        if (!cfg)
                return koc_error_set(err, -ENOMEM, "out of memory");
        int r = build_cluster(cfg, cl, err);
        if (r < 0)
                return r;
        if (us) {
                r = build_user(cfg, us, cl, err);
                if (cfg->exec == us->exec)
                        us->exec = NULL; /* now owned by cfg */
                if (r < 0)
                        return r;
        }
        if (!cfg->tls && (cfg->token_kind != KOC_TOKEN_NONE || cfg->username))
                koc_log_warn("config",
                             "%s: user \"%s\": %s sent in clear text to %s: anyone on the "
                             "path can read and reuse it",
                             us->file->path, us->name,
                             cfg->username ? "basic auth credentials are" : "a bearer token is",
                             cfg->server);
        const char *pod_ns = getenv("POD_NAMESPACE");
        const char *ns = pod_ns && *pod_ns ? pod_ns : ctx->namespace;
        if (ns && !(cfg->namespace = strdup(ns)))
                return koc_error_set(err, -ENOMEM, "out of memory");
        if (!(cfg->source = strdup(cpath)))
                return koc_error_set(err, -ENOMEM, "out of memory");
        *ret = cfg;
        cfg = NULL;
        return 0;
}

KOC_EXPORT int koc_cluster_config_from_kubeconfig(const char *paths, const char *context,
                                                  koc_cluster_config **ret, koc_error *err) {
        if (!paths || !*paths || !ret)
                return koc_error_set(err, -EINVAL, "kubeconfig: no path given");
        kc_merged m = {0};
        int r = merged_load(&m, paths, err);
        if (r >= 0)
                r = merged_build(&m, paths, context, ret, err);
        merged_free(&m);
        return r < 0 ? r : 0;
}
