/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The work queue (see workqueue.h for its invariants).
 *
 * One record per known key holds all of its state: dirty (an add is pending),
 * processing (a worker has it), which ready list it sits on, its pending
 * delay (a slot in a binary min-heap) and its failure count.  A record lives
 * while any of these says it is needed, so memory is bounded by the number of
 * keys the controller knows about.
 */
#include "workqueue.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "koc/time.h"
#include "core/strmap.h"
#include "core/util.h"

enum { LIST_NONE = -1, LIST_LIVE = 0, LIST_INITIAL = 1 };

typedef struct wq_item {
        const char *key; /* the map entry's copy */
        struct wq_item *prev, *next;
        int list;
        bool dirty;
        bool dirty_initial; /* the pending add came only from the initial fill */
        bool processing;
        unsigned failures;
        uint64_t ready_at;
        size_t heap_idx; /* SIZE_MAX: no pending delay */
        uint64_t queued_at;
        uint64_t started_at;
        /* The failure report's per-key limit: when the key's failure was
         * last said (0: not since it last succeeded), and how many were not
         * said since. */
        uint64_t reported_at;
        unsigned unreported;
} wq_item;

typedef struct wq_list {
        wq_item *head, *tail;
        size_t len;
} wq_list;

struct koc_workqueue {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        koc_workqueue_clock_t clock;
        void *clock_userdata;
        uint64_t backoff_base, backoff_max;
        koc_workqueue_metrics metrics;

        strmap items;
        wq_list lists[2];
        bool last_was_live;
        wq_item **heap;
        size_t heap_len, heap_cap;
        size_t n_processing;
        bool shutting_down;
};

static uint64_t default_clock(void *userdata) {
        return koc_now_boottime_usec();
}

static uint64_t now(koc_workqueue *q) {
        return q->clock(q->clock_userdata);
}

int koc__workqueue_new(koc_workqueue_clock_t clock, void *clock_userdata, koc_workqueue **ret) {
        koc_workqueue *q = calloc(1, sizeof *q);
        pthread_condattr_t attr;

        if (!q)
                return -ENOMEM;
        pthread_mutex_init(&q->lock, NULL);
        /* Delays are waited for on CLOCK_MONOTONIC (condition variables
         * cannot wait on CLOCK_BOOTTIME); the wait is re-checked against the
         * queue's own clock on waking, so a suspend only makes it late. */
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&q->cond, &attr);
        pthread_condattr_destroy(&attr);
        q->clock = clock ? clock : default_clock;
        q->clock_userdata = clock_userdata;
        q->backoff_base = KOC_WORKQUEUE_BACKOFF_BASE_USEC;
        q->backoff_max = KOC_WORKQUEUE_BACKOFF_MAX_USEC;
        q->lists[0].head = q->lists[1].head = NULL;
        *ret = q;
        return 0;
}

koc_workqueue *koc__workqueue_free(koc_workqueue *q) {
        if (!q)
                return NULL;
        size_t i;
        for (strmap_entry *e = koc__strmap_first(&q->items, &i); e;
             e = koc__strmap_next(&q->items, e, &i))
                free(e->value);
        koc__strmap_clear(&q->items);
        free(q->heap);
        pthread_cond_destroy(&q->cond);
        pthread_mutex_destroy(&q->lock);
        free(q);
        return NULL;
}

void koc__workqueue_set_backoff(koc_workqueue *q, uint64_t base_usec, uint64_t max_usec) {
        pthread_mutex_lock(&q->lock);
        q->backoff_base = base_usec ? base_usec : KOC_WORKQUEUE_BACKOFF_BASE_USEC;
        q->backoff_max = max_usec ? max_usec : KOC_WORKQUEUE_BACKOFF_MAX_USEC;
        pthread_mutex_unlock(&q->lock);
}

void koc__workqueue_set_metrics(koc_workqueue *q, const koc_workqueue_metrics *metrics) {
        pthread_mutex_lock(&q->lock);
        q->metrics = *metrics;
        pthread_mutex_unlock(&q->lock);
}

/* --- lists and heap (lock held) -------------------------------------------------- */

static void list_push(koc_workqueue *q, wq_item *it, int which) {
        wq_list *l = &q->lists[which];
        it->list = which;
        it->next = NULL;
        it->prev = l->tail;
        if (l->tail)
                l->tail->next = it;
        else
                l->head = it;
        l->tail = it;
        l->len++;
}

static void list_unlink(koc_workqueue *q, wq_item *it) {
        wq_list *l = &q->lists[it->list];
        if (it->prev)
                it->prev->next = it->next;
        else
                l->head = it->next;
        if (it->next)
                it->next->prev = it->prev;
        else
                l->tail = it->prev;
        l->len--;
        it->prev = it->next = NULL;
        it->list = LIST_NONE;
}

