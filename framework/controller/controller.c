/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller: registration on a manager, event handlers that turn cache
 * events into keys, and the workers that reconcile them.
 *
 * Leadership comes from the manager in two ways.  A runnable (started and
 * stopped with leadership, on the loop thread) switches the controller active
 * or inactive: starting fills the queue from the warm cache, stopping drops
 * every pending key.  And each reconcile is bracketed by
 * koc_manager_work_begin()/end(), which refuses on a standby and after the
 * intake closed, and which the shutdown drain waits for before the Lease is
 * released.  A shutdown hook stops the queue, so that idle workers exit and
 * busy ones exit after their current reconcile.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller-internal.h"
#include "core/reflector.h"
#include "framework/cache/cache-internal.h"
#include "core/util.h"
#include "koc/log.h"
#include "koc/time.h"

#define LOG "controller"

static const double reconcile_buckets[] = {
        0.005, 0.01, 0.025, 0.05, 0.1,  0.15, 0.2,  0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6,
        0.7,   0.8,  0.9,   1.0,  1.25, 1.5,  1.75, 2.0,  2.5, 3.0,  3.5, 4.0,  4.5, 5,
        6,     7,    8,     9,    10,   15,   20,   25,   30,  40,   50,  60};
static const double queue_buckets[] = {1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1, 10};

KOC_EXPORT int koc_controller_options_init_sized(size_t o_size, koc_controller_options *o) {
        koc_controller_options d = {.workers = 1};

        if (!o || o_size < KOC__STRUCT_MIN_SIZE(koc_controller_options, name))
                return -EINVAL;
        /* A newer program's fields beyond ours are zero: their defaults. */
        memset(o, 0, o_size);
        memcpy(o, &d, o_size < sizeof d ? o_size : sizeof d);
        return 0;
}

KOC_EXPORT const char *koc_controller_get_name(koc_controller *c) {
        return c ? c->name : NULL;
}

KOC_EXPORT bool koc_controller_has_synced(koc_controller *c) {
        if (!c || !koc__informer_has_synced(c->primary))
                return false;
        for (size_t i = 0; i < c->n_sources; i++)
                if (!koc__informer_has_synced(c->sources[i]->inf))
                        return false;
        return true;
}

/* --- enqueueing (loop thread, or any thread for koc_controller_enqueue) ---------- */

static void enqueue_key(koc_controller *c, const char *key, bool initial) {
        if (!atomic_load(&c->active))
                return;
        int r = initial ? koc__workqueue_add_initial(c->q, key) : koc__workqueue_add(c->q, key);
        if (r < 0 && r != -ESHUTDOWN)
                koc_log_warn(LOG, "controller=%s cannot queue key=%s: %s", c->name, key,
                             strerror(-r));
}

KOC_EXPORT int koc_controller_enqueue(koc_controller *c, const char *namespace_, const char *name) {
        char key[512];
        if (!c || !name)
                return -EINVAL;
        int r = koc_object_key_format(namespace_, name, key, sizeof key);
        if (r < 0)
                return r;
        enqueue_key(c, key, false);
        return 0;
}

static void fill_from_cache(koc_controller *c) {
        char **keys = NULL;
        size_t n = 0;
        if (koc__store_keys(koc__informer_get_store(c->primary), &keys, &n) < 0)
                return;
        for (size_t i = 0; i < n; i++) {
                enqueue_key(c, keys[i], true);
                free(keys[i]);
        }
        free(keys);
}

static bool predicates_pass(koc_controller *c, koc_object *old, koc_object *new_) {
        if (c->n_predicates == 0)
                return true;
        cJSON *o = NULL, *n = NULL;
        if (old)
                (void)koc_object_parse(old, &o);
        if (new_)
                (void)koc_object_parse(new_, &n);
        bool pass = true;
        for (size_t i = 0; pass && i < c->n_predicates; i++)
                pass = c->predicates[i].fn(o, n, c->predicates[i].userdata);
        cJSON_Delete(o);
        cJSON_Delete(n);
        return pass;
}

static void primary_add(koc_object *o, void *userdata) {
        koc_controller *c = userdata;
        if (predicates_pass(c, NULL, o))
                enqueue_key(c, koc_object_get_key(o), false);
}

static void primary_update(koc_object *old, koc_object *o, void *userdata) {
        koc_controller *c = userdata;
        if (predicates_pass(c, old, o))
                enqueue_key(c, koc_object_get_key(o), false);
}

static void primary_delete(koc_object *o, void *userdata) {
        koc_controller *c = userdata;
        if (predicates_pass(c, o, NULL))
                enqueue_key(c, koc_object_get_key(o), false);
}

static void controller_synced(koc_controller *c);

static void primary_synced(void *userdata) {
        koc_controller *c = userdata;
        koc_log_info(LOG, "controller=%s cache synced objects=%zu", c->name,
                     koc__store_count(koc__informer_get_store(c->primary)));
        controller_synced(c);
}

static const koc_informer_handler primary_handler = {
        .on_add = primary_add,
        .on_update = primary_update,
        .on_delete = primary_delete,
        .on_synced = primary_synced,
};

struct koc_keys {
        koc_controller *c;
};

KOC_EXPORT int koc_keys_add(koc_keys *keys, const char *namespace_, const char *name) {
        if (!keys || !name)
                return -EINVAL;
        return koc_controller_enqueue(keys->c, namespace_, name);
}

void koc__owner_refs_foreach(const cJSON *obj, const koc_resource *res,
                             void (*cb)(const char *namespace_, const char *name, void *userdata),
                             void *userdata) {
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
        const cJSON *ns = cJSON_GetObjectItemCaseSensitive(md, "namespace");
        const cJSON *refs = cJSON_GetObjectItemCaseSensitive(md, "ownerReferences"), *ref;

        if (!cJSON_IsObject(md) || !cJSON_IsArray(refs))
                return;
        /* metav1.GetControllerOf: the first reference with controller: true
         * is the controller (the API server allows one; a hostile or broken
         * server's object does not get to name several). */
        cJSON_ArrayForEach(ref, refs) {
                if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ref, "controller")))
                        break;
        }
        if (!ref)
                return;
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(ref, "kind");
        const cJSON *api = cJSON_GetObjectItemCaseSensitive(ref, "apiVersion");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(ref, "name");
        if (!cJSON_IsString(kind) || !cJSON_IsString(api) || !cJSON_IsString(name) ||
            strcmp(kind->valuestring, res->kind) != 0)
                return;
        /* The group must match; any version of it names the same object. */
        const char *slash = strchr(api->valuestring, '/');
        size_t glen = slash ? (size_t)(slash - api->valuestring) : 0;
        if (strlen(res->group) != glen || strncmp(res->group, api->valuestring, glen) != 0)
                return;
        cb(res->namespaced && cJSON_IsString(ns) ? ns->valuestring : NULL, name->valuestring,
           userdata);
}

