/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller runtime's work queue: client-go's rate-limiting work queue
 * semantics, for keys ("namespace/name", or "name" for cluster-scoped
 * objects), shared by the loop thread (which adds) and worker threads (which
 * get and finish).
 *
 * Invariants (each one a test in tests/unit/test-workqueue.c):
 * - a key is queued at most once, however often it is added while pending;
 * - a key is handed to at most one worker at a time; an add while it is being
 *   processed queues it again only when that worker calls done();
 * - add_after() delays an add (the earliest of several pending delays wins);
 * - add_rate_limited() delays by the key's backoff (5 ms doubling to 1000 s by
 *   default) and counts a failure; forget() resets it; a plain add() never
 *   touches it;
 * - shutdown() wakes every blocked get(), which then returns -ESHUTDOWN;
 * - the initial fill (add_initial) does not starve live changes: when both
 *   kinds are queued, get() alternates between them, and a live add of a key
 *   waiting in the initial list moves it to the live list.
 * Thread-safe (one mutex and a condition variable); the clock is injectable
 * so that the unit tests drive delays and backoff without sleeping.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "koc/metrics.h"

typedef struct koc_workqueue koc_workqueue;

/* Microseconds on a monotonic clock (CLOCK_BOOTTIME by default). */
typedef uint64_t (*koc_workqueue_clock_t)(void *userdata);

#define KOC_WORKQUEUE_BACKOFF_BASE_USEC (5 * UINT64_C(1000))
#define KOC_WORKQUEUE_BACKOFF_MAX_USEC (1000 * UINT64_C(1000000))

/* Metrics the queue updates; any may be NULL. */
typedef struct koc_workqueue_metrics {
        koc_metric *depth;          /* gauge */
        koc_metric *adds;           /* counter */
        koc_metric *retries;        /* counter */
        koc_metric *queue_duration; /* histogram, seconds */
        koc_metric *work_duration;  /* histogram, seconds */
} koc_workqueue_metrics;

/* clock NULL: koc_now_boottime_usec. */
int koc__workqueue_new(koc_workqueue_clock_t clock, void *clock_userdata, koc_workqueue **ret);
koc_workqueue *koc__workqueue_free(koc_workqueue *q);
void koc__workqueue_set_backoff(koc_workqueue *q, uint64_t base_usec, uint64_t max_usec);
void koc__workqueue_set_metrics(koc_workqueue *q, const koc_workqueue_metrics *metrics);

/* Each returns 0, -ENOMEM, or -ESHUTDOWN after shutdown (the add is dropped). */
int koc__workqueue_add(koc_workqueue *q, const char *key);
int koc__workqueue_add_initial(koc_workqueue *q, const char *key);
int koc__workqueue_add_after(koc_workqueue *q, const char *key, uint64_t delay_usec);
int koc__workqueue_add_rate_limited(koc_workqueue *q, const char *key);
void koc__workqueue_forget(koc_workqueue *q, const char *key);
unsigned koc__workqueue_num_requeues(koc_workqueue *q, const char *key);
/* The per-key limit of failure reports, for a failure of a key that is being
 * processed: true when it is to be said now (the first failure since the key
 * last succeeded, i.e. since forget(), then at most once per interval_usec),
 * with *ret_unreported (may be NULL) the failures held back since the last
 * report; false when it is to be held back (and counted). */
bool koc__workqueue_report_due(koc_workqueue *q, const char *key, uint64_t interval_usec,
                               unsigned *ret_unreported);

/* Blocks until a key is ready (*ret_key: malloc'ed, pass it to done() and
 * then free it) or the queue is shut down (-ESHUTDOWN). */
int koc__workqueue_get(koc_workqueue *q, char **ret_key);
/* Like get() without blocking: -EAGAIN when nothing is ready now. */
int koc__workqueue_try_get(koc_workqueue *q, char **ret_key);
void koc__workqueue_done(koc_workqueue *q, const char *key);

/* Drops every pending key and delay (keys being processed stay so until
 * done(), and are not queued again by it); failure counts are kept. */
void koc__workqueue_clear(koc_workqueue *q);
void koc__workqueue_shutdown(koc_workqueue *q);
/* Wakes blocked get() calls so that they look at the clock again (for an
 * injected clock that jumped). */
void koc__workqueue_wake(koc_workqueue *q);

/* Keys queued and ready now (not delayed, not being processed). */
size_t koc__workqueue_len(koc_workqueue *q);
/* Keys being processed now. */
size_t koc__workqueue_processing(koc_workqueue *q);
/* Seconds of work in progress and the longest-running item (client-go's
 * unfinished_work_seconds and longest_running_processor_seconds). */
double koc__workqueue_unfinished_seconds(koc_workqueue *q);
double koc__workqueue_longest_running_seconds(koc_workqueue *q);
