/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the shutdown module: step order, asynchronous steps, the
 * pre-drain delay, the shared budget, forcing by budget and by a second
 * signal.  Budgets are short; the tests assert order and outcome only. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "koc/log.h"
#include "koc/shutdown.h"

#define MSEC 1000ULL

/* --- recording ------------------------------------------------------------- */

static char trace[2048]; /* "begin,start:a,done:a,..." */
static char logs[16384];

static void record(const char *fmt, ...) {
        size_t n = strlen(trace);
        if (n > 0 && n + 1 < sizeof(trace))
                trace[n++] = ',';
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(trace + n, sizeof(trace) - n, fmt, ap);
        va_end(ap);
}

static void capture_log(int level, const char *component, const char *message, void *ud) {
        size_t n = strlen(logs);
        snprintf(logs + n, sizeof(logs) - n, "%s: %s\n", component, message);
}

static int setup(void **state) {
        trace[0] = 0;
        logs[0] = 0;
        /* The assertions read the info-level narration, whatever KOC_LOG_LEVEL
         * the suite runs with. */
        koc_log_set_level(KOC_LOG_INFO);
        koc_log_set_handler(capture_log, NULL, NULL);
        return 0;
}

static int teardown(void **state) {
        koc_log_set_handler(NULL, NULL, NULL);
        return 0;
}

static void on_begin(koc_shutdown *s, void *ud) {
        record("begin");
}

static void on_done(koc_shutdown *s, int code, void *ud) {
        record("exit:%d", code);
}

/* A step that finishes at once. */
static void step_sync(koc_shutdown_step *st, void *ud) {
        record("start:%s%s", koc_shutdown_step_name(st), koc_shutdown_step_forced(st) ? "!" : "");
        koc_shutdown_step_done(st);
}

/* A step that never finishes by itself. */
static void step_hang(koc_shutdown_step *st, void *ud) {
        record("start:%s%s", koc_shutdown_step_name(st), koc_shutdown_step_forced(st) ? "!" : "");
        if (ud)
                *(koc_shutdown_step **)ud = st;
}

/* A step that finishes from a timer, after ud (usec) has passed. */
static int finish_later(sd_event_source *src, uint64_t usec, void *ud) {
        koc_shutdown_step *st = ud;
        record("finished:%s", koc_shutdown_step_name(st));
        koc_shutdown_step_done(st);
        return 0;
}

static sd_event *loop; /* the current test's loop */

/* ud: delay in usec before the step finishes. */
static void step_async(koc_shutdown_step *st, void *ud) {
        record("start:%s%s", koc_shutdown_step_name(st), koc_shutdown_step_forced(st) ? "!" : "");
        assert_int_equal(sd_event_add_time_relative(loop, NULL, CLOCK_BOOTTIME,
                                                    (uint64_t)(uintptr_t)ud, 1, finish_later, st),
                         0);
}

static sd_event *new_event(void) {
        assert_int_equal(sd_event_new(&loop), 0);
        return loop;
}

static koc_shutdown *new_shutdown(sd_event *e) {
        koc_shutdown *s = NULL;
        assert_int_equal(koc_shutdown_new(e, &s), 0);
        assert_int_equal(koc_shutdown_set_begin_handler(s, on_begin, NULL, NULL), 0);
        assert_int_equal(koc_shutdown_set_done_handler(s, on_done, NULL, NULL), 0);
        return s;
}

static void free_all(koc_shutdown *s) {
        koc_shutdown_unref(s);
        loop = sd_event_unref(loop);
}

/* Steps run in the order they were added, each after the previous one is
 * done, and a clean drain exits the loop with 0. */
static void test_steps_in_order(void **state) {
        sd_event *e = new_event();
        koc_shutdown *s = new_shutdown(e);
        assert_int_equal(koc_shutdown_add_step(s, "a", 0, step_sync, NULL, NULL), 0);
        assert_int_equal(
                koc_shutdown_add_step(s, "b", 0, step_async, (void *)(uintptr_t)MSEC, NULL), 0);
        assert_int_equal(koc_shutdown_add_step(s, "c", 0, step_sync, NULL, NULL), 0);
        assert_int_equal(koc_shutdown_get_state(s), KOC_SHUTDOWN_IDLE);
        assert_false(koc_shutdown_in_progress(s));
        assert_int_equal(koc_shutdown_get_exit_code(s), -EBUSY);

        assert_int_equal(koc_shutdown_trigger(s), 0);
        /* No delay: the first steps start at once, b stays in flight. */
        assert_string_equal(trace, "begin,start:a,start:b");
        assert_int_equal(koc_shutdown_get_state(s), KOC_SHUTDOWN_DRAINING);
        assert_int_equal(koc_shutdown_trigger(s), -EALREADY);
        assert_int_equal(koc_shutdown_add_step(s, "late", 0, step_sync, NULL, NULL), -EBUSY);
        assert_int_equal(koc_shutdown_set_budget(s, 5 * 1000 * MSEC), -EBUSY);

        assert_int_equal(sd_event_loop(e), 0);
        assert_string_equal(trace, "begin,start:a,start:b,finished:b,start:c,exit:0");
        assert_int_equal(koc_shutdown_get_state(s), KOC_SHUTDOWN_DONE);
        assert_int_equal(koc_shutdown_get_exit_code(s), 0);
        assert_non_null(strstr(logs, "shutdown complete exit_code=0"));
        free_all(s);
}

