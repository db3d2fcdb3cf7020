/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The reflector's state machine (core/reflector.c is its driver), without
 * I/O, as the leader's (leader/fsm.c).
 *
 * koc__reflector_fsm_step() takes one event and the current time
 * (CLOCK_BOOTTIME, injected) and leaves a list of actions for the driver:
 * send a list page, start or stop the watch, arm the one timer, deliver a
 * page's items, call the owner's handlers, say a rejected answer.  Every
 * decision of the reflector (what comes next, backoff, a list's caps and
 * continue loops, 410, the streaming list's fallback) is here; the driver
 * only turns actions into requests and handler calls and feeds their results
 * back as events.
 *
 * States:
 *   IDLE       not started
 *   LIST_DUE   the timer is armed for a list (or a streaming list)
 *   WATCH_DUE  the timer is armed for a watch (a list when there is no
 *              resourceVersion to resume from)
 *   LISTING    a list page request in flight (a list begun before it may
 *              have a page waiting for delivery)
 *   STREAMING  a streaming list (a watch with sendInitialEvents) before its
 *              end marker; the timer checks that it is not silent
 *   WATCHING   a watch in flight
 *   ENDED      a watch ended and the owner decides (the watch_ended handler):
 *              RESUME goes on; without it the reflector stays here for good
 *
 * Rules for the driver:
 * - Actions run in order; DELIVER_PAGE, DELIVER_ITEM, EMIT_EVENT and
 *   ASK_OWNER are always the last action of a step.  After EMIT_EVENT, and
 *   after ASK_OWNER when the owner says stop, the driver touches nothing
 *   (the owner may have freed it).
 * - REQUEST_PAGE and WATCH_START may fail at once: the driver steps
 *   REQUEST_FAILED (which changes the state) and runs the remaining actions
 *   only while they still apply: DELIVER_PAGE only in LISTING.
 * - A page's items are stepped one by one (ITEM: DELIVER_ITEM or the list is
 *   abandoned; ITEM_REFUSED when the owner's list_item refused it), while the
 *   state is LISTING, then PAGE_DELIVERED.  A page waiting for delivery
 *   (DELIVER_PAGE with defer) is delivered before the next page's answer is
 *   stepped.
 * - A watch that sent an ERROR event is stopped by the driver, one that
 *   closed is gone; then WATCH_END is stepped.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "reflector.h"

#define KOC__REFLECTOR_FSM_MAX_ACTIONS 12

typedef enum koc__reflector_state {
        KOC__REFLECTOR_IDLE,
        KOC__REFLECTOR_LIST_DUE,
        KOC__REFLECTOR_WATCH_DUE,
        KOC__REFLECTOR_LISTING,
        KOC__REFLECTOR_STREAMING,
        KOC__REFLECTOR_WATCHING,
        KOC__REFLECTOR_ENDED,
        _KOC__REFLECTOR_STATE_MAX,
} koc__reflector_state;

const char *koc__reflector_state_to_string(koc__reflector_state s);

typedef enum koc__reflector_event_type {
        KOC__REFLECTOR_EV_START,
        KOC__REFLECTOR_EV_TIMER,
        /* REQUEST_PAGE or WATCH_START could not be sent: error. */
        KOC__REFLECTOR_EV_REQUEST_FAILED,
        /* WATCH_START went out. */
        KOC__REFLECTOR_EV_WATCH_STARTED,
        /* A list page answered: error, status, is_object, and from its
         * metadata continue_token and resource_version; message. */
        KOC__REFLECTOR_EV_PAGE,
        /* One object of the page being delivered. */
        KOC__REFLECTOR_EV_ITEM,
        /* The owner's list_item refused the object: error. */
        KOC__REFLECTOR_EV_ITEM_REFUSED,
        /* Every item of a page was delivered. */
        KOC__REFLECTOR_EV_PAGE_DELIVERED,
        /* A watch event: watch_type (ADDED, MODIFIED, DELETED, BOOKMARK),
         * is_object, resource_version, initial_events_end. */
        KOC__REFLECTOR_EV_WATCH_OBJECT,
        /* The watch ended: error_event (an ERROR event, else it closed),
         * status, error, message. */
        KOC__REFLECTOR_EV_WATCH_END,
        /* The owner lets a watch that ended go on (in ENDED): the fields of
         * the WATCH_END again. */
        KOC__REFLECTOR_EV_RESUME,
        /* koc__reflector_restart_watch(). */
        KOC__REFLECTOR_EV_RESTART,
} koc__reflector_event_type;

typedef struct koc__reflector_event {
        koc__reflector_event_type type;
        int error;
        long status;
        bool is_object;
        const char *continue_token;
        const char *resource_version;
        const char *message;
        koc_watch_event_type watch_type;
        bool initial_events_end;
        bool error_event;
} koc__reflector_event;

typedef enum koc__reflector_action_type {
        KOC__REFLECTOR_ACT_TIMER,          /* (re)arm the one timer, `delay` from now */
        KOC__REFLECTOR_ACT_REQUEST_PAGE,   /* GET a page: continue_token (NULL: the first) */
        KOC__REFLECTOR_ACT_CANCEL_REQUEST, /* the page request in flight */
        KOC__REFLECTOR_ACT_WATCH_START,    /* stream, resource_version, fresh, timeout_seconds */
        KOC__REFLECTOR_ACT_WATCH_STOP,
        KOC__REFLECTOR_ACT_DELIVER_PAGE, /* the page just answered: defer (after the
                                          * next page's request) or now */
        KOC__REFLECTOR_ACT_DROP_PAGE,    /* a deferred page's items are not delivered */
        KOC__REFLECTOR_ACT_DELIVER_ITEM, /* the object to the owner's list_item */
        KOC__REFLECTOR_ACT_LIST_BEGIN,
        KOC__REFLECTOR_ACT_LIST_END,   /* resource_version */
        KOC__REFLECTOR_ACT_LIST_ABORT,
        KOC__REFLECTOR_ACT_EMIT_EVENT, /* the watch event's object to the owner: watch_type */
        KOC__REFLECTOR_ACT_ASK_OWNER,  /* watch_ended(status, error) */
        KOC__REFLECTOR_ACT_REJECT,     /* reason, what, status, detail, delay: say it */
        KOC__REFLECTOR_ACT_LOG,        /* level, what, status, detail */
} koc__reflector_action_type;

typedef struct koc__reflector_action {
        koc__reflector_action_type type;
        uint64_t delay;             /* TIMER; REJECT: the retry */
        const char *continue_token; /* REQUEST_PAGE; the machine's, valid until the next step */
        const char *resource_version; /* WATCH_START, LIST_END: the machine's (NULL: none) */
        bool stream;                  /* WATCH_START */
        bool fresh;                   /* WATCH_START: on a new connection */
        unsigned timeout_seconds;     /* WATCH_START */
        bool defer;                   /* DELIVER_PAGE */
        koc_watch_event_type watch_type; /* EMIT_EVENT */
        koc_reflector_reject reason;     /* REJECT */
        int level;                       /* LOG: KOC_LOG_* */
        const char *what;                /* REJECT: the request; LOG: the message */
        long status;                     /* REJECT, LOG, ASK_OWNER */
        int error;                       /* ASK_OWNER */
        const char *detail;              /* REJECT, LOG: the event's message or the machine's */
} koc__reflector_action;

typedef struct koc__reflector_fsm_config {
        bool watch_only;
        koc_reflector_list_mode list_mode;
        unsigned page_size;            /* 0: 500 */
        uint64_t backoff_initial_usec; /* 0: 800 ms */
        uint64_t backoff_max_usec;     /* 0: 30 s */
        uint64_t clean_close_max_usec; /* 0: backoff_max */
        /* A streaming list silent this long without its end marker is taken
         * for a server that ignored sendInitialEvents (0: 10 s). */
        uint64_t stream_silence_usec;
        size_t max_list_objects;       /* 0: KOC_REFLECTOR_MAX_LIST_OBJECTS_DEFAULT */
        const char *resource_version;  /* watch_only: the first resume point */
        /* Uniform random number in [0, n); NULL: no randomness (jitter 0,
         * watch timeouts of 300 s). */
        uint64_t (*random)(uint64_t n);
} koc__reflector_fsm_config;

typedef struct koc__reflector_fsm {
        /* configuration */
        bool watch_only;
        koc_reflector_list_mode list_mode;
        unsigned page_size;
        uint64_t backoff_initial, backoff_max, clean_close_max, stream_silence;
        size_t max_list_objects, max_list_pages;
        uint64_t (*random)(uint64_t n);

        koc__reflector_state state;

        /* The resume point, and the backoff. */
        char *rv;
        uint64_t backoff, last_failure_at;
        bool fresh_connection; /* the next watch opens a new connection */
        unsigned gone_streak;  /* 410s since the last watch event */

        /* The list in progress. */
        bool list_begun;
        bool page_pending;    /* a page's items wait for delivery (DELIVER_PAGE defer) */
        bool list_ending;     /* the last page is being delivered */
        char *list_rv;        /* ... and the list's resourceVersion */
        char *continue_token; /* of the page in flight */
        size_t list_objects, list_pages;
        uint64_t *tokens; /* hashes of the list's continue tokens (open addressing, 0 free) */
        size_t tokens_cap, tokens_n;

        /* The watch in flight (or the one that just ended). */
        uint64_t watch_started_at;
        bool watch_saw_event;
        /* A streaming list's events, and their number when the silence
         * timer last looked. */
        uint64_t stream_events, stream_events_seen;

        koc_reflector_stats stats;
        char msg[128]; /* the detail of a REJECT the machine wrote */

        /* Output of the last step. */
        size_t n_actions;
        koc__reflector_action actions[KOC__REFLECTOR_FSM_MAX_ACTIONS];
} koc__reflector_fsm;

/* -ENOMEM, or 0. */
int koc__reflector_fsm_init(koc__reflector_fsm *f, const koc__reflector_fsm_config *cfg);
void koc__reflector_fsm_done(koc__reflector_fsm *f);
/* Runs one event at boottime `now`; fills f->actions. */
void koc__reflector_fsm_step(koc__reflector_fsm *f, const koc__reflector_event *ev, uint64_t now);