static void heap_swap(koc_workqueue *q, size_t a, size_t b) {
        wq_item *t = q->heap[a];
        q->heap[a] = q->heap[b];
        q->heap[b] = t;
        q->heap[a]->heap_idx = a;
        q->heap[b]->heap_idx = b;
}

static void heap_up(koc_workqueue *q, size_t i) {
        while (i > 0 && q->heap[(i - 1) / 2]->ready_at > q->heap[i]->ready_at) {
                heap_swap(q, i, (i - 1) / 2);
                i = (i - 1) / 2;
        }
}

static void heap_down(koc_workqueue *q, size_t i) {
        for (;;) {
                size_t l = 2 * i + 1, r = l + 1, m = i;
                if (l < q->heap_len && q->heap[l]->ready_at < q->heap[m]->ready_at)
                        m = l;
                if (r < q->heap_len && q->heap[r]->ready_at < q->heap[m]->ready_at)
                        m = r;
                if (m == i)
                        return;
                heap_swap(q, i, m);
                i = m;
        }
}

static void heap_remove(koc_workqueue *q, wq_item *it) {
        size_t i = it->heap_idx;
        it->heap_idx = SIZE_MAX;
        q->heap_len--;
        if (i == q->heap_len)
                return;
        q->heap[i] = q->heap[q->heap_len];
        q->heap[i]->heap_idx = i;
        heap_up(q, i);
        heap_down(q, q->heap[i]->heap_idx);
}

static int heap_push(koc_workqueue *q, wq_item *it) {
        if (q->heap_len == q->heap_cap) {
                size_t cap = q->heap_cap ? q->heap_cap * 2 : 16;
                wq_item **h = realloc(q->heap, cap * sizeof *h);
                if (!h)
                        return -ENOMEM;
                q->heap = h;
                q->heap_cap = cap;
        }
        it->heap_idx = q->heap_len;
        q->heap[q->heap_len++] = it;
        heap_up(q, it->heap_idx);
        return 0;
}

/* --- items (lock held) ----------------------------------------------------------- */

static wq_item *item_get(koc_workqueue *q, const char *key, bool create) {
        strmap_entry *e = koc__strmap_find(&q->items, key);
        if (e || !create)
                return e ? e->value : NULL;
        wq_item *it = calloc(1, sizeof *it);
        if (!it)
                return NULL;
        it->list = LIST_NONE;
        it->heap_idx = SIZE_MAX;
        if (koc__strmap_put(&q->items, key, it, NULL) < 0) {
                free(it);
                return NULL;
        }
        it->key = koc__strmap_find(&q->items, key)->key;
        return it;
}

/* Frees the record once nothing about the key needs remembering. */
static void item_maybe_release(koc_workqueue *q, wq_item *it) {
        if (it->dirty || it->processing || it->failures > 0 || it->heap_idx != SIZE_MAX)
                return;
        koc__strmap_remove(&q->items, it->key);
        free(it);
}

static void update_depth(koc_workqueue *q) {
        if (q->metrics.depth)
                koc_metric_set(q->metrics.depth, (double)(q->lists[0].len + q->lists[1].len));
}

static void add_locked(koc_workqueue *q, wq_item *it, bool initial) {
        if (it->dirty) {
                /* A live change of a key still waiting in the initial fill
                 * must not wait behind the whole backlog. */
                if (!initial && it->dirty_initial) {
                        it->dirty_initial = false;
                        if (it->list == LIST_INITIAL) {
                                list_unlink(q, it);
                                list_push(q, it, LIST_LIVE);
                        }
                }
                return;
        }
        it->dirty = true;
        it->dirty_initial = initial;
        it->queued_at = now(q);
        if (q->metrics.adds)
                koc_metric_inc(q->metrics.adds);
        if (it->processing)
                return; /* queued again by done() */
        list_push(q, it, initial ? LIST_INITIAL : LIST_LIVE);
        update_depth(q);
        pthread_cond_signal(&q->cond);
}

static int add_common(koc_workqueue *q, const char *key, bool initial) {
        int r = 0;

        pthread_mutex_lock(&q->lock);
        if (q->shutting_down)
                r = -ESHUTDOWN;
        else {
                wq_item *it = item_get(q, key, true);
                if (!it)
                        r = -ENOMEM;
                else
                        add_locked(q, it, initial);
        }
        pthread_mutex_unlock(&q->lock);
        return r;
}

int koc__workqueue_add(koc_workqueue *q, const char *key) {
        return add_common(q, key, false);
}

int koc__workqueue_add_initial(koc_workqueue *q, const char *key) {
        return add_common(q, key, true);
}

