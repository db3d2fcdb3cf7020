/* SPDX-License-Identifier: Apache-2.0 */
#include "reflector.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "koc/log.h"
#include "koc/time.h"
#include "ratelimit.h"
#include "util.h"

#define LOG "reflector"
#define QUIET_PERIOD_USEC (120 * KOC_USEC_PER_SEC)
/* A watch that ends cleanly sooner than this, with nothing on it, counts as
 * a failure, so that a server closing watches at once is not hammered. */
#define MIN_WATCH_USEC (1 * KOC_USEC_PER_SEC)

typedef enum next_step { NEXT_LIST, NEXT_WATCH } next_step;

struct koc_reflector {
        koc_client *client;
        sd_event *event;
        char *path;
        char *label_selector;
        char *field_selector;
        /* The list requests' query (core/query.c, the one encoder): limit
         * and the selectors, and each page's continue token. */
        koc_query *list_query;
        unsigned page_size;
        uint64_t backoff_initial, backoff_max, backoff, clean_close_max;
        bool watch_only;
        uint64_t last_failure_at;
        koc_reflector_handlers h;
        void *userdata;

        koc_request *req;
        koc_watch *watch;
        sd_event_source *timer;
        char *continue_token;
        /* A list page whose items are still to be delivered (on_list()),
         * and the idle source that delivers them. */
        cJSON *pending_page;
        sd_event_source *page_source;
        char *rv;
        char *item_kind;
        char *item_api_version;
        bool list_begun;
        uint64_t watch_started_at;
        bool watch_saw_event;
        koc_reflector_list_mode list_mode;
        bool streaming; /* the watch is a streaming list before its end marker */
        char *list_accept;
        char *watch_accept;
        bool fresh_connection; /* the next watch opens a new connection */
        next_step next;
        koc_reflector_stats stats;
        /* The list in progress: objects and pages so far, and the hashes
         * of its continue tokens (open addressing, 0 is free). */
        size_t max_list_objects, max_list_pages;
        size_t list_objects, list_pages;
        uint64_t *tokens;
        size_t tokens_cap, tokens_n;
        koc__ratelimit warn_limit;
};

const char *koc__reflector_reject_to_string(koc_reflector_reject r) {
        static const char *const names[_KOC_REFLECTOR_REJECT_MAX] = {
                [KOC_REFLECTOR_REJECT_TRANSPORT] = "transport",
                [KOC_REFLECTOR_REJECT_STATUS] = "status",
                [KOC_REFLECTOR_REJECT_INVALID] = "invalid",
                [KOC_REFLECTOR_REJECT_TOO_LARGE] = "too_large",
                [KOC_REFLECTOR_REJECT_ERROR_EVENT] = "error_event",
                [KOC_REFLECTOR_REJECT_CONTINUE_LOOP] = "continue_loop",
                [KOC_REFLECTOR_REJECT_LIST_TOO_LARGE] = "list_too_large",
        };
        return (unsigned)r < _KOC_REFLECTOR_REJECT_MAX ? names[r] : "unknown";
}

static void start_list_page(koc_reflector *r);
static void fill_kind(koc_reflector *r, cJSON *item);
static void start_watch(koc_reflector *r);
static void start_stream(koc_reflector *r);

static const char *str_field(const cJSON *o, const char *name) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
        return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int set_str(char **p, const char *v) {
        char *n = v ? strdup(v) : NULL;
        if (v && !n)
                return -ENOMEM;
        free(*p);
        *p = n;
        return 0;
}

