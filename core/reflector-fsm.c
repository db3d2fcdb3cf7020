/* SPDX-License-Identifier: Apache-2.0 */
/* The reflector's state machine: see reflector-fsm.h. */
#include "reflector-fsm.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "koc/log.h"
#include "koc/time.h"
#include "util.h"

#define QUIET_PERIOD_USEC (120 * KOC_USEC_PER_SEC)
/* A watch that ends cleanly sooner than this, with nothing on it, counts as
 * a failure, so that a server closing watches at once is not hammered. */
#define MIN_WATCH_USEC (1 * KOC_USEC_PER_SEC)
/* A streaming list with no event for this long and no end marker: the
 * server ignored sendInitialEvents (it then sends what exists, if anything,
 * and goes quiet), not a list still on its way. */
#define STREAM_SILENCE_USEC (10 * KOC_USEC_PER_SEC)

const char *koc__reflector_state_to_string(koc__reflector_state s) {
        static const char *const names[_KOC__REFLECTOR_STATE_MAX] = {
                [KOC__REFLECTOR_IDLE] = "idle",           [KOC__REFLECTOR_LIST_DUE] = "list-due",
                [KOC__REFLECTOR_WATCH_DUE] = "watch-due", [KOC__REFLECTOR_LISTING] = "listing",
                [KOC__REFLECTOR_STREAMING] = "streaming", [KOC__REFLECTOR_WATCHING] = "watching",
                [KOC__REFLECTOR_ENDED] = "ended",
        };
        return (unsigned)s < _KOC__REFLECTOR_STATE_MAX ? names[s] : "unknown";
}

static koc__reflector_action *emit(koc__reflector_fsm *f, koc__reflector_action_type type) {
        /* The longest step (a rejected streaming list item) emits six. */
        assert(f->n_actions < KOC__REFLECTOR_FSM_MAX_ACTIONS);
        koc__reflector_action *a = &f->actions[f->n_actions++];
        *a = (koc__reflector_action){.type = type};
        return a;
}

static uint64_t rnd(koc__reflector_fsm *f, uint64_t n) {
        return f->random && n > 0 ? f->random(n) : 0;
}

int koc__reflector_fsm_init(koc__reflector_fsm *f, const koc__reflector_fsm_config *cfg) {
        *f = (koc__reflector_fsm){
                .watch_only = cfg->watch_only,
                .list_mode = cfg->list_mode,
                .page_size = cfg->page_size ? cfg->page_size : 500,
                .backoff_initial = cfg->backoff_initial_usec ? cfg->backoff_initial_usec
                                                             : 800 * KOC_USEC_PER_MSEC,
                .backoff_max = cfg->backoff_max_usec ? cfg->backoff_max_usec
                                                     : 30 * KOC_USEC_PER_SEC,
                .max_list_objects = cfg->max_list_objects ? cfg->max_list_objects
                                                          : KOC_REFLECTOR_MAX_LIST_OBJECTS_DEFAULT,
                .random = cfg->random,
                .state = KOC__REFLECTOR_IDLE,
        };
        f->clean_close_max = cfg->clean_close_max_usec ? cfg->clean_close_max_usec : f->backoff_max;
        f->stream_silence = cfg->stream_silence_usec ? cfg->stream_silence_usec
                                                     : STREAM_SILENCE_USEC;
        f->backoff = f->backoff_initial;
        f->max_list_pages = f->max_list_objects / f->page_size * 2 + 1000;
        if (cfg->watch_only && cfg->resource_version && *cfg->resource_version)
                return koc__set_string(&f->rv, cfg->resource_version);
        return 0;
}

static void list_reset(koc__reflector_fsm *f) {
        f->list_objects = f->list_pages = 0;
        free(f->tokens);
        f->tokens = NULL;
        f->tokens_n = f->tokens_cap = 0;
        f->list_ending = false;
        free(f->list_rv);
        f->list_rv = NULL;
}

void koc__reflector_fsm_done(koc__reflector_fsm *f) {
        list_reset(f);
        free(f->rv);
        free(f->continue_token);
        f->rv = f->continue_token = NULL;
}

/* --- backoff and scheduling ------------------------------------------------------ */

