/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The leader election driver: turns the state machine's actions (fsm.c) into
 * API requests, a watch and one timer, and feeds their results back as
 * events.  It talks through leader_transport_ops; the real transport maps to
 * koc_client and sd-event (CLOCK_BOOTTIME), the unit tests use a fake one.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "core/names.h"
#include "core/ratelimit.h"
#include "core/reflector.h"
#include "core/util.h"
#include "koc/log.h"
#include "koc/time.h"
#include "leader-internal.h"

#define LOG "leader"
/* Followers' random delay before they write, so a fleet spreads out. */
#define FOLLOWER_JITTER_USEC (5 * KOC_USEC_PER_MSEC)
/* Events raised while another is handled: per step at most the answer of a
 * request that could not start, the close of a watch that could not start
 * and a stop after a timer that could not be armed (none of which makes the
 * next step raise another at once), plus the callers' start, stop and
 * step-down, which are coalesced while queued.  Sixteen is far above what
 * can nest. */
#define EVENT_QUEUE_MAX 16
/* Slots for the requests' own data (their sequence number above all): one
 * request is in flight at a time, and a slot is reused only three requests
 * later, long after a cancelled request could have answered. */
#define CALL_SLOTS 4
/* The Lease watch's backoff (core/reflector.c): shorter than the informers'
 * 800 ms to 30 s, since a follower without its watch notices a release only
 * at the expiry; there is one such watch per elector. */
#define WATCH_BACKOFF_MIN (100 * KOC_USEC_PER_MSEC)
#define WATCH_BACKOFF_MAX (5 * KOC_USEC_PER_SEC)
/* Watch restarts on a new connection (a dead connection, or a holder that
 * stopped renewing) are said at most this often per elector. */
#define WATCH_RESTART_LOG_INTERVAL (60 * KOC_USEC_PER_SEC)
#define WATCH_RESTART_LOG_BURST 2
/* While the API server cannot be reached, say so at most this often. */
#define UNREACHABLE_LOG_INTERVAL (60 * KOC_USEC_PER_SEC)

/* --- the state handle ------------------------------------------------------------ */

struct koc_leader_state {
        atomic_uint n_ref;
        /* Boottime until which we lead (last_ok_send + renew_deadline); 0: not leading. */
        _Atomic uint64_t valid_until;
        _Atomic uint64_t transitions;
        /* The holder, published with a sequence lock: odd while being written. */
        atomic_uint seq;
        _Atomic char holder[LEASE_HOLDER_MAX];
        uint64_t (*now)(void *);
        void *now_userdata;
};

static uint64_t state_default_now(void *userdata) {
        return koc_now_boottime_usec();
}

static koc_leader_state *state_new(void) {
        koc_leader_state *s = calloc(1, sizeof *s);
        if (!s)
                return NULL;
        atomic_init(&s->n_ref, 1);
        s->now = state_default_now;
        return s;
}

KOC_EXPORT koc_leader_state *koc_leader_state_ref(koc_leader_state *s) {
        if (s)
                atomic_fetch_add_explicit(&s->n_ref, 1, memory_order_relaxed);
        return s;
}

KOC_EXPORT koc_leader_state *koc_leader_state_unref(koc_leader_state *s) {
        if (s && atomic_fetch_sub_explicit(&s->n_ref, 1, memory_order_acq_rel) == 1)
                free(s);
        return NULL;
}

void koc__leader_state_set_clock(koc_leader_state *s, uint64_t (*now)(void *), void *userdata) {
        s->now = now ? now : state_default_now;
        s->now_userdata = userdata;
}

KOC_EXPORT bool koc_leader_state_is_leader(const koc_leader_state *s) {
        if (!s)
                return false;
        uint64_t until = atomic_load_explicit(&s->valid_until, memory_order_acquire);
        /* Invariant 3: checked when read, so a process that was frozen reads
         * false as soon as it runs again, before any timer fires. */
        return until != 0 && s->now(s->now_userdata) < until;
}

/* Publishes the fencing token (transitions and holder) under the sequence
 * lock.  Loop thread only. */
static void state_set_term(koc_leader_state *s, uint64_t transitions, const char *holder) {
        size_t i;
        unsigned seq = atomic_load_explicit(&s->seq, memory_order_relaxed);
        atomic_store_explicit(&s->seq, seq + 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_release);
        atomic_store_explicit(&s->transitions, transitions, memory_order_relaxed);
        for (i = 0; holder[i] && i < LEASE_HOLDER_MAX - 1; i++)
                atomic_store_explicit(&s->holder[i], holder[i], memory_order_relaxed);
        atomic_store_explicit(&s->holder[i], '\0', memory_order_relaxed);
        atomic_store_explicit(&s->seq, seq + 2, memory_order_release);
}

static bool state_holder_equals(koc_leader_state *s, const char *holder) {
        /* Only the loop thread writes, so it may read without the lock. */
        size_t i;
        for (i = 0; i < LEASE_HOLDER_MAX - 1 && holder[i]; i++)
                if (atomic_load_explicit(&s->holder[i], memory_order_relaxed) != holder[i])
                        return false;
        return atomic_load_explicit(&s->holder[i], memory_order_relaxed) == '\0';
}

KOC_EXPORT int koc_leader_state_term(const koc_leader_state *cs, uint64_t *ret_transitions,
                                     char *holder, size_t size) {
        koc_leader_state *s = (koc_leader_state *)cs;
        char buf[LEASE_HOLDER_MAX];
        uint64_t transitions;
        bool leading;
        if (!s || (holder && size == 0))
                return -EINVAL;
        for (;;) {
                unsigned seq = atomic_load_explicit(&s->seq, memory_order_acquire);
                if (seq & 1)
                        continue;
                leading = koc_leader_state_is_leader(s);
                transitions = atomic_load_explicit(&s->transitions, memory_order_relaxed);
                for (size_t i = 0; i < sizeof buf; i++)
                        buf[i] = atomic_load_explicit(&s->holder[i], memory_order_relaxed);
                atomic_thread_fence(memory_order_acquire);
                if (atomic_load_explicit(&s->seq, memory_order_relaxed) == seq)
                        break;
        }
        buf[sizeof buf - 1] = '\0';
        /* Leadership may have ended between the reads: say so. */
        if (leading && !koc_leader_state_is_leader(s))
                leading = false;
        if (ret_transitions)
                *ret_transitions = transitions;
        if (holder)
                snprintf(holder, size, "%s", buf);
        return leading ? 1 : 0;
}

