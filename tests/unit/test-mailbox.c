/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The thread-to-loop mailbox (core/mailbox.c): closures from many threads
 * run on the loop thread exactly once and in each poster's order, a full
 * mailbox holds posters back instead of dropping, and freeing it runs what is
 * left as cancelled.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/mailbox.h"

#define THREADS 4
#define PER_THREAD 2000

struct shared {
        sd_event *e;
        koc_mailbox *mb;
        pthread_t loop;
        int last[THREADS];
        int count;
        int out_of_order;
        int off_loop;
        size_t max_pending;
};

struct note {
        struct shared *s;
        int thread;
        int seq;
};

static void on_note(void *userdata, bool cancelled) {
        struct note *n = userdata;
        struct shared *s = n->s;
        if (!pthread_equal(pthread_self(), s->loop))
                s->off_loop++;
        if (n->seq != s->last[n->thread] + 1)
                s->out_of_order++;
        s->last[n->thread] = n->seq;
        size_t p = koc_mailbox_pending(s->mb);
        if (p > s->max_pending)
                s->max_pending = p;
        if (++s->count == THREADS * PER_THREAD)
                sd_event_exit(s->e, 0);
        free(n);
}

struct poster {
        struct shared *s;
        int thread;
};

static void *poster_main(void *p) {
        struct poster *po = p;
        for (int i = 1; i <= PER_THREAD; i++) {
                struct note *n = malloc(sizeof *n);
                *n = (struct note){po->s, po->thread, i};
                assert_int_equal(koc_mailbox_post(po->s->mb, on_note, n), 0);
        }
        return NULL;
}

static void test_many_posters(void **state) {
        struct shared s = {0};
        struct poster po[THREADS];
        pthread_t t[THREADS];

        assert_int_equal(sd_event_new(&s.e), 0);
        s.loop = pthread_self();
        assert_int_equal(koc_mailbox_new(s.e, 16, &s.mb), 0);
        for (int i = 0; i < THREADS; i++) {
                po[i] = (struct poster){&s, i};
                pthread_create(&t[i], NULL, poster_main, &po[i]);
        }
        assert_int_equal(sd_event_loop(s.e), 0);
        for (int i = 0; i < THREADS; i++)
                pthread_join(t[i], NULL);
        assert_int_equal(s.count, THREADS * PER_THREAD);
        assert_int_equal(s.out_of_order, 0);
        assert_int_equal(s.off_loop, 0);
        /* Back-pressure: never more pending than the bound. */
        assert_true(s.max_pending <= 16);
        koc_mailbox_free(s.mb);
        sd_event_unref(s.e);
}

static void count_cancelled(void *userdata, bool cancelled) {
        int *n = userdata;
        if (cancelled)
                (*n)++;
}

static void test_free_runs_pending_cancelled(void **state) {
        sd_event *e = NULL;
        koc_mailbox *mb = NULL;
        int cancelled = 0;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(koc_mailbox_new(e, 2, &mb), 0);
        /* The loop thread never blocks, even past the bound. */
        for (int i = 0; i < 5; i++)
                assert_int_equal(koc_mailbox_post(mb, count_cancelled, &cancelled), 0);
        koc_mailbox_free(mb);
        assert_int_equal(cancelled, 5);
        sd_event_unref(e);
}

struct blocked_poster {
        koc_mailbox *mb;
        int r;
        int ran;
};

static void mark(void *userdata, bool cancelled) {
        ((struct blocked_poster *)userdata)->ran++;
}

static void *blocked_main(void *p) {
        struct blocked_poster *b = p;
        b->r = koc_mailbox_post(b->mb, mark, b);
        return NULL;
}

static void test_free_releases_blocked_poster(void **state) {
        sd_event *e = NULL;
        struct blocked_poster b = {0};
        pthread_t t;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(koc_mailbox_new(e, 1, &b.mb), 0);
        assert_int_equal(koc_mailbox_post(b.mb, mark, &b), 0); /* full now */
        pthread_create(&t, NULL, blocked_main, &b);
        /* Once the poster waits for room, the free releases it with an
         * error instead of leaving it stuck or dropping its closure silently. */
        while (koc_mailbox_waiting(b.mb) == 0)
                sched_yield();
        koc_mailbox_free(b.mb);
        pthread_join(t, NULL);
        assert_int_equal(b.r, -ECANCELED);
        assert_int_equal(b.ran, 1);
        sd_event_unref(e);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_many_posters),
                cmocka_unit_test(test_free_runs_pending_cancelled),
                cmocka_unit_test(test_free_releases_blocked_poster),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
