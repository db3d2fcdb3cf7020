/* SPDX-License-Identifier: Apache-2.0 */
/* See informer-fuzz.h. */
#include "informer-fuzz.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "core/client-internal.h"
#include "core/resource-version.h"
#include "framework/cache/cache-internal.h"
#include "framework/cache/store.h"

/* --- the stand-in client ----------------------------------------------------------- */

static void model_list_sent(const char *query);

static struct {
        sd_event *event;
        char client_token, request_token, watch_token;
        bool request_live;
        koc_response_handler_t request_handler;
        void *request_userdata;
        char *request_query;
        bool watch_live;
        koc_watch_handler_t watch_handler;
        void *watch_userdata;
        koc_destroy_t watch_destroy;
        char *watch_rv;
        unsigned watches; /* started so far */
} fake;

koc_client *__wrap_koc_client_ref(koc_client *c);
koc_client *__wrap_koc_client_unref(koc_client *c);
sd_event *__wrap_koc_client_get_event(koc_client *c);
int __wrap_koc_client_request_sized(koc_client *c, size_t spec_size, const koc_request_spec *spec,
                                    koc_response_handler_t handler, void *userdata,
                                    koc_request **ret_request);
void __wrap_koc_request_cancel(koc_request *r);
int __wrap_koc_client_watch_sized(koc_client *c, size_t spec_size, const koc_watch_spec *spec,
                                  koc_watch_handler_t handler, void *userdata,
                                  koc_destroy_t destroy, koc_watch **ret);
void __wrap_koc_watch_stop(koc_watch *w);
int __real_sd_event_add_time_relative(sd_event *e, sd_event_source **s, clockid_t clock,
                                      uint64_t usec, uint64_t accuracy,
                                      sd_event_time_handler_t callback, void *userdata);
int __wrap_sd_event_add_time_relative(sd_event *e, sd_event_source **s, clockid_t clock,
                                      uint64_t usec, uint64_t accuracy,
                                      sd_event_time_handler_t callback, void *userdata);

koc_client *__wrap_koc_client_ref(koc_client *c) {
        return c;
}

koc_client *__wrap_koc_client_unref(koc_client *c) {
        (void)c;
        return NULL;
}

sd_event *__wrap_koc_client_get_event(koc_client *c) {
        (void)c;
        return fake.event;
}

int __wrap_koc_client_request_sized(koc_client *c, size_t spec_size, const koc_request_spec *spec,
                                    koc_response_handler_t handler, void *userdata,
                                    koc_request **ret_request) {
        (void)c;
        (void)spec_size;
        /* The reflector has one list request at a time. */
        if (fake.request_live || strcmp(spec->method, "GET") != 0)
                abort();
        free(fake.request_query);
        fake.request_query = strdup(spec->query ? spec->query : "");
        if (!fake.request_query)
                abort();
        fake.request_live = true;
        model_list_sent(fake.request_query);
        fake.request_handler = handler;
        fake.request_userdata = userdata;
        *ret_request = (koc_request *)&fake.request_token;
        return 0;
}

void __wrap_koc_request_cancel(koc_request *r) {
        if (r == (koc_request *)&fake.request_token)
                fake.request_live = false;
        else if (r)
                abort();
}

int __wrap_koc_client_watch_sized(koc_client *c, size_t spec_size, const koc_watch_spec *spec,
                                  koc_watch_handler_t handler, void *userdata,
                                  koc_destroy_t destroy, koc_watch **ret) {
        (void)c;
        (void)spec_size;
        /* One watch at a time, never while a list is in flight. */
        if (fake.watch_live || fake.request_live || !spec->allow_bookmarks)
                abort();
        free(fake.watch_rv);
        fake.watch_rv = spec->resource_version ? strdup(spec->resource_version) : NULL;
        if (spec->resource_version && !fake.watch_rv)
                abort();
        fake.watch_live = true;
        fake.watches++;
        fake.watch_handler = handler;
        fake.watch_userdata = userdata;
        fake.watch_destroy = destroy;
        *ret = (koc_watch *)&fake.watch_token;
        return 0;
}

static void watch_gone(void) {
        fake.watch_live = false;
        if (fake.watch_destroy)
                fake.watch_destroy(fake.watch_userdata);
        fake.watch_destroy = NULL;
}

void __wrap_koc_watch_stop(koc_watch *w) {
        if (w == (koc_watch *)&fake.watch_token) {
                if (fake.watch_live)
                        watch_gone();
        } else if (w)
                abort();
}