static uint64_t next_backoff_capped(koc__reflector_fsm *f, uint64_t now, uint64_t cap) {
        if (f->last_failure_at && now - f->last_failure_at > QUIET_PERIOD_USEC)
                f->backoff = f->backoff_initial;
        f->last_failure_at = now;
        f->stats.failures++;
        uint64_t d = f->backoff;
        /* Jitter 1.0 as client-go's: between d and 2d, within the cap. */
        d += rnd(f, d);
        if (d > cap)
                d = cap;
        f->backoff = f->backoff * 2 < f->backoff_max ? f->backoff * 2 : f->backoff_max;
        return d;
}

static uint64_t next_backoff(koc__reflector_fsm *f, uint64_t now) {
        return next_backoff_capped(f, now, f->backoff_max);
}

/* The list in progress, if any, will not end: its items must not count. */
static void list_abandon(koc__reflector_fsm *f) {
        if (f->page_pending)
                emit(f, KOC__REFLECTOR_ACT_DROP_PAGE);
        f->page_pending = false;
        if (f->state == KOC__REFLECTOR_LISTING)
                emit(f, KOC__REFLECTOR_ACT_CANCEL_REQUEST);
        list_reset(f);
        if (!f->list_begun)
                return;
        f->list_begun = false;
        f->stats.lists_abandoned++;
        emit(f, KOC__REFLECTOR_ACT_LIST_ABORT);
}

/* The next step (a list, or a watch) after `delay`: from the loop, never
 * inside the current handler.  A step scheduled in the middle of a list
 * means the list failed.  The watch, if any, was stopped by the caller. */
static void schedule(koc__reflector_fsm *f, bool list, uint64_t delay) {
        list_abandon(f);
        if (list && f->watch_only) {
                /* The single-object re-list: a watch without a resume
                 * point, which starts with what exists as ADDED events. */
                list = false;
                free(f->rv);
                f->rv = NULL;
        }
        if (list) {
                /* A re-list starts from scratch. */
                free(f->continue_token);
                free(f->rv);
                f->continue_token = f->rv = NULL;
        }
        f->state = list ? KOC__REFLECTOR_LIST_DUE : KOC__REFLECTOR_WATCH_DUE;
        emit(f, KOC__REFLECTOR_ACT_TIMER)->delay = delay;
}

static koc_reflector_reject reject_reason(long status, int error) {
        if (error == -EBADMSG)
                return KOC_REFLECTOR_REJECT_INVALID;
        if (error == -EMSGSIZE)
                return KOC_REFLECTOR_REJECT_TOO_LARGE;
        if (error < 0)
                return KOC_REFLECTOR_REJECT_TRANSPORT;
        return status >= 300 || status < 200 ? KOC_REFLECTOR_REJECT_STATUS
                                              : KOC_REFLECTOR_REJECT_INVALID;
}

static void reject(koc__reflector_fsm *f, koc_reflector_reject why, const char *what, long status,
                   const char *detail, uint64_t retry_in) {
        f->stats.rejected[why]++;
        koc__reflector_action *a = emit(f, KOC__REFLECTOR_ACT_REJECT);
        a->reason = why;
        a->what = what;
        a->status = status;
        a->detail = detail;
        a->delay = retry_in;
}

static void say(koc__reflector_fsm *f, int level, const char *what, long status,
                const char *detail) {
        koc__reflector_action *a = emit(f, KOC__REFLECTOR_ACT_LOG);
        a->level = level;
        a->what = what;
        a->status = status;
        a->detail = detail;
}

/* Abandons the list in progress because of the answer and lists again after
 * a backoff. */
static void list_rejected(koc__reflector_fsm *f, uint64_t now, koc_reflector_reject why,
                          const char *what, long status, const char *detail) {
        uint64_t d = next_backoff(f, now);
        reject(f, why, what, status, detail, d);
        schedule(f, true, d);
}

/* A 410 (Gone, Expired): the resume point or the continue token is too old,
 * and a re-list is the way on.  The first is re-listed at once, as
 * client-go does; a 410 again with no watch event since (a server whose
 * watches cannot start from what its own lists say) is said and backs off,
 * since each turn lists everything again and, while the new list is staged,
 * holds a second copy of the cache. */
static void relist_gone(koc__reflector_fsm *f, uint64_t now, const char *what,
                        const char *detail) {
        if (f->gone_streak++ == 0) {
                say(f, KOC_LOG_DEBUG, "410 Gone: listing again", 410, detail);
                schedule(f, true, 0);
                return;
        }
        uint64_t d = next_backoff(f, now);
        snprintf(f->msg, sizeof f->msg,
                 "410 Gone %u times in a row with no watch event between%s%s", f->gone_streak,
                 detail && *detail ? ": " : "", detail ? detail : "");
        reject(f, KOC_REFLECTOR_REJECT_GONE, what, 410, f->msg, d);
        schedule(f, true, d);
}

