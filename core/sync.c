/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The synchronous facade: koc_client_call() for worker threads.
 *
 * A worker serialises the body on its own thread and posts the call to the
 * client's mailbox (core/mailbox.c: a bounded queue plus an eventfd watched
 * by the loop); on the loop thread the call is submitted as an ordinary
 * asynchronous request.  The worker waits on a condition variable of its own
 * call (a stack object), so that once the loop has signalled it, neither side
 * touches the other's memory again: the client may be gone by the time the
 * worker wakes up.
 *
 * When the last reference to the client goes, posted calls and calls in
 * flight complete with -ECANCELED.  Calls must not *start* after that: the
 * owner stops its workers (or stops them from calling) before dropping the
 * client.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client-internal.h"
#include "mailbox.h"
#include "koc/log.h"

struct koc_sync_call {
        koc_client *client;
        const koc_request_spec *spec; /* the worker's, valid while it waits */
        char *body;                   /* serialised on the worker; moves to the request */

        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool done;
        int result;
        koc_response *response;
};

/* A response handed to a worker: owns its body and message. */
typedef struct sync_response {
        koc_response response;
        char *message;
} sync_response;

static void sync_complete(koc_sync_call *call, int result, koc_response *response) {
        pthread_mutex_lock(&call->lock);
        call->result = result;
        call->response = response;
        call->done = true;
        pthread_cond_signal(&call->cond);
        /* After this unlock the call may be gone (the worker returned). */
        pthread_mutex_unlock(&call->lock);
}

koc_response *koc_response_take(const koc_response *resp) {
        sync_response *s = calloc(1, sizeof *s);

        if (s)
                s->message = strdup(resp->message ? resp->message : "");
        if (!s || !s->message) {
                free(s);
                return NULL;
        }
        s->response = *resp;
        s->response.message = s->message;
        s->response.body = koc_response_steal_body(resp);
        return &s->response;
}

static void sync_on_response(koc_client *c, const koc_response *resp, void *userdata) {
        koc_sync_call *call = userdata;
        koc_response *copy = koc_response_take(resp);

        sync_complete(call, copy ? 0 : -ENOMEM, copy);
}

static void sync_on_drop(void *userdata) {
        sync_complete(userdata, -ECANCELED, NULL);
}

/* On the loop thread, from the mailbox. */
static void sync_submit(void *userdata, bool cancelled) {
        koc_sync_call *call = userdata;
        koc_client *c = call->client;

        if (cancelled) {
                sync_complete(call, -ECANCELED, NULL);
                return;
        }
        const koc_request_spec *spec = call->spec;
        char *body = call->body;
        call->body = NULL; /* the request owns it now, even on failure */
        int r = koc__client_submit(c, spec, body, sync_on_response, sync_on_drop, call, NULL);
        if (r < 0)
                sync_complete(call, r, NULL);
}

int koc__sync_init(koc_client *c) {
        return koc_mailbox_new(c->event, 0, &c->sync_mailbox);
}

void koc__sync_shutdown(koc_client *c) {
        /* Posted calls complete with -ECANCELED; later posts fail with it. */
        if (c->sync_mailbox)
                koc_mailbox_close(c->sync_mailbox);
}

void koc__sync_done(koc_client *c) {
        c->sync_mailbox = koc_mailbox_free(c->sync_mailbox);
}

KOC_EXPORT int koc_client_call(koc_client *c, const koc_request_spec *spec, koc_response **ret) {
        if (!c || !spec || !ret)
                return -EINVAL;
        /* The loop thread would wait for itself.  The thread that created
         * the client is the loop thread; a default event loop also knows its
         * own thread (sd_event_get_tid() fails for other loops). */
        pid_t tid;
        if (pthread_equal(pthread_self(), c->loop_thread) ||
            (sd_event_get_tid(c->event, &tid) >= 0 && tid == gettid()))
                return -EDEADLK;

        koc_sync_call call = {.spec = spec};
        if (spec->body) {
                call.body = cJSON_PrintUnformatted(spec->body);
                if (!call.body)
                        return -ENOMEM;
        }
        pthread_mutex_init(&call.lock, NULL);
        pthread_cond_init(&call.cond, NULL);

        call.client = c;
        int r = koc_mailbox_post(c->sync_mailbox, sync_submit, &call);
        if (r == 0) {
                pthread_mutex_lock(&call.lock);
                while (!call.done)
                        pthread_cond_wait(&call.cond, &call.lock);
                pthread_mutex_unlock(&call.lock);
                r = call.result;
        }
        pthread_cond_destroy(&call.cond);
        pthread_mutex_destroy(&call.lock);
        cJSON_free(call.body);
        if (r < 0)
                return r;
        *ret = call.response;
        return 0;
}

KOC_EXPORT koc_response *koc_response_free(koc_response *r) {
        if (!r)
                return NULL;
        sync_response *s = (sync_response *)r; /* response is the first member */
        cJSON_Delete(s->response.body);
        free(s->message);
        free(s);
        return NULL;
}
