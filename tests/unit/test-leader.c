/* SPDX-License-Identifier: Apache-2.0 */
/* The leader election driver with a fake transport and a fake clock: the
 * requests it sends, the state handle (read at read time, false before the
 * stopped callback), the fencing token, step-down and re-entrancy. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "koc/leader.h"
#include "koc/log.h"
#include "koc/metrics.h"
#include "leader/leader-internal.h"

#define MS KOC_USEC_PER_MSEC
#define SEC KOC_USEC_PER_SEC

typedef struct fake {
        uint64_t now, wall;
        uint64_t timer_at;
        /* the request in flight */
        bool pending;
        char method[8];
        char path[256];
        char *body;
        uint64_t timeout;
        koc_response_handler_t handler;
        void *userdata;
        unsigned n_requests, n_cancels;
        /* the watch */
        bool watching;
        char field_selector[128];
        char watch_rv[64];
        koc_watch_handler_t watch_handler;
        void *watch_userdata;
        unsigned n_watches, n_watch_stops;
        koc_leader *leader;
        /* callbacks seen */
        char log[1024];
        koc_leader_state *state;
        bool state_in_started, state_in_stopped;
        bool unref_in_stopped;
        bool stop_and_step_down_in_stopped;
        int done_result;
        bool fail_next; /* the next request fails to start */
        /* A cancel that comes too late: the answer is on its way already and
         * is kept here for the test to deliver. */
        bool late_cancel;
        koc_response_handler_t stale_handler;
        void *stale_userdata;
        int timer_error; /* set_timer fails with it (0: works) */
        bool stop_storm_in_stopped;
} fake;

static int fake_request(void *t, const koc_request_spec *spec, koc_response_handler_t handler,
                        void *userdata, void **ret) {
        fake *f = t;
        assert_false(f->pending); /* one request at a time */
        if (f->fail_next) {
                f->fail_next = false;
                f->n_requests++;
                return -ECONNREFUSED;
        }
        f->pending = true;
        snprintf(f->method, sizeof f->method, "%s", spec->method);
        snprintf(f->path, sizeof f->path, "%s", spec->path);
        free(f->body);
        f->body = spec->body ? cJSON_PrintUnformatted(spec->body) : NULL;
        f->timeout = spec->timeout_usec;
        f->handler = handler;
        f->userdata = userdata;
        f->n_requests++;
        *ret = f;
        return 0;
}

static void fake_cancel(void *t, void *handle) {
        fake *f = t;
        if (f->late_cancel) {
                f->stale_handler = f->handler;
                f->stale_userdata = f->userdata;
        }
        f->pending = false;
        f->n_cancels++;
}

static int fake_watch(void *t, const koc_watch_spec *spec, koc_watch_handler_t handler,
                      void *userdata, void **ret) {
        fake *f = t;
        f->watching = true;
        snprintf(f->field_selector, sizeof f->field_selector, "%s", spec->field_selector);
        snprintf(f->watch_rv, sizeof f->watch_rv, "%s",
                 spec->resource_version ? spec->resource_version : "");
        f->watch_handler = handler;
        f->watch_userdata = userdata;
        f->n_watches++;
        *ret = f;
        return 0;
}

static void fake_watch_stop(void *t, void *handle) {
        ((fake *)t)->watching = false;
        ((fake *)t)->n_watch_stops++;
}

static int fake_set_timer(void *t, uint64_t at) {
        fake *f = t;
        if (f->timer_error && at != 0)
                return f->timer_error;
        f->timer_at = at;
        return 0;
}

static uint64_t fake_now(void *t) {
        return ((fake *)t)->now;
}

static uint64_t fake_wall(void *t) {
        return ((fake *)t)->wall;
}

static const leader_transport_ops fake_ops = {
        .request = fake_request,
        .cancel = fake_cancel,
        .watch = fake_watch,
        .watch_stop = fake_watch_stop,
        .set_timer = fake_set_timer,
        .now = fake_now,
        .wall = fake_wall,
};

static uint64_t state_clock(void *userdata) {
        return ((fake *)userdata)->now;
}

