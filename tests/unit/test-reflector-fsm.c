/* SPDX-License-Identifier: Apache-2.0 */
/* The reflector's state machine (core/reflector-fsm.c), driven with an
 * injected clock and randomness: every transition the driver relies on. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/reflector-fsm.h"
#include "koc/log.h"
#include "koc/time.h"

#define MS KOC_USEC_PER_MSEC
#define SEC KOC_USEC_PER_SEC

typedef koc__reflector_action_type act;
#define A(x) KOC__REFLECTOR_ACT_##x
#define S(x) KOC__REFLECTOR_##x
#define END ((act)-1)

static uint64_t now;
static uint64_t random_value; /* what the random source answers, within [0, n) */

static uint64_t fixed_random(uint64_t n) {
        return random_value < n ? random_value : n - 1;
}

static void init(koc__reflector_fsm *f, koc__reflector_fsm_config cfg) {
        now = 1000 * SEC;
        random_value = 0;
        cfg.random = fixed_random;
        assert_int_equal(koc__reflector_fsm_init(f, &cfg), 0);
}

static void step(koc__reflector_fsm *f, koc__reflector_event ev) {
        koc__reflector_fsm_step(f, &ev, now);
}

/* The actions of the last step are exactly these, in this order. */
static void expect(const koc__reflector_fsm *f, ...) {
        va_list ap;
        va_start(ap, f);
        size_t i = 0;
        for (act t = va_arg(ap, act); t != END; t = va_arg(ap, act), i++) {
                if (i >= f->n_actions)
                        fail_msg("action %zu: expected type %d, got none", i, (int)t);
                if (f->actions[i].type != t)
                        fail_msg("action %zu: expected type %d, got %d", i, (int)t,
                                 (int)f->actions[i].type);
        }
        va_end(ap);
        if (i != f->n_actions)
                fail_msg("%zu actions, expected %zu", f->n_actions, i);
}

static const koc__reflector_action *find(const koc__reflector_fsm *f, act t) {
        for (size_t i = 0; i < f->n_actions; i++)
                if (f->actions[i].type == t)
                        return &f->actions[i];
        fail_msg("no action of type %d", (int)t);
        return NULL;
}

#define EV(t, ...) ((koc__reflector_event){.type = KOC__REFLECTOR_EV_##t, __VA_ARGS__})
#define PAGE(cont, rv) EV(PAGE, .status = 200, .is_object = true, .continue_token = (cont), \
                          .resource_version = (rv))
#define OBJ(t, rv) EV(WATCH_OBJECT, .watch_type = KOC_WATCH_##t, .is_object = true, \
                      .resource_version = (rv))

/* START and the timer: the first page request, without a continue token. */
static void to_listing(koc__reflector_fsm *f) {
        step(f, EV(START));
        expect(f, A(TIMER), END);
        assert_int_equal(f->actions[0].delay, 0);
        assert_int_equal(f->state, S(LIST_DUE));
        step(f, EV(TIMER));
        /* The list begins when its request is sent. */
        expect(f, A(LIST_BEGIN), A(REQUEST_PAGE), END);
        assert_null(f->actions[1].continue_token);
        assert_int_equal(f->state, S(LISTING));
}

/* A one-page list ending at rv, then the watch from rv. */
static void to_watching(koc__reflector_fsm *f, const char *rv) {
        to_listing(f);
        step(f, PAGE(NULL, rv));
        expect(f, A(DELIVER_PAGE), END);
        step(f, EV(PAGE_DELIVERED));
        expect(f, A(LIST_END), A(WATCH_START), END);
        assert_string_equal(f->actions[0].resource_version, rv);
        assert_string_equal(f->actions[1].resource_version, rv);
        assert_false(f->actions[1].stream);
        assert_int_equal(f->state, S(WATCHING));
        step(f, EV(WATCH_STARTED));
        expect(f, END);
}