int koc__reflector_new(koc_client *c, const koc_reflector_spec *spec,
                       const koc_reflector_handlers *handlers, void *userdata,
                       koc_reflector **ret) {
        if (!c || !spec || !spec->path || spec->path[0] != '/' || !handlers)
                return -EINVAL;
        koc_reflector *r = calloc(1, sizeof *r);
        if (!r)
                return -ENOMEM;
        r->client = koc_client_ref(c);
        r->event = sd_event_ref(koc_client_get_event(c));
        r->h = *handlers;
        r->userdata = userdata;
        r->page_size = spec->page_size ? spec->page_size : 500;
        r->backoff_initial =
                spec->backoff_initial_usec ? spec->backoff_initial_usec : 800 * KOC_USEC_PER_MSEC;
        r->backoff_max = spec->backoff_max_usec ? spec->backoff_max_usec : 30 * KOC_USEC_PER_SEC;
        r->backoff = r->backoff_initial;
        r->list_mode = spec->list_mode;
        r->max_list_objects = spec->max_list_objects ? spec->max_list_objects
                                                     : KOC_REFLECTOR_MAX_LIST_OBJECTS_DEFAULT;
        r->max_list_pages = r->max_list_objects / r->page_size * 2 + 1000;
        /* A server that rejects every answer says so a few times a minute,
         * not at every retry. */
        r->warn_limit = (koc__ratelimit)KOC__RATELIMIT_INIT(60 * KOC_USEC_PER_SEC, 5);
        int k = koc_query_new(&r->list_query);
        if (k >= 0)
                k = koc_query_set_limit(r->list_query, r->page_size);
        if (k >= 0)
                k = set_str(&r->path, spec->path);
        if (k >= 0)
                k = set_str(&r->list_accept, spec->list_accept);
        if (k >= 0)
                k = set_str(&r->watch_accept, spec->watch_accept);
        if (k >= 0 && spec->label_selector && *spec->label_selector)
                k = set_str(&r->label_selector, spec->label_selector);
        if (k >= 0 && spec->field_selector && *spec->field_selector)
                k = set_str(&r->field_selector, spec->field_selector);
        if (k >= 0)
                k = koc_query_set_label_selector(r->list_query, r->label_selector);
        if (k >= 0)
                k = koc_query_set_field_selector(r->list_query, r->field_selector);
        r->clean_close_max =
                spec->clean_close_max_usec ? spec->clean_close_max_usec : r->backoff_max;
        r->watch_only = spec->watch_only;
        if (k >= 0 && spec->watch_only && spec->resource_version && *spec->resource_version)
                k = set_str(&r->rv, spec->resource_version);
        if (k < 0) {
                koc__reflector_free(r);
                return k;
        }
        *ret = r;
        return 0;
}

koc_reflector *koc__reflector_free(koc_reflector *r) {
        if (!r)
                return NULL;
        koc_request_cancel(r->req);
        koc_watch_stop(r->watch);
        sd_event_source_disable_unref(r->timer);
        sd_event_source_disable_unref(r->page_source);
        cJSON_Delete(r->pending_page);
        koc_client_unref(r->client);
        sd_event_unref(r->event);
        free(r->path);
        free(r->label_selector);
        free(r->field_selector);
        koc_query_free(r->list_query);
        free(r->continue_token);
        free(r->rv);
        free(r->item_kind);
        free(r->item_api_version);
        free(r->list_accept);
        free(r->watch_accept);
        free(r->tokens);
        free(r);
        return NULL;
}

void koc__reflector_get_stats(koc_reflector *r, koc_reflector_stats *ret) {
        *ret = r->stats;
}

const char *koc__reflector_get_resource_version(koc_reflector *r) {
        return r->rv;
}

/* --- scheduling ----------------------------------------------------------------- */

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        koc_reflector *r = userdata;
        r->timer = sd_event_source_disable_unref(r->timer);
        if (r->next == NEXT_WATCH && (r->rv || r->watch_only))
                start_watch(r);
        else if (r->list_mode != KOC_REFLECTOR_LIST_PAGES && !r->stats.stream_unsupported)
                start_stream(r);
        else
                start_list_page(r);
        return 0;
}

static void list_reset(koc_reflector *r) {
        r->list_objects = r->list_pages = 0;
        free(r->tokens);
        r->tokens = NULL;
        r->tokens_n = r->tokens_cap = 0;
}

/* The list in progress, if any, will not end: its items must not count. */
static void list_abandon(koc_reflector *r) {
        cJSON_Delete(r->pending_page);
        r->pending_page = NULL;
        if (r->page_source)
                (void)sd_event_source_set_enabled(r->page_source, SD_EVENT_OFF);
        koc_request_cancel(r->req);
        r->req = NULL;
        list_reset(r);
        if (!r->list_begun)
                return;
        r->list_begun = false;
        r->stats.lists_abandoned++;
        if (r->h.list_abort)
                r->h.list_abort(r->userdata);
}

