/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The work queue's invariants (framework/controller/workqueue.h), with an
 * injected clock so that delays and backoff are checked without sleeping.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "framework/controller/workqueue.h"

static uint64_t fake_now;

static uint64_t fake_clock(void *userdata) {
        return fake_now;
}

static koc_workqueue *new_queue(void) {
        koc_workqueue *q = NULL;
        fake_now = 1000000;
        assert_int_equal(koc__workqueue_new(fake_clock, NULL, &q), 0);
        return q;
}

/* Gets the next ready key and checks it. */
static void expect_get(koc_workqueue *q, const char *want) {
        char *k = NULL;
        assert_int_equal(koc__workqueue_try_get(q, &k), 0);
        assert_string_equal(k, want);
        free(k);
}

static void expect_empty(koc_workqueue *q) {
        char *k = NULL;
        assert_int_equal(koc__workqueue_try_get(q, &k), -EAGAIN);
        assert_null(k);
}

static void test_dedup(void **state) {
        koc_workqueue *q = new_queue();
        assert_int_equal(koc__workqueue_add(q, "ns/a"), 0);
        assert_int_equal(koc__workqueue_add(q, "ns/b"), 0);
        assert_int_equal(koc__workqueue_add(q, "ns/a"), 0);
        assert_int_equal(koc__workqueue_len(q), 2);
        expect_get(q, "ns/a");
        expect_get(q, "ns/b");
        expect_empty(q);
        koc__workqueue_done(q, "ns/a");
        koc__workqueue_done(q, "ns/b");
        expect_empty(q);
        koc__workqueue_free(q);
}

static void test_processing_not_handed_twice(void **state) {
        koc_workqueue *q = new_queue();
        koc__workqueue_add(q, "ns/a");
        expect_get(q, "ns/a");
        /* Added while a worker has it: not handed to a second worker... */
        koc__workqueue_add(q, "ns/a");
        koc__workqueue_add(q, "ns/a");
        expect_empty(q);
        assert_int_equal(koc__workqueue_processing(q), 1);
        /* ...but queued once, right after the first worker finishes. */
        koc__workqueue_done(q, "ns/a");
        expect_get(q, "ns/a");
        koc__workqueue_done(q, "ns/a");
        expect_empty(q);
        koc__workqueue_free(q);
}

static void test_add_after(void **state) {
        koc_workqueue *q = new_queue();
        koc__workqueue_add_after(q, "ns/late", 500000);
        koc__workqueue_add_after(q, "ns/early", 100000);
        /* A second, later delay does not push the earlier one back. */
        koc__workqueue_add_after(q, "ns/early", 900000);
        expect_empty(q);
        fake_now += 100000;
        expect_get(q, "ns/early");
        koc__workqueue_done(q, "ns/early");
        expect_empty(q);
        fake_now += 400000;
        expect_get(q, "ns/late");
        koc__workqueue_done(q, "ns/late");
        fake_now += 10000000;
        expect_empty(q);
        koc__workqueue_free(q);
}

static void test_backoff_doubles_and_resets(void **state) {
        koc_workqueue *q = new_queue();
        uint64_t want = 5000;

        for (int i = 0; i < 5; i++) {
                assert_int_equal(koc__workqueue_add_rate_limited(q, "ns/x"), 0);
                fake_now += want - 1;
                expect_empty(q);
                fake_now += 1;
                expect_get(q, "ns/x");
                koc__workqueue_done(q, "ns/x");
                want *= 2;
        }
        assert_int_equal(koc__workqueue_num_requeues(q, "ns/x"), 5);
        /* A plain add does not count as a failure. */
        koc__workqueue_add(q, "ns/x");
        expect_get(q, "ns/x");
        koc__workqueue_done(q, "ns/x");
        assert_int_equal(koc__workqueue_num_requeues(q, "ns/x"), 5);
        /* Success resets the backoff to the base. */
        koc__workqueue_forget(q, "ns/x");
        assert_int_equal(koc__workqueue_num_requeues(q, "ns/x"), 0);
        koc__workqueue_add_rate_limited(q, "ns/x");
        fake_now += 4999;
        expect_empty(q);
        fake_now += 1;
        expect_get(q, "ns/x");
        koc__workqueue_done(q, "ns/x");
        koc__workqueue_free(q);
}

/* A key's failures are said at the first, then once per interval, with the
 * count held back; a success (forget) starts over. */
