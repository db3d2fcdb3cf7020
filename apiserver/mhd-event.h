/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mhd-event: drives a libmicrohttpd daemon from an sd-event loop.
 *
 * The daemon must be started with MHD_USE_EPOLL and without an internal
 * thread.  Its epoll fd becomes an sd-event I/O source, and a CLOCK_BOOTTIME
 * timer is re-armed from MHD_get_timeout() (milliseconds relative to now)
 * after every MHD_run().  Code that resumes a suspended connection calls
 * mhd_event_kick() so that MHD processes it on the next loop iteration.
 *
 *   struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, ...);
 *   mhd_event *me;
 *   r = mhd_event_new(event, d, &me);
 *   ...
 *   me = mhd_event_free(me);        (does not stop the daemon)
 *   MHD_stop_daemon(d);
 */
#pragma once

#include <microhttpd.h>
#include <systemd/sd-event.h>

typedef struct mhd_event mhd_event;

int mhd_event_new(sd_event *event, struct MHD_Daemon *daemon, mhd_event **ret);
mhd_event *mhd_event_free(mhd_event *me);
/* Runs MHD soon (from a defer source), e.g. after MHD_resume_connection(). */
void mhd_event_kick(mhd_event *me);
