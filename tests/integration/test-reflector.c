/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The reflector's watch-only mode (core/reflector.c), the Lease watch of the
 * leader elector, against koc-apiserver: it starts from the given
 * resourceVersion without a list, starts again without one after 410 (the
 * server then sends the object as ADDED), stops for good when its
 * watch_ended handler says so (and may be freed there), and resumes a watch
 * the server keeps ending early within its clean-close cap; in list mode,
 * pages arrive in order, each item once, the next page requested before the
 * current one is delivered.  Every wait runs
 * the loop until a condition holds, bounded by a safety deadline.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/reflector.h"
#include "koc/client.h"
#include "koc/config.h"
#include "koc/time.h"
#include "tests/harness/apiserver.h"

#define LEASES "/apis/coordination.k8s.io/v1/namespaces/default/leases"
#define MS KOC_USEC_PER_MSEC
#define SAFETY_USEC (30 * KOC_USEC_PER_SEC)

static koc_test_apiserver srv;
static sd_event *event;
static koc_cluster_config *cfg;
static koc_client *client;

typedef struct seen {
        koc_reflector *r;
        unsigned added, modified, deleted;
        char last_holder[64];
        char last_rv[32];
        unsigned ended;
        long ended_status;
        bool stop_on_403;
        bool freed; /* freed inside watch_ended */
        koc_reflector_stats final_stats;
} seen;

static void on_event(koc_watch_event_type type, cJSON *object, void *userdata) {
        seen *s = userdata;
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(object, "metadata");
        const cJSON *spec = cJSON_GetObjectItemCaseSensitive(object, "spec");
        const char *rv =
                cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(md, "resourceVersion"));
        const char *h =
                cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(spec, "holderIdentity"));
        snprintf(s->last_rv, sizeof s->last_rv, "%s", rv ? rv : "");
        snprintf(s->last_holder, sizeof s->last_holder, "%s", h ? h : "");
        if (type == KOC_WATCH_ADDED)
                s->added++;
        else if (type == KOC_WATCH_MODIFIED)
                s->modified++;
        else if (type == KOC_WATCH_DELETED)
                s->deleted++;
}

static bool on_ended(long status, int error, void *userdata) {
        seen *s = userdata;
        s->ended++;
        s->ended_status = status;
        if (s->stop_on_403 && status == 403) {
                koc__reflector_get_stats(s->r, &s->final_stats);
                s->r = koc__reflector_free(s->r);
                s->freed = true;
                return false;
        }
        return true;
}

static void run_for(uint64_t usec) {
        uint64_t end = koc_now_boottime_usec() + usec;
        for (uint64_t now; (now = koc_now_boottime_usec()) < end;)
                assert_true(sd_event_run(event, end - now) >= 0);
}

static void run_until(bool (*cond)(seen *), seen *s) {
        uint64_t end = koc_now_boottime_usec() + SAFETY_USEC;
        while (!cond(s)) {
                assert_true(koc_now_boottime_usec() < end);
                assert_true(sd_event_run(event, 50 * MS) >= 0);
        }
}

/* Writes the Lease (create when missing) with this holder; returns its
 * resourceVersion in rv. */
static void put_lease(const char *name, const char *holder, char *rv, size_t size) {
        char path[256], body[512];
        char *answer = NULL;
        snprintf(body, sizeof body,
                 "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\","
                 "\"metadata\":{\"name\":\"%s\"},\"spec\":{\"holderIdentity\":\"%s\"}}",
                 name, holder);
        snprintf(path, sizeof path, LEASES "/%s", name);
        long st = koc_test_apiserver_http(&srv, "GET", path, NULL, NULL, NULL);
        if (st == 404)
                st = koc_test_apiserver_http(&srv, "POST", LEASES, body, "application/json",
                                             &answer);
        else {
                char patch[256];
                snprintf(patch, sizeof patch, "{\"spec\":{\"holderIdentity\":\"%s\"}}", holder);
                st = koc_test_apiserver_http(&srv, "PATCH", path, patch,
                                             "application/merge-patch+json", &answer);
        }
        assert_true(st == 200 || st == 201);
        cJSON *o = cJSON_Parse(answer);
        free(answer);
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(o, "metadata");
        snprintf(rv, size, "%s",
                 cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(md, "resourceVersion")));
        cJSON_Delete(o);
}

static koc_reflector *start(seen *s, const char *name, const char *rv, uint64_t clean_close_max) {
        char selector[128];
        snprintf(selector, sizeof selector, "metadata.name=%s", name);
        assert_int_equal(koc__reflector_new(client,
                                            &(koc_reflector_spec){
                                                    .path = LEASES,
                                                    .field_selector = selector,
                                                    .watch_only = true,
                                                    .resource_version = rv,
                                                    .backoff_initial_usec = 100 * MS,
                                                    .clean_close_max_usec = clean_close_max,
                                            },
                                            &(koc_reflector_handlers){.event = on_event,
                                                                      .watch_ended = on_ended},
                                            s, &s->r),
                         0);
        assert_int_equal(koc__reflector_start(s->r), 0);
        return s->r;
}