/* --- the elector ------------------------------------------------------------------ */

struct koc_leader {
        unsigned n_ref; /* loop-only, as is everything here but the state */
        pid_t loop_tid; /* for the debug checks of loop-only calls */
        const leader_transport_ops *ops;
        void *transport;

        sd_event *event;
        koc_client *client;
        sd_event_source *timer;

        char *namespace_;
        char *name;
        char identity[LEASE_HOLDER_MAX];
        char holder[LEASE_HOLDER_MAX];
        char *lease_path;
        char *collection_path;
        char *field_selector;
        bool release_on_stop;

        leader_fsm fsm;
        koc_leader_state *state;
        cJSON *last_object; /* the newest Lease object seen, kept as the base of writes */

        void *request;        /* the request in flight */
        uint64_t request_seq; /* its sequence number */
        /* What each request answers: the handler's userdata is its slot, so
         * an answer carries the sequence number of the request it answers,
         * not the one the state machine waits for now. */
        struct lease_call {
                koc_leader *leader;
                uint64_t seq;
                lease_req kind;
                uint64_t sent_at;
        } calls[CALL_SLOTS];
        void *watch;
        /* koc_leader_step_down() wrote a release (a standby has nothing to
         * release and must not say it released). */
        bool release_sent;

        koc_leader_callbacks callbacks;
        void *userdata;
        koc_destroy_t destroy;
        koc_leader_done_handler_t done;
        void *done_userdata;

        /* Events raised while an event is being handled (callbacks calling
         * back, synchronous failures) wait here. */
        bool dispatching;
        size_t n_queued;
        struct queued_event {
                leader_event ev;
                lease_record record;
                bool has_record;
                char rv[LEASE_RV_MAX];
        } queue[EVENT_QUEUE_MAX];

        koc_metrics *metrics;
        koc_metric *m_status, *m_transitions, *m_renew_latency, *m_renew_errors;
        koc_metric *m_watch_restarts;
        koc__ratelimit watch_restart_log;

        /* For koc_leader_run_until_*: outcome seen by the callbacks. */
        int last_reason;
        /* The elector stopped itself on this error (negative errno), 0 otherwise. */
        int failed;
        long warned_status; /* 401/403 already logged */
        /* Transport failures: since when (0: reachable), and when last logged. */
        uint64_t unreachable_since, unreachable_logged_at;
        char *server; /* the API server's address, for messages; may be NULL */
};

static void dispatch(koc_leader *l, const leader_event *ev);
static void queue_stop(koc_leader *l);

static void publish_state(koc_leader *l) {
        koc_leader_state *s = l->state;
        const leader_fsm *f = &l->fsm;
        bool leading = f->state == LEADER_FSM_LEADING;
        const char *holder = leading ? l->identity : f->exists ? f->observed.holder : "";
        uint64_t transitions = leading ? f->term : f->exists ? f->observed.lease_transitions : 0;
        bool term_changed =
                atomic_load_explicit(&s->transitions, memory_order_relaxed) != transitions ||
                !state_holder_equals(s, holder);
        /* Leadership reads false before anything else moves when it ends, and
         * the new term is in place before leadership reads true when it
         * starts, so koc_leader_state_term() never pairs "leading" with the
         * previous holder's fencing token. */
        if (leading && term_changed)
                state_set_term(s, transitions, holder);
        uint64_t until = koc__leader_fsm_valid_until(f);
        uint64_t was = atomic_exchange_explicit(&s->valid_until, until, memory_order_acq_rel);
        /* Every change of the validity window at debug level, on this
         * elector's clock (CLOCK_BOOTTIME, us): a chaos run or a post-mortem
         * derives from these lines when this replica could act as leader,
         * even if it was frozen afterwards and never logged the loss. */
        if (until != was)
                koc_log_debug(LOG,
                              "validity lease=%s/%s identity=%s term=%" PRIu64 " now=%" PRIu64
                              " valid_until=%" PRIu64,
                              l->namespace_, l->name, l->identity, f->term,
                              l->ops->now(l->transport), until);
        if (!leading && term_changed)
                state_set_term(s, transitions, holder);
}

static void keep_object(koc_leader *l, const cJSON *obj) {
        lease_record r;
        if (!obj || koc__lease_record_from_json(obj, &r) < 0)
                return;
        if (l->last_object) {
                const cJSON *meta = cJSON_GetObjectItemCaseSensitive(l->last_object, "metadata");
                const char *cur = cJSON_GetStringValue(
                        cJSON_GetObjectItemCaseSensitive(meta, "resourceVersion"));
                if (!koc__lease_rv_newer(r.resource_version, cur) &&
                    strcmp(r.resource_version, cur ? cur : "") != 0)
                        return;
        }
        cJSON *copy = cJSON_Duplicate(obj, true);
        if (!copy)
                return;
        cJSON_Delete(l->last_object);
        l->last_object = copy;
}

static const char *server_name(const koc_leader *l) {
        return l->server && l->server[0] ? l->server : "the API server";
}

/* An answer that never reached the server's application: the connection was
 * refused, reset or timed out.  ECANCELED, EMSGSIZE and EBADMSG are ours. */
static bool is_transport_error(int error) {
        return error < 0 && error != -ECANCELED && error != -EMSGSIZE && error != -EBADMSG;
}

/* A server that cannot be reached is what a new user meets first (a wrong
 * address, a cluster not yet up): say it at warn, then at most once a minute
 * while it lasts, and say when it is reachable again. */