static void test_paginated_list_then_watch(void **state) {
        koc__reflector_fsm f;
        init(&f, (koc__reflector_fsm_config){.page_size = 2});
        to_listing(&f);
        /* The next page's request goes out before this page is delivered. */
        step(&f, PAGE("c1", "5"));
        expect(&f, A(REQUEST_PAGE), A(DELIVER_PAGE), END);
        assert_string_equal(f.actions[0].continue_token, "c1");
        assert_true(f.actions[1].defer);
        step(&f, EV(ITEM));
        expect(&f, A(DELIVER_ITEM), END);
        step(&f, EV(PAGE_DELIVERED));
        expect(&f, END);
        assert_true(f.list_begun);
        step(&f, PAGE(NULL, "7"));
        expect(&f, A(DELIVER_PAGE), END);
        assert_false(f.actions[0].defer);
        step(&f, EV(ITEM));
        expect(&f, A(DELIVER_ITEM), END);
        step(&f, EV(PAGE_DELIVERED));
        expect(&f, A(LIST_END), A(WATCH_START), END);
        assert_string_equal(f.actions[0].resource_version, "7");
        assert_string_equal(f.rv, "7");
        assert_null(f.continue_token);
        assert_int_equal(f.stats.lists, 1);
        assert_int_equal(f.stats.list_requests, 2);
        /* The watch counts once it went out. */
        assert_int_equal(f.stats.watches, 0);
        step(&f, EV(WATCH_STARTED));
        assert_int_equal(f.stats.watches, 1);
        koc__reflector_fsm_done(&f);
}

static void test_continue_loop_abandoned(void **state) {
        koc__reflector_fsm f;
        init(&f, (koc__reflector_fsm_config){0});
        to_listing(&f);
        step(&f, PAGE("c1", "5"));
        step(&f, PAGE("c2", "5"));
        step(&f, PAGE("c1", "5"));
        expect(&f, A(REJECT), A(DROP_PAGE), A(CANCEL_REQUEST), A(LIST_ABORT), A(TIMER), END);
        assert_int_equal(f.actions[0].reason, KOC_REFLECTOR_REJECT_CONTINUE_LOOP);
        assert_string_equal(f.actions[0].what, "list page");
        assert_int_equal(f.actions[4].delay, 800 * MS);
        assert_int_equal(f.state, S(LIST_DUE));
        assert_int_equal(f.stats.lists_abandoned, 1);
        assert_int_equal(f.stats.rejected[KOC_REFLECTOR_REJECT_CONTINUE_LOOP], 1);
        /* The next list starts from scratch, with tokens it saw before. */
        now += 800 * MS;
        step(&f, EV(TIMER));
        expect(&f, A(LIST_BEGIN), A(REQUEST_PAGE), END);
        assert_null(f.actions[1].continue_token);
        step(&f, PAGE("c1", "5"));
        expect(&f, A(REQUEST_PAGE), A(DELIVER_PAGE), END);
        koc__reflector_fsm_done(&f);
}

static void test_object_cap(void **state) {
        koc__reflector_fsm f;
        init(&f, (koc__reflector_fsm_config){.max_list_objects = 2});
        to_listing(&f);
        step(&f, PAGE(NULL, "5"));
        step(&f, EV(ITEM));
        expect(&f, A(DELIVER_ITEM), END);
        step(&f, EV(ITEM));
        expect(&f, A(DELIVER_ITEM), END);
        step(&f, EV(ITEM));
        expect(&f, A(REJECT), A(CANCEL_REQUEST), A(LIST_ABORT), A(TIMER), END);
        assert_int_equal(f.actions[0].reason, KOC_REFLECTOR_REJECT_LIST_TOO_LARGE);
        assert_non_null(strstr(f.actions[0].detail, "more than 2 objects"));
        /* Late events of the abandoned list change nothing. */
        step(&f, EV(PAGE_DELIVERED));
        expect(&f, END);
        assert_int_equal(f.stats.lists, 0);
        assert_int_equal(f.state, S(LIST_DUE));
        koc__reflector_fsm_done(&f);
}

static void test_page_cap(void **state) {
        koc__reflector_fsm f;
        init(&f, (koc__reflector_fsm_config){.max_list_objects = 10, .page_size = 10});
        /* 10 / 10 * 2 + 1000 pages at most. */
        assert_int_equal(f.max_list_pages, 1002);
        to_listing(&f);
        char token[32];
        step(&f, PAGE("t0", "5"));
        expect(&f, A(REQUEST_PAGE), A(DELIVER_PAGE), END);
        for (int i = 1; i < 1002; i++) {
                step(&f, EV(PAGE_DELIVERED));
                snprintf(token, sizeof token, "t%d", i);
                step(&f, PAGE(token, "5"));
                expect(&f, A(REQUEST_PAGE), A(DELIVER_PAGE), END);
        }
        step(&f, EV(PAGE_DELIVERED));
        step(&f, PAGE("last", "5"));
        expect(&f, A(REJECT), A(CANCEL_REQUEST), A(LIST_ABORT), A(TIMER), END);
        assert_non_null(strstr(f.actions[0].detail, "more than 1002 pages"));
        koc__reflector_fsm_done(&f);
}

