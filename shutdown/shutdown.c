/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Graceful shutdown: a small state machine on the sd-event loop.
 *
 *   IDLE --signal/trigger--> DELAYING --delay--> DRAINING --last step--> DONE (0)
 *                               |                   |
 *                               +-- 2nd signal / budget --> FORCED --> DONE (1)
 *
 * Steps run one at a time, in order.  A step is in flight from its start
 * function until koc_shutdown_step_done(); that may happen inside the start
 * function (the loop in advance() then moves on at once) or later from any
 * loop callback.  Forcing abandons the step in flight unless it is itself a
 * RUN_IF_FORCED step, which keeps running under the grace timer, and then runs
 * only the remaining RUN_IF_FORCED steps.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "koc/log.h"
#include "koc/shutdown.h"
#include "koc/time.h"

#define COMPONENT "shutdown"
#define NAMES_MAX 512

enum step_state { STEP_PENDING, STEP_RUNNING, STEP_DONE, STEP_ABANDONED, STEP_SKIPPED };

struct koc_shutdown_step {
        koc_shutdown *shutdown;
        char *name;
        unsigned flags;
        koc_shutdown_step_t start;
        void *userdata;
        koc_destroy_t destroy;
        enum step_state state;
        bool forced;
        uint64_t started_at;
};

struct koc_shutdown {
        unsigned n_ref;
        sd_event *event;

        uint64_t budget_usec, delay_usec, grace_usec;
        bool exit_loop;
        koc_shutdown_begin_t on_begin;
        void *begin_userdata;
        koc_destroy_t begin_destroy;
        koc_shutdown_done_t on_done;
        void *done_userdata;
        koc_destroy_t done_destroy;

        koc_shutdown_step **steps;
        size_t n_steps;
        size_t current; /* index of the step in flight or next to start */
        bool advancing; /* advance() is on the stack */

        _Atomic int state; /* enum koc_shutdown_state */
        int exit_code;
        uint64_t started_at;

        sd_event_source *sig_term, *sig_int;
        sd_event_source *delay_timer, *budget_timer, *grace_timer;
};

static void advance(koc_shutdown *s);

static enum koc_shutdown_state get_state(const koc_shutdown *s) {
        return (enum koc_shutdown_state)atomic_load_explicit(&s->state, memory_order_acquire);
}

static void set_state(koc_shutdown *s, enum koc_shutdown_state st) {
        atomic_store_explicit(&s->state, (int)st, memory_order_release);
}

static const char *elapsed(const koc_shutdown *s, char *buf, size_t size) {
        return koc_format_duration(koc_now_boottime_usec() - s->started_at, buf, size);
}

static void stop_timer(sd_event_source **t) {
        *t = sd_event_source_disable_unref(*t);
}

static int start_timer(koc_shutdown *s, sd_event_source **t, uint64_t usec,
                       sd_event_time_handler_t fn, const char *description) {
        stop_timer(t);
        int r = sd_event_add_time_relative(s->event, t, CLOCK_BOOTTIME, usec, 1000, fn, s);
        if (r < 0) {
                koc_log_error(COMPONENT, "cannot add the %s timer: %s", description,
                              strerror(-r));
                return r;
        }
        (void)sd_event_source_set_priority(*t, SD_EVENT_PRIORITY_IMPORTANT);
        (void)sd_event_source_set_description(*t, description);
        return 0;
}

/* --- the end ---------------------------------------------------------------- */

static void finish(koc_shutdown *s) {
        if (get_state(s) == KOC_SHUTDOWN_DONE)
                return;
        set_state(s, KOC_SHUTDOWN_DONE);
        stop_timer(&s->delay_timer);
        stop_timer(&s->budget_timer);
        stop_timer(&s->grace_timer);

        char buf[32];
        if (s->exit_code == KOC_SHUTDOWN_EXIT_OK)
                koc_log_info(COMPONENT, "shutdown complete exit_code=0 elapsed=%s",
                             elapsed(s, buf, sizeof(buf)));
        else
                koc_log_warn(COMPONENT, "shutdown complete (forced) exit_code=%d elapsed=%s",
                             s->exit_code, elapsed(s, buf, sizeof(buf)));

        koc_shutdown_ref(s);
        if (s->on_done)
                s->on_done(s, s->exit_code, s->done_userdata);
        if (s->exit_loop) {
                int r = sd_event_exit(s->event, s->exit_code);
                if (r < 0)
                        koc_log_error(COMPONENT, "cannot exit the loop: %s", strerror(-r));
        }
        koc_shutdown_unref(s);
}