/* Several asynchronous steps, finishing in a later loop iteration each. */
static void test_async_chain(void **state) {
        sd_event *e = new_event();
        koc_shutdown *s = new_shutdown(e);
        assert_int_equal(koc_shutdown_add_step(s, "x", 0, step_async, (void *)(uintptr_t)0, NULL),
                         0);
        assert_int_equal(
                koc_shutdown_add_step(s, "y", 0, step_async, (void *)(uintptr_t)MSEC, NULL), 0);
        assert_int_equal(koc_shutdown_trigger(s), 0);
        assert_string_equal(trace, "begin,start:x");
        assert_int_equal(sd_event_loop(e), 0);
        assert_string_equal(trace, "begin,start:x,finished:x,start:y,finished:y,exit:0");
        free_all(s);
}

/* With a pre-drain delay the begin handler runs at once and the steps only
 * after the delay, in a later loop iteration. */
static void test_delay_ordering(void **state) {
        sd_event *e = new_event();
        koc_shutdown *s = new_shutdown(e);
        assert_int_equal(koc_shutdown_set_delay(s, 20 * MSEC), 0);
        assert_int_equal(koc_shutdown_add_step(s, "a", 0, step_sync, NULL, NULL), 0);
        assert_int_equal(koc_shutdown_trigger(s), 0);
        assert_string_equal(trace, "begin");
        assert_int_equal(koc_shutdown_get_state(s), KOC_SHUTDOWN_DELAYING);
        assert_true(koc_shutdown_in_progress(s));
        assert_int_equal(sd_event_loop(e), 0);
        assert_string_equal(trace, "begin,start:a,exit:0");
        assert_non_null(strstr(logs, "waiting before draining"));
        free_all(s);
}

/* The budget runs out while a step hangs: the shutdown is forced, the step in
 * flight is named, steps not flagged RUN_IF_FORCED are skipped, flagged ones
 * run knowing they are forced, and the exit code is 1. */
static void test_budget_exceeded(void **state) {
        sd_event *e = new_event();
        koc_shutdown *s = new_shutdown(e);
        koc_shutdown_step *hung = NULL;
        assert_int_equal(koc_shutdown_set_budget(s, 200 * MSEC), 0);
        assert_int_equal(koc_shutdown_add_step(s, "first", 0, step_sync, NULL, NULL), 0);
        assert_int_equal(koc_shutdown_add_step(s, "wait-workers", 0, step_hang, &hung, NULL), 0);
        assert_int_equal(koc_shutdown_add_step(s, "optional", 0, step_sync, NULL, NULL), 0);
        assert_int_equal(koc_shutdown_add_step(s, "step-down", KOC_SHUTDOWN_STEP_RUN_IF_FORCED,
                                               step_sync, NULL, NULL),
                         0);
        assert_int_equal(koc_shutdown_trigger(s), 0);
        assert_int_equal(sd_event_loop(e), KOC_SHUTDOWN_EXIT_FORCED);
        assert_string_equal(trace, "begin,start:first,start:wait-workers,start:step-down!,exit:1");
        assert_non_null(strstr(logs, "reason=\"drain budget exceeded\" in_flight=\"wait-workers\" "
                                     "not_started=\"optional,step-down\""));
        assert_non_null(strstr(logs, "step skipped (forced) step=optional"));
        assert_int_equal(koc_shutdown_get_exit_code(s), 1);

        /* The abandoned step finishing late changes nothing. */
        assert_non_null(hung);
        koc_shutdown_step_done(hung);
        assert_string_equal(trace, "begin,start:first,start:wait-workers,start:step-down!,exit:1");
        assert_int_equal(koc_shutdown_force(s), -EALREADY);
        free_all(s);
}

/* Hooks share one budget: two hooks that each take 60% of it do not both fit,
 * so the second one is in flight when the budget ends. */