static void test_expired_continue_relists_at_once(void **state) {
        koc__reflector_fsm f;
        init(&f, (koc__reflector_fsm_config){0});
        to_listing(&f);
        step(&f, PAGE("c1", "5"));
        step(&f, EV(PAGE_DELIVERED));
        step(&f, EV(PAGE, .status = 410));
        expect(&f, A(LOG), A(CANCEL_REQUEST), A(LIST_ABORT), A(TIMER), END);
        assert_int_equal(f.actions[3].delay, 0);
        assert_int_equal(f.stats.failures, 0);
        assert_int_equal(f.stats.rejected[KOC_REFLECTOR_REJECT_STATUS], 0);
        step(&f, EV(TIMER));
        expect(&f, A(LIST_BEGIN), A(REQUEST_PAGE), END);
        assert_null(f.actions[1].continue_token);
        koc__reflector_fsm_done(&f);
}

/* 800 ms doubling to the cap, jitter within [d, 2d), and a fresh start
 * after two quiet minutes. */
static void test_backoff(void **state) {
        koc__reflector_fsm f;
        init(&f, (koc__reflector_fsm_config){.backoff_max_usec = 5 * SEC});
        to_listing(&f);
        uint64_t want[] = {800 * MS, 1600 * MS, 3200 * MS, 5 * SEC, 5 * SEC};
        for (size_t i = 0; i < 5; i++) {
                step(&f, EV(PAGE, .status = 500, .is_object = true, .message = "down"));
                expect(&f, A(REJECT), A(CANCEL_REQUEST), A(LIST_ABORT), A(TIMER), END);
                assert_int_equal(f.actions[0].reason, KOC_REFLECTOR_REJECT_STATUS);
                assert_string_equal(f.actions[0].what, "list");
                assert_string_equal(f.actions[0].detail, "down");
                assert_int_equal(f.actions[3].delay, want[i]);
                assert_int_equal(f.actions[0].delay, want[i]);
                now += f.actions[3].delay;
                step(&f, EV(TIMER));
        }
        /* Jitter: up to twice the base, never over the cap. */
        now += 121 * SEC;
        random_value = 1000 * SEC;
        step(&f, EV(PAGE, .status = 500));
        assert_int_equal(find(&f, A(TIMER))->delay, 1600 * MS - 1);
        now += 10 * SEC;
        step(&f, EV(TIMER));
        step(&f, EV(PAGE, .error = -ECONNRESET));
        assert_int_equal(find(&f, A(REJECT))->reason, KOC_REFLECTOR_REJECT_TRANSPORT);
        assert_int_equal(find(&f, A(TIMER))->delay, 3200 * MS - 1);
        step(&f, EV(TIMER));
        step(&f, EV(PAGE, .status = 200, .is_object = false));
        assert_int_equal(find(&f, A(REJECT))->reason, KOC_REFLECTOR_REJECT_INVALID);
        assert_string_equal(find(&f, A(REJECT))->detail, "the answer is not an object");
        assert_int_equal(find(&f, A(TIMER))->delay, 5 * SEC);
        assert_int_equal(f.stats.failures, 8);
        koc__reflector_fsm_done(&f);
}

static void test_watch_events(void **state) {
        koc__reflector_fsm f;
        init(&f, (koc__reflector_fsm_config){0});
        to_watching(&f, "10");
        step(&f, OBJ(ADDED, "11"));
        expect(&f, A(EMIT_EVENT), END);
        assert_int_equal(f.actions[0].watch_type, KOC_WATCH_ADDED);
        step(&f, OBJ(BOOKMARK, "12"));
        expect(&f, END);
        assert_string_equal(f.rv, "12");
        step(&f, OBJ(DELETED, ""));
        expect(&f, A(EMIT_EVENT), END);
        assert_string_equal(f.rv, "12");
        step(&f, EV(WATCH_OBJECT, .watch_type = KOC_WATCH_MODIFIED, .is_object = false));
        expect(&f, END);
        koc__reflector_fsm_done(&f);
}

