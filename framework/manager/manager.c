/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The manager: builds the client, elector, probes server, metrics registry
 * and shutdown coordinator on one sd-event loop and wires them together.
 *
 * Leader-guarded work is counted with one atomic.  The drain closes the
 * intake first and then waits for the count to reach zero; work_end() wakes
 * the loop when it brings the count to zero while the drain is waiting, by
 * posting to the manager's mailbox (core/mailbox.c, the one thread-to-loop
 * primitive, also behind the client's synchronous facade).  At most one
 * wake-up is pending at a time: the worker threads' begin/end pairs that
 * bounce off the closed intake would otherwise queue one closure each.  Both
 * sides use sequentially consistent atomics, so either begin() sees the
 * intake closed or the drain sees the item.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "koc/log.h"
#include "koc/manager.h"
#include "koc/time.h"

#include "core/cluster-config.h"
#include "core/mailbox.h"
#include "core/util.h"
#include "framework/cache/cache-internal.h"
#include "framework/manager/manager-internal.h"
#include "leader/leader-internal.h"

#define LOG "manager"

struct hook {
        char *name;
        koc_shutdown_step_t fn;
        void *userdata;
        koc_destroy_t destroy;
};

struct runnable {
        char *name;
        koc_manager_runnable ops;
        void *userdata;
        koc_destroy_t destroy;
        bool running;
};

struct koc_manager {
        /* Atomic: worker threads may hold their own references (for
         * koc_manager_work_begin and friends); the last one is dropped on
         * the loop thread. */
        atomic_uint n_ref;
        pid_t loop_tid; /* for the debug checks of loop-only calls */

        sd_event *event;
        koc_cluster_config *cluster;
        koc_client *client;
        koc_metrics *metrics;
        /* The informers of this manager's controllers and of the program. */
        koc_cache *cache;
        koc_leader *leader;
        koc_leader_state *state;
        koc_probes *probes;
        koc__secure_metrics *secure_metrics; /* --metrics-secure */
        koc__webhooks *webhooks;             /* koc/webhook.h */
        koc_shutdown *shutdown;

        bool leader_elect;
        bool gate_readiness;
        bool exit_on_loss;
        uint64_t lease_duration_usec;
        uint64_t retry_period_usec;
        uint64_t liveness_margin_usec;
        char *lease_namespace;
        char *lease_name;

        koc_manager_callbacks callbacks;
        void *callbacks_userdata;
        koc_destroy_t callbacks_destroy;

        struct hook *hooks;
        size_t n_hooks;
        struct runnable *runnables;
        size_t n_runnables;

        /* Any thread. */
        atomic_uint in_flight;
        atomic_bool intake_closed;
        atomic_bool draining;
        atomic_bool wake_pending; /* a wake-up is in the mailbox */
        /* Leadership without election: true from run() to the step-down. */
        atomic_bool solo_leading;

        /* Created and freed on the loop thread; posted to from any. */
        koc_mailbox *mailbox;

        /* Loop thread. */
        sd_event_source *confirm_timer;
        koc_shutdown_step *wait_step;
        koc_shutdown_step *step_down_step;
        bool standby_stopping; /* a standby's step-down (see on_shutdown_begin) in flight */
        bool leading;          /* between started_ and stopped_leading */
        uint64_t confirmed_at; /* last time the state read "leader" */
        bool ran;
        int exit_code; /* raised to 1 by a fatal leadership event */

        /* --print-rbac: nothing connects, run() prints the rules (nested
         * under print_rbac_under when set). */
        bool print_rbac;
        char *print_rbac_under;
        koc__rbac rbac;
};

/* --- small helpers --------------------------------------------------------- */

KOC_EXPORT bool koc_manager_is_leader(koc_manager *m) {
        if (!m)
                return false;
        if (!m->leader_elect)
                return atomic_load(&m->solo_leading);
        return koc_leader_state_is_leader(m->state);
}

KOC_EXPORT int koc_manager_get_term(koc_manager *m, uint64_t *ret_transitions, char *holder,
                                    size_t size) {
        if (!m || !ret_transitions)
                return -EINVAL;
        if (!m->leader_elect) {
                *ret_transitions = 0;
                if (holder && size > 0)
                        holder[0] = '\0';
                return atomic_load(&m->solo_leading) ? 1 : 0;
        }
        return koc_leader_state_term(m->state, ret_transitions, holder, size);
}

KOC_EXPORT bool koc_manager_is_stopping(koc_manager *m) {
        return m && m->shutdown && koc_shutdown_in_progress(m->shutdown);
}

KOC_EXPORT unsigned koc_manager_in_flight(koc_manager *m) {
        return m ? atomic_load(&m->in_flight) : 0;
}

/* --- leader-guarded work ---------------------------------------------------- */

static void finish_wait_if_idle(koc_manager *m);

/* On the loop, from the mailbox; cancelled when the manager is being freed. */
static void on_wake(void *userdata, bool cancelled) {
        koc_manager *m = userdata;

        /* Cleared before the count is read: a work_end() after this point
         * posts again, so no drop to zero goes unnoticed. */
        atomic_store(&m->wake_pending, false);
        if (!cancelled)
                finish_wait_if_idle(m);
}

static void wake_loop(koc_manager *m) {
        if (atomic_exchange(&m->wake_pending, true))
                return; /* the pending wake-up will read the count */
        int r = koc__mailbox_post(m->mailbox, on_wake, m);
        if (r < 0) {
                atomic_store(&m->wake_pending, false);
                /* Only an allocation failure or a manager being freed gets
                 * here; the drain's budget still ends the wait. */
                koc_log_warn(LOG, "cannot wake the loop for the drain: %s", strerror(-r));
        }
}