static int add_after_locked(koc_workqueue *q, wq_item *it, uint64_t delay) {
        if (delay == 0) {
                add_locked(q, it, false);
                return 0;
        }
        uint64_t at = now(q) + delay;
        if (it->heap_idx != SIZE_MAX) {
                /* Several pending delays: the earliest wins, as in client-go. */
                if (at < it->ready_at) {
                        it->ready_at = at;
                        heap_up(q, it->heap_idx);
                }
        } else {
                it->ready_at = at;
                int r = heap_push(q, it);
                if (r < 0)
                        return r;
        }
        /* A waiting worker re-computes how long to sleep. */
        pthread_cond_broadcast(&q->cond);
        return 0;
}

int koc__workqueue_add_after(koc_workqueue *q, const char *key, uint64_t delay_usec) {
        int r;

        pthread_mutex_lock(&q->lock);
        wq_item *it = q->shutting_down ? NULL : item_get(q, key, true);
        if (q->shutting_down)
                r = -ESHUTDOWN;
        else if (!it)
                r = -ENOMEM;
        else {
                r = add_after_locked(q, it, delay_usec);
                item_maybe_release(q, it);
        }
        pthread_mutex_unlock(&q->lock);
        return r;
}

static uint64_t backoff_locked(koc_workqueue *q, unsigned failures) {
        uint64_t d = q->backoff_base;
        for (unsigned i = 0; i < failures && d < q->backoff_max; i++)
                d = d > q->backoff_max / 2 ? q->backoff_max : d * 2;
        return d < q->backoff_max ? d : q->backoff_max;
}

int koc__workqueue_add_rate_limited(koc_workqueue *q, const char *key) {
        int r;

        pthread_mutex_lock(&q->lock);
        wq_item *it = q->shutting_down ? NULL : item_get(q, key, true);
        if (q->shutting_down)
                r = -ESHUTDOWN;
        else if (!it)
                r = -ENOMEM;
        else {
                uint64_t d = backoff_locked(q, it->failures);
                if (it->failures < UINT32_MAX)
                        it->failures++;
                if (q->metrics.retries)
                        koc_metric_inc(q->metrics.retries);
                r = add_after_locked(q, it, d);
                item_maybe_release(q, it);
        }
        pthread_mutex_unlock(&q->lock);
        return r;
}

void koc__workqueue_forget(koc_workqueue *q, const char *key) {
        pthread_mutex_lock(&q->lock);
        wq_item *it = item_get(q, key, false);
        if (it) {
                it->failures = 0;
                it->reported_at = 0;
                it->unreported = 0;
                item_maybe_release(q, it);
        }
        pthread_mutex_unlock(&q->lock);
}

bool koc__workqueue_report_due(koc_workqueue *q, const char *key, uint64_t interval_usec,
                               unsigned *ret_unreported) {
        bool due = false;
        unsigned held = 0;

        pthread_mutex_lock(&q->lock);
        wq_item *it = item_get(q, key, false);
        if (!it)
                due = true; /* nothing remembered: say it */
        else {
                uint64_t t = now(q);
                if (it->reported_at == 0 || t - it->reported_at >= interval_usec) {
                        due = true;
                        held = it->unreported;
                        it->reported_at = t ? t : 1;
                        it->unreported = 0;
                } else if (it->unreported < UINT_MAX)
                        it->unreported++;
        }
        pthread_mutex_unlock(&q->lock);
        if (ret_unreported)
                *ret_unreported = held;
        return due;
}

unsigned koc__workqueue_num_requeues(koc_workqueue *q, const char *key) {
        pthread_mutex_lock(&q->lock);
        wq_item *it = item_get(q, key, false);
        unsigned n = it ? it->failures : 0;
        pthread_mutex_unlock(&q->lock);
        return n;
}

/* --- get / done ------------------------------------------------------------------ */

static void promote_due(koc_workqueue *q) {
        uint64_t t = now(q);
        while (q->heap_len > 0 && q->heap[0]->ready_at <= t) {
                wq_item *it = q->heap[0];
                heap_remove(q, it);
                add_locked(q, it, false);
        }
}

static wq_item *pop_locked(koc_workqueue *q) {
        wq_list *live = &q->lists[LIST_LIVE], *initial = &q->lists[LIST_INITIAL];
        wq_item *it;

        if (live->head && (!initial->head || !q->last_was_live))
                it = live->head;
        else
                it = initial->head;
        if (!it)
                return NULL;
        q->last_was_live = it->list == LIST_LIVE;
        list_unlink(q, it);
        it->dirty = false;
        it->dirty_initial = false;
        it->processing = true;
        q->n_processing++;
        it->started_at = now(q);
        if (q->metrics.queue_duration)
                koc_metric_observe(q->metrics.queue_duration,
                                   (double)(it->started_at - it->queued_at) / 1e6);
        update_depth(q);
        return it;
}