/* --- starting requests ------------------------------------------------------------ */

static void begin_list(koc__reflector_fsm *f);

/* A list begins when its first request is sent, not when its first page
 * arrives: the list's snapshot is taken at some point after the send, so the
 * owner's own writes answered after it may be newer than what the list says
 * (the store keeps those, see framework/controller/store.c). */
static void start_list_page(koc__reflector_fsm *f) {
        f->state = KOC__REFLECTOR_LISTING;
        f->stats.list_requests++;
        if (!f->continue_token)
                begin_list(f);
        emit(f, KOC__REFLECTOR_ACT_REQUEST_PAGE)->continue_token = f->continue_token;
}

static void start_watch(koc__reflector_fsm *f, uint64_t now, bool stream) {
        f->state = stream ? KOC__REFLECTOR_STREAMING : KOC__REFLECTOR_WATCHING;
        f->watch_started_at = now;
        f->watch_saw_event = false;
        if (stream) {
                begin_list(f); /* a streaming list begins when sent, too */
                f->stream_events = f->stream_events_seen = 0;
                emit(f, KOC__REFLECTOR_ACT_TIMER)->delay = f->stream_silence;
        }
        koc__reflector_action *a = emit(f, KOC__REFLECTOR_ACT_WATCH_START);
        a->stream = stream;
        /* A streaming list from the most recent state ("" and NotOlderThan:
         * a consistent read, as client-go after a re-list). */
        a->resource_version = stream ? NULL : f->rv;
        a->fresh = f->fresh_connection;
        /* client-go: a random timeout between 5 and 10 minutes, so that
         * many watches do not all restart at the same time. */
        a->timeout_seconds = 300 + (unsigned)rnd(f, 300);
}

static void on_timer(koc__reflector_fsm *f, uint64_t now) {
        if (f->state == KOC__REFLECTOR_WATCH_DUE && (f->rv || f->watch_only))
                start_watch(f, now, false);
        else if (f->list_mode != KOC_REFLECTOR_LIST_PAGES && !f->stats.stream_unsupported)
                start_watch(f, now, true);
        else
                start_list_page(f);
}

static void on_request_failed(koc__reflector_fsm *f, const koc__reflector_event *ev,
                              uint64_t now) {
        bool list = f->state == KOC__REFLECTOR_LISTING;
        snprintf(f->msg, sizeof f->msg, "%s", strerror(ev->error < 0 ? -ev->error : EIO));
        say(f, KOC_LOG_WARN, list ? "cannot list" : "cannot watch", 0, f->msg);
        schedule(f, list, next_backoff(f, now));
}

static void on_watch_started(koc__reflector_fsm *f) {
        f->fresh_connection = false;
        f->stats.watches++;
        if (f->state == KOC__REFLECTOR_STREAMING)
                f->stats.streams++;
}

/* --- list ------------------------------------------------------------------------ */

static uint64_t token_hash(const char *s) {
        uint64_t h = 14695981039346656037ull; /* FNV-1a */
        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * 1099511628211ull;
        return h ? h : 1;
}

/* Notes a continue token of the list in progress: false when it came
 * before (the server sends the list in a loop), or when out of memory. */
static bool token_first_time(koc__reflector_fsm *f, const char *token) {
        if ((f->tokens_n + 1) * 2 > f->tokens_cap) {
                size_t cap = f->tokens_cap ? f->tokens_cap * 2 : 64;
                uint64_t *n = calloc(cap, sizeof *n);
                if (!n)
                        return false;
                for (size_t i = 0; i < f->tokens_cap; i++)
                        for (size_t j = f->tokens[i] & (cap - 1); f->tokens[i];
                             j = (j + 1) & (cap - 1))
                                if (!n[j]) {
                                        n[j] = f->tokens[i];
                                        break;
                                }
                free(f->tokens);
                f->tokens = n;
                f->tokens_cap = cap;
        }
        uint64_t h = token_hash(token);
        for (size_t j = h & (f->tokens_cap - 1);; j = (j + 1) & (f->tokens_cap - 1)) {
                if (f->tokens[j] == h)
                        return false;
                if (!f->tokens[j]) {
                        f->tokens[j] = h;
                        f->tokens_n++;
                        return true;
                }
        }
}