KOC_EXPORT void koc_manager_work_end(koc_manager *m) {
        unsigned prev;

        if (!m)
                return;
        prev = atomic_load(&m->in_flight);
        do {
                if (prev == 0) {
                        /* Unbalanced end: never let the count wrap around. */
                        koc_log_error(LOG,
                                      "koc_manager_work_end() without a matching work_begin()");
                        return;
                }
        } while (!atomic_compare_exchange_weak(&m->in_flight, &prev, prev - 1));
        if (prev == 1 && atomic_load(&m->draining))
                wake_loop(m);
}

KOC_EXPORT int koc_manager_work_begin(koc_manager *m) {
        if (!m)
                return -EINVAL;
        /* Count first, then look at the intake: see the comment at the top. */
        atomic_fetch_add(&m->in_flight, 1);
        if (atomic_load(&m->intake_closed)) {
                koc_manager_work_end(m);
                return -ESHUTDOWN;
        }
        if (!koc_manager_is_leader(m)) {
                koc_manager_work_end(m);
                return -EAGAIN;
        }
        return 0;
}

static void finish_wait_if_idle(koc_manager *m) {
        if (m->wait_step && atomic_load(&m->in_flight) == 0) {
                koc_shutdown_step *s = m->wait_step;

                m->wait_step = NULL;
                koc_log_info(LOG, "in-flight work drained");
                koc_shutdown_step_done(s);
        }
}

static void work_collector(FILE *out, void *userdata) {
        koc_manager *m = userdata;

        fprintf(out,
                "# HELP koc_manager_work_in_flight Leader-guarded work items in flight.\n"
                "# TYPE koc_manager_work_in_flight gauge\n"
                "koc_manager_work_in_flight %u\n"
                "# HELP koc_manager_shutting_down 1 once the graceful shutdown has started.\n"
                "# TYPE koc_manager_shutting_down gauge\n"
                "koc_manager_shutting_down %d\n",
                atomic_load(&m->in_flight), koc_manager_is_stopping(m) ? 1 : 0);
}

/* --- probes checks ------------------------------------------------------------ */

static int check_leader_ready(char *why, size_t why_size, void *userdata) {
        koc_manager *m = userdata;

        if (koc_manager_is_leader(m))
                return 0;
        snprintf(why, why_size, "not the leader");
        return -EAGAIN;
}

/* client-go's HealthzAdaptor: a replica that believes it leads (it got
 * started_leading and no stopped_leading yet) but whose leadership has not
 * been confirmed for lease_duration + margin has a wedged elector.  A standby
 * is healthy, unless its elector stopped itself on an error: it would never
 * compete again. */
static int check_leader_renewal(char *why, size_t why_size, void *userdata) {
        koc_manager *m = userdata;
        uint64_t now = koc_now_boottime_usec();
        char a[32];
        int r;

        int failure = koc__leader_get_failure(m->leader);
        r = koc__manager_renewal_verdict(m->leading, koc_leader_state_is_leader(m->state), failure,
                                         now, &m->confirmed_at,
                                         m->lease_duration_usec + m->liveness_margin_usec);
        if (r < 0 && failure < 0)
                snprintf(why, why_size, "leader election stopped on an error: %s",
                         strerror(-failure));
        else if (r < 0)
                snprintf(why, why_size, "leader has not renewed the lease for %s",
                         koc_format_duration(now - m->confirmed_at, a, sizeof a));
        return r;
}

static int on_confirm_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        koc_manager *m = userdata;

        if (m->leading && koc_leader_state_is_leader(m->state))
                m->confirmed_at = koc_now_boottime_usec();
        /* From now, not from the scheduled time: after a long pause the timer
         * fires once, not once per missed period. */
        (void)sd_event_source_set_time_relative(s, m->retry_period_usec);
        return 0;
}

/* --- runnables ------------------------------------------------------------------ */

static void start_runnables(koc_manager *m, uint64_t term) {
        for (size_t i = 0; i < m->n_runnables; i++) {
                struct runnable *x = &m->runnables[i];
                int r = x->ops.start ? x->ops.start(m, term, x->userdata) : 0;

                if (r < 0)
                        koc_log_warn(LOG, "runnable %s failed to start: %s", x->name, strerror(-r));
                x->running = r >= 0;
        }
}

static void stop_runnables(koc_manager *m, koc_leader_reason reason) {
        for (size_t i = m->n_runnables; i > 0; i--) {
                struct runnable *x = &m->runnables[i - 1];

                if (!x->running)
                        continue;
                x->running = false;
                if (x->ops.stop)
                        x->ops.stop(m, reason, x->userdata);
        }
}

/* --- leader callbacks ----------------------------------------------------------- */

static void start_confirm_timer(koc_manager *m) {
        uint64_t now = koc_now_boottime_usec();

        m->confirmed_at = now;
        if (!m->confirm_timer) {
                if (sd_event_add_time(m->event, &m->confirm_timer, CLOCK_BOOTTIME,
                                      now + m->retry_period_usec, 0, on_confirm_timer, m) < 0) {
                        m->confirm_timer = NULL;
                        return;
                }
                (void)sd_event_source_set_description(m->confirm_timer, "manager-confirm");
        } else {
                (void)sd_event_source_set_time(m->confirm_timer, now + m->retry_period_usec);
        }
        (void)sd_event_source_set_enabled(m->confirm_timer, SD_EVENT_ON);
}