static void test_failure_reports_per_key(void **state) {
        koc_workqueue *q = new_queue();
        const uint64_t interval = 60 * 1000000;
        unsigned held = 99;

        koc__workqueue_add(q, "ns/x");
        expect_get(q, "ns/x");
        assert_true(koc__workqueue_report_due(q, "ns/x", interval, &held));
        assert_int_equal(held, 0);
        assert_int_equal(koc__workqueue_add_rate_limited(q, "ns/x"), 0);
        koc__workqueue_done(q, "ns/x");
        for (int i = 0; i < 3; i++) {
                fake_now += 10 * 1000000;
                expect_get(q, "ns/x");
                assert_false(koc__workqueue_report_due(q, "ns/x", interval, &held));
                assert_int_equal(koc__workqueue_add_rate_limited(q, "ns/x"), 0);
                koc__workqueue_done(q, "ns/x");
        }
        /* Another key has its own limit. */
        koc__workqueue_add(q, "ns/y");
        expect_get(q, "ns/y");
        assert_true(koc__workqueue_report_due(q, "ns/y", interval, NULL));
        koc__workqueue_forget(q, "ns/y");
        koc__workqueue_done(q, "ns/y");
        /* The interval has passed: said again, with the three held back. */
        fake_now += 31 * 1000000;
        expect_get(q, "ns/x");
        assert_true(koc__workqueue_report_due(q, "ns/x", interval, &held));
        assert_int_equal(held, 3);
        assert_false(koc__workqueue_report_due(q, "ns/x", interval, &held));
        /* It succeeds, then fails again: a new failure is said at once. */
        koc__workqueue_forget(q, "ns/x");
        koc__workqueue_done(q, "ns/x");
        koc__workqueue_add(q, "ns/x");
        expect_get(q, "ns/x");
        assert_true(koc__workqueue_report_due(q, "ns/x", interval, &held));
        assert_int_equal(held, 0);
        koc__workqueue_done(q, "ns/x");
        koc__workqueue_free(q);
}

static void test_backoff_capped(void **state) {
        koc_workqueue *q = new_queue();
        for (int i = 0; i < 40; i++) {
                koc__workqueue_add_rate_limited(q, "ns/x");
                fake_now += KOC_WORKQUEUE_BACKOFF_MAX_USEC;
                expect_get(q, "ns/x");
                koc__workqueue_done(q, "ns/x");
        }
        /* The 41st delay is the cap, 1000 s, not 5 ms * 2^40. */
        koc__workqueue_add_rate_limited(q, "ns/x");
        fake_now += KOC_WORKQUEUE_BACKOFF_MAX_USEC - 1;
        expect_empty(q);
        fake_now += 1;
        expect_get(q, "ns/x");
        koc__workqueue_done(q, "ns/x");
        koc__workqueue_free(q);
}

static void test_live_not_starved_by_initial(void **state) {
        koc_workqueue *q = new_queue();
        char key[32];

        for (int i = 0; i < 1000; i++) {
                snprintf(key, sizeof key, "ns/initial-%d", i);
                koc__workqueue_add_initial(q, key);
        }
        koc__workqueue_add(q, "ns/live");
        /* The live change comes within the first two items, not after 1000. */
        char *a = NULL, *b = NULL;
        assert_int_equal(koc__workqueue_try_get(q, &a), 0);
        assert_int_equal(koc__workqueue_try_get(q, &b), 0);
        assert_true(strcmp(a, "ns/live") == 0 || strcmp(b, "ns/live") == 0);
        free(a);
        free(b);
        /* A live add of a key waiting in the initial fill moves it forward. */
        koc__workqueue_add(q, "ns/initial-999");
        assert_int_equal(koc__workqueue_try_get(q, &a), 0);
        assert_int_equal(koc__workqueue_try_get(q, &b), 0);
        assert_true(strcmp(a, "ns/initial-999") == 0 || strcmp(b, "ns/initial-999") == 0);
        free(a);
        free(b);
        koc__workqueue_free(q);
}

static void test_clear_drops_pending(void **state) {
        koc_workqueue *q = new_queue();
        koc__workqueue_add(q, "ns/a");
        koc__workqueue_add(q, "ns/b");
        koc__workqueue_add_after(q, "ns/c", 1000);
        expect_get(q, "ns/a");
        koc__workqueue_add(q, "ns/a");
        koc__workqueue_clear(q);
        koc__workqueue_done(q, "ns/a");
        fake_now += 1000000;
        expect_empty(q);
        koc__workqueue_free(q);
}