static void note_contact(koc_leader *l, int error) {
        uint64_t now = l->ops->now(l->transport);
        if (is_transport_error(error)) {
                if (!l->unreachable_since)
                        l->unreachable_since = now ? now : 1;
                if (l->unreachable_logged_at &&
                    now - l->unreachable_logged_at < UNREACHABLE_LOG_INTERVAL)
                        return;
                l->unreachable_logged_at = now ? now : 1;
                koc_log_warn(LOG, "cannot reach %s for lease=%s/%s: %s; retrying", server_name(l),
                             l->namespace_, l->name, strerror(-error));
                return;
        }
        if (error != 0 || !l->unreachable_since)
                return;
        koc_log_info(LOG, "%s is reachable again for lease=%s/%s after %.1f s", server_name(l),
                     l->namespace_, l->name,
                     (double)(now - l->unreachable_since) / (double)KOC_USEC_PER_SEC);
        l->unreachable_since = l->unreachable_logged_at = 0;
}

/* Neither heals by retrying: say so once, loudly, and say which it is. */
static void note_refusal(koc_leader *l, lease_req kind, const koc_response *r) {
        if (r->status != 401 && r->status != 403) {
                if (r->error == 0 && r->status >= 200 && r->status < 300)
                        l->warned_status = 0;
                return;
        }
        if (r->status == l->warned_status)
                return;
        l->warned_status = r->status;
        if (r->status == 401)
                koc_log_warn(LOG,
                             "%s of lease=%s/%s: %s rejected the credentials (HTTP 401): %s; "
                             "check the token, client certificate or exec plugin of the "
                             "kubeconfig or service account",
                             koc__lease_req_to_string(kind), l->namespace_, l->name, server_name(l),
                             r->message);
        else
                koc_log_warn(LOG,
                             "%s of lease=%s/%s forbidden (HTTP 403): %s; leader election "
                             "needs get, create and update on leases (coordination.k8s.io) "
                             "in namespace %s",
                             koc__lease_req_to_string(kind), l->namespace_, l->name, r->message,
                             l->namespace_);
}

static void on_response(koc_client *c, koc_response *r, void *userdata) {
        struct lease_call *call = userdata;
        koc_leader *l = call->leader;
        lease_record rec;
        bool has = false;
        lease_req kind = call->kind;
        uint64_t seq = call->seq;
        /* An answer of a request other than the one in flight is stale: the
         * state machine recognises it by its sequence number and ignores it,
         * and nothing else here may act on it either. */
        if (!l->request || l->request_seq != seq) {
                koc_log_debug(LOG, "ignoring a stale %s answer lease=%s/%s status=%ld",
                              koc__lease_req_to_string(kind), l->namespace_, l->name, r->status);
                dispatch(l, &(leader_event){.type = LEADER_EV_ANSWER,
                                            .seq = seq,
                                            .error = r->error ? r->error : -ESTALE});
                return;
        }
        uint64_t latency = l->ops->now(l->transport) - call->sent_at;
        l->request = NULL;
        if (r->error == 0 && r->status >= 200 && r->status < 300 && r->body &&
            koc__lease_record_from_json(r->body, &rec) == 0) {
                has = true;
                keep_object(l, r->body);
        }
        if (kind == LEASE_REQ_RENEW) {
                bool ok = has && r->status >= 200 && r->status < 300;
                if (ok && l->m_renew_latency)
                        koc_metric_observe(l->m_renew_latency, (double)latency / 1e6);
                if (!ok) {
                        if (l->m_renew_errors)
                                koc_metric_inc(l->m_renew_errors);
                        koc_log_debug(LOG,
                                      "renewal failed lease=%s/%s status=%ld error=%d "
                                      "message=\"%s\"; retrying",
                                      l->namespace_, l->name, r->status, r->error, r->message);
                }
        } else if (!(r->error == 0 && r->status >= 200 && r->status < 300))
                koc_log_debug(LOG, "%s failed lease=%s/%s status=%ld error=%d message=\"%s\"",
                              koc__lease_req_to_string(kind), l->namespace_, l->name, r->status,
                              r->error, r->message);
        note_contact(l, r->error);
        note_refusal(l, kind, r);
        dispatch(l, &(leader_event){.type = LEADER_EV_ANSWER,
                                    .seq = seq,
                                    .error = r->error,
                                    .status = r->status,
                                    .record = has ? &rec : NULL});
}

static void on_watch_event(koc_watch *w, koc_watch_event *e, void *userdata) {
        koc_leader *l = userdata;
        lease_record rec;
        switch (e->type) {
        case KOC_WATCH_ADDED:
        case KOC_WATCH_MODIFIED:
                note_contact(l, 0);
                if (koc__lease_record_from_json(e->object, &rec) < 0)
                        return;
                keep_object(l, e->object);
                dispatch(l, &(leader_event){.type = LEADER_EV_WATCH_OBJECT, .record = &rec});
                break;
        case KOC_WATCH_DELETED: {
                note_contact(l, 0);
                /* The deletion's resourceVersion tells older answers apart. */
                const cJSON *meta = cJSON_GetObjectItemCaseSensitive(e->object, "metadata");
                const char *rv = cJSON_GetStringValue(
                        cJSON_GetObjectItemCaseSensitive(meta, "resourceVersion"));
                cJSON_Delete(l->last_object);
                l->last_object = NULL;
                dispatch(l,
                         &(leader_event){.type = LEADER_EV_WATCH_DELETED, .resource_version = rv});
                break;
        }
        case KOC_WATCH_BOOKMARK:
                note_contact(l, 0);
                break;
        case KOC_WATCH_ERROR:
                /* One watch request ended; the transport resumes it.  A
                 * follower with a healthy leader sends nothing but its
                 * watch: its failures are how it learns the server is gone. */
                note_contact(l, e->error);
                koc_log_debug(LOG, "watch ended lease=%s/%s status=%ld error=%d; resuming",
                              l->namespace_, l->name, e->status, e->error);
                break;
        case KOC_WATCH_CLOSED:
                l->watch = NULL;
                note_contact(l, e->error);
                if (e->status == 403)
                        koc_log_info(LOG,
                                     "watch on leases is forbidden; polling lease=%s/%s "
                                     "every retry period",
                                     l->namespace_, l->name);
                else
                        koc_log_debug(LOG, "watch stopped lease=%s/%s status=%ld error=%d",
                                      l->namespace_, l->name, e->status, e->error);
                dispatch(l, &(leader_event){.type = LEADER_EV_WATCH_CLOSED,
                                            .status = e->status,
                                            .error = e->error});
                break;
        }
}