/* Backoff delays collapse to nothing: fuzz_run() fires them. */
int __wrap_sd_event_add_time_relative(sd_event *e, sd_event_source **s, clockid_t clock,
                                      uint64_t usec, uint64_t accuracy,
                                      sd_event_time_handler_t callback, void *userdata) {
        (void)usec;
        return __real_sd_event_add_time_relative(e, s, clock, 0, 1, callback, userdata);
}

void fuzz_run(void) {
        for (int i = 0; i < 64; i++)
                if (sd_event_run(fake.event, 0) <= 0)
                        return;
}

bool fuzz_list_pending(void) {
        return fake.request_live;
}

bool fuzz_watch_pending(void) {
        return fake.watch_live;
}

const char *fuzz_list_query(void) {
        return fake.request_live ? fake.request_query : NULL;
}

const char *fuzz_watch_resource_version(void) {
        return fake.watch_rv;
}

/* --- input ------------------------------------------------------------------------- */

bool fuzz_take(fuzz_input *in, uint8_t *ret) {
        if (in->n == 0)
                return false;
        *ret = *in->p++;
        in->n--;
        return true;
}

char *fuzz_take_text(fuzz_input *in, size_t *ret_len) {
        uint8_t hi = 0, lo = 0;
        fuzz_take(in, &hi);
        fuzz_take(in, &lo);
        size_t len = (size_t)hi << 8 | lo;
        if (len > in->n)
                len = in->n;
        char *s = malloc(len + 1);
        if (!s)
                abort();
        memcpy(s, in->p, len);
        s[len] = '\0';
        in->p += len;
        in->n -= len;
        *ret_len = len;
        return s;
}

/* --- the model --------------------------------------------------------------------- */

typedef struct entry {
        char *key;
        char *ns;
        char *rv;
        char *uid; /* "" when the object has none */
        uint64_t gen; /* the store's generation of its last write */
} entry;

typedef struct pair {
        char *key;
        char *rv;
} pair;

static struct {
        entry *e;
        size_t n;
        pair *tomb;
        size_t n_tomb;
        bool list_begun;
        /* The store's generations: of the last write, and of the list in
         * progress (read-your-own-writes across a re-list). */
        uint64_t gen, list_gen;
        /* The list in progress: what it listed so far, in order, and the
         * continue tokens it saw; the keys this process deleted since it
         * began (key, rv: the deletion's, uid: the deleted entry's). */
        entry *staged;
        size_t n_staged;
        entry *deleted;
        size_t n_deleted;
        char **tokens;
        size_t n_tokens;
        char *cont; /* the continue token the next page must carry */
        char *rv;   /* the reflector's resume point */
        bool has_label_selector, has_field_selector;
} model;

static char *xstrdup(const char *s) {
        char *d = s ? strdup(s) : NULL;
        if (s && !d)
                abort();
        return d;
}

static void set(char **p, const char *v) {
        char *d = xstrdup(v);
        free(*p);
        *p = d;
}

static const char *str_field(const cJSON *o, const char *name) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
        return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const cJSON *meta(const cJSON *o) {
        return cJSON_GetObjectItemCaseSensitive(o, "metadata");
}

/* The key the store files obj under, malloc'ed; NULL when it has no name. */
static char *key_of(const cJSON *obj, bool allow_empty_name) {
        const char *name = str_field(meta(obj), "name");
        const char *ns = str_field(meta(obj), "namespace");
        if (!name || (!*name && !allow_empty_name))
                return NULL;
        char *k = NULL;
        if (asprintf(&k, "%s%s%s", ns && *ns ? ns : "", ns && *ns ? "/" : "", name) < 0)
                abort();
        return k;
}

static entry *find(const char *key) {
        for (size_t i = 0; i < model.n; i++)
                if (strcmp(model.e[i].key, key) == 0)
                        return &model.e[i];
        return NULL;
}

static void entry_free(entry *e) {
        free(e->key);
        free(e->ns);
        free(e->rv);
        free(e->uid);
}

static void remove_at(size_t i) {
        entry_free(&model.e[i]);
        model.e[i] = model.e[--model.n];
}

static pair *tomb_find(const char *key) {
        for (size_t i = 0; i < model.n_tomb; i++)
                if (strcmp(model.tomb[i].key, key) == 0)
                        return &model.tomb[i];
        return NULL;
}