struct blocked {
        koc_workqueue *q;
        int r;
};

static void *blocked_get(void *p) {
        struct blocked *b = p;
        char *k = NULL;
        b->r = koc__workqueue_get(b->q, &k);
        free(k);
        return NULL;
}

static void test_shutdown_wakes_workers(void **state) {
        koc_workqueue *q = NULL;
        assert_int_equal(koc__workqueue_new(NULL, NULL, &q), 0);
        struct blocked b[3];
        pthread_t t[3];
        for (int i = 0; i < 3; i++) {
                b[i] = (struct blocked){.q = q, .r = 1};
                pthread_create(&t[i], NULL, blocked_get, &b[i]);
        }
        /* One of them also waits on a far delay. */
        koc__workqueue_add_after(q, "ns/far", 3600 * UINT64_C(1000000));
        koc__workqueue_shutdown(q);
        for (int i = 0; i < 3; i++) {
                pthread_join(t[i], NULL);
                assert_int_equal(b[i].r, -ESHUTDOWN);
        }
        assert_int_equal(koc__workqueue_add(q, "ns/a"), -ESHUTDOWN);
        koc__workqueue_free(q);
}

/* A real-clock delay is handed to a blocked worker once it is due. */
static void test_blocking_get_waits_for_delay(void **state) {
        koc_workqueue *q = NULL;
        assert_int_equal(koc__workqueue_new(NULL, NULL, &q), 0);
        koc__workqueue_add_after(q, "ns/soon", 20000);
        char *k = NULL;
        assert_int_equal(koc__workqueue_get(q, &k), 0);
        assert_string_equal(k, "ns/soon");
        koc__workqueue_done(q, k);
        free(k);
        koc__workqueue_free(q);
}

/* Many threads hammer a few keys: no key is ever held by two workers. */
struct hammer {
        koc_workqueue *q;
        pthread_mutex_t *lock;
        int *held;
        int *violations;
        int *processed;
};

static void *hammer_worker(void *p) {
        struct hammer *h = p;
        char *k;
        while (koc__workqueue_get(h->q, &k) == 0) {
                int idx = k[0] - 'a';
                pthread_mutex_lock(h->lock);
                if (h->held[idx]++)
                        (*h->violations)++;
                pthread_mutex_unlock(h->lock);
                koc__workqueue_add(h->q, k); /* a change during processing */
                pthread_mutex_lock(h->lock);
                h->held[idx]--;
                (*h->processed)++;
                int done = *h->processed >= 2000;
                pthread_mutex_unlock(h->lock);
                koc__workqueue_done(h->q, k);
                free(k);
                if (done)
                        koc__workqueue_shutdown(h->q);
        }
        return NULL;
}

static void test_concurrent_one_worker_per_key(void **state) {
        koc_workqueue *q = NULL;
        pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
        int held[4] = {0}, violations = 0, processed = 0;
        pthread_t t[4];
        struct hammer h = {q, &lock, held, &violations, &processed};

        assert_int_equal(koc__workqueue_new(NULL, NULL, &q), 0);
        h.q = q;
        for (int i = 0; i < 4; i++)
                pthread_create(&t[i], NULL, hammer_worker, &h);
        koc__workqueue_add(q, "a");
        koc__workqueue_add(q, "b");
        koc__workqueue_add(q, "c");
        for (int i = 0; i < 4; i++)
                pthread_join(t[i], NULL);
        assert_int_equal(violations, 0);
        assert_true(processed >= 2000);
        koc__workqueue_free(q);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_dedup),
                cmocka_unit_test(test_processing_not_handed_twice),
                cmocka_unit_test(test_add_after),
                cmocka_unit_test(test_backoff_doubles_and_resets),
                cmocka_unit_test(test_backoff_capped),
                cmocka_unit_test(test_failure_reports_per_key),
                cmocka_unit_test(test_live_not_starved_by_initial),
                cmocka_unit_test(test_clear_drops_pending),
                cmocka_unit_test(test_shutdown_wakes_workers),
                cmocka_unit_test(test_blocking_get_waits_for_delay),
                cmocka_unit_test(test_concurrent_one_worker_per_key),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