static void enqueue_owner(const char *namespace_, const char *name, void *userdata) {
        koc_controller_enqueue(userdata, namespace_, name);
}

/* ownerReferences naming a primary of this controller as controller. */
static void enqueue_owners(koc_controller *c, const cJSON *obj) {
        koc__owner_refs_foreach(obj, koc__informer_get_resource(c->primary), enqueue_owner, c);
}

static void source_event(source *s, koc_object *o) {
        if (!atomic_load(&s->c->active) || !o)
                return;
        cJSON *obj = NULL;
        if (koc_object_parse(o, &obj) < 0)
                return;
        if (s->kind == SOURCE_OWNS)
                enqueue_owners(s->c, obj);
        else {
                koc_keys keys = {s->c};
                s->map(obj, &keys, s->userdata);
        }
        cJSON_Delete(obj);
}

static void source_add(koc_object *o, void *userdata) {
        source_event(userdata, o);
}

static void source_update(koc_object *old, koc_object *o, void *userdata) {
        /* Both: an owner reference (or a mapped key) may have moved. */
        source_event(userdata, old);
        source_event(userdata, o);
}

static void source_delete(koc_object *o, void *userdata) {
        source_event(userdata, o);
}

static void source_synced(void *userdata) {
        source *s = userdata;
        controller_synced(s->c);
}

static const koc_informer_handler source_handler = {
        .on_add = source_add,
        .on_update = source_update,
        .on_delete = source_delete,
        .on_synced = source_synced,
};

/* --- predicates -------------------------------------------------------------------- */

static bool json_changed(const cJSON *old, const cJSON *new_, const char *field) {
        if (!old || !new_)
                return true;
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(old, "metadata"), field);
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(new_, "metadata"), field);
        if (!a || !b)
                return (a == NULL) != (b == NULL);
        return !cJSON_Compare(a, b, true);
}

KOC_EXPORT bool koc_predicate_generation_changed(const cJSON *old, const cJSON *new_,
                                                 void *userdata) {
        return json_changed(old, new_, "generation");
}

KOC_EXPORT bool koc_predicate_labels_changed(const cJSON *old, const cJSON *new_, void *userdata) {
        return json_changed(old, new_, "labels");
}

KOC_EXPORT bool koc_predicate_annotations_changed(const cJSON *old, const cJSON *new_,
                                                  void *userdata) {
        return json_changed(old, new_, "annotations");
}

/* --- workers ------------------------------------------------------------------------- */

KOC_EXPORT const char *koc_reconcile_get_namespace(koc_reconcile_context *ctx) {
        return ctx->namespace_;
}
KOC_EXPORT const char *koc_reconcile_get_name(koc_reconcile_context *ctx) {
        return ctx->name;
}
KOC_EXPORT const char *koc_reconcile_get_key(koc_reconcile_context *ctx) {
        return ctx->key;
}
KOC_EXPORT koc_object *koc_reconcile_get_cached(koc_reconcile_context *ctx) {
        return ctx->cached;
}
KOC_EXPORT uint64_t koc_reconcile_get_term(koc_reconcile_context *ctx) {
        return ctx->term;
}
KOC_EXPORT koc_controller *koc_reconcile_get_controller(koc_reconcile_context *ctx) {
        return ctx->c;
}

KOC_EXPORT koc_cache *koc_reconcile_get_cache(koc_reconcile_context *ctx) {
        return ctx ? koc_manager_get_cache(ctx->c->m) : NULL;
}
KOC_EXPORT int koc_reconcile_get_last_error(koc_reconcile_context *ctx, koc_error *ret) {
        if (!ctx || !ret)
                return -EINVAL;
        if (ctx->last_error.code == 0)
                return 0;
        if (ctx->last_error.status > 0)
                return koc_error_set(ret, ctx->last_error.code, "%s %s: %ld %s: %s",
                                     ctx->last_error.method, ctx->last_error.path,
                                     ctx->last_error.status,
                                     koc_reason_to_string(ctx->last_error.reason),
                                     ctx->last_error.message);
        return koc_error_set(ret, ctx->last_error.code, "%s %s: %s", ctx->last_error.method,
                             ctx->last_error.path, ctx->last_error.message);
}

KOC_EXPORT const cJSON *koc_reconcile_get_object(koc_reconcile_context *ctx) {
        if (!ctx->parsed_done && ctx->cached) {
                ctx->parsed_done = true;
                if (koc_object_parse(ctx->cached, &ctx->parsed) < 0)
                        ctx->parsed = NULL;
                /* Objects from a list carry no apiVersion and kind; owner
                 * references and writes of the object need them. */
                if (ctx->parsed)
                        (void)koc__json_fill_type(
                                ctx->parsed, ctx->c->api_version,
                                koc__informer_get_resource(ctx->c->primary)->kind);
        }
        return ctx->parsed;
}

bool koc__controller_may_write(koc_reconcile_context *ctx) {
        koc_controller *c = ctx->c;
        return atomic_load(&c->active) && atomic_load(&c->epoch) == ctx->epoch &&
               koc_manager_is_leader(c->m);
}

bool koc__controller_timed_out(koc_reconcile_context *ctx) {
        return ctx->slot && atomic_load(&ctx->slot->timed_out);
}

KOC_EXPORT bool koc_reconcile_is_cancelled(koc_reconcile_context *ctx) {
        return !koc__controller_may_write(ctx) || koc__controller_timed_out(ctx) ||
               koc_manager_is_stopping(ctx->c->m);
}

static void count_result(koc_controller *c, const koc_result *res, double seconds) {
        koc_metric_observe(c->metrics.reconcile_time, seconds);
        switch (res->type) {
        case KOC_RESULT_DONE:
                koc_metric_inc(c->metrics.success);
                break;
        case KOC_RESULT_REQUEUE:
                koc_metric_inc(res->requeue_after_usec ? c->metrics.requeue_after
                                                       : c->metrics.requeue);
                break;
        case KOC_RESULT_TERMINAL:
                koc_metric_inc(c->metrics.terminal_errors);
                /* A terminal error is an error too. */
                __attribute__((fallthrough));
        case KOC_RESULT_ERROR:
                koc_metric_inc(c->metrics.error);
                koc_metric_inc(c->metrics.errors);
                break;
        }
}

/* The slot says what this worker runs; the watchdog reads it. */
static void slot_begin(worker_slot *slot, const char *key, uint64_t t0) {
        koc_controller *c = slot->c;
        if (c->timeout_usec == 0)
                return;
        pthread_mutex_lock(&c->slots_lock);
        snprintf(slot->key, sizeof slot->key, "%s", key);
        slot->started_at = t0 ? t0 : 1;
        slot->reported = false;
        atomic_store(&slot->timed_out, false);
        pthread_mutex_unlock(&c->slots_lock);
}