static void tomb_set(const char *key, const char *rv) {
        pair *t = tomb_find(key);
        if (!t) {
                pair *n = realloc(model.tomb, (model.n_tomb + 1) * sizeof *n);
                if (!n)
                        abort();
                model.tomb = n;
                t = &model.tomb[model.n_tomb++];
                *t = (pair){xstrdup(key), NULL};
        }
        set(&t->rv, rv ? rv : "");
}

static void tomb_drop(const char *key) {
        pair *t = tomb_find(key);
        if (!t)
                return;
        free(t->key);
        free(t->rv);
        *t = model.tomb[--model.n_tomb];
}

static void add_entry(entry **arr, size_t *n, char *key, const char *ns, const char *rv,
                      const char *uid, uint64_t gen) {
        entry *a = realloc(*arr, (*n + 1) * sizeof *a);
        if (!a)
                abort();
        *arr = a;
        a[(*n)++] = (entry){key, xstrdup(ns ? ns : ""), xstrdup(rv ? rv : ""),
                            xstrdup(uid ? uid : ""), gen};
}

static entry *deleted_find(const char *key) {
        for (size_t i = 0; i < model.n_deleted; i++)
                if (strcmp(model.deleted[i].key, key) == 0)
                        return &model.deleted[i];
        return NULL;
}

static void deleted_forget(const char *key) {
        entry *d = deleted_find(key);
        if (!d)
                return;
        entry_free(d);
        *d = model.deleted[--model.n_deleted];
}

/* The store's delete_at: while a list is in progress, the key is noted with
 * the deletion's resourceVersion and the deleted entry's uid. */
static void model_delete_at(const char *key, const char *rv) {
        entry *e = find(key);
        if (model.list_begun) {
                deleted_forget(key);
                add_entry(&model.deleted, &model.n_deleted, xstrdup(key), NULL, rv,
                          e ? e->uid : NULL, model.gen);
        }
        if (e)
                remove_at((size_t)(e - model.e));
}

/* The store's upsert with KOC_STORE_ONLY_NEWER: a stored record with the same
 * or a newer resourceVersion stays (and keeps its generation). */
static void model_upsert(const cJSON *obj) {
        char *key = key_of(obj, false);
        if (!key)
                return;
        const char *rv = str_field(meta(obj), "resourceVersion");
        const char *ns = str_field(meta(obj), "namespace");
        const char *uid = str_field(meta(obj), "uid");
        entry *e = find(key);
        if (e) {
                if (strcmp(e->rv, rv ? rv : "") != 0 &&
                    koc__rv_compare(e->rv, rv ? rv : "") != KOC_RV_NEWER) {
                        set(&e->rv, rv ? rv : "");
                        set(&e->ns, ns ? ns : "");
                        set(&e->uid, uid ? uid : "");
                        e->gen = model.gen;
                }
                free(key);
                return;
        }
        if (model.list_begun)
                deleted_forget(key);
        add_entry(&model.e, &model.n, key, ns, rv, uid, model.gen);
}

static void staged_clear(void) {
        for (size_t i = 0; i < model.n_staged; i++)
                entry_free(&model.staged[i]);
        free(model.staged);
        model.staged = NULL;
        model.n_staged = 0;
        for (size_t i = 0; i < model.n_deleted; i++)
                entry_free(&model.deleted[i]);
        free(model.deleted);
        model.deleted = NULL;
        model.n_deleted = 0;
        for (size_t i = 0; i < model.n_tokens; i++)
                free(model.tokens[i]);
        free(model.tokens);
        model.tokens = NULL;
        model.n_tokens = 0;
}

/* True when the list in progress saw the token before (the reflector
 * abandons such a list); notes it otherwise. */
static bool token_repeats(const char *cont) {
        for (size_t i = 0; i < model.n_tokens; i++)
                if (strcmp(model.tokens[i], cont) == 0)
                        return true;
        char **t = realloc(model.tokens, (model.n_tokens + 1) * sizeof *t);
        if (!t)
                abort();
        model.tokens = t;
        t[model.n_tokens++] = xstrdup(cont);
        return false;
}

static void model_stage(const cJSON *obj) {
        char *key = key_of(obj, false);
        if (key)
                add_entry(&model.staged, &model.n_staged, key, str_field(meta(obj), "namespace"),
                          str_field(meta(obj), "resourceVersion"), str_field(meta(obj), "uid"),
                          0);
}

/* A key deleted since the list began stays deleted unless the listed
 * object is another one (uid) or newer than the deletion. */
