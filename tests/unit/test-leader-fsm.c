/* SPDX-License-Identifier: Apache-2.0 */
/* The leader election state machine, driven with an injected clock: every
 * transition and the invariants of DESIGN.md. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "koc/time.h"
#include "leader/fsm.h"

#define MS KOC_USEC_PER_MSEC
#define SEC KOC_USEC_PER_SEC
#define ME "pod-a"

typedef struct t {
        leader_fsm f;
        uint64_t now;
        uint64_t wall;
} t;

static uint64_t fixed_random_value;
static uint64_t fixed_random(uint64_t n) {
        return fixed_random_value < n ? fixed_random_value : n - 1;
}

static void setup_with(t *x, uint64_t jitter, uint64_t (*random)(uint64_t)) {
        memset(x, 0, sizeof *x);
        koc__leader_fsm_init(&x->f, &(leader_fsm_config){
                                            .identity = ME,
                                            .lease_duration = 1 * SEC,
                                            .renew_deadline = 600 * MS,
                                            .retry_period = 100 * MS,
                                            .observe_timeout = 5 * SEC,
                                            .jitter_max = jitter,
                                            .random = random,
                                    });
        x->now = 1000 * SEC;
        x->wall = UINT64_C(1795000000) * SEC; /* 2026-11-18 */
}

static void setup(t *x) {
        setup_with(x, 0, NULL);
}

static void step(t *x, leader_event ev) {
        koc__leader_fsm_step(&x->f, &ev, x->now, x->wall);
}

static void advance(t *x, uint64_t usec) {
        x->now += usec;
        x->wall += usec;
}

static const leader_action *find(t *x, enum leader_action_type type) {
        for (size_t i = 0; i < x->f.n_actions; i++)
                if (x->f.actions[i].type == type)
                        return &x->f.actions[i];
        return NULL;
}

static int position(t *x, enum leader_action_type type) {
        for (size_t i = 0; i < x->f.n_actions; i++)
                if (x->f.actions[i].type == type)
                        return (int)i;
        return -1;
}

static size_t count_requests(t *x) {
        size_t n = 0;
        for (size_t i = 0; i < x->f.n_actions; i++)
                if (x->f.actions[i].type == LEADER_ACT_GET ||
                    x->f.actions[i].type == LEADER_ACT_CREATE ||
                    x->f.actions[i].type == LEADER_ACT_UPDATE)
                        n++;
        return n;
}

static lease_record rec(const char *holder, const char *rv, uint64_t transitions) {
        lease_record r = {0};
        snprintf(r.holder, sizeof r.holder, "%s", holder);
        snprintf(r.resource_version, sizeof r.resource_version, "%s", rv);
        r.lease_duration_seconds = 1;
        r.lease_transitions = transitions;
        r.acquire_time = r.renew_time = UINT64_C(1700000000) * SEC; /* long ago: ignored */
        return r;
}

static void answer(t *x, long status, const lease_record *r) {
        step(x,
             (leader_event){
                     .type = LEADER_EV_ANSWER, .seq = x->f.req_seq, .status = status, .record = r});
}

static void answer_error(t *x, int error) {
        step(x, (leader_event){.type = LEADER_EV_ANSWER, .seq = x->f.req_seq, .error = error});
}

/* Echo of a write: what the server would store (new RV). */
static lease_record echo(const leader_action *a, const char *rv) {
        lease_record r = a->record;
        snprintf(r.resource_version, sizeof r.resource_version, "%s", rv);
        return r;
}

static void fire_timer(t *x) {
        step(x, (leader_event){.type = LEADER_EV_TIMER});
}

/* Brings x to LEADING with term `transitions` (via GET 404 + create). */
static void make_leader(t *x) {
        step(x, (leader_event){.type = LEADER_EV_START});
        answer(x, 404, NULL);
        const leader_action *c = find(x, LEADER_ACT_CREATE);
        assert_non_null(c);
        lease_record r = echo(c, "10");
        advance(x, 2 * MS);
        answer(x, 201, &r);
        assert_int_equal(x->f.state, LEADER_FSM_LEADING);
}

/* --- start, create, acquire ----------------------------------------------------- */

static void test_start_gets_first(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        assert_int_equal(x.f.state, LEADER_FSM_STANDBY);
        assert_int_equal(x.f.n_actions, 1);
        assert_int_equal(x.f.actions[0].type, LEADER_ACT_GET);
        assert_int_equal(koc__leader_fsm_valid_until(&x.f), 0);
}

static void test_missing_lease_is_created(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        answer(&x, 404, NULL);
        const leader_action *c = find(&x, LEADER_ACT_CREATE);
        assert_non_null(c);
        assert_string_equal(c->record.holder, ME);
        assert_int_equal(c->record.lease_transitions, 0);
        assert_int_equal(c->record.lease_duration_seconds, 1);
        assert_int_equal(c->record.acquire_time, x.wall);
        assert_int_equal(c->record.renew_time, x.wall);
        assert_int_equal(x.f.state, LEADER_FSM_ACQUIRING);
        /* The follower's watch starts once the first answer came. */
        assert_non_null(find(&x, LEADER_ACT_WATCH_START));
        assert_null(find(&x, LEADER_ACT_STARTED));
}

static void test_leads_only_after_write_names_us(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        answer(&x, 404, NULL);
        uint64_t sent = x.now;
        const leader_action *c = find(&x, LEADER_ACT_CREATE);
        lease_record r = echo(c, "5");
        advance(&x, 3 * MS);
        answer(&x, 201, &r);
        const leader_action *s = find(&x, LEADER_ACT_STARTED);
        assert_non_null(s);
        assert_int_equal(s->term, 0);
        assert_int_equal(x.f.state, LEADER_FSM_LEADING);
        /* Invariant 3: validity is anchored at the send time. */
        assert_int_equal(koc__leader_fsm_valid_until(&x.f), sent + 600 * MS);
}

static void test_write_answer_naming_other_does_not_lead(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        answer(&x, 404, NULL);
        lease_record other = rec("pod-b", "6", 0);
        answer(&x, 201, &other);
        assert_null(find(&x, LEADER_ACT_STARTED));
        assert_int_not_equal(x.f.state, LEADER_FSM_LEADING);
        assert_int_equal(koc__leader_fsm_valid_until(&x.f), 0);
}

static void test_write_2xx_without_body_does_not_lead(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        answer(&x, 404, NULL);
        answer(&x, 200, NULL);
        assert_null(find(&x, LEADER_ACT_STARTED));
        assert_int_equal(x.f.state, LEADER_FSM_STANDBY);
}

static void test_create_conflict_reads_again(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        answer(&x, 404, NULL);
        answer(&x, 409, NULL); /* AlreadyExists: someone created it first */
        assert_non_null(find(&x, LEADER_ACT_GET));
        assert_null(find(&x, LEADER_ACT_STARTED));
        lease_record other = rec("pod-b", "7", 0);
        answer(&x, 200, &other);
        assert_int_equal(count_requests(&x), 0); /* held and fresh: wait */
        assert_non_null(find(&x, LEADER_ACT_TIMER));
        assert_int_equal(x.f.act_at, x.now + 1 * SEC);
}

