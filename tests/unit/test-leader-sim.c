/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A randomised simulation of several electors (the real state machine) and
 * a model API server with optimistic concurrency, on a virtual clock: random
 * latencies, 5xx answers, timeouts, writes applied after the client gave up,
 * watch streams that lag or end, processes that freeze, step-downs and
 * restarts.  After every event it checks the safety property: at most one
 * elector considers itself leader (now < last_ok_send + renew_deadline), and
 * that one is the holder the server stores.  Then faults stop and exactly
 * one elector must lead.  Deterministic: fixed seeds.  SIM_SEED and SIM_SEEDS
 * choose the seeds, SIM_TRACE and SIM_DEBUG print what happens.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "leader/fsm.h"

#define MS KOC_USEC_PER_MSEC
#define SEC KOC_USEC_PER_SEC
#define N_ELECTORS 3
#define MAX_EVENTS 4096

static uint64_t rng_state;
static uint64_t rnd_u64(void) {
        /* xorshift64* */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * UINT64_C(2685821657736338717);
}
static uint64_t rnd(uint64_t n) {
        return n ? rnd_u64() % n : 0;
}
static bool chance(unsigned percent) {
        return rnd(100) < percent;
}

enum sim_kind { K_TIMER, K_APPLY, K_ANSWER, K_WATCH, K_WATCH_CLOSE, K_CHAOS };

typedef struct sim_event {
        bool used;
        uint64_t at; /* virtual time */
        uint64_t order;
        enum sim_kind kind;
        int who;
        /* request */
        lease_req req;
        uint64_t seq;
        lease_record rec;
        bool drop_answer; /* applied, but the client times out */
        uint64_t timeout_at;
        /* answer */
        int error;
        long status;
        bool has_rec;
        bool deleted;
        uint64_t watch_gen;
} sim_event;

typedef struct elector {
        leader_fsm f;
        char id[16];
        uint64_t offset; /* its boottime = virtual time + offset */
        uint64_t frozen_until;
        bool watching;
        uint64_t watch_gen;  /* events of older watches are dropped */
        uint64_t watch_last; /* FIFO delivery on the stream */
        uint64_t cancelled_seq;
        bool alive;
        int n_started, n_stopped;
} elector;

typedef struct sim {
        uint64_t now;
        uint64_t order;
        bool faults;
        sim_event ev[MAX_EVENTS];
        elector e[N_ELECTORS];
        /* the server */
        bool exists;
        lease_record stored;
        uint64_t rv;
        uint64_t violations;
        uint64_t leader_time;
} sim;

static sim S;

static sim_event *push(uint64_t at, enum sim_kind kind, int who) {
        for (size_t i = 0; i < MAX_EVENTS; i++)
                if (!S.ev[i].used) {
                        memset(&S.ev[i], 0, sizeof S.ev[i]);
                        S.ev[i].used = true;
                        S.ev[i].at = at;
                        S.ev[i].order = S.order++;
                        S.ev[i].kind = kind;
                        S.ev[i].who = who;
                        return &S.ev[i];
                }
        fail_msg("event table full");
        return NULL;
}

static sim_event *pop(void) {
        sim_event *best = NULL;
        for (size_t i = 0; i < MAX_EVENTS; i++) {
                sim_event *x = &S.ev[i];
                if (!x->used)
                        continue;
                /* A frozen process handles nothing until it thaws. */
                uint64_t at = x->at;
                if (x->kind != K_APPLY && x->kind != K_CHAOS && S.e[x->who].frozen_until > at)
                        at = S.e[x->who].frozen_until;
                if (!best || at < best->at || (at == best->at && x->order < best->order)) {
                        if (at != x->at) {
                                x->at = at;
                                x->order = S.order++;
                        }
                        best = x;
                }
        }
        if (best)
                best->used = false;
        return best;
}

static uint64_t local_now(int i) {
        return S.now + S.e[i].offset;
}

static uint64_t latency(void) {
        /* Mostly fast, sometimes slow (while faults are on). */
        return !S.faults || chance(90) ? rnd(5 * MS) : rnd(400 * MS);
}

static void run_actions(int i);

static void step(int i, leader_event ev) {
        elector *e = &S.e[i];
        koc__leader_fsm_step(&e->f, &ev, local_now(i), S.now + UINT64_C(1795000000) * SEC);
        run_actions(i);
}