void koc__leader_timer_fired(koc_leader *l) {
        dispatch(l, &(leader_event){.type = LEADER_EV_TIMER});
}

/* Requests that fail to start are answered at once (through the queue). */
static void start_request(koc_leader *l, const leader_action *a) {
        koc_request_spec spec = {.timeout_usec = a->timeout};
        cJSON *body = NULL;
        int r;
        switch (a->type) {
        case LEADER_ACT_GET:
                spec.method = "GET";
                spec.path = l->lease_path;
                break;
        case LEADER_ACT_CREATE:
                spec.method = "POST";
                spec.path = l->collection_path;
                body = koc__lease_record_to_json(NULL, l->namespace_, l->name, &a->record);
                break;
        default:
                spec.method = "PUT";
                spec.path = l->lease_path;
                body = koc__lease_record_to_json(l->last_object, l->namespace_, l->name,
                                                 &a->record);
                break;
        }
        spec.body = body;
        struct lease_call *call = &l->calls[a->seq % CALL_SLOTS];
        *call = (struct lease_call){
                .leader = l,
                .seq = a->seq,
                .kind = a->req,
                .sent_at = l->ops->now(l->transport),
        };
        l->request_seq = a->seq;
        if (a->req == LEASE_REQ_RELEASE)
                l->release_sent = true;
        if (a->type != LEADER_ACT_GET && !body)
                r = -ENOMEM;
        else
                r = l->ops->request(l->transport, &spec, on_response, call, &l->request);
        cJSON_Delete(body);
        if (r < 0) {
                l->request = NULL;
                koc_log_debug(LOG, "%s could not start: %s", koc__lease_req_to_string(a->req),
                              strerror(-r));
                dispatch(l, &(leader_event){.type = LEADER_EV_ANSWER, .seq = a->seq, .error = r});
        }
}

static void start_watch(koc_leader *l, const leader_action *a);

/* The watch showed no renewal while the Lease is held: its connection is
 * probably dead (over HTTP/1.1 nothing else notices), or the holder stopped
 * renewing.  Either way a new connection costs little, and the expiry timer
 * is not affected. */
static void restart_watch(koc_leader *l, const leader_action *a) {
        koc__log_ratelimited(&l->watch_restart_log, KOC_LOG_WARN, LOG,
                             "lease=%s/%s: no renewal seen for %" PRIu64
                             " ms while held by %s; restarting the watch on a new connection",
                             l->namespace_, l->name, a->quiet / KOC_USEC_PER_MSEC,
                             a->record.holder);
        if (l->m_watch_restarts)
                koc_metric_inc(l->m_watch_restarts);
        if (!l->watch)
                return;
        if (l->ops->watch_restart) {
                l->ops->watch_restart(l->transport, l->watch);
                return;
        }
        l->ops->watch_stop(l->transport, l->watch);
        l->watch = NULL;
        start_watch(l, a);
}

static void start_watch(koc_leader *l, const leader_action *a) {
        koc_watch_spec spec = {
                .path = l->collection_path,
                .field_selector = l->field_selector,
                .resource_version =
                        a->record.resource_version[0] ? a->record.resource_version : NULL,
                .allow_bookmarks = true,
        };
        int r = l->ops->watch(l->transport, &spec, on_watch_event, l, &l->watch);
        if (r < 0) {
                l->watch = NULL;
                dispatch(l, &(leader_event){.type = LEADER_EV_WATCH_CLOSED, .error = r});
        }
}

/* The state machine arms its timer only when the instant changes, so a
 * timer that silently failed to arm would never be asked for again and a
 * follower would wait forever.  Nothing here can retry without a timer:
 * stop the elector, loudly, and let koc_leader_run_until_*() return the
 * error. */
static void arm_timer(koc_leader *l, uint64_t at) {
        int r = l->ops->set_timer(l->transport, at);
        if (r >= 0 || at == 0)
                return;
        koc_log_error(LOG, "cannot arm the timer of lease=%s/%s: %s; stopping the elector",
                      l->namespace_, l->name, strerror(-r));
        l->failed = r;
        queue_stop(l);
}

