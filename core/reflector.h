/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The list-and-watch component behind informers (client-go's Reflector):
 *
 * - a paginated list (limit 500, continue tokens; an expired continue token
 *   restarts the list), reported as list_begin (when the first request is
 *   sent), list_item for each object of every page, and list_end with the
 *   list's resourceVersion;
 * - then a watch from that resourceVersion with allowWatchBookmarks and a
 *   server-side timeout of 5 to 10 minutes; every event's (and bookmark's)
 *   resourceVersion becomes the resume point;
 * - a watch that ends or fails is resumed from the last seen resourceVersion;
 *   410 Gone/Expired (an ERROR event or the watch's HTTP status) re-lists,
 *   at once the first time, and after a backoff (with a warn line) when
 *   410s come again with no watch event between them;
 * - failures back off 800 ms doubling to 30 s with jitter; the backoff starts
 *   again from 800 ms after two quiet minutes without a failure.  Every
 *   rejected answer (an error status, a body that is not JSON or is cut or
 *   too deep or too large, an ERROR event other than 410, a continue token
 *   seen before in the same list, a list over its caps) gets one warn line,
 *   rate-limited per reflector, with the request and the reason, and is
 *   counted (stats.rejected, handler rejected).
 * - a list is delivered between list_begin and list_end; a list that cannot
 *   end is abandoned with list_abort, so its items never count as a list.
 * - with a streaming list (client-go's WatchList), the list is a watch with
 *   sendInitialEvents=true: its ADDED events are the list's items and the
 *   BOOKMARK annotated k8s.io/initial-events-end ends the list (list_end with
 *   its resourceVersion); the same stream then goes on as the watch.  In
 *   AUTO mode a server that refuses it (an HTTP error other than 410, 429
 *   and 5xx, as kube-apiserver's 422 with the WatchList gate off) or ignores
 *   it (a stream that ends without the end marker) is listed with pages
 *   from then on; in ON mode the stream is retried with backoff instead.
 * Every decision above is made by a state machine without I/O
 * (reflector-fsm.h: one step function of state, event and time, with unit
 * tests on an injected clock); reflector.c only drives it.
 * Loop thread only.  Handlers may not free the reflector.
 * Except two: event may (nothing touches the reflector after it), and so
 * may watch_ended when it returns false (see there).
 *
 * Watch-only mode (spec.watch_only) is the same watch and restart logic for
 * one object whose state the owner reads itself (the leader's Lease: a GET,
 * then a watch with fieldSelector metadata.name=NAME; no list permission
 * needed): no list; the first watch starts from spec.resource_version, and
 * on 410 the watch starts again without a resourceVersion, so the server
 * sends what exists now as ADDED events (the single-object re-list).
 */
#pragma once

#include <cjson/cJSON.h>

#include "koc/client.h"

typedef struct koc_reflector koc_reflector;

/* Why an answer was rejected (the reason label of the informer's
 * koc_informer_rejected_answers_total). */
typedef enum koc_reflector_reject {
        KOC_REFLECTOR_REJECT_TRANSPORT,     /* no answer: connection, TLS, timeout */
        KOC_REFLECTOR_REJECT_STATUS,        /* an error status other than 410 */
        KOC_REFLECTOR_REJECT_INVALID,       /* not JSON, truncated, too deep, not a list */
        KOC_REFLECTOR_REJECT_TOO_LARGE,     /* a body or watch event over the size cap */
        KOC_REFLECTOR_REJECT_ERROR_EVENT,   /* a watch ERROR event other than 410 */
        KOC_REFLECTOR_REJECT_CONTINUE_LOOP, /* a list's continue token came again */
        KOC_REFLECTOR_REJECT_LIST_TOO_LARGE, /* a list over its caps (objects, bytes, pages) */
        KOC_REFLECTOR_REJECT_GONE,           /* 410 again with no watch event since the last */
        _KOC_REFLECTOR_REJECT_MAX,
} koc_reflector_reject;
const char *koc__reflector_reject_to_string(koc_reflector_reject r);

typedef struct koc_reflector_handlers {
        /* A list begins: its first request (or the streaming list's watch)
         * is being sent.  Its snapshot is taken after this, so what the
         * owner writes from here on may be newer than the list. */
        void (*list_begin)(void *userdata);
        /* object is the reflector's; kind and apiVersion are filled in from
         * the list's.  A negative errno abandons the list (-EFBIG: over a
         * cap of the owner's, such as the list's bytes). */
        int (*list_item)(cJSON *object, void *userdata);
        void (*list_end)(const char *resource_version, void *userdata);
        /* Optional: a list that began will not end (a failed page, a
         * continue loop, a list over its caps, a stream cut before its end
         * marker): its items must not be used.  The next attempt starts
         * with list_begin again. */
        void (*list_abort)(void *userdata);
        /* Optional: an answer was rejected (after its warn line). */
        void (*rejected)(koc_reflector_reject reason, void *userdata);
        /* ADDED, MODIFIED or DELETED. */
        void (*event)(koc_watch_event_type type, cJSON *object, void *userdata);
        /* Optional: a watch request ended, with its HTTP status (or the
         * ERROR event's code) and 0 or a transport error; called before the
         * reflector schedules the next step.  Returning false stops the
         * reflector for good (a watch that cannot heal by retrying, such as
         * 403): it does nothing more, and this handler may free it. */
        bool (*watch_ended)(long status, int error, void *userdata);
} koc_reflector_handlers;

typedef enum koc_reflector_list_mode {
        KOC_REFLECTOR_LIST_PAGES,  /* paginated list, then watch */
        KOC_REFLECTOR_LIST_AUTO,   /* streaming list, pages when refused */
        KOC_REFLECTOR_LIST_STREAM, /* streaming list only */
} koc_reflector_list_mode;

typedef struct koc_reflector_spec {
        const char *path; /* collection: "/api/v1/namespaces/ns/configmaps" */
        const char *label_selector;
        const char *field_selector;
        bool watch_only;              /* see above */
        const char *resource_version; /* watch_only: the first resume point, or NULL */
        /* Cap of the backoff after a watch the server ended cleanly but
         * early, with nothing on it: such a server is not failing (0:
         * backoff_max). */
        uint64_t clean_close_max_usec;
        /* A streaming list silent this long without its end marker is
         * taken for a server that ignored sendInitialEvents: pages (AUTO),
         * or a retry (STREAM).  0: 10 s. */
        uint64_t stream_silence_usec;
        unsigned page_size;            /* 0: 500 */
        uint64_t backoff_initial_usec; /* 0: 800 ms */
        uint64_t backoff_max_usec;     /* 0: 30 s */
        koc_reflector_list_mode list_mode;
        /* Accept headers of the list requests and of the watches (NULL:
         * JSON), e.g. for metadata-only lists and watches. */
        const char *list_accept;
        const char *watch_accept;
        /* Cap on one list's objects (0: 1,000,000).  A list over it, one
         * whose continue token repeats, or one with more pages than it
         * could need (max_list_objects / page_size * 2 + 1000) is abandoned
         * (list_abort) and retried with backoff. */
        size_t max_list_objects;
} koc_reflector_spec;

#define KOC_REFLECTOR_MAX_LIST_OBJECTS_DEFAULT ((size_t)1000000)

int koc__reflector_new(koc_client *c, const koc_reflector_spec *spec,
                       const koc_reflector_handlers *handlers, void *userdata, koc_reflector **ret);
int koc__reflector_start(koc_reflector *r);
/* Ends the watch in flight and starts it again from the last resourceVersion,
 * at once and on a new connection (never one from the pool; over HTTP/2 a
 * new stream, see koc_watch_spec.fresh_connection): for an owner
 * that knows events should have come and none did (the leader's Lease while
 * it is held), which is how a watch on an HTTP/1.1 connection whose path
 * died shows.  With no watch in flight (a list, or a retry waiting out its
 * backoff), only the next watch uses a new connection.  Loop thread; not
 * from the reflector's own handlers. */
void koc__reflector_restart_watch(koc_reflector *r);
koc_reflector *koc__reflector_free(koc_reflector *r);

/* For tests and metrics. */
typedef struct koc_reflector_stats {
        unsigned lists;         /* lists completed */
        unsigned list_requests; /* pages requested */
        unsigned watches;       /* watches started */
        unsigned relists_gone;  /* re-lists caused by 410 */
        unsigned failures;
        unsigned restarts;       /* koc__reflector_restart_watch() on a watch in flight */
        unsigned streams;        /* streaming lists started */
        unsigned streams_done;   /* ... ended by the initial-events-end bookmark */
        bool stream_unsupported; /* AUTO fell back to pages */
        unsigned lists_abandoned; /* lists begun that never ended */
        unsigned rejected[_KOC_REFLECTOR_REJECT_MAX];
} koc_reflector_stats;
void koc__reflector_get_stats(koc_reflector *r, koc_reflector_stats *ret);
/* Whether the list in progress is a streaming list (a watch with
 * sendInitialEvents before its end marker): list_begin asks. */
bool koc__reflector_is_streaming(koc_reflector *r);
const char *koc__reflector_get_resource_version(koc_reflector *r);