/* Runs the next step after `delay` (0: from the loop at once, never inside
 * the current handler). */
static void schedule(koc_reflector *r, next_step next, uint64_t delay) {
        r->timer = sd_event_source_disable_unref(r->timer);
        /* A step scheduled in the middle of a list means the list failed. */
        list_abandon(r);
        if (next == NEXT_LIST && r->watch_only) {
                /* The single-object re-list: a watch without a resume
                 * point, which starts with what exists as ADDED events. */
                free(r->rv);
                r->rv = NULL;
                next = NEXT_WATCH;
        }
        r->next = next;
        if (next == NEXT_LIST) {
                /* A re-list starts from scratch. */
                free(r->continue_token);
                r->continue_token = NULL;
                free(r->rv);
                r->rv = NULL;
        }
        int k = sd_event_add_time_relative(r->event, &r->timer, CLOCK_BOOTTIME, delay, 0, on_retry,
                                           r);
        if (k < 0)
                koc_log_error(LOG, "cannot arm the retry timer path=%s: %s", r->path, strerror(-k));
}

static uint64_t next_backoff_capped(koc_reflector *r, uint64_t cap) {
        uint64_t t = koc_now_boottime_usec();
        if (r->last_failure_at && t - r->last_failure_at > QUIET_PERIOD_USEC)
                r->backoff = r->backoff_initial;
        r->last_failure_at = t;
        r->stats.failures++;
        uint64_t d = r->backoff;
        /* Jitter 1.0 as client-go's: between d and 2d, within the cap. */
        d += (uint64_t)((double)d * ((double)random() / ((double)RAND_MAX + 1)));
        if (d > cap)
                d = cap;
        r->backoff = r->backoff * 2 < r->backoff_max ? r->backoff * 2 : r->backoff_max;
        return d;
}

static uint64_t next_backoff(koc_reflector *r) {
        return next_backoff_capped(r, r->backoff_max);
}

/* A watch ended: false when the owner stopped the reflector (which may be
 * gone then: touch nothing). */
static bool watch_may_resume(koc_reflector *r, long status, int error) {
        return !r->h.watch_ended || r->h.watch_ended(status, error, r->userdata);
}

static koc_reflector_reject reject_reason(long status, int error) {
        if (error == -EBADMSG)
                return KOC_REFLECTOR_REJECT_INVALID;
        if (error == -EMSGSIZE)
                return KOC_REFLECTOR_REJECT_TOO_LARGE;
        if (error < 0)
                return KOC_REFLECTOR_REJECT_TRANSPORT;
        return status >= 300 || status < 200 ? KOC_REFLECTOR_REJECT_STATUS
                                              : KOC_REFLECTOR_REJECT_INVALID;
}

/* One warn line (rate-limited) for a rejected answer: the request, the
 * reason, what was wrong, and what happens next; then the count. */
static void reject(koc_reflector *r, koc_reflector_reject why, const char *what, long status,
                   const char *detail, uint64_t retry_in) {
        char d[64];
        r->stats.rejected[why]++;
        koc__log_ratelimited(&r->warn_limit, KOC_LOG_WARN, LOG,
                             "answer rejected: GET %s (%s) reason=%s status=%ld: %s; retrying in %s",
                             r->path, what, koc__reflector_reject_to_string(why), status,
                             detail && *detail ? detail : "-",
                             koc_format_duration(retry_in, d, sizeof d));
        if (r->h.rejected)
                r->h.rejected(why, r->userdata);
}

/* Abandons the list in progress because of the answer (why, detail) and
 * lists again after a backoff. */
static void list_rejected(koc_reflector *r, koc_reflector_reject why, const char *what,
                          long status, const char *detail) {
        uint64_t d = next_backoff(r);
        reject(r, why, what, status, detail, d);
        schedule(r, NEXT_LIST, d);
}

static uint64_t token_hash(const char *s) {
        uint64_t h = 14695981039346656037ull; /* FNV-1a */
        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * 1099511628211ull;
        return h ? h : 1;
}

/* Notes a continue token of the list in progress: false when it came
 * before (the server sends the list in a loop), or when out of memory. */
