/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A thread-to-loop mailbox: any thread posts a closure, the loop thread runs
 * it.  A mutex-protected FIFO plus an eventfd watched by an sd-event I/O
 * source.  Bounded and never lossy: a thread other than the loop's waits
 * while `capacity` closures are pending (back-pressure); the loop thread
 * itself never waits (it is the one that drains the box), so posts from the
 * loop may briefly exceed the bound.
 *
 * Every posted closure runs exactly once: on the loop with cancelled false,
 * or, when the mailbox is freed first, inside koc_mailbox_free() with
 * cancelled true, so that whoever waits on it is always released.  Posts
 * after the free has started fail with -ECANCELED.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-event.h>

typedef struct koc_mailbox koc_mailbox;
typedef void (*koc_mailbox_fn_t)(void *userdata, bool cancelled);

/* capacity 0: 1024.  Call on the loop thread. */
int koc_mailbox_new(sd_event *event, size_t capacity, koc_mailbox **ret);
/* On the loop thread: runs pending closures with cancelled = true, wakes
 * blocked posters (their post fails with -ECANCELED) and waits until no
 * poster is inside the mailbox any more. */
koc_mailbox *koc_mailbox_free(koc_mailbox *mb);
/* On the loop thread: refuses new posts from now on (-ECANCELED), runs
 * pending closures with cancelled = true and waits for posters to leave.
 * koc_mailbox_free() does this too. */
void koc_mailbox_close(koc_mailbox *mb);
/* Any thread.  0, -ECANCELED (mailbox going away) or -ENOMEM. */
int koc_mailbox_post(koc_mailbox *mb, koc_mailbox_fn_t fn, void *userdata);
/* Threads waiting in koc_mailbox_post() for room (for tests). */
unsigned koc_mailbox_waiting(koc_mailbox *mb);
/* Closures pending now. */
size_t koc_mailbox_pending(koc_mailbox *mb);
/* True on the thread that created the mailbox. */
bool koc_mailbox_on_loop(koc_mailbox *mb);