static void on_started_leading(koc_leader *l, uint64_t term, void *userdata) {
        koc_manager *m = userdata;

        m->leading = true;
        start_confirm_timer(m);
        /* The elector logs the transition at info already. */
        koc_log_debug(LOG, "started leading identity=%s lease=%s/%s term=%" PRIu64,
                      koc_leader_get_identity(l), m->lease_namespace, m->lease_name, term);
        if (m->callbacks.started_leading)
                m->callbacks.started_leading(m, term, m->callbacks_userdata);
        start_runnables(m, term);
}

static void on_standby_stopped(koc_leader *l, int result, void *userdata) {
        koc_manager *m = userdata;
        koc_shutdown_step *s = m->step_down_step;

        m->standby_stopping = false;
        if (result != 0 && result != -ECANCELED && result != -ESTALE)
                koc_log_warn(LOG, "could not give back the lease: %s; it expires on its own",
                             strerror(-result));
        m->step_down_step = NULL;
        if (s)
                koc_shutdown_step_done(s);
}

/* A replica that does not lead stops competing once its shutdown has
 * started: it must not take the Lease (and start leader-only work) on its
 * way out.  koc_leader_step_down() stops a follower at once, and awaits a
 * write in flight to take the Lease, giving it back if it made us the
 * holder. */
static void stop_competing(koc_manager *m) {
        if (!m->leader || m->leading || m->standby_stopping)
                return;
        m->standby_stopping = true;
        if (koc_leader_step_down(m->leader, on_standby_stopped, m) < 0)
                m->standby_stopping = false;
}

static void on_stopped_leading(koc_leader *l, koc_leader_reason reason, void *userdata) {
        koc_manager *m = userdata;
        bool stopping = koc_manager_is_stopping(m);
        bool was_leading = m->leading;

        m->leading = false;
        if (m->confirm_timer)
                (void)sd_event_source_set_enabled(m->confirm_timer, SD_EVENT_OFF);

        if (was_leading)
                koc_log_debug(LOG, "stopped leading reason=%s in_flight=%u",
                              koc_leader_reason_to_string(reason), atomic_load(&m->in_flight));
        stop_runnables(m, reason);
        if (m->callbacks.stopped_leading)
                m->callbacks.stopped_leading(m, reason, m->callbacks_userdata);

        if (stopping) {
                /* Lost while shutting down: do not lead again on the way out. */
                if (reason == KOC_LEADER_REASON_RENEW_DEADLINE_EXCEEDED ||
                    reason == KOC_LEADER_REASON_HOLDER_CHANGED ||
                    reason == KOC_LEADER_REASON_LEASE_DELETED)
                        stop_competing(m);
                return;
        }
        switch (reason) {
        case KOC_LEADER_REASON_OBSERVE_TIMEOUT:
                koc_log_error(LOG, "the API server was unreachable for the observe timeout; "
                                   "shutting down");
                m->exit_code = 1;
                (void)koc_shutdown_trigger(m->shutdown);
                break;
        case KOC_LEADER_REASON_RENEW_DEADLINE_EXCEEDED:
        case KOC_LEADER_REASON_HOLDER_CHANGED:
        case KOC_LEADER_REASON_LEASE_DELETED:
                if (m->exit_on_loss) {
                        koc_log_warn(LOG,
                                     "leadership lost (%s); shutting down "
                                     "(--leader-elect-exit-on-loss)",
                                     koc_leader_reason_to_string(reason));
                        m->exit_code = 1;
                        (void)koc_shutdown_trigger(m->shutdown);
                } else
                        koc_log_info(LOG, "leadership lost (%s); standing by",
                                     koc_leader_reason_to_string(reason));
                break;
        default:
                break;
        }
}

static void on_new_leader(koc_leader *l, const char *identity, void *userdata) {
        koc_manager *m = userdata;

        if (identity && identity[0])
                koc_log_info(LOG, "leader is %s%s", identity,
                             strcmp(identity, koc_leader_get_identity(l)) == 0 ? " (this replica)"
                                                                               : "");
        else
                koc_log_info(LOG, "lease is free");
        if (m->callbacks.new_leader)
                m->callbacks.new_leader(m, identity ? identity : "", m->callbacks_userdata);
}

/* --- shutdown steps --------------------------------------------------------------- */

static void on_shutdown_begin(koc_shutdown *s, void *userdata) {
        koc_manager *m = userdata;

        koc_probes_set_ready(m->probes, false);
        koc_log_info(LOG, "shutdown started: not ready; leader=%s in_flight=%u",
                     koc_manager_is_leader(m) ? "yes" : "no", atomic_load(&m->in_flight));
        stop_competing(m);
}

static void on_shutdown_done(koc_shutdown *s, int exit_code, void *userdata) {
        koc_manager *m = userdata;

        if (exit_code > m->exit_code)
                m->exit_code = exit_code;
        koc_log_info(LOG, "shutdown finished exit_code=%d", m->exit_code);
}

static void step_stop_intake(koc_shutdown_step *step, void *userdata) {
        koc_manager *m = userdata;

        atomic_store(&m->intake_closed, true);
        koc_log_info(LOG, "intake stopped in_flight=%u", atomic_load(&m->in_flight));
        koc_shutdown_step_done(step);
}

static void step_hook(koc_shutdown_step *step, void *userdata) {
        struct hook *h = userdata;

        h->fn(step, h->userdata);
}