static bool token_first_time(koc_reflector *r, const char *token) {
        if ((r->tokens_n + 1) * 2 > r->tokens_cap) {
                size_t cap = r->tokens_cap ? r->tokens_cap * 2 : 64;
                uint64_t *n = calloc(cap, sizeof *n);
                if (!n)
                        return false;
                for (size_t i = 0; i < r->tokens_cap; i++)
                        for (size_t j = r->tokens[i] & (cap - 1); r->tokens[i];
                             j = (j + 1) & (cap - 1))
                                if (!n[j]) {
                                        n[j] = r->tokens[i];
                                        break;
                                }
                free(r->tokens);
                r->tokens = n;
                r->tokens_cap = cap;
        }
        uint64_t h = token_hash(token);
        for (size_t j = h & (r->tokens_cap - 1);; j = (j + 1) & (r->tokens_cap - 1)) {
                if (r->tokens[j] == h)
                        return false;
                if (!r->tokens[j]) {
                        r->tokens[j] = h;
                        r->tokens_n++;
                        return true;
                }
        }
}

/* One more object of the list in progress; < 0: the list is abandoned. */
static int list_item(koc_reflector *r, cJSON *item, const char *what) {
        char msg[128];
        int k = 0;
        if (++r->list_objects > r->max_list_objects) {
                snprintf(msg, sizeof msg, "the list has more than %zu objects (max_list_objects)",
                         r->max_list_objects);
                k = -EFBIG;
        } else if (r->h.list_item) {
                fill_kind(r, item);
                k = r->h.list_item(item, r->userdata);
                if (k < 0)
                        snprintf(msg, sizeof msg, "%s",
                                 k == -EFBIG ? "the list's objects exceed the cap on their bytes "
                                               "(max_list_bytes)"
                                             : strerror(-k));
        }
        if (k < 0) {
                koc_watch_stop(r->watch);
                r->watch = NULL;
                r->streaming = false;
                list_rejected(r, KOC_REFLECTOR_REJECT_LIST_TOO_LARGE, what, 200, msg);
        }
        return k;
}

/* --- list -------------------------------------------------------------------------- */

static void fill_kind(koc_reflector *r, cJSON *item) {
        if (r->item_kind && !cJSON_GetObjectItemCaseSensitive(item, "kind"))
                cJSON_AddStringToObject(item, "kind", r->item_kind);
        if (r->item_api_version && !cJSON_GetObjectItemCaseSensitive(item, "apiVersion"))
                cJSON_AddStringToObject(item, "apiVersion", r->item_api_version);
}

/* < 0: the list was abandoned (and the next step scheduled). */
static int deliver_items(koc_reflector *r, cJSON *page) {
        cJSON *items = cJSON_GetObjectItemCaseSensitive(page, "items"), *item;
        cJSON_ArrayForEach(item, items) {
                if (!cJSON_IsObject(item))
                        continue;
                int k = list_item(r, item, "list page");
                if (k < 0)
                        return k;
        }
        return 0;
}

/* Delivers the items of the page before the one now in flight, if any are
 * still pending: pages are always delivered in order.  < 0: the list was
 * abandoned. */
static int flush_pending_page(koc_reflector *r) {
        cJSON *page = r->pending_page;
        if (!page)
                return 0;
        r->pending_page = NULL;
        if (r->page_source)
                (void)sd_event_source_set_enabled(r->page_source, SD_EVENT_OFF);
        int k = deliver_items(r, page);
        cJSON_Delete(page);
        return k;
}

static int on_pending_page(sd_event_source *s, void *userdata) {
        flush_pending_page(userdata);
        return 0;
}

/* The items of a page that has a successor are delivered from an idle
 * source after the next page's request went out (the client's timer runs
 * at a higher priority), so that the server prepares the next page while
 * this process stores the current one.  false: deliver them at once. */
static bool defer_page(koc_reflector *r, koc_response *resp) {
        if (!r->page_source) {
                if (sd_event_add_defer(r->event, &r->page_source, on_pending_page, r) < 0)
                        return false;
                (void)sd_event_source_set_priority(r->page_source, SD_EVENT_PRIORITY_IDLE);
                (void)sd_event_source_set_description(r->page_source, "koc-reflector-page");
        }
        if (sd_event_source_set_enabled(r->page_source, SD_EVENT_ONESHOT) < 0)
                return false;
        r->pending_page = koc_response_steal_body(resp);
        return r->pending_page != NULL;
}