static void test_hooks_share_budget(void **state) {
        sd_event *e = new_event();
        koc_shutdown *s = new_shutdown(e);
        uint64_t budget = 1000 * MSEC;
        assert_int_equal(koc_shutdown_set_budget(s, budget), 0);
        assert_int_equal(koc_shutdown_add_step(s, "hook1", 0, step_async,
                                               (void *)(uintptr_t)(budget * 6 / 10), NULL),
                         0);
        assert_int_equal(koc_shutdown_add_step(s, "hook2", 0, step_async,
                                               (void *)(uintptr_t)(budget * 6 / 10), NULL),
                         0);
        assert_int_equal(koc_shutdown_trigger(s), 0);
        assert_int_equal(sd_event_loop(e), KOC_SHUTDOWN_EXIT_FORCED);
        assert_non_null(strstr(trace, "begin,start:hook1,finished:hook1,start:hook2,exit:1"));
        assert_non_null(strstr(logs, "in_flight=\"hook2\""));
        free_all(s);
}

/* A RUN_IF_FORCED step that is in flight when the shutdown is forced keeps
 * running and completes; a hanging one is cut off by the forced grace. */
static void test_forced_grace(void **state) {
        sd_event *e = new_event();
        koc_shutdown *s = new_shutdown(e);
        assert_int_equal(koc_shutdown_set_forced_grace(s, 100 * MSEC), 0);
        assert_int_equal(koc_shutdown_add_step(s, "release", KOC_SHUTDOWN_STEP_RUN_IF_FORCED,
                                               step_async, (void *)(uintptr_t)(20 * MSEC), NULL),
                         0);
        assert_int_equal(koc_shutdown_add_step(s, "stuck", KOC_SHUTDOWN_STEP_RUN_IF_FORCED,
                                               step_hang, NULL, NULL),
                         0);
        assert_int_equal(koc_shutdown_add_step(s, "never", KOC_SHUTDOWN_STEP_RUN_IF_FORCED,
                                               step_sync, NULL, NULL),
                         0);
        assert_int_equal(koc_shutdown_force(s), 0); /* starts and forces at once */
        assert_int_equal(koc_shutdown_get_state(s), KOC_SHUTDOWN_FORCED);
        assert_int_equal(sd_event_loop(e), KOC_SHUTDOWN_EXIT_FORCED);
        assert_string_equal(trace, "begin,start:release,finished:release,start:stuck!,exit:1");
        assert_non_null(strstr(logs, "step still running (forced) step=release"));
        assert_non_null(strstr(logs, "step abandoned (forced grace over) step=stuck"));
        assert_non_null(strstr(logs, "step skipped (forced grace over) step=never"));
        free_all(s);
}

static int send_sigterm(sd_event_source *src, uint64_t usec, void *ud) {
        record("kill");
        assert_int_equal(kill(getpid(), SIGTERM), 0);
        return 0;
}

/* The second step sends the second SIGTERM itself. */
static void step_second_signal(koc_shutdown_step *st, void *ud) {
        record("start:%s", koc_shutdown_step_name(st));
        assert_int_equal(kill(getpid(), SIGTERM), 0);
}

/* SIGTERM starts the shutdown; a second SIGTERM forces it (exit 1) long before
 * the 30 s budget, naming the step in flight. */
static void test_second_signal(void **state) {
        sd_event *e = new_event();
        koc_shutdown *s = new_shutdown(e);
        assert_int_equal(koc_shutdown_set_budget(s, 30 * 1000 * MSEC), 0);
        assert_int_equal(koc_shutdown_add_step(s, "drain", 0, step_second_signal, NULL, NULL), 0);
        assert_int_equal(koc_shutdown_add_step(s, "after", 0, step_sync, NULL, NULL), 0);
        assert_int_equal(koc_shutdown_add_step(s, "stop-probes", KOC_SHUTDOWN_STEP_RUN_IF_FORCED,
                                               step_sync, NULL, NULL),
                         0);
        assert_int_equal(koc_shutdown_start_signals(s), 0);
        assert_int_equal(koc_shutdown_start_signals(s), -EALREADY);
        assert_int_equal(sd_event_add_time_relative(e, NULL, CLOCK_BOOTTIME, 0, 1, send_sigterm,
                                                    NULL),
                         0);
        assert_int_equal(sd_event_loop(e), KOC_SHUTDOWN_EXIT_FORCED);
        assert_string_equal(trace, "kill,begin,start:drain,start:stop-probes!,exit:1");
        assert_non_null(strstr(logs, "shutdown started reason=\"SIGTERM\""));
        assert_non_null(strstr(logs, "reason=\"second signal SIGTERM\" in_flight=\"drain\""));
        free_all(s);
}

