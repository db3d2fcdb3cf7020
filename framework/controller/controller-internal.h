/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller's private state, shared by controller.c (registration,
 * event handlers, workers), writer.c (the fenced client) and helpers.c.
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>

#include "core/mailbox.h"
#include "core/ratelimit.h"
#include "framework/cache/informer.h"
#include "koc/controller.h"
#include "workqueue.h"

typedef enum source_kind { SOURCE_OWNS, SOURCE_WATCHES } source_kind;

typedef struct source {
        struct koc_controller *c;
        source_kind kind;
        koc_informer *inf;
        koc_map_func_t map;
        void *userdata;
        koc_destroy_t destroy;
} source;

typedef struct predicate {
        koc_predicate_t fn;
        void *userdata;
        koc_destroy_t destroy;
} predicate;

typedef struct write_call write_call;
typedef struct koc__events koc__events;

/* A koc_controller_on_synced() registration. */
typedef struct synced_handler {
        koc_controller_synced_t fn;
        void *userdata;
        koc_destroy_t destroy;
        bool called;
} synced_handler;

/* A refused Event write is said once per answer's reason in this window. */
#define EVENT_FAILURE_INTERVAL_USEC (300 * KOC_USEC_PER_SEC)

/* What one worker is running, for the reconcile timeout's watchdog: the
 * worker writes it at the start and end of each reconcile and the loop
 * reads it, both under the controller's slots_lock; timed_out is also read
 * without the lock by the reconcile's own context. */
typedef struct worker_slot {
        struct koc_controller *c;
        char key[512];
        uint64_t started_at; /* 0: idle */
        bool reported;       /* the timeout was logged and counted */
        atomic_bool timed_out;
} worker_slot;

/* What the unfinished-work gauges read; outlives the controller (the
 * registry frees it), and forgets the queue when the controller goes. */
typedef struct queue_probe {
        koc_workqueue *q;
} queue_probe;

#define KOC__FINALIZED_MAX 32
#define KOC__FINALIZED_TTL_USEC (5 * 60 * KOC_USEC_PER_SEC)

struct koc_controller {
        unsigned ref;
        bool name_claimed; /* in the manager's cache: released on free */
        koc_manager *m;
        char *name;
        char *api_version; /* of the primary: "v1", "apps/v1" */
        koc_informer *primary;
        source **sources;
        size_t n_sources;
        predicate *predicates;
        size_t n_predicates;
        koc_reconcile_t reconcile;
        void *userdata;
        koc_destroy_t destroy;
        uint64_t resync_usec;
        koc_informer_opts informer_opts; /* of the primary; sources take its list mode */

        koc_workqueue *q;
        koc_mailbox *mb;
        pthread_t *threads;
        worker_slot *slots; /* one per worker */
        unsigned n_workers;
        unsigned n_threads; /* started */
        sd_event_source *resync_timer;

        /* The reconcile timeout (0: off) and its watchdog on the loop. */
        uint64_t timeout_usec;
        sd_event_source *watchdog;
        pthread_mutex_t slots_lock;
        unsigned n_stuck; /* under slots_lock */

        /* Objects whose last finalizer this controller removed and that the
         * server deleted at once: its answer keeps the resourceVersion of the
         * last stored state, which still lists the finalizer, so the cache
         * keeps that state until the watch brings the deletion; a reconcile
         * meanwhile must not run cleanup again.
         * By key and uid, for KOC__FINALIZED_TTL_USEC; under finalized_lock. */
        struct koc__finalized {
                char *key, *uid;
                uint64_t at;
        } finalized[KOC__FINALIZED_MAX];
        pthread_mutex_t finalized_lock;

        /* Leadership as the controller sees it, changed on the loop thread:
         * active while the manager's runnable is started; epoch counts every
         * start and stop, so a context can tell that its term has ended. */
        atomic_bool active;
        atomic_uint_fast64_t epoch;
        atomic_uint_fast64_t term;
        atomic_uint busy_workers;
        /* Keys handled since the heap's free pages last went back. */
        atomic_uint handled_since_release;
        bool closing;
        bool check_added;
        /* Workers start on a synced cache (loop thread): start_before_synced
         * is the option; start_pending says that leadership began while an
         * informer had not listed yet, so the start waits for sync_done;
         * pending_term is the term it began with. */
        bool start_before_synced;
        bool start_pending;
        bool sync_done;
        uint64_t pending_term;
        uint64_t pending_epoch;
        uint64_t wait_since;
        sd_event_source *sync_wait_timer;
        sd_event_source *synced_defer;
        synced_handler *synced_handlers;
        size_t n_synced_handlers; /* the cache-sync readiness check is ours to remove */