static void test_acquire_answer_after_deadline_does_not_lead(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        answer(&x, 404, NULL);
        lease_record r = echo(find(&x, LEADER_ACT_CREATE), "5");
        advance(&x, 700 * MS); /* longer than renew_deadline */
        answer(&x, 201, &r);
        assert_null(find(&x, LEADER_ACT_STARTED));
        /* The record is ours: it re-confirms at once with an update. */
        const leader_action *u = find(&x, LEADER_ACT_UPDATE);
        assert_non_null(u);
        assert_string_equal(u->record.resource_version, "5");
}

/* --- followers: expiry, skew, release --------------------------------------------- */

static void test_expiry_from_observed_time_not_record(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        /* renewTime far in the past by our wall clock: skew must not matter. */
        lease_record other = rec("pod-b", "20", 3);
        other.renew_time = x.wall - 3600 * SEC;
        answer(&x, 200, &other);
        assert_int_equal(count_requests(&x), 0);
        uint64_t expiry = x.now + 1 * SEC;
        assert_int_equal(x.f.act_at, expiry);

        advance(&x, 1 * SEC - 1);
        fire_timer(&x);
        assert_int_equal(count_requests(&x), 0);
        advance(&x, 1);
        fire_timer(&x);
        const leader_action *u = find(&x, LEADER_ACT_UPDATE);
        assert_non_null(u);
        assert_int_equal(u->req, LEASE_REQ_ACQUIRE);
        assert_string_equal(u->record.holder, ME);
        assert_string_equal(u->record.resource_version, "20");
        assert_int_equal(u->record.lease_transitions, 4); /* holder changes: +1 */
        assert_int_equal(x.f.state, LEADER_FSM_ACQUIRING);
}

static void test_record_renew_in_future_does_not_delay(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        lease_record other = rec("pod-b", "20", 0);
        other.renew_time = x.wall + 3600 * SEC; /* a writer whose clock runs ahead */
        other.lease_duration_seconds = 2;
        answer(&x, 200, &other);
        /* Uses the record's leaseDurationSeconds from our observation time. */
        assert_int_equal(x.f.act_at, x.now + 2 * SEC);
}

static void test_renewals_seen_push_expiry(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        lease_record other = rec("pod-b", "20", 0);
        answer(&x, 200, &other);
        advance(&x, 800 * MS);
        lease_record renewed = rec("pod-b", "21", 0);
        renewed.renew_time += 1;
        step(&x, (leader_event){.type = LEADER_EV_WATCH_OBJECT, .record = &renewed});
        assert_int_equal(x.f.act_at, x.now + 1 * SEC);
        advance(&x, 300 * MS);
        fire_timer(&x); /* the old expiry would be due now */
        assert_int_equal(count_requests(&x), 0);
}

static void test_empty_holder_is_free(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        lease_record released = rec("", "30", 5);
        answer(&x, 200, &released);
        const leader_action *u = find(&x, LEADER_ACT_UPDATE);
        assert_non_null(u);
        assert_int_equal(u->record.lease_transitions, 6);
        assert_string_equal(u->record.resource_version, "30");
}

/* The acquire write was stored, but the watch has already shown that the
 * Lease was deleted and re-created by another replica since: the answer is
 * stale and must not make us the leader (nor may a renewal then overwrite the
 * other holder's record with its resourceVersion). */
static void test_stale_acquire_answer_after_recreation_does_not_lead(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        lease_record released = rec("", "30", 5);
        answer(&x, 200, &released);
        const leader_action *u = find(&x, LEADER_ACT_UPDATE);
        assert_non_null(u);
        lease_record ours = echo(u, "31");
        step(&x, (leader_event){.type = LEADER_EV_WATCH_DELETED, .resource_version = "32"});
        lease_record other = rec("pod-b", "33", 0);
        step(&x, (leader_event){.type = LEADER_EV_WATCH_OBJECT, .record = &other});
        answer(&x, 200, &ours);
        assert_null(find(&x, LEADER_ACT_STARTED));
        assert_int_not_equal(x.f.state, LEADER_FSM_LEADING);
        assert_int_equal(koc__leader_fsm_valid_until(&x.f), 0);
        assert_string_equal(x.f.observed.holder, "pod-b");
}

/* Same, when the answer comes after the deletion only: the Lease no longer
 * exists, so a follower creates it and leads; we must not lead too. */
static void test_stale_acquire_answer_after_delete_does_not_lead(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        lease_record released = rec("", "30", 5);
        answer(&x, 200, &released);
        const leader_action *u = find(&x, LEADER_ACT_UPDATE);
        assert_non_null(u);
        lease_record ours = echo(u, "31");
        step(&x, (leader_event){.type = LEADER_EV_WATCH_DELETED, .resource_version = "32"});
        answer(&x, 200, &ours);
        assert_null(find(&x, LEADER_ACT_STARTED));
        assert_int_not_equal(x.f.state, LEADER_FSM_LEADING);
        assert_int_equal(koc__leader_fsm_valid_until(&x.f), 0);
}

static void test_release_seen_on_watch_acts_after_jitter(void **state) {
        t x;
        setup_with(&x, 5 * MS, fixed_random);
        fixed_random_value = 3 * MS;
        step(&x, (leader_event){.type = LEADER_EV_START});
        lease_record other = rec("pod-b", "40", 1);
        answer(&x, 200, &other);
        assert_int_equal(count_requests(&x), 0);
        advance(&x, 200 * MS);
        lease_record released = rec("", "41", 1);
        step(&x, (leader_event){.type = LEADER_EV_WATCH_OBJECT, .record = &released});
        assert_int_equal(count_requests(&x), 0);
        const leader_action *tm = find(&x, LEADER_ACT_TIMER);
        assert_non_null(tm);
        assert_int_equal(tm->at, x.now + 3 * MS);
        assert_non_null(find(&x, LEADER_ACT_NEW_LEADER));
        advance(&x, 3 * MS);
        fire_timer(&x);
        const leader_action *u = find(&x, LEADER_ACT_UPDATE);
        assert_non_null(u);
        assert_string_equal(u->record.resource_version, "41");
        assert_int_equal(u->record.lease_transitions, 2);
}

static void test_own_record_at_start_is_retaken_without_transition(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        lease_record mine = rec(ME, "50", 7);
        answer(&x, 200, &mine);
        const leader_action *u = find(&x, LEADER_ACT_UPDATE);
        assert_non_null(u);
        assert_int_equal(u->record.lease_transitions, 7);
        assert_int_equal(u->record.acquire_time, mine.acquire_time);
        lease_record r = echo(u, "51");
        answer(&x, 200, &r);
        assert_int_equal(find(&x, LEADER_ACT_STARTED)->term, 7);
}