/* A watch that ends asks its owner; RESUME goes on from there. */
static void test_watch_end_resume(void **state) {
        koc__reflector_fsm f;
        init(&f, (koc__reflector_fsm_config){.clean_close_max_usec = 1 * SEC});
        to_watching(&f, "10");

        /* Clean end after a while: again at once, from the last rv. */
        now += 2 * SEC;
        koc__reflector_event end = EV(WATCH_END, .status = 200);
        step(&f, end);
        expect(&f, A(ASK_OWNER), END);
        assert_int_equal(f.actions[0].status, 200);
        assert_int_equal(f.state, S(ENDED));
        end.type = KOC__REFLECTOR_EV_RESUME;
        step(&f, end);
        expect(&f, A(TIMER), END);
        assert_int_equal(f.actions[0].delay, 0);
        step(&f, EV(TIMER));
        expect(&f, A(WATCH_START), END);
        assert_string_equal(f.actions[0].resource_version, "10");

        /* Clean but at once, with nothing on it: backoff, capped low. */
        now += 100 * MS;
        step(&f, EV(RESUME, .status = 200));
        expect(&f, END); /* not in ENDED: ignored */
        step(&f, EV(WATCH_END, .status = 200));
        step(&f, EV(RESUME, .status = 200));
        expect(&f, A(LOG), A(TIMER), END);
        assert_int_equal(f.actions[1].delay, 800 * MS);
        step(&f, EV(TIMER));
        step(&f, EV(WATCH_END, .status = 200));
        step(&f, EV(RESUME, .status = 200));
        assert_int_equal(find(&f, A(TIMER))->delay, 1 * SEC);

        /* ... unless something came on it. */
        step(&f, EV(TIMER));
        step(&f, OBJ(MODIFIED, "13"));
        step(&f, EV(WATCH_END, .status = 200));
        step(&f, EV(RESUME, .status = 200));
        expect(&f, A(TIMER), END);
        assert_int_equal(f.actions[0].delay, 0);

        /* An ERROR event other than 410: rejected, backoff, watch again. */
        step(&f, EV(TIMER));
        step(&f, EV(WATCH_END, .error_event = true, .status = 500, .message = "sad"));
        step(&f, EV(RESUME, .error_event = true, .status = 500, .message = "sad"));
        expect(&f, A(REJECT), A(TIMER), END);
        assert_int_equal(f.actions[0].reason, KOC_REFLECTOR_REJECT_ERROR_EVENT);
        assert_string_equal(f.actions[0].what, "watch");
        assert_int_equal(f.state, S(WATCH_DUE));
        step(&f, EV(TIMER));
        expect(&f, A(WATCH_START), END);
        assert_string_equal(f.actions[0].resource_version, "13");

        /* 410: a re-list at once, without a resume point. */
        step(&f, EV(WATCH_END, .error_event = true, .status = 410));
        step(&f, EV(RESUME, .error_event = true, .status = 410));
        expect(&f, A(LOG), A(TIMER), END);
        assert_int_equal(f.actions[1].delay, 0);
        assert_null(f.rv);
        assert_int_equal(f.stats.relists_gone, 1);
        step(&f, EV(TIMER));
        expect(&f, A(LIST_BEGIN), A(REQUEST_PAGE), END);
        koc__reflector_fsm_done(&f);
}

/* An owner that does not resume leaves the reflector stopped for good. */
static void test_owner_stops(void **state) {
        koc__reflector_fsm f;
        init(&f, (koc__reflector_fsm_config){0});
        to_watching(&f, "10");
        step(&f, EV(WATCH_END, .status = 403));
        expect(&f, A(ASK_OWNER), END);
        step(&f, EV(TIMER));
        expect(&f, END);
        step(&f, OBJ(ADDED, "11"));
        expect(&f, END);
        step(&f, EV(RESTART));
        expect(&f, END);
        step(&f, EV(START));
        expect(&f, END);
        assert_int_equal(f.state, S(ENDED));
        koc__reflector_fsm_done(&f);
}

static void test_watch_only(void **state) {
        koc__reflector_fsm f;
        init(&f, (koc__reflector_fsm_config){.watch_only = true, .resource_version = "42"});
        step(&f, EV(START));
        expect(&f, A(TIMER), END);
        assert_int_equal(f.state, S(WATCH_DUE));
        step(&f, EV(TIMER));
        expect(&f, A(WATCH_START), END);
        assert_string_equal(f.actions[0].resource_version, "42");
        step(&f, EV(WATCH_STARTED));
        /* 410: the single-object re-list, a watch without a resume point. */
        step(&f, EV(WATCH_END, .status = 410));
        step(&f, EV(RESUME, .status = 410));
        expect(&f, A(LOG), A(TIMER), END);
        assert_int_equal(f.state, S(WATCH_DUE));
        step(&f, EV(TIMER));
        expect(&f, A(WATCH_START), END);
        assert_null(f.actions[0].resource_version);
        assert_false(f.actions[0].stream);
        koc__reflector_fsm_done(&f);
}