/* --- steps ----------------------------------------------------------------- */

static void run_step(koc_shutdown *s, koc_shutdown_step *st) {
        st->state = STEP_RUNNING;
        st->forced = get_state(s) == KOC_SHUTDOWN_FORCED;
        st->started_at = koc_now_boottime_usec();
        koc_log_info(COMPONENT, "step started step=%s%s", st->name,
                     st->forced ? " forced=true" : "");
        st->start(st, st->userdata);
}

/* Starts steps until one stays in flight or none is left. */
static void advance(koc_shutdown *s) {
        if (s->advancing)
                return; /* a step finished inside its start function */
        s->advancing = true;
        koc_shutdown_ref(s);

        while (s->current < s->n_steps) {
                enum koc_shutdown_state state = get_state(s);
                if (state != KOC_SHUTDOWN_DRAINING && state != KOC_SHUTDOWN_FORCED)
                        break;
                koc_shutdown_step *st = s->steps[s->current];
                if (st->state == STEP_PENDING) {
                        if (state == KOC_SHUTDOWN_FORCED &&
                            !(st->flags & KOC_SHUTDOWN_STEP_RUN_IF_FORCED)) {
                                st->state = STEP_SKIPPED;
                                koc_log_warn(COMPONENT, "step skipped (forced) step=%s",
                                             st->name);
                        } else
                                run_step(s, st);
                        continue; /* look at the same step again */
                }
                if (st->state == STEP_RUNNING)
                        break; /* in flight: its step_done() calls us again */
                s->current++; /* done, abandoned or skipped */
        }

        enum koc_shutdown_state state = get_state(s);
        if (s->current >= s->n_steps &&
            (state == KOC_SHUTDOWN_DRAINING || state == KOC_SHUTDOWN_FORCED))
                finish(s);

        s->advancing = false;
        koc_shutdown_unref(s);
}

KOC_EXPORT void koc_shutdown_step_done(koc_shutdown_step *st) {
        if (!st || st->state != STEP_RUNNING)
                return; /* abandoned, skipped or already done */
        koc_shutdown *s = st->shutdown;
        char buf[32];
        st->state = STEP_DONE;
        koc_log_info(COMPONENT, "step done step=%s took=%s", st->name,
                     koc_format_duration(koc_now_boottime_usec() - st->started_at, buf,
                                         sizeof(buf)));
        advance(s);
}

KOC_EXPORT bool koc_shutdown_step_forced(const koc_shutdown_step *st) {
        return st && st->forced;
}

KOC_EXPORT const char *koc_shutdown_step_name(const koc_shutdown_step *st) {
        return st ? st->name : NULL;
}

KOC_EXPORT koc_shutdown *koc_shutdown_step_get_shutdown(const koc_shutdown_step *st) {
        return st ? st->shutdown : NULL;
}

/* --- phases ---------------------------------------------------------------- */

static void start_draining(koc_shutdown *s) {
        char buf[32];
        set_state(s, KOC_SHUTDOWN_DRAINING);
        koc_log_info(COMPONENT, "draining steps=%zu elapsed=%s", s->n_steps,
                     elapsed(s, buf, sizeof(buf)));
        advance(s);
}

static int on_delay(sd_event_source *src, uint64_t usec, void *userdata) {
        koc_shutdown *s = userdata;
        stop_timer(&s->delay_timer);
        if (get_state(s) == KOC_SHUTDOWN_DELAYING)
                start_draining(s);
        return 0;
}

static int on_grace(sd_event_source *src, uint64_t usec, void *userdata) {
        koc_shutdown *s = userdata;
        stop_timer(&s->grace_timer);
        if (get_state(s) != KOC_SHUTDOWN_FORCED)
                return 0;
        for (size_t i = s->current; i < s->n_steps; i++) {
                koc_shutdown_step *st = s->steps[i];
                if (st->state == STEP_RUNNING) {
                        st->state = STEP_ABANDONED;
                        koc_log_error(COMPONENT, "step abandoned (forced grace over) step=%s",
                                      st->name);
                } else if (st->state == STEP_PENDING) {
                        st->state = STEP_SKIPPED;
                        koc_log_error(COMPONENT, "step skipped (forced grace over) step=%s",
                                      st->name);
                }
        }
        s->current = s->n_steps;
        finish(s);
        return 0;
}