static void logf_(fake *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(fake *f, const char *fmt, ...) {
        va_list ap;
        size_t n = strlen(f->log);
        va_start(ap, fmt);
        vsnprintf(f->log + n, sizeof f->log - n, fmt, ap);
        va_end(ap);
}

static void on_started(koc_leader *l, uint64_t term, void *ud) {
        fake *f = ud;
        f->state_in_started = koc_leader_state_is_leader(f->state);
        logf_(f, "started(%llu) ", (unsigned long long)term);
}

static void on_done(koc_leader *l, int result, void *ud);

static void on_stopped(koc_leader *l, koc_leader_reason reason, void *ud) {
        fake *f = ud;
        f->state_in_stopped = koc_leader_state_is_leader(f->state);
        logf_(f, "stopped(%s) ", koc_leader_reason_to_string(reason));
        if (f->stop_and_step_down_in_stopped) {
                /* Both queued behind this callback, the stop first. */
                koc_leader_stop(l);
                assert_int_equal(koc_leader_step_down(l, on_done, f), 0);
        }
        if (f->stop_storm_in_stopped) {
                /* Many stops, then a step-down: the step-down must not be lost. */
                for (int i = 0; i < 40; i++)
                        koc_leader_stop(l);
                assert_int_equal(koc_leader_step_down(l, on_done, f), 0);
                assert_int_equal(koc_leader_step_down(l, on_done, f), -EALREADY);
        }
        if (f->unref_in_stopped) {
                f->leader = koc_leader_unref(f->leader);
        }
}

static void on_new_leader(koc_leader *l, const char *identity, void *ud) {
        logf_(ud, "holder(%s) ", identity);
}

static void on_done(koc_leader *l, int result, void *ud) {
        fake *f = ud;
        f->done_result = result;
        logf_(f, "done(%d) ", result);
}

static void setup_fake(fake *f) {
        memset(f, 0, sizeof *f);
        f->now = 500 * SEC;
        f->wall = UINT64_C(1795000000) * SEC;
        koc_leader_config *cfg = NULL;
        koc_error err = {0};
        assert_int_equal(koc_leader_config_new("ns1", "my-lease", &cfg), 0);
        assert_int_equal(koc_leader_config_set_identity(cfg, "me"), 0);
        koc_leader_config_set_lease_duration(cfg, 1 * SEC);
        koc_leader_config_set_renew_deadline(cfg, 600 * MS);
        koc_leader_config_set_retry_period(cfg, 100 * MS);
        assert_int_equal(koc__leader_new_with_transport(&fake_ops, f, cfg, &f->leader, &err), 0);
        koc_leader_config_free(cfg);
        koc__leader_set_random(f->leader, NULL);
        f->state = koc_leader_ref_state(f->leader);
        koc__leader_state_set_clock(f->state, state_clock, f);
        koc_leader_set_callbacks(f->leader,
                                 &(koc_leader_callbacks){.started_leading = on_started,
                                                         .stopped_leading = on_stopped,
                                                         .new_leader = on_new_leader},
                                 f, NULL);
}

static void teardown_fake(fake *f) {
        koc_leader_unref(f->leader);
        koc_leader_state_unref(f->state);
        free(f->body);
}

static void reply(fake *f, long status, const char *json) {
        assert_true(f->pending);
        f->pending = false;
        cJSON *body = json ? cJSON_Parse(json) : NULL;
        koc_response r = {.status = status, .body = body, .message = ""};
        f->handler(NULL, &r, f->userdata);
        cJSON_Delete(body);
}

static void reply_error(fake *f, int error) {
        f->pending = false;
        koc_response r = {.error = error, .message = "transport"};
        f->handler(NULL, &r, f->userdata);
}

/* The body of the last write, as the server would store it, with a new RV. */
static char *stored(fake *f, const char *rv) {
        cJSON *o = cJSON_Parse(f->body);
        cJSON *meta = cJSON_GetObjectItem(o, "metadata");
        cJSON_DeleteItemFromObject(meta, "resourceVersion");
        cJSON_AddStringToObject(meta, "resourceVersion", rv);
        char *s = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        return s;
}

static void fire(fake *f) {
        assert_true(f->timer_at != 0);
        if (f->now < f->timer_at)
                f->now = f->timer_at;
        f->timer_at = 0;
        koc__leader_timer_fired(f->leader);
}

static void become_leader(fake *f) {
        assert_int_equal(koc_leader_start(f->leader), 0);
        assert_string_equal(f->method, "GET");
        assert_string_equal(f->path, "/apis/coordination.k8s.io/v1/namespaces/ns1/leases/my-lease");
        reply(f, 404, "{\"kind\":\"Status\",\"code\":404}");
        assert_string_equal(f->method, "POST");
        assert_string_equal(f->path, "/apis/coordination.k8s.io/v1/namespaces/ns1/leases");
        assert_non_null(strstr(f->body, "\"holderIdentity\":\"me\""));
        assert_true(f->watching);
        assert_string_equal(f->field_selector, "metadata.name=my-lease");
        char *s = stored(f, "100");
        reply(f, 201, s);
        free(s);
        assert_true(koc_leader_is_leader(f->leader));
}

static void test_state_reads_at_read_time(void **state) {
        fake f;
        setup_fake(&f);
        assert_false(koc_leader_state_is_leader(f.state));
        become_leader(&f);
        assert_true(f.state_in_started);
        assert_true(koc_leader_state_is_leader(f.state));

        uint64_t transitions = 99;
        char holder[64];
        assert_int_equal(koc_leader_state_term(f.state, &transitions, holder, sizeof holder), 1);
        assert_int_equal(transitions, 0);
        assert_string_equal(holder, "me");

        /* Frozen: the clock moves past renew_deadline, no timer has fired. */
        f.now += 600 * MS;
        assert_false(koc_leader_state_is_leader(f.state));
        assert_false(koc_leader_is_leader(f.leader));
        assert_int_equal(koc_leader_state_term(f.state, &transitions, holder, sizeof holder), 0);
        assert_string_equal(f.log, "holder(me) started(0) ");

        /* When the timer finally runs, leadership ends with the deadline reason. */
        fire(&f);
        assert_false(f.state_in_stopped);
        assert_non_null(strstr(f.log, "stopped(renew-deadline-exceeded)"));
        teardown_fake(&f);
}

/* Invariant 3 through the real state handle, with the injected clock: a
 * process frozen (no timer, no answer) past its renew deadline reads false
 * the moment it runs again, exactly at the deadline and not a microsecond
 * later; a renewal sent before the freeze and answered after it does not
 * make it leader again, since validity is anchored at the send. */
static void test_frozen_process_is_not_leader(void **state) {
        fake f;
        setup_fake(&f);
        become_leader(&f);
        f.now += 50 * MS;
        fire(&f); /* the renewal goes out at the renew tick */
        uint64_t sent = f.now;
        char *s = stored(&f, "101");
        f.now += 3 * MS;
        reply(&f, 200, s);
        free(s);
        fire(&f); /* the next renewal is sent; then the process freezes */
        uint64_t sent2 = f.now;
        assert_true(f.pending);
        assert_true(sent2 > sent);
        /* Frozen: the clock runs, nothing else does. */
        f.now = sent + 600 * MS - 1;
        assert_true(koc_leader_state_is_leader(f.state));
        f.now = sent + 600 * MS;
        assert_false(koc_leader_state_is_leader(f.state));
        assert_false(koc_leader_is_leader(f.leader));
        assert_int_equal(koc_leader_state_term(f.state, NULL, NULL, 0), 0);
        /* Woken up much later, the answer to the renewal sent before the
         * freeze is 200: valid only until sent2 + renew deadline, long past. */
        f.now = sent2 + 5 * SEC;
        s = stored(&f, "102");
        reply(&f, 200, s);
        free(s);
        assert_false(koc_leader_state_is_leader(f.state));
        assert_null(strstr(f.log, "stopped"));
        fire(&f);
        assert_non_null(strstr(f.log, "stopped(renew-deadline-exceeded)"));
        assert_false(koc_leader_state_is_leader(f.state));
        teardown_fake(&f);
}

static void test_renewal_is_one_put_with_rv(void **state) {
        fake f;
        setup_fake(&f);
        become_leader(&f);
        unsigned before = f.n_requests;
        fire(&f);
        assert_int_equal(f.n_requests, before + 1);
        assert_string_equal(f.method, "PUT");
        assert_non_null(strstr(f.body, "\"resourceVersion\":\"100\""));
        assert_non_null(strstr(f.body, "\"holderIdentity\":\"me\""));
        assert_non_null(strstr(f.body, "\"leaseDurationSeconds\":1"));
        /* The renewal may run until the deadline. */
        assert_true(f.timeout > 0 && f.timeout <= 600 * MS);
        char *s = stored(&f, "101");
        f.now += 2 * MS;
        reply(&f, 200, s);
        free(s);
        /* 5xx and timeouts: still leader. */
        fire(&f);
        reply(&f, 503, "{\"kind\":\"Status\",\"code\":503}");
        assert_true(koc_leader_state_is_leader(f.state));
        fire(&f);
        assert_non_null(strstr(f.body, "\"resourceVersion\":\"101\""));
        reply_error(&f, -ETIMEDOUT);
        assert_true(koc_leader_state_is_leader(f.state));
        assert_null(strstr(f.log, "stopped"));
        teardown_fake(&f);
}

static void test_holder_changed_state_false_first(void **state) {
        fake f;
        setup_fake(&f);
        become_leader(&f);
        fire(&f);
        reply(&f, 409, "{\"kind\":\"Status\",\"code\":409,\"reason\":\"Conflict\"}");
        assert_string_equal(f.method, "GET");
        reply(&f, 200,
              "{\"metadata\":{\"name\":\"my-lease\",\"resourceVersion\":\"120\"},"
              "\"spec\":{\"holderIdentity\":\"other\",\"leaseDurationSeconds\":1,"
              "\"leaseTransitions\":1}}");
        assert_false(f.state_in_stopped);
        assert_string_equal(f.log, "holder(me) started(0) holder(other) stopped(holder-changed) ");
        assert_false(koc_leader_state_is_leader(f.state));
        uint64_t transitions;
        char holder[64];
        assert_int_equal(koc_leader_state_term(f.state, &transitions, holder, sizeof holder), 0);
        assert_int_equal(transitions, 1);
        assert_string_equal(holder, "other");
        assert_string_equal(koc_leader_get_holder(f.leader), "other");
        teardown_fake(&f);
}

static void test_step_down_order(void **state) {
        fake f;
        setup_fake(&f);
        become_leader(&f);
        f.done_result = 1;
        assert_int_equal(koc_leader_step_down(f.leader, on_done, &f), 0);
        assert_false(koc_leader_state_is_leader(f.state));
        assert_false(f.state_in_stopped);
        assert_int_equal(koc_leader_step_down(f.leader, on_done, &f), -EALREADY);
        assert_string_equal(f.method, "PUT");
        assert_non_null(strstr(f.body, "\"holderIdentity\":\"\""));
        assert_non_null(strstr(f.body, "\"leaseDurationSeconds\":1"));
        assert_non_null(strstr(f.body, "\"leaseTransitions\":0"));
        char *s = stored(&f, "130");
        reply(&f, 200, s);
        free(s);
        assert_int_equal(f.done_result, 0);
        assert_string_equal(f.log, "holder(me) started(0) stopped(released) holder() done(0) ");
        assert_false(f.watching);
        assert_int_equal(f.timer_at, 0);
        /* Stopped: may start again. */
        assert_int_equal(koc_leader_start(f.leader), 0);
        assert_int_equal(koc_leader_start(f.leader), -EBUSY);
        teardown_fake(&f);
}

/* A stop and a step-down both asked from inside a callback (the stop
 * first): the step-down finds the elector stopped, and its done handler still
 * runs, so whoever waits for it (the manager's shutdown) is not left hanging
 * and later step-downs are not refused with -EALREADY. */
static void test_step_down_after_stop_in_callback_completes(void **state) {
        fake f;
        setup_fake(&f);
        become_leader(&f);
        f.stop_and_step_down_in_stopped = true;
        f.done_result = 1;
        f.now += 600 * MS; /* renew deadline passed */
        fire(&f);
        assert_string_equal(f.log,
                            "holder(me) started(0) stopped(renew-deadline-exceeded) done(0) ");
        assert_int_equal(f.done_result, 0);
        assert_false(f.pending);
        assert_false(f.watching);
        f.stop_and_step_down_in_stopped = false;

        /* Nothing is left pending: the elector starts and steps down again. */
        f.log[0] = '\0';
        assert_int_equal(koc_leader_start(f.leader), 0);
        assert_int_equal(koc_leader_step_down(f.leader, on_done, &f), 0);
        assert_string_equal(f.log, "done(0) ");
        teardown_fake(&f);
}

static void test_stop_and_unref_in_callback(void **state) {
        fake f;
        setup_fake(&f);
        become_leader(&f);
        fire(&f); /* renewal in flight */
        f.unref_in_stopped = true;
        koc_leader *keep = koc_leader_ref(f.leader);
        koc_leader_stop(keep);
        assert_non_null(strstr(f.log, "stopped(cancelled)"));
        assert_false(f.pending);
        assert_false(f.watching);
        assert_null(f.leader);
        koc_leader_unref(keep); /* the last reference */
        assert_false(koc_leader_state_is_leader(f.state));
        koc_leader_state_unref(f.state);
        free(f.body);
}

static void test_state_outlives_leader(void **state) {
        fake f;
        setup_fake(&f);
        become_leader(&f);
        f.leader = koc_leader_unref(f.leader);
        assert_false(koc_leader_state_is_leader(f.state));
        assert_false(koc_leader_state_is_leader(NULL));
        assert_int_equal(koc_leader_state_term(NULL, NULL, NULL, 0), -EINVAL);
        koc_leader_state_unref(f.state);
        free(f.body);
}

static void test_watch_release_takeover(void **state) {
        fake f;
        setup_fake(&f);
        assert_int_equal(koc_leader_start(f.leader), 0);
        reply(&f, 200,
              "{\"metadata\":{\"name\":\"my-lease\",\"resourceVersion\":\"7\"},"
              "\"spec\":{\"holderIdentity\":\"other\",\"leaseDurationSeconds\":1,"
              "\"leaseTransitions\":4}}");
        assert_false(f.pending);
        assert_true(f.watching);
        assert_string_equal(f.watch_rv, "7");
        cJSON *obj = cJSON_Parse("{\"metadata\":{\"name\":\"my-lease\",\"resourceVersion\":\"8\","
                                 "\"annotations\":{\"keep\":\"me\"}},"
                                 "\"spec\":{\"holderIdentity\":\"\",\"leaseDurationSeconds\":1,"
                                 "\"leaseTransitions\":4}}");
        koc_watch_event ev = {.type = KOC_WATCH_MODIFIED, .object = obj, .message = ""};
        f.watch_handler(NULL, &ev, f.watch_userdata);
        cJSON_Delete(obj);
        /* No jitter source here: acts at once. */
        assert_true(f.pending);
        assert_string_equal(f.method, "PUT");
        assert_non_null(strstr(f.body, "\"resourceVersion\":\"8\""));
        assert_non_null(strstr(f.body, "\"leaseTransitions\":5"));
        assert_non_null(strstr(f.body, "\"annotations\":{\"keep\":\"me\"}"));
        char *s = stored(&f, "9");
        reply(&f, 200, s);
        free(s);
        assert_true(koc_leader_state_is_leader(f.state));
        assert_non_null(strstr(f.log, "started(5)"));

        /* Watch forbidden later on: nothing breaks while leading. */
        koc_watch_event closed = {.type = KOC_WATCH_CLOSED, .status = 403, .message = ""};
        f.watch_handler(NULL, &closed, f.watch_userdata);
        assert_true(koc_leader_state_is_leader(f.state));
        teardown_fake(&f);
}

/* The transport resumes the watch itself (core/reflector.c) and says so
 * with an ERROR event per ended request: the elector neither restarts nor
 * stops it then, and sends nothing.  Only the end for good (CLOSED, 403)
 * turns it to polling. */
static void test_watch_resumed_by_transport(void **state) {
        fake f;
        setup_fake(&f);
        assert_int_equal(koc_leader_start(f.leader), 0);
        reply(&f, 200,
              "{\"metadata\":{\"name\":\"my-lease\",\"resourceVersion\":\"7\"},"
              "\"spec\":{\"holderIdentity\":\"other\",\"leaseDurationSeconds\":1,"
              "\"leaseTransitions\":4}}");
        assert_true(f.watching);
        assert_int_equal(f.n_watches, 1);
        assert_string_equal(f.field_selector, "metadata.name=my-lease");
        unsigned requests = f.n_requests;
        koc_watch_event ended = {.type = KOC_WATCH_ERROR, .error = -ECONNRESET, .message = ""};
        f.watch_handler(NULL, &ended, f.watch_userdata);
        ended = (koc_watch_event){.type = KOC_WATCH_ERROR, .status = 410, .message = ""};
        f.watch_handler(NULL, &ended, f.watch_userdata);
        assert_true(f.watching);
        assert_int_equal(f.n_watches, 1);
        assert_int_equal(f.n_watch_stops, 0);
        assert_int_equal(f.n_requests, requests);
        assert_false(f.pending);
        /* Stopped for good: no new watch, a GET every retry period. */
        koc_watch_event closed = {.type = KOC_WATCH_CLOSED, .status = 403, .message = ""};
        f.watch_handler(NULL, &closed, f.watch_userdata);
        f.watching = false; /* the transport's handle is gone */
        assert_int_equal(f.n_watches, 1);
        assert_true(f.timer_at > f.now);
        assert_true(f.timer_at <= f.now + 220 * MS);
        f.now = f.timer_at;
        koc__leader_timer_fired(f.leader);
        assert_true(f.pending);
        assert_string_equal(f.method, "GET");
        assert_int_equal(f.n_watches, 1);
        teardown_fake(&f);
}

static void test_request_that_cannot_start(void **state) {
        fake f;
        setup_fake(&f);
        f.fail_next = true;
        assert_int_equal(koc_leader_start(f.leader), 0);
        /* Answered as a transport failure: retried by GET after a retry period. */
        assert_false(f.pending);
        assert_int_equal(f.n_requests, 1);
        assert_true(f.timer_at > f.now);
        fire(&f);
        assert_true(f.pending);
        assert_string_equal(f.method, "GET");
        teardown_fake(&f);
}

static void test_reason_names(void **state) {
        assert_string_equal(koc_leader_reason_to_string(KOC_LEADER_REASON_RELEASED), "released");
        assert_string_equal(koc_leader_reason_to_string(KOC_LEADER_REASON_HOLDER_CHANGED),
                            "holder-changed");
        assert_string_equal(koc_leader_reason_to_string((koc_leader_reason)99), "unknown");
}

static void test_new_rejects_bad_config(void **state) {
        koc_leader_config *cfg = NULL;
        koc_leader *l = NULL;
        koc_error err = {0};
        assert_int_equal(koc_leader_config_new("ns", "x", &cfg), 0);
        koc_leader_config_set_renew_deadline(cfg, 20 * SEC);
        assert_int_equal(koc__leader_new_with_transport(&fake_ops, NULL, cfg, &l, &err), -EINVAL);
        assert_non_null(strstr(err.message, "renew_deadline"));
        assert_null(l);
        assert_int_equal(koc_leader_new(NULL, cfg, &l, &err), -EINVAL);
        koc_leader_config_free(cfg);
        assert_null(koc_leader_unref(NULL));
}

static bool rendered_has(koc_metrics *m, const char *needle) {
        char *out = NULL;
        size_t len = 0;
        assert_int_equal(koc_metrics_render(m, &out, &len), 0);
        bool has = strstr(out, needle) != NULL;
        if (!has)
                fprintf(stderr, "missing \"%s\" in:\n%s\n", needle, out);
        free(out);
        return has;
}

static void test_metrics(void **state) {
        fake f;
        koc_metrics *m = NULL;
        setup_fake(&f);
        assert_int_equal(koc_metrics_new(&m), 0);
        assert_int_equal(koc_leader_register_metrics(f.leader, m), 0);
        assert_int_equal(koc_leader_register_metrics(f.leader, m), 0); /* idempotent */
        assert_true(rendered_has(m, "leader_election_master_status{name=\"my-lease\"} 0"));
        become_leader(&f);
        assert_true(rendered_has(m, "leader_election_master_status{name=\"my-lease\"} 1"));
        assert_true(rendered_has(m, "leader_election_transitions_total{name=\"my-lease\"} 1"));
        fire(&f);
        char *s = stored(&f, "101");
        reply(&f, 200, s);
        free(s);
        assert_true(rendered_has(
                m, "leader_election_renew_duration_seconds_count{name=\"my-lease\"} 1"));
        fire(&f);
        reply(&f, 500, NULL);
        assert_true(rendered_has(m, "leader_election_renew_errors_total{name=\"my-lease\"} 1"));
        /* Frozen past the renew deadline, no timer run yet: the gauge reads 0
         * at scrape time, like the state handle. */
        uint64_t saved = f.now;
        f.now += 600 * MS;
        assert_true(rendered_has(m, "leader_election_master_status{name=\"my-lease\"} 0"));
        f.now = saved;
        assert_true(rendered_has(m, "leader_election_master_status{name=\"my-lease\"} 1"));
        koc_leader_stop(f.leader);
        assert_true(rendered_has(m, "leader_election_master_status{name=\"my-lease\"} 0"));
        teardown_fake(&f);
        koc_metrics_unref(m);
}

/* --- log capture -------------------------------------------------------------------- */

static char captured[8192];

static void capture_log(int level, const char *component, const char *message, void *ud) {
        static const char levels[] = "EWID";
        size_t n = strlen(captured);
        snprintf(captured + n, sizeof captured - n, "%c %s: %s\n",
                 level >= 0 && level <= 3 ? levels[level] : '?', component, message);
}

static void capture_start(void) {
        captured[0] = '\0';
        koc_log_set_level(KOC_LOG_INFO); /* the default level */
        koc_log_set_handler(capture_log, NULL, NULL);
}

static void capture_end(void) {
        koc_log_set_handler(NULL, NULL, NULL);
}

/* Lines of the capture that contain needle. */
static unsigned captured_count(const char *needle) {
        unsigned n = 0;
        for (const char *p = captured; (p = strstr(p, needle)); p += strlen(needle))
                n++;
        return n;
}

/* A follower whose watch shows no renewal for two retry periods while
 * "other" holds the Lease restarts it (here through stop and start: the
 * fake transport has no restart of its own), from the newest
 * resourceVersion, says why at warn (rate-limited) and counts it; no
 * request goes out and the expiry stays where it was. */
static void test_silent_watch_restarted(void **state) {
        fake f;
        koc_metrics *m = NULL;
        setup_fake(&f);
        assert_int_equal(koc_metrics_new(&m), 0);
        assert_int_equal(koc_leader_register_metrics(f.leader, m), 0);
        assert_true(rendered_has(m, "leader_election_watch_restarts_total{name=\"my-lease\"} 0"));
        capture_start();
        assert_int_equal(koc_leader_start(f.leader), 0);
        reply(&f, 200,
              "{\"metadata\":{\"name\":\"my-lease\",\"resourceVersion\":\"7\"},"
              "\"spec\":{\"holderIdentity\":\"other\",\"leaseDurationSeconds\":5}}");
        assert_true(f.watching);
        unsigned requests = f.n_requests;
        uint64_t act_at = koc__leader_get_fsm(f.leader)->act_at;
        assert_int_equal(f.timer_at, f.now + 200 * MS);
        for (int i = 1; i <= 3; i++) {
                fire(&f);
                assert_int_equal(f.n_watches, (unsigned)i + 1);
                assert_int_equal(f.n_watch_stops, (unsigned)i);
                assert_true(f.watching);
                assert_string_equal(f.watch_rv, "7");
        }
        assert_int_equal(f.n_requests, requests);
        assert_int_equal(koc__leader_get_fsm(f.leader)->act_at, act_at);
        assert_true(rendered_has(m, "leader_election_watch_restarts_total{name=\"my-lease\"} 3"));
        /* Two lines in the window, the third held back. */
        assert_int_equal(captured_count("W leader: lease=ns1/my-lease: no renewal seen for 200 "
                                        "ms while held by other; restarting the watch on a new "
                                        "connection"),
                         1);
        assert_int_equal(captured_count("no renewal seen for 400 ms while held by other"), 1);
        assert_int_equal(captured_count("no renewal seen for"), 2);
        capture_end();
        teardown_fake(&f);
        koc_metrics_unref(m);
}

/* The answer of a request cancelled too late (its answer was on its way)
 * carries its own sequence number, so the state machine ignores it: here a
 * renewal's 200 arriving while the release is in flight must not finish the
 * step-down, which has not released anything yet. */
static void test_stale_answer_is_ignored(void **state) {
        fake f;
        setup_fake(&f);
        become_leader(&f);
        fire(&f); /* renewal in flight */
        assert_string_equal(f.method, "PUT");
        char *renewed = stored(&f, "101");
        f.late_cancel = true;
        f.done_result = 1;
        assert_int_equal(koc_leader_step_down(f.leader, on_done, &f), 0);
        assert_true(f.pending);
        assert_non_null(strstr(f.body, "\"holderIdentity\":\"\""));
        assert_non_null(f.stale_handler);

        /* The renewal's answer arrives now. */
        cJSON *body = cJSON_Parse(renewed);
        koc_response r = {.status = 200, .body = body, .message = ""};
        f.stale_handler(NULL, &r, f.stale_userdata);
        cJSON_Delete(body);
        free(renewed);
        assert_int_equal(f.done_result, 1);
        assert_null(strstr(f.log, "done("));
        assert_int_equal(koc__leader_get_fsm(f.leader)->state, LEADER_FSM_RELEASING);
        assert_true(f.pending);

        /* The release's own answer ends the step-down. */
        char *s = stored(&f, "102");
        reply(&f, 200, s);
        free(s);
        assert_int_equal(f.done_result, 0);
        assert_string_equal(f.log, "holder(me) started(0) stopped(released) holder() done(0) ");
        teardown_fake(&f);
}

/* Callbacks may stop the elector as often as they like: the stops are
 * coalesced, and the step-down asked after them is not dropped (its done
 * handler runs, so a shutdown waiting for it is not left hanging). */
static void test_nested_stops_do_not_drop_step_down(void **state) {
        fake f;
        setup_fake(&f);
        become_leader(&f);
        f.stop_storm_in_stopped = true;
        f.done_result = 1;
        f.now += 600 * MS; /* renew deadline passed */
        fire(&f);
        assert_string_equal(f.log,
                            "holder(me) started(0) stopped(renew-deadline-exceeded) done(0) ");
        assert_int_equal(f.done_result, 0);
        assert_int_equal(koc__leader_get_fsm(f.leader)->state, LEADER_FSM_STOPPED);
        assert_false(f.pending);
        assert_false(f.watching);
        teardown_fake(&f);
}

/* A timer that cannot be armed would leave a follower waiting forever (the
 * state machine asks again only when the instant changes): the elector stops
 * and says why at error level. */
static void test_failing_timer_stops_elector(void **state) {
        fake f;
        setup_fake(&f);
        capture_start();
        assert_int_equal(koc_leader_start(f.leader), 0);
        f.timer_error = -ENOMEM;
        reply(&f, 200,
              "{\"metadata\":{\"name\":\"my-lease\",\"resourceVersion\":\"7\"},"
              "\"spec\":{\"holderIdentity\":\"other\",\"leaseDurationSeconds\":1,"
              "\"leaseTransitions\":4}}");
        capture_end();
        assert_int_equal(koc__leader_get_fsm(f.leader)->state, LEADER_FSM_STOPPED);
        assert_false(f.pending);
        assert_false(f.watching);
        assert_int_equal(captured_count("E leader: cannot arm the timer of lease=ns1/my-lease"), 1);
        assert_non_null(strstr(captured, strerror(ENOMEM)));
        /* It may start again once timers work. */
        f.timer_error = 0;
        assert_int_equal(koc_leader_start(f.leader), 0);
        assert_true(f.pending);
        teardown_fake(&f);
}

/* The blocking helpers return the error that stopped the elector instead of
 * waiting (forever, or for their timeout) for leadership that cannot come. */
static void test_run_until_leading_returns_timer_error(void **state) {
        fake f;
        sd_event *event = NULL;
        setup_fake(&f);
        assert_int_equal(sd_event_new(&event), 0);
        koc__leader_set_event(f.leader, event);
        f.fail_next = true; /* the GET fails at once: a retry timer is needed */
        f.timer_error = -ENOMEM;
        assert_int_equal(koc_leader_run_until_leading(f.leader, 5 * SEC), -ENOMEM);
        assert_int_equal(koc__leader_get_fsm(f.leader)->state, LEADER_FSM_STOPPED);
        teardown_fake(&f);
        sd_event_unref(event);
}

/* An unreachable server is said at warn (the default level shows it), once
 * and then at most once a minute, and its recovery at info. */
static void test_unreachable_server_is_logged_rate_limited(void **state) {
        fake f;
        setup_fake(&f);
        capture_start();
        assert_int_equal(koc_leader_start(f.leader), 0);
        reply_error(&f, -ECONNREFUSED);
        assert_int_equal(captured_count("W leader: cannot reach"), 1);
        assert_non_null(strstr(captured, strerror(ECONNREFUSED)));
        assert_non_null(strstr(captured, "lease=ns1/my-lease"));
        /* Retries within the minute: nothing more. */
        for (int i = 0; i < 5; i++) {
                fire(&f);
                assert_string_equal(f.method, "GET");
                reply_error(&f, -ECONNREFUSED);
        }
        assert_int_equal(captured_count("cannot reach"), 1);
        /* A minute later it is said again. */
        f.now += 61 * SEC;
        fire(&f);
        reply_error(&f, -ECONNREFUSED);
        assert_int_equal(captured_count("cannot reach"), 2);
        /* Back: one info line. */
        fire(&f);
        reply(&f, 404, "{\"kind\":\"Status\",\"code\":404}");
        capture_end();
        assert_int_equal(captured_count("I leader: the API server is reachable again"), 1);
        assert_int_equal(captured_count("cannot reach"), 2);
        teardown_fake(&f);
}

/* 401 means the credentials were rejected, 403 means RBAC: each its own
 * message. */
static void test_unauthorized_and_forbidden_are_told_apart(void **state) {
        fake f;
        setup_fake(&f);
        capture_start();
        assert_int_equal(koc_leader_start(f.leader), 0);
        reply(&f, 401, "{\"kind\":\"Status\",\"code\":401,\"reason\":\"Unauthorized\"}");
        assert_int_equal(captured_count("rejected the credentials (HTTP 401)"), 1);
        assert_int_equal(captured_count("needs get, create and update"), 0);
        fire(&f);
        reply(&f, 401, "{\"kind\":\"Status\",\"code\":401,\"reason\":\"Unauthorized\"}");
        assert_int_equal(captured_count("HTTP 401"), 1); /* once */
        fire(&f);
        reply(&f, 403, "{\"kind\":\"Status\",\"code\":403,\"reason\":\"Forbidden\"}");
        capture_end();
        assert_int_equal(captured_count("W leader: get of lease=ns1/my-lease forbidden (HTTP 403)"),
                         1);
        assert_int_equal(captured_count("needs get, create and update on leases"), 1);
        assert_int_equal(captured_count("rejected the credentials"), 1);
        teardown_fake(&f);
}

/* Only a step-down that wrote the release says it released the Lease. */
static void test_standby_step_down_does_not_say_released(void **state) {
        fake f;
        setup_fake(&f);
        assert_int_equal(koc_leader_start(f.leader), 0);
        reply(&f, 200,
              "{\"metadata\":{\"name\":\"my-lease\",\"resourceVersion\":\"7\"},"
              "\"spec\":{\"holderIdentity\":\"other\",\"leaseDurationSeconds\":1,"
              "\"leaseTransitions\":4}}");
        capture_start();
        f.done_result = 1;
        assert_int_equal(koc_leader_step_down(f.leader, on_done, &f), 0);
        capture_end();
        assert_int_equal(f.done_result, 0);
        assert_int_equal(captured_count("released"), 0);
        teardown_fake(&f);

        /* The leader's does. */
        setup_fake(&f);
        become_leader(&f);
        capture_start();
        assert_int_equal(koc_leader_step_down(f.leader, on_done, &f), 0);
        char *s = stored(&f, "130");
        reply(&f, 200, s);
        free(s);
        capture_end();
        assert_int_equal(captured_count("I leader: released lease=ns1/my-lease identity=me"), 1);
        teardown_fake(&f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_state_reads_at_read_time),
                cmocka_unit_test(test_frozen_process_is_not_leader),
                cmocka_unit_test(test_renewal_is_one_put_with_rv),
                cmocka_unit_test(test_holder_changed_state_false_first),
                cmocka_unit_test(test_step_down_order),
                cmocka_unit_test(test_step_down_after_stop_in_callback_completes),
                cmocka_unit_test(test_stop_and_unref_in_callback),
                cmocka_unit_test(test_state_outlives_leader),
                cmocka_unit_test(test_watch_release_takeover),
                cmocka_unit_test(test_watch_resumed_by_transport),
                cmocka_unit_test(test_silent_watch_restarted),
                cmocka_unit_test(test_request_that_cannot_start),
                cmocka_unit_test(test_reason_names),
                cmocka_unit_test(test_metrics),
                cmocka_unit_test(test_new_rejects_bad_config),
                cmocka_unit_test(test_stale_answer_is_ignored),
                cmocka_unit_test(test_nested_stops_do_not_drop_step_down),
                cmocka_unit_test(test_failing_timer_stops_elector),
                cmocka_unit_test(test_run_until_leading_returns_timer_error),
                cmocka_unit_test(test_unreachable_server_is_logged_rate_limited),
                cmocka_unit_test(test_unauthorized_and_forbidden_are_told_apart),
                cmocka_unit_test(test_standby_step_down_does_not_say_released),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
