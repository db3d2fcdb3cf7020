/* SPDX-License-Identifier: Apache-2.0 */
/*
 * koc-example-leader: the two-copy leader election demo.
 *
 * Run two or three copies against the same API server; one leads and does
 * "leader-only work" (a tick every --tick-interval), the others stand by.
 * Stop the leader with Ctrl-C: it finishes its tick, releases the Lease, and
 * a standby takes over at once.  Kill it with SIGKILL instead and a standby
 * takes over when the Lease expires.
 *
 *   koc-example-leader --kubeconfig=kc.yaml --identity=a --health-probe-bind-address=:8081
 *   koc-example-leader --kubeconfig=kc.yaml --identity=b --health-probe-bind-address=:8082
 *
 * Every flag of the manager is accepted (see --help), plus --tick-interval.
 * Log lines carry unix_us=... stamps so that scripts can measure handoffs.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <koc/koc.h>

#define LOG "example"

struct app {
        koc_manager *manager;
        sd_event_source *tick;
        uint64_t tick_usec;
        uint64_t term;
        uint64_t ticks;
        /* The last other replica seen holding the Lease. */
        char previous[KOC_LEADER_IDENTITY_MAX + 1];
};

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        struct app *app = userdata;
        int r;

        r = koc_manager_work_begin(app->manager);
        if (r == 0) {
                /* Leader-only work goes here: it is counted, so a SIGTERM
                 * waits for it before the Lease is released. */
                app->ticks++;
                koc_log_info(LOG, "doing leader-only work tick=%" PRIu64 " term=%" PRIu64,
                             app->ticks, app->term);
                koc_manager_work_end(app->manager);
        }
        (void)sd_event_source_set_time(s, usec + app->tick_usec);
        return 0;
}

static void on_started(koc_manager *m, uint64_t term, void *userdata) {
        struct app *app = userdata;
        sd_event *e = koc_manager_get_event(m);
        uint64_t now;
        int r;

        app->term = term;
        koc_log_info(LOG, "became leader identity=%s term=%" PRIu64 " previous=%s unix_us=%" PRIu64,
                     koc_manager_get_identity(m), term, app->previous[0] ? app->previous : "none",
                     koc_now_realtime_usec());

        (void)sd_event_now(e, CLOCK_BOOTTIME, &now);
        if (!app->tick) {
                r = sd_event_add_time(e, &app->tick, CLOCK_BOOTTIME, now, 0, on_tick, app);
                if (r < 0) {
                        koc_log_error(LOG, "cannot start the work timer: %s", strerror(-r));
                        app->tick = NULL;
                        return;
                }
        } else
                (void)sd_event_source_set_time(app->tick, now);
        (void)sd_event_source_set_enabled(app->tick, SD_EVENT_ON);
}

static void on_stopped(koc_manager *m, koc_leader_reason reason, void *userdata) {
        struct app *app = userdata;

        if (app->tick)
                (void)sd_event_source_set_enabled(app->tick, SD_EVENT_OFF);
        if (reason == KOC_LEADER_REASON_RELEASED)
                /* Runs when the release starts (leadership already reads
                 * false); the manager logs when the Lease is written. */
                koc_log_info(LOG,
                             "stepped down, releasing the lease identity=%s ticks=%" PRIu64
                             " unix_us=%" PRIu64,
                             koc_manager_get_identity(m), app->ticks, koc_now_realtime_usec());
        else
                koc_log_info(LOG, "stopped leading reason=%s identity=%s unix_us=%" PRIu64,
                             koc_leader_reason_to_string(reason), koc_manager_get_identity(m),
                             koc_now_realtime_usec());
}

static void on_new_leader(koc_manager *m, const char *identity, void *userdata) {
        struct app *app = userdata;
        const char *self = koc_manager_get_identity(m);

        if (identity[0] && strcmp(identity, self) != 0) {
                koc_log_info(LOG, "standing by identity=%s leader=%s", self, identity);
                snprintf(app->previous, sizeof app->previous, "%s", identity);
        }
}

/* Takes --tick-interval out of argv (the manager rejects unknown flags). */
int main(int argc, char *argv[]) {
        struct app app = {0};
        koc_manager_config cfg;
        koc_error err = {0};
        int r;

        koc_manager_config_init(&cfg);
        cfg.leader_election_id = "koc-example-leader";
        koc_manager_add_flag_duration(&cfg, "tick-interval", KOC_USEC_PER_SEC,
                                      "How often the leader does its leader-only work.",
                                      &app.tick_usec);
        r = koc_manager_parse_flags(&cfg, argc, argv, &err);
        if (r == KOC_MANAGER_FLAGS_HELP)
                return 0;
        if (r == 0 && app.tick_usec == 0)
                r = koc_error_set(&err, -EINVAL, "--tick-interval=0s: must be above 0");
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", argv[0], err.message);
                return 2;
        }

        r = koc_manager_new(NULL, &cfg, &app.manager, &err);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", argv[0], err.message);
                return 1;
        }
        koc_manager_set_callbacks(app.manager,
                                  &(koc_manager_callbacks){
                                          .started_leading = on_started,
                                          .stopped_leading = on_stopped,
                                          .new_leader = on_new_leader,
                                  },
                                  &app, NULL);

        r = koc_manager_run(app.manager);
        koc_log_info(LOG, "exiting code=%d", r);

        sd_event_source_disable_unref(app.tick);
        koc_manager_unref(app.manager);
        return r;
}