static void on_list(koc_client *c, koc_response *resp, void *userdata) {
        koc_reflector *r = userdata;
        r->req = NULL;
        const char *what = r->continue_token ? "list page" : "list";

        if (flush_pending_page(r) < 0)
                return;

        if (resp->error < 0 || resp->status != 200 || !cJSON_IsObject(resp->body)) {
                bool expired = resp->status == 410;
                if (expired && r->continue_token) {
                        /* The continue token expired: list again from the start. */
                        koc_log_debug(LOG, "list continue token expired path=%s: listing again",
                                      r->path);
                        schedule(r, NEXT_LIST, 0);
                        return;
                }
                list_rejected(r, reject_reason(resp->status, resp->error), what, resp->status,
                              resp->error == 0 && resp->status == 200 ? "the answer is not an object"
                                                                      : resp->message);
                return;
        }
        if (++r->list_pages > r->max_list_pages) {
                char msg[128];
                snprintf(msg, sizeof msg, "the list has more than %zu pages", r->max_list_pages);
                list_rejected(r, KOC_REFLECTOR_REJECT_LIST_TOO_LARGE, what, resp->status, msg);
                return;
        }
        const char *kind = str_field(resp->body, "kind");
        size_t klen = kind ? strlen(kind) : 0;
        if (klen > 4 && strcmp(kind + klen - 4, "List") == 0) {
                char *k = strndup(kind, klen - 4);
                if (k) {
                        free(r->item_kind);
                        r->item_kind = k;
                }
        }
        set_str(&r->item_api_version, str_field(resp->body, "apiVersion"));
        if (!r->list_begun) {
                r->list_begun = true;
                if (r->h.list_begin)
                        r->h.list_begin(r->userdata);
        }
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(resp->body, "metadata");
        const char *cont = str_field(md, "continue");
        if (cont && *cont) {
                if (!token_first_time(r, cont)) {
                        /* A server that sends the same pages again would
                         * grow the list for ever. */
                        list_rejected(r, KOC_REFLECTOR_REJECT_CONTINUE_LOOP, what, resp->status,
                                      "the continue token came before in this list");
                        return;
                }
                if (set_str(&r->continue_token, cont) < 0) {
                        schedule(r, NEXT_LIST, next_backoff(r));
                        return;
                }
                start_list_page(r);
                if (!r->req)
                        return; /* failed and scheduled: the list is abandoned */
                if (!defer_page(r, resp))
                        (void)deliver_items(r, resp->body);
                return;
        }
        if (deliver_items(r, resp->body) < 0)
                return;
        free(r->continue_token);
        r->continue_token = NULL;
        set_str(&r->rv, str_field(md, "resourceVersion"));
        r->list_begun = false;
        list_reset(r);
        r->stats.lists++;
        if (r->h.list_end)
                r->h.list_end(r->rv, r->userdata);
        start_watch(r);
}

static void start_list_page(koc_reflector *r) {
        const char *query = NULL;
        int k = koc_query_set_continue(r->list_query, r->continue_token);
        if (k >= 0) {
                query = koc_query_string(r->list_query);
                k = query ? 0 : -ENOMEM;
        }
        if (k >= 0) {
                r->stats.list_requests++;
                k = koc_client_request(r->client,
                                       &(koc_request_spec){.method = "GET",
                                                           .path = r->path,
                                                           .query = query,
                                                           .accept = r->list_accept},
                                       on_list, r, &r->req);
        }
        if (k < 0) {
                r->req = NULL;
                koc_log_warn(LOG, "cannot list path=%s: %s", r->path, strerror(-k));
                schedule(r, NEXT_LIST, next_backoff(r));
        }
}

/* --- watch ------------------------------------------------------------------------- */

static bool is_initial_events_end(const cJSON *obj) {
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
        const cJSON *ann = cJSON_GetObjectItemCaseSensitive(md, "annotations");
        const char *v = str_field(ann, "k8s.io/initial-events-end");
        return v && strcmp(v, "true") == 0;
}

