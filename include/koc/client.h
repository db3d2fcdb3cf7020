/* SPDX-License-Identifier: Apache-2.0 */
/*
 * koc/client.h: an asynchronous Kubernetes API client on sd-event.
 *
 * libcurl's multi-socket interface is driven by sd-event I/O and timer
 * sources, so every request and watch of a process shares one loop thread and
 * (over HTTP/2, when the server offers it) one connection.  Answers arrive as
 * a koc_response: the HTTP status, the parsed JSON body, and for failures a
 * typed reason parsed from the Kubernetes Status body, so that a 409 Conflict
 * is told apart from anything else.
 *
 *   static void on_lease(koc_client *c, koc_response *r, void *ud) {
 *           if (r->error < 0)                       // transport: timeout, refused...
 *                   ...
 *           else if (r->reason == KOC_REASON_NOT_FOUND)
 *                   ...
 *           else if (r->status == 200)
 *                   use(r->body);
 *   }
 *   koc_client_request(c, &(koc_request_spec){ .method = "GET",
 *                      .path = "/apis/coordination.k8s.io/v1/namespaces/ns/leases/x" },
 *                      on_lease, NULL, NULL);
 *
 * Authentication comes from the cluster config.  When an answer is 401, the
 * client has the config re-read its token (token file, service-account token
 * or exec plugin) and, if the token changed, sends the request once more: the
 * kubelet rotates bound service-account tokens, and the first request after a
 * rotation must not fail because of it.  Exec credential plugins run on the
 * loop without blocking it: requests that need the plugin's credential wait
 * for it (the wait counts against their timeout), and when the plugin fails
 * with no unexpired credential left they fail with its error, which names
 * the kubeconfig field and the command.
 *
 * Handlers never run inside libcurl's callbacks, so any handler may start,
 * cancel or stop requests and watches (its own included) and may drop the
 * last reference to the client; after that no handler runs any more.
 *
 * All functions except koc_client_call(), koc_client_ref() and
 * koc_client_unref() must be called on the loop thread (the thread that called
 * koc_client_new(), or the owner of a default loop); debug builds (no NDEBUG)
 * assert it.  The reference count is atomic, so a worker thread may hold its
 * own reference while it uses koc_client_call(); the last reference must be
 * dropped on the loop thread.
 * koc_client_call() is the synchronous facade for worker threads: it posts the
 * request to the loop and waits for the answer; it refuses (-EDEADLK) to run
 * on the loop thread, which must never block.
 */
#ifndef KOC_CLIENT_H
#define KOC_CLIENT_H

#include <cjson/cJSON.h>
#include <koc/common.h>
#include <koc/config.h>
#include <koc/metrics.h>
#include <systemd/sd-event.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct koc_client koc_client;
typedef struct koc_request koc_request;
typedef struct koc_watch koc_watch;

/* The reason of a failed API call, from the Status body's "reason" (or, when
 * the body has none, from the HTTP code as client-go's errors package does). */
typedef enum koc_reason {
        KOC_REASON_NONE = 0,                 /* success, or no HTTP answer at all */
        KOC_REASON_UNKNOWN,                  /* a failure with no known reason */
        KOC_REASON_BAD_REQUEST,              /* 400 */
        KOC_REASON_UNAUTHORIZED,             /* 401 */
        KOC_REASON_FORBIDDEN,                /* 403 */
        KOC_REASON_NOT_FOUND,                /* 404 */
        KOC_REASON_METHOD_NOT_ALLOWED,       /* 405 */
        KOC_REASON_ALREADY_EXISTS,           /* 409, reason AlreadyExists */
        KOC_REASON_CONFLICT,                 /* 409, reason Conflict */
        KOC_REASON_GONE,                     /* 410, reason Gone */
        KOC_REASON_EXPIRED,                  /* 410, reason Expired (resourceVersion too old) */
        KOC_REASON_REQUEST_ENTITY_TOO_LARGE, /* 413 */
        KOC_REASON_UNSUPPORTED_MEDIA_TYPE,   /* 415 */
        KOC_REASON_INVALID,                  /* 422 */
        KOC_REASON_TOO_MANY_REQUESTS,        /* 429 */
        KOC_REASON_INTERNAL_ERROR,           /* 500 */
        KOC_REASON_SERVICE_UNAVAILABLE,      /* 503 */
        KOC_REASON_SERVER_TIMEOUT,           /* 504 or reason ServerTimeout */
        KOC_REASON_TIMEOUT,                  /* reason Timeout */
        _KOC_REASON_MAX,
} koc_reason;

