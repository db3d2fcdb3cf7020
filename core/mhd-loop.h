/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mhd-loop: drives a libmicrohttpd daemon from an sd-event loop.  Internal,
 * shared by the probes server and koc-apiserver.
 *
 * The daemon runs in MHD's external epoll mode (MHD_USE_EPOLL, no internal
 * thread): MHD keeps its own epoll set of the listening socket and the
 * connections, and that one epoll fd becomes readable whenever any of them is
 * ready, so the loop watches it with a single I/O source.  MHD_get_timeout()
 * says, in milliseconds from now, when MHD must run even without I/O (idle
 * connections to close); after every MHD_run() that value re-arms a one-shot
 * CLOCK_BOOTTIME timer, and 0 ("work is pending now": buffered data, a resumed
 * connection) schedules a run on the next loop iteration.
 *
 *   struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_EPOLL | ..., MHD_OPTION_END);
 *   koc_mhd_loop *ml;
 *   r = koc__mhd_loop_new(event, d, SD_EVENT_PRIORITY_NORMAL, 0, "http", &ml);
 *   ...
 *   ml = koc__mhd_loop_free(ml);      (does not stop the daemon)
 *   MHD_stop_daemon(d);
 */
#pragma once

#include <microhttpd.h>
#include <stdint.h>
#include <systemd/sd-event.h>

typedef struct koc_mhd_loop koc_mhd_loop;

/* Attaches daemon to event with sources of the given priority.
 * max_connections is the daemon's MHD_OPTION_CONNECTION_LIMIT (0: none set);
 * description names the sources (for sd-event's debugging).  -EINVAL when the
 * daemon has no epoll fd (not started with MHD_USE_EPOLL). */
int koc__mhd_loop_new(sd_event *event, struct MHD_Daemon *daemon, int64_t priority,
                     unsigned max_connections, const char *description, koc_mhd_loop **ret);
/* Detaches from the loop; the daemon stays running.  NULL is a no-op. */
koc_mhd_loop *koc__mhd_loop_free(koc_mhd_loop *ml);
/* Runs MHD on the next loop iteration, e.g. after MHD_resume_connection(). */
void koc__mhd_loop_kick(koc_mhd_loop *ml);
