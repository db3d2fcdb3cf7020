/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one "post a request to the loop and wait" mechanism of koc, internal
 * (no libcurl type: layers above core use it too).  A thread other than the
 * loop's fills a koc__call on its own stack and runs it: the call is posted
 * to a mailbox (core/mailbox.h), submitted on the loop thread as an ordinary
 * asynchronous request, and the caller waits on the call's own condition
 * variable until the loop has finished with it; after that neither side
 * touches the other's memory again.  koc_client_call() is this mechanism on
 * the client's own mailbox; the controller's reconcile writes run it on the
 * controller's mailbox with hooks (the fence, read-your-own-writes).
 *
 * Every hook runs on the loop thread.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>

#include "koc/client.h"
#include "mailbox.h"

typedef struct koc__call_hooks {
        /* Right before the request is handed to the client: a negative errno
         * refuses the call (nothing is sent; the caller gets that errno). */
        int (*before_submit)(void *userdata);
        /* The request is on its way (koc__call_cancel() may end it now). */
        void (*submitted)(void *userdata);
        /* The answer, before the caller is woken. */
        void (*answered)(const koc_response *resp, void *userdata);
        /* The request ended without an answer (the client went away). */
        void (*dropped)(void *userdata);
} koc__call_hooks;

typedef struct koc__call {
        /* Filled by the caller. */
        koc_client *client;
        koc_request_spec spec; /* its body is serialised on the caller's thread */
        const koc__call_hooks *hooks; /* may be NULL */
        void *userdata;

        /* The mechanism's own. */
        char *body;
        koc_request *req; /* in flight, loop thread only */
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool done;
        int result;
        koc_response *response;
} koc__call;

/* On a thread other than mb's loop thread (-EDEADLK there): posts call to
 * mb and waits for it to end.  0 with the answer in *ret (free it with
 * koc_response_free()), or a negative errno: the before_submit hook's,
 * -ECANCELED (mailbox closed, call cancelled, client gone), -ENOMEM, or the
 * submission's. */
int koc__call_run(koc_mailbox *mb, koc__call *call, koc_response **ret);

/* On the loop thread, for a call its submitted hook announced and whose
 * answer has not come: ends its request and wakes the caller with
 * -ECANCELED.  No hook runs. */
void koc__call_cancel(koc__call *call);