        /* Writes submitted to the client and not answered yet (loop thread). */
        write_call *writes;

        /* The Event recorder (events.c). */
        koc__events *events;

        /* Failures said at warn, rate-limited: a refused Event write once per
         * answer's reason (the last slot for transport failures), and the
         * reconcile failures of all keys together (each key also has its
         * own limit in the work queue). */
        koc__ratelimit event_failure_rl[_KOC_REASON_MAX + 1];
        koc__ratelimit failure_rl;

        queue_probe *probe;
        queue_probe *probe2;
        struct {
                koc_metric *success, *error, *requeue, *requeue_after;
                koc_metric *errors, *terminal_errors;
                koc_metric *reconcile_time;
                koc_metric *max_concurrent, *active_workers;
                koc_metric *stuck, *timeouts;
        } metrics;
};

struct koc_reconcile_context {
        koc_controller *c;
        worker_slot *slot; /* NULL outside a worker */
        char key[512];
        char namespace_[256];
        const char *name;
        koc_object *cached;
        cJSON *parsed;
        bool parsed_done;
        uint64_t epoch;
        uint64_t term;
        /* The last call of this reconcile that failed, with an answer or in
         * transport (writer.c), for the failure's log line and
         * koc_reconcile_get_last_error(); code 0: none. */
        struct {
                int code;
                bool mutating;
                long status;
                koc_reason reason;
                char method[8];
                char path[1024];
                char message[512];
        } last_error;
};

/* controller.c: calls cb (at most once) with the owner that obj's
 * ownerReferences name as its controller (the first reference with
 * controller: true, as metav1.GetControllerOf) when that owner is of res's
 * kind and group (any version); the namespace is obj's for a namespaced res,
 * else NULL.  Owns() enqueues the owners of its objects' events this way;
 * tests/fuzz/fuzz-helpers.c feeds it hostile metadata. */
void koc__owner_refs_foreach(const cJSON *obj, const koc_resource *res,
                             void (*cb)(const char *namespace_, const char *name, void *userdata),
                             void *userdata);

/* writer.c: cancels the writes in flight (their callers get -ECANCELED). */
void koc__controller_cancel_writes(koc_controller *c);
/* True while a write of this context may be sent (loop or any thread). */
bool koc__controller_may_write(koc_reconcile_context *ctx);
/* True once the reconcile of this context ran past the timeout. */
bool koc__controller_timed_out(koc_reconcile_context *ctx);

/* writer.c: one call of the reconcile's client, fenced when it is not a
 * GET, its answer applied to the manager's cache (sub: a subresource such as
 * "status", or NULL; query without '?', or NULL). */
int koc__reconcile_submit(koc_reconcile_context *ctx, const koc_resource *res, const char *method,
                          const char *namespace_, const char *name, const char *sub,
                          const char *query, const cJSON *body, const char *content_type,
                          koc_response **ret);
/* A server-side apply of object (it names itself) by field_manager, of sub
 * (NULL: the object itself), forced with force. */
int koc__reconcile_apply(koc_reconcile_context *ctx, const koc_resource *res, const cJSON *object,
                         const char *field_manager, bool force, const char *sub,
                         koc_response **ret);

/* events.c: the controller's Event recorder (series, spam filter, metrics). */
/* The Events it writes: events.k8s.io/v1, or core v1 (core) where that is
 * not served. */
const koc_resource *koc__events_resource(bool core);
int koc__events_new(koc_controller *c);
void koc__events_free(koc__events *ev);
/* Tests: the recorder's clock (CLOCK_BOOTTIME, us); NULL restores it. */
void koc__events_set_clock(koc__events *ev, uint64_t (*now)(void));