static void begin_list(koc__reflector_fsm *f) {
        if (f->list_begun)
                return;
        f->list_begun = true;
        emit(f, KOC__REFLECTOR_ACT_LIST_BEGIN);
}

/* The list ended with resourceVersion rv (the machine's list_rv, or an
 * event's): the watch goes on from there. */
static void end_list(koc__reflector_fsm *f, const char *rv) {
        if (rv != f->list_rv && koc__set_string(&f->list_rv, rv) < 0) {
                /* Out of memory: the old resume point stays. */
        } else if (f->list_rv) {
                free(f->rv);
                f->rv = f->list_rv;
                f->list_rv = NULL;
        } else {
                free(f->rv);
                f->rv = NULL;
        }
        free(f->continue_token);
        f->continue_token = NULL;
        f->list_begun = false;
        list_reset(f);
        f->stats.lists++;
        emit(f, KOC__REFLECTOR_ACT_LIST_END)->resource_version = f->rv;
}

static const char *list_what(const koc__reflector_fsm *f) {
        return f->state == KOC__REFLECTOR_STREAMING ? "streaming list" : "list page";
}

/* An object of the list was refused (a cap): the list is abandoned. */
static void item_rejected(koc__reflector_fsm *f, uint64_t now) {
        const char *what = list_what(f);
        if (f->state == KOC__REFLECTOR_STREAMING)
                emit(f, KOC__REFLECTOR_ACT_WATCH_STOP);
        list_rejected(f, now, KOC_REFLECTOR_REJECT_LIST_TOO_LARGE, what, 200, f->msg);
}

/* One more object of the list in progress. */
static void on_item(koc__reflector_fsm *f, uint64_t now) {
        if (++f->list_objects > f->max_list_objects) {
                snprintf(f->msg, sizeof f->msg,
                         "the list has more than %zu objects (max_list_objects)",
                         f->max_list_objects);
                item_rejected(f, now);
                return;
        }
        emit(f, KOC__REFLECTOR_ACT_DELIVER_ITEM);
}

static void on_item_refused(koc__reflector_fsm *f, int error, uint64_t now) {
        snprintf(f->msg, sizeof f->msg, "%s",
                 error == -EFBIG ? "the list's objects exceed the cap on their bytes "
                                   "(max_list_bytes)"
                                 : strerror(error < 0 ? -error : EIO));
        item_rejected(f, now);
}

static void on_page(koc__reflector_fsm *f, const koc__reflector_event *ev, uint64_t now) {
        const char *what = f->continue_token ? "list page" : "list";

        if (ev->error < 0 || ev->status != 200 || !ev->is_object) {
                if (ev->status == 410 && f->continue_token) {
                        /* The continue token expired: list again from the start. */
                        relist_gone(f, now, what, "the list's continue token expired");
                        return;
                }
                list_rejected(f, now, reject_reason(ev->status, ev->error), what, ev->status,
                              ev->error == 0 && ev->status == 200 ? "the answer is not an object"
                                                                  : ev->message);
                return;
        }
        if (++f->list_pages > f->max_list_pages) {
                snprintf(f->msg, sizeof f->msg, "the list has more than %zu pages",
                         f->max_list_pages);
                list_rejected(f, now, KOC_REFLECTOR_REJECT_LIST_TOO_LARGE, what, ev->status,
                              f->msg);
                return;
        }
        const char *cont = ev->continue_token;
        if (cont && *cont) {
                if (!token_first_time(f, cont)) {
                        /* A server that sends the same pages again would
                         * grow the list for ever. */
                        list_rejected(f, now, KOC_REFLECTOR_REJECT_CONTINUE_LOOP, what,
                                      ev->status, "the continue token came before in this list");
                        return;
                }
                if (koc__set_string(&f->continue_token, cont) < 0) {
                        schedule(f, true, next_backoff(f, now));
                        return;
                }
                /* The next page's request goes out before this page's items
                 * are delivered, so that the server prepares it meanwhile. */
                start_list_page(f);
                f->page_pending = true;
                emit(f, KOC__REFLECTOR_ACT_DELIVER_PAGE)->defer = true;
                return;
        }
        f->list_ending = true;
        (void)koc__set_string(&f->list_rv, ev->resource_version);
        emit(f, KOC__REFLECTOR_ACT_DELIVER_PAGE)->defer = false;
}

static void on_page_delivered(koc__reflector_fsm *f, uint64_t now) {
        f->page_pending = false;
        if (!f->list_ending)
                return;
        end_list(f, f->list_rv);
        start_watch(f, now, false);
}