/* Appends "a,b,c" of the steps in `state` (from index `from`) to buf. */
static const char *step_names(const koc_shutdown *s, size_t from, enum step_state state,
                              char *buf, size_t size) {
        size_t n = 0;
        buf[0] = 0;
        for (size_t i = from; i < s->n_steps && n + 1 < size; i++) {
                if (s->steps[i]->state != state)
                        continue;
                int w = snprintf(buf + n, size - n, "%s%s", n ? "," : "", s->steps[i]->name);
                if (w < 0)
                        break;
                n += (size_t)w;
        }
        return buf;
}

static void do_force(koc_shutdown *s, const char *reason) {
        char in_flight[NAMES_MAX], pending[NAMES_MAX], buf[32];

        stop_timer(&s->delay_timer);
        stop_timer(&s->budget_timer);
        step_names(s, s->current, STEP_RUNNING, in_flight, sizeof(in_flight));
        step_names(s, s->current, STEP_PENDING, pending, sizeof(pending));
        set_state(s, KOC_SHUTDOWN_FORCED);
        s->exit_code = KOC_SHUTDOWN_EXIT_FORCED;
        koc_log_warn(COMPONENT,
                     "shutdown forced reason=\"%s\" in_flight=\"%s\" not_started=\"%s\" "
                     "elapsed=%s",
                     reason, in_flight, pending, elapsed(s, buf, sizeof(buf)));

        if (s->current < s->n_steps) {
                koc_shutdown_step *st = s->steps[s->current];
                if (st->state == STEP_RUNNING) {
                        if (st->flags & KOC_SHUTDOWN_STEP_RUN_IF_FORCED) {
                                koc_log_warn(COMPONENT, "step still running (forced) step=%s",
                                             st->name);
                        } else {
                                st->state = STEP_ABANDONED;
                                koc_log_warn(COMPONENT, "step abandoned (forced) step=%s",
                                             st->name);
                        }
                }
        }
        (void)start_timer(s, &s->grace_timer, s->grace_usec, on_grace, "shutdown-grace");
        advance(s);
}

static int on_budget(sd_event_source *src, uint64_t usec, void *userdata) {
        koc_shutdown *s = userdata;
        stop_timer(&s->budget_timer);
        enum koc_shutdown_state st = get_state(s);
        if (st == KOC_SHUTDOWN_DELAYING || st == KOC_SHUTDOWN_DRAINING)
                do_force(s, "drain budget exceeded");
        return 0;
}

static int do_trigger(koc_shutdown *s, const char *reason) {
        char buf[32];
        if (get_state(s) != KOC_SHUTDOWN_IDLE)
                return -EALREADY;
        s->started_at = koc_now_boottime_usec();
        set_state(s, KOC_SHUTDOWN_DELAYING);
        koc_log_info(COMPONENT, "shutdown started reason=\"%s\" budget=%s delay=%s steps=%zu",
                     reason, koc_format_duration(s->budget_usec, buf, sizeof(buf)),
                     koc_format_duration(s->delay_usec, (char[32]){ 0 }, 32), s->n_steps);

        koc_shutdown_ref(s);
        (void)start_timer(s, &s->budget_timer, s->budget_usec, on_budget, "shutdown-budget");
        if (s->on_begin)
                s->on_begin(s, s->begin_userdata);
        /* The begin handler may have forced or finished it already. */
        if (get_state(s) == KOC_SHUTDOWN_DELAYING) {
                if (s->delay_usec > 0) {
                        koc_log_info(COMPONENT, "waiting before draining delay=%s",
                                     koc_format_duration(s->delay_usec, buf, sizeof(buf)));
                        if (start_timer(s, &s->delay_timer, s->delay_usec, on_delay,
                                        "shutdown-delay") < 0)
                                start_draining(s);
                } else
                        start_draining(s);
        }
        koc_shutdown_unref(s);
        return 0;
}