/* "NotFound", "Conflict", ...; "" for NONE. */
KOC_EXPORT const char *koc_reason_to_string(koc_reason reason);
/* Maps a Status reason string (and the HTTP code when the string is NULL or
 * unknown) to a koc_reason. */
KOC_EXPORT koc_reason koc_reason_from_status(const char *reason, long http_code);

/* The negative errno of an API failure, one per reason, so that a program
 * can switch on the return code of any koc call that turns an answer into an
 * errno (koc_reconcile_record_event, koc_reconcile_finalizer's result, ...)
 * the way it switches on open(2)'s:
 *
 *   HTTP  reason                    errno             why this code
 *   400   BadRequest                -EINVAL           the request itself is wrong
 *   422   Invalid                   -EINVAL           the object failed validation
 *   401   Unauthorized              -EKEYREJECTED     the credential was refused (the
 *                                                     client already re-read it once):
 *                                                     fix the token, not the RBAC
 *   403   Forbidden                 -EACCES           authenticated, but not allowed:
 *                                                     fix the RBAC
 *   404   NotFound                  -ENOENT           no such object (or namespace)
 *   405   MethodNotAllowed          -EOPNOTSUPP       the resource has no such verb
 *   409   AlreadyExists             -EEXIST           create of a name that exists
 *   409   Conflict                  -EBUSY            someone else changed the object:
 *                                                     read it again and decide again
 *   410   Gone, Expired             -ESTALE           the resourceVersion is too old
 *   413   RequestEntityTooLarge     -E2BIG            the body is over the server's cap
 *   415   UnsupportedMediaType      -EPROTONOSUPPORT  the patch type is not supported
 *   429   TooManyRequests           -EAGAIN           try again later: honour
 *   503   ServiceUnavailable        -EAGAIN             retry_after_usec
 *   504   ServerTimeout, Timeout    -ETIMEDOUT        the outcome is unknown, as for a
 *                                                     timeout of the client's own
 *   500   InternalError             -EREMOTEIO        the server failed
 *   other Unknown                   -EREMOTEIO        a failure koc has no name for
 *
 * -EIO is never an API answer: koc uses it only where nothing came back and
 * the transport says nothing more precise.  Transport failures keep their own
 * codes (koc_response.error below), so -ETIMEDOUT is the one code that both
 * a server and the client's own timer give: either way the request may or may
 * not have taken effect.  -EINVAL is also what a call returns when koc refuses
 * a request before sending it (an invalid name, namespace or path, a warn line
 * says which); a program that must tell the two apart checks whether an
 * answer came back (the reconcile write calls return it, with its status and
 * reason, in *ret; a refused call returns none).  KOC_REASON_NONE is 0. */
KOC_EXPORT int koc_reason_to_errno(koc_reason reason);

typedef struct koc_response {
        /* 0 when an HTTP answer arrived (whatever its status); otherwise a
         * negative errno: -ETIMEDOUT, -ECONNREFUSED, -ECONNRESET, -EHOSTUNREACH,
         * -EMSGSIZE (body over the size cap), -EBADMSG (not JSON), -ECANCELED,
         * -EPROTO (TLS or protocol failure). */
        int error;
        long status;       /* HTTP status, 0 when none */
        koc_reason reason; /* KOC_REASON_NONE for 2xx */
        /* Status message, or for transport errors a text that names the
         * server ("cannot reach https://host:port: Connection refused (...)");
         * never NULL. */
        const char *message;
        cJSON *body; /* parsed JSON body, or NULL; owned by the response */
        /* From the Retry-After header of a failed answer (429, 503, ...) or
         * else the Status details.retryAfterSeconds; 0 when neither. */
        uint64_t retry_after_usec;
} koc_response;

/* 0 for a 2xx answer; response->error for a transport failure; otherwise
 * koc_reason_to_errno(response->reason).  -EINVAL for NULL. */
KOC_EXPORT int koc_response_errno(const koc_response *response);