static void test_new_leader_reported_on_holder_change_only(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        lease_record other = rec("pod-b", "20", 0);
        answer(&x, 200, &other);
        const leader_action *n = find(&x, LEADER_ACT_NEW_LEADER);
        assert_non_null(n);
        assert_string_equal(n->record.holder, "pod-b");
        lease_record renewed = rec("pod-b", "21", 0);
        step(&x, (leader_event){.type = LEADER_EV_WATCH_OBJECT, .record = &renewed});
        assert_null(find(&x, LEADER_ACT_NEW_LEADER));
        lease_record c = rec("pod-c", "22", 1);
        step(&x, (leader_event){.type = LEADER_EV_WATCH_OBJECT, .record = &c});
        assert_string_equal(find(&x, LEADER_ACT_NEW_LEADER)->record.holder, "pod-c");
}

static void test_stale_watch_event_is_ignored(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        lease_record other = rec("pod-b", "20", 0);
        answer(&x, 200, &other);
        uint64_t at = x.f.act_at, observed_at = x.f.observed_at;
        assert_true(at > x.now);
        advance(&x, 500 * MS);
        lease_record old = rec("pod-b", "19", 0);
        old.renew_time -= 1;
        step(&x, (leader_event){.type = LEADER_EV_WATCH_OBJECT, .record = &old});
        assert_int_equal(x.f.act_at, at); /* expiry unchanged */
        assert_int_equal(x.f.observed_at, observed_at);
        assert_string_equal(x.f.observed.resource_version, "20");
}

static void test_acquire_failure_retries_with_get(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        lease_record released = rec("", "30", 0);
        answer(&x, 200, &released);
        assert_non_null(find(&x, LEADER_ACT_UPDATE));
        answer(&x, 503, NULL);
        assert_int_equal(x.f.state, LEADER_FSM_STANDBY);
        assert_int_equal(count_requests(&x), 0);
        const leader_action *tm = find(&x, LEADER_ACT_TIMER);
        assert_non_null(tm);
        assert_true(tm->at >= x.now + 100 * MS);
        x.now = tm->at;
        fire_timer(&x);
        assert_non_null(find(&x, LEADER_ACT_GET));
}

static void test_late_answer_of_old_request_ignored(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        uint64_t old_seq = x.f.req_seq;
        answer(&x, 404, NULL);
        lease_record mine = rec(ME, "9", 0);
        step(&x, (leader_event){
                         .type = LEADER_EV_ANSWER, .seq = old_seq, .status = 200, .record = &mine});
        assert_null(find(&x, LEADER_ACT_STARTED));
        assert_int_equal(x.f.state, LEADER_FSM_ACQUIRING);
}

/* --- leader: renewals ------------------------------------------------------------- */

static void test_leader_renews_with_one_put(void **state) {
        t x;
        setup(&x);
        make_leader(&x);
        const leader_action *tm = find(&x, LEADER_ACT_TIMER);
        assert_non_null(tm);
        uint64_t sent = x.f.last_ok_send;
        assert_int_equal(tm->at, sent + 100 * MS);
        x.now = tm->at;
        fire_timer(&x);
        assert_int_equal(count_requests(&x), 1);
        const leader_action *u = find(&x, LEADER_ACT_UPDATE);
        assert_non_null(u);
        assert_int_equal(u->req, LEASE_REQ_RENEW);
        assert_string_equal(u->record.resource_version, "10"); /* from the last answer */
        assert_string_equal(u->record.holder, ME);
        assert_int_equal(u->record.lease_transitions, 0);
        assert_int_equal(u->record.renew_time, x.wall);
        uint64_t renew_sent = x.now;
        lease_record r = echo(u, "11");
        advance(&x, 5 * MS);
        answer(&x, 200, &r);
        assert_int_equal(koc__leader_fsm_valid_until(&x.f), renew_sent + 600 * MS);
        assert_int_equal(find(&x, LEADER_ACT_TIMER)->at, renew_sent + 100 * MS);
        assert_null(find(&x, LEADER_ACT_STOPPED));
}

static void test_transient_errors_do_not_step_down_before_deadline(void **state) {
        t x;
        setup(&x);
        make_leader(&x);
        uint64_t deadline = koc__leader_fsm_valid_until(&x.f);
        int errors[] = {503, 0, 409, 500, 0};
        for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++) {
                x.now = x.f.timer_at;
                fire_timer(&x);
                assert_int_equal(x.f.state, LEADER_FSM_LEADING);
                const leader_action *u = find(&x, LEADER_ACT_UPDATE);
                assert_non_null(u);
                advance(&x, 10 * MS);
                if (errors[i] == 0) {
                        answer_error(&x, -ETIMEDOUT);
                } else if (errors[i] == 409) {
                        answer(&x, 409, NULL);
                        assert_non_null(find(&x, LEADER_ACT_GET));
                        lease_record mine = rec(ME, "12", 0);
                        answer(&x, 200, &mine); /* still ours: renew at once, new RV */
                        const leader_action *again = find(&x, LEADER_ACT_UPDATE);
                        assert_non_null(again);
                        assert_string_equal(again->record.resource_version, "12");
                        answer(&x, 503, NULL);
                } else {
                        answer(&x, errors[i], NULL);
                }
                assert_null(find(&x, LEADER_ACT_STOPPED));
                assert_int_equal(x.f.state, LEADER_FSM_LEADING);
        }
        assert_true(x.now < deadline);
        assert_true(x.f.n_renew_errors >= 5);
}

static void test_renew_deadline_exceeded(void **state) {
        t x;
        setup(&x);
        make_leader(&x);
        uint64_t deadline = koc__leader_fsm_valid_until(&x.f);
        for (int i = 0; i < 100 && x.f.state == LEADER_FSM_LEADING; i++) {
                x.now = x.f.timer_at;
                fire_timer(&x);
                if (x.f.state != LEADER_FSM_LEADING)
                        break;
                if (x.f.req == LEASE_REQ_RENEW) {
                        advance(&x, 1 * MS);
                        answer(&x, 503, NULL);
                }
        }
        assert_int_equal(x.f.state, LEADER_FSM_STANDBY);
        assert_true(x.now >= deadline);
        const leader_action *s = find(&x, LEADER_ACT_STOPPED);
        assert_non_null(s);
        assert_int_equal(s->reason, KOC_LEADER_REASON_RENEW_DEADLINE_EXCEEDED);
        assert_int_equal(koc__leader_fsm_valid_until(&x.f), 0);
}

static void test_hung_renewal_times_out_at_deadline(void **state) {
        t x;
        setup(&x);
        make_leader(&x);
        x.now = x.f.timer_at;
        fire_timer(&x);
        const leader_action *u = find(&x, LEADER_ACT_UPDATE);
        /* The request may take until the deadline, no longer. */
        assert_int_equal(u->timeout, koc__leader_fsm_valid_until(&x.f) - x.now);
        /* No timer for the renewal while it is in flight, only the deadline. */
        assert_int_equal(x.f.timer_at, koc__leader_fsm_valid_until(&x.f));
        x.now = x.f.timer_at;
        fire_timer(&x);
        assert_int_equal(find(&x, LEADER_ACT_STOPPED)->reason,
                         KOC_LEADER_REASON_RENEW_DEADLINE_EXCEEDED);
        assert_true(position(&x, LEADER_ACT_STOPPED) < position(&x, LEADER_ACT_CANCEL_REQUEST));
}

