/* SPDX-License-Identifier: Apache-2.0 */
#include "reflector.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "koc/log.h"
#include "koc/time.h"
#include "ratelimit.h"
#include "reflector-fsm.h"
#include "util.h"

#define LOG "reflector"

/* The driver of the state machine (reflector-fsm.c): requests, the watch,
 * the timer and the owner's handlers, nothing decided here. */
struct koc_reflector {
        koc_client *client;
        sd_event *event;
        char *path;
        char *label_selector;
        char *field_selector;
        /* The list requests' query (core/query.c, the one encoder): limit
         * and the selectors, and each page's continue token. */
        koc_query *list_query;
        char *list_accept;
        char *watch_accept;
        koc_reflector_handlers h;
        void *userdata;

        koc__reflector_fsm fsm;

        koc_request *req;
        koc_watch *watch;
        sd_event_source *timer;
        /* A list page whose items are still to be delivered, and the idle
         * source that delivers them. */
        cJSON *pending_page;
        sd_event_source *page_source;
        /* Filled into items that lack them, from the list's. */
        char *item_kind;
        char *item_api_version;
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
                [KOC_REFLECTOR_REJECT_GONE] = "gone",
        };
        return (unsigned)r < _KOC_REFLECTOR_REJECT_MAX ? names[r] : "unknown";
}


static const char *str_field(const cJSON *o, const char *name) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
        return cJSON_IsString(v) ? v->valuestring : NULL;
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
        /* A server that rejects every answer says so a few times a minute,
         * not at every retry. */
        r->warn_limit = (koc__ratelimit)KOC__RATELIMIT_INIT(60 * KOC_USEC_PER_SEC, 5);
        int k = koc__reflector_fsm_init(
                &r->fsm, &(koc__reflector_fsm_config){
                                 .watch_only = spec->watch_only,
                                 .list_mode = spec->list_mode,
                                 .page_size = spec->page_size,
                                 .backoff_initial_usec = spec->backoff_initial_usec,
                                 .backoff_max_usec = spec->backoff_max_usec,
                                 .clean_close_max_usec = spec->clean_close_max_usec,
                                 .stream_silence_usec = spec->stream_silence_usec,
                                 .max_list_objects = spec->max_list_objects,
                                 .resource_version = spec->resource_version,
                                 .random = koc__random_u64,
                         });
        if (k >= 0)
                k = koc_query_new(&r->list_query);
        if (k >= 0)
                k = koc_query_set_limit(r->list_query, r->fsm.page_size);
        if (k >= 0)
                k = koc__set_string(&r->path, spec->path);
        if (k >= 0)
                k = koc__set_string(&r->list_accept, spec->list_accept);
        if (k >= 0)
                k = koc__set_string(&r->watch_accept, spec->watch_accept);
        if (k >= 0 && spec->label_selector && *spec->label_selector)
                k = koc__set_string(&r->label_selector, spec->label_selector);
        if (k >= 0 && spec->field_selector && *spec->field_selector)
                k = koc__set_string(&r->field_selector, spec->field_selector);
        if (k >= 0)
                k = koc_query_set_label_selector(r->list_query, r->label_selector);
        if (k >= 0)
                k = koc_query_set_field_selector(r->list_query, r->field_selector);
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
        koc__reflector_fsm_done(&r->fsm);
        koc_query_free(r->list_query);
        free(r->path);
        free(r->label_selector);
        free(r->field_selector);
        free(r->item_kind);
        free(r->item_api_version);
        free(r->list_accept);
        free(r->watch_accept);
        free(r);
        return NULL;
}

void koc__reflector_get_stats(koc_reflector *r, koc_reflector_stats *ret) {
        *ret = r->fsm.stats;
}

bool koc__reflector_is_streaming(koc_reflector *r) {
        return r && r->fsm.state == KOC__REFLECTOR_STREAMING;
}

const char *koc__reflector_get_resource_version(koc_reflector *r) {
        return r->fsm.rv;
}

/* --- the driver ------------------------------------------------------------------ */

/* The context of a step: the page or watch event that caused it, for the
 * actions that hand its objects on. */
typedef struct step_context {
        koc_response *resp;
        cJSON *object;
        const koc__reflector_event *ev;
} step_context;