static void slot_end(worker_slot *slot, double secs) {
        koc_controller *c = slot->c;
        if (c->timeout_usec == 0)
                return;
        pthread_mutex_lock(&c->slots_lock);
        bool was_stuck = slot->reported;
        slot->started_at = 0;
        slot->reported = false;
        atomic_store(&slot->timed_out, false);
        if (was_stuck)
                koc_metric_set(c->metrics.stuck, (double)--c->n_stuck);
        pthread_mutex_unlock(&c->slots_lock);
        if (was_stuck)
                koc_log_info(LOG, "controller=%s key=%s stuck reconcile returned after %.3fs",
                             c->name, slot->key, secs);
}

/* How often one key's failures are said while it keeps failing (the first
 * failure since it last succeeded is always said), and how many failure
 * lines of all keys together fit in a window: a missing RBAC rule fails
 * every key at once. */
#define FAILURE_REPORT_KEY_INTERVAL_USEC (60 * KOC_USEC_PER_SEC)
#define FAILURE_REPORT_INTERVAL_USEC (10 * KOC_USEC_PER_SEC)
#define FAILURE_REPORT_BURST 10

/* A failed reconcile, said at warn with the controller, the key, how long it
 * ran and, when an API call of the reconcile failed with the same errno (or
 * a write other than an Event failed at all), that call: method, path, HTTP
 * status, Status reason and message.  Failures caused by a lost term or a shutdown are
 * expected and said at debug. */
static void report_failure(koc_controller *c, koc_reconcile_context *ctx, const koc_result *res,
                           double secs, bool same_term) {
        bool terminal = res->type == KOC_RESULT_TERMINAL;
        int e = res->error < 0 ? res->error : -EIO;
        const char *what = terminal ? "terminal error" : "reconcile failed";
        char api[1700] = "", held_text[64] = "";
        unsigned held = 0;

        if (!terminal && (!same_term || e == -ENOLCK || e == -ECANCELED)) {
                koc_log_debug(LOG, "controller=%s key=%s %s after %.3fs: %s", c->name, ctx->key,
                              what, secs, strerror(-e));
                return;
        }
        if (!terminal &&
            !koc__workqueue_report_due(c->q, ctx->key, FAILURE_REPORT_KEY_INTERVAL_USEC, &held))
                return;
        if (held > 0)
                snprintf(held_text, sizeof held_text, " failures_not_logged=%u", held);
        if (ctx->last_error.code < 0 && (ctx->last_error.code == e || ctx->last_error.mutating)) {
                /* The call is named the cause only when its errno is the
                 * result's; otherwise it is what it is, the last failed write. */
                const char *label = ctx->last_error.code == e ? "" : "; last failed write:";
                if (ctx->last_error.status > 0)
                        snprintf(api, sizeof api,
                                 "%s method=%s path=%s status=%ld reason=%s message=\"%s\"",
                                 label, ctx->last_error.method, ctx->last_error.path,
                                 ctx->last_error.status,
                                 koc_reason_to_string(ctx->last_error.reason),
                                 ctx->last_error.message);
                else
                        snprintf(api, sizeof api, "%s method=%s path=%s transport=\"%s\"", label,
                                 ctx->last_error.method, ctx->last_error.path,
                                 ctx->last_error.message);
        }
        koc__log_ratelimited(&c->failure_rl, KOC_LOG_WARN, LOG,
                             "controller=%s key=%s %s after %.3fs: %s (%d)%s%s", c->name,
                             ctx->key, what, secs, strerror(-e), e, held_text, api);
}

static void run_one(worker_slot *slot, const char *key) {
        koc_controller *c = slot->c;
        koc_reconcile_context ctx = {.c = c, .slot = slot};
        uint64_t transitions = 0;

        snprintf(ctx.key, sizeof ctx.key, "%s", key);
        const char *slash = strchr(key, '/');
        if (slash) {
                snprintf(ctx.namespace_, sizeof ctx.namespace_, "%.*s", (int)(slash - key), key);
                ctx.name = ctx.key + (slash - key) + 1;
        } else
                ctx.name = ctx.key;
        ctx.epoch = atomic_load(&c->epoch);
        if (koc_manager_get_term(c->m, &transitions, NULL, 0) == 1)
                ctx.term = transitions;
        else
                ctx.term = atomic_load(&c->term);
        ctx.cached = koc__store_get(koc__informer_get_store(c->primary), key);

        atomic_fetch_add(&c->busy_workers, 1);
        koc_metric_set(c->metrics.active_workers, (double)atomic_load(&c->busy_workers));
        uint64_t t0 = koc_now_boottime_usec();
        slot_begin(slot, key, t0);
        /* For chaos runs and post-mortems: when a reconcile began, in which term,
         * and whether this replica led at that instant (CLOCK_BOOTTIME, us). */
        koc_log_debug(LOG,
                      "reconcile begins controller=%s key=%s term=%" PRIu64 " at=%" PRIu64
                      " leading=%d",
                      c->name, key, ctx.term, t0, koc_manager_is_leader(c->m) ? 1 : 0);
        koc_result res = c->reconcile(&ctx, c->userdata);
        double secs = (double)(koc_now_boottime_usec() - t0) / 1e6;
        slot_end(slot, secs);
        atomic_fetch_sub(&c->busy_workers, 1);
        koc_metric_set(c->metrics.active_workers, (double)atomic_load(&c->busy_workers));
        count_result(c, &res, secs);

        /* Retries belong to the term they failed in: a new term starts from
         * the cache anyway. */
        bool same_term = atomic_load(&c->epoch) == ctx.epoch;
        switch (res.type) {
        case KOC_RESULT_DONE:
                koc__workqueue_forget(c->q, key);
                break;
        case KOC_RESULT_REQUEUE:
                /* As controller-runtime: a delay is honoured as given and
                 * resets the backoff; "again, no delay" goes through the
                 * backoff, so that it cannot spin. */
                if (res.requeue_after_usec > 0) {
                        koc__workqueue_forget(c->q, key);
                        if (same_term)
                                koc__workqueue_add_after(c->q, key, res.requeue_after_usec);
                } else if (same_term)
                        koc__workqueue_add_rate_limited(c->q, key);
                break;
        case KOC_RESULT_ERROR:
                report_failure(c, &ctx, &res, secs, same_term);
                if (same_term)
                        koc__workqueue_add_rate_limited(c->q, key);
                break;
        case KOC_RESULT_TERMINAL:
                report_failure(c, &ctx, &res, secs, same_term);
                koc__workqueue_forget(c->q, key);
                break;
        }
        cJSON_Delete(ctx.parsed);
        koc_object_unref(ctx.cached);
}