static void step_wait_work(koc_shutdown_step *step, void *userdata) {
        koc_manager *m = userdata;

        atomic_store(&m->draining, true);
        m->wait_step = step;
        if (atomic_load(&m->in_flight) > 0)
                koc_log_info(LOG, "waiting for %u in-flight work item(s)",
                             atomic_load(&m->in_flight));
        finish_wait_if_idle(m);
}

static void on_step_down_done(koc_leader *l, int result, void *userdata) {
        koc_manager *m = userdata;
        koc_shutdown_step *s = m->step_down_step;

        if (result == 0)
                koc_log_info(LOG, "released the lease %s/%s", m->lease_namespace, m->lease_name);
        else if (result == -ESTALE)
                koc_log_info(LOG, "lease already held by another replica; nothing to release");
        else
                koc_log_warn(LOG, "could not release the lease: %s; it expires on its own",
                             strerror(-result));
        m->step_down_step = NULL;
        if (s)
                koc_shutdown_step_done(s);
}

static void step_step_down(koc_shutdown_step *step, void *userdata) {
        koc_manager *m = userdata;
        unsigned busy = atomic_load(&m->in_flight);
        int r;

        /* The wait step may have been abandoned by a forced shutdown. */
        m->wait_step = NULL;

        if (!m->leader_elect) {
                bool was = atomic_exchange(&m->solo_leading, false);
                koc_leader_reason reason =
                        busy > 0 ? KOC_LEADER_REASON_CANCELLED : KOC_LEADER_REASON_RELEASED;

                if (was) {
                        stop_runnables(m, reason);
                        if (m->callbacks.stopped_leading)
                                m->callbacks.stopped_leading(m, reason, m->callbacks_userdata);
                }
                koc_shutdown_step_done(step);
                return;
        }

        if (koc_shutdown_step_forced(step) && busy > 0) {
                /* Someone else could start the same work while ours still
                 * runs: keep the Lease until it expires on its own. */
                koc_log_warn(LOG,
                             "forced shutdown with %u work item(s) still in flight: not "
                             "releasing the lease; it expires after its duration",
                             busy);
                koc_leader_stop(m->leader);
                koc_shutdown_step_done(step);
                return;
        }

        if (m->standby_stopping) {
                /* A write to take the Lease is still being answered (and
                 * undone if it made us the holder): wait for it. */
                m->step_down_step = step;
                return;
        }

        if (!koc_leader_is_leader(m->leader)) {
                koc_log_info(LOG, "not leading; stopping the elector");
                koc_leader_stop(m->leader);
                koc_shutdown_step_done(step);
                return;
        }

        m->step_down_step = step;
        r = koc_leader_step_down(m->leader, on_step_down_done, m);
        if (r < 0) {
                koc_log_warn(LOG, "step-down failed to start: %s", strerror(-r));
                m->step_down_step = NULL;
                koc_leader_stop(m->leader);
                koc_shutdown_step_done(step);
        }
}

static void step_stop_probes(koc_shutdown_step *step, void *userdata) {
        koc_manager *m = userdata;

        koc_probes_stop(m->probes);
        koc__secure_metrics_stop(m->secure_metrics);
        koc__webhooks_stop(m->webhooks);
        koc_shutdown_step_done(step);
}

/* --- construction -------------------------------------------------------------------- */

static koc_manager *manager_free(koc_manager *m) {
        if (!m)
                return NULL;
        /* The elector first: dropping it stops it without callbacks. */
        if (m->leader) {
                koc_leader_set_callbacks(m->leader, NULL, NULL, NULL);
                koc_leader_unref(m->leader);
        }
        koc_leader_state_unref(m->state);
        sd_event_source_disable_unref(m->confirm_timer);
        /* Runs a pending wake-up (cancelled) and waits for posters to leave;
         * none can be inside, as each holds a reference. */
        koc__mailbox_free(m->mailbox);
        koc_shutdown_unref(m->shutdown);
        m->webhooks = koc__webhooks_free(m->webhooks);
        koc_probes_unref(m->probes);
        m->secure_metrics = koc__secure_metrics_free(m->secure_metrics);
        /* Its informers use the client and register in metrics. */
        koc__cache_free(m->cache);
        koc_client_unref(m->client);
        koc_cluster_config_unref(m->cluster);
        koc_metrics_unref(m->metrics);
        sd_event_unref(m->event);
        koc__rbac_free(&m->rbac);
        /* Last, when nothing can call them any more. */
        for (size_t i = 0; i < m->n_hooks; i++) {
                if (m->hooks[i].destroy)
                        m->hooks[i].destroy(m->hooks[i].userdata);
                free(m->hooks[i].name);
        }
        free(m->hooks);
        for (size_t i = 0; i < m->n_runnables; i++) {
                if (m->runnables[i].destroy)
                        m->runnables[i].destroy(m->runnables[i].userdata);
                free(m->runnables[i].name);
        }
        free(m->runnables);
        free(m->print_rbac_under);
        if (m->callbacks_destroy)
                m->callbacks_destroy(m->callbacks_userdata);
        free(m->lease_namespace);
        free(m->lease_name);
        free(m);
        return NULL;
}

KOC_EXPORT koc_manager *koc_manager_ref(koc_manager *m) {
        if (m)
                atomic_fetch_add_explicit(&m->n_ref, 1, memory_order_relaxed);
        return m;
}

KOC_EXPORT koc_manager *koc_manager_unref(koc_manager *m) {
        if (!m)
                return NULL;
        if (atomic_fetch_sub_explicit(&m->n_ref, 1, memory_order_acq_rel) != 1)
                return NULL;
        KOC__ASSERT_LOOP_THREAD(m->loop_tid);
        return manager_free(m);
}