static void run(koc_reflector *r, const koc__reflector_event *ev);
static void run_with(koc_reflector *r, const koc__reflector_event *ev, const step_context *ctx);
static void on_list(koc_client *c, koc_response *resp, void *userdata);
static void on_watch(koc_watch *w, koc_watch_event *ev, void *userdata);

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        koc_reflector *r = userdata;
        r->timer = sd_event_source_disable_unref(r->timer);
        run(r, &(koc__reflector_event){.type = KOC__REFLECTOR_EV_TIMER});
        return 0;
}

static void fill_kind(koc_reflector *r, cJSON *item) {
        if (r->item_kind && !cJSON_GetObjectItemCaseSensitive(item, "kind"))
                cJSON_AddStringToObject(item, "kind", r->item_kind);
        if (r->item_api_version && !cJSON_GetObjectItemCaseSensitive(item, "apiVersion"))
                cJSON_AddStringToObject(item, "apiVersion", r->item_api_version);
}

/* One object of a list to the owner (DELIVER_ITEM). */
static void deliver_item(koc_reflector *r, cJSON *item) {
        if (!r->h.list_item)
                return;
        fill_kind(r, item);
        int k = r->h.list_item(item, r->userdata);
        if (k < 0)
                run(r, &(koc__reflector_event){.type = KOC__REFLECTOR_EV_ITEM_REFUSED,
                                               .error = k});
}

/* A page's items, one by one, while the list lasts. */
static void deliver_items(koc_reflector *r, cJSON *page) {
        cJSON *items = cJSON_GetObjectItemCaseSensitive(page, "items"), *item;
        cJSON_ArrayForEach(item, items) {
                if (r->fsm.state != KOC__REFLECTOR_LISTING)
                        return;
                if (!cJSON_IsObject(item))
                        continue;
                /* DELIVER_ITEM, or the list abandoned (a cap). */
                run_with(r, &(koc__reflector_event){.type = KOC__REFLECTOR_EV_ITEM},
                         &(step_context){.object = item});
        }
        if (r->fsm.state == KOC__REFLECTOR_LISTING)
                run(r, &(koc__reflector_event){.type = KOC__REFLECTOR_EV_PAGE_DELIVERED});
}

/* Delivers the items of the page before the one now in flight, if any are
 * still pending: pages are always delivered in order. */