static void test_restart_watch(void **state) {
        koc__reflector_fsm f;
        init(&f, (koc__reflector_fsm_config){0});
        to_watching(&f, "10");
        step(&f, EV(RESTART));
        expect(&f, A(WATCH_STOP), A(TIMER), END);
        assert_int_equal(f.actions[1].delay, 0);
        assert_int_equal(f.stats.restarts, 1);
        step(&f, EV(TIMER));
        expect(&f, A(WATCH_START), END);
        assert_true(f.actions[0].fresh);
        assert_string_equal(f.actions[0].resource_version, "10");
        /* A watch that could not start keeps the wish for a new connection. */
        step(&f, EV(REQUEST_FAILED, .error = -ENOMEM));
        expect(&f, A(LOG), A(TIMER), END);
        assert_int_equal(f.actions[0].level, KOC_LOG_WARN);
        assert_string_equal(f.actions[0].what, "cannot watch");
        assert_int_equal(f.state, S(WATCH_DUE));
        assert_int_equal(f.stats.watches, 1);
        step(&f, EV(TIMER));
        assert_true(find(&f, A(WATCH_START))->fresh);
        step(&f, EV(WATCH_STARTED));
        assert_int_equal(f.stats.watches, 2);
        /* Only the next watch uses a new connection. */
        step(&f, EV(RESTART));
        step(&f, EV(TIMER));
        step(&f, EV(WATCH_STARTED));
        step(&f, EV(WATCH_END, .status = 200));
        now += 2 * SEC;
        step(&f, EV(RESUME, .status = 200));
        step(&f, EV(TIMER));
        assert_false(find(&f, A(WATCH_START))->fresh);
        /* Without a watch, a restart only marks the next one. */
        step(&f, EV(WATCH_END, .status = 200));
        step(&f, EV(RESUME, .status = 200));
        step(&f, EV(RESTART));
        expect(&f, END);
        step(&f, EV(TIMER));
        assert_true(find(&f, A(WATCH_START))->fresh);
        koc__reflector_fsm_done(&f);
}

/* Sending a page fails while the page before waits for delivery: the list
 * is abandoned and that page dropped. */
static void test_page_request_fails(void **state) {
        koc__reflector_fsm f;
        init(&f, (koc__reflector_fsm_config){0});
        to_listing(&f);
        step(&f, PAGE("c1", "5"));
        step(&f, EV(REQUEST_FAILED, .error = -ENOMEM));
        expect(&f, A(LOG), A(DROP_PAGE), A(CANCEL_REQUEST), A(LIST_ABORT), A(TIMER), END);
        assert_string_equal(f.actions[0].what, "cannot list");
        assert_int_equal(f.actions[4].delay, 800 * MS);
        assert_int_equal(f.state, S(LIST_DUE));
        step(&f, EV(ITEM));
        expect(&f, END);
        koc__reflector_fsm_done(&f);
}

static void test_stream_list(void **state) {
        koc__reflector_fsm f;
        init(&f, (koc__reflector_fsm_config){.list_mode = KOC_REFLECTOR_LIST_AUTO});
        step(&f, EV(START));
        step(&f, EV(TIMER));
        expect(&f, A(LIST_BEGIN), A(TIMER), A(WATCH_START), END);
        assert_int_equal(f.actions[1].delay, 10 * SEC); /* the silence bound */
        assert_true(f.actions[2].stream);
        assert_null(f.actions[2].resource_version);
        assert_int_equal(f.state, S(STREAMING));
        step(&f, EV(WATCH_STARTED));
        assert_int_equal(f.stats.streams, 1);
        step(&f, OBJ(ADDED, "3"));
        expect(&f, A(DELIVER_ITEM), END);
        step(&f, OBJ(ADDED, "4"));
        expect(&f, A(DELIVER_ITEM), END);
        step(&f, OBJ(BOOKMARK, "8"));
        expect(&f, END);
        step(&f, EV(WATCH_OBJECT, .watch_type = KOC_WATCH_BOOKMARK, .is_object = true,
                    .resource_version = "9", .initial_events_end = true));
        expect(&f, A(LIST_END), END);
        assert_string_equal(f.actions[0].resource_version, "9");
        assert_int_equal(f.state, S(WATCHING));
        assert_int_equal(f.stats.streams_done, 1);
        assert_int_equal(f.stats.lists, 1);
        /* The same stream goes on as the watch. */
        step(&f, OBJ(MODIFIED, "10"));
        expect(&f, A(EMIT_EVENT), END);
        /* A restart of the watch resumes it, with no stream. */
        step(&f, EV(RESTART));
        step(&f, EV(TIMER));
        expect(&f, A(WATCH_START), END);
        assert_false(f.actions[0].stream);
        assert_string_equal(f.actions[0].resource_version, "10");
        koc__reflector_fsm_done(&f);
}

