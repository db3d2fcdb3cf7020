/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The leader election state machine (see fsm.h and DESIGN.md's invariants).
 *
 * Followers decide when to write from what they observed and when they
 * observed it: a free Lease (empty holder) or a missing one is taken at once
 * (after a few milliseconds of jitter), someone else's at
 * observed_at + leaseDurationSeconds (+ jitter), where observed_at is our own
 * CLOCK_BOOTTIME reading when the record last changed.  The leader renews
 * with one update per retry period and keeps its leadership until
 * renew_deadline has passed since the last successful renewal was sent.
 *
 * A follower that follows a held Lease on its watch expects the holder's
 * renewals there; when none has arrived for the watch window (two retry
 * periods, see fsm.h), it asks for the watch on a new connection: over
 * HTTP/1.1 nothing else notices a connection whose path died, and the
 * follower would learn of a release only at the expiry.  The restart moves
 * no timestamp the expiry is computed from.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsm.h"
#include "core/resource-version.h"
#include "core/util.h"
#include "koc/time.h"

/* Requests never get less time than this, even close to a deadline. */
#define REQUEST_TIMEOUT_MIN (50 * KOC_USEC_PER_MSEC)

static void copy_str(char *dst, size_t size, const char *src) {
        snprintf(dst, size, "%s", src ? src : "");
}

/* --- resourceVersions ---------------------------------------------------------- */

/* The leader's handling of the one comparison (core/resource-version.h): a
 * record that cannot be ordered against the one held is taken as newer when
 * it differs, so that a server with opaque resourceVersions is followed, not
 * ignored; "" (no record yet) is older than anything. */
bool koc__lease_rv_newer(const char *rv, const char *cur) {
        if (!cur || !cur[0])
                return true;
        if (!rv || !rv[0])
                return false;
        switch (koc__rv_compare(rv, cur)) {
        case KOC_RV_NEWER:
                return true;
        case KOC_RV_UNORDERED:
                return strcmp(rv, cur) != 0;
        default:
                return false;
        }
}

/* --- names ----------------------------------------------------------------------- */

const char *koc__leader_fsm_state_to_string(enum leader_fsm_state s) {
        static const char *const names[] = {
                [LEADER_FSM_STOPPED] = "stopped",     [LEADER_FSM_STANDBY] = "standby",
                [LEADER_FSM_ACQUIRING] = "acquiring", [LEADER_FSM_LEADING] = "leading",
                [LEADER_FSM_RELEASING] = "releasing",
        };
        return (unsigned)s < KOC_ELEMENTSOF(names) ? names[s] : "unknown";
}

const char *koc__lease_req_to_string(lease_req r) {
        static const char *const names[] = {
                [LEASE_REQ_NONE] = "none",     [LEASE_REQ_GET] = "get",
                [LEASE_REQ_CREATE] = "create", [LEASE_REQ_ACQUIRE] = "acquire",
                [LEASE_REQ_RENEW] = "renew",   [LEASE_REQ_RELEASE] = "release",
        };
        return (unsigned)r < KOC_ELEMENTSOF(names) ? names[r] : "unknown";
}

/* --- helpers ----------------------------------------------------------------------- */

static leader_action *emit(leader_fsm *f, enum leader_action_type type) {
        /* The steps below never emit more than a handful of actions. */
        if (f->n_actions >= LEADER_FSM_MAX_ACTIONS)
                abort();
        leader_action *a = &f->actions[f->n_actions++];
        memset(a, 0, sizeof *a);
        a->type = type;
        return a;
}

static uint64_t rnd(leader_fsm *f, uint64_t n) {
        if (!f->random || n == 0)
                return 0;
        return f->random(n);
}

/* client-go's wait.Jitter(period, 1.2): period + rand * 1.2 * period. */
static uint64_t jittered_period(leader_fsm *f) {
        return f->retry_period + rnd(f, f->retry_period * 6 / 5);
}

static bool is_ours(const leader_fsm *f, const lease_record *r) {
        return !r->holder_truncated && r->holder[0] && strcmp(r->holder, f->identity) == 0;
}

static uint64_t record_duration(const leader_fsm *f) {
        if (f->observed.lease_duration_seconds > 0)
                return (uint64_t)f->observed.lease_duration_seconds * KOC_USEC_PER_SEC;
        return f->lease_duration;
}

uint64_t koc__leader_fsm_valid_until(const leader_fsm *f) {
        if (f->state != LEADER_FSM_LEADING)
                return 0;
        return f->last_ok_send + f->renew_deadline;
}

static void cancel_request(leader_fsm *f) {
        if (f->req == LEASE_REQ_NONE)
                return;
        leader_action *a = emit(f, LEADER_ACT_CANCEL_REQUEST);
        a->req = f->req;
        a->seq = f->req_seq;
        f->req = LEASE_REQ_NONE;
}

static bool written_by_us(const leader_fsm *f, uint64_t renew_time) {
        for (size_t i = 0; i < KOC_ELEMENTSOF(f->written); i++)
                if (f->written[i] == renew_time)
                        return true;
        return false;
}

static void send_request(leader_fsm *f, lease_req req, const lease_record *rec, uint64_t timeout,
                         uint64_t now) {
        leader_action *a = emit(f, req == LEASE_REQ_GET      ? LEADER_ACT_GET
                                   : req == LEASE_REQ_CREATE ? LEADER_ACT_CREATE
                                                             : LEADER_ACT_UPDATE);
        f->req = req;
        f->req_seq++;
        f->req_sent_at = now;
        a->req = req;
        a->seq = f->req_seq;
        a->timeout = timeout < REQUEST_TIMEOUT_MIN ? REQUEST_TIMEOUT_MIN : timeout;
        if (rec) {
                a->record = *rec;
                f->written[f->n_written++ % KOC_ELEMENTSOF(f->written)] = rec->renew_time;
        }
}

static void send_get(leader_fsm *f, uint64_t now) {
        f->retry_at = 0;
        send_request(f, LEASE_REQ_GET, NULL, f->renew_deadline, now);
}

/* The record this identity writes to take or keep the Lease. */
static void own_record(const leader_fsm *f, lease_record *r, uint64_t wall, bool renew) {
        memset(r, 0, sizeof *r);
        copy_str(r->holder, sizeof r->holder, f->identity);
        r->lease_duration_seconds = f->lease_duration_seconds;
        r->renew_time = wall;
        copy_str(r->resource_version, sizeof r->resource_version, f->observed.resource_version);
        if (renew) {
                r->acquire_time = f->term_acquire_time ? f->term_acquire_time : wall;
                r->lease_transitions = f->term;
        } else if (f->exists && is_ours(f, &f->observed)) {
                /* Our own record (a restart with the same identity): no transition. */
                r->acquire_time = f->observed.acquire_time ? f->observed.acquire_time : wall;
                r->lease_transitions = f->observed.lease_transitions;
        } else {
                r->acquire_time = wall;
                r->lease_transitions = f->exists ? f->observed.lease_transitions + 1 : 0;
        }
}

static void notify_holder(leader_fsm *f, const char *holder) {
        leader_action *a = emit(f, LEADER_ACT_NEW_LEADER);
        copy_str(a->record.holder, sizeof a->record.holder, holder);
}

/* True when r is older than what we know already: the record we hold, or
 * the deletion the watch reported. */
static bool is_stale(const leader_fsm *f, const lease_record *r) {
        const char *cur = f->exists ? f->observed.resource_version : f->deleted_rv;
        return f->known && cur[0] && !koc__lease_rv_newer(r->resource_version, cur) &&
               strcmp(r->resource_version, cur) != 0;
}

/* Takes in a record (from an answer or a watch event).  A record older than
 * the one we have (a watch event that lags behind a write's answer) is
 * ignored.  observed_at moves only when the record changed. */
static bool observe(leader_fsm *f, const lease_record *r, uint64_t now) {
        if (is_stale(f, r))
                return false;
        bool holder_changed = !f->known || !f->exists ||
                              strcmp(r->holder, f->observed.holder) != 0 ||
                              r->holder_truncated != f->observed.holder_truncated;
        bool changed = holder_changed || r->renew_time != f->observed.renew_time ||
                       strcmp(r->resource_version, f->observed.resource_version) != 0;
        if (changed) {
                f->observed_at = now;
                f->jitter = rnd(f, f->jitter_max);
                f->act_at = 0;
        }
        f->observed = *r;
        f->known = true;
        f->exists = true;
        if (koc__lease_rv_newer(r->resource_version, f->watch_rv))
                copy_str(f->watch_rv, sizeof f->watch_rv, r->resource_version);
        if (holder_changed)
                notify_holder(f, r->holder);
        return changed;
}

static void observe_missing(leader_fsm *f, uint64_t now, const char *deleted_rv) {
        bool changed = !f->known || f->exists;
        if (changed) {
                f->observed_at = now;
                f->jitter = rnd(f, f->jitter_max);
                f->act_at = 0;
                if (f->known && f->observed.holder[0])
                        notify_holder(f, "");
        }
        memset(&f->observed, 0, sizeof f->observed);
        copy_str(f->deleted_rv, sizeof f->deleted_rv, deleted_rv);
        f->known = true;
        f->exists = false;
}

/* --- follower ---------------------------------------------------------------------- */

/* When this follower may write to take the Lease (boottime), from what it saw. */
static uint64_t acquire_time_for(leader_fsm *f) {
        if (!f->exists || !f->observed.holder[0])
                return f->observed_at + f->jitter; /* missing or released: now */
        if (is_ours(f, &f->observed) && !f->led_before)
                return f->observed_at; /* restarted with the same identity (client-go) */
        uint64_t at = f->observed_at + record_duration(f) + f->jitter;
        /* After losing our own lease, let the others go first. */
        if (is_ours(f, &f->observed))
                at += f->retry_period;
        return at;
}

static void decide(leader_fsm *f, uint64_t now, uint64_t wall) {
        if (f->state != LEADER_FSM_STANDBY || f->req != LEASE_REQ_NONE || f->retry_at)
                return;
        if (!f->known) {
                send_get(f, now);
                return;
        }
        f->act_at = acquire_time_for(f);
        if (now < f->act_at)
                return;
        f->act_at = 0;
        lease_record r;
        own_record(f, &r, wall, false);
        f->state = LEADER_FSM_ACQUIRING;
        send_request(f, f->exists ? LEASE_REQ_ACQUIRE : LEASE_REQ_CREATE, &r, f->renew_deadline,
                     now);
}

/* --- leadership transitions ------------------------------------------------------ */

static void start_leading(leader_fsm *f, const lease_record *r) {
        f->state = LEADER_FSM_LEADING;
        f->led_before = true;
        f->last_ok_send = f->req_sent_at;
        f->term = r->lease_transitions;
        f->term_acquire_time = r->acquire_time;
        f->renew_at = f->req_sent_at + f->retry_period;
        f->act_at = f->poll_at = f->retry_at = 0;
        leader_action *a = emit(f, LEADER_ACT_STARTED);
        a->term = f->term;
}

/* Leadership ends: the state is published (false) before the driver runs the
 * STOPPED action, which comes first in the list. */
static void stop_leading(leader_fsm *f, koc_leader_reason reason, uint64_t now, uint64_t wall) {
        f->state = LEADER_FSM_STANDBY;
        f->renew_at = 0;
        leader_action *a = emit(f, LEADER_ACT_STOPPED);
        a->reason = reason;
        cancel_request(f);
        /* The observation stays: the old holder is us, so we wait out its
         * expiry like everyone else. */
        decide(f, now, wall);
}

static void finish(leader_fsm *f, int result) {
        cancel_request(f);
        if (f->watching)
                emit(f, LEADER_ACT_WATCH_STOP);
        f->watching = false;
        f->state = LEADER_FSM_STOPPED;
        f->act_at = f->poll_at = f->retry_at = f->renew_at = f->watch_at = 0;
        f->step_down_pending = false;
        leader_action *a = emit(f, LEADER_ACT_DONE);
        a->result = result;
}

static void send_release(leader_fsm *f, uint64_t now, uint64_t wall) {
        lease_record r = {0};
        /* Invariant 6: only while this identity still holds the Lease, as
         * far as we know; never with a resourceVersion of someone else's
         * record (a watch event may have brought one in meanwhile). */
        if (f->exists && !is_ours(f, &f->observed)) {
                finish(f, f->observed.holder[0] ? -ESTALE : 0);
                return;
        }
        if (!f->exists) {
                finish(f, 0);
                return;
        }
        /* client-go's release: no holder, 1 s, transitions kept. */
        r.lease_duration_seconds = 1;
        r.acquire_time = wall;
        r.renew_time = wall;
        r.lease_transitions = f->exists ? f->observed.lease_transitions : f->term;
        copy_str(r.resource_version, sizeof r.resource_version, f->observed.resource_version);
        f->retry_at = 0;
        uint64_t left = f->release_deadline > now ? f->release_deadline - now : 0;
        send_request(f, LEASE_REQ_RELEASE, &r, left, now);
}

static void begin_release(leader_fsm *f, uint64_t now, uint64_t wall) {
        f->state = LEADER_FSM_RELEASING;
        f->renew_at = f->act_at = f->poll_at = f->retry_at = 0;
        f->release_deadline = now + f->renew_deadline;
        cancel_request(f);
        send_release(f, now, wall);
}

static void stop_all(leader_fsm *f, koc_leader_reason reason_if_leading) {
        bool leading = f->state == LEADER_FSM_LEADING;
        bool releasing = f->state == LEADER_FSM_RELEASING;
        f->state = LEADER_FSM_STOPPED;
        if (leading) {
                leader_action *a = emit(f, LEADER_ACT_STOPPED);
                a->reason = reason_if_leading;
        }
        cancel_request(f);
        if (f->watching)
                emit(f, LEADER_ACT_WATCH_STOP);
        f->watching = false;
        f->act_at = f->poll_at = f->retry_at = f->renew_at = f->watch_at = 0;
        if (releasing || f->step_down_pending) {
                leader_action *a = emit(f, LEADER_ACT_DONE);
                a->result = -ECANCELED;
        }
        f->step_down_pending = false;
}

static void check_observe_timeout(leader_fsm *f, uint64_t now) {
        if (f->observe_timeout == 0 || f->led_before)
                return;
        if (f->state != LEADER_FSM_STANDBY && f->state != LEADER_FSM_ACQUIRING)
                return;
        if (now < f->contact_at + f->observe_timeout)
                return;
        f->state = LEADER_FSM_STOPPED;
        leader_action *a = emit(f, LEADER_ACT_STOPPED);
        a->reason = KOC_LEADER_REASON_OBSERVE_TIMEOUT;
        stop_all(f, KOC_LEADER_REASON_OBSERVE_TIMEOUT);
}

/* --- answers ----------------------------------------------------------------------- */

enum outcome { OUT_OK, OUT_CONFLICT, OUT_NOT_FOUND, OUT_TRANSIENT };

static enum outcome classify(const leader_event *ev) {
        if (ev->error < 0)
                return OUT_TRANSIENT;
        if (ev->status >= 200 && ev->status < 300)
                return ev->record ? OUT_OK : OUT_TRANSIENT; /* unreadable body */
        if (ev->status == 409)
                return OUT_CONFLICT;
        if (ev->status == 404)
                return OUT_NOT_FOUND;
        return OUT_TRANSIENT; /* 5xx, 429, 403, ... */
}

/* --- the watch's liveness (see watch_window in fsm.h) --------------------------- */

static uint64_t watch_window_clamp(const leader_fsm *f, uint64_t w) {
        uint64_t min = 2 * f->retry_period, max = record_duration(f);
        if (max < min)
                max = min;
        return w < min ? min : w > max ? max : w;
}

/* A new watch (or a restarted one) has shown nothing yet. */
static void watch_began(leader_fsm *f, uint64_t now) {
        f->watch_quiet_from = now;
        f->watch_event_at = 0;
        f->watch_window = watch_window_clamp(f, f->watch_window);
}

/* Two events in a row on one connection tell the holder's cadence; the
 * first one after a restart leaves the window as the restarts made it, so
 * that a holder renewing more slowly than two of our retry periods does not
 * cost a restart every time. */
static void watch_saw_event(leader_fsm *f, uint64_t now) {
        if (f->watch_event_at)
                f->watch_window = watch_window_clamp(f, 2 * (now - f->watch_event_at));
        f->watch_event_at = now;
        f->watch_quiet_from = now;
}

/* Someone holds the Lease and we follow it on the watch: its renewals must
 * keep arriving. */
static bool watch_check_applies(const leader_fsm *f) {
        return f->state == LEADER_FSM_STANDBY && f->watching && f->exists &&
               f->observed.holder[0];
}

static void restart_watch(leader_fsm *f, uint64_t now) {
        leader_action *a = emit(f, LEADER_ACT_WATCH_RESTART);
        a->quiet = now - f->watch_quiet_from;
        copy_str(a->record.holder, sizeof a->record.holder, f->observed.holder);
        copy_str(a->record.resource_version, sizeof a->record.resource_version, f->watch_rv);
        f->n_watch_restarts++;
        f->watch_window = watch_window_clamp(f, 2 * f->watch_window);
        watch_began(f, now);
}

static void ensure_watch(leader_fsm *f, uint64_t now) {
        if (!f->can_watch || f->watching || f->watch_at || f->state == LEADER_FSM_STOPPED)
                return;
        leader_action *a = emit(f, LEADER_ACT_WATCH_START);
        copy_str(a->record.resource_version, sizeof a->record.resource_version, f->watch_rv);
        f->watching = true;
        watch_began(f, now);
}

static void answer_standby(leader_fsm *f, lease_req req, enum outcome o, const leader_event *ev,
                           uint64_t now, uint64_t wall) {
        switch (o) {
        case OUT_OK: {
                /* An answer older than what the watch has shown since (the
                 * Lease deleted, or written by someone else) is history: it
                 * must not make us the leader. */
                bool stale = is_stale(f, ev->record);
                observe(f, ev->record, now);
                if (req != LEASE_REQ_GET && !stale && is_ours(f, ev->record)) {
                        if (f->step_down_pending) {
                                /* Our write made us the holder after all: give
                                 * the Lease back at once. */
                                f->step_down_pending = false;
                                f->term = ev->record->lease_transitions;
                                begin_release(f, now, wall);
                                return;
                        }
                        /* Invariant 1: a write answered 2xx naming us, and
                         * early enough that its validity has not run out. */
                        if (now < f->req_sent_at + f->renew_deadline) {
                                start_leading(f, ev->record);
                                return;
                        }
                }
                break;
        }
        case OUT_CONFLICT:
                /* Someone wrote first (or the Lease exists already): read again. */
                if (f->step_down_pending)
                        break;
                send_get(f, now);
                return;
        case OUT_NOT_FOUND:
                observe_missing(f, now, NULL);
                break;
        case OUT_TRANSIENT:
                f->retry_at = now + jittered_period(f);
                break;
        }
        if (f->step_down_pending) {
                finish(f, 0);
                return;
        }
        check_observe_timeout(f, now);
        if (f->state != LEADER_FSM_STANDBY)
                return;
        ensure_watch(f, now);
        decide(f, now, wall);
}

static void send_renew(leader_fsm *f, uint64_t now, uint64_t wall) {
        lease_record r;
        own_record(f, &r, wall, true);
        /* The renewal may take until the deadline: a slow answer still counts. */
        send_request(f, LEASE_REQ_RENEW, &r, f->last_ok_send + f->renew_deadline - now, now);
        f->renew_at = 0;
}

static void answer_leading(leader_fsm *f, lease_req req, enum outcome o, const leader_event *ev,
                           uint64_t now, uint64_t wall) {
        switch (o) {
        case OUT_OK:
                observe(f, ev->record, now);
                if (!is_ours(f, ev->record)) {
                        stop_leading(f, KOC_LEADER_REASON_HOLDER_CHANGED, now, wall);
                        return;
                }
                if (req == LEASE_REQ_RENEW) {
                        f->last_ok_send = f->req_sent_at;
                        f->renew_at = f->req_sent_at + f->retry_period;
                } else if (now < f->last_ok_send + f->renew_deadline) {
                        /* A GET after a 409 says the Lease is still ours: renew
                         * at once with the new resourceVersion. */
                        send_renew(f, now, wall);
                }
                break;
        case OUT_CONFLICT:
                if (req == LEASE_REQ_RENEW)
                        f->n_renew_errors++;
                send_get(f, now);
                return;
        case OUT_NOT_FOUND:
                observe_missing(f, now, NULL);
                stop_leading(f, KOC_LEADER_REASON_LEASE_DELETED, now, wall);
                return;
        case OUT_TRANSIENT:
                if (req == LEASE_REQ_RENEW) {
                        f->n_renew_errors++;
                        f->renew_at = f->req_sent_at + f->retry_period;
                } else
                        f->renew_at = now + f->retry_period;
                break;
        }
}

static void answer_releasing(leader_fsm *f, lease_req req, enum outcome o, const leader_event *ev,
                             uint64_t now, uint64_t wall) {
        switch (o) {
        case OUT_OK:
                observe(f, ev->record, now);
                if (req == LEASE_REQ_RELEASE || !ev->record->holder[0]) {
                        finish(f, 0);
                        return;
                }
                if (!is_ours(f, ev->record)) {
                        finish(f, -ESTALE); /* someone else holds it already */
                        return;
                }
                break; /* still ours: release again with the new resourceVersion */
        case OUT_CONFLICT:
                send_get(f, now);
                return;
        case OUT_NOT_FOUND:
                observe_missing(f, now, NULL);
                finish(f, 0);
                return;
        case OUT_TRANSIENT:
                if (now >= f->release_deadline) {
                        finish(f, -ETIMEDOUT);
                        return;
                }
                f->retry_at = now + f->retry_period;
                if (f->retry_at > f->release_deadline)
                        f->retry_at = f->release_deadline;
                return;
        }
        if (now >= f->release_deadline)
                finish(f, -ETIMEDOUT);
        else
                send_release(f, now, wall);
}

static void on_answer(leader_fsm *f, const leader_event *ev, uint64_t now, uint64_t wall) {
        if (f->req == LEASE_REQ_NONE || ev->seq != f->req_seq)
                return; /* a late answer of a cancelled request */
        lease_req req = f->req;
        f->req = LEASE_REQ_NONE;
        if (ev->error == 0 && ev->status > 0 && ev->status < 500)
                f->contact_at = now;
        enum outcome o = classify(ev);
        switch (f->state) {
        case LEADER_FSM_ACQUIRING:
                f->state = LEADER_FSM_STANDBY;
                __attribute__((fallthrough));
        case LEADER_FSM_STANDBY:
                answer_standby(f, req, o, ev, now, wall);
                break;
        case LEADER_FSM_LEADING:
                answer_leading(f, req, o, ev, now, wall);
                break;
        case LEADER_FSM_RELEASING:
                answer_releasing(f, req, o, ev, now, wall);
                break;
        case LEADER_FSM_STOPPED:
                break;
        }
        if (f->known)
                ensure_watch(f, now);
}

/* --- watch ------------------------------------------------------------------------- */

static void on_watch_record(leader_fsm *f, const lease_record *r, uint64_t now, uint64_t wall) {
        f->contact_at = now;
        if (!observe(f, r, now))
                return;
        switch (f->state) {
        case LEADER_FSM_LEADING:
                /* Someone else wrote the Lease: authoritative, it is newer than
                 * anything we have. */
                if (!is_ours(f, &f->observed)) {
                        stop_leading(f, KOC_LEADER_REASON_HOLDER_CHANGED, now, wall);
                        break;
                }
                /* Our identity, but not our write: a misconfiguration (two
                 * processes sharing an identity) that nothing here can fix.
                 * Report it once. */
                if (!written_by_us(f, r->renew_time) && !f->foreign_reported) {
                        f->foreign_reported = true;
                        emit(f, LEADER_ACT_FOREIGN_WRITE)->record = *r;
                }
                break;
        case LEADER_FSM_RELEASING:
                /* Someone else holds it (or it is free) now: nothing to release. */
                if (!is_ours(f, &f->observed))
                        finish(f, f->observed.holder[0] ? -ESTALE : 0);
                break;
        case LEADER_FSM_STANDBY:
                /* Fresh news beats waiting for the retry of a failed request. */
                f->retry_at = 0;
                decide(f, now, wall);
                break;
        default:
                break; /* the answer of the request in flight decides */
        }
}

static void on_watch_deleted(leader_fsm *f, const char *rv, uint64_t now, uint64_t wall) {
        observe_missing(f, now, rv && strlen(rv) < LEASE_RV_MAX ? rv : NULL);
        if (f->state == LEADER_FSM_LEADING)
                stop_leading(f, KOC_LEADER_REASON_LEASE_DELETED, now, wall);
        else if (f->state == LEADER_FSM_STANDBY)
                decide(f, now, wall);
}

/* The watch resumes itself after ends, errors and 410 (core/reflector.c);
 * it stops for good only on a 403 or when it could not run at all. */
static void on_watch_closed(leader_fsm *f, const leader_event *ev, uint64_t now) {
        if (!f->watching)
                return;
        f->watching = false;
        if (f->state == LEADER_FSM_STOPPED)
                return;
        if (ev->status == 403) {
                /* No watch permission: poll like client-go (get is enough). */
                f->can_watch = false;
                f->poll_at = now + jittered_period(f);
                return;
        }
        /* It could not start (no memory, no timer): try again within a
         * retry period (the expiry timer covers a crashed leader meanwhile). */
        f->watch_at = now + jittered_period(f);
}

/* --- timers ------------------------------------------------------------------------ */

static void on_timer(leader_fsm *f, uint64_t now, uint64_t wall) {
        if (f->watch_at && now >= f->watch_at) {
                f->watch_at = 0;
                ensure_watch(f, now);
        }
        if (watch_check_applies(f) && now >= f->watch_quiet_from + f->watch_window)
                restart_watch(f, now);
        switch (f->state) {
        case LEADER_FSM_LEADING:
                if (now >= f->last_ok_send + f->renew_deadline) {
                        stop_leading(f, KOC_LEADER_REASON_RENEW_DEADLINE_EXCEEDED, now, wall);
                        return;
                }
                if (f->req == LEASE_REQ_NONE && f->renew_at && now >= f->renew_at)
                        send_renew(f, now, wall);
                break;
        case LEADER_FSM_RELEASING:
                if (now >= f->release_deadline) {
                        finish(f, -ETIMEDOUT);
                        return;
                }
                if (f->req == LEASE_REQ_NONE && f->retry_at && now >= f->retry_at)
                        send_release(f, now, wall);
                break;
        case LEADER_FSM_STANDBY:
                if (f->retry_at && now >= f->retry_at) {
                        f->retry_at = 0;
                        if (f->req == LEASE_REQ_NONE) {
                                send_get(f, now);
                                break;
                        }
                }
                if (f->poll_at && now >= f->poll_at) {
                        f->poll_at = 0;
                        if (f->req == LEASE_REQ_NONE) {
                                send_get(f, now);
                                break;
                        }
                }
                decide(f, now, wall);
                break;
        default:
                break;
        }
}

static uint64_t earliest(uint64_t a, uint64_t b) {
        if (!a)
                return b;
        if (!b)
                return a;
        return a < b ? a : b;
}

static void arm_timer(leader_fsm *f, uint64_t now) {
        uint64_t at = f->watch_at;
        switch (f->state) {
        case LEADER_FSM_LEADING:
                at = earliest(at, f->last_ok_send + f->renew_deadline);
                if (f->req == LEASE_REQ_NONE)
                        at = earliest(at, f->renew_at);
                break;
        case LEADER_FSM_RELEASING:
                at = earliest(at, f->release_deadline);
                at = earliest(at, f->retry_at);
                break;
        case LEADER_FSM_STANDBY:
                if (!f->can_watch && !f->poll_at && f->req == LEASE_REQ_NONE)
                        f->poll_at = now + jittered_period(f);
                at = earliest(at, f->retry_at);
                at = earliest(at, f->poll_at);
                if (watch_check_applies(f))
                        at = earliest(at, f->watch_quiet_from + f->watch_window);
                /* decide() waits for a pending retry: so does its timer. */
                if (f->req == LEASE_REQ_NONE && !f->retry_at)
                        at = earliest(at, f->act_at);
                break;
        case LEADER_FSM_ACQUIRING:
                break;
        case LEADER_FSM_STOPPED:
                at = 0;
                break;
        }
        if (at != f->timer_at) {
                f->timer_at = at;
                emit(f, LEADER_ACT_TIMER)->at = at;
        }
}

/* --- entry points ------------------------------------------------------------------ */

void koc__leader_fsm_init(leader_fsm *f, const leader_fsm_config *cfg) {
        memset(f, 0, sizeof *f);
        copy_str(f->identity, sizeof f->identity, cfg->identity);
        f->lease_duration = cfg->lease_duration;
        f->renew_deadline = cfg->renew_deadline;
        f->retry_period = cfg->retry_period;
        f->observe_timeout = cfg->observe_timeout;
        f->jitter_max = cfg->jitter_max;
        f->random = cfg->random;
        f->lease_duration_seconds =
                (int64_t)((cfg->lease_duration + KOC_USEC_PER_SEC - 1) / KOC_USEC_PER_SEC);
        if (f->lease_duration_seconds < 1)
                f->lease_duration_seconds = 1;
        f->state = LEADER_FSM_STOPPED;
        f->can_watch = true;
}

void koc__leader_fsm_step(leader_fsm *f, const leader_event *ev, uint64_t now, uint64_t wall) {
        f->n_actions = 0;
        switch (ev->type) {
        case LEADER_EV_START:
                if (f->state != LEADER_FSM_STOPPED)
                        break;
                f->state = LEADER_FSM_STANDBY;
                f->known = false;
                f->exists = false;
                f->led_before = false;
                f->contact_at = now;
                f->can_watch = true; /* permissions may have changed since */
                f->watch_window = 0;
                f->timer_at = 0;
                decide(f, now, wall);
                break;
        case LEADER_EV_STOP:
                stop_all(f, KOC_LEADER_REASON_CANCELLED);
                break;
        case LEADER_EV_STEP_DOWN:
                switch (f->state) {
                case LEADER_FSM_LEADING: {
                        leader_action *a = emit(f, LEADER_ACT_STOPPED);
                        a->reason = KOC_LEADER_REASON_RELEASED;
                        begin_release(f, now, wall);
                        break;
                }
                case LEADER_FSM_ACQUIRING:
                        /* Our write may make us the holder: release it then. */
                        f->step_down_pending = true;
                        break;
                case LEADER_FSM_STANDBY:
                        finish(f, 0);
                        break;
                case LEADER_FSM_STOPPED:
                        /* Stopped meanwhile (a stop queued first): nothing to
                         * release, but the step-down still ends. */
                        emit(f, LEADER_ACT_DONE)->result = 0;
                        break;
                default:
                        break;
                }
                break;
        case LEADER_EV_TIMER:
                f->timer_at = 0; /* the driver's one-shot timer has fired */
                on_timer(f, now, wall);
                break;
        case LEADER_EV_ANSWER:
                on_answer(f, ev, now, wall);
                break;
        case LEADER_EV_WATCH_OBJECT:
                if (f->watching)
                        watch_saw_event(f, now);
                if (f->state != LEADER_FSM_STOPPED && ev->record)
                        on_watch_record(f, ev->record, now, wall);
                break;
        case LEADER_EV_WATCH_DELETED:
                if (f->watching)
                        watch_saw_event(f, now);
                if (f->state != LEADER_FSM_STOPPED)
                        on_watch_deleted(f, ev->resource_version, now, wall);
                break;
        case LEADER_EV_WATCH_CLOSED:
                on_watch_closed(f, ev, now);
                break;
        }
        arm_timer(f, now);
}