/* Falls back to paginated lists for good (AUTO mode). */
static void stream_refused(koc_reflector *r, long status, const char *why) {
        r->stats.stream_unsupported = true;
        koc_log_info(LOG,
                     "streaming list not available path=%s status=%ld (%s): listing with pages "
                     "instead",
                     r->path, status, why);
        schedule(r, NEXT_LIST, 0);
}

/* Refusals a streaming list does not come back from: the request itself
 * was not accepted.  Not 410 (re-list), 429 and server errors (retry). */
static bool is_refusal(long status) {
        return status >= 400 && status != 410 && status != 429 && (status < 500 || status == 501);
}

/* A streaming list's events until its end marker. */
static void on_stream(koc_reflector *r, koc_watch *w, koc_watch_event *ev) {
        switch (ev->type) {
        case KOC_WATCH_ADDED:
        case KOC_WATCH_MODIFIED:
        case KOC_WATCH_BOOKMARK:
                r->watch_saw_event = true;
                if (!r->list_begun) {
                        r->list_begun = true;
                        if (r->h.list_begin)
                                r->h.list_begin(r->userdata);
                }
                if (ev->type != KOC_WATCH_BOOKMARK) {
                        if (cJSON_IsObject(ev->object))
                                (void)list_item(r, ev->object, "streaming list");
                        return;
                }
                if (!is_initial_events_end(ev->object))
                        return;
                set_str(&r->rv, str_field(cJSON_GetObjectItemCaseSensitive(ev->object, "metadata"),
                                          "resourceVersion"));
                r->streaming = false;
                r->list_begun = false;
                list_reset(r);
                r->stats.lists++;
                r->stats.streams_done++;
                if (r->h.list_end)
                        r->h.list_end(r->rv, r->userdata);
                return;
        case KOC_WATCH_DELETED:
                /* Not sent before the end marker; the end's re-list
                 * semantics remove what was not listed anyway. */
                return;
        case KOC_WATCH_ERROR:
                koc_watch_stop(w);
                r->watch = NULL;
                r->streaming = false;
                if (ev->status == 410) {
                        r->stats.relists_gone++;
                        schedule(r, NEXT_LIST, 0);
                } else if (r->list_mode == KOC_REFLECTOR_LIST_AUTO && is_refusal(ev->status))
                        stream_refused(r, ev->status, ev->message);
                else
                        list_rejected(r, KOC_REFLECTOR_REJECT_ERROR_EVENT, "streaming list",
                                      ev->status, ev->message);
                return;
        case KOC_WATCH_CLOSED:
                r->watch = NULL;
                r->streaming = false;
                if (r->list_mode == KOC_REFLECTOR_LIST_AUTO && is_refusal(ev->status))
                        stream_refused(r, ev->status, ev->message);
                else if (r->list_mode == KOC_REFLECTOR_LIST_AUTO && ev->error == 0 &&
                         ev->status == 200)
                        /* A clean end without the marker: the server ignored
                         * sendInitialEvents (older than the feature). */
                        stream_refused(r, ev->status, "the stream ended without the end marker");
                else
                        list_rejected(r, reject_reason(ev->status, ev->error), "streaming list",
                                      ev->status,
                                      ev->error == 0 && ev->status == 200
                                              ? "the stream ended without the end marker"
                                              : ev->message);
                return;
        }
}