static void run_action(koc_leader *l, const leader_action *a) {
        switch (a->type) {
        case LEADER_ACT_GET:
        case LEADER_ACT_CREATE:
        case LEADER_ACT_UPDATE:
                start_request(l, a);
                break;
        case LEADER_ACT_CANCEL_REQUEST:
                if (l->request)
                        l->ops->cancel(l->transport, l->request);
                l->request = NULL;
                break;
        case LEADER_ACT_WATCH_START:
                if (!l->watch)
                        start_watch(l, a);
                break;
        case LEADER_ACT_WATCH_STOP:
                if (l->watch)
                        l->ops->watch_stop(l->transport, l->watch);
                l->watch = NULL;
                break;
        case LEADER_ACT_WATCH_RESTART:
                restart_watch(l, a);
                break;
        case LEADER_ACT_TIMER:
                arm_timer(l, a->at);
                break;
        case LEADER_ACT_STARTED:
                koc_log_info(LOG, "became leader lease=%s/%s identity=%s term=%" PRIu64,
                             l->namespace_, l->name, l->identity, a->term);
                if (l->m_transitions)
                        koc_metric_inc(l->m_transitions);
                if (l->callbacks.started_leading)
                        l->callbacks.started_leading(l, a->term, l->userdata);
                break;
        case LEADER_ACT_STOPPED:
                l->last_reason = (int)a->reason;
                if (a->reason == KOC_LEADER_REASON_OBSERVE_TIMEOUT)
                        koc_log_warn(LOG,
                                     "giving up lease=%s/%s: API unreachable for the "
                                     "observe timeout",
                                     l->namespace_, l->name);
                else
                        koc_log_info(LOG, "lost lease lease=%s/%s identity=%s reason=%s",
                                     l->namespace_, l->name, l->identity,
                                     koc_leader_reason_to_string(a->reason));
                if (l->callbacks.stopped_leading)
                        l->callbacks.stopped_leading(l, a->reason, l->userdata);
                break;
        case LEADER_ACT_NEW_LEADER:
                snprintf(l->holder, sizeof l->holder, "%s", a->record.holder);
                koc_log_debug(LOG, "holder lease=%s/%s holder=\"%s\"", l->namespace_, l->name,
                              a->record.holder);
                if (l->callbacks.new_leader)
                        l->callbacks.new_leader(l, a->record.holder, l->userdata);
                break;
        case LEADER_ACT_FOREIGN_WRITE:
                koc_log_error(LOG,
                              "another process renews lease=%s/%s with this identity (%s): "
                              "both believe they lead; give every replica its own identity",
                              l->namespace_, l->name, l->identity);
                break;
        case LEADER_ACT_DONE: {
                koc_leader_done_handler_t done = l->done;
                void *ud = l->done_userdata;
                l->done = NULL;
                l->done_userdata = NULL;
                bool released = l->release_sent;
                l->release_sent = false;
                if (a->result == 0 && released)
                        koc_log_info(LOG, "released lease=%s/%s identity=%s", l->namespace_,
                                     l->name, l->identity);
                else if (a->result == 0)
                        koc_log_debug(LOG,
                                      "step-down lease=%s/%s: not the holder, nothing to "
                                      "release",
                                      l->namespace_, l->name);
                else if (a->result != -ECANCELED)
                        koc_log_info(LOG, "release of lease=%s/%s ended: %s", l->namespace_,
                                     l->name, strerror(-a->result));
                if (done)
                        done(l, a->result, ud);
                break;
        }
        }
}

/* The index of the last queued event of this type, or -1. */
static ssize_t queued_last(const koc_leader *l, enum leader_event_type type) {
        for (size_t i = l->n_queued; i > 0; i--)
                if (l->queue[i - 1].ev.type == type)
                        return (ssize_t)(i - 1);
        return -1;
}

/* A stop already queued (and no start after it) does it all: callers may
 * stop as often as they like without filling the queue. */
static void queue_stop(koc_leader *l) {
        if (queued_last(l, LEADER_EV_STOP) > queued_last(l, LEADER_EV_START))
                return;
        dispatch(l, &(leader_event){.type = LEADER_EV_STOP});
}

static void enqueue(koc_leader *l, const leader_event *ev) {
        if (l->n_queued >= EVENT_QUEUE_MAX) {
                /* Dropping an event could drop an answer, and the state
                 * machine would wait for it forever; only a broken invariant
                 * (see EVENT_QUEUE_MAX) gets here. */
                fprintf(stderr,
                        "koc: leader: event queue overflow (%zu events nested, event type %d); "
                        "aborting\n",
                        l->n_queued, (int)ev->type);
                abort();
        }
        struct queued_event *q = &l->queue[l->n_queued++];
        q->ev = *ev;
        q->has_record = ev->record != NULL;
        if (ev->record)
                q->record = *ev->record;
        q->ev.record = NULL;
        if (ev->resource_version) {
                snprintf(q->rv, sizeof q->rv, "%s", ev->resource_version);
                q->ev.resource_version = q->rv;
        }
}

static void dispatch_one(koc_leader *l, const leader_event *ev) {
        leader_action actions[LEADER_FSM_MAX_ACTIONS];
        koc__leader_fsm_step(&l->fsm, ev, l->ops->now(l->transport), l->ops->wall(l->transport));
        /* Invariant 4: the state handle is updated before any callback runs. */
        publish_state(l);
        size_t n = l->fsm.n_actions;
        memcpy(actions, l->fsm.actions, n * sizeof actions[0]);
        for (size_t i = 0; i < n; i++)
                run_action(l, &actions[i]);
}

static void dispatch(koc_leader *l, const leader_event *ev) {
        if (l->dispatching) {
                enqueue(l, ev);
                return;
        }
        koc_leader_ref(l);
        l->dispatching = true;
        dispatch_one(l, ev);
        while (l->n_queued > 0) {
                struct queued_event q = l->queue[0];
                memmove(&l->queue[0], &l->queue[1], (l->n_queued - 1) * sizeof l->queue[0]);
                l->n_queued--;
                if (q.has_record)
                        q.ev.record = &q.record;
                if (q.ev.resource_version)
                        q.ev.resource_version = q.rv;
                dispatch_one(l, &q.ev);
        }
        l->dispatching = false;
        koc_leader_unref(l);
}

/* --- the real transport: koc_client and sd-event ------------------------------------ */

static int real_request(void *t, const koc_request_spec *spec, koc_response_handler_t handler,
                        void *userdata, void **ret_handle) {
        koc_leader *l = t;
        koc_request *req = NULL;
        int r = koc_client_request(l->client, spec, handler, userdata, &req);
        if (r >= 0)
                *ret_handle = req;
        return r;
}

static void real_cancel(void *t, void *handle) {
        koc_request_cancel(handle);
}

/* The Lease watch is the informers' watch-restart component
 * (core/reflector.c) in watch-only mode: it resumes from the last
 * resourceVersion, starts again without one after 410 (the server then
 * sends the Lease as an ADDED event) and backs off on failures.  Only a 403
 * stops it: no permission does not heal by retrying, and the state machine
 * polls instead. */
struct lease_watch {
        koc_reflector *reflector;
        koc_watch_handler_t handler;
        void *userdata;
};