static bool deleted_since_list(const entry *st) {
        const entry *d = deleted_find(st->key);
        if (!d || d->gen != model.list_gen)
                return false;
        if (*d->uid && *st->uid && strcmp(d->uid, st->uid) != 0)
                return false;
        return koc__rv_compare(st->rv, d->rv) != KOC_RV_NEWER;
}

/* The store's replace_end: the list is authoritative, except for records
 * written since the list began that are newer than it, and keys deleted
 * since it began. */
static void model_replace(const char *list_rv) {
        uint64_t listed = ++model.gen;
        for (size_t i = 0; i < model.n_staged; i++) {
                entry *st = &model.staged[i];
                entry *e = find(st->key);
                if (e && e->gen != listed && e->gen == model.list_gen &&
                    koc__rv_compare(e->rv, st->rv) == KOC_RV_NEWER) {
                        e->gen = listed;
                        continue;
                }
                if (!e && deleted_since_list(st))
                        continue;
                if (e) {
                        set(&e->rv, st->rv);
                        set(&e->ns, st->ns);
                        set(&e->uid, st->uid);
                        e->gen = listed;
                } else
                        add_entry(&model.e, &model.n, xstrdup(st->key), st->ns, st->rv, st->uid,
                                  listed);
        }
        for (size_t i = 0; i < model.n;)
                if (model.e[i].gen != listed &&
                    !(model.e[i].gen == model.list_gen &&
                      koc__rv_compare(model.e[i].rv, list_rv ? list_rv : "") == KOC_RV_NEWER)) {
                        tomb_set(model.e[i].key, list_rv);
                        remove_at(i);
                } else
                        i++;
        staged_clear();
}

static void model_reset(void) {
        while (model.n)
                remove_at(0);
        for (size_t i = 0; i < model.n_tomb; i++) {
                free(model.tomb[i].key);
                free(model.tomb[i].rv);
        }
        staged_clear();
        free(model.e);
        free(model.tomb);
        free(model.cont);
        free(model.rv);
        model = (typeof(model)){0};
}

size_t fuzz_model_count(void) {
        return model.n;
}

/* A list request went out: the first page's begins the list (the store's
 * replace_begin, when the request is sent). */
static void model_list_sent(const char *query) {
        if (strstr(query, "continue=") || model.list_begun)
                return;
        model.list_begun = true;
        staged_clear();
        model.list_gen = ++model.gen;
}

/* What the reflector does on a failed page, an expired watch or a re-list:
 * everything starts from scratch. */
static void model_relist(void) {
        model.list_begun = false;
        staged_clear();
        set(&model.cont, NULL);
        set(&model.rv, NULL);
}

/* --- the informer ------------------------------------------------------------------ */

static const koc_resource configmaps = {
        .version = "v1", .resource = "configmaps", .kind = "ConfigMap", .namespaced = true};

static void on_update(koc_object *old, koc_object *new_, void *userdata) {
        (void)userdata;
        if (strcmp(koc_object_get_key(old), koc_object_get_key(new_)) != 0)
                abort();
}

koc_informer *fuzz_informer_new(const char *label_selector, const char *field_selector) {
        if (!fake.event && sd_event_new(&fake.event) < 0)
                abort();
        model_reset();
        model.has_label_selector = label_selector != NULL;
        model.has_field_selector = field_selector != NULL;
        koc_informer *inf = NULL;
        koc_error err = {0};
        /* One cache for the run: its registry holds only live informers. */
        static koc_cache *cache;
        if (!cache && koc__cache_new((koc_client *)&fake.client_token, NULL, &cache) < 0)
                abort();
        /* Paginated lists: what the list and watch-store targets script. */
        static const koc_informer_opts pages = {.list_mode = KOC_LIST_PAGES};
        if (koc__informer_get(cache, (koc_client *)&fake.client_token, &configmaps, "ns",
                              label_selector, field_selector, &pages, NULL, &inf, &err) < 0)
                abort();
        static const koc_informer_handler h = {.on_update = on_update};
        if (koc__informer_add_handler(inf, &h, NULL) < 0)
                abort();
        fuzz_run(); /* the first page request */
        return inf;
}

void fuzz_informer_free(koc_informer *inf) {
        koc__informer_unref(inf);
        fuzz_run();
        if (fake.request_live || fake.watch_live)
                abort(); /* the reflector cancels what it started */
        model_reset();
        free(fake.request_query);
        free(fake.watch_rv);
        fake.request_query = fake.watch_rv = NULL;
}

/* --- the server's side ------------------------------------------------------------- */

