/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "koc/log.h"
#include "mhd-loop.h"

struct koc_mhd_loop {
        struct MHD_Daemon *daemon;
        sd_event_source *io;
        sd_event_source *timer;
        sd_event_source *defer;
        unsigned max_connections;
};

static void rearm(koc_mhd_loop *ml) {
        MHD_UNSIGNED_LONG_LONG ms = 0;
        int r;

        if (MHD_get_timeout(ml->daemon, &ms) != MHD_YES) {
                (void)sd_event_source_set_enabled(ml->timer, SD_EVENT_OFF);
                return;
        }
        if (ms == 0) {
                (void)sd_event_source_set_enabled(ml->timer, SD_EVENT_OFF);
                (void)sd_event_source_set_enabled(ml->defer, SD_EVENT_ONESHOT);
                return;
        }
        r = sd_event_source_set_time_relative(ml->timer, (uint64_t)ms * 1000);
        if (r >= 0)
                r = sd_event_source_set_enabled(ml->timer, SD_EVENT_ONESHOT);
        if (r < 0)
                koc_log_error("http", "cannot arm the HTTP timer: %s", strerror(-r));
}

static unsigned n_connections(koc_mhd_loop *ml) {
        const union MHD_DaemonInfo *info =
                MHD_get_daemon_info(ml->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        return info ? info->num_connections : 0;
}

static int run(koc_mhd_loop *ml) {
        unsigned before = ml->max_connections ? n_connections(ml) : 0;

        if (MHD_run(ml->daemon) != MHD_YES)
                koc_log_debug("http", "MHD_run failed");
        /* At the connection limit MHD takes the listening socket out of its
         * epoll set and puts it back only at the start of its next run, while
         * its timeout does not ask for that run: connections waiting in the
         * backlog would wait for the idle timeout.  So when a run has freed a
         * slot, run once more at once. */
        if (ml->max_connections && before >= ml->max_connections && n_connections(ml) < before)
                (void)MHD_run(ml->daemon);
        rearm(ml);
        return 0;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        return run(userdata);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        return run(userdata);
}

static int on_defer(sd_event_source *s, void *userdata) {
        return run(userdata);
}

void koc__mhd_loop_kick(koc_mhd_loop *ml) {
        if (ml)
                (void)sd_event_source_set_enabled(ml->defer, SD_EVENT_ONESHOT);
}

koc_mhd_loop *koc__mhd_loop_free(koc_mhd_loop *ml) {
        if (!ml)
                return NULL;
        sd_event_source_disable_unref(ml->io);
        sd_event_source_disable_unref(ml->timer);
        sd_event_source_disable_unref(ml->defer);
        free(ml);
        return NULL;
}

int koc__mhd_loop_new(sd_event *event, struct MHD_Daemon *daemon, int64_t priority,
                     unsigned max_connections, const char *description, koc_mhd_loop **ret) {
        const union MHD_DaemonInfo *info;
        koc_mhd_loop *ml;
        char name[64];
        int r;

        if (!event || !daemon || !ret)
                return -EINVAL;
        info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_EPOLL_FD);
        if (!info || info->epoll_fd < 0)
                return -EINVAL;
        ml = calloc(1, sizeof *ml);
        if (!ml)
                return -ENOMEM;
        ml->daemon = daemon;
        ml->max_connections = max_connections;
        r = sd_event_add_io(event, &ml->io, info->epoll_fd, EPOLLIN, on_io, ml);
        if (r >= 0)
                r = sd_event_add_time_relative(event, &ml->timer, CLOCK_BOOTTIME, 0, 1000, on_timer,
                                               ml);
        if (r >= 0)
                r = sd_event_add_defer(event, &ml->defer, on_defer, ml);
        if (r >= 0)
                r = sd_event_source_set_priority(ml->io, priority);
        if (r >= 0)
                r = sd_event_source_set_priority(ml->timer, priority);
        if (r >= 0)
                r = sd_event_source_set_priority(ml->defer, priority);
        if (r < 0) {
                koc__mhd_loop_free(ml);
                return r;
        }
        if (!description)
                description = "http";
        snprintf(name, sizeof name, "%s-io", description);
        (void)sd_event_source_set_description(ml->io, name);
        snprintf(name, sizeof name, "%s-timer", description);
        (void)sd_event_source_set_description(ml->timer, name);
        snprintf(name, sizeof name, "%s-defer", description);
        (void)sd_event_source_set_description(ml->defer, name);
        /* The daemon may already have work (a connection accepted meanwhile). */
        rearm(ml);
        *ret = ml;
        return 0;
}