#define RELEASE_AFTER 4096

static void *worker_main(void *userdata) {
        worker_slot *slot = userdata;
        koc_controller *c = slot->c;
        char *key;

        while (koc__workqueue_get(c->q, &key) == 0) {
                /* The gate: refused on a standby and once the intake closed;
                 * the drain waits for every item that got through. */
                if (atomic_load(&c->active) && koc_manager_work_begin(c->m) == 0) {
                        run_one(slot, key);
                        koc_manager_work_end(c->m);
                }
                koc__workqueue_done(c->q, key);
                free(key);
                /* A burst (the first fill after a list) drained: the memory
                 * of its queue entries and reconciles goes back, rather than
                 * staying as free heap between the cache's records. */
                if (atomic_fetch_add(&c->handled_since_release, 1) + 1 >= RELEASE_AFTER &&
                    koc__workqueue_len(c->q) == 0 &&
                    atomic_exchange(&c->handled_since_release, 0) >= RELEASE_AFTER)
                        koc__heap_release();
        }
        return NULL;
}

static int start_workers(koc_controller *c) {
        if (c->n_threads > 0)
                return 0;
        c->threads = calloc(c->n_workers, sizeof *c->threads);
        if (!c->threads)
                return -ENOMEM;
        for (unsigned i = 0; i < c->n_workers; i++) {
                int r = pthread_create(&c->threads[i], NULL, worker_main, &c->slots[i]);
                if (r != 0)
                        return -r;
                c->n_threads++;
        }
        return 0;
}

/* --- leadership (manager runnable) and shutdown ------------------------------------- */

/* Workers take keys from here on: the queue is filled from the cache. */
static void activate(koc_controller *c, uint64_t term) {
        atomic_store(&c->term, term);
        atomic_fetch_add(&c->epoch, 1);
        atomic_store(&c->active, true);
        fill_from_cache(c);
        koc_log_info(LOG, "controller=%s started term=%" PRIu64 " queued=%zu synced=%d", c->name,
                     term, koc__workqueue_len(c->q), koc_controller_has_synced(c) ? 1 : 0);
}

static void sync_wait_stop(koc_controller *c) {
        c->start_pending = false;
        if (c->sync_wait_timer)
                (void)sd_event_source_set_enabled(c->sync_wait_timer, SD_EVENT_OFF);
}

/* Calls the synced handlers not called yet (loop thread). */
static void notify_synced(koc_controller *c) {
        for (size_t i = 0; i < c->n_synced_handlers; i++) {
                synced_handler *h = &c->synced_handlers[i];
                if (h->called)
                        continue;
                h->called = true;
                h->fn(c, h->userdata);
        }
}

/* An informer of the controller listed: once all of them have, the synced
 * handlers run and a start that waited for the cache goes ahead. */
static void controller_synced(koc_controller *c) {
        if (c->sync_done || !koc_controller_has_synced(c))
                return;
        c->sync_done = true;
        koc_log_info(LOG, "controller=%s all caches synced informers=%zu", c->name,
                     c->n_sources + 1);
        notify_synced(c);
        if (c->start_pending && atomic_load(&c->epoch) == c->pending_epoch) {
                koc_log_info(LOG, "controller=%s caches synced after %.3fs: starting workers",
                             c->name,
                             (double)(koc_now_boottime_usec() - c->wait_since) / 1e6);
                uint64_t term = c->pending_term;
                sync_wait_stop(c);
                activate(c, term);
        }
}

/* Said while a leading controller waits for an informer that does not list
 * (the informer says why its lists fail; this says what it holds up). */
#define SYNC_WAIT_REPORT_USEC (30 * KOC_USEC_PER_SEC)

static int on_sync_wait(sd_event_source *s, uint64_t usec, void *userdata) {
        koc_controller *c = userdata;
        if (!c->start_pending)
                return sd_event_source_set_enabled(s, SD_EVENT_OFF);
        (void)sd_event_source_set_time_relative(s, SYNC_WAIT_REPORT_USEC);
        koc_informer *waiting = koc__informer_has_synced(c->primary) ? NULL : c->primary;
        for (size_t i = 0; !waiting && i < c->n_sources; i++)
                if (!koc__informer_has_synced(c->sources[i]->inf))
                        waiting = c->sources[i]->inf;
        if (!waiting)
                return 0; /* synced: controller_synced() runs from the informer */
        const char *ns = koc__informer_get_namespace(waiting);
        koc_log_warn(LOG,
                     "controller=%s leading for %.0fs but not reconciling: the cache of %s "
                     "(namespace %s) has not listed yet (workers start on a synced cache)",
                     c->name, (double)(koc_now_boottime_usec() - c->wait_since) / 1e6,
                     koc__informer_get_resource(waiting)->resource, ns ? ns : "all");
        return 0;
}

static int on_start(koc_manager *m, uint64_t term, void *userdata) {
        koc_controller *c = userdata;
        int r = start_workers(c);
        if (r < 0)
                return r;
        /* A shared informer may have listed before this controller was
         * registered on it: no on_synced then. */
        controller_synced(c);
        if (c->sync_done || c->start_before_synced) {
                activate(c, term);
                return 0;
        }
        /* A reconcile that lists the cache must not see a partial one: the
         * workers wait for every informer to list once. */
        c->start_pending = true;
        c->pending_term = term;
        c->pending_epoch = atomic_load(&c->epoch);
        c->wait_since = koc_now_boottime_usec();
        if (!c->sync_wait_timer &&
            sd_event_add_time_relative(koc_manager_get_event(c->m), &c->sync_wait_timer,
                                       CLOCK_BOOTTIME, SYNC_WAIT_REPORT_USEC, 0, on_sync_wait,
                                       c) < 0)
                c->sync_wait_timer = NULL;
        if (c->sync_wait_timer) {
                /* Repeating: each run moves it on by the interval. */
                (void)sd_event_source_set_time_relative(c->sync_wait_timer,
                                                        SYNC_WAIT_REPORT_USEC);
                (void)sd_event_source_set_enabled(c->sync_wait_timer, SD_EVENT_ON);
        }
        koc_log_info(LOG, "controller=%s leading term=%" PRIu64 ": waiting for caches to sync",
                     c->name, term);
        return 0;
}

static void on_stop(koc_manager *m, koc_leader_reason reason, void *userdata) {
        koc_controller *c = userdata;
        sync_wait_stop(c);
        atomic_store(&c->active, false);
        atomic_fetch_add(&c->epoch, 1);
        koc__workqueue_clear(c->q);
        koc_log_info(LOG, "controller=%s stopped reason=%s", c->name,
                     koc_leader_reason_to_string(reason));
}

static void on_shutdown(koc_shutdown_step *step, void *userdata) {
        koc_controller *c = userdata;
        /* Running reconciles finish (the drain waits for them); nothing new
         * is handed out. */
        koc__workqueue_shutdown(c->q);
        koc_shutdown_step_done(step);
}

