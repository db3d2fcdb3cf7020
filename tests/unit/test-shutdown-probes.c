/* SPDX-License-Identifier: Apache-2.0 */
/* The shutdown and probes modules together, as the manager composes them:
 * SIGTERM turns /readyz to 503 at once while liveness stays 200, the drain
 * waits for work, and the probes server stops last.  The loop runs in a
 * thread of the test; the test watches from outside over HTTP. */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "koc/log.h"
#include "koc/probes.h"
#include "koc/shutdown.h"

typedef struct app {
        sd_event *event;
        koc_probes *probes;
        koc_shutdown *shutdown;
        int release_fd;                 /* the test writes here to end the "work" */
        koc_shutdown_step *drain_step;  /* in flight until released */
        atomic_int phase;               /* 0 running, 1 draining, 2 drained, 3 probes stopped */
        atomic_int exit_code;
        uint16_t port;
        pthread_t thread;
} app;

static void on_begin(koc_shutdown *s, void *ud) {
        app *a = ud;
        koc_probes_set_ready(a->probes, false);
}

static void step_drain(koc_shutdown_step *st, void *ud) {
        app *a = ud;
        a->drain_step = st;
        atomic_store(&a->phase, 1);
}

static int on_release(sd_event_source *s, int fd, uint32_t revents, void *ud) {
        app *a = ud;
        uint64_t v;
        (void)read(fd, &v, sizeof(v));
        if (a->drain_step) {
                atomic_store(&a->phase, 2);
                koc_shutdown_step_done(a->drain_step);
                a->drain_step = NULL;
        }
        return 0;
}

static void step_stop_probes(koc_shutdown_step *st, void *ud) {
        app *a = ud;
        koc_probes_stop(a->probes);
        atomic_store(&a->phase, 3);
        koc_shutdown_step_done(st);
}

static void *loop_thread(void *ud) {
        app *a = ud;
        atomic_store(&a->exit_code, sd_event_loop(a->event));
        return NULL;
}

static long get(uint16_t port, const char *path) {
        char url[128];
        snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
        CURL *c = curl_easy_init();
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
        long status = -1;
        if (curl_easy_perform(c) == CURLE_OK)
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(c);
        return status;
}

/* Polls until /readyz answers `want` (bounded). */
static bool wait_ready_status(uint16_t port, long want) {
        for (int i = 0; i < 500; i++) {
                if (get(port, "/readyz") == want)
                        return true;
                usleep(10000);
        }
        return false;
}

static void setup_app(app *a, uint64_t budget) {
        memset(a, 0, sizeof(*a));
        assert_int_equal(sd_event_new(&a->event), 0);
        assert_int_equal(koc_probes_new(a->event, NULL, &a->probes), 0);
        assert_int_equal(koc_probes_listen(a->probes, "127.0.0.1:0", KOC_PROBES_HEALTH), 0);
        assert_int_equal(koc_probes_get_port(a->probes, KOC_PROBES_HEALTH, &a->port), 0);
        assert_int_equal(koc_shutdown_new(a->event, &a->shutdown), 0);
        assert_int_equal(koc_shutdown_set_budget(a->shutdown, budget), 0);
        assert_int_equal(koc_shutdown_set_begin_handler(a->shutdown, on_begin, a, NULL), 0);
        assert_int_equal(
                koc_shutdown_add_step(a->shutdown, "wait-for-work", 0, step_drain, a, NULL), 0);
        assert_int_equal(koc_shutdown_add_step(a->shutdown, "stop-probes",
                                               KOC_SHUTDOWN_STEP_RUN_IF_FORCED, step_stop_probes, a,
                                               NULL),
                         0);
        a->release_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        assert_true(a->release_fd >= 0);
        assert_int_equal(sd_event_add_io(a->event, NULL, a->release_fd, EPOLLIN, on_release, a),
                         0);
        /* Signals are blocked here, before the loop thread exists, so that
         * the thread inherits the mask and SIGTERM reaches the signalfd. */
        assert_int_equal(koc_shutdown_start_signals(a->shutdown), 0);
        assert_int_equal(pthread_create(&a->thread, NULL, loop_thread, a), 0);
}

static void free_app(app *a) {
        pthread_join(a->thread, NULL);
        koc_shutdown_unref(a->shutdown);
        koc_probes_unref(a->probes);
        sd_event_unref(a->event);
        close(a->release_fd);
}

static void test_sigterm_sequence(void **state) {
        app a;
        setup_app(&a, 30 * KOC_USEC_PER_SEC);
        assert_int_equal(get(a.port, "/readyz"), 200);

        assert_int_equal(kill(getpid(), SIGTERM), 0);
        /* Not ready at once; the drain is waiting for the work; liveness is
         * unaffected; the server still answers. */
        assert_true(wait_ready_status(a.port, 503));
        for (int i = 0; i < 500 && atomic_load(&a.phase) != 1; i++)
                usleep(10000);
        assert_int_equal(atomic_load(&a.phase), 1);
        assert_int_equal(get(a.port, "/livez"), 200);
        assert_int_equal(get(a.port, "/readyz"), 503);

        /* The work ends: probes stop last and the loop exits with 0. */
        uint64_t one = 1;
        assert_int_equal(write(a.release_fd, &one, sizeof(one)), (ssize_t)sizeof(one));
        free_app(&a);
        assert_int_equal(atomic_load(&a.phase), 3);
        assert_int_equal(atomic_load(&a.exit_code), 0);
        assert_int_equal(get(a.port, "/readyz"), -1); /* nothing listens any more */
}

static void test_second_sigterm_forces(void **state) {
        app a;
        setup_app(&a, 30 * KOC_USEC_PER_SEC);
        assert_int_equal(kill(getpid(), SIGTERM), 0);
        assert_true(wait_ready_status(a.port, 503));
        for (int i = 0; i < 500 && atomic_load(&a.phase) != 1; i++)
                usleep(10000);
        assert_int_equal(atomic_load(&a.phase), 1);

        /* The work never ends; a second SIGTERM skips the wait, the probes
         * still stop, and the exit code is 1. */
        assert_int_equal(kill(getpid(), SIGTERM), 0);
        free_app(&a);
        assert_int_equal(atomic_load(&a.phase), 3);
        assert_int_equal(atomic_load(&a.exit_code), 1);
}

int main(void) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        if (!getenv("KOC_LOG_LEVEL") || !*getenv("KOC_LOG_LEVEL"))
                koc_log_set_level(KOC_LOG_WARN);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sigterm_sequence),
                cmocka_unit_test(test_second_sigterm_forces),
        };
        int r = cmocka_run_group_tests(tests, NULL, NULL);
        curl_global_cleanup();
        return r;
}