static int setup_leader(koc_manager *m, const koc_manager_config *cfg, koc_error *err) {
        _koc_cleanup_(koc_leader_config_freep) koc_leader_config *lc = NULL;
        const char *ns = cfg->leader_election_namespace;
        int r;

        if (!ns || !ns[0])
                ns = koc_cluster_config_namespace(m->cluster);
        m->lease_namespace = strdup(ns);
        m->lease_name = strdup(cfg->leader_election_id);
        if (!m->lease_namespace || !m->lease_name)
                return koc_error_set(err, -ENOMEM, "out of memory");

        r = koc_leader_config_new(m->lease_namespace, m->lease_name, &lc);
        if (r < 0)
                return koc_error_set(err, r, "leader election configuration: %s", strerror(-r));
        koc_leader_config_set_lease_duration(lc, cfg->lease_duration_usec);
        koc_leader_config_set_renew_deadline(lc, cfg->renew_deadline_usec);
        koc_leader_config_set_retry_period(lc, cfg->retry_period_usec);
        if (cfg->identity) {
                r = koc_leader_config_set_identity(lc, cfg->identity);
                if (r < 0)
                        return koc_error_set(err, r, "--identity=\"%s\": %s", cfg->identity,
                                             strerror(-r));
        }
        r = koc_leader_new(m->client, lc, &m->leader, err);
        if (r < 0)
                return r;
        koc_leader_set_callbacks(m->leader,
                                 &(koc_leader_callbacks){
                                         .started_leading = on_started_leading,
                                         .stopped_leading = on_stopped_leading,
                                         .new_leader = on_new_leader,
                                 },
                                 m, NULL);
        m->state = koc_leader_ref_state(m->leader);
        if (!m->state)
                return koc_error_set(err, -ENOMEM, "out of memory");
        r = koc_leader_register_metrics(m->leader, m->metrics);
        if (r < 0)
                return koc_error_set(err, r, "leader metrics: %s", strerror(-r));
        return 0;
}

static int listen_one(koc_manager *m, const char *flag, const char *address, unsigned kinds,
                      koc_error *err) {
        int r = koc_probes_listen(m->probes, address, kinds);

        if (r == -EINVAL)
                return koc_error_set(err, r,
                                     "--%s=\"%s\": not an address (use :PORT, HOST:PORT, "
                                     "[IPv6]:PORT or 0 to disable)",
                                     flag, address);
        if (r < 0)
                return koc_error_set(err, r, "--%s=\"%s\": cannot listen: %s", flag, address,
                                     strerror(-r));
        return 0;
}

/* Plain /metrics is readable by anyone who reaches the address. */
static void warn_plain_metrics(const char *address) {
        if (strcmp(address, "0") == 0 || strncmp(address, "127.", 4) == 0 ||
            strncmp(address, "[::1]:", 6) == 0 || strncmp(address, "localhost:", 10) == 0)
                return;
        koc_log_warn(LOG,
                     "metrics served over plain HTTP without authentication on %s, beyond "
                     "loopback; use --metrics-secure",
                     address);
}

static int setup_probes(koc_manager *m, const koc_manager_config *cfg, koc_error *err) {
        const char *h = cfg->health_probe_bind_address, *x = cfg->metrics_bind_address;
        int r;

        r = koc_probes_new(m->event, m->metrics, &m->probes);
        if (r < 0)
                return koc_error_set(err, r, "probes server: %s", strerror(-r));
        if (m->leader_elect && m->gate_readiness) {
                r = koc_probes_add_ready_check(m->probes, "leader", check_leader_ready, m, NULL);
                if (r < 0)
                        return koc_error_set(err, r, "readiness check: %s", strerror(-r));
        }
        if (m->leader_elect) {
                r = koc_probes_add_health_check(m->probes, "leader-renewal", check_leader_renewal,
                                                m, NULL);
                if (r < 0)
                        return koc_error_set(err, r, "liveness check: %s", strerror(-r));
        }

        if (cfg->metrics_secure) {
                r = listen_one(m, "health-probe-bind-address", h, KOC_PROBES_HEALTH, err);
                if (r < 0 || strcmp(x, "0") == 0)
                        return r;
                return koc__secure_metrics_new(m->event, m->client, m->metrics, cfg,
                                               &m->secure_metrics, err);
        }
        warn_plain_metrics(x);
        if (strcmp(h, "0") != 0 && strcmp(h, x) == 0)
                return listen_one(m, "health-probe-bind-address", h,
                                  KOC_PROBES_HEALTH | KOC_PROBES_METRICS, err);
        r = listen_one(m, "health-probe-bind-address", h, KOC_PROBES_HEALTH, err);
        if (r < 0)
                return r;
        return listen_one(m, "metrics-bind-address", x, KOC_PROBES_METRICS, err);
}

static int setup_shutdown(koc_manager *m, const koc_manager_config *cfg, koc_error *err) {
        int r;

        r = koc_shutdown_new(m->event, &m->shutdown);
        if (r < 0)
                return koc_error_set(err, r, "shutdown: %s", strerror(-r));
        r = koc_shutdown_set_budget(m->shutdown, cfg->shutdown_budget_usec);
        if (r >= 0)
                r = koc_shutdown_set_delay(m->shutdown, cfg->shutdown_delay_usec);
        if (r < 0)
                return koc_error_set(err, r,
                                     "--shutdown-drain-budget/--shutdown-delay: rejected: %s",
                                     strerror(-r));
        (void)koc_shutdown_set_begin_handler(m->shutdown, on_shutdown_begin, m, NULL);
        (void)koc_shutdown_set_done_handler(m->shutdown, on_shutdown_done, m, NULL);
        if (cfg->handle_signals) {
                r = koc_shutdown_start_signals(m->shutdown);
                if (r < 0)
                        return koc_error_set(err, r, "SIGTERM/SIGINT handlers: %s", strerror(-r));
        }
        return 0;
}

