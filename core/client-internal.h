/* SPDX-License-Identifier: Apache-2.0 */
/* Internal side of koc/client.h: the client object shared by client.c (the
 * curl multi glue, requests and watches) and sync.c (the facade for worker
 * threads), and the Status helpers of status.c. */
#pragma once

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>

#include "koc/client.h"

/* --- status.c ------------------------------------------------------------ */

/* What a Kubernetes Status object (or a bare HTTP status) says. */
typedef struct koc_status {
        long code; /* Status "code" when valid, else the HTTP code */
        koc_reason reason;
        const char *message;       /* points into the parsed body, or NULL */
        uint64_t retry_after_usec; /* details.retryAfterSeconds, or 0 */
} koc_status;

/* Reads a Status from body (may be NULL or any JSON value: wrong types are
 * ignored field by field) with http_code as the fallback code (0 when there
 * is none, as for watch ERROR events).  Never fails. */
void koc_status_parse(const cJSON *body, long http_code, koc_status *ret);

/* Maps a libcurl result to a negative errno (0 for CURLE_OK). */
int koc_curl_code_to_errno(CURLcode code);

/* Parses a Retry-After value: delta-seconds or an HTTP date (relative to
 * now_realtime_usec).  -EINVAL when it is neither. */
int koc_parse_retry_after(const char *value, uint64_t now_realtime_usec, uint64_t *ret_usec);

/* --- client.c ------------------------------------------------------------ */

typedef struct koc_sync_call koc_sync_call;

struct koc_list {
        struct koc_list *prev, *next;
};

struct koc_client {
        unsigned n_ref;
        unsigned busy; /* > 0 while handlers run from the dispatcher */
        bool dead;     /* the last reference is gone; free when !busy */

        sd_event *event;
        koc_cluster_config *cfg;
        pthread_t loop_thread;

        CURLM *multi;
        CURLSH *share;                 /* TLS sessions and DNS, shared by every transfer */
        sd_event_source *timer;        /* curl's timeout, CLOCK_BOOTTIME */
        sd_event_source *dispatch;     /* defer source: runs handlers outside curl */
        struct koc_list sockets;       /* struct curl_socket_io */
        struct curl_socket_io **by_fd; /* curl's sockets by fd */
        size_t n_by_fd;
        struct koc_list transfers; /* every live request and watch */
        struct koc_list ready;     /* transfers with something to hand out */

        uint64_t default_timeout_usec;
        size_t max_response;
        char *user_agent;

        /* The synchronous facade (sync.c). */
        pthread_mutex_t sync_lock;
        koc_sync_call *sync_head, *sync_tail; /* posted, not yet submitted */
        bool sync_closed;
        int sync_fd; /* eventfd */
        sd_event_source *sync_source;
};

/* A request with its body already serialised (body is taken over, may be
 * NULL).  on_drop (may be NULL) runs instead of the handler when the request
 * ends without an answer because the client shuts down. */
int koc_client_submit(koc_client *c, const char *method, const char *path, const char *query,
                      char *body, const char *content_type, uint64_t timeout_usec,
                      koc_response_handler_t handler, void (*on_drop)(void *userdata),
                      void *userdata, koc_request **ret);

/* --- sync.c -------------------------------------------------------------- */

int koc_sync_init(koc_client *c);
/* Fails every posted call with -ECANCELED and refuses new ones. */
void koc_sync_shutdown(koc_client *c);
void koc_sync_done(koc_client *c);
/* Inside a response handler: a heap copy of the response that owns its body
 * (taken from resp) and message, for koc_response_free(); NULL without memory. */
koc_response *koc_response_take(const koc_response *resp);