static void lease_watch_free(struct lease_watch *w) {
        koc__reflector_free(w->reflector);
        free(w);
}

static void lease_watch_event(koc_watch_event_type type, cJSON *object, void *userdata) {
        struct lease_watch *w = userdata;
        koc_watch_event ev = {.type = type, .object = object, .message = ""};
        w->handler(NULL, &ev, w->userdata);
}

static bool lease_watch_ended(long status, int error, void *userdata) {
        struct lease_watch *w = userdata;
        koc_watch_handler_t handler = w->handler;
        void *ud = w->userdata;
        bool forbidden = status == 403;
        koc_watch_event ev = {.type = forbidden ? KOC_WATCH_CLOSED : KOC_WATCH_ERROR,
                              .status = status,
                              .error = error,
                              .message = ""};
        /* Gone before the handler runs, which may start a new watch or drop
         * the elector. */
        if (forbidden)
                lease_watch_free(w);
        handler(NULL, &ev, ud);
        return !forbidden;
}

static int real_watch(void *t, const koc_watch_spec *spec, koc_watch_handler_t handler,
                      void *userdata, void **ret_handle) {
        koc_leader *l = t;
        struct lease_watch *w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->handler = handler;
        w->userdata = userdata;
        int r = koc__reflector_new(
                l->client,
                &(koc_reflector_spec){
                        .path = spec->path,
                        .field_selector = spec->field_selector,
                        .watch_only = true,
                        .resource_version = spec->resource_version,
                        .backoff_initial_usec = WATCH_BACKOFF_MIN,
                        .backoff_max_usec = WATCH_BACKOFF_MAX,
                        /* A server that keeps ending streams early is not
                         * failing: resume within a retry period. */
                        .clean_close_max_usec = l->fsm.retry_period > WATCH_BACKOFF_MIN
                                                        ? l->fsm.retry_period
                                                        : WATCH_BACKOFF_MIN,
                },
                &(koc_reflector_handlers){.event = lease_watch_event,
                                          .watch_ended = lease_watch_ended},
                w, &w->reflector);
        if (r >= 0)
                r = koc__reflector_start(w->reflector);
        if (r < 0) {
                lease_watch_free(w);
                return r;
        }
        *ret_handle = w;
        return 0;
}

static void real_watch_stop(void *t, void *handle) {
        lease_watch_free(handle);
}

static void real_watch_restart(void *t, void *handle) {
        struct lease_watch *w = handle;
        koc__reflector_restart_watch(w->reflector);
}

static int on_timer_source(sd_event_source *s, uint64_t usec, void *userdata) {
        koc__leader_timer_fired(userdata);
        return 0;
}

static int real_set_timer(void *t, uint64_t at) {
        koc_leader *l = t;
        int r;
        if (at == 0)
                return l->timer ? sd_event_source_set_enabled(l->timer, SD_EVENT_OFF) : 0;
        if (!l->timer) {
                /* Accuracy 1 us: expiry takeover should happen at the instant. */
                r = sd_event_add_time(l->event, &l->timer, CLOCK_BOOTTIME, at, 1, on_timer_source,
                                      l);
                if (r < 0)
                        return r;
                return sd_event_source_set_enabled(l->timer, SD_EVENT_ONESHOT);
        }
        r = sd_event_source_set_time(l->timer, at);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(l->timer, SD_EVENT_ONESHOT);
}

static uint64_t real_now(void *t) {
        return koc_now_boottime_usec();
}

static uint64_t real_wall(void *t) {
        return koc_now_realtime_usec();
}

static const leader_transport_ops real_ops = {
        .request = real_request,
        .cancel = real_cancel,
        .watch = real_watch,
        .watch_stop = real_watch_stop,
        .watch_restart = real_watch_restart,
        .set_timer = real_set_timer,
        .now = real_now,
        .wall = real_wall,
};

/* --- public API ----------------------------------------------------------------------- */

KOC_EXPORT const char *koc_leader_reason_to_string(koc_leader_reason reason) {
        static const char *const names[_KOC_LEADER_REASON_MAX] = {
                [KOC_LEADER_REASON_NONE] = "none",
                [KOC_LEADER_REASON_RENEW_DEADLINE_EXCEEDED] = "renew-deadline-exceeded",
                [KOC_LEADER_REASON_HOLDER_CHANGED] = "holder-changed",
                [KOC_LEADER_REASON_RELEASED] = "released",
                [KOC_LEADER_REASON_CANCELLED] = "cancelled",
                [KOC_LEADER_REASON_OBSERVE_TIMEOUT] = "observe-timeout",
                [KOC_LEADER_REASON_LEASE_DELETED] = "lease-deleted",
        };
        if ((unsigned)reason >= _KOC_LEADER_REASON_MAX)
                return "unknown";
        return names[reason];
}

static uint64_t default_random(uint64_t n) {
        return koc__random_u64(n);
}

static char *strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *strdup_printf(const char *fmt, ...) {
        char *s = NULL;
        va_list ap;
        va_start(ap, fmt);
        int r = vasprintf(&s, fmt, ap);
        va_end(ap);
        return r < 0 ? NULL : s;
}