static void flush_pending_page(koc_reflector *r) {
        cJSON *page = r->pending_page;
        if (!page)
                return;
        r->pending_page = NULL;
        if (r->page_source)
                (void)sd_event_source_set_enabled(r->page_source, SD_EVENT_OFF);
        deliver_items(r, page);
        cJSON_Delete(page);
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

static void drop_page(koc_reflector *r) {
        cJSON_Delete(r->pending_page);
        r->pending_page = NULL;
        if (r->page_source)
                (void)sd_event_source_set_enabled(r->page_source, SD_EVENT_OFF);
}

static void request_page(koc_reflector *r, const char *continue_token) {
        const char *query = NULL;
        int k = koc_query_set_continue(r->list_query, continue_token);
        if (k >= 0) {
                query = koc_query_string(r->list_query);
                k = query ? 0 : -ENOMEM;
        }
        if (k >= 0)
                k = koc_client_request(r->client,
                                       &(koc_request_spec){.method = "GET",
                                                           .path = r->path,
                                                           .query = query,
                                                           .accept = r->list_accept},
                                       on_list, r, &r->req);
        if (k < 0) {
                r->req = NULL;
                run(r, &(koc__reflector_event){.type = KOC__REFLECTOR_EV_REQUEST_FAILED,
                                               .error = k});
        }
}

static void start_watch(koc_reflector *r, const koc__reflector_action *a) {
        koc_watch_spec spec = {
                .path = r->path,
                .label_selector = r->label_selector,
                .field_selector = r->field_selector,
                .resource_version = a->resource_version,
                .allow_bookmarks = true,
                .timeout_seconds = a->timeout_seconds,
                .send_initial_events = a->stream,
                .accept = r->watch_accept,
                .fresh_connection = a->fresh,
        };
        int k = koc_client_watch(r->client, &spec, on_watch, r, NULL, &r->watch);
        if (k < 0) {
                r->watch = NULL;
                run(r, &(koc__reflector_event){.type = KOC__REFLECTOR_EV_REQUEST_FAILED,
                                               .error = k});
                return;
        }
        run(r, &(koc__reflector_event){.type = KOC__REFLECTOR_EV_WATCH_STARTED});
}

/* One warn line (rate-limited) for a rejected answer: the request, the
 * reason, what was wrong, and what happens next; then the owner hears. */
static void say_rejected(koc_reflector *r, const koc__reflector_action *a) {
        char d[64];
        koc__log_ratelimited(&r->warn_limit, KOC_LOG_WARN, LOG,
                             "answer rejected: GET %s (%s) reason=%s status=%ld: %s; retrying in %s",
                             r->path, a->what, koc__reflector_reject_to_string(a->reason),
                             a->status, a->detail && *a->detail ? a->detail : "-",
                             koc_format_duration(a->delay, d, sizeof d));
        if (r->h.rejected)
                r->h.rejected(a->reason, r->userdata);
}

static void say(const koc_reflector *r, const koc__reflector_action *a) {
        char st[32] = "";
        if (a->status)
                snprintf(st, sizeof st, " status=%ld", a->status);
        koc_log(a->level, LOG, "%s path=%s%s%s%s", a->what, r->path, st,
                a->detail ? ": " : "", a->detail ? a->detail : "");
}

/* Runs the actions of the step just taken.  false: the reflector may be
 * gone (EMIT_EVENT, ASK_OWNER answered false): touch nothing. */
static bool run_actions(koc_reflector *r, const step_context *ctx) {
        koc__reflector_action actions[KOC__REFLECTOR_FSM_MAX_ACTIONS];
        size_t n = r->fsm.n_actions;
        memcpy(actions, r->fsm.actions, n * sizeof actions[0]);
        for (size_t i = 0; i < n; i++) {
                const koc__reflector_action *a = &actions[i];
                switch (a->type) {
                case KOC__REFLECTOR_ACT_TIMER: {
                        r->timer = sd_event_source_disable_unref(r->timer);
                        int k = sd_event_add_time_relative(r->event, &r->timer, CLOCK_BOOTTIME,
                                                           a->delay, 0, on_timer, r);
                        if (k < 0)
                                koc_log_error(LOG, "cannot arm the retry timer path=%s: %s",
                                              r->path, strerror(-k));
                        break;
                }
                case KOC__REFLECTOR_ACT_REQUEST_PAGE:
                        request_page(r, a->continue_token);
                        break;
                case KOC__REFLECTOR_ACT_CANCEL_REQUEST:
                        koc_request_cancel(r->req);
                        r->req = NULL;
                        break;
                case KOC__REFLECTOR_ACT_WATCH_START:
                        start_watch(r, a);
                        break;
                case KOC__REFLECTOR_ACT_WATCH_STOP:
                        koc_watch_stop(r->watch);
                        r->watch = NULL;
                        break;
                case KOC__REFLECTOR_ACT_DELIVER_PAGE:
                        /* Not when sending the next page failed. */
                        if (r->fsm.state != KOC__REFLECTOR_LISTING || !ctx || !ctx->resp)
                                break;
                        if (a->defer && defer_page(r, ctx->resp))
                                break;
                        deliver_items(r, ctx->resp->body);
                        break;
                case KOC__REFLECTOR_ACT_DROP_PAGE:
                        drop_page(r);
                        break;
                case KOC__REFLECTOR_ACT_DELIVER_ITEM:
                        if (ctx && ctx->object)
                                deliver_item(r, ctx->object);
                        break;
                case KOC__REFLECTOR_ACT_LIST_BEGIN:
                        if (r->h.list_begin)
                                r->h.list_begin(r->userdata);
                        break;
                case KOC__REFLECTOR_ACT_LIST_END:
                        if (r->h.list_end)
                                r->h.list_end(a->resource_version, r->userdata);
                        break;
                case KOC__REFLECTOR_ACT_LIST_ABORT:
                        if (r->h.list_abort)
                                r->h.list_abort(r->userdata);
                        break;
                case KOC__REFLECTOR_ACT_EMIT_EVENT:
                        /* The last action: the handler may free the reflector. */
                        if (!r->h.event || !ctx || !ctx->object)
                                break;
                        fill_kind(r, ctx->object);
                        r->h.event(a->watch_type, ctx->object, r->userdata);
                        return false;
                case KOC__REFLECTOR_ACT_ASK_OWNER: {
                        /* The last action: the owner may stop (and free) the
                         * reflector; otherwise the watch goes on. */
                        if (r->h.watch_ended && !r->h.watch_ended(a->status, a->error, r->userdata))
                                return false;
                        if (!ctx || !ctx->ev)
                                break;
                        koc__reflector_event resume = *ctx->ev;
                        resume.type = KOC__REFLECTOR_EV_RESUME;
                        run(r, &resume);
                        break;
                }
                case KOC__REFLECTOR_ACT_REJECT:
                        say_rejected(r, a);
                        break;
                case KOC__REFLECTOR_ACT_LOG:
                        say(r, a);
                        break;
                }
        }
        return true;
}

static void run_with(koc_reflector *r, const koc__reflector_event *ev, const step_context *ctx) {
        if (ev)
                koc__reflector_fsm_step(&r->fsm, ev, koc_now_boottime_usec());
        (void)run_actions(r, ctx);
}

/* Steps ev (NULL: runs the actions of the step already taken). */
static void run(koc_reflector *r, const koc__reflector_event *ev) {
        run_with(r, ev, &(step_context){.ev = ev});
}

static void on_list(koc_client *c, koc_response *resp, void *userdata) {
        koc_reflector *r = userdata;
        r->req = NULL;

        flush_pending_page(r);
        if (r->fsm.state != KOC__REFLECTOR_LISTING)
                return; /* the pending page abandoned the list */

        bool ok = resp->error >= 0 && resp->status == 200 && cJSON_IsObject(resp->body);
        const cJSON *md = ok ? cJSON_GetObjectItemCaseSensitive(resp->body, "metadata") : NULL;
        if (ok) {
                const char *kind = str_field(resp->body, "kind");
                size_t klen = kind ? strlen(kind) : 0;
                if (klen > 4 && strcmp(kind + klen - 4, "List") == 0) {
                        char *k = strndup(kind, klen - 4);
                        if (k) {
                                free(r->item_kind);
                                r->item_kind = k;
                        }
                }
                (void)koc__set_string(&r->item_api_version, str_field(resp->body, "apiVersion"));
        }
        koc__reflector_event ev = {
                .type = KOC__REFLECTOR_EV_PAGE,
                .error = resp->error,
                .status = resp->status,
                .is_object = cJSON_IsObject(resp->body),
                .continue_token = str_field(md, "continue"),
                .resource_version = str_field(md, "resourceVersion"),
                .message = resp->message,
        };
        run_with(r, &ev, &(step_context){.resp = resp, .ev = &ev});
}

static bool is_initial_events_end(const cJSON *obj) {
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
        const cJSON *ann = cJSON_GetObjectItemCaseSensitive(md, "annotations");
        const char *v = str_field(ann, "k8s.io/initial-events-end");
        return v && strcmp(v, "true") == 0;
}

static void on_watch(koc_watch *w, koc_watch_event *wev, void *userdata) {
        koc_reflector *r = userdata;
        koc__reflector_event ev = {.status = wev->status,
                                   .error = wev->error,
                                   .message = wev->message};
        switch (wev->type) {
        case KOC_WATCH_ADDED:
        case KOC_WATCH_MODIFIED:
        case KOC_WATCH_DELETED:
        case KOC_WATCH_BOOKMARK:
                ev.type = KOC__REFLECTOR_EV_WATCH_OBJECT;
                ev.watch_type = wev->type;
                ev.is_object = cJSON_IsObject(wev->object);
                ev.resource_version =
                        str_field(cJSON_GetObjectItemCaseSensitive(wev->object, "metadata"),
                                  "resourceVersion");
                ev.initial_events_end =
                        wev->type == KOC_WATCH_BOOKMARK && is_initial_events_end(wev->object);
                break;
        case KOC_WATCH_ERROR:
                koc_watch_stop(w);
                r->watch = NULL;
                ev.type = KOC__REFLECTOR_EV_WATCH_END;
                ev.error_event = true;
                ev.error = 0; /* the server answered: its status says what */
                break;
        case KOC_WATCH_CLOSED:
                r->watch = NULL;
                ev.type = KOC__REFLECTOR_EV_WATCH_END;
                break;
        default:
                return;
        }
        run_with(r, &ev, &(step_context){.object = wev->object, .ev = &ev});
}

void koc__reflector_restart_watch(koc_reflector *r) {
        run(r, &(koc__reflector_event){.type = KOC__REFLECTOR_EV_RESTART});
}

int koc__reflector_start(koc_reflector *r) {
        if (r->fsm.state != KOC__REFLECTOR_IDLE)
                return -EALREADY;
        run(r, &(koc__reflector_event){.type = KOC__REFLECTOR_EV_START});
        return 0;
}