static int cache_sync_check(char *why, size_t why_size, void *userdata) {
        koc_controller *c = userdata;
        if (koc_controller_has_synced(c))
                return 0;
        snprintf(why, why_size, "controller %s: caches not synced", c->name);
        return -EAGAIN;
}

static int on_resync(sd_event_source *s, uint64_t usec, void *userdata) {
        koc_controller *c = userdata;
        fill_from_cache(c);
        sd_event_source_set_time_relative(s, c->resync_usec);
        return 0;
}

/* --- the reconcile timeout ----------------------------------------------------------- */

/* Reports every reconcile that has run past the timeout, once, and sets its
 * cancellation flag; then sleeps until the next one could (the earliest
 * running reconcile's deadline, or a full timeout from now). */
static int on_watchdog(sd_event_source *s, uint64_t usec, void *userdata) {
        koc_controller *c = userdata;
        uint64_t t = koc_now_boottime_usec(), next = t + c->timeout_usec;

        pthread_mutex_lock(&c->slots_lock);
        for (unsigned i = 0; i < c->n_workers; i++) {
                worker_slot *w = &c->slots[i];
                if (w->started_at == 0 || w->reported)
                        continue;
                uint64_t due = w->started_at + c->timeout_usec;
                if (due > t) {
                        if (due < next)
                                next = due;
                        continue;
                }
                w->reported = true;
                atomic_store(&w->timed_out, true);
                koc_metric_inc(c->metrics.timeouts);
                koc_metric_set(c->metrics.stuck, (double)++c->n_stuck);
                const char *slash = strchr(w->key, '/');
                koc_log_warn(LOG,
                             "controller=%s namespace=%.*s name=%s reconcile stuck for %.3fs "
                             "(timeout %.3fs): cancelled, the key stays with its worker until it "
                             "returns",
                             c->name, slash ? (int)(slash - w->key) : 0, w->key,
                             slash ? slash + 1 : w->key, (double)(t - w->started_at) / 1e6,
                             (double)c->timeout_usec / 1e6);
        }
        pthread_mutex_unlock(&c->slots_lock);
        sd_event_source_set_time(s, next);
        return 0;
}

/* --- metrics ------------------------------------------------------------------------- */

static double unfinished_seconds(void *userdata) {
        queue_probe *p = userdata;
        return p->q ? koc__workqueue_unfinished_seconds(p->q) : 0;
}

static double longest_seconds(void *userdata) {
        queue_probe *p = userdata;
        return p->q ? koc__workqueue_longest_running_seconds(p->q) : 0;
}

static void register_metrics(koc_controller *c) {
        koc_metrics *m = koc_manager_get_metrics(c->m);
        char l[256], lr[320];
        koc_workqueue_metrics wq = {0};

        snprintf(l, sizeof l, "controller=\"%s\"", c->name);
#define RESULT(field, value)                                                                       \
        snprintf(lr, sizeof lr, "%s,result=\"%s\"", l, value);                                     \
        koc_metrics_add_counter(m, "controller_runtime_reconcile_total",                           \
                                "Total number of reconciliations per controller.", lr,             \
                                &c->metrics.field)
        RESULT(success, "success");
        RESULT(error, "error");
        RESULT(requeue, "requeue");
        RESULT(requeue_after, "requeue_after");
#undef RESULT
        koc_metrics_add_counter(m, "controller_runtime_reconcile_errors_total",
                                "Total number of reconciliation errors per controller.", l,
                                &c->metrics.errors);
        koc_metrics_add_counter(m, "controller_runtime_terminal_reconcile_errors_total",
                                "Total number of terminal reconciliation errors per controller.", l,
                                &c->metrics.terminal_errors);
        koc_metrics_add_histogram(
                m, "controller_runtime_reconcile_time_seconds",
                "Length of time per reconciliation per controller.", l, reconcile_buckets,
                sizeof reconcile_buckets / sizeof *reconcile_buckets, &c->metrics.reconcile_time);
        koc_metrics_add_gauge(m, "controller_runtime_max_concurrent_reconciles",
                              "Maximum number of concurrent reconciles per controller.", l,
                              &c->metrics.max_concurrent);
        koc_metric_set(c->metrics.max_concurrent, c->n_workers);
        koc_metrics_add_gauge(m, "controller_runtime_active_workers",
                              "Number of currently used workers per controller.", l,
                              &c->metrics.active_workers);
        if (c->timeout_usec > 0) {
                koc_metrics_add_gauge(m, "koc_controller_stuck_reconciles",
                                      "Reconciles running longer than the controller's reconcile "
                                      "timeout.",
                                      l, &c->metrics.stuck);
                koc_metrics_add_counter(m, "koc_controller_reconcile_timeouts_total",
                                        "Reconciles that ran past the controller's reconcile "
                                        "timeout.",
                                        l, &c->metrics.timeouts);
        }

        snprintf(l, sizeof l, "name=\"%s\",controller=\"%s\"", c->name, c->name);
        koc_metrics_add_gauge(m, "workqueue_depth", "Current depth of workqueue.", l, &wq.depth);
        koc_metrics_add_counter(m, "workqueue_adds_total",
                                "Total number of adds handled by workqueue.", l, &wq.adds);
        koc_metrics_add_counter(m, "workqueue_retries_total",
                                "Total number of retries handled by workqueue.", l, &wq.retries);
        koc_metrics_add_histogram(m, "workqueue_queue_duration_seconds",
                                  "How long in seconds an item stays in workqueue before being "
                                  "requested.",
                                  l, queue_buckets, sizeof queue_buckets / sizeof *queue_buckets,
                                  &wq.queue_duration);
        koc_metrics_add_histogram(m, "workqueue_work_duration_seconds",
                                  "How long in seconds processing an item from workqueue takes.", l,
                                  queue_buckets, sizeof queue_buckets / sizeof *queue_buckets,
                                  &wq.work_duration);
        koc__workqueue_set_metrics(c->q, &wq);
        /* The registry outlives the controller: the probes forget the queue
         * when it goes, and the registry frees them. */
        c->probe = calloc(1, sizeof *c->probe);
        queue_probe *p2 = calloc(1, sizeof *p2);
        if (c->probe && p2) {
                c->probe->q = c->q;
                koc_metrics_add_gauge_function(
                        m, "workqueue_unfinished_work_seconds",
                        "How many seconds of work has been done that is in progress and hasn't "
                        "been observed by work_duration.",
                        l, unfinished_seconds, c->probe, free, NULL);
                /* One probe per gauge, so each destroy frees its own. */
                p2->q = c->q;
                koc_metrics_add_gauge_function(
                        m, "workqueue_longest_running_processor_seconds",
                        "How many seconds has the longest running processor for workqueue been "
                        "running.",
                        l, longest_seconds, p2, free, NULL);
                c->probe2 = p2;
        } else {
                free(c->probe);
                free(p2);
                c->probe = NULL;
        }
}