/* --- list mode: pages ---------------------------------------------------------- */

typedef struct pages {
        koc_reflector *r;
        unsigned items, begins, ends;
        unsigned requests_at_first_item; /* list requests sent when item 1 arrived */
        char last_name[64];
        bool ordered;
} pages;

static void on_page_begin(void *userdata) {
        ((pages *)userdata)->begins++;
}

static int on_page_item(cJSON *item, void *userdata) {
        pages *p = userdata;
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(item, "metadata");
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(md, "name"));
        koc_reflector_stats st;
        koc__reflector_get_stats(p->r, &st);
        if (++p->items == 1)
                p->requests_at_first_item = (unsigned)st.list_requests;
        if (!name || strcmp(name, p->last_name) <= 0)
                p->ordered = false;
        snprintf(p->last_name, sizeof p->last_name, "%s", name ? name : "");
        return 0;
}

static void on_page_end(const char *rv, void *userdata) {
        ((pages *)userdata)->ends++;
}

/* A paginated list delivers every item once, in the server's order, pages
 * in order, then ends once; the next page's request goes out before the
 * current page's items are delivered (so the server prepares it meanwhile). */
static void test_list_pages_in_order(void **state) {
        char rv[32];
        for (int i = 0; i < 7; i++) {
                char name[32];
                snprintf(name, sizeof name, "page-%02d", i);
                put_lease(name, "x", rv, sizeof rv);
        }
        pages p = {.ordered = true};
        assert_int_equal(koc__reflector_new(client,
                                            &(koc_reflector_spec){
                                                    .path = LEASES,
                                                    .label_selector = NULL,
                                                    .page_size = 2,
                                            },
                                            &(koc_reflector_handlers){.list_begin = on_page_begin,
                                                                      .list_item = on_page_item,
                                                                      .list_end = on_page_end},
                                            &p, &p.r),
                         0);
        assert_int_equal(koc__reflector_start(p.r), 0);
        uint64_t end = koc_now_boottime_usec() + SAFETY_USEC;
        while (p.ends == 0) {
                assert_true(koc_now_boottime_usec() < end);
                assert_true(sd_event_run(event, 50 * MS) >= 0);
        }
        koc_reflector_stats st;
        koc__reflector_get_stats(p.r, &st);
        p.r = koc__reflector_free(p.r);
        assert_true(p.items >= 7); /* the leases of the other cases are listed too */
        assert_true(p.ordered);
        assert_int_equal(p.begins, 1);
        assert_int_equal(p.ends, 1);
        assert_true(st.list_requests >= 4);
        assert_int_equal(p.requests_at_first_item, 2);
}

static int group_setup(void **state) {
        koc_error err = {0};
        /* A short history, so that an old resourceVersion is soon too old. */
        if (koc_test_apiserver_start(&srv, "--history 8") < 0 || sd_event_new(&event) < 0 ||
            koc_cluster_config_from_kubeconfig(srv.kubeconfig, NULL, &cfg, &err) < 0 ||
            koc_client_new(event, cfg, &client) < 0)
                return -1;
        return 0;
}

static int group_teardown(void **state) {
        client = koc_client_unref(client);
        cfg = koc_cluster_config_unref(cfg);
        event = sd_event_unref(event);
        koc_test_apiserver_stop(&srv);
        return 0;
}

static bool holder_is_c(seen *s) {
        return strcmp(s->last_holder, "c") == 0;
}

static bool holder_is_b(seen *s) {
        return strcmp(s->last_holder, "b") == 0;
}

/* From the given resourceVersion: what changed since comes first, and no
 * list is sent. */
static void test_watch_only_starts_at_resource_version(void **state) {
        seen s = {0};
        char rv1[32], rv2[32];
        put_lease("from-rv", "a", rv1, sizeof rv1);
        put_lease("from-rv", "b", rv2, sizeof rv2);
        start(&s, "from-rv", rv1, 0);
        run_until(holder_is_b, &s);
        assert_int_equal(s.added, 0);
        assert_int_equal(s.modified, 1);
        assert_string_equal(s.last_rv, rv2);
        char rv3[32];
        put_lease("from-rv", "c", rv3, sizeof rv3);
        run_until(holder_is_c, &s);
        assert_int_equal(s.modified, 2);
        koc_reflector_stats st;
        koc__reflector_get_stats(s.r, &st);
        assert_int_equal(st.list_requests, 0);
        assert_int_equal(st.lists, 0);
        assert_int_equal(st.watches, 1);
        assert_string_equal(koc__reflector_get_resource_version(s.r), rv3);
        koc__reflector_free(s.r);
}

/* koc__reflector_restart_watch() ends the watch in flight and resumes at
 * once from the last resourceVersion (what changed meanwhile comes as
 * MODIFIED, not as a re-list), without a watch_ended call; asked again
 * before the new watch runs, it only marks the next watch. */
