/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The leader election state machine, without I/O.
 *
 * koc__leader_fsm_step() takes one event and the current time (CLOCK_BOOTTIME and
 * CLOCK_REALTIME, both injected) and leaves a list of actions for the driver:
 * API requests, watch start/stop, one timer, callbacks.  The driver publishes
 * the leadership state (koc__leader_fsm_valid_until()) before it runs the actions,
 * so the state handle reads false before any stopped callback (invariant 4).
 *
 * At most one request (GET, create or update) is in flight at a time; the
 * watch runs beside it.  Answers carry the sequence number of their request,
 * so late answers of cancelled requests are ignored.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "koc/leader.h"

#define LEASE_HOLDER_MAX 256 /* identities are at most 253 characters */
#define LEASE_RV_MAX 64
#define LEADER_FSM_MAX_ACTIONS 16

/* client-go's LeaderElectionRecord, as stored in a Lease's spec (its JSON
 * form: lease-record.h). */
typedef struct lease_record {
        char holder[LEASE_HOLDER_MAX];  /* "" when free or absent */
        bool holder_truncated;          /* longer than the buffer: never ours */
        int64_t lease_duration_seconds; /* 0 when absent */
        uint64_t acquire_time;          /* usec since the epoch, 0 when absent */
        uint64_t renew_time;
        uint64_t lease_transitions;
        char resource_version[LEASE_RV_MAX];
} lease_record;

enum leader_fsm_state {
        LEADER_FSM_STOPPED = 0,
        LEADER_FSM_STANDBY,   /* following the Lease; maybe a GET in flight */
        LEADER_FSM_ACQUIRING, /* a create or update for the Lease in flight */
        LEADER_FSM_LEADING,
        LEADER_FSM_RELEASING, /* the release write (and its retries) */
};

const char *koc__leader_fsm_state_to_string(enum leader_fsm_state s);

typedef enum lease_req {
        LEASE_REQ_NONE = 0,
        LEASE_REQ_GET,
        LEASE_REQ_CREATE,
        LEASE_REQ_ACQUIRE, /* update: take over or re-take our own record */
        LEASE_REQ_RENEW,
        LEASE_REQ_RELEASE,
} lease_req;

const char *koc__lease_req_to_string(lease_req r);

enum leader_event_type {
        LEADER_EV_START,
        LEADER_EV_STOP,
        LEADER_EV_STEP_DOWN,
        LEADER_EV_TIMER,
        LEADER_EV_ANSWER,        /* a request was answered (or failed) */
        LEADER_EV_WATCH_OBJECT,  /* ADDED or MODIFIED */
        LEADER_EV_WATCH_DELETED, /* resource_version: of the deletion, or NULL */
        /* The watch stopped for good (it resumes itself otherwise: see
         * leader-internal.h): 403, or it could not run at all. */
        LEADER_EV_WATCH_CLOSED,
};

typedef struct leader_event {
        enum leader_event_type type;
        /* ANSWER */
        uint64_t seq;
        int error;                  /* transport error (negative errno) or 0 */
        long status;                /* HTTP status; ANSWER and WATCH_CLOSED */
        const lease_record *record; /* the parsed body (2xx, watch object), or NULL */
        /* WATCH_DELETED */
        const char *resource_version;
} leader_event;

enum leader_action_type {
        LEADER_ACT_GET,
        LEADER_ACT_CREATE,
        LEADER_ACT_UPDATE,
        LEADER_ACT_CANCEL_REQUEST,
        LEADER_ACT_WATCH_START,
        LEADER_ACT_WATCH_STOP,
        LEADER_ACT_TIMER,         /* arm the one timer at `at`; 0 disarms */
        LEADER_ACT_STARTED,       /* started leading, term */
        LEADER_ACT_STOPPED,       /* stopped leading (or gave up), reason */
        LEADER_ACT_NEW_LEADER,    /* holder changed: record.holder */
        LEADER_ACT_DONE,          /* step-down finished, result */
        LEADER_ACT_FOREIGN_WRITE, /* someone else renews with our identity: record */
        /* The watch saw no renewal for `quiet` while record.holder holds the
         * Lease: end it and start it again on a new connection (never one
         * from the pool), resuming from record.resource_version.  Over
         * HTTP/1.1 nothing else notices a connection whose path died. */
        LEADER_ACT_WATCH_RESTART,
};

typedef struct leader_action {
        enum leader_action_type type;
        lease_req req;            /* GET, CREATE, UPDATE: which request */
        uint64_t seq;             /* GET, CREATE, UPDATE: its sequence number */
        uint64_t timeout;         /* GET, CREATE, UPDATE: request timeout */
        lease_record record;      /* CREATE, UPDATE: what to write (UPDATE: with the RV);
                                   * WATCH_START: resource_version to resume from;
                                   * NEW_LEADER: holder */
        uint64_t at;              /* TIMER */
        uint64_t term;            /* STARTED */
        koc_leader_reason reason; /* STOPPED */
        int result;               /* DONE */
        uint64_t quiet;           /* WATCH_RESTART: how long the watch was silent */
} leader_action;