static void test_conflict_then_holder_changed(void **state) {
        t x;
        setup(&x);
        make_leader(&x);
        x.now = x.f.timer_at;
        fire_timer(&x);
        answer(&x, 409, NULL);
        assert_int_equal(x.f.state, LEADER_FSM_LEADING);
        lease_record other = rec("pod-b", "30", 1);
        answer(&x, 200, &other);
        const leader_action *s = find(&x, LEADER_ACT_STOPPED);
        assert_non_null(s);
        assert_int_equal(s->reason, KOC_LEADER_REASON_HOLDER_CHANGED);
        assert_int_equal(x.f.state, LEADER_FSM_STANDBY);
        assert_int_equal(koc__leader_fsm_valid_until(&x.f), 0);
        /* Now a follower of pod-b: waits for its expiry. */
        assert_int_equal(count_requests(&x), 0);
}

static void test_watch_shows_takeover(void **state) {
        t x;
        setup(&x);
        make_leader(&x);
        lease_record lagging = rec(ME, "9", 0); /* older than our write's answer */
        step(&x, (leader_event){.type = LEADER_EV_WATCH_OBJECT, .record = &lagging});
        assert_null(find(&x, LEADER_ACT_STOPPED));
        lease_record other = rec("pod-b", "31", 1);
        step(&x, (leader_event){.type = LEADER_EV_WATCH_OBJECT, .record = &other});
        assert_int_equal(find(&x, LEADER_ACT_STOPPED)->reason, KOC_LEADER_REASON_HOLDER_CHANGED);
}

static void test_lease_deleted_while_leading(void **state) {
        t x;
        setup(&x);
        make_leader(&x);
        step(&x, (leader_event){.type = LEADER_EV_WATCH_DELETED});
        assert_int_equal(find(&x, LEADER_ACT_STOPPED)->reason, KOC_LEADER_REASON_LEASE_DELETED);
        /* Then competes again: the Lease is missing, so create it. */
        assert_non_null(find(&x, LEADER_ACT_CREATE));
}

static void test_foreign_write_with_our_identity(void **state) {
        t x;
        setup(&x);
        make_leader(&x);
        x.now = x.f.timer_at;
        fire_timer(&x);
        const leader_action *u = find(&x, LEADER_ACT_UPDATE);
        /* Our own renewal seen on the watch before its answer: fine. */
        lease_record ours = echo(u, "11");
        step(&x, (leader_event){.type = LEADER_EV_WATCH_OBJECT, .record = &ours});
        assert_null(find(&x, LEADER_ACT_FOREIGN_WRITE));
        answer(&x, 200, &ours);
        /* A record naming us that we never wrote: reported, once. */
        lease_record twin = ours;
        twin.renew_time += 12345;
        snprintf(twin.resource_version, sizeof twin.resource_version, "12");
        step(&x, (leader_event){.type = LEADER_EV_WATCH_OBJECT, .record = &twin});
        assert_non_null(find(&x, LEADER_ACT_FOREIGN_WRITE));
        assert_int_equal(x.f.state, LEADER_FSM_LEADING);
        twin.renew_time += 1;
        snprintf(twin.resource_version, sizeof twin.resource_version, "13");
        step(&x, (leader_event){.type = LEADER_EV_WATCH_OBJECT, .record = &twin});
        assert_null(find(&x, LEADER_ACT_FOREIGN_WRITE));
}

static void test_transitions_only_on_holder_change(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        lease_record other = rec("pod-b", "20", 4);
        answer(&x, 200, &other);
        advance(&x, 1 * SEC);
        fire_timer(&x);
        const leader_action *u = find(&x, LEADER_ACT_UPDATE);
        assert_int_equal(u->record.lease_transitions, 5);
        lease_record r = echo(u, "21");
        answer(&x, 200, &r);
        assert_int_equal(find(&x, LEADER_ACT_STARTED)->term, 5);
        for (int i = 0; i < 3; i++) {
                x.now = x.f.timer_at;
                fire_timer(&x);
                u = find(&x, LEADER_ACT_UPDATE);
                assert_int_equal(u->record.lease_transitions, 5);
                assert_int_equal(u->record.acquire_time, r.acquire_time);
                char rv[8];
                snprintf(rv, sizeof rv, "%d", 22 + i);
                lease_record rr = echo(u, rv);
                answer(&x, 200, &rr);
        }
}

static void test_after_deadline_loss_own_record_waits(void **state) {
        t x;
        setup(&x);
        make_leader(&x);
        for (int i = 0; i < 100 && x.f.state == LEADER_FSM_LEADING; i++) {
                x.now = x.f.timer_at;
                fire_timer(&x);
                if (x.f.req == LEASE_REQ_RENEW)
                        answer_error(&x, -ECONNREFUSED);
        }
        assert_int_equal(x.f.state, LEADER_FSM_STANDBY);
        assert_int_equal(count_requests(&x), 0);
        /* The record still names us, but others get their turn first: our
         * retake waits for expiry + retry_period from the last observation. */
        assert_int_equal(x.f.act_at, x.f.observed_at + 1 * SEC + 100 * MS);
}

/* --- step-down -------------------------------------------------------------------- */

static void test_step_down_releases_like_client_go(void **state) {
        t x;
        setup(&x);
        make_leader(&x);
        step(&x, (leader_event){.type = LEADER_EV_STEP_DOWN});
        assert_int_equal(x.f.state, LEADER_FSM_RELEASING);
        assert_int_equal(koc__leader_fsm_valid_until(&x.f), 0);
        assert_int_equal(position(&x, LEADER_ACT_STOPPED), 0);
        assert_int_equal(find(&x, LEADER_ACT_STOPPED)->reason, KOC_LEADER_REASON_RELEASED);
        const leader_action *u = find(&x, LEADER_ACT_UPDATE);
        assert_non_null(u);
        assert_int_equal(u->req, LEASE_REQ_RELEASE);
        assert_string_equal(u->record.holder, "");
        assert_int_equal(u->record.lease_duration_seconds, 1);
        assert_int_equal(u->record.lease_transitions, 0);
        assert_string_equal(u->record.resource_version, "10");
        lease_record r = echo(u, "11");
        answer(&x, 200, &r);
        const leader_action *d = find(&x, LEADER_ACT_DONE);
        assert_non_null(d);
        assert_int_equal(d->result, 0);
        assert_int_equal(x.f.state, LEADER_FSM_STOPPED);
        assert_non_null(find(&x, LEADER_ACT_WATCH_STOP));
}