KOC_EXPORT int koc_manager_new_sized(sd_event *event, size_t cfg_size,
                                     const koc_manager_config *user_cfg, koc_manager **ret,
                                     koc_error *err) {
        _koc_cleanup_(koc_manager_unrefp) koc_manager *m = NULL;
        koc_manager_config copy;
        const koc_manager_config *cfg = &copy;
        int r;

        if (!user_cfg || !ret)
                return koc_error_set(err, -EINVAL, "koc_manager_new: missing arguments");
        if (KOC__IMPORT(&copy, user_cfg, cfg_size, kubeconfig) < 0)
                return koc_error_set(err, -EINVAL,
                                     "koc_manager_new: configuration size %zu does not match "
                                     "this library (%zu)",
                                     cfg_size, sizeof copy);
        r = koc_manager_config_validate(cfg, err);
        if (r < 0)
                return r;

        if (cfg->log_level)
                koc_log_set_level(koc_log_level_from_string(cfg->log_level));
        if (cfg->log_format)
                koc_log_set_format(strcmp(cfg->log_format, "json") == 0 ? KOC_LOG_FORMAT_JSON
                                                                        : KOC_LOG_FORMAT_LOGFMT);

        m = calloc(1, sizeof *m);
        if (!m)
                return koc_error_set(err, -ENOMEM, "out of memory");
        atomic_init(&m->n_ref, 1);
        m->leader_elect = cfg->leader_elect;
        m->gate_readiness = cfg->gate_readiness_on_leader;
        m->exit_on_loss = cfg->exit_on_leadership_loss;
        m->lease_duration_usec = cfg->lease_duration_usec;
        m->retry_period_usec = cfg->retry_period_usec;
        m->liveness_margin_usec = cfg->liveness_margin_usec;

        if (event)
                m->event = sd_event_ref(event);
        else {
                r = sd_event_default(&m->event);
                if (r < 0)
                        return koc_error_set(err, r, "event loop: %s", strerror(-r));
        }
        m->loop_tid = koc__loop_tid(m->event);

        m->print_rbac = cfg->print_rbac;
        if (cfg->print_rbac_values_under && *cfg->print_rbac_values_under &&
            !(m->print_rbac_under = strdup(cfg->print_rbac_values_under)))
                return koc_error_set(err, -ENOMEM, "out of memory");
        if (m->print_rbac) {
                /* Nothing is read or contacted: a client that is never
                 * started carries the informers the rules come from. */
                m->cluster = koc__cluster_config_alloc();
                if (!m->cluster)
                        return koc_error_set(err, -ENOMEM, "out of memory");
                r = koc__cluster_config_set_server(m->cluster, "https://127.0.0.1:1", NULL,
                                                   "--print-rbac", err);
        } else
                r = koc_cluster_config_load(cfg->kubeconfig, NULL, &m->cluster, err);
        if (r < 0)
                return r;
        r = koc_client_new(m->event, m->cluster, &m->client);
        if (r < 0)
                return koc_error_set(err, r, "API client: %s", strerror(-r));

        r = koc_metrics_new(&m->metrics);
        if (r < 0)
                return koc_error_set(err, r, "metrics: %s", strerror(-r));
        r = koc_metrics_add_process_collector(m->metrics);
        if (r >= 0)
                r = koc_metrics_add_collector(m->metrics, work_collector, m, NULL);
        /* client-go's rest_client_* metrics, as controller-runtime exposes. */
        if (r >= 0)
                r = koc_client_register_metrics(m->client, m->metrics);
        if (r < 0)
                return koc_error_set(err, r, "metrics: %s", strerror(-r));
        r = koc__cache_new(m->client, m->metrics, &m->cache);
        if (r < 0)
                return koc_error_set(err, r, "cache: %s", strerror(-r));

        if (m->leader_elect && !m->print_rbac) {
                r = setup_leader(m, cfg, err);
                if (r < 0)
                        return r;
        }

        koc_manager_config quiet;
        if (m->print_rbac) {
                /* Nothing listens and no signal is taken over. */
                quiet = *cfg;
                quiet.health_probe_bind_address = quiet.metrics_bind_address = "0";
                quiet.handle_signals = false;
                cfg = &quiet;
        }
        r = setup_probes(m, cfg, err);
        if (r < 0)
                return r;
        /* Listens only when a webhook is registered (koc/webhook.h). */
        r = koc__webhooks_new(m->event, m->metrics, m->probes,
                              &(koc__webhooks_config){
                                      .address = cfg->webhook_bind_address,
                                      .cert_dir = cfg->webhook_cert_dir,
                                      .timeout_usec = cfg->webhook_timeout_usec,
                                      .allow_on_timeout = cfg->webhook_allow_on_timeout,
                                      .disabled = m->print_rbac,
                                      .leader_gated = m->leader_elect && m->gate_readiness,
                              },
                              &m->webhooks);
        if (r < 0)
                return koc_error_set(err, r, "webhook server: %s", strerror(-r));
        r = setup_shutdown(m, cfg, err);
        if (r < 0)
                return r;

        r = koc__mailbox_new(m->event, 0, &m->mailbox);
        if (r < 0)
                return koc_error_set(err, r, "mailbox: %s", strerror(-r));

        *ret = m;
        m = NULL;
        return 0;
}