static int on_signal(sd_event_source *src, const struct signalfd_siginfo *si, void *userdata) {
        koc_shutdown *s = userdata;
        const char *name = si->ssi_signo == SIGINT ? "SIGINT" : "SIGTERM";
        char reason[64];

        switch (get_state(s)) {
        case KOC_SHUTDOWN_IDLE:
                snprintf(reason, sizeof(reason), "%s", name);
                (void)do_trigger(s, reason);
                break;
        case KOC_SHUTDOWN_DELAYING:
        case KOC_SHUTDOWN_DRAINING:
                snprintf(reason, sizeof(reason), "second signal %s", name);
                do_force(s, reason);
                break;
        default:
                koc_log_warn(COMPONENT, "signal ignored, shutdown already forced signal=%s",
                             name);
                break;
        }
        return 0;
}

/* --- public API ------------------------------------------------------------ */

static void shutdown_free(koc_shutdown *s) {
        sd_event_source_disable_unref(s->sig_term);
        sd_event_source_disable_unref(s->sig_int);
        sd_event_source_disable_unref(s->delay_timer);
        sd_event_source_disable_unref(s->budget_timer);
        sd_event_source_disable_unref(s->grace_timer);
        for (size_t i = 0; i < s->n_steps; i++) {
                if (s->steps[i]->destroy)
                        s->steps[i]->destroy(s->steps[i]->userdata);
                free(s->steps[i]->name);
                free(s->steps[i]);
        }
        free(s->steps);
        if (s->begin_destroy)
                s->begin_destroy(s->begin_userdata);
        if (s->done_destroy)
                s->done_destroy(s->done_userdata);
        sd_event_unref(s->event);
        free(s);
}

KOC_EXPORT int koc_shutdown_new(sd_event *event, koc_shutdown **ret) {
        if (!event || !ret)
                return -EINVAL;
        koc_shutdown *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->n_ref = 1;
        s->event = sd_event_ref(event);
        s->budget_usec = KOC_SHUTDOWN_DEFAULT_BUDGET_USEC;
        s->grace_usec = KOC_SHUTDOWN_DEFAULT_FORCED_GRACE_USEC;
        s->exit_loop = true;
        atomic_init(&s->state, KOC_SHUTDOWN_IDLE);
        *ret = s;
        return 0;
}

KOC_EXPORT koc_shutdown *koc_shutdown_ref(koc_shutdown *s) {
        if (s)
                s->n_ref++;
        return s;
}

KOC_EXPORT koc_shutdown *koc_shutdown_unref(koc_shutdown *s) {
        if (!s)
                return NULL;
        assert(s->n_ref > 0);
        if (--s->n_ref == 0)
                shutdown_free(s);
        return NULL;
}

#define CHECK_CONFIGURABLE(s)                                                                \
        do {                                                                                 \
                if (!(s))                                                                    \
                        return -EINVAL;                                                      \
                if (get_state(s) != KOC_SHUTDOWN_IDLE)                                       \
                        return -EBUSY;                                                       \
        } while (0)

KOC_EXPORT int koc_shutdown_set_budget(koc_shutdown *s, uint64_t budget_usec) {
        CHECK_CONFIGURABLE(s);
        if (budget_usec == 0 || budget_usec <= s->delay_usec)
                return -EINVAL;
        s->budget_usec = budget_usec;
        return 0;
}

KOC_EXPORT int koc_shutdown_set_delay(koc_shutdown *s, uint64_t delay_usec) {
        CHECK_CONFIGURABLE(s);
        if (delay_usec >= s->budget_usec)
                return -EINVAL;
        s->delay_usec = delay_usec;
        return 0;
}

KOC_EXPORT int koc_shutdown_set_forced_grace(koc_shutdown *s, uint64_t grace_usec) {
        CHECK_CONFIGURABLE(s);
        if (grace_usec == 0)
                return -EINVAL;
        s->grace_usec = grace_usec;
        return 0;
}

KOC_EXPORT int koc_shutdown_set_exit_loop(koc_shutdown *s, bool exit_loop) {
        CHECK_CONFIGURABLE(s);
        s->exit_loop = exit_loop;
        return 0;
}

/* Replaces a handler registration; the old one's destroy runs unless the
 * same userdata is registered again (it is still in use then). */
static void replace_handler(void **ud, koc_destroy_t *destroy, void *new_ud,
                            koc_destroy_t new_destroy) {
        if (*destroy && *ud != new_ud)
                (*destroy)(*ud);
        *ud = new_ud;
        *destroy = new_destroy;
}