static void test_release_retried_on_conflict(void **state) {
        t x;
        setup(&x);
        make_leader(&x);
        /* A renewal is in flight when the step-down comes. */
        x.now = x.f.timer_at;
        fire_timer(&x);
        step(&x, (leader_event){.type = LEADER_EV_STEP_DOWN});
        assert_non_null(find(&x, LEADER_ACT_CANCEL_REQUEST));
        assert_non_null(find(&x, LEADER_ACT_UPDATE));
        answer(&x, 409, NULL); /* the renewal landed: RV moved */
        assert_non_null(find(&x, LEADER_ACT_GET));
        lease_record mine = rec(ME, "11", 0);
        answer(&x, 200, &mine);
        const leader_action *u = find(&x, LEADER_ACT_UPDATE);
        assert_non_null(u);
        assert_string_equal(u->record.resource_version, "11");
        assert_string_equal(u->record.holder, "");
        lease_record r = echo(u, "12");
        answer(&x, 200, &r);
        assert_int_equal(find(&x, LEADER_ACT_DONE)->result, 0);
}

static void test_release_stops_when_someone_else_holds(void **state) {
        t x;
        setup(&x);
        make_leader(&x);
        step(&x, (leader_event){.type = LEADER_EV_STEP_DOWN});
        answer(&x, 409, NULL);
        lease_record other = rec("pod-b", "15", 1);
        answer(&x, 200, &other);
        assert_int_equal(find(&x, LEADER_ACT_DONE)->result, -ESTALE);
        assert_int_equal(count_requests(&x), 0);
        assert_int_equal(x.f.state, LEADER_FSM_STOPPED);
}

static void test_release_gives_up_at_deadline(void **state) {
        t x;
        setup(&x);
        make_leader(&x);
        step(&x, (leader_event){.type = LEADER_EV_STEP_DOWN});
        int n = 0;
        for (; n < 100 && x.f.state == LEADER_FSM_RELEASING; n++) {
                if (x.f.req == LEASE_REQ_RELEASE) {
                        advance(&x, 1 * MS);
                        answer(&x, 503, NULL);
                } else {
                        x.now = x.f.timer_at;
                        fire_timer(&x);
                }
        }
        assert_true(n > 3); /* it retried */
        assert_int_equal(x.f.state, LEADER_FSM_STOPPED);
        assert_int_equal(find(&x, LEADER_ACT_DONE)->result, -ETIMEDOUT);
}

static void test_step_down_while_acquiring(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        answer(&x, 404, NULL);
        lease_record r = echo(find(&x, LEADER_ACT_CREATE), "3");
        step(&x, (leader_event){.type = LEADER_EV_STEP_DOWN});
        assert_int_equal(count_requests(&x), 0);
        answer(&x, 201, &r);
        /* Never reported as leading; the record is released at once. */
        assert_null(find(&x, LEADER_ACT_STARTED));
        assert_null(find(&x, LEADER_ACT_STOPPED));
        const leader_action *u = find(&x, LEADER_ACT_UPDATE);
        assert_non_null(u);
        assert_string_equal(u->record.holder, "");
        lease_record rr = echo(u, "4");
        answer(&x, 200, &rr);
        assert_int_equal(find(&x, LEADER_ACT_DONE)->result, 0);
}

static void test_step_down_while_acquiring_late_answer(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        answer(&x, 404, NULL);
        lease_record r = echo(find(&x, LEADER_ACT_CREATE), "3");
        step(&x, (leader_event){.type = LEADER_EV_STEP_DOWN});
        advance(&x, 700 * MS); /* answered after its validity ran out */
        answer(&x, 201, &r);
        /* Still ours in the record: released, not left to expire. */
        const leader_action *u = find(&x, LEADER_ACT_UPDATE);
        assert_non_null(u);
        assert_int_equal(u->req, LEASE_REQ_RELEASE);
        assert_null(find(&x, LEADER_ACT_STARTED));
}

static void test_step_down_as_follower(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        lease_record other = rec("pod-b", "20", 0);
        answer(&x, 200, &other);
        step(&x, (leader_event){.type = LEADER_EV_STEP_DOWN});
        assert_int_equal(find(&x, LEADER_ACT_DONE)->result, 0);
        assert_null(find(&x, LEADER_ACT_STOPPED));
        assert_int_equal(x.f.state, LEADER_FSM_STOPPED);
}

static void test_stop_cancels(void **state) {
        t x;
        setup(&x);
        make_leader(&x);
        x.now = x.f.timer_at;
        fire_timer(&x); /* renewal in flight */
        step(&x, (leader_event){.type = LEADER_EV_STOP});
        assert_int_equal(find(&x, LEADER_ACT_STOPPED)->reason, KOC_LEADER_REASON_CANCELLED);
        assert_non_null(find(&x, LEADER_ACT_CANCEL_REQUEST));
        assert_non_null(find(&x, LEADER_ACT_WATCH_STOP));
        assert_int_equal(find(&x, LEADER_ACT_TIMER)->at, 0);
        assert_int_equal(count_requests(&x), 0);
        assert_int_equal(x.f.state, LEADER_FSM_STOPPED);
        assert_int_equal(koc__leader_fsm_valid_until(&x.f), 0);
}

/* --- watch, polling, observe timeout ---------------------------------------------- */

static void test_watch_forbidden_falls_back_to_polling(void **state) {
        t x;
        setup_with(&x, 0, fixed_random);
        fixed_random_value = 50 * MS;
        step(&x, (leader_event){.type = LEADER_EV_START});
        lease_record other = rec("pod-b", "20", 0);
        answer(&x, 200, &other);
        assert_non_null(find(&x, LEADER_ACT_WATCH_START));
        step(&x, (leader_event){.type = LEADER_EV_WATCH_CLOSED, .status = 403});
        assert_false(x.f.can_watch);
        /* client-go's jitter: retry_period + rand * 1.2 * retry_period. */
        const leader_action *tm = find(&x, LEADER_ACT_TIMER);
        assert_non_null(tm);
        assert_int_equal(tm->at, x.now + 150 * MS);
        int gets = 0;
        for (int i = 0; i < 4; i++) {
                x.now = x.f.timer_at;
                fire_timer(&x);
                if (find(&x, LEADER_ACT_GET)) {
                        gets++;
                        lease_record renewed = rec("pod-b", "20", 0);
                        char rv[8];
                        snprintf(rv, sizeof rv, "%d", 21 + i);
                        snprintf(renewed.resource_version, sizeof renewed.resource_version, "%s",
                                 rv);
                        renewed.renew_time += (uint64_t)i + 1;
                        answer(&x, 200, &renewed);
                        assert_null(find(&x, LEADER_ACT_WATCH_START));
                }
        }
        assert_int_equal(gets, 4);
        /* The holder stops renewing: we take over after expiry. */
        for (int i = 0; i < 20 && x.f.req != LEASE_REQ_ACQUIRE; i++) {
                x.now = x.f.timer_at;
                fire_timer(&x);
                if (x.f.req == LEASE_REQ_GET) {
                        lease_record same = x.f.observed;
                        answer(&x, 200, &same);
                }
        }
        assert_int_equal(x.f.req, LEASE_REQ_ACQUIRE);
}

/* The watch resumes itself (core/reflector.c); the machine starts it once,
 * from the newest resourceVersion it knows, and starts it again only when
 * it stopped for good without a 403 (it could not run at all). */
