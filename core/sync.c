/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The synchronous facade: koc_client_call() for worker threads, and the one
 * "post a request to the loop and wait" mechanism under it (sync.h), which
 * the controller's reconcile writes use too, with their hooks.
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
#include "sync.h"
#include "util.h"
#include "koc/log.h"

/* A response handed to a worker: owns its body and message. */
typedef struct sync_response {
        koc_response response;
        char *message;
} sync_response;

static void sync_complete(koc__call *call, int result, koc_response *response) {
        pthread_mutex_lock(&call->lock);
        call->result = result;
        call->response = response;
        call->done = true;
        pthread_cond_signal(&call->cond);
        /* After this unlock the call may be gone (the worker returned). */
        pthread_mutex_unlock(&call->lock);
}

koc_response *koc__response_take(koc_response *resp) {
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

static void sync_on_response(koc_client *c, koc_response *resp, void *userdata) {
        koc__call *call = userdata;

        call->req = NULL;
        if (call->hooks && call->hooks->answered)
                call->hooks->answered(resp, call->userdata);
        koc_response *copy = koc__response_take(resp);
        sync_complete(call, copy ? 0 : -ENOMEM, copy);
}

static void sync_on_drop(void *userdata) {
        koc__call *call = userdata;

        call->req = NULL;
        if (call->hooks && call->hooks->dropped)
                call->hooks->dropped(call->userdata);
        sync_complete(call, -ECANCELED, NULL);
}

/* On the loop thread, from the mailbox. */
static void sync_submit(void *userdata, bool cancelled) {
        koc__call *call = userdata;

        if (cancelled) {
                sync_complete(call, -ECANCELED, NULL);
                return;
        }
        if (call->hooks && call->hooks->before_submit) {
                int r = call->hooks->before_submit(call->userdata);
                if (r < 0) {
                        sync_complete(call, r, NULL);
                        return;
                }
        }
        char *body = call->body;
        call->body = NULL; /* the request owns it now, even on failure */
        int r = koc__client_submit(call->client, &call->spec, body, sync_on_response,
                                   sync_on_drop, call, &call->req);
        if (r < 0) {
                sync_complete(call, r, NULL);
                return;
        }
        if (call->hooks && call->hooks->submitted)
                call->hooks->submitted(call->userdata);
}

void koc__call_cancel(koc__call *call) {
        koc_request_cancel(call->req);
        call->req = NULL;
        sync_complete(call, -ECANCELED, NULL);
}

int koc__call_run(koc_mailbox *mb, koc__call *call, koc_response **ret) {
        if (!mb || !call || !call->client || !ret)
                return -EINVAL;
        if (koc__mailbox_on_loop(mb))
                return -EDEADLK;
        call->body = NULL;
        call->req = NULL;
        call->done = false;
        call->result = 0;
        call->response = NULL;
        if (call->spec.body) {
                call->body = cJSON_PrintUnformatted(call->spec.body);
                if (!call->body)
                        return -ENOMEM;
        }
        pthread_mutex_init(&call->lock, NULL);
        pthread_cond_init(&call->cond, NULL);
        int r = koc__mailbox_post(mb, sync_submit, call);
        if (r == 0) {
                pthread_mutex_lock(&call->lock);
                while (!call->done)
                        pthread_cond_wait(&call->cond, &call->lock);
                pthread_mutex_unlock(&call->lock);
                r = call->result;
        }
        pthread_cond_destroy(&call->cond);
        pthread_mutex_destroy(&call->lock);
        cJSON_free(call->body);
        call->body = NULL;
        if (r < 0)
                return r;
        *ret = call->response;
        return 0;
}

int koc__sync_init(koc_client *c) {
        return koc__mailbox_new(c->event, 0, &c->sync_mailbox);
}

void koc__sync_shutdown(koc_client *c) {
        /* Posted calls complete with -ECANCELED; later posts fail with it. */
        if (c->sync_mailbox)
                koc__mailbox_close(c->sync_mailbox);
}

void koc__sync_done(koc_client *c) {
        c->sync_mailbox = koc__mailbox_free(c->sync_mailbox);
}

KOC_EXPORT int koc_client_call_sized(koc_client *c, size_t spec_size,
                                     const koc_request_spec *user_spec, koc_response **ret) {
        koc_request_spec spec;

        if (!c || !ret || KOC__IMPORT(&spec, user_spec, spec_size, method) < 0)
                return -EINVAL;
        /* The loop thread would wait for itself.  The thread that created
         * the client is the loop thread; a default event loop also knows its
         * own thread (sd_event_get_tid() fails for other loops). */
        pid_t tid;
        if (pthread_equal(pthread_self(), c->loop_thread) ||
            (sd_event_get_tid(c->event, &tid) >= 0 && tid == gettid()))
                return -EDEADLK;

        koc__call call = {.client = c, .spec = spec};
        return koc__call_run(c->sync_mailbox, &call, ret);
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