static void on_watch(koc_watch *w, koc_watch_event *ev, void *userdata) {
        koc_reflector *r = userdata;

        if (r->streaming) {
                on_stream(r, w, ev);
                return;
        }
        switch (ev->type) {
        case KOC_WATCH_ADDED:
        case KOC_WATCH_MODIFIED:
        case KOC_WATCH_DELETED:
        case KOC_WATCH_BOOKMARK: {
                const cJSON *md = cJSON_GetObjectItemCaseSensitive(ev->object, "metadata");
                const char *rv = str_field(md, "resourceVersion");
                if (rv && *rv)
                        set_str(&r->rv, rv);
                r->watch_saw_event = true;
                if (ev->type != KOC_WATCH_BOOKMARK && r->h.event && cJSON_IsObject(ev->object)) {
                        fill_kind(r, ev->object);
                        r->h.event(ev->type, ev->object, r->userdata);
                }
                return;
        }
        case KOC_WATCH_ERROR:
                koc_watch_stop(w);
                r->watch = NULL;
                if (!watch_may_resume(r, ev->status, 0))
                        return;
                if (ev->status == 410) {
                        koc_log_debug(LOG, "watch expired path=%s: re-listing", r->path);
                        r->stats.relists_gone++;
                        schedule(r, NEXT_LIST, 0);
                } else {
                        uint64_t d = next_backoff(r);
                        reject(r, KOC_REFLECTOR_REJECT_ERROR_EVENT, "watch", ev->status,
                               ev->message, d);
                        schedule(r, NEXT_WATCH, d);
                }
                return;
        case KOC_WATCH_CLOSED:
                r->watch = NULL;
                if (!watch_may_resume(r, ev->status, ev->error))
                        return;
                if (ev->status == 410) {
                        r->stats.relists_gone++;
                        schedule(r, NEXT_LIST, 0);
                        return;
                }
                uint64_t ran = koc_now_boottime_usec() - r->watch_started_at;
                if (ev->error == 0 && ev->status == 200 &&
                    (r->watch_saw_event || ran >= MIN_WATCH_USEC)) {
                        schedule(r, NEXT_WATCH, 0);
                        return;
                }
                bool clean = ev->error == 0 && ev->status == 200;
                uint64_t d = next_backoff_capped(r, clean ? r->clean_close_max : r->backoff_max);
                if (clean)
                        koc_log_debug(LOG, "watch closed early path=%s with nothing on it",
                                      r->path);
                else
                        reject(r, reject_reason(ev->status, ev->error), "watch", ev->status,
                               ev->message, d);
                schedule(r, NEXT_WATCH, d);
                return;
        }
}

static void start_watch_spec(koc_reflector *r, bool stream) {
        koc_watch_spec spec = {
                .path = r->path,
                .label_selector = r->label_selector,
                .field_selector = r->field_selector,
                .resource_version = stream ? NULL : r->rv,
                .allow_bookmarks = true,
                /* client-go: a random timeout between 5 and 10 minutes, so
                 * that many watches do not all restart at the same time. */
                .timeout_seconds = 300 + (unsigned)(random() % 300),
                .send_initial_events = stream,
                .accept = r->watch_accept,
                .fresh_connection = r->fresh_connection,
        };
        r->streaming = stream;
        r->watch_started_at = koc_now_boottime_usec();
        r->watch_saw_event = false;
        int k = koc_client_watch(r->client, &spec, on_watch, r, NULL, &r->watch);
        if (k < 0) {
                r->watch = NULL;
                r->streaming = false;
                koc_log_warn(LOG, "cannot watch path=%s: %s", r->path, strerror(-k));
                schedule(r, NEXT_WATCH, next_backoff(r));
                return;
        }
        r->fresh_connection = false;
        r->stats.watches++;
        if (stream)
                r->stats.streams++;
}

static void start_watch(koc_reflector *r) {
        start_watch_spec(r, false);
}

/* A streaming list from the most recent state ("" and NotOlderThan: a
 * consistent read, as client-go after a re-list). */
static void start_stream(koc_reflector *r) {
        start_watch_spec(r, true);
}

void koc__reflector_restart_watch(koc_reflector *r) {
        r->fresh_connection = true;
        if (!r->watch)
                return;
        /* Over HTTP/1.1 libcurl closes the connection of a transfer removed
         * before its end, so the suspected connection goes with it. */
        koc_watch_stop(r->watch);
        r->watch = NULL;
        r->stats.restarts++;
        if (r->streaming) {
                /* A streaming list cut short starts over. */
                r->streaming = false;
                schedule(r, NEXT_LIST, 0);
                return;
        }
        schedule(r, NEXT_WATCH, 0);
}

int koc__reflector_start(koc_reflector *r) {
        if (r->req || r->watch || r->timer)
                return -EALREADY;
        if (r->watch_only)
                schedule(r, NEXT_WATCH, 0);
        else
                schedule(r, NEXT_LIST, 0);
        return 0;
}