static void notify_watchers(bool deleted) {
        for (int i = 0; i < N_ELECTORS; i++) {
                elector *e = &S.e[i];
                if (!e->alive || !e->watching)
                        continue;
                uint64_t at = S.now + latency();
                if (at < e->watch_last)
                        at = e->watch_last;
                e->watch_last = at;
                sim_event *x = push(at, K_WATCH, i);
                x->deleted = deleted;
                x->rec = S.stored;
                x->has_rec = !deleted;
                x->watch_gen = e->watch_gen;
        }
}

static void run_actions(int i) {
        elector *e = &S.e[i];
        leader_action acts[LEADER_FSM_MAX_ACTIONS];
        size_t n = e->f.n_actions;
        memcpy(acts, e->f.actions, n * sizeof acts[0]);
        for (size_t k = 0; k < n; k++) {
                const leader_action *a = &acts[k];
                switch (a->type) {
                case LEADER_ACT_GET:
                case LEADER_ACT_CREATE:
                case LEADER_ACT_UPDATE: {
                        uint64_t timeout_at = S.now + a->timeout;
                        if (S.faults && chance(8)) {
                                /* 503 without touching the store. */
                                sim_event *x = push(S.now + latency(), K_ANSWER, i);
                                x->seq = a->seq;
                                x->status = 503;
                                break;
                        }
                        if (S.faults && chance(3)) {
                                /* Hangs: the client times out, nothing applied. */
                                sim_event *x = push(timeout_at, K_ANSWER, i);
                                x->seq = a->seq;
                                x->error = -ETIMEDOUT;
                                break;
                        }
                        sim_event *x = push(S.now + latency(), K_APPLY, i);
                        x->req = a->req;
                        x->seq = a->seq;
                        x->rec = a->record;
                        x->timeout_at = timeout_at;
                        x->drop_answer = S.faults && chance(3);
                        break;
                }
                case LEADER_ACT_CANCEL_REQUEST:
                        e->cancelled_seq = a->seq;
                        break;
                case LEADER_ACT_WATCH_RESTART:
                        /* A new connection: what the old one had in flight
                         * is lost, and the resume replays it. */
                case LEADER_ACT_WATCH_START:
                        e->watching = true;
                        e->watch_gen++;
                        /* Resume: anything newer than the given RV comes first. */
                        if (koc__lease_rv_newer(S.exists ? S.stored.resource_version : "",
                                                a->record.resource_version) ||
                            (!S.exists && a->record.resource_version[0])) {
                                sim_event *x = push(S.now + latency(), K_WATCH, i);
                                x->deleted = !S.exists;
                                x->rec = S.stored;
                                x->has_rec = S.exists;
                                x->watch_gen = e->watch_gen;
                                e->watch_last = x->at;
                        }
                        break;
                case LEADER_ACT_WATCH_STOP:
                        e->watching = false;
                        e->watch_gen++;
                        break;
                case LEADER_ACT_TIMER:
                        if (a->at) {
                                /* Back to virtual time. */
                                uint64_t at = a->at > e->offset ? a->at - e->offset : 0;
                                sim_event *x = push(at < S.now ? S.now : at, K_TIMER, i);
                                x->seq = a->at; /* only the latest timer counts */
                        }
                        break;
                case LEADER_ACT_STARTED:
                        e->n_started++;
                        break;
                case LEADER_ACT_STOPPED:
                        e->n_stopped++;
                        break;
                case LEADER_ACT_FOREIGN_WRITE:
                        /* Every elector here has its own identity. */
                        fail_msg("%s reports a foreign write with its identity at t=%llu", e->id,
                                 (unsigned long long)S.now);
                        break;
                default:
                        break;
                }
        }
}