/* AUTO: a server that ignores sendInitialEvents is listed with pages. */
static void test_stream_fallback(void **state) {
        koc__reflector_fsm f;
        init(&f, (koc__reflector_fsm_config){.list_mode = KOC_REFLECTOR_LIST_AUTO});
        step(&f, EV(START));
        step(&f, EV(TIMER));
        step(&f, OBJ(ADDED, "3"));
        step(&f, EV(WATCH_END, .status = 200));
        expect(&f, A(LOG), A(LIST_ABORT), A(TIMER), END);
        assert_int_equal(f.actions[0].level, KOC_LOG_INFO);
        assert_int_equal(f.actions[2].delay, 0);
        assert_true(f.stats.stream_unsupported);
        assert_int_equal(f.stats.lists_abandoned, 1);
        step(&f, EV(TIMER));
        expect(&f, A(LIST_BEGIN), A(REQUEST_PAGE), END);
        koc__reflector_fsm_done(&f);

        /* 422 (the WatchList gate off) the same. */
        init(&f, (koc__reflector_fsm_config){.list_mode = KOC_REFLECTOR_LIST_AUTO});
        step(&f, EV(START));
        step(&f, EV(TIMER));
        step(&f, EV(WATCH_END, .status = 422, .message = "nope"));
        expect(&f, A(LOG), A(LIST_ABORT), A(TIMER), END);
        assert_string_equal(f.actions[0].detail, "nope");
        assert_true(f.stats.stream_unsupported);
        koc__reflector_fsm_done(&f);

        /* STREAM mode: retried with backoff instead, still streaming. */
        init(&f, (koc__reflector_fsm_config){.list_mode = KOC_REFLECTOR_LIST_STREAM});
        step(&f, EV(START));
        step(&f, EV(TIMER));
        step(&f, EV(WATCH_END, .status = 422, .message = "nope"));
        expect(&f, A(REJECT), A(LIST_ABORT), A(TIMER), END);
        assert_int_equal(f.actions[0].reason, KOC_REFLECTOR_REJECT_STATUS);
        assert_string_equal(f.actions[0].what, "streaming list");
        assert_int_equal(f.actions[2].delay, 800 * MS);
        assert_false(f.stats.stream_unsupported);
        step(&f, EV(TIMER));
        expect(&f, A(LIST_BEGIN), A(TIMER), A(WATCH_START), END);
        assert_true(f.actions[2].stream);
        /* 410 on the stream: again at once. */
        step(&f, EV(WATCH_END, .error_event = true, .status = 410));
        expect(&f, A(LOG), A(LIST_ABORT), A(TIMER), END);
        assert_int_equal(f.actions[2].delay, 0);
        assert_int_equal(f.stats.relists_gone, 1);
        koc__reflector_fsm_done(&f);
}

/* A streaming list that stays silent without its end marker (a server that
 * ignored sendInitialEvents and keeps the watch open): while events come the
 * silence timer re-arms; a whole bound without one falls back to pages
 * (AUTO), or is rejected and retried with backoff (STREAM). */