void fuzz_answer_list(int error, long status, const char *body, size_t len) {
        if (!fake.request_live)
                return;
        cJSON *j = error == 0 ? cJSON_ParseWithLength(body, len) : NULL;
        if (error == 0 && len > 0 && !j)
                error = -EBADMSG; /* the client's verdict on a body that is not JSON */

        /* The model first, from the same parsed body. */
        if (error < 0 || status != 200 || !cJSON_IsObject(j)) {
                model_relist();
        } else {
                const cJSON *item;
                cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(j, "items")) {
                        if (cJSON_IsObject(item))
                                model_stage(item);
                }
                const char *cont = str_field(meta(j), "continue");
                if (cont && *cont && token_repeats(cont)) {
                        model_relist(); /* a continue loop: abandoned */
                } else if (cont && *cont) {
                        set(&model.cont, cont);
                } else {
                        const char *rv = str_field(meta(j), "resourceVersion");
                        model_replace(rv);
                        set(&model.cont, NULL);
                        set(&model.rv, rv);
                        model.list_begun = false;
                }
        }

        koc_response resp = {
                .error = error, .status = error < 0 ? 0 : status, .message = "", .body = j};
        fake.request_live = false;
        fake.request_handler((koc_client *)&fake.client_token, &resp, fake.request_userdata);
        cJSON_Delete(resp.body);
        fuzz_run();
}

static void deliver(koc_watch_event *ev) {
        fake.watch_handler((koc_watch *)&fake.watch_token, ev, fake.watch_userdata);
}

void fuzz_watch_close(long status, int error) {
        if (!fake.watch_live)
                return;
        if (status == 410)
                model_relist();
        koc_watch_event ev = {
                .type = KOC_WATCH_CLOSED, .status = status, .error = error, .message = ""};
        watch_gone();
        deliver(&ev);
        fuzz_run();
}

void fuzz_watch_line(const char *line, size_t len) {
        if (!fake.watch_live)
                return;
        koc_watch_event_type type;
        cJSON *obj = NULL;
        koc_status st;
        int r = koc__watch_line_parse(line, len, &type, &obj, &st);
        if (r == -ENOMSG)
                return; /* an event of an unknown type: the client skips it */
        if (r < 0) {
                /* The client ends the stream at a line that is no event. */
                fuzz_watch_close(200, -EBADMSG);
                return;
        }
        if (!cJSON_IsObject(obj))
                abort();

        /* The model. */
        if (type == KOC_WATCH_ERROR) {
                if (st.code == 410)
                        model_relist();
        } else {
                const char *rv = str_field(meta(obj), "resourceVersion");
                if (rv && *rv)
                        set(&model.rv, rv);
                char *key = type == KOC_WATCH_BOOKMARK ? NULL : key_of(obj, true);
                if (key && type == KOC_WATCH_DELETED) {
                        tomb_set(key, rv);
                        model_delete_at(key, rv);
                } else if (key) {
                        tomb_drop(key);
                        model_upsert(obj);
                }
                free(key);
        }

        koc_watch_event ev = {.type = type, .object = obj, .message = ""};
        if (type == KOC_WATCH_ERROR) {
                ev.status = st.code;
                ev.reason = st.reason;
                if (st.message)
                        ev.message = st.message;
        }
        deliver(&ev);
        cJSON_Delete(ev.object);
        fuzz_run();
}

static bool label_matches(const cJSON *obj) {
        /* The harnesses' label selector is "app" (the label exists). */
        return !model.has_label_selector ||
               str_field(cJSON_GetObjectItemCaseSensitive(meta(obj), "labels"), "app");
}

void fuzz_apply_write(koc_informer *inf, const char *json, size_t len) {
        cJSON *obj = cJSON_ParseWithLength(json, len);
        if (!obj)
                return;
        char *key = key_of(obj, true);
        const char *ns = str_field(meta(obj), "namespace");
        if (key && ns && strcmp(ns, "ns") == 0) {
                bool cached = find(key) != NULL;
                pair *dead = cached ? NULL : tomb_find(key);
                const char *rv = str_field(meta(obj), "resourceVersion");
                if (dead && koc__rv_compare(rv, dead->rv) != KOC_RV_NEWER) {
                        /* History: the watch already reported it deleted. */
                } else if (model.has_field_selector && !cached) {
                        /* Cannot be evaluated here. */
                } else if (!label_matches(obj)) {
                        if (cached)
                                model_delete_at(key, rv);
                } else
                        model_upsert(obj);
        }
        free(key);
        koc__informer_apply_write(inf, obj);
        cJSON_Delete(obj);
        fuzz_run();
}