KOC_EXPORT int koc_shutdown_set_begin_handler(koc_shutdown *s, koc_shutdown_begin_t fn,
                                              void *userdata, koc_destroy_t destroy) {
        CHECK_CONFIGURABLE(s);
        s->on_begin = fn;
        replace_handler(&s->begin_userdata, &s->begin_destroy, userdata, destroy);
        return 0;
}

KOC_EXPORT int koc_shutdown_set_done_handler(koc_shutdown *s, koc_shutdown_done_t fn,
                                             void *userdata, koc_destroy_t destroy) {
        CHECK_CONFIGURABLE(s);
        s->on_done = fn;
        replace_handler(&s->done_userdata, &s->done_destroy, userdata, destroy);
        return 0;
}

KOC_EXPORT int koc_shutdown_add_step(koc_shutdown *s, const char *name, unsigned flags,
                                     koc_shutdown_step_t start, void *userdata,
                                     koc_destroy_t destroy) {
        CHECK_CONFIGURABLE(s);
        if (!name || !*name || !start || (flags & ~KOC_SHUTDOWN_STEP_RUN_IF_FORCED))
                return -EINVAL;
        koc_shutdown_step **steps = realloc(s->steps, (s->n_steps + 1) * sizeof(*steps));
        if (!steps)
                return -ENOMEM;
        s->steps = steps;
        koc_shutdown_step *st = calloc(1, sizeof(*st));
        if (!st)
                return -ENOMEM;
        st->name = strdup(name);
        if (!st->name) {
                free(st);
                return -ENOMEM;
        }
        st->shutdown = s;
        st->flags = flags;
        st->start = start;
        st->userdata = userdata;
        st->destroy = destroy;
        s->steps[s->n_steps++] = st;
        return 0;
}

KOC_EXPORT int koc_shutdown_block_signals(void) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        return -pthread_sigmask(SIG_BLOCK, &set, NULL);
}

KOC_EXPORT int koc_shutdown_start_signals(koc_shutdown *s) {
        if (!s)
                return -EINVAL;
        if (s->sig_term || s->sig_int)
                return -EALREADY;
        int r = koc_shutdown_block_signals();
        if (r < 0)
                return r;
        r = sd_event_add_signal(s->event, &s->sig_term, SIGTERM, on_signal, s);
        if (r >= 0)
                r = sd_event_add_signal(s->event, &s->sig_int, SIGINT, on_signal, s);
        if (r < 0) {
                s->sig_term = sd_event_source_disable_unref(s->sig_term);
                s->sig_int = sd_event_source_disable_unref(s->sig_int);
                koc_log_error(COMPONENT, "cannot watch SIGTERM/SIGINT: %s", strerror(-r));
                return r;
        }
        /* Signals are handled ahead of everything else on the loop. */
        (void)sd_event_source_set_priority(s->sig_term, SD_EVENT_PRIORITY_IMPORTANT);
        (void)sd_event_source_set_priority(s->sig_int, SD_EVENT_PRIORITY_IMPORTANT);
        (void)sd_event_source_set_description(s->sig_term, "shutdown-sigterm");
        (void)sd_event_source_set_description(s->sig_int, "shutdown-sigint");
        return 0;
}

KOC_EXPORT int koc_shutdown_trigger(koc_shutdown *s) {
        if (!s)
                return -EINVAL;
        return do_trigger(s, "requested");
}

KOC_EXPORT int koc_shutdown_force(koc_shutdown *s) {
        if (!s)
                return -EINVAL;
        if (get_state(s) == KOC_SHUTDOWN_IDLE)
                (void)do_trigger(s, "requested");
        enum koc_shutdown_state st = get_state(s);
        if (st != KOC_SHUTDOWN_DELAYING && st != KOC_SHUTDOWN_DRAINING)
                return -EALREADY;
        do_force(s, "requested");
        return 0;
}

KOC_EXPORT enum koc_shutdown_state koc_shutdown_get_state(const koc_shutdown *s) {
        return s ? get_state(s) : KOC_SHUTDOWN_IDLE;
}

KOC_EXPORT bool koc_shutdown_in_progress(const koc_shutdown *s) {
        return s && get_state(s) != KOC_SHUTDOWN_IDLE;
}

KOC_EXPORT int koc_shutdown_get_exit_code(const koc_shutdown *s) {
        if (!s)
                return -EINVAL;
        if (get_state(s) != KOC_SHUTDOWN_DONE)
                return -EBUSY;
        return s->exit_code;
}