/* --- watch ------------------------------------------------------------------------ */

/* Falls back to paginated lists for good (AUTO mode). */
static void stream_refused(koc__reflector_fsm *f, long status, const char *why) {
        f->stats.stream_unsupported = true;
        say(f, KOC_LOG_INFO, "streaming list not available: listing with pages instead", status,
            why);
        schedule(f, true, 0);
}

/* Refusals a streaming list does not come back from: the request itself
 * was not accepted.  Not 410 (re-list), 429 and server errors (retry). */
static bool is_refusal(long status) {
        return status >= 400 && status != 410 && status != 429 && (status < 500 || status == 501);
}

/* A streaming list's events until its end marker. */
static void on_stream_object(koc__reflector_fsm *f, const koc__reflector_event *ev,
                             uint64_t now) {
        f->stream_events++;
        switch (ev->watch_type) {
        case KOC_WATCH_ADDED:
        case KOC_WATCH_MODIFIED:
                f->watch_saw_event = true;
                if (ev->is_object)
                        on_item(f, now);
                return;
        case KOC_WATCH_BOOKMARK:
                f->watch_saw_event = true;
                if (!ev->initial_events_end)
                        return;
                f->state = KOC__REFLECTOR_WATCHING;
                f->stats.streams_done++;
                end_list(f, ev->resource_version);
                return;
        default:
                /* DELETED is not sent before the end marker; the end's
                 * re-list semantics remove what was not listed anyway. */
                return;
        }
}

/* The silence timer of a streaming list: events since the last look re-arm
 * it; none means a server that ignored sendInitialEvents and will never send
 * the end marker. */
static void on_stream_timer(koc__reflector_fsm *f, uint64_t now) {
        if (f->stream_events != f->stream_events_seen) {
                f->stream_events_seen = f->stream_events;
                emit(f, KOC__REFLECTOR_ACT_TIMER)->delay = f->stream_silence;
                return;
        }
        emit(f, KOC__REFLECTOR_ACT_WATCH_STOP);
        const char *why = "no end marker and no event within the bound (sendInitialEvents "
                          "ignored)";
        if (f->list_mode == KOC_REFLECTOR_LIST_AUTO)
                stream_refused(f, 200, why);
        else
                list_rejected(f, now, KOC_REFLECTOR_REJECT_INVALID, "streaming list", 200, why);
}

static void on_stream_end(koc__reflector_fsm *f, const koc__reflector_event *ev, uint64_t now) {
        bool auto_mode = f->list_mode == KOC_REFLECTOR_LIST_AUTO;
        bool clean = ev->error == 0 && ev->status == 200;
        if (ev->status == 410) {
                /* An ERROR event or the answer's status: as a watch's. */
                f->stats.relists_gone++;
                relist_gone(f, now, "streaming list", ev->message);
                return;
        }
        if (ev->error_event) {
                if (auto_mode && is_refusal(ev->status))
                        stream_refused(f, ev->status, ev->message);
                else
                        list_rejected(f, now, KOC_REFLECTOR_REJECT_ERROR_EVENT, "streaming list",
                                      ev->status, ev->message);
                return;
        }
        if (auto_mode && is_refusal(ev->status))
                stream_refused(f, ev->status, ev->message);
        else if (auto_mode && clean)
                /* A clean end without the marker: the server ignored
                 * sendInitialEvents (older than the feature). */
                stream_refused(f, ev->status, "the stream ended without the end marker");
        else
                list_rejected(f, now, reject_reason(ev->status, ev->error), "streaming list",
                              ev->status,
                              clean ? "the stream ended without the end marker" : ev->message);
}

static void on_watch_object(koc__reflector_fsm *f, const koc__reflector_event *ev) {
        if (ev->resource_version && *ev->resource_version)
                (void)koc__set_string(&f->rv, ev->resource_version);
        f->watch_saw_event = true;
        f->gone_streak = 0; /* a watch that works: the next 410 re-lists at once */
        if (ev->watch_type != KOC_WATCH_BOOKMARK && ev->is_object)
                emit(f, KOC__REFLECTOR_ACT_EMIT_EVENT)->watch_type = ev->watch_type;
}