/* key: "KEY" or "KEY RV" (the deletion's resourceVersion). */
void fuzz_apply_delete(koc_informer *inf, const char *key) {
        char *k = xstrdup(key), *rv = strchr(k, ' ');
        if (rv)
                *rv++ = '\0';
        model_delete_at(k, rv);
        koc__informer_apply_delete(inf, k, rv);
        free(k);
        fuzz_run();
}

/* --- the invariants ---------------------------------------------------------------- */

/* "%XX" for everything but RFC 3986's unreserved characters. */
static char *encode(const char *s) {
        char *out = malloc(3 * strlen(s) + 1), *o = out;
        if (!out)
                abort();
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || strchr("-._~", *p))
                        *o++ = (char)*p;
                else
                        o += sprintf(o, "%%%02X", *p);
        }
        *o = '\0';
        return out;
}

static bool query_has(const char *query, const char *name, const char *value) {
        char *enc = encode(value), *want = NULL;
        if (asprintf(&want, "%s=%s", name, enc) < 0)
                abort();
        size_t wl = strlen(want);
        bool found = false;
        for (const char *p = query; p && *p; p = strchr(p, '&'), p = p ? p + 1 : NULL)
                if (strncmp(p, want, wl) == 0 && (p[wl] == '&' || p[wl] == '\0'))
                        found = true;
        free(want);
        free(enc);
        return found;
}

static bool no_key(const cJSON *o, const char *name) {
        const cJSON *c;
        cJSON_ArrayForEach(c, o) {
                if (c->string && strcmp(c->string, name) == 0)
                        return false;
        }
        return true;
}

static void check_object(koc_object *o, const entry *e) {
        if (strcmp(koc_object_get_key(o), e->key) != 0 ||
            strcmp(koc_object_get_resource_version(o), e->rv) != 0 ||
            strcmp(koc_object_get_namespace(o), e->ns) != 0)
                abort();
        cJSON *j = NULL;
        if (koc_object_parse(o, &j) < 0)
                abort();
        /* The default transform leaves neither managedFields nor the
         * last-applied annotation in the cache. */
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(j, "metadata");
        if (!no_key(md, "managedFields"))
                abort();
        const cJSON *a;
        cJSON_ArrayForEach(a, (cJSON_IsObject(md) ? md : NULL)) {
                if (a->string && strcmp(a->string, "annotations") == 0 &&
                    !no_key(a, "kubectl.kubernetes.io/last-applied-configuration"))
                        abort();
        }
        cJSON_Delete(j);
}

void fuzz_check(koc_informer *inf) {
        koc_store *s = koc__informer_get_store(inf);
        if (koc__store_count(s) != model.n)
                abort();
        size_t bytes = 0, in_ns = 0;
        for (size_t i = 0; i < model.n; i++) {
                koc_object *o = koc__store_get(s, model.e[i].key);
                if (!o)
                        abort();
                check_object(o, &model.e[i]);
                size_t len = 0;
                (void)koc_object_get_json(o, &len);
                bytes += len;
                in_ns += strcmp(model.e[i].ns, "ns") == 0;
                koc_object_unref(o);
        }
        if (koc__store_bytes(s) != bytes)
                abort();
        char **keys = NULL;
        size_t n = 0;
        if (koc__store_keys(s, &keys, &n) < 0 || n != model.n)
                abort();
        for (size_t i = 0; i < n; i++) {
                if (!find(keys[i]))
                        abort();
                free(keys[i]);
        }
        free(keys);
        koc_object **list = NULL;
        if (koc__store_list(s, "ns", NULL, &list, &n) < 0 || n != in_ns)
                abort();
        koc_object_list_free(list, n);

        /* The reflector's requests: a continued page names its token, the
         * first page none; a watch resumes from the last resourceVersion. */
        if (fake.request_live) {
                if (model.cont ? !query_has(fake.request_query, "continue", model.cont)
                               : strstr(fake.request_query, "continue=") != NULL)
                        abort();
                if (model.has_label_selector &&
                    !query_has(fake.request_query, "labelSelector", "app"))
                        abort();
        }
        static unsigned checked_watches;
        if (fake.watches != checked_watches && fake.watch_live &&
            (model.rv ? !fake.watch_rv || strcmp(model.rv, fake.watch_rv) != 0
                      : fake.watch_rv != NULL))
                abort();
        checked_watches = fake.watches;
        if (fake.request_live == fake.watch_live)
                abort(); /* exactly one of them while the informer runs */
}