static void test_watch_started_again_when_it_could_not_run(void **state) {
        t x;
        setup_with(&x, 0, fixed_random);
        fixed_random_value = 50 * MS;
        step(&x, (leader_event){.type = LEADER_EV_START});
        lease_record other = rec("pod-b", "20", 0);
        answer(&x, 200, &other);
        const leader_action *w = find(&x, LEADER_ACT_WATCH_START);
        assert_non_null(w);
        assert_string_equal(w->record.resource_version, "20");
        lease_record renewed = rec("pod-b", "25", 0);
        renewed.renew_time += 1;
        step(&x, (leader_event){.type = LEADER_EV_WATCH_OBJECT, .record = &renewed});
        assert_null(find(&x, LEADER_ACT_WATCH_START));
        step(&x, (leader_event){.type = LEADER_EV_WATCH_CLOSED, .error = -ENOMEM});
        assert_true(x.f.can_watch);
        assert_null(find(&x, LEADER_ACT_WATCH_START));
        /* Within a retry period (client-go's jitter), not at once. */
        assert_int_equal(x.f.watch_at, x.now + 150 * MS);
        const leader_action *tm = find(&x, LEADER_ACT_TIMER);
        assert_non_null(tm);
        assert_int_equal(tm->at, x.now + 150 * MS);
        x.now = x.f.timer_at;
        fire_timer(&x);
        w = find(&x, LEADER_ACT_WATCH_START);
        assert_non_null(w);
        assert_string_equal(w->record.resource_version, "25");
        assert_int_equal(count_requests(&x), 0);
}

static void test_followers_send_nothing_while_lease_healthy(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        lease_record other = rec("pod-b", "100", 0);
        answer(&x, 200, &other);
        size_t requests = 0;
        for (int i = 1; i <= 50; i++) {
                advance(&x, 100 * MS);
                lease_record renewed = rec("pod-b", "", 0);
                snprintf(renewed.resource_version, sizeof renewed.resource_version, "%d", 100 + i);
                renewed.renew_time += (uint64_t)i;
                step(&x, (leader_event){.type = LEADER_EV_WATCH_OBJECT, .record = &renewed});
                requests += count_requests(&x);
                if (x.f.timer_at && x.now >= x.f.timer_at) {
                        fire_timer(&x);
                        requests += count_requests(&x);
                }
        }
        assert_int_equal(requests, 0);
}

/* --- the watch's liveness while the Lease is held ----------------------------------- */

/* A renewal by `holder` seen on the watch (a new resourceVersion each time). */
static void renewal_seen(t *x, const char *holder, int n) {
        lease_record r = rec(holder, "", 0);
        snprintf(r.resource_version, sizeof r.resource_version, "%d", 100 + n);
        r.renew_time += (uint64_t)n;
        if (x->f.exists && x->f.observed.lease_duration_seconds > 0)
                r.lease_duration_seconds = x->f.observed.lease_duration_seconds;
        step(x, (leader_event){.type = LEADER_EV_WATCH_OBJECT, .record = &r});
}

/* Fires the timer at each instant it is armed for, up to `until`; counts
 * the watch restarts and returns the instants of the first few. */
static int run_timers_until(t *x, uint64_t until, uint64_t *restarts_at, int max) {
        int n = 0;
        for (int i = 0; i < 1000 && x->f.timer_at && x->f.timer_at <= until; i++) {
                x->now = x->f.timer_at;
                fire_timer(x);
                if (find(x, LEADER_ACT_WATCH_RESTART)) {
                        if (n < max)
                                restarts_at[n] = x->now;
                        n++;
                }
        }
        if (x->now < until)
                x->now = until;
        return n;
}

/* A follower whose watch goes silent while pod-b holds the Lease (a dead
 * connection: renewals go on, nothing arrives) restarts it after two retry
 * periods, from the newest resourceVersion, and sends no request; the
 * expiry still counts from the last observation (invariant 2). */
static void test_silent_watch_restarted_while_held(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        lease_record other = rec("pod-b", "100", 0);
        other.lease_duration_seconds = 10; /* expiry far away */
        answer(&x, 200, &other);
        assert_non_null(find(&x, LEADER_ACT_WATCH_START));
        for (int i = 1; i <= 5; i++) {
                advance(&x, 100 * MS);
                renewal_seen(&x, "pod-b", i);
                assert_null(find(&x, LEADER_ACT_WATCH_RESTART));
        }
        uint64_t last = x.now, observed_at = x.f.observed_at, act_at = x.f.act_at;
        assert_int_equal(x.f.timer_at, last + 200 * MS);
        x.now = last + 200 * MS - 1;
        fire_timer(&x);
        assert_null(find(&x, LEADER_ACT_WATCH_RESTART));
        x.now = last + 200 * MS;
        fire_timer(&x);
        const leader_action *r = find(&x, LEADER_ACT_WATCH_RESTART);
        assert_non_null(r);
        assert_int_equal(r->quiet, 200 * MS);
        assert_string_equal(r->record.holder, "pod-b");
        assert_string_equal(r->record.resource_version, "105");
        assert_int_equal(count_requests(&x), 0);
        assert_null(find(&x, LEADER_ACT_WATCH_STOP));
        assert_null(find(&x, LEADER_ACT_WATCH_START));
        assert_int_equal(x.f.n_watch_restarts, 1);
        assert_int_equal(x.f.observed_at, observed_at);
        assert_int_equal(x.f.act_at, act_at);
        assert_true(x.f.watching);

        /* The restarted watch replays what it missed: expiry moves with it. */
        advance(&x, 30 * MS);
        renewal_seen(&x, "pod-b", 6);
        renewal_seen(&x, "pod-b", 7);
        assert_int_equal(x.f.observed_at, x.now);
        /* Back to two retry periods after two events on the new connection. */
        assert_int_equal(x.f.timer_at, x.now + 200 * MS);
}

/* A holder that stopped renewing (it crashed): the restarts bring nothing,
 * so they come at 2, 4, 8 ... retry periods, at most one lease duration
 * apart, and the takeover still happens at the expiry instant. */