static void test_stream_silence(void **state) {
        koc__reflector_fsm f;
        init(&f, (koc__reflector_fsm_config){.list_mode = KOC_REFLECTOR_LIST_AUTO,
                                             .stream_silence_usec = 2 * SEC});
        step(&f, EV(START));
        step(&f, EV(TIMER));
        expect(&f, A(LIST_BEGIN), A(TIMER), A(WATCH_START), END);
        assert_int_equal(f.actions[1].delay, 2 * SEC);
        step(&f, EV(WATCH_STARTED));
        step(&f, OBJ(ADDED, "3"));
        now += 2 * SEC;
        step(&f, EV(TIMER)); /* an event since: still a list on its way */
        expect(&f, A(TIMER), END);
        assert_int_equal(f.actions[0].delay, 2 * SEC);
        assert_int_equal(f.state, S(STREAMING));
        now += 2 * SEC;
        step(&f, EV(TIMER)); /* none since */
        expect(&f, A(WATCH_STOP), A(LOG), A(LIST_ABORT), A(TIMER), END);
        assert_int_equal(f.actions[1].level, KOC_LOG_INFO);
        assert_true(f.stats.stream_unsupported);
        assert_int_equal(f.state, S(LIST_DUE));
        step(&f, EV(TIMER));
        expect(&f, A(LIST_BEGIN), A(REQUEST_PAGE), END);
        koc__reflector_fsm_done(&f);

        /* After the end marker the timer means nothing. */
        init(&f, (koc__reflector_fsm_config){.list_mode = KOC_REFLECTOR_LIST_AUTO});
        step(&f, EV(START));
        step(&f, EV(TIMER));
        step(&f, EV(WATCH_OBJECT, .watch_type = KOC_WATCH_BOOKMARK, .is_object = true,
                    .resource_version = "9", .initial_events_end = true));
        now += 20 * SEC;
        step(&f, EV(TIMER));
        expect(&f, END);
        assert_int_equal(f.state, S(WATCHING));
        koc__reflector_fsm_done(&f);

        /* STREAM: rejected, retried with backoff. */
        init(&f, (koc__reflector_fsm_config){.list_mode = KOC_REFLECTOR_LIST_STREAM});
        step(&f, EV(START));
        step(&f, EV(TIMER));
        now += 10 * SEC;
        step(&f, EV(TIMER));
        expect(&f, A(WATCH_STOP), A(REJECT), A(LIST_ABORT), A(TIMER), END);
        assert_string_equal(f.actions[1].what, "streaming list");
        assert_int_equal(f.actions[3].delay, 800 * MS);
        assert_false(f.stats.stream_unsupported);
        koc__reflector_fsm_done(&f);
}

/* An object the owner refuses (over its byte cap) ends a streaming list:
 * the stream is stopped and the list abandoned. */
static void test_stream_item_refused(void **state) {
        koc__reflector_fsm f;
        init(&f, (koc__reflector_fsm_config){.list_mode = KOC_REFLECTOR_LIST_STREAM});
        step(&f, EV(START));
        step(&f, EV(TIMER));
        step(&f, OBJ(ADDED, "3"));
        step(&f, EV(ITEM_REFUSED, .error = -EFBIG));
        expect(&f, A(WATCH_STOP), A(REJECT), A(LIST_ABORT), A(TIMER), END);
        assert_int_equal(f.actions[1].reason, KOC_REFLECTOR_REJECT_LIST_TOO_LARGE);
        assert_string_equal(f.actions[1].what, "streaming list");
        assert_non_null(strstr(f.actions[1].detail, "max_list_bytes"));
        assert_int_equal(f.state, S(LIST_DUE));
        koc__reflector_fsm_done(&f);
}

/* A list begins when its first request is sent (not when its first page
 * arrives), so that the owner's writes answered meanwhile count as made
 * during the list; a list whose first request fails is abandoned. */
static void test_list_begins_when_sent(void **state) {
        koc__reflector_fsm f;
        init(&f, (koc__reflector_fsm_config){0});
        step(&f, EV(START));
        step(&f, EV(TIMER));
        expect(&f, A(LIST_BEGIN), A(REQUEST_PAGE), END);
        assert_true(f.list_begun);
        step(&f, EV(REQUEST_FAILED, .error = -ENOMEM));
        expect(&f, A(LOG), A(CANCEL_REQUEST), A(LIST_ABORT), A(TIMER), END);
        now += 800 * MS;
        step(&f, EV(TIMER));
        expect(&f, A(LIST_BEGIN), A(REQUEST_PAGE), END);
        /* The pages after the first belong to the same list. */
        step(&f, PAGE("c1", "5"));
        expect(&f, A(REQUEST_PAGE), A(DELIVER_PAGE), END);
        koc__reflector_fsm_done(&f);

        /* A streaming list begins with its watch request. */
        init(&f, (koc__reflector_fsm_config){.list_mode = KOC_REFLECTOR_LIST_STREAM});
        step(&f, EV(START));
        step(&f, EV(TIMER));
        expect(&f, A(LIST_BEGIN), A(TIMER), A(WATCH_START), END);
        koc__reflector_fsm_done(&f);
}