int koc__leader_new_with_transport(const leader_transport_ops *ops, void *transport,
                                   const koc_leader_config *cfg, koc_leader **ret, koc_error *err) {
        if (!ops || !ret)
                return koc_error_set(err, -EINVAL, "leader: no transport or result pointer");
        int r = koc_leader_config_validate(cfg, err);
        if (r < 0)
                return r;
        koc_leader *l = calloc(1, sizeof *l);
        if (!l)
                return koc_error_set(err, -ENOMEM, "leader: out of memory");
        l->n_ref = 1;
        l->loop_tid = koc__loop_tid(NULL);
        l->watch_restart_log = (koc__ratelimit)KOC__RATELIMIT_INIT(WATCH_RESTART_LOG_INTERVAL,
                                                                   WATCH_RESTART_LOG_BURST);
        l->ops = ops;
        l->transport = transport ? transport : l;
        l->release_on_stop = cfg->release_on_stop;
        l->state = state_new();
        l->namespace_ = strdup(cfg->namespace_);
        l->name = strdup(cfg->name);
        /* The configuration is validated (a DNS-1123 namespace and name), so
         * escaping changes nothing; it is a second guard, and the client
         * refuses an escaped '/' or dot segment in any path besides. */
        _koc_cleanup_free_ char *ns = koc__path_segment_escape(cfg->namespace_);
        _koc_cleanup_free_ char *name = koc__path_segment_escape(cfg->name);
        if (ns && name) {
                l->collection_path =
                        strdup_printf("/apis/coordination.k8s.io/v1/namespaces/%s/leases", ns);
                l->lease_path = strdup_printf(
                        "/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s", ns, name);
        }
        l->field_selector = strdup_printf("metadata.name=%s", cfg->name);
        if (!l->state || !l->namespace_ || !l->name || !l->collection_path || !l->lease_path ||
            !l->field_selector) {
                koc_leader_unref(l);
                return koc_error_set(err, -ENOMEM, "leader: out of memory");
        }
        r = koc__leader_config_resolve_identity(cfg, l->identity, sizeof l->identity);
        if (r < 0) {
                koc_leader_unref(l);
                return koc_error_set(err, r, "leader: cannot make an identity: %s", strerror(-r));
        }
        koc__leader_fsm_init(&l->fsm, &(leader_fsm_config){
                                              .identity = l->identity,
                                              .lease_duration = cfg->lease_duration,
                                              .renew_deadline = cfg->renew_deadline,
                                              .retry_period = cfg->retry_period,
                                              .observe_timeout = cfg->observe_timeout,
                                              .jitter_max = FOLLOWER_JITTER_USEC,
                                              .random = default_random,
                                      });
        *ret = l;
        return 0;
}

KOC_EXPORT int koc_leader_new(koc_client *client, const koc_leader_config *cfg, koc_leader **ret,
                              koc_error *err) {
        if (!client)
                return koc_error_set(err, -EINVAL, "leader: a client is needed");
        koc_leader *l = NULL;
        int r = koc__leader_new_with_transport(&real_ops, NULL, cfg, &l, err);
        if (r < 0)
                return r;
        /* The client's loop, always: a second loop could not see its answers. */
        l->event = sd_event_ref(koc_client_get_event(client));
        l->loop_tid = koc__loop_tid(l->event);
        l->client = koc_client_ref(client);
        const char *server = koc_cluster_config_server(koc_client_get_config(client));
        /* Only for messages: without it they say "the API server". */
        l->server = server ? strdup(server) : NULL;
        *ret = l;
        return 0;
}

int koc__leader_get_failure(const koc_leader *l) {
        return l ? l->failed : 0;
}

void koc__leader_set_event(koc_leader *l, sd_event *event) {
        sd_event_unref(l->event);
        l->event = sd_event_ref(event);
}

void koc__leader_set_random(koc_leader *l, uint64_t (*random)(uint64_t n)) {
        l->fsm.random = random;
}

const leader_fsm *koc__leader_get_fsm(const koc_leader *l) {
        return &l->fsm;
}

KOC_EXPORT koc_leader *koc_leader_ref(koc_leader *l) {
        if (l)
                l->n_ref++;
        return l;
}

static void leader_free(koc_leader *l) {
        if (l->request)
                l->ops->cancel(l->transport, l->request);
        if (l->watch)
                l->ops->watch_stop(l->transport, l->watch);
        if (l->fsm.timer_at)
                (void)l->ops->set_timer(l->transport, 0);
        if (l->state)
                atomic_store_explicit(&l->state->valid_until, 0, memory_order_release);
        if (l->destroy)
                l->destroy(l->userdata);
        sd_event_source_disable_unref(l->timer);
        koc_client_unref(l->client);
        sd_event_unref(l->event);
        koc_metrics_unref(l->metrics);
        koc_leader_state_unref(l->state);
        cJSON_Delete(l->last_object);
        free(l->namespace_);
        free(l->name);
        free(l->collection_path);
        free(l->lease_path);
        free(l->field_selector);
        free(l->server);
        free(l);
}

KOC_EXPORT koc_leader *koc_leader_unref(koc_leader *l) {
        if (!l)
                return NULL;
        KOC__ASSERT_LOOP_THREAD(l->loop_tid);
        if (--l->n_ref == 0)
                leader_free(l);
        return NULL;
}

KOC_EXPORT int koc_leader_set_callbacks_sized(koc_leader *l, size_t callbacks_size,
                                              const koc_leader_callbacks *callbacks, void *userdata,
                                              koc_destroy_t destroy) {
        koc_leader_callbacks copy = {0};

        if (!l)
                return -EINVAL;
        KOC__ASSERT_LOOP_THREAD(l->loop_tid);
        if (callbacks && KOC__IMPORT(&copy, callbacks, callbacks_size, started_leading) < 0)
                return -EINVAL;
        if (l->destroy && l->userdata != userdata)
                l->destroy(l->userdata);
        l->callbacks = copy;
        l->userdata = userdata;
        l->destroy = destroy;
        return 0;
}

KOC_EXPORT int koc_leader_start(koc_leader *l) {
        if (!l)
                return -EINVAL;
        KOC__ASSERT_LOOP_THREAD(l->loop_tid);
        if (l->fsm.state != LEADER_FSM_STOPPED || queued_last(l, LEADER_EV_START) >= 0)
                return -EBUSY;
        l->failed = 0;
        koc_log_info(LOG, "starting lease=%s/%s identity=%s", l->namespace_, l->name, l->identity);
        dispatch(l, &(leader_event){.type = LEADER_EV_START});
        return 0;
}