typedef struct leader_fsm_config {
        const char *identity;
        uint64_t lease_duration;
        uint64_t renew_deadline;
        uint64_t retry_period;
        uint64_t observe_timeout;
        /* Followers wait a random [0, jitter_max) before writing, so a fleet
         * does not write in the same instant. */
        uint64_t jitter_max;
        /* Uniform random number in [0, n); NULL: no jitter at all. */
        uint64_t (*random)(uint64_t n);
} leader_fsm_config;

typedef struct leader_fsm {
        /* configuration */
        char identity[LEASE_HOLDER_MAX];
        uint64_t lease_duration, renew_deadline, retry_period, observe_timeout, jitter_max;
        int64_t lease_duration_seconds; /* written to the Lease: lease_duration rounded up */
        uint64_t (*random)(uint64_t n);

        enum leader_fsm_state state;

        /* What we know of the Lease. */
        bool known; /* an answer or event told us its state */
        bool exists;
        lease_record observed;
        uint64_t observed_at; /* our clock when the record last changed */
        uint64_t jitter;      /* drawn at each change of the record */
        char watch_rv[LEASE_RV_MAX];
        /* resourceVersion of the deletion the watch reported ("" unknown):
         * answers older than it describe a Lease that is gone. */
        char deleted_rv[LEASE_RV_MAX];

        /* The one request in flight. */
        lease_req req;
        uint64_t req_seq;
        uint64_t req_sent_at;

        /* The watch (it resumes itself; only its start and its end for good
         * are ours). */
        bool can_watch; /* false after a 403: poll instead */
        bool watching;
        /* The watch's liveness while someone holds the Lease: every renewal
         * is an event on it, so silence longer than watch_window means a
         * dead connection (or a holder that stopped renewing), and the
         * watch is restarted on a new connection.  The window is two retry
         * periods, or twice the holder's renewal interval as seen on one
         * connection when that is longer (a holder with a longer retry
         * period), at most the record's lease duration; it doubles after
         * each restart that brought nothing.  None of this touches
         * observed_at: expiry stays as it is (invariant 2). */
        uint64_t watch_quiet_from; /* the last watch event, or the watch's (re)start */
        uint64_t watch_event_at;   /* the last event on this connection; 0: none yet */
        uint64_t watch_window;
        uint64_t n_watch_restarts;

        /* Timers (0: not armed). */
        uint64_t act_at;   /* STANDBY: acquire at (cached, see decide) */
        uint64_t poll_at;  /* STANDBY without watch: next GET */
        uint64_t retry_at; /* retry after a failed request */
        uint64_t renew_at; /* LEADING: next renewal */
        uint64_t watch_at; /* restart the watch */
        uint64_t timer_at; /* what the driver's timer is armed at */

        /* Leadership. */
        bool led_before;
        uint64_t last_ok_send; /* send time of the last successful acquire/renew */
        uint64_t term;         /* leaseTransitions of the current term */
        uint64_t term_acquire_time;
        uint64_t contact_at; /* start, or the last answer from the server */

        /* Step-down. */
        bool step_down_pending; /* asked while ACQUIRING */
        uint64_t release_deadline;

        /* Counters (for tests and logs). */
        uint64_t n_renew_errors;

        /* renewTime of our last writes: a record naming us with a renewTime
         * we never wrote comes from another process using our identity. */
        uint64_t written[16];
        unsigned n_written;
        bool foreign_reported;

        /* Output of the last step. */
        size_t n_actions;
        leader_action actions[LEADER_FSM_MAX_ACTIONS];
} leader_fsm;

void koc__leader_fsm_init(leader_fsm *f, const leader_fsm_config *cfg);
/* Runs one event at boottime `now` and wall-clock `wall` (usec since the
 * epoch, for the timestamps written to the Lease).  Fills f->actions. */
void koc__leader_fsm_step(leader_fsm *f, const leader_event *ev, uint64_t now, uint64_t wall);
/* Boottime until which this process may call itself leader; 0 when not
 * leading (invariant 3: last_ok_send + renew_deadline). */
uint64_t koc__leader_fsm_valid_until(const leader_fsm *f);
/* True when rv is newer than cur: ordered by koc__rv_compare
 * (core/resource-version.h); ones it cannot order are newer when they differ;
 * anything is newer than "". */
bool koc__lease_rv_newer(const char *rv, const char *cur);