static void test_restarts_back_off_until_expiry(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        lease_record other = rec("pod-b", "100", 0);
        other.lease_duration_seconds = 2;
        answer(&x, 200, &other);
        advance(&x, 100 * MS);
        renewal_seen(&x, "pod-b", 1);
        uint64_t t0 = x.now, expiry = x.f.observed_at + 2 * SEC;
        assert_int_equal(x.f.act_at, expiry);
        uint64_t at[8] = {0};
        int n = run_timers_until(&x, expiry - 1, at, 8);
        assert_int_equal(n, 3);
        assert_int_equal(at[0], t0 + 200 * MS);
        assert_int_equal(at[1], at[0] + 400 * MS);
        assert_int_equal(at[2], at[1] + 800 * MS);
        assert_int_equal(x.f.watch_window, 1600 * MS);
        assert_int_equal(count_requests(&x), 0);
        x.now = expiry;
        fire_timer(&x);
        const leader_action *u = find(&x, LEADER_ACT_UPDATE);
        assert_non_null(u);
        assert_int_equal(u->req, LEASE_REQ_ACQUIRE);

        /* The window never exceeds the record's lease duration. */
        t y;
        setup_with(&y, 100 * MS, fixed_random);
        fixed_random_value = 50 * MS; /* the takeover's jitter */
        step(&y, (leader_event){.type = LEADER_EV_START});
        other.lease_duration_seconds = 3;
        answer(&y, 200, &other);
        assert_int_equal(y.f.act_at, y.f.observed_at + 3 * SEC + 50 * MS);
        n = run_timers_until(&y, y.f.act_at - 1, at, 8);
        assert_int_equal(n, 4); /* at 0.2, 0.6, 1.4 and 3.0 s */
        assert_int_equal(y.f.watch_window, 3 * SEC); /* not 3.2 s */
        assert_int_equal(count_requests(&y), 0);
}

/* A healthy watch with a holder renewing every retry period: no restart,
 * not one request, however long it lasts. */
static void test_healthy_watch_never_restarted(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        lease_record other = rec("pod-b", "100", 0);
        answer(&x, 200, &other);
        int restarts = 0, requests = 0;
        for (int i = 1; i <= 200; i++) {
                uint64_t next = x.now + 100 * MS + (i % 3) * 20 * MS; /* some lag */
                uint64_t at[1];
                restarts += run_timers_until(&x, next, at, 1);
                requests += (int)count_requests(&x);
                renewal_seen(&x, "pod-b", i);
                requests += (int)count_requests(&x);
        }
        assert_int_equal(restarts, 0);
        assert_int_equal(requests, 0);
        assert_int_equal(x.f.n_watch_restarts, 0);
}

/* A holder that renews less often than two of our retry periods (another
 * configuration): after a restart or two the window follows its cadence
 * (twice the interval between two events on one connection), and then no
 * more restarts. */
static void test_slow_holder_cadence_is_learned(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        lease_record other = rec("pod-b", "100", 0);
        other.lease_duration_seconds = 15;
        answer(&x, 200, &other);
        int restarts = 0;
        uint64_t at[4];
        for (int i = 1; i <= 30; i++) {
                int n = run_timers_until(&x, x.now + 1 * SEC, at, 4);
                if (i > 3)
                        assert_int_equal(n, 0);
                restarts += n;
                renewal_seen(&x, "pod-b", i);
        }
        assert_true(restarts <= 3);
        assert_int_equal(x.f.watch_window, 2 * SEC);
}

/* Nothing to follow, nothing to restart: a free Lease (taken at once), a
 * missing one, a follower that polls (no watch permission), a leader. */
static void test_no_watch_restart_unless_held_and_followed(void **state) {
        uint64_t at[1];
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        lease_record other = rec("pod-b", "100", 0);
        other.lease_duration_seconds = 10;
        answer(&x, 200, &other);
        step(&x, (leader_event){.type = LEADER_EV_WATCH_CLOSED, .status = 403});
        for (int i = 0; i < 20; i++) {
                int n = run_timers_until(&x, x.now + 300 * MS, at, 1);
                assert_int_equal(n, 0);
                if (x.f.req == LEASE_REQ_GET) {
                        lease_record same = x.f.observed;
                        answer(&x, 200, &same);
                }
        }
        assert_int_equal(x.f.n_watch_restarts, 0);

        /* A leader whose watch is silent: its own renewals are answered. */
        t y;
        setup(&y);
        make_leader(&y);
        for (int i = 0; i < 50 && y.f.state == LEADER_FSM_LEADING; i++) {
                y.now = y.f.timer_at;
                fire_timer(&y);
                assert_null(find(&y, LEADER_ACT_WATCH_RESTART));
                if (y.f.req == LEASE_REQ_RENEW) {
                        lease_record r = echo(&y.f.actions[0], "");
                        snprintf(r.resource_version, sizeof r.resource_version, "%d", 20 + i);
                        answer(&y, 200, &r);
                }
        }
        assert_int_equal(y.f.state, LEADER_FSM_LEADING);
        assert_int_equal(y.f.n_watch_restarts, 0);
}

/* The case: a leader cut off (its watch dead with the rest) loses
 * at the renew deadline; as a follower it restarts the watch at once, since
 * nothing came on it for far longer than two retry periods. */
static void test_lost_leader_restarts_silent_watch(void **state) {
        t x;
        setup(&x);
        make_leader(&x);
        for (int i = 0; i < 100 && x.f.state == LEADER_FSM_LEADING; i++) {
                x.now = x.f.timer_at;
                fire_timer(&x);
                assert_null(find(&x, LEADER_ACT_WATCH_RESTART));
                if (x.f.req == LEASE_REQ_RENEW)
                        answer_error(&x, -ETIMEDOUT);
        }
        assert_int_equal(x.f.state, LEADER_FSM_STANDBY);
        uint64_t act_at = x.f.act_at;
        /* The restart is due now (the timer is armed in the past or now). */
        assert_true(x.f.timer_at <= x.now);
        fire_timer(&x);
        const leader_action *r = find(&x, LEADER_ACT_WATCH_RESTART);
        assert_non_null(r);
        assert_string_equal(r->record.holder, ME);
        assert_true(r->quiet >= 600 * MS);
        assert_int_equal(x.f.act_at, act_at);
}

static void test_no_busy_timer_while_retry_pending(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        lease_record other = rec("pod-b", "20", 0);
        answer(&x, 200, &other);
        step(&x, (leader_event){.type = LEADER_EV_WATCH_CLOSED, .status = 403});
        /* A poll fails just before the holder would expire. */
        x.now = x.f.timer_at;
        fire_timer(&x);
        assert_int_equal(x.f.req, LEASE_REQ_GET);
        x.now = x.f.observed_at + 1 * SEC - 1 * MS;
        answer(&x, 503, NULL);
        /* Past the expiry, the retry still pending: every timer lies ahead. */
        for (int i = 0; i < 50 && x.f.req == LEASE_REQ_NONE; i++) {
                assert_true(x.f.timer_at > x.now);
                x.now = x.f.timer_at;
                fire_timer(&x);
        }
        assert_int_equal(x.f.req, LEASE_REQ_GET);
}

static void test_observe_timeout(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        int i;
        for (i = 0; i < 1000 && x.f.state != LEADER_FSM_STOPPED; i++) {
                if (x.f.req == LEASE_REQ_GET) {
                        advance(&x, 1 * MS);
                        answer_error(&x, -ECONNREFUSED);
                } else {
                        x.now = x.f.timer_at;
                        fire_timer(&x);
                }
        }
        assert_int_equal(x.f.state, LEADER_FSM_STOPPED);
        assert_true(x.now >= 1000 * SEC + 5 * SEC);
        assert_int_equal(find(&x, LEADER_ACT_STOPPED)->reason, KOC_LEADER_REASON_OBSERVE_TIMEOUT);
        assert_null(find(&x, LEADER_ACT_STARTED));
}