static void apply(sim_event *x) {
        elector *e = &S.e[x->who];
        long status = 200;
        bool has = false;
        lease_record out = {0};
        switch (x->req) {
        case LEASE_REQ_GET:
                if (S.exists) {
                        out = S.stored;
                        has = true;
                } else
                        status = 404;
                break;
        case LEASE_REQ_CREATE:
                if (S.exists) {
                        status = 409;
                        break;
                }
                S.exists = true;
                S.stored = x->rec;
                snprintf(S.stored.resource_version, sizeof S.stored.resource_version, "%llu",
                         (unsigned long long)++S.rv);
                out = S.stored;
                has = true;
                status = 201;
                notify_watchers(false);
                break;
        default:
                if (!S.exists) {
                        status = 404;
                        break;
                }
                if (strcmp(x->rec.resource_version, S.stored.resource_version) != 0) {
                        status = 409;
                        break;
                }
                S.stored = x->rec;
                snprintf(S.stored.resource_version, sizeof S.stored.resource_version, "%llu",
                         (unsigned long long)++S.rv);
                out = S.stored;
                has = true;
                notify_watchers(false);
                break;
        }
        if (getenv("SIM_TRACE"))
                fprintf(stderr,
                        "  apply who=%d req=%s rv=%s holder=%s -> %ld stored holder=%s rv=%s\n",
                        x->who, koc__lease_req_to_string(x->req), x->rec.resource_version,
                        x->rec.holder, status, S.stored.holder, S.stored.resource_version);
        uint64_t at = S.now + latency();
        sim_event *a;
        if (x->drop_answer || at > x->timeout_at) {
                a = push(x->timeout_at > S.now ? x->timeout_at : S.now, K_ANSWER, x->who);
                a->error = -ETIMEDOUT;
        } else {
                a = push(at, K_ANSWER, x->who);
                a->status = status;
                a->rec = out;
                a->has_rec = has;
        }
        a->seq = x->seq;
        (void)e;
}

static void chaos(void) {
        int i = (int)rnd(N_ELECTORS);
        elector *e = &S.e[i];
        if (!S.faults)
                return;
        switch (rnd(6)) {
        case 0: /* freeze for up to 3 s */
                e->frozen_until = S.now + rnd(3 * SEC);
                break;
        case 1: /* the server ends a watch stream, or forbids watching */
                if (e->watching) {
                        sim_event *x = push(S.now + latency(), K_WATCH_CLOSE, i);
                        x->watch_gen = e->watch_gen;
                        x->status = chance(20) ? 403 : 200;
                }
                break;
        case 2:
                step(i, (leader_event){.type = LEADER_EV_STEP_DOWN});
                break;
        case 3:
                step(i, (leader_event){.type = LEADER_EV_STOP});
                break;
        default:
                if (e->f.state == LEADER_FSM_STOPPED)
                        step(i, (leader_event){.type = LEADER_EV_START});
                break;
        }
}

static void check_safety(void) {
        int valid = 0, who = -1;
        for (int i = 0; i < N_ELECTORS; i++) {
                uint64_t until = koc__leader_fsm_valid_until(&S.e[i].f);
                if (until && local_now(i) < until) {
                        valid++;
                        who = i;
                }
        }
        if (valid > 1) {
                S.violations++;
                fail_msg("two electors consider themselves leader at t=%llu us",
                         (unsigned long long)S.now);
        }
        if (valid == 1 && (!S.exists || strcmp(S.stored.holder, S.e[who].id) != 0))
                fail_msg("t=%llu: %s considers itself leader but the server stores holder \"%s\"",
                         (unsigned long long)S.now, S.e[who].id,
                         S.exists ? S.stored.holder : "(none)");
}

static uint64_t fsm_random(uint64_t n) {
        return rnd(n);
}