typedef struct koc_request_spec {
        const char *method;       /* "GET", "POST", "PUT", "PATCH", "DELETE" */
        /* "/api/v1/namespaces/ns/configmaps/x": absolute, sent as it is, so
         * it must be exactly the segments it means; the request is refused
         * (-EINVAL, nothing sent, a warn line says why) for a '?' or '#',
         * whitespace or a control character, a "." or ".." segment, an empty
         * segment other than a trailing one, or a '%' that is not a %XX
         * escape.  Build it from names with koc_resource_path(). */
        const char *path;
        /* Already encoded "a=b&c=d" (koc_query_string), or NULL; no '#',
         * whitespace or control characters. */
        const char *query;
        const cJSON *body;        /* serialised at submit time; may be NULL */
        const char *content_type; /* NULL: application/json */
        uint64_t timeout_usec;    /* 0: the client's default */
        /* Cap on this answer's body, e.g. for a large list page; over it the
         * request fails with -EMSGSIZE.  0: the client's cap
         * (koc_client_set_max_response_size). */
        size_t max_response_size;
        /* The Accept header; NULL: application/json.  For example
         * "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
         * for a list of metadata only. */
        const char *accept;
} koc_request_spec;

/* Called once per request, on the loop thread, unless the request was
 * cancelled.  The response and its body are freed when the handler returns;
 * keep the body with koc_response_steal_body() or cJSON_Duplicate().  The
 * response is not const because stealing changes it. */
typedef void (*koc_response_handler_t)(koc_client *client, koc_response *response, void *userdata);

/* event NULL: the calling thread's default loop.  Call it on the loop
 * thread; the client keeps references to the loop and the config. */
KOC_EXPORT int koc_client_new(sd_event *event, koc_cluster_config *cfg, koc_client **ret);
KOC_EXPORT koc_client *koc_client_ref(koc_client *c);
KOC_EXPORT koc_client *koc_client_unref(koc_client *c);
KOC_DEFINE_POINTER_CLEANUP_FUNC(koc_client, koc_client_unref)

KOC_EXPORT sd_event *koc_client_get_event(koc_client *c);
KOC_EXPORT koc_cluster_config *koc_client_get_config(koc_client *c);
/* Timeout of requests whose spec has none; default 30 s (0 restores it).
 * Watches use it only to bound connecting. */
KOC_EXPORT void koc_client_set_default_timeout(koc_client *c, uint64_t usec);
/* Cap on one response body; default 64 MiB (0 restores it).  Over it the
 * request fails with -EMSGSIZE instead of allocating.  Applies to requests
 * and watches started afterwards. */
KOC_EXPORT void koc_client_set_max_response_size(koc_client *c, size_t bytes);
/* The connection health check, after client-go's HTTP/2 ReadIdleTimeout and
 * PingTimeout.  When nothing has been read for read_idle (default 30 s) on
 * an HTTP/2 connection that carries requests or watches, the client sends a
 * small probe request over it; when still nothing arrives within
 * ping_timeout (default 15 s), it closes the connection: every request and
 * watch on it ends with -ETIMEDOUT (watches with a CLOSED event, so they
 * restart), and later requests open a new connection.  0 restores the
 * default; read_idle UINT64_MAX turns the check off.  HTTP/1.1 connections
 * carry one transfer each and are left to TCP keepalive. */
KOC_EXPORT void koc_client_set_read_idle_timeout(koc_client *c, uint64_t usec);
KOC_EXPORT void koc_client_set_ping_timeout(koc_client *c, uint64_t usec);
/* "koc/0.1" by default. */
KOC_EXPORT int koc_client_set_user_agent(koc_client *c, const char *ua);

/* Registers client-go's client metrics in metrics and updates them from then
 * on: rest_client_requests_total{code,method,host} (code "<error>" when no
 * HTTP answer came; a watch is counted when its answer's status arrives) and
 * rest_client_request_duration_seconds{verb,host} (requests only, from the
 * moment a request is handed to the connection to its answer, with
 * client-go's buckets 5 ms .. 60 s).  host is the server's "host:port".
 * Registering again (the same or another registry) replaces the registry. */
KOC_EXPORT int koc_client_register_metrics(koc_client *c, koc_metrics *metrics);

/* A client-side token bucket: at most qps requests per second on average
 * and burst at once; qps 0 turns it off (the default, as in
 * controller-runtime).  Requests and watches over the rate wait in the
 * order they were started, without blocking the loop, and the wait counts
 * against a request's timeout.  Leader election shares the limiter when it
 * uses this client.  -EINVAL for a negative or non-finite qps, or burst 0
 * with qps > 0. */
KOC_EXPORT int koc_client_set_rate_limit(koc_client *c, double qps, unsigned burst);