static void test_observe_timeout_not_while_reachable(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        lease_record other = rec("pod-b", "20", 0);
        answer(&x, 200, &other);
        step(&x, (leader_event){.type = LEADER_EV_WATCH_CLOSED, .status = 403});
        for (int i = 0; i < 200; i++) {
                x.now = x.f.timer_at;
                fire_timer(&x);
                if (x.f.req == LEASE_REQ_GET) {
                        lease_record r = rec("pod-b", "", 0);
                        snprintf(r.resource_version, sizeof r.resource_version, "%d", 21 + i);
                        r.renew_time += (uint64_t)i + 1;
                        answer(&x, 200, &r);
                }
        }
        assert_true(x.now > 1000 * SEC + 5 * SEC);
        assert_int_equal(x.f.state, LEADER_FSM_STANDBY);
}

/* --- records ----------------------------------------------------------------------- */

/* A holder may write any positive int32 as leaseDurationSeconds.  A very
 * long one must be honoured (or the follower takes over while the holder
 * still leads), never mistaken for an absent field and replaced by our own,
 * much shorter, duration. */
static void test_huge_foreign_lease_duration_honoured(void **state) {
        t x;
        setup(&x);
        /* As read from the Lease (test-lease-record.c: test_huge_lease_duration_kept). */
        lease_record r = rec("go-pod", "5", 0);
        r.lease_duration_seconds = 2000000000;
        r.acquire_time = r.renew_time = 0;

        step(&x, (leader_event){.type = LEADER_EV_START});
        answer(&x, 200, &r);
        assert_int_equal(count_requests(&x), 0);
        /* Far past our own lease duration (1 s): still someone else's. */
        advance(&x, 3600 * SEC);
        fire_timer(&x);
        assert_null(find(&x, LEADER_ACT_UPDATE));
        assert_int_equal(x.f.state, LEADER_FSM_STANDBY);
        assert_true(x.f.act_at >= x.now + 1900000000 * SEC);
}

static void test_free_sparse_record_taken(void **state) {
        t x;
        setup(&x);
        step(&x, (leader_event){.type = LEADER_EV_START});
        /* A spec with leaseTransitions only, as read (test-lease-record.c:
         * test_parse_sparse_record): no holder, duration or times. */
        lease_record r = {.lease_transitions = 2};
        snprintf(r.resource_version, sizeof r.resource_version, "%s", "5");
        answer(&x, 200, &r);
        const leader_action *u = find(&x, LEADER_ACT_UPDATE);
        assert_non_null(u);
        assert_int_equal(u->record.lease_transitions, 3);
}

static void test_rv_compare(void **state) {
        assert_true(koc__lease_rv_newer("10", "9"));
        assert_false(koc__lease_rv_newer("9", "10"));
        assert_false(koc__lease_rv_newer("10", "10"));
        assert_true(koc__lease_rv_newer("abc", "abd"));
        assert_true(koc__lease_rv_newer("1", ""));
        assert_false(koc__lease_rv_newer("", "1"));
        /* Past 64 bits the order still holds (core's comparison has no
         * width limit); an older record is never taken for a newer one. */
        assert_false(koc__lease_rv_newer("18446744073709551616", "18446744073709551617"));
        assert_true(koc__lease_rv_newer("18446744073709551617", "18446744073709551616"));
        assert_true(koc__lease_rv_newer("100000000000000000000", "18446744073709551617"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_start_gets_first),
                cmocka_unit_test(test_missing_lease_is_created),
                cmocka_unit_test(test_leads_only_after_write_names_us),
                cmocka_unit_test(test_write_answer_naming_other_does_not_lead),
                cmocka_unit_test(test_write_2xx_without_body_does_not_lead),
                cmocka_unit_test(test_create_conflict_reads_again),
                cmocka_unit_test(test_acquire_answer_after_deadline_does_not_lead),
                cmocka_unit_test(test_expiry_from_observed_time_not_record),
                cmocka_unit_test(test_record_renew_in_future_does_not_delay),
                cmocka_unit_test(test_renewals_seen_push_expiry),
                cmocka_unit_test(test_empty_holder_is_free),
                cmocka_unit_test(test_stale_acquire_answer_after_recreation_does_not_lead),
                cmocka_unit_test(test_stale_acquire_answer_after_delete_does_not_lead),
                cmocka_unit_test(test_release_seen_on_watch_acts_after_jitter),
                cmocka_unit_test(test_own_record_at_start_is_retaken_without_transition),
                cmocka_unit_test(test_new_leader_reported_on_holder_change_only),
                cmocka_unit_test(test_stale_watch_event_is_ignored),
                cmocka_unit_test(test_acquire_failure_retries_with_get),
                cmocka_unit_test(test_late_answer_of_old_request_ignored),
                cmocka_unit_test(test_leader_renews_with_one_put),
                cmocka_unit_test(test_transient_errors_do_not_step_down_before_deadline),
                cmocka_unit_test(test_renew_deadline_exceeded),
                cmocka_unit_test(test_hung_renewal_times_out_at_deadline),
                cmocka_unit_test(test_conflict_then_holder_changed),
                cmocka_unit_test(test_watch_shows_takeover),
                cmocka_unit_test(test_lease_deleted_while_leading),
                cmocka_unit_test(test_foreign_write_with_our_identity),
                cmocka_unit_test(test_transitions_only_on_holder_change),
                cmocka_unit_test(test_after_deadline_loss_own_record_waits),
                cmocka_unit_test(test_step_down_releases_like_client_go),
                cmocka_unit_test(test_release_retried_on_conflict),
                cmocka_unit_test(test_release_stops_when_someone_else_holds),
                cmocka_unit_test(test_release_gives_up_at_deadline),
                cmocka_unit_test(test_step_down_while_acquiring),
                cmocka_unit_test(test_step_down_while_acquiring_late_answer),
                cmocka_unit_test(test_step_down_as_follower),
                cmocka_unit_test(test_stop_cancels),
                cmocka_unit_test(test_watch_forbidden_falls_back_to_polling),
                cmocka_unit_test(test_watch_started_again_when_it_could_not_run),
                cmocka_unit_test(test_followers_send_nothing_while_lease_healthy),
                cmocka_unit_test(test_silent_watch_restarted_while_held),
                cmocka_unit_test(test_restarts_back_off_until_expiry),
                cmocka_unit_test(test_healthy_watch_never_restarted),
                cmocka_unit_test(test_slow_holder_cadence_is_learned),
                cmocka_unit_test(test_no_watch_restart_unless_held_and_followed),
                cmocka_unit_test(test_lost_leader_restarts_silent_watch),
                cmocka_unit_test(test_no_busy_timer_while_retry_pending),
                cmocka_unit_test(test_observe_timeout),
                cmocka_unit_test(test_observe_timeout_not_while_reachable),
                cmocka_unit_test(test_huge_foreign_lease_duration_honoured),
                cmocka_unit_test(test_free_sparse_record_taken),
                cmocka_unit_test(test_rv_compare),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