static void test_watch_only_restart_resumes(void **state) {
        seen s = {0};
        char rv1[32], rv2[32], rv3[32];
        put_lease("restart", "a", rv1, sizeof rv1);
        put_lease("restart", "b", rv2, sizeof rv2);
        start(&s, "restart", rv1, 0);
        run_until(holder_is_b, &s);
        koc__reflector_restart_watch(s.r);
        koc__reflector_restart_watch(s.r);
        put_lease("restart", "c", rv3, sizeof rv3);
        run_until(holder_is_c, &s);
        assert_int_equal(s.added, 0);
        assert_int_equal(s.modified, 2);
        assert_int_equal(s.ended, 0);
        assert_string_equal(s.last_rv, rv3);
        koc_reflector_stats st;
        koc__reflector_get_stats(s.r, &st);
        assert_int_equal(st.restarts, 1);
        assert_int_equal(st.watches, 2);
        assert_int_equal(st.failures, 0);
        koc__reflector_free(s.r);
}

/* A resume point older than the server's history: 410, then a watch
 * without one, which begins with the Lease as it is (ADDED). */
static void test_watch_only_gone_watches_from_now(void **state) {
        seen s = {0};
        char rv_old[32], rv[32];
        put_lease("gone", "a", rv_old, sizeof rv_old);
        /* More changes than the history keeps. */
        for (int i = 0; i < 12; i++)
                put_lease("gone-other", i % 2 ? "x" : "y", rv, sizeof rv);
        put_lease("gone", "b", rv, sizeof rv);
        start(&s, "gone", rv_old, 0);
        run_until(holder_is_b, &s);
        assert_int_equal(s.added, 1);
        koc_reflector_stats st;
        koc__reflector_get_stats(s.r, &st);
        assert_int_equal(st.relists_gone, 1);
        assert_int_equal(st.list_requests, 0);
        assert_true(st.watches >= 2);
        assert_string_equal(s.last_rv, rv);
        koc__reflector_free(s.r);
}

static bool freed(seen *s) {
        return s->freed;
}

/* watch_ended returning false stops the reflector, which the handler may
 * free right there (ASan and valgrind check that nothing touches it after). */
static void test_watch_ended_false_stops(void **state) {
        KOC_TEST_NEEDS_KOC_APISERVER(&srv);
        seen s = {.stop_on_403 = true};
        char rv[32];
        put_lease("forbidden", "a", rv, sizeof rv);
        assert_int_equal(koc_test_apiserver_fault(&srv, "{\"resource\":\"leases\",\"verb\":"
                                                        "\"watch\",\"error_code\":403}"),
                         200);
        double before = koc_test_apiserver_metric(&srv, "apiserver_request_total{verb=\"WATCH\"");
        start(&s, "forbidden", rv, 0);
        run_until(freed, &s);
        assert_int_equal(s.ended, 1);
        assert_int_equal(s.ended_status, 403);
        assert_int_equal(s.final_stats.watches, 1);
        /* Nothing runs after the stop: no second watch reaches the server. */
        run_for(500 * MS);
        assert_int_equal(s.ended, 1);
        double after = koc_test_apiserver_metric(&srv, "apiserver_request_total{verb=\"WATCH\"");
        if (before >= 0 && after >= 0)
                assert_true(after - before <= 1);
        assert_int_equal(koc_test_apiserver_clear_faults(&srv), 200);
}

/* A server that ends every watch after 100 ms with nothing on it is not
 * failing: with a clean-close cap of 200 ms the watch is resumed every few
 * hundred milliseconds, where the doubling backoff (100 ms, 200 ms, 400 ms,
 * ...) would leave ever longer gaps. */
static void test_clean_early_close_capped(void **state) {
        KOC_TEST_NEEDS_KOC_APISERVER(&srv);
        seen s = {0};
        char rv[32];
        put_lease("early", "a", rv, sizeof rv);
        assert_int_equal(koc_test_apiserver_fault(&srv, "{\"resource\":\"leases\",\"verb\":"
                                                        "\"watch\",\"watch_close_after_ms\":100}"),
                         200);
        start(&s, "early", rv, 200 * MS);
        run_for(6 * KOC_USEC_PER_SEC);
        koc_reflector_stats st;
        koc__reflector_get_stats(s.r, &st);
        /* Each round: 100 ms open plus at most 200 ms, some 20 rounds in
         * 6 s (half of that leaves room for a loaded machine and valgrind).
         * Uncapped, 6 s hold at most 6 rounds. */
        assert_true(st.watches >= 10);
        assert_true(s.ended >= 9);
        assert_int_equal(koc_test_apiserver_clear_faults(&srv), 200);
        koc__reflector_free(s.r);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_watch_only_starts_at_resource_version),
                cmocka_unit_test(test_watch_only_restart_resumes),
                cmocka_unit_test(test_watch_only_gone_watches_from_now),
                cmocka_unit_test(test_watch_ended_false_stops),
                cmocka_unit_test(test_clean_early_close_capped),
                cmocka_unit_test(test_list_pages_in_order),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