/* Starts a request.  ret_request (may be NULL) receives a handle that stays
 * valid until the handler runs or koc_request_cancel() is called.
 * koc_client_request() passes the size of the spec the program was compiled
 * with (see "Extensible structs" in koc/common.h); -EINVAL for a wrong size. */
KOC_EXPORT int koc_client_request_sized(koc_client *c, size_t spec_size,
                                        const koc_request_spec *spec,
                                        koc_response_handler_t handler, void *userdata,
                                        koc_request **ret_request);
#define koc_client_request(c, ...)                                                                 \
        koc_client_request_sized((c), sizeof(koc_request_spec), __VA_ARGS__)
/* Aborts a request; its handler is not called.  Safe inside any handler
 * (inside the request's own handler it does nothing). */
KOC_EXPORT void koc_request_cancel(koc_request *r);
/* Inside a handler: takes the body out of the response (the caller frees it). */
KOC_EXPORT cJSON *koc_response_steal_body(koc_response *r);

/* Synchronous facade for worker threads.  Blocks until the answer arrives (so
 * the loop must be running) and returns 0 with *ret set (free with
 * koc_response_free), or a negative errno when the request could not be
 * submitted (-EDEADLK on the loop thread, -ECANCELED when the client is shutting
 * down: calls waiting when the last reference goes return it; no call may
 * start after that).  Transport errors are in (*ret)->error as for the async
 * call. */
KOC_EXPORT int koc_client_call_sized(koc_client *c, size_t spec_size, const koc_request_spec *spec,
                                     koc_response **ret);
#define koc_client_call(c, ...) koc_client_call_sized((c), sizeof(koc_request_spec), __VA_ARGS__)
KOC_EXPORT koc_response *koc_response_free(koc_response *r);
KOC_DEFINE_POINTER_CLEANUP_FUNC(koc_response, koc_response_free)

/* --- query strings ------------------------------------------------------- */

/* Builds the query of a list or watch request with every name and value
 * percent-encoded (only RFC 3986's unreserved characters stay as they are),
 * so that selectors such as "app in (a,b)" and opaque continue tokens reach
 * the server intact.  Parameters keep the order they were first set in.
 *
 *   _koc_cleanup_(koc_query_freep) koc_query *q = NULL;
 *   koc_query_new(&q);
 *   koc_query_set_label_selector(q, "app=web,tier!=cache");
 *   koc_query_set_limit(q, 500);
 *   koc_query_set_continue(q, token_of_the_last_page);   // NULL or "" removes it
 *   koc_client_request(c, &(koc_request_spec){ .method = "GET", .path = PODS,
 *                      .query = koc_query_string(q) }, on_page, ud, NULL);
 */
typedef struct koc_query koc_query;

KOC_EXPORT int koc_query_new(koc_query **ret);
KOC_EXPORT koc_query *koc_query_free(koc_query *q);
KOC_DEFINE_POINTER_CLEANUP_FUNC(koc_query, koc_query_free)

/* Sets parameter name to value, replacing an earlier value of that name;
 * value NULL removes it.  -EINVAL for an empty name. */
KOC_EXPORT int koc_query_set(koc_query *q, const char *name, const char *value);
/* The Kubernetes list and watch parameters.  Strings: NULL or "" removes the
 * parameter.  resourceVersionMatch accepts "Exact" and "NotOlderThan"
 * (-EINVAL otherwise); limit and timeout_seconds 0 remove theirs. */
KOC_EXPORT int koc_query_set_label_selector(koc_query *q, const char *selector);
KOC_EXPORT int koc_query_set_field_selector(koc_query *q, const char *selector);
KOC_EXPORT int koc_query_set_limit(koc_query *q, uint64_t limit);
KOC_EXPORT int koc_query_set_continue(koc_query *q, const char *token);
KOC_EXPORT int koc_query_set_resource_version(koc_query *q, const char *resource_version);
KOC_EXPORT int koc_query_set_resource_version_match(koc_query *q, const char *match);
KOC_EXPORT int koc_query_set_timeout_seconds(koc_query *q, uint64_t seconds);
KOC_EXPORT int koc_query_set_allow_watch_bookmarks(koc_query *q, bool allow);
/* "name=value&..." without the '?', "" when empty, never NULL (NULL only
 * when q is NULL or out of memory).  Valid until q is changed or freed. */
KOC_EXPORT const char *koc_query_string(koc_query *q);