/* A watch that ends with 410 right after every re-list: the first 410
 * re-lists at once, the next ones (with no watch event between) are said
 * and back off; a watch event makes the next 410 immediate again. */
static void test_repeated_gone_backs_off(void **state) {
        koc__reflector_fsm f;
        init(&f, (koc__reflector_fsm_config){0});
        to_watching(&f, "10");
        uint64_t want[] = {0, 800 * MS, 1600 * MS, 3200 * MS};
        for (size_t i = 0; i < 4; i++) {
                koc__reflector_event gone = EV(WATCH_END, .error_event = true, .status = 410,
                                               .message = "too old resource version");
                step(&f, gone);
                gone.type = KOC__REFLECTOR_EV_RESUME;
                step(&f, gone);
                if (i == 0) {
                        expect(&f, A(LOG), A(TIMER), END);
                        assert_int_equal(f.actions[0].level, KOC_LOG_DEBUG);
                } else {
                        expect(&f, A(REJECT), A(TIMER), END);
                        assert_int_equal(f.actions[0].reason, KOC_REFLECTOR_REJECT_GONE);
                        assert_string_equal(f.actions[0].what, "watch");
                        assert_int_equal(f.actions[0].status, 410);
                        assert_non_null(strstr(f.actions[0].detail, "too old resource version"));
                        assert_int_equal(f.actions[0].delay, want[i]);
                }
                assert_int_equal(find(&f, A(TIMER))->delay, want[i]);
                now += want[i];
                step(&f, EV(TIMER));
                expect(&f, A(LIST_BEGIN), A(REQUEST_PAGE), END);
                step(&f, PAGE(NULL, "10"));
                step(&f, EV(PAGE_DELIVERED));
                expect(&f, A(LIST_END), A(WATCH_START), END);
                step(&f, EV(WATCH_STARTED));
        }
        assert_int_equal(f.stats.rejected[KOC_REFLECTOR_REJECT_GONE], 3);
        assert_int_equal(f.stats.relists_gone, 4);
        /* An expired continue token counts the same. */
        step(&f, EV(WATCH_END, .error_event = true, .status = 410));
        step(&f, EV(RESUME, .error_event = true, .status = 410));
        assert_int_equal(find(&f, A(TIMER))->delay, 6400 * MS);
        now += 6400 * MS;
        step(&f, EV(TIMER));
        step(&f, PAGE("c1", "10"));
        step(&f, EV(PAGE_DELIVERED));
        step(&f, EV(PAGE, .status = 410));
        expect(&f, A(REJECT), A(CANCEL_REQUEST), A(LIST_ABORT), A(TIMER), END);
        assert_int_equal(f.actions[0].reason, KOC_REFLECTOR_REJECT_GONE);
        assert_int_equal(f.actions[3].delay, 12800 * MS);
        now += 12800 * MS;
        /* A watch event between: the next 410 re-lists at once. */
        step(&f, EV(TIMER));
        step(&f, PAGE(NULL, "20"));
        step(&f, EV(PAGE_DELIVERED));
        step(&f, EV(WATCH_STARTED));
        step(&f, OBJ(BOOKMARK, "21"));
        step(&f, EV(WATCH_END, .error_event = true, .status = 410));
        step(&f, EV(RESUME, .error_event = true, .status = 410));
        expect(&f, A(LOG), A(TIMER), END);
        assert_int_equal(f.actions[1].delay, 0);
        koc__reflector_fsm_done(&f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_paginated_list_then_watch),
                cmocka_unit_test(test_continue_loop_abandoned),
                cmocka_unit_test(test_object_cap),
                cmocka_unit_test(test_page_cap),
                cmocka_unit_test(test_expired_continue_relists_at_once),
                cmocka_unit_test(test_backoff),
                cmocka_unit_test(test_watch_events),
                cmocka_unit_test(test_watch_end_resume),
                cmocka_unit_test(test_owner_stops),
                cmocka_unit_test(test_watch_only),
                cmocka_unit_test(test_restart_watch),
                cmocka_unit_test(test_page_request_fails),
                cmocka_unit_test(test_stream_list),
                cmocka_unit_test(test_stream_fallback),
                cmocka_unit_test(test_stream_item_refused),
                cmocka_unit_test(test_list_begins_when_sent),
                cmocka_unit_test(test_stream_silence),
                cmocka_unit_test(test_repeated_gone_backs_off),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