/* A watch ended and its owner lets it go on. */
static void on_resume(koc__reflector_fsm *f, const koc__reflector_event *ev, uint64_t now) {
        if (ev->status == 410) {
                f->stats.relists_gone++;
                relist_gone(f, now, "watch", ev->message);
                return;
        }
        if (ev->error_event) {
                uint64_t d = next_backoff(f, now);
                reject(f, KOC_REFLECTOR_REJECT_ERROR_EVENT, "watch", ev->status, ev->message, d);
                schedule(f, false, d);
                return;
        }
        bool clean = ev->error == 0 && ev->status == 200;
        if (clean && (f->watch_saw_event || now - f->watch_started_at >= MIN_WATCH_USEC)) {
                schedule(f, false, 0);
                return;
        }
        uint64_t d = next_backoff_capped(f, now, clean ? f->clean_close_max : f->backoff_max);
        if (clean)
                say(f, KOC_LOG_DEBUG, "watch closed early with nothing on it", ev->status, NULL);
        else
                reject(f, reject_reason(ev->status, ev->error), "watch", ev->status, ev->message,
                       d);
        schedule(f, false, d);
}

static void on_restart(koc__reflector_fsm *f) {
        f->fresh_connection = true;
        if (f->state != KOC__REFLECTOR_WATCHING && f->state != KOC__REFLECTOR_STREAMING)
                return;
        /* Over HTTP/1.1 libcurl closes the connection of a transfer removed
         * before its end, so the suspected connection goes with it. */
        emit(f, KOC__REFLECTOR_ACT_WATCH_STOP);
        f->stats.restarts++;
        /* A streaming list cut short starts over. */
        schedule(f, f->state == KOC__REFLECTOR_STREAMING, 0);
}

void koc__reflector_fsm_step(koc__reflector_fsm *f, const koc__reflector_event *ev, uint64_t now) {
        f->n_actions = 0;
        koc__reflector_state s = f->state;
        bool list_live = s == KOC__REFLECTOR_LISTING && f->list_begun;

        switch (ev->type) {
        case KOC__REFLECTOR_EV_START:
                if (s == KOC__REFLECTOR_IDLE)
                        schedule(f, !f->watch_only, 0);
                return;
        case KOC__REFLECTOR_EV_TIMER:
                if (s == KOC__REFLECTOR_LIST_DUE || s == KOC__REFLECTOR_WATCH_DUE)
                        on_timer(f, now);
                else if (s == KOC__REFLECTOR_STREAMING)
                        on_stream_timer(f, now);
                return;
        case KOC__REFLECTOR_EV_REQUEST_FAILED:
                if (s == KOC__REFLECTOR_LISTING || s == KOC__REFLECTOR_STREAMING ||
                    s == KOC__REFLECTOR_WATCHING)
                        on_request_failed(f, ev, now);
                return;
        case KOC__REFLECTOR_EV_WATCH_STARTED:
                if (s == KOC__REFLECTOR_STREAMING || s == KOC__REFLECTOR_WATCHING)
                        on_watch_started(f);
                return;
        case KOC__REFLECTOR_EV_PAGE:
                if (s == KOC__REFLECTOR_LISTING)
                        on_page(f, ev, now);
                return;
        case KOC__REFLECTOR_EV_ITEM:
                if (list_live)
                        on_item(f, now);
                return;
        case KOC__REFLECTOR_EV_ITEM_REFUSED:
                if (list_live || (s == KOC__REFLECTOR_STREAMING && f->list_begun))
                        on_item_refused(f, ev->error, now);
                return;
        case KOC__REFLECTOR_EV_PAGE_DELIVERED:
                if (list_live)
                        on_page_delivered(f, now);
                return;
        case KOC__REFLECTOR_EV_WATCH_OBJECT:
                if (s == KOC__REFLECTOR_STREAMING)
                        on_stream_object(f, ev, now);
                else if (s == KOC__REFLECTOR_WATCHING)
                        on_watch_object(f, ev);
                return;
        case KOC__REFLECTOR_EV_WATCH_END:
                if (s == KOC__REFLECTOR_STREAMING)
                        on_stream_end(f, ev, now);
                else if (s == KOC__REFLECTOR_WATCHING) {
                        f->state = KOC__REFLECTOR_ENDED;
                        koc__reflector_action *a = emit(f, KOC__REFLECTOR_ACT_ASK_OWNER);
                        a->status = ev->status;
                        a->error = ev->error;
                }
                return;
        case KOC__REFLECTOR_EV_RESUME:
                if (s == KOC__REFLECTOR_ENDED)
                        on_resume(f, ev, now);
                return;
        case KOC__REFLECTOR_EV_RESTART:
                on_restart(f);
                return;
        }
}