/* SIGINT is handled like SIGTERM, and a clean drain after a signal exits 0. */
static void test_sigint_clean(void **state) {
        sd_event *e = new_event();
        koc_shutdown *s = new_shutdown(e);
        assert_int_equal(
                koc_shutdown_add_step(s, "a", 0, step_async, (void *)(uintptr_t)MSEC, NULL), 0);
        assert_int_equal(koc_shutdown_start_signals(s), 0);
        assert_int_equal(kill(getpid(), SIGINT), 0);
        assert_int_equal(sd_event_loop(e), 0);
        assert_string_equal(trace, "begin,start:a,finished:a,exit:0");
        assert_non_null(strstr(logs, "reason=\"SIGINT\""));
        free_all(s);
}

static void test_no_steps_and_no_exit(void **state) {
        sd_event *e = new_event();
        koc_shutdown *s = new_shutdown(e);
        assert_int_equal(koc_shutdown_set_exit_loop(s, false), 0);
        assert_int_equal(koc_shutdown_trigger(s), 0);
        assert_string_equal(trace, "begin,exit:0");
        assert_int_equal(koc_shutdown_get_state(s), KOC_SHUTDOWN_DONE);
        /* The loop was not told to exit: nothing is pending, one run returns. */
        assert_int_equal(sd_event_run(e, 0), 0);
        free_all(s);
}

static void test_bad_arguments(void **state) {
        sd_event *e = new_event();
        koc_shutdown *s = NULL;
        assert_int_equal(koc_shutdown_new(NULL, &s), -EINVAL);
        assert_int_equal(koc_shutdown_new(e, NULL), -EINVAL);
        s = new_shutdown(e);
        assert_int_equal(koc_shutdown_set_budget(s, 0), -EINVAL);
        assert_int_equal(koc_shutdown_set_delay(s, 30 * 1000 * MSEC), -EINVAL); /* >= budget */
        assert_int_equal(koc_shutdown_set_forced_grace(s, 0), -EINVAL);
        assert_int_equal(koc_shutdown_add_step(s, "", 0, step_sync, NULL, NULL), -EINVAL);
        assert_int_equal(koc_shutdown_add_step(s, "x", 0, NULL, NULL, NULL), -EINVAL);
        assert_int_equal(koc_shutdown_add_step(s, "x", 0x80, step_sync, NULL, NULL), -EINVAL);
        assert_int_equal(koc_shutdown_trigger(NULL), -EINVAL);
        assert_null(koc_shutdown_unref(NULL));
        koc_shutdown_step_done(NULL);
        assert_false(koc_shutdown_step_forced(NULL));
        free_all(s);
}

static void count_destroy(void *userdata) {
        (*(int *)userdata)++;
}

static void noop_step(koc_shutdown_step *step, void *userdata) {
        koc_shutdown_step_done(step);
}

static void noop_begin(koc_shutdown *s, void *userdata) {
}

/* Each registration's destroy runs once: a replaced handler's at once, the
 * rest when the coordinator is freed; a refused step's never. */
static void test_destroy_callbacks(void **state) {
        sd_event *e = NULL;
        koc_shutdown *s = NULL;
        int step = 0, refused = 0, begin_old = 0, begin_new = 0, done = 0;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(koc_shutdown_new(e, &s), 0);
        assert_int_equal(koc_shutdown_add_step(s, "a", 0, noop_step, &step, count_destroy), 0);
        assert_int_equal(koc_shutdown_add_step(s, "", 0, noop_step, &refused, count_destroy),
                         -EINVAL);
        assert_int_equal(koc_shutdown_set_begin_handler(s, noop_begin, &begin_old, count_destroy),
                         0);
        assert_int_equal(koc_shutdown_set_begin_handler(s, noop_begin, &begin_new, count_destroy),
                         0);
        assert_int_equal(begin_old, 1);
        assert_int_equal(koc_shutdown_set_done_handler(s, NULL, &done, count_destroy), 0);
        assert_int_equal(step + begin_new + done, 0);
        koc_shutdown_unref(s);
        assert_int_equal(step, 1);
        assert_int_equal(begin_new, 1);
        assert_int_equal(done, 1);
        assert_int_equal(begin_old, 1);
        assert_int_equal(refused, 0);
        sd_event_unref(e);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_destroy_callbacks),
                cmocka_unit_test_setup_teardown(test_steps_in_order, setup, teardown),
                cmocka_unit_test_setup_teardown(test_async_chain, setup, teardown),
                cmocka_unit_test_setup_teardown(test_delay_ordering, setup, teardown),
                cmocka_unit_test_setup_teardown(test_budget_exceeded, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hooks_share_budget, setup, teardown),
                cmocka_unit_test_setup_teardown(test_forced_grace, setup, teardown),
                cmocka_unit_test_setup_teardown(test_second_signal, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sigint_clean, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_steps_and_no_exit, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