/* --- watches ------------------------------------------------------------- */

typedef enum koc_watch_event_type {
        KOC_WATCH_ADDED,
        KOC_WATCH_MODIFIED,
        KOC_WATCH_DELETED,
        KOC_WATCH_BOOKMARK,
        KOC_WATCH_ERROR,  /* an ERROR event: object is the Status; 410 means re-list */
        KOC_WATCH_CLOSED, /* the stream ended; the watch is finished after this event */
} koc_watch_event_type;

typedef struct koc_watch_event {
        koc_watch_event_type type;
        cJSON *object; /* the event's object (Status for ERROR); NULL for CLOSED */
        /* ERROR: the Status code (410 for Gone/Expired) and reason.
         * CLOSED: status is the HTTP status of the watch request (e.g. 403 when
         * watch is forbidden, 200 when a healthy stream ended), reason its
         * Status reason, error 0 for a clean end of stream (server timeout) or a
         * negative errno (-ECONNRESET, -ETIMEDOUT, -EMSGSIZE for an over-long
         * line, -EBADMSG for an event that is not JSON). */
        long status;
        koc_reason reason;
        int error;
        const char *message;
} koc_watch_event;

/* Called for each event, on the loop thread.  event->object is freed when
 * the handler returns; keep it with koc_watch_event_steal_object().  After the
 * CLOSED event the watch is gone (koc_watch_stop() is not needed, but is
 * harmless inside that handler); the handler may start a new watch there. */
typedef void (*koc_watch_handler_t)(koc_watch *w, koc_watch_event *event, void *userdata);

typedef struct koc_watch_spec {
        const char *path;             /* collection path: ".../namespaces/ns/leases" */
        const char *label_selector;   /* or NULL */
        const char *field_selector;   /* or NULL, e.g. "metadata.name=my-lease" */
        const char *resource_version; /* resume point, or NULL */
        bool allow_bookmarks;
        unsigned timeout_seconds; /* server-side timeout; 0: server default */
        size_t max_line;          /* cap on one event line; 0: 16 MiB */
        /* A streaming list (kube-apiserver's WatchList): the current objects
         * first, as ADDED events, then a BOOKMARK whose metadata.annotations
         * carry "k8s.io/initial-events-end": "true", then the changes.  Sends
         * sendInitialEvents=true&resourceVersionMatch=NotOlderThan (with
         * allow_bookmarks, which the end marker needs).  A server without
         * the feature answers 422 Invalid (CLOSED with status 422). */
        bool send_initial_events;
        /* The Accept header; NULL: application/json.  For example
         * "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1" for
         * events of metadata only. */
        const char *accept;
        /* Opens a new connection for this watch instead of taking one from
         * the pool: for a watch restarted because its connection is thought
         * dead (an HTTP/1.1 path that died keeps its socket open, and an
         * idle pooled connection on the same path is as dead).  Ignored
         * once the server has answered over HTTP/2: the connection health
         * check finds dead HTTP/2 connections, and the watch is one more
         * stream on the shared connection. */
        bool fresh_connection;
} koc_watch_spec;

/* Starts a watch.  The handler gets each event in order and, last, one CLOSED
 * event (unless koc_watch_stop() was called first).  destroy (may be NULL)
 * runs on userdata when the watch is freed: after the CLOSED event, at
 * koc_watch_stop(), or when the client goes.  There is no low-speed abort: an
 * idle watch stays open until the server or the caller ends it, or the
 * connection health check finds its HTTP/2 connection dead (CLOSED with
 * -ETIMEDOUT). */
KOC_EXPORT int koc_client_watch_sized(koc_client *c, size_t spec_size, const koc_watch_spec *spec,
                                      koc_watch_handler_t handler, void *userdata,
                                      koc_destroy_t destroy, koc_watch **ret);
#define koc_client_watch(c, ...) koc_client_watch_sized((c), sizeof(koc_watch_spec), __VA_ARGS__)
/* Ends a watch; its handler is not called again.  Frees the watch.  Safe
 * inside the watch's own handler (the free is deferred until it returns). */
KOC_EXPORT void koc_watch_stop(koc_watch *w);
/* Inside a watch handler: takes the object out of the event (the caller
 * frees it with cJSON_Delete). */
KOC_EXPORT cJSON *koc_watch_event_steal_object(koc_watch_event *event);

#ifdef __cplusplus
}
#endif
#endif