KOC_EXPORT int koc_leader_step_down(koc_leader *l, koc_leader_done_handler_t done, void *userdata) {
        if (!l)
                return -EINVAL;
        KOC__ASSERT_LOOP_THREAD(l->loop_tid);
        if (l->done || l->fsm.state == LEADER_FSM_RELEASING || l->fsm.step_down_pending ||
            queued_last(l, LEADER_EV_STEP_DOWN) >= 0)
                return -EALREADY;
        if (l->fsm.state == LEADER_FSM_STOPPED) {
                if (done)
                        done(l, 0, userdata);
                return 0;
        }
        l->done = done;
        l->done_userdata = userdata;
        dispatch(l, &(leader_event){.type = LEADER_EV_STEP_DOWN});
        return 0;
}

KOC_EXPORT void koc_leader_stop(koc_leader *l) {
        if (!l)
                return;
        KOC__ASSERT_LOOP_THREAD(l->loop_tid);
        if (l->release_on_stop && l->fsm.state == LEADER_FSM_LEADING) {
                (void)koc_leader_step_down(l, NULL, NULL);
                return;
        }
        queue_stop(l);
}

KOC_EXPORT const char *koc_leader_get_identity(const koc_leader *l) {
        return l ? l->identity : NULL;
}

KOC_EXPORT const char *koc_leader_get_holder(const koc_leader *l) {
        return l ? l->holder : NULL;
}

KOC_EXPORT bool koc_leader_is_leader(const koc_leader *l) {
        return l && koc_leader_state_is_leader(l->state);
}

KOC_EXPORT koc_leader_state *koc_leader_ref_state(koc_leader *l) {
        return l ? koc_leader_state_ref(l->state) : NULL;
}

static int run_loop(koc_leader *l, bool (*until)(koc_leader *), uint64_t timeout_usec) {
        if (!l || !l->event)
                return -EINVAL;
        if (l->fsm.state == LEADER_FSM_STOPPED) {
                int r = koc_leader_start(l);
                if (r < 0)
                        return r;
        }
        uint64_t end = timeout_usec ? koc_now_boottime_usec() + timeout_usec : 0;
        koc_leader_ref(l);
        int r = 0;
        for (;;) {
                if (until(l)) {
                        r = 1;
                        break;
                }
                if (l->fsm.state == LEADER_FSM_STOPPED)
                        break;
                uint64_t wait = UINT64_MAX;
                if (end) {
                        uint64_t now = koc_now_boottime_usec();
                        if (now >= end) {
                                r = -ETIMEDOUT;
                                break;
                        }
                        wait = end - now;
                }
                r = sd_event_run(l->event, wait);
                if (r < 0)
                        break;
                r = 0;
        }
        if (r == 0 && l->failed < 0)
                r = l->failed;
        koc_leader_unref(l);
        return r;
}

/* Deadline-checked, like the state handle: a process that was frozen past its
 * renew deadline does not report leadership it may no longer hold. */
static bool is_leading(koc_leader *l) {
        return koc_leader_is_leader(l);
}

static bool not_leading(koc_leader *l) {
        return l->fsm.state != LEADER_FSM_LEADING;
}

KOC_EXPORT int koc_leader_run_until_leading(koc_leader *l, uint64_t timeout_usec) {
        return run_loop(l, is_leading, timeout_usec);
}

KOC_EXPORT int koc_leader_run_until_lost(koc_leader *l) {
        if (!l || !l->event)
                return -EINVAL;
        if (!is_leading(l))
                return -ENOTCONN;
        l->last_reason = KOC_LEADER_REASON_NONE;
        int r = run_loop(l, not_leading, 0);
        if (r < 0)
                return r;
        return l->last_reason;
}

static double master_status_value(void *userdata) {
        return koc_leader_state_is_leader(userdata) ? 1 : 0;
}

static void master_status_destroy(void *userdata) {
        koc_leader_state_unref(userdata);
}

KOC_EXPORT int koc_leader_register_metrics(koc_leader *l, koc_metrics *metrics) {
        static const double buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                         0.25,  0.5,    1,     2.5,  5,     10};
        _koc_cleanup_free_ char *labels = NULL;
        int r;
        if (!l || !metrics)
                return -EINVAL;
        labels = strdup_printf("name=\"%s\"", l->name);
        if (!labels)
                return -ENOMEM;
        /* Evaluated from the state handle at scrape time, so the gauge applies
         * the renew deadline exactly as koc_leader_state_is_leader() does,
         * even in a process that was frozen and has not run a timer yet. */
        koc_leader_state *state = koc_leader_ref_state(l);
        if (!state)
                return -ENOMEM;
        r = koc_metrics_add_gauge_function(metrics, "leader_election_master_status",
                                           "1 while this process leads the lease, else 0.", labels,
                                           master_status_value, state, master_status_destroy,
                                           &l->m_status);
        if (r < 0)
                koc_leader_state_unref(state);
        if (r >= 0)
                r = koc_metrics_add_counter(metrics, "leader_election_transitions_total",
                                            "Times this process started leading the lease.", labels,
                                            &l->m_transitions);
        if (r >= 0)
                r = koc_metrics_add_histogram(metrics, "leader_election_renew_duration_seconds",
                                              "Latency of successful lease renewals.", labels,
                                              buckets, KOC_ELEMENTSOF(buckets),
                                              &l->m_renew_latency);
        if (r >= 0)
                r = koc_metrics_add_counter(metrics, "leader_election_renew_errors_total",
                                            "Failed lease renewal attempts (5xx, timeouts, 409).",
                                            labels, &l->m_renew_errors);
        if (r >= 0)
                r = koc_metrics_add_counter(
                        metrics, "leader_election_watch_restarts_total",
                        "Lease watches restarted on a new connection because no renewal "
                        "arrived on them while the lease was held.",
                        labels, &l->m_watch_restarts);
        if (r < 0) {
                l->m_status = l->m_transitions = l->m_renew_latency = l->m_renew_errors = NULL;
                l->m_watch_restarts = NULL;
                return r;
        }
        koc_metrics_unref(l->metrics);
        l->metrics = koc_metrics_ref(metrics);
        return 0;
}
