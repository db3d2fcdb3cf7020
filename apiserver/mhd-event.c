/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdlib.h>

#include "mhd-event.h"

struct mhd_event {
        sd_event *event;
        struct MHD_Daemon *daemon;
        sd_event_source *io;
        sd_event_source *timer;
        sd_event_source *defer;
};

static void rearm(mhd_event *me) {
        MHD_UNSIGNED_LONG_LONG ms = 0;

        if (MHD_get_timeout(me->daemon, &ms) != MHD_YES) {
                (void)sd_event_source_set_enabled(me->timer, SD_EVENT_OFF);
                return;
        }
        if (ms == 0) {
                /* Work is pending now (data already buffered, a resumed
                 * connection): run again on the next iteration. */
                (void)sd_event_source_set_enabled(me->defer, SD_EVENT_ONESHOT);
                (void)sd_event_source_set_enabled(me->timer, SD_EVENT_OFF);
                return;
        }
        (void)sd_event_source_set_time_relative(me->timer, (uint64_t)ms * 1000);
        (void)sd_event_source_set_enabled(me->timer, SD_EVENT_ONESHOT);
}

static void run(mhd_event *me) {
        (void)MHD_run(me->daemon);
        rearm(me);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        run(userdata);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        run(userdata);
        return 0;
}

static int on_defer(sd_event_source *s, void *userdata) {
        run(userdata);
        return 0;
}

void mhd_event_kick(mhd_event *me) {
        if (me)
                (void)sd_event_source_set_enabled(me->defer, SD_EVENT_ONESHOT);
}

mhd_event *mhd_event_free(mhd_event *me) {
        if (!me)
                return NULL;
        sd_event_source_disable_unref(me->io);
        sd_event_source_disable_unref(me->timer);
        sd_event_source_disable_unref(me->defer);
        sd_event_unref(me->event);
        free(me);
        return NULL;
}

int mhd_event_new(sd_event *event, struct MHD_Daemon *daemon, mhd_event **ret) {
        const union MHD_DaemonInfo *info;
        mhd_event *me;
        int r;

        if (!event || !daemon || !ret)
                return -EINVAL;
        info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_EPOLL_FD);
        if (!info || info->epoll_fd < 0)
                return -EINVAL;
        me = calloc(1, sizeof *me);
        if (!me)
                return -ENOMEM;
        me->event = sd_event_ref(event);
        me->daemon = daemon;
        r = sd_event_add_io(event, &me->io, info->epoll_fd, EPOLLIN, on_io, me);
        if (r >= 0)
                r = sd_event_add_time_relative(event, &me->timer, CLOCK_BOOTTIME, 0, 1000, on_timer,
                                               me);
        if (r >= 0)
                r = sd_event_add_defer(event, &me->defer, on_defer, me);
        if (r < 0) {
                mhd_event_free(me);
                return r;
        }
        (void)sd_event_source_set_description(me->io, "mhd-io");
        (void)sd_event_source_set_description(me->timer, "mhd-timer");
        (void)sd_event_source_set_description(me->defer, "mhd-defer");
        /* Run once now: the daemon may already have work. */
        *ret = me;
        return 0;
}