static void run_sim(uint64_t seed, uint64_t chaos_for, uint64_t calm_for) {
        memset(&S, 0, sizeof S);
        rng_state = seed * UINT64_C(0x9E3779B97F4A7C15) + 1;
        S.faults = true;
        for (int i = 0; i < N_ELECTORS; i++) {
                elector *e = &S.e[i];
                snprintf(e->id, sizeof e->id, "e%d", i);
                e->offset = rnd(1000) * SEC; /* unrelated boot times */
                e->alive = true;
                koc__leader_fsm_init(&e->f, &(leader_fsm_config){.identity = e->id,
                                                                 .lease_duration = 1 * SEC,
                                                                 .renew_deadline = 600 * MS,
                                                                 .retry_period = 100 * MS,
                                                                 .observe_timeout = 0,
                                                                 .jitter_max = 5 * MS,
                                                                 .random = fsm_random});
                step(i, (leader_event){.type = LEADER_EV_START});
        }
        for (uint64_t t = 0; t < chaos_for; t += rnd(400 * MS) + 1)
                push(t, K_CHAOS, 0);
        push(chaos_for, K_CHAOS, 0); /* the calm begins even if all are stopped */
        uint64_t end = chaos_for + calm_for;
        /* Electors send a few requests per retry period: far fewer events
         * than this unless a timer spins. */
        uint64_t budget = (end / (100 * MS)) * N_ELECTORS * 40;
        for (;;) {
                if (budget-- == 0)
                        fail_msg("seed %llu: too many events by t=%llu us: a busy loop",
                                 (unsigned long long)seed, (unsigned long long)S.now);
                sim_event *next = pop();
                if (!next || next->at > end)
                        break;
                /* A copy: handling the event may reuse its slot. */
                sim_event cur = *next;
                sim_event *x = &cur;
                /* Events held back by a freeze that ended run now, not in the past. */
                if (x->at > S.now)
                        S.now = x->at;
                if (S.now >= chaos_for && S.faults) {
                        S.faults = false;
                        for (int i = 0; i < N_ELECTORS; i++) {
                                S.e[i].frozen_until = 0;
                                if (S.e[i].f.state == LEADER_FSM_STOPPED)
                                        step(i, (leader_event){.type = LEADER_EV_START});
                        }
                }
                elector *e = &S.e[x->who];
                if (getenv("SIM_TRACE"))
                        fprintf(stderr,
                                "t=%llu kind=%d who=%d seq=%llu status=%ld error=%d state=%s\n",
                                (unsigned long long)S.now, x->kind, x->who,
                                (unsigned long long)x->seq, x->status, x->error,
                                koc__leader_fsm_state_to_string(e->f.state));
                switch (x->kind) {
                case K_TIMER:
                        /* Only the timer the machine armed last. */
                        if (e->f.timer_at == x->seq)
                                step(x->who, (leader_event){.type = LEADER_EV_TIMER});
                        break;
                case K_APPLY:
                        apply(x);
                        break;
                case K_ANSWER:
                        if (x->seq == e->cancelled_seq)
                                break;
                        step(x->who, (leader_event){.type = LEADER_EV_ANSWER,
                                                    .seq = x->seq,
                                                    .error = x->error,
                                                    .status = x->status,
                                                    .record = x->has_rec ? &x->rec : NULL});
                        break;
                case K_WATCH:
                        if (!e->watching || x->watch_gen != e->watch_gen)
                                break;
                        if (x->deleted)
                                step(x->who, (leader_event){.type = LEADER_EV_WATCH_DELETED});
                        else
                                step(x->who, (leader_event){.type = LEADER_EV_WATCH_OBJECT,
                                                            .record = &x->rec});
                        break;
                case K_WATCH_CLOSE:
                        if (!e->watching || x->watch_gen != e->watch_gen)
                                break;
                        e->watch_gen++;
                        if (x->status != 403) {
                                /* The transport resumes the watch itself
                                 * (core/reflector.c), within its backoff:
                                 * what the lost stream still had in flight
                                 * comes again after the gap, as the resumed
                                 * watch (or the re-watch after 410) sends it,
                                 * and later changes follow it in order. */
                                sim_event *r = push(S.now + rnd(5 * SEC), K_WATCH, x->who);
                                r->deleted = !S.exists;
                                r->rec = S.stored;
                                r->has_rec = S.exists;
                                r->watch_gen = e->watch_gen;
                                e->watch_last = r->at;
                                break;
                        }
                        e->watching = false;
                        step(x->who,
                             (leader_event){.type = LEADER_EV_WATCH_CLOSED, .status = x->status});
                        break;
                case K_CHAOS:
                        chaos();
                        break;
                }
                check_safety();
        }
        if (getenv("SIM_DEBUG"))
                fprintf(stderr, "seed %llu: t=%llu started=%d/%d/%d\n", (unsigned long long)seed,
                        (unsigned long long)S.now, S.e[0].n_started, S.e[1].n_started,
                        S.e[2].n_started);
        /* Calm since chaos_for: exactly one leads, and it is the holder. */
        S.now = end;
        int leading = 0;
        for (int i = 0; i < N_ELECTORS; i++)
                if (S.e[i].f.state == LEADER_FSM_LEADING &&
                    local_now(i) < koc__leader_fsm_valid_until(&S.e[i].f))
                        leading++;
        if (leading != 1)
                fail_msg("seed %llu: %d electors lead after the calm period",
                         (unsigned long long)seed, leading);
}

static void test_simulation(void **state) {
        int started = 0;
        uint64_t first = getenv("SIM_SEED") ? strtoull(getenv("SIM_SEED"), NULL, 10) : 1;
        uint64_t last = getenv("SIM_SEEDS") ? strtoull(getenv("SIM_SEEDS"), NULL, 10) : 150;
        for (uint64_t seed = first; seed <= last; seed++) {
                run_sim(seed, 30 * SEC, 5 * SEC);
                for (int i = 0; i < N_ELECTORS; i++)
                        started += S.e[i].n_started;
        }
        /* The chaos really moved leadership around. */
        assert_true(started > (int)(last - first + 1) * 3);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_simulation),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
