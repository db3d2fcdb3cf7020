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
void koc__status_parse(const cJSON *body, long http_code, koc_status *ret);

/* Maps a libcurl result to a negative errno (0 for CURLE_OK). */
int koc__curl_code_to_errno(CURLcode code);

/* Parses a Retry-After value: delta-seconds or an HTTP date (relative to
 * now_realtime_usec).  -EINVAL when it is neither. */
int koc__parse_retry_after(const char *value, uint64_t now_realtime_usec, uint64_t *ret_usec);

/* --- client.c ------------------------------------------------------------ */

/* Reads one line of a watch stream, {"type": ..., "object": {...}}: the type,
 * the object (detached from the line, the caller's to free) and, for ERROR,
 * the Status it holds (pointing into the object).  -EBADMSG when the line is
 * not JSON, or not an event with a string type and an object; -ENOMSG for a
 * well-formed event of a type this client does not know (a newer server's):
 * the watch skips it with a warning and goes on, rather than end the stream
 * and resume at the same resourceVersion, which would meet it again for
 * ever.  The watch uses it for every line; tests/fuzz/fuzz-watch-store.c
 * feeds it hostile lines. */
int koc__watch_line_parse(const char *line, size_t len, koc_watch_event_type *ret_type,
                          cJSON **ret_object, koc_status *ret_status);

/* What one header line of an answer (as curl's header callback gets it,
 * with its line end) tells the client: a status line starts a new response
 * (status: its code, 0 when unreadable; -1 for any other line); a valid
 * Retry-After (delta-seconds or an HTTP date relative to now_realtime_usec)
 * sets has_retry_after.  Other headers say nothing to the client.
 * tests/fuzz/fuzz-response.c feeds it hostile lines. */
typedef struct koc_header_line {
        long status;
        bool http2; /* the status line says HTTP/2 */
        bool http1; /* ... or HTTP/1.x */
        bool has_retry_after;
        uint64_t retry_after_usec;
} koc_header_line;
void koc__header_line_parse(const char *p, size_t n, uint64_t now_realtime_usec,
                            koc_header_line *ret);

/* Appends n bytes of a response body to *data (*len bytes used of *alloc),
 * growing it geometrically but never beyond max + 1 bytes: -EMSGSIZE when the
 * body would exceed max bytes (nothing is appended), -ENOMEM.  With
 * CURLOPT_ACCEPT_ENCODING curl hands over decoded bytes, so max bounds what a
 * gzip body expands to. */
int koc__body_append(char **data, size_t *len, size_t *alloc, size_t max, const char *p,
                     size_t n);


struct koc_list {
        struct koc_list *prev, *next;
};

struct koc_client {
        /* Atomic: worker threads that use koc_client_call() may hold their
         * own references; the last one is dropped on the loop thread. */
        atomic_uint n_ref;
        unsigned busy; /* > 0 while handlers run from the dispatcher */
        bool dead;     /* the last reference is gone; free when !busy */

        sd_event *event;
        koc_cluster_config *cfg;
        pthread_t loop_thread;
        pid_t loop_tid; /* for the debug checks of loop-only calls */

        CURLM *multi;
        CURLSH *share;                 /* TLS sessions and DNS, shared by every transfer */
        sd_event_source *timer;        /* curl's timeout, CLOCK_BOOTTIME */
        sd_event_source *dispatch;     /* defer source: runs handlers outside curl */
        struct koc_list sockets;       /* struct curl_socket_io */
        struct curl_socket_io **by_fd; /* curl's sockets by fd */
        size_t n_by_fd;
        struct koc_list transfers; /* every live request and watch */
        struct koc_list ready;     /* transfers with something to hand out */

        /* The exec credential plugin's run in flight, or NULL; transfers
         * that need its credential wait (transfer.waiting_credential). */
        struct koc_exec_run *exec_run;

        /* Client metrics (koc_client_register_metrics), NULL when off; the
         * series already looked up, so that most answers take no lock. */
        koc_metrics *metrics;
        char *metrics_host;
        struct koc_client_series {
                long code; /* 0: "<error>"; -1: a duration series */
                char method[17];
                koc_metric *metric;
        } series[48];
        size_t n_series;

        /* The token bucket (koc_client_set_rate_limit); qps 0: off. */
        double rate_qps, rate_tokens;
        unsigned rate_burst;
        uint64_t rate_last_usec;
        sd_event_source *rate_timer;

        /* The connection health check (client.c); read_idle UINT64_MAX: off. */
        uint64_t read_idle_usec, ping_timeout_usec;
        sd_event_source *health_timer;
        koc_request *probe; /* in flight, or NULL */
        uint64_t probes_sent;
        /* The socket curl_multi_socket_action() runs for now, or
         * CURL_SOCKET_TIMEOUT when a timer drives it (on_rx()). */
        int action_fd;
        bool server_http2; /* the last answer's status line said HTTP/2 */
        /* ... or HTTP/1.x.  Then a new transfer does not wait for a
         * connection still being set up in the hope of multiplexing on it
         * (PIPEWAIT): with libcurl 7.88 a transfer waiting so has no timeout
         * of its own, and one connection that never completes (its path
         * died) would hold every request until its connect timeout. */
        bool server_http1;

        uint64_t default_timeout_usec;
        size_t max_response;
        char *user_agent;

        /* The synchronous facade (sync.c). */
        struct koc_mailbox *sync_mailbox; /* posted calls, not yet submitted */
};

/* A request with its body already serialised (body is taken over, may be
 * NULL).  on_drop (may be NULL) runs instead of the handler when the request
 * ends without an answer because the client shuts down. */
int koc__client_submit(koc_client *c, const koc_request_spec *spec, char *body,
                       koc_response_handler_t handler, void (*on_drop)(void *userdata),
                       void *userdata, koc_request **ret);

/* --- sync.c -------------------------------------------------------------- */

int koc__sync_init(koc_client *c);
/* Fails every posted call with -ECANCELED and refuses new ones. */
void koc__sync_shutdown(koc_client *c);
void koc__sync_done(koc_client *c);
/* Inside a response handler: a heap copy of the response that owns its body
 * (taken from resp) and message, for koc_response_free(); NULL without memory. */
koc_response *koc__response_take(koc_response *resp);
