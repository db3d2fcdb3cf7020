/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The list-and-watch component behind informers (client-go's Reflector):
 *
 * - a paginated list (limit 500, continue tokens; an expired continue token
 *   restarts the list), reported as list_begin, list_item for each object of
 *   every page, and list_end with the list's resourceVersion;
 * - then a watch from that resourceVersion with allowWatchBookmarks and a
 *   server-side timeout of 5 to 10 minutes; every event's (and bookmark's)
 *   resourceVersion becomes the resume point;
 * - a watch that ends or fails is resumed from the last seen resourceVersion;
 *   410 Gone/Expired (an ERROR event or the watch's HTTP status) re-lists;
 * - failures back off 800 ms doubling to 30 s with jitter; the backoff starts
 *   again from 800 ms after two quiet minutes without a failure.
 * - with a streaming list (client-go's WatchList), the list is a watch with
 *   sendInitialEvents=true: its ADDED events are the list's items and the
 *   BOOKMARK annotated k8s.io/initial-events-end ends the list (list_end with
 *   its resourceVersion); the same stream then goes on as the watch.  In
 *   AUTO mode a server that refuses it (an HTTP error other than 410, 429
 *   and 5xx, as kube-apiserver's 422 with the WatchList gate off) or ignores
 *   it (a stream that ends without the end marker) is listed with pages
 *   from then on; in ON mode the stream is retried with backoff instead.
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

typedef struct koc_reflector_handlers {
        void (*list_begin)(void *userdata);
        /* object is the reflector's; kind and apiVersion are filled in from
         * the list's. */
        void (*list_item)(cJSON *object, void *userdata);
        void (*list_end)(const char *resource_version, void *userdata);
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
        unsigned page_size;            /* 0: 500 */
        uint64_t backoff_initial_usec; /* 0: 800 ms */
        uint64_t backoff_max_usec;     /* 0: 30 s */
        koc_reflector_list_mode list_mode;
        /* Accept headers of the list requests and of the watches (NULL:
         * JSON), e.g. for metadata-only lists and watches. */
        const char *list_accept;
        const char *watch_accept;
} koc_reflector_spec;

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
} koc_reflector_stats;
void koc__reflector_get_stats(koc_reflector *r, koc_reflector_stats *ret);
const char *koc__reflector_get_resource_version(koc_reflector *r);