static int take(koc_workqueue *q, wq_item *it, char **ret_key) {
        char *k = strdup(it->key);
        if (!k) {
                /* Put it back as it was, so the key is not lost. */
                it->processing = false;
                q->n_processing--;
                add_locked(q, it, false);
                return -ENOMEM;
        }
        *ret_key = k;
        return 0;
}

int koc__workqueue_try_get(koc_workqueue *q, char **ret_key) {
        int r = -EAGAIN;

        pthread_mutex_lock(&q->lock);
        if (q->shutting_down)
                r = -ESHUTDOWN;
        else {
                promote_due(q);
                wq_item *it = pop_locked(q);
                if (it)
                        r = take(q, it, ret_key);
        }
        pthread_mutex_unlock(&q->lock);
        return r;
}

int koc__workqueue_get(koc_workqueue *q, char **ret_key) {
        int r;

        pthread_mutex_lock(&q->lock);
        for (;;) {
                if (q->shutting_down) {
                        r = -ESHUTDOWN;
                        break;
                }
                promote_due(q);
                wq_item *it = pop_locked(q);
                if (it) {
                        r = take(q, it, ret_key);
                        break;
                }
                if (q->heap_len == 0) {
                        pthread_cond_wait(&q->cond, &q->lock);
                        continue;
                }
                uint64_t t = now(q), due = q->heap[0]->ready_at;
                uint64_t wait = due > t ? due - t : 0;
                struct timespec ts = koc__monotonic_deadline(wait);
                pthread_cond_timedwait(&q->cond, &q->lock, &ts);
        }
        pthread_mutex_unlock(&q->lock);
        return r;
}

void koc__workqueue_done(koc_workqueue *q, const char *key) {
        pthread_mutex_lock(&q->lock);
        wq_item *it = item_get(q, key, false);
        if (it && it->processing) {
                it->processing = false;
                q->n_processing--;
                if (q->metrics.work_duration)
                        koc_metric_observe(q->metrics.work_duration,
                                           (double)(now(q) - it->started_at) / 1e6);
                if (it->dirty && !q->shutting_down) {
                        list_push(q, it, it->dirty_initial ? LIST_INITIAL : LIST_LIVE);
                        update_depth(q);
                        pthread_cond_signal(&q->cond);
                }
                item_maybe_release(q, it);
        }
        pthread_mutex_unlock(&q->lock);
}

void koc__workqueue_clear(koc_workqueue *q) {
        pthread_mutex_lock(&q->lock);
        for (int l = 0; l < 2; l++)
                while (q->lists[l].head)
                        list_unlink(q, q->lists[l].head);
        while (q->heap_len > 0)
                heap_remove(q, q->heap[q->heap_len - 1]);
        size_t i;
        strmap_entry *e = koc__strmap_first(&q->items, &i);
        while (e) {
                wq_item *it = e->value;
                strmap_entry *next = koc__strmap_next(&q->items, e, &i);
                it->dirty = false;
                it->dirty_initial = false;
                item_maybe_release(q, it);
                e = next;
        }
        update_depth(q);
        pthread_mutex_unlock(&q->lock);
}

void koc__workqueue_shutdown(koc_workqueue *q) {
        pthread_mutex_lock(&q->lock);
        q->shutting_down = true;
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
}

void koc__workqueue_wake(koc_workqueue *q) {
        pthread_mutex_lock(&q->lock);
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
}

size_t koc__workqueue_len(koc_workqueue *q) {
        pthread_mutex_lock(&q->lock);
        size_t n = q->lists[0].len + q->lists[1].len;
        pthread_mutex_unlock(&q->lock);
        return n;
}

size_t koc__workqueue_processing(koc_workqueue *q) {
        pthread_mutex_lock(&q->lock);
        size_t n = q->n_processing;
        pthread_mutex_unlock(&q->lock);
        return n;
}

static double running_seconds(koc_workqueue *q, bool longest) {
        double sum = 0, max = 0;
        size_t i;

        pthread_mutex_lock(&q->lock);
        uint64_t t = now(q);
        for (strmap_entry *e = koc__strmap_first(&q->items, &i); e;
             e = koc__strmap_next(&q->items, e, &i)) {
                wq_item *it = e->value;
                if (!it->processing)
                        continue;
                double s = t > it->started_at ? (double)(t - it->started_at) / 1e6 : 0;
                sum += s;
                if (s > max)
                        max = s;
        }
        pthread_mutex_unlock(&q->lock);
        return longest ? max : sum;
}

double koc__workqueue_unfinished_seconds(koc_workqueue *q) {
        return running_seconds(q, false);
}

double koc__workqueue_longest_running_seconds(koc_workqueue *q) {
        return running_seconds(q, true);
}