KOC_EXPORT int koc_manager_set_callbacks_sized(koc_manager *m, size_t callbacks_size,
                                               const koc_manager_callbacks *callbacks,
                                               void *userdata, koc_destroy_t destroy) {
        koc_manager_callbacks copy = {0};

        if (!m)
                return -EINVAL;
        KOC__ASSERT_LOOP_THREAD(m->loop_tid);
        if (callbacks && KOC__IMPORT(&copy, callbacks, callbacks_size, started_leading) < 0)
                return -EINVAL;
        /* Registering the same userdata again keeps it alive. */
        if (m->callbacks_destroy && m->callbacks_userdata != userdata)
                m->callbacks_destroy(m->callbacks_userdata);
        m->callbacks = copy;
        m->callbacks_userdata = userdata;
        m->callbacks_destroy = destroy;
        return 0;
}

KOC_EXPORT int koc_manager_add_shutdown_hook(koc_manager *m, const char *name,
                                             koc_shutdown_step_t hook, void *userdata,
                                             koc_destroy_t destroy) {
        struct hook *hooks;
        char *copy;

        if (!m || !name || !name[0] || !hook)
                return -EINVAL;
        KOC__ASSERT_LOOP_THREAD(m->loop_tid);
        if (m->ran)
                return -EBUSY;
        copy = strdup(name);
        if (!copy)
                return -ENOMEM;
        hooks = realloc(m->hooks, (m->n_hooks + 1) * sizeof *hooks);
        if (!hooks) {
                free(copy);
                return -ENOMEM;
        }
        m->hooks = hooks;
        m->hooks[m->n_hooks++] =
                (struct hook){.name = copy, .fn = hook, .userdata = userdata, .destroy = destroy};
        return 0;
}

KOC_EXPORT int koc_manager_add_runnable_sized(koc_manager *m, const char *name,
                                              size_t runnable_size,
                                              const koc_manager_runnable *runnable, void *userdata,
                                              koc_destroy_t destroy) {
        koc_manager_runnable ops;
        struct runnable *v;
        char *copy;

        if (!m || !name || !name[0] || KOC__IMPORT(&ops, runnable, runnable_size, start) < 0)
                return -EINVAL;
        KOC__ASSERT_LOOP_THREAD(m->loop_tid);
        if (m->ran)
                return -EBUSY;
        copy = strdup(name);
        if (!copy)
                return -ENOMEM;
        v = realloc(m->runnables, (m->n_runnables + 1) * sizeof *v);
        if (!v) {
                free(copy);
                return -ENOMEM;
        }
        m->runnables = v;
        m->runnables[m->n_runnables++] = (struct runnable){
                .name = copy, .ops = ops, .userdata = userdata, .destroy = destroy};
        return 0;
}

static int add_steps(koc_manager *m) {
        int r;

        /* Even when forced (a second signal during the delay): the step-down
         * reads the in-flight count, which means nothing while work may
         * still begin. */
        r = koc_shutdown_add_step(m->shutdown, "stop-intake", KOC_SHUTDOWN_STEP_RUN_IF_FORCED,
                                  step_stop_intake, m, NULL);
        for (size_t i = 0; r >= 0 && i < m->n_hooks; i++)
                r = koc_shutdown_add_step(m->shutdown, m->hooks[i].name, 0, step_hook, &m->hooks[i],
                                          NULL);
        if (r >= 0)
                r = koc_shutdown_add_step(m->shutdown, "wait-for-work", 0, step_wait_work, m, NULL);
        if (r >= 0)
                r = koc_shutdown_add_step(m->shutdown, "step-down", KOC_SHUTDOWN_STEP_RUN_IF_FORCED,
                                          step_step_down, m, NULL);
        if (r >= 0)
                r = koc_shutdown_add_step(m->shutdown, "stop-probes",
                                          KOC_SHUTDOWN_STEP_RUN_IF_FORCED, step_stop_probes, m,
                                          NULL);
        return r;
}

static void log_start(koc_manager *m) {
        char health[16] = "off", metrics[16] = "off";
        uint16_t port;

        if (koc_probes_get_port(m->probes, KOC_PROBES_HEALTH, &port) >= 0)
                snprintf(health, sizeof health, "%u", port);
        if (koc_probes_get_port(m->probes, KOC_PROBES_METRICS, &port) >= 0)
                snprintf(metrics, sizeof metrics, "%u", port);
        if (m->secure_metrics)
                snprintf(metrics, sizeof metrics, "%u",
                         koc__secure_metrics_port(m->secure_metrics));
        if (m->leader_elect)
                koc_log_info(LOG,
                             "starting identity=%s lease=%s/%s server=%s health_port=%s "
                             "metrics_port=%s",
                             koc_leader_get_identity(m->leader), m->lease_namespace, m->lease_name,
                             koc_cluster_config_server(m->cluster), health, metrics);
        else
                koc_log_info(LOG,
                             "starting without leader election server=%s health_port=%s "
                             "metrics_port=%s",
                             koc_cluster_config_server(m->cluster), health, metrics);
}