/* --- registration -------------------------------------------------------------------- */

static bool valid_name(const char *s) {
        size_t n = s ? strlen(s) : 0;
        if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
                return false;
        return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

static int validate(koc_manager *m, const koc_controller_options *o, koc_error *err) {
        if (!valid_name(o->name))
                return koc_error_set(err, -EINVAL,
                                     "controller name \"%s\": must be 1 to 63 characters of "
                                     "[a-z0-9-], not starting or ending with '-'",
                                     o->name ? o->name : "");
        if (!o->resource.version || !*o->resource.version)
                return koc_error_set(err, -EINVAL, "controller %s: resource.version is required",
                                     o->name);
        if (!o->resource.resource || !*o->resource.resource ||
            strspn(o->resource.resource, "abcdefghijklmnopqrstuvwxyz0123456789-.") !=
                    strlen(o->resource.resource))
                return koc_error_set(err, -EINVAL,
                                     "controller %s: resource.resource \"%s\" must be a lower-case "
                                     "plural such as \"configmaps\"",
                                     o->name, o->resource.resource ? o->resource.resource : "");
        if (!o->resource.kind || !*o->resource.kind)
                return koc_error_set(err, -EINVAL, "controller %s: resource.kind is required",
                                     o->name);
        if (!o->reconcile)
                return koc_error_set(err, -EINVAL, "controller %s: reconcile callback is required",
                                     o->name);
        if ((unsigned)o->list_mode > KOC_LIST_STREAM)
                return koc_error_set(err, -EINVAL,
                                     "controller %s: list_mode=%d: not a koc_list_mode", o->name,
                                     (int)o->list_mode);
        if (o->workers > 1024)
                return koc_error_set(err, -EINVAL, "controller %s: workers=%u: at most 1024",
                                     o->name, o->workers);
        koc_selector *sel = NULL;
        koc_error why = {0};
        int r = koc__selector_parse(o->label_selector, &sel, &why);
        koc__selector_free(sel);
        /* The selector's own message goes into ours: a separate buffer, since
         * printing err->message into itself would overlap. */
        if (r < 0)
                return koc_error_set(err, r, "controller %s: %s", o->name, why.message);
        return 0;
}

static koc_controller *controller_free(koc_controller *c) {
        if (!c)
                return NULL;
        if (c->name_claimed)
                koc__cache_release_name(koc_manager_get_cache(c->m), c->name);
        atomic_store(&c->active, false);
        atomic_fetch_add(&c->epoch, 1);
        if (c->q)
                koc__workqueue_shutdown(c->q);
        /* Release workers waiting for a write: posted writes run cancelled,
         * submitted ones are cancelled, later posts fail. */
        c->closing = true;
        if (c->mb)
                koc__mailbox_close(c->mb);
        koc__controller_cancel_writes(c);
        for (unsigned i = 0; i < c->n_threads; i++)
                pthread_join(c->threads[i], NULL);
        free(c->threads);
        free(c->slots);
        sd_event_source_disable_unref(c->watchdog);
        if (c->probe)
                c->probe->q = NULL;
        if (c->probe2)
                c->probe2->q = NULL;
        char check[128];
        snprintf(check, sizeof check, "cache-sync-%s", c->name ? c->name : "");
        if (c->check_added)
                koc_probes_remove_check(koc_manager_get_probes(c->m), check);
        sd_event_source_disable_unref(c->resync_timer);
        sd_event_source_disable_unref(c->sync_wait_timer);
        sd_event_source_disable_unref(c->synced_defer);
        for (size_t i = 0; i < c->n_synced_handlers; i++)
                if (c->synced_handlers[i].destroy)
                        c->synced_handlers[i].destroy(c->synced_handlers[i].userdata);
        free(c->synced_handlers);
        if (c->primary) {
                koc__informer_remove_handlers(c->primary, c);
                koc__informer_unref(c->primary);
        }
        for (size_t i = 0; i < c->n_sources; i++) {
                koc__informer_remove_handlers(c->sources[i]->inf, c->sources[i]);
                koc__informer_unref(c->sources[i]->inf);
                if (c->sources[i]->destroy)
                        c->sources[i]->destroy(c->sources[i]->userdata);
                free(c->sources[i]);
        }
        free(c->sources);
        for (size_t i = 0; i < c->n_predicates; i++)
                if (c->predicates[i].destroy)
                        c->predicates[i].destroy(c->predicates[i].userdata);
        free(c->predicates);
        koc__mailbox_free(c->mb);
        koc__workqueue_free(c->q);
        koc__events_free(c->events);
        pthread_mutex_destroy(&c->slots_lock);
        for (size_t i = 0; i < KOC__FINALIZED_MAX; i++) {
                free(c->finalized[i].key);
                free(c->finalized[i].uid);
        }
        pthread_mutex_destroy(&c->finalized_lock);
        koc_manager_unref(c->m);
        free(c->name);
        free(c->api_version);
        if (c->destroy)
                c->destroy(c->userdata);
        free(c);
        return NULL;
}

KOC_EXPORT koc_controller *koc_controller_unref(koc_controller *c) {
        if (!c || --c->ref > 0)
                return NULL;
        return controller_free(c);
}

/* --print-rbac: the Events a reconcile records (events.k8s.io, and core
 * where that is not served), in the primary's namespace or every one. */
static void declare_event_access(koc_controller *c) {
        const char *ns = koc__informer_get_namespace(c->primary);
        (void)koc_manager_declare_access_in(c->m, koc__events_resource(false), ns,
                                            "create,patch");
        (void)koc_manager_declare_access_in(c->m, koc__events_resource(true), ns, "create,patch");
}

KOC_EXPORT int koc_controller_new_sized(koc_manager *m, size_t o_size,
                                        const koc_controller_options *user_o, koc_controller **ret,
                                        koc_error *err) {
        koc_controller_options copy;
        const koc_controller_options *o = &copy;

        if (!m || !user_o || !ret)
                return koc_error_set(err, -EINVAL, "koc_controller_new: missing argument");
        if (KOC__IMPORT(&copy, user_o, o_size, name) < 0)
                return koc_error_set(err, -EINVAL,
                                     "koc_controller_new: options size %zu does not match this "
                                     "library (%zu)",
                                     o_size, sizeof copy);
        int r = validate(m, o, err);
        if (r < 0)
                return r;
        koc_controller *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->ref = 1;
        c->m = koc_manager_ref(m);
        pthread_mutex_init(&c->slots_lock, NULL);
        pthread_mutex_init(&c->finalized_lock, NULL);
        for (size_t i = 0; i < KOC_ELEMENTSOF(c->event_failure_rl); i++)
                c->event_failure_rl[i] =
                        (koc__ratelimit)KOC__RATELIMIT_INIT(EVENT_FAILURE_INTERVAL_USEC, 1);
        c->failure_rl = (koc__ratelimit)KOC__RATELIMIT_INIT(FAILURE_REPORT_INTERVAL_USEC,
                                                            FAILURE_REPORT_BURST);
        c->name = strdup(o->name);
        c->reconcile = o->reconcile;
        c->userdata = o->userdata;
        c->n_workers = o->workers ? o->workers : 1;
        c->resync_usec = o->resync_period_usec;
        c->timeout_usec = o->reconcile_timeout_usec;
        c->start_before_synced = o->start_before_synced;
        c->informer_opts = (koc_informer_opts){.list_mode = o->list_mode,
                                               .metadata_only = o->metadata_only,
                                               .max_list_objects = o->max_list_objects,
                                               .max_list_bytes = o->max_list_bytes};
        c->slots = calloc(c->n_workers, sizeof *c->slots);
        for (unsigned i = 0; c->slots && i < c->n_workers; i++)
                c->slots[i].c = c;
        bool core = !o->resource.group || !*o->resource.group;
        if (!c->name || !c->slots ||
            asprintf(&c->api_version, "%s%s%s", core ? "" : o->resource.group, core ? "" : "/",
                     o->resource.version) < 0) {
                c->api_version = NULL;
                controller_free(c);
                return -ENOMEM;
        }
        /* Names are unique among the controllers of one manager (its
         * cache), not of the process: two managers side by side may each
         * run a controller of the same name. */
        r = koc__cache_claim_name(koc_manager_get_cache(m), c->name);
        if (r < 0) {
                controller_free(c);
                return r == -EEXIST ? koc_error_set(err, r,
                                                    "controller name \"%s\": already used on "
                                                    "this manager",
                                                    o->name)
                                    : r;
        }
        c->name_claimed = true;

        r = koc__workqueue_new(NULL, NULL, &c->q);
        if (r >= 0) {
                koc__workqueue_set_backoff(c->q, o->backoff_base_usec, o->backoff_max_usec);
                r = koc__mailbox_new(koc_manager_get_event(m), 0, &c->mb);
        }
        if (r >= 0)
                r = koc__informer_get(koc_manager_get_cache(m), koc_manager_get_client(m),
                                      &o->resource, o->namespace_, o->label_selector,
                                      o->field_selector, &c->informer_opts,
                                      koc_manager_get_metrics(m), &c->primary, err);
        if (r >= 0)
                r = koc__informer_add_handler(c->primary, &primary_handler, c);
        /* The readiness check first: it is the step a user's own check of
         * the same name can make fail, and nothing else holds a pointer to
         * the controller yet. */
        char check[128];
        snprintf(check, sizeof check, "cache-sync-%s", c->name);
        if (r >= 0)
                r = koc_probes_add_ready_check(koc_manager_get_probes(m), check, cache_sync_check,
                                               c, NULL);
        c->check_added = r >= 0;
        if (r >= 0)
                r = koc_manager_add_runnable(
                        m, c->name, &(koc_manager_runnable){.start = on_start, .stop = on_stop}, c,
                        NULL);
        if (r >= 0)
                r = koc_manager_add_shutdown_hook(m, c->name, on_shutdown, c, NULL);
        if (r >= 0 && c->resync_usec > 0)
                r = sd_event_add_time_relative(koc_manager_get_event(m), &c->resync_timer,
                                               CLOCK_BOOTTIME, c->resync_usec, 0, on_resync, c);
        if (r >= 0 && c->resync_timer)
                r = sd_event_source_set_enabled(c->resync_timer, SD_EVENT_ON);
        if (r >= 0 && c->timeout_usec > 0)
                r = sd_event_add_time_relative(koc_manager_get_event(m), &c->watchdog,
                                               CLOCK_BOOTTIME, c->timeout_usec, 0, on_watchdog, c);
        if (r >= 0 && c->watchdog)
                r = sd_event_source_set_enabled(c->watchdog, SD_EVENT_ON);
        if (r < 0) {
                if (err && err->code == 0)
                        koc_error_set(err, r, "controller %s: cannot set up: %s", c->name,
                                      strerror(-r));
                controller_free(c);
                return r;
        }
        r = koc__events_new(c);
        if (r < 0) {
                koc_error_set(err, r, "controller %s: out of memory", c->name);
                controller_free(c);
                return r;
        }
        register_metrics(c);
        declare_event_access(c);
        /* Only now: a controller that could not be set up leaves its
         * userdata to the caller. */
        c->destroy = o->destroy;
        *ret = c;
        return 0;
}

static int add_source(koc_controller *c, size_t res_size, const koc_resource *user_res,
                      size_t o_size, const koc_informer_options *user_o, source_kind kind,
                      koc_map_func_t map, void *userdata, koc_destroy_t destroy, koc_error *err) {
        koc_resource copy;
        const koc_resource *res = &copy;
        koc_informer_options o = {0};

        if (!c || !user_res)
                return koc_error_set(err, -EINVAL, "controller source: missing argument");
        if (KOC__IMPORT(&copy, user_res, res_size, group) < 0)
                return koc_error_set(err, -EINVAL,
                                     "controller %s: resource size %zu does not match this "
                                     "library (%zu)",
                                     c->name, res_size, sizeof copy);
        if (user_o && KOC__IMPORT(&o, user_o, o_size, namespace_) < 0)
                return koc_error_set(err, -EINVAL,
                                     "controller %s: options size %zu does not match this "
                                     "library (%zu)",
                                     c->name, o_size, sizeof o);
        if (!res->version || !res->resource || !*res->version || !*res->resource)
                return koc_error_set(err, -EINVAL,
                                     "controller %s: source resource needs version and resource",
                                     c->name);
        bool own_ns = o.namespace_ && *o.namespace_;
        if (o.all_namespaces && own_ns)
                return koc_error_set(err, -EINVAL,
                                     "controller %s: %s: all_namespaces and namespace \"%s\" "
                                     "contradict",
                                     c->name, res->resource, o.namespace_);
        source *s = calloc(1, sizeof *s);
        source **n = realloc(c->sources, (c->n_sources + 1) * sizeof *n);
        if (!s || !n) {
                free(s);
                if (n)
                        c->sources = n;
                return -ENOMEM;
        }
        c->sources = n;
        *s = (source){.c = c, .kind = kind, .map = map, .userdata = userdata, .destroy = destroy};
        /* By default owned objects are read in the primary's namespace, and
         * watched ones there too when the controller has a namespace, as a
         * cache restricted to namespaces applies to every type it keeps: an
         * operator given a Role in its namespace has no right to list
         * cluster-wide, and the watch would never sync.  The options may
         * name another namespace or every one. */
        const char *ns = own_ns            ? o.namespace_
                         : o.all_namespaces ? NULL
                         : kind == SOURCE_OWNS || res->namespaced
                                 ? koc__informer_get_namespace(c->primary)
                                 : NULL;
        koc_informer_opts opts = {.list_mode = c->informer_opts.list_mode,
                                  .metadata_only = o.metadata_only,
                                  .max_list_objects = c->informer_opts.max_list_objects,
                                  .max_list_bytes = c->informer_opts.max_list_bytes};
        int r = koc__informer_get(koc_manager_get_cache(c->m), koc_manager_get_client(c->m), res,
                                  ns, o.label_selector, o.field_selector, &opts,
                                  koc_manager_get_metrics(c->m), &s->inf, err);
        if (r >= 0)
                r = koc__informer_add_handler(s->inf, &source_handler, s);
        if (r < 0) {
                koc__informer_unref(s->inf);
                free(s);
                return r;
        }
        c->sources[c->n_sources++] = s;
        return 0;
}

KOC_EXPORT int koc_controller_owns_with_options_sized(koc_controller *c, size_t owned_size,
                                                      const koc_resource *owned, size_t o_size,
                                                      const koc_informer_options *o,
                                                      koc_error *err) {
        int r = add_source(c, owned_size, owned, o_size, o, SOURCE_OWNS, NULL, NULL, NULL, err);
        /* Owned objects carry a controller reference with
         * blockOwnerDeletion (koc_object_set_controller_reference), which
         * the OwnerReferencesPermissionEnforcement admission allows only to
         * those who may update the owner's finalizers. */
        if (r >= 0) {
                const koc_resource *res = koc__informer_get_resource(c->primary);
                (void)koc_manager_declare_access_in(c->m, res,
                                                    koc__informer_get_namespace(c->primary),
                                                    "finalizers/update");
        }
        return r;
}

KOC_EXPORT int koc_controller_owns_sized(koc_controller *c, size_t owned_size,
                                         const koc_resource *owned, koc_error *err) {
        return koc_controller_owns_with_options_sized(c, owned_size, owned, 0, NULL, err);
}

KOC_EXPORT int koc_controller_watches_with_options_sized(koc_controller *c, size_t res_size,
                                                         const koc_resource *res, size_t o_size,
                                                         const koc_informer_options *o,
                                                         koc_map_func_t map, void *userdata,
                                                         koc_destroy_t destroy, koc_error *err) {
        if (!map)
                return koc_error_set(err, -EINVAL, "controller %s: watches needs a map function",
                                     c ? c->name : "");
        return add_source(c, res_size, res, o_size, o, SOURCE_WATCHES, map, userdata, destroy,
                          err);
}

KOC_EXPORT int koc_controller_watches_sized(koc_controller *c, size_t res_size,
                                            const koc_resource *res, const char *label_selector,
                                            koc_map_func_t map, void *userdata,
                                            koc_destroy_t destroy, koc_error *err) {
        koc_informer_options o = {.label_selector = label_selector};
        return koc_controller_watches_with_options_sized(c, res_size, res, sizeof o, &o, map,
                                                         userdata, destroy, err);
}

static int on_synced_defer(sd_event_source *s, void *userdata) {
        koc_controller *c = userdata;
        c->synced_defer = sd_event_source_disable_unref(c->synced_defer);
        notify_synced(c);
        return 0;
}

KOC_EXPORT int koc_controller_on_synced(koc_controller *c, koc_controller_synced_t fn,
                                        void *userdata, koc_destroy_t destroy) {
        if (!c || !fn)
                return -EINVAL;
        synced_handler *n = realloc(c->synced_handlers, (c->n_synced_handlers + 1) * sizeof *n);
        if (!n)
                return -ENOMEM;
        c->synced_handlers = n;
        /* Already synced: called from the loop, never from inside this call. */
        if (c->sync_done && !c->synced_defer) {
                int r = sd_event_add_defer(koc_manager_get_event(c->m), &c->synced_defer,
                                           on_synced_defer, c);
                if (r < 0) {
                        c->synced_defer = NULL;
                        return r;
                }
        }
        n[c->n_synced_handlers++] = (synced_handler){fn, userdata, destroy, false};
        return 0;
}

KOC_EXPORT int koc_controller_add_predicate(koc_controller *c, koc_predicate_t fn, void *userdata,
                                            koc_destroy_t destroy) {
        if (!c || !fn)
                return -EINVAL;
        predicate *n = realloc(c->predicates, (c->n_predicates + 1) * sizeof *n);
        if (!n)
                return -ENOMEM;
        c->predicates = n;
        n[c->n_predicates++] = (predicate){fn, userdata, destroy};
        return 0;
}

KOC_EXPORT int koc_controller_add_index(koc_controller *c, const char *name, koc_index_func_t fn,
                                        void *userdata, koc_destroy_t destroy) {
        if (!c || !name || !fn)
                return -EINVAL;
        return koc__store_add_index(koc__informer_get_store(c->primary), name, fn, userdata,
                                    destroy);
}

KOC_EXPORT int koc_controller_set_transform(koc_controller *c, koc_transform_t fn, void *userdata,
                                            koc_destroy_t destroy) {
        if (!c)
                return -EINVAL;
        if (koc__store_count(koc__informer_get_store(c->primary)) > 0)
                return -EBUSY;
        koc__store_set_transform(koc__informer_get_store(c->primary), fn, userdata, destroy);
        return 0;
}

KOC_EXPORT koc_object *koc_controller_ref_object(koc_controller *c, const char *namespace_,
                                                 const char *name) {
        char key[512];
        if (!c || !name || koc_object_key_format(namespace_, name, key, sizeof key) < 0)
                return NULL;
        return koc__store_get(koc__informer_get_store(c->primary), key);
}

KOC_EXPORT int koc_controller_list(koc_controller *c, const char *namespace_,
                                   const char *label_selector, koc_object ***ret, size_t *ret_n) {
        koc_selector *sel = NULL;
        if (!c || !ret || !ret_n)
                return -EINVAL;
        int r = koc__selector_parse(label_selector, &sel, NULL);
        if (r < 0)
                return r;
        r = koc__store_list(koc__informer_get_store(c->primary), namespace_, sel, ret, ret_n);
        koc__selector_free(sel);
        return r;
}

KOC_EXPORT int koc_controller_list_index(koc_controller *c, const char *index, const char *value,
                                         koc_object ***ret, size_t *ret_n) {
        if (!c || !index || !value || !ret || !ret_n)
                return -EINVAL;
        return koc__store_list_index(koc__informer_get_store(c->primary), index, value, ret, ret_n);
}