KOC_EXPORT int koc_manager_run(koc_manager *m) {
        int r;

        /* The result is main()'s return value, so it is an exit code and
         * never a negative errno (which the shell would see as 256 - errno). */
        if (!m) {
                koc_log_error(LOG, "koc_manager_run: no manager");
                return KOC_MANAGER_EXIT_FAILURE;
        }
        KOC__ASSERT_LOOP_THREAD(m->loop_tid);
        if (m->ran) {
                koc_log_error(LOG, "koc_manager_run: the manager has run already");
                return KOC_MANAGER_EXIT_FAILURE;
        }
        m->ran = true;

        if (m->print_rbac) {
                r = koc__rbac_print(&m->rbac, m->cache, m->leader_elect, m->print_rbac_under, stdout);
                if (r < 0) {
                        koc_log_error(LOG, "--print-rbac: %s", strerror(-r));
                        return KOC_MANAGER_EXIT_FAILURE;
                }
                return KOC_MANAGER_EXIT_OK;
        }

        r = add_steps(m);
        if (r < 0) {
                koc_log_error(LOG, "cannot set up the shutdown steps: %s", strerror(-r));
                return KOC_MANAGER_EXIT_FAILURE;
        }
        log_start(m);

        /* Keep the manager alive while callbacks may drop the caller's ref. */
        koc_manager_ref(m);
        if (m->leader_elect) {
                r = koc_leader_start(m->leader);
                if (r < 0) {
                        koc_log_error(LOG, "cannot start leader election: %s", strerror(-r));
                        koc_manager_unref(m);
                        return KOC_MANAGER_EXIT_FAILURE;
                }
        } else if (!koc_manager_is_stopping(m)) {
                atomic_store(&m->solo_leading, true);
                if (m->callbacks.started_leading)
                        m->callbacks.started_leading(m, 0, m->callbacks_userdata);
                start_runnables(m, 0);
        }

        r = sd_event_loop(m->event);
        if (r < 0) {
                koc_log_error(LOG, "event loop failed: %s", strerror(-r));
                r = KOC_MANAGER_EXIT_FAILURE;
        } else if (r > 255) {
                /* Someone ended the loop with sd_event_exit(e, code) and a code
                 * that does not fit in an exit status. */
                koc_log_error(LOG, "event loop ended with code %d", r);
                r = KOC_MANAGER_EXIT_FAILURE;
        } else if (r < m->exit_code)
                r = m->exit_code;
        koc_manager_unref(m);
        return r;
}

KOC_EXPORT int koc_manager_shutdown(koc_manager *m) {
        if (!m)
                return -EINVAL;
        KOC__ASSERT_LOOP_THREAD(m->loop_tid);
        return koc_shutdown_trigger(m->shutdown);
}

KOC_EXPORT int koc_manager_force_shutdown(koc_manager *m) {
        if (!m)
                return -EINVAL;
        KOC__ASSERT_LOOP_THREAD(m->loop_tid);
        return koc_shutdown_force(m->shutdown);
}

KOC_EXPORT sd_event *koc_manager_get_event(koc_manager *m) {
        return m ? m->event : NULL;
}

KOC_EXPORT koc_client *koc_manager_get_client(koc_manager *m) {
        return m ? m->client : NULL;
}

KOC_EXPORT koc_cluster_config *koc_manager_get_cluster_config(koc_manager *m) {
        return m ? m->cluster : NULL;
}

KOC_EXPORT koc_leader *koc_manager_get_leader(koc_manager *m) {
        return m ? m->leader : NULL;
}

KOC_EXPORT koc_probes *koc_manager_get_probes(koc_manager *m) {
        return m ? m->probes : NULL;
}

KOC_EXPORT koc_cache *koc_manager_get_cache(koc_manager *m) {
        return m ? m->cache : NULL;
}

KOC_EXPORT koc_metrics *koc_manager_get_metrics(koc_manager *m) {
        return m ? m->metrics : NULL;
}

KOC_EXPORT koc_shutdown *koc_manager_get_shutdown(koc_manager *m) {
        return m ? m->shutdown : NULL;
}

KOC_EXPORT const char *koc_manager_get_identity(koc_manager *m) {
        return m && m->leader ? koc_leader_get_identity(m->leader) : "";
}

KOC_EXPORT const char *koc_manager_get_lease_namespace(koc_manager *m) {
        return m ? m->lease_namespace : NULL;
}

KOC_EXPORT const char *koc_manager_get_lease_name(koc_manager *m) {
        return m ? m->lease_name : NULL;
}

koc__webhooks *koc__manager_webhooks(koc_manager *m) {
        return m->webhooks;
}

KOC_EXPORT int koc_manager_get_health_port(koc_manager *m, uint16_t *ret_port) {
        if (!m || !ret_port)
                return -EINVAL;
        return koc_probes_get_port(m->probes, KOC_PROBES_HEALTH, ret_port);
}

KOC_EXPORT int koc_manager_get_metrics_port(koc_manager *m, uint16_t *ret_port) {
        if (!m || !ret_port)
                return -EINVAL;
        if (m->secure_metrics) {
                *ret_port = koc__secure_metrics_port(m->secure_metrics);
                return 0;
        }
        return koc_probes_get_port(m->probes, KOC_PROBES_METRICS, ret_port);
}

KOC_EXPORT int koc_manager_declare_access_sized(koc_manager *m, size_t res_size,
                                                const koc_resource *res, const char *namespace_,
                                                const char *verbs) {
        koc_resource copy;

        if (!m || KOC__IMPORT(&copy, res, res_size, group) < 0)
                return -EINVAL;
        koc_error err = {0};
        int r = koc__rbac_declare(&m->rbac, copy.group, copy.resource,
                                  copy.namespaced ? namespace_ : NULL, verbs, &err);
        if (r < 0)
                koc_log_warn(LOG, "%s", err.message);
        return r;
}

KOC_EXPORT bool koc_manager_is_printing_rbac(koc_manager *m) {
        return m && m->print_rbac;
}
