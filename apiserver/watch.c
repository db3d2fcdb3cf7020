/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Watches: newline-delimited JSON events over a chunked response.
 *
 * Every change becomes an event in a bounded history ring, so a client can
 * resume from a resourceVersion that is still in the window (older ones get
 * an ERROR event with a 410 Expired Status, as from the real server).  Each
 * watch has an output buffer; the MHD content reader drains it and suspends
 * the connection when it is empty, and a new event resumes it.  A watcher
 * that falls more than watch_buffer_max bytes behind is closed, like the
 * real server closes slow watchers; it re-watches from its last
 * resourceVersion.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver.h"

struct watch {
        server *srv;
        collection *col;
        watch *col_prev, *col_next;
        watch *all_prev, *all_next;
        char *ns;
        selector *labels, *fields;
        struct MHD_Connection *conn;
        bool suspended, ending, bookmarks, overflowed, gone;
        bool metadata; /* Accept: as=PartialObjectMetadata */
        bool table;    /* Accept: as=Table: each object a one-row Table */
        char *version, *include; /* for the Tables: the path's version, includeObject */
        strbuf out;
        size_t out_pos;
        /* Where the initial events (sendInitialEvents, or a watch without a
         * resourceVersion) end in out: they are the collection, as a list's
         * answer is, and do not count against watch_buffer_max; what comes
         * after them does. */
        size_t initial_end;
        bool initial;
        uint64_t last_rv;
        sd_event_source *timeout;
        char *api_version;
};

static void event_free(event *ev) {
        if (!ev)
                return;
        cJSON_Delete(ev->obj);
        cJSON_Delete(ev->old_labels);
        free(ev->json);
        free(ev);
}

static const char *event_json(event *ev) {
        if (!ev->json)
                ev->json = cJSON_PrintUnformatted(ev->obj);
        return ev->json;
}

static void history_drop_oldest(server *srv) {
        event *old = srv->history[srv->history_start];
        srv->history_floor = old->rv;
        srv->history_bytes -= old->size;
        event_free(old);
        srv->history[srv->history_start] = NULL;
        srv->history_start = (srv->history_start + 1) % srv->history_max;
        srv->history_len--;
}

/* The window holds at most history_max events and, so that large objects
 * cannot exhaust memory, about HISTORY_MAX_BYTES of them. */
static void history_push(server *srv, event *ev) {
        while (srv->history_len > 0 && (srv->history_len == srv->history_max ||
                                        srv->history_bytes + ev->size > HISTORY_MAX_BYTES))
                history_drop_oldest(srv);
        srv->history[(srv->history_start + srv->history_len) % srv->history_max] = ev;
        srv->history_len++;
        srv->history_bytes += ev->size;
}

static void event_key(const event *ev, char *buf, size_t size) {
        const char *ns = ev->col->namespaced ? json_str(ev->obj, "metadata.namespace") : NULL;
        snprintf(buf, size, "%s/%s", ns ? ns : "", json_str(ev->obj, "metadata.name") ?: "");
}

/* The state at rv is the current one, except for the keys changed after rv:
 * for those it is the last event at or before rv (absent if that was a
 * deletion, or if the first change after rv created the key).  A key whose
 * first change after rv is a modification and that has no event at or before
 * rv changed last before the window: its state at rv is gone. */
int history_snapshot(server *srv, collection *c, uint64_t rv, snapshot_item **ret, size_t *ret_n) {
        strmap at = {0}, after = {0};
        snapshot_item *items = NULL;
        size_t n = 0, cap = c->objects.n + 1;
        char key[600];
        int r = 0;

        if (rv < srv->history_floor)
                return -ESTALE;
        for (size_t i = 0; i < srv->history_len && r == 0; i++) {
                event *ev = srv->history[(srv->history_start + i) % srv->history_max];
                if (ev->col != c)
                        continue;
                event_key(ev, key, sizeof key);
                if (ev->rv <= rv) {
                        strmap_remove(&at, key);
                        r = strmap_put(&at, key, ev);
                } else if (!strmap_get(&after, key)) {
                        r = strmap_put(&after, key, ev);
                        cap++;
                }
        }
        if (r == 0 && !(items = malloc(cap * sizeof *items)))
                r = -ENOMEM;
        size_t b = 0;
        for (strmap_entry *e = r == 0 ? strmap_next(&c->objects, &b, NULL) : NULL; e;
             e = strmap_next(&c->objects, &b, e))
                if (!strmap_get(&after, e->key))
                        items[n++] = (snapshot_item){((object *)e->value)->key,
                                                     ((object *)e->value)->json, false};
        b = 0;
        for (strmap_entry *e = r == 0 ? strmap_next(&after, &b, NULL) : NULL; e && r == 0;
             e = strmap_next(&after, &b, e)) {
                event *first = e->value, *last = strmap_get(&at, e->key);
                if (last && last->type != 'D') {
                        /* The map's keys die with it: the item owns a copy. */
                        char *k = strdup(e->key);
                        if (!k)
                                r = -ENOMEM;
                        else
                                items[n++] = (snapshot_item){k, last->obj, true};
                } else if (!last && first->type != 'A')
                        r = -ESTALE;
        }
        if (r < 0) {
                snapshot_free(items, n);
                items = NULL;
                n = 0;
        }
        strmap_clear(&at, NULL);
        strmap_clear(&after, NULL);
        *ret = items;
        *ret_n = n;
        return r;
}

void snapshot_free(snapshot_item *items, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (items[i].owned)
                        free((char *)items[i].key);
        free(items);
}

void history_free(server *srv) {
        for (size_t i = 0; i < srv->history_len; i++)
                event_free(srv->history[(srv->history_start + i) % srv->history_max]);
        free(srv->history);
        srv->history = NULL;
        srv->history_len = 0;
}

static void wake(watch *w) {
        if (w->suspended) {
                w->suspended = false;
                MHD_resume_connection(w->conn);
                koc__mhd_loop_kick(w->srv->mhd);
        }
}

static void watch_end(watch *w) {
        w->ending = true;
        wake(w);
}

static void append_line(watch *w, const char *type, const char *obj_json) {
        if (w->ending)
                return;
        size_t initial_left = w->initial_end > w->out_pos ? w->initial_end - w->out_pos : 0;
        if (!w->initial && w->out.len - w->out_pos - initial_left > w->srv->watch_buffer_max) {
                koc_log_warn(COMPONENT, "closing a watch on %s that fell behind", w->col->resource);
                w->overflowed = true;
                watch_end(w);
                return;
        }
        /* Drop what was sent already once it is most of the buffer, so a
         * reader that never quite catches up does not grow it forever. */
        if (w->out_pos > 0 && (w->out_pos == w->out.len ||
                               (w->out_pos >= 64 * 1024 && w->out_pos * 2 >= w->out.len))) {
                memmove(w->out.data, w->out.data + w->out_pos, w->out.len - w->out_pos);
                w->out.len -= w->out_pos;
                w->out.data[w->out.len] = 0;
                w->initial_end = initial_left;
                w->out_pos = 0;
        }
        if (strbuf_printf(&w->out, "{\"type\":\"%s\",\"object\":", type) < 0 ||
            strbuf_appends(&w->out, obj_json) < 0 || strbuf_append(&w->out, "}\n", 2) < 0) {
                watch_end(w);
                return;
        }
        wake(w);
}

static bool watch_matches(const watch *w, const cJSON *obj, const cJSON *labels) {
        if (w->ns) {
                const char *ns = json_str(obj, "metadata.namespace");
                if (!ns || strcmp(ns, w->ns) != 0)
                        return false;
        }
        return selector_match_fields(w->fields, obj) && selector_match_labels(w->labels, labels);
}

/* Sends ev to w, turning MODIFIED into ADDED or DELETED when the object
 * moved into or out of the watch's label selector. */
/* An object as a one-row Table (kubectl get -w), with its resourceVersion. */
static char *table_json(watch *w, const cJSON *obj) {
        const cJSON *one = obj;
        cJSON *t = table_build(w->srv, w->col, w->version ? w->version : w->col->version, &one, 1,
                               w->include);
        if (!t)
                return NULL;
        const char *rv = json_str(obj, "metadata.resourceVersion");
        if (rv)
                json_set_str(json_ensure_object(t, "metadata"), "resourceVersion", rv);
        char *json = cJSON_PrintUnformatted(t);
        cJSON_Delete(t);
        return json;
}

static void deliver(watch *w, event *ev) {
        const cJSON *labels = json_path(ev->obj, "metadata.labels");
        bool now = watch_matches(w, ev->obj, labels);
        const char *type = NULL;

        if (ev->rv <= w->last_rv)
                return;
        switch (ev->type) {
        case 'A':
                type = now ? "ADDED" : NULL;
                break;
        case 'D':
                type = now ? "DELETED" : NULL;
                break;
        case 'M': {
                bool before = watch_matches(w, ev->obj, ev->old_labels);
                type = now && before ? "MODIFIED" : now ? "ADDED" : before ? "DELETED" : NULL;
                break;
        }
        }
        w->last_rv = ev->rv;
        if (type && w->table) {
                char *json = table_json(w, ev->obj);
                if (json)
                        append_line(w, type, json);
                free(json);
        } else if (type && w->metadata) {
                cJSON *m = partial_metadata(ev->obj);
                char *json = m ? cJSON_PrintUnformatted(m) : NULL;
                if (json)
                        append_line(w, type, json);
                free(json);
                cJSON_Delete(m);
        } else if (type) {
                const char *json = event_json(ev);
                if (json)
                        append_line(w, type, json);
        }
}

void watch_emit(server *srv, collection *col, char type, const cJSON *obj,
                const cJSON *old_labels) {
        /* Every change to an object comes here, right after it took its
         * resourceVersion. */
        col->changed_rv = srv->rv;
        event *ev = calloc(1, sizeof *ev);
        if (!ev)
                return;
        ev->rv = srv->rv;
        ev->type = type;
        ev->col = col;
        ev->obj = cJSON_Duplicate(obj, true);
        ev->old_labels = old_labels ? cJSON_Duplicate(old_labels, true) : NULL;
        if (!ev->obj || !event_json(ev)) {
                event_free(ev);
                return;
        }
        /* The parsed copy takes a few times the text's size. */
        ev->size = 4 * strlen(ev->json) + sizeof *ev;
        history_push(srv, ev);
        for (watch *w = col->watches; w; w = w->col_next)
                deliver(w, ev);
}

static void send_bookmark(watch *w, bool initial_end) {
        char buf[512];
        snprintf(buf, sizeof buf,
                 "{\"kind\":\"%s\",\"apiVersion\":\"%s\",\"metadata\":{\"resourceVersion\":"
                 "\"%" PRIu64 "\"%s}}",
                 w->metadata ? "PartialObjectMetadata" : w->col->kind,
                 w->metadata ? "meta.k8s.io/v1" : w->api_version, w->srv->rv,
                 initial_end ? ",\"annotations\":{\"k8s.io/initial-events-end\":\"true\"}" : "");
        append_line(w, "BOOKMARK", buf);
}

static int on_bookmark_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        server *srv = userdata;
        for (watch *w = srv->all_watches; w; w = w->all_next)
                if (w->bookmarks && !w->ending)
                        send_bookmark(w, false);
        (void)sd_event_source_set_time_relative(s, srv->bookmark_interval_usec);
        return 0;
}

/* MHD does not notice that the client of a suspended connection went
 * away; look at the sockets of idle watches now and then and close those
 * whose peer hung up. */
static bool peer_gone(watch *w) {
        const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(w->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct pollfd p;

        if (!ci)
                return false;
        p = (struct pollfd){.fd = ci->connect_fd, .events = POLLRDHUP};
        return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static int on_sweep_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        server *srv = userdata;
        for (watch *w = srv->all_watches; w; w = w->all_next)
                if (w->suspended && !w->ending && peer_gone(w)) {
                        w->gone = true;
                        watch_end(w);
                }
        (void)sd_event_source_set_time_relative(s, 10 * KOC_USEC_PER_SEC);
        return 0;
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        watch_end(userdata);
        return 0;
}

static ssize_t watch_read(void *cls, uint64_t pos, char *buf, size_t max) {
        watch *w = cls;
        size_t avail = w->out.len - w->out_pos;

        if (w->gone)
                return MHD_CONTENT_READER_END_WITH_ERROR;
        if (avail > 0) {
                size_t n = avail < max ? avail : max;
                memcpy(buf, w->out.data + w->out_pos, n);
                w->out_pos += n;
                if (w->out_pos == w->out.len) {
                        w->out_pos = 0;
                        w->out.len = 0;
                        w->initial_end = 0;
                        if (w->out.cap > 256 * 1024)
                                strbuf_free(&w->out);
                }
                return (ssize_t)n;
        }
        if (w->ending)
                return MHD_CONTENT_READER_END_OF_STREAM;
        /* Nothing to send: park the connection until the next event. */
        w->suspended = true;
        MHD_suspend_connection(w->conn);
        return 0;
}

static void watch_free(void *cls) {
        watch *w = cls;
        server *srv = w->srv;

        if (w->col_prev)
                w->col_prev->col_next = w->col_next;
        else
                w->col->watches = w->col_next;
        if (w->col_next)
                w->col_next->col_prev = w->col_prev;
        if (w->all_prev)
                w->all_prev->all_next = w->all_next;
        else
                srv->all_watches = w->all_next;
        if (w->all_next)
                w->all_next->all_prev = w->all_prev;
        srv->n_watches--;
        sd_event_source_disable_unref(w->timeout);
        selector_free(w->labels);
        selector_free(w->fields);
        strbuf_free(&w->out);
        free(w->ns);
        free(w->api_version);
        free(w->version);
        free(w->include);
        free(w);
}

static const char *qarg(struct MHD_Connection *conn, const char *name) {
        return MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
}

static bool qbool(struct MHD_Connection *conn, const char *name) {
        const char *v = qarg(conn, name);
        return v && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

static int cmp_key(const void *a, const void *b) {
        return strcmp((*(object *const *)a)->key, (*(object *const *)b)->key);
}

static void send_initial(watch *w) {
        collection *c = w->col;
        object **items = malloc((c->objects.n + 1) * sizeof *items);
        size_t n = 0, b = 0;

        if (!items)
                return;
        for (strmap_entry *e = strmap_next(&c->objects, &b, NULL); e;
             e = strmap_next(&c->objects, &b, e)) {
                object *o = e->value;
                if (watch_matches(w, o->json, json_path(o->json, "metadata.labels")))
                        items[n++] = o;
        }
        qsort(items, n, sizeof *items, cmp_key);
        w->initial = true;
        for (size_t i = 0; i < n; i++) {
                cJSON *m = w->metadata ? partial_metadata(items[i]->json) : NULL;
                char *json = w->table ? table_json(w, items[i]->json)
                                      : cJSON_PrintUnformatted(m ? m : items[i]->json);
                cJSON_Delete(m);
                if (json)
                        append_line(w, "ADDED", json);
                free(json);
        }
        w->initial = false;
        w->initial_end = w->out.len;
        free(items);
}

/* kube-apiserver's watch options validation (ValidateListOptions): 422
 * Invalid on ListOptions.meta.k8s.io with one cause per error. */
static bool check_watch_list_options(server *srv, struct MHD_Connection *conn, reply *ret) {
        const char *sie = qarg(conn, "sendInitialEvents"),
                   *match = qarg(conn, "resourceVersionMatch");
        const char *fields[4], *details[4];
        char unsupported[300];
        size_t n = 0;
        if (match && !*match)
                match = NULL;
        if (sie) {
                if (!match || strcmp(match, "NotOlderThan") != 0) {
                        fields[n] = "resourceVersionMatch";
                        details[n++] = "Forbidden: sendInitialEvents requires setting "
                                       "resourceVersionMatch to NotOlderThan";
                }
                if (srv->watch_list_disabled) {
                        fields[n] = "sendInitialEvents";
                        details[n++] = "Forbidden: sendInitialEvents is forbidden for watch unless "
                                       "the WatchList feature gate is enabled";
                }
        }
        if (match) {
                if (!sie) {
                        fields[n] = "resourceVersionMatch";
                        details[n++] = "Forbidden: resourceVersionMatch is forbidden for watch "
                                       "unless sendInitialEvents is provided";
                }
                if (strcmp(match, "NotOlderThan") != 0) {
                        fields[n] = "resourceVersionMatch";
                        snprintf(
                                unsupported, sizeof unsupported,
                                "Unsupported value: \"%.200s\": supported values: \"NotOlderThan\"",
                                match);
                        details[n++] = unsupported;
                }
        }
        if (n == 0)
                return true;
        strbuf msg = {0};
        cJSON *d = cJSON_CreateObject(), *causes;
        cJSON_AddStringToObject(d, "group", "meta.k8s.io");
        cJSON_AddStringToObject(d, "kind", "ListOptions");
        causes = cJSON_AddArrayToObject(d, "causes");
        strbuf_appends(&msg, "ListOptions.meta.k8s.io \"\" is invalid: ");
        if (n > 1)
                strbuf_appends(&msg, "[");
        for (size_t i = 0; i < n; i++) {
                cJSON *cause = cJSON_CreateObject();
                cJSON_AddStringToObject(cause, "reason",
                                        strncmp(details[i], "Forbidden", 9) == 0
                                                ? "FieldValueForbidden"
                                                : "FieldValueNotSupported");
                cJSON_AddStringToObject(cause, "message", details[i]);
                cJSON_AddStringToObject(cause, "field", fields[i]);
                cJSON_AddItemToArray(causes, cause);
                strbuf_printf(&msg, "%s%s: %s", i ? ", " : "", fields[i], details[i]);
        }
        if (n > 1)
                strbuf_appends(&msg, "]");
        reply_status(ret, 422, "Invalid", msg.data, d);
        strbuf_free(&msg);
        return false;
}

struct MHD_Response *watch_start(server *srv, struct MHD_Connection *conn, const api_path *p,
                                 int64_t close_after_ms, bool drop, reply *ret) {
        const char *rv_s = qarg(conn, "resourceVersion"), *to_s = qarg(conn, "timeoutSeconds");
        char err[512], av[300];
        uint64_t from_rv = 0;
        bool resume = false;
        watch *w;

        if (!check_watch_list_options(srv, conn, ret))
                return NULL;
        /* A streaming list (sendInitialEvents=true): the current state,
         * which is never older than the resourceVersion asked for, then a
         * BOOKMARK marking its end when bookmarks are allowed. */
        const char *sie = qarg(conn, "sendInitialEvents");
        bool initial_events = qbool(conn, "sendInitialEvents");

        if (rv_s && *rv_s && strcmp(rv_s, "0") != 0) {
                char *end;
                from_rv = strtoull(rv_s, &end, 10);
                if (*end || rv_s[0] == '-') {
                        /* What the real server answers (its watch cache's
                         * parse error surfaces as an internal error). */
                        snprintf(err, sizeof err,
                                 "resourceVersion: Invalid value: \"%s\": strconv.ParseUint: "
                                 "parsing \"%s\": invalid syntax",
                                 rv_s, rv_s);
                        reply_status(ret, 500, NULL, err, NULL);
                        return NULL;
                }
                resume = !initial_events;
        }
        collection *c = collection_get(srv, p, true);
        if (!c) {
                reply_status(ret, 500, "InternalError", "out of memory", NULL);
                return NULL;
        }
        if (p->ns && !c->namespaced) {
                reply_status(ret, 404, "NotFound",
                             "the server could not find the requested resource", NULL);
                return NULL;
        }
        w = calloc(1, sizeof *w);
        if (!w) {
                reply_status(ret, 500, "InternalError", "out of memory", NULL);
                return NULL;
        }
        w->srv = srv;
        w->col = c;
        w->conn = conn;
        w->bookmarks = qbool(conn, "allowWatchBookmarks");
        accept_as as = accept_parse(conn);
        w->metadata = as == ACCEPT_METADATA || as == ACCEPT_METADATA_LIST;
        w->table = as == ACCEPT_TABLE;
        const char *include = qarg(conn, "includeObject");
        w->version = strdup(p->version);
        w->include = include ? strdup(include) : NULL;
        w->gone = drop;
        if (*p->group)
                snprintf(av, sizeof av, "%s/%s", p->group, p->version);
        else
                snprintf(av, sizeof av, "%s", p->version);
        w->api_version = strdup(av);
        if (p->ns && c->namespaced)
                w->ns = strdup(p->ns);
        char fs[600];
        const char *field_sel = qarg(conn, "fieldSelector");
        if (p->name) {
                /* The deprecated watch on a named object. */
                snprintf(fs, sizeof fs, "metadata.name=%s", p->name);
                field_sel = fs;
        }
        if (selector_parse_labels(qarg(conn, "labelSelector"), &w->labels, err, sizeof err) < 0 ||
            selector_parse_fields(field_sel, &w->fields, err, sizeof err) < 0) {
                reply_status(ret, 400, "BadRequest", err, NULL);
                goto fail;
        }
        const char *bad_field =
                selector_unsupported_field(w->fields, c->group, c->resource, field_label_supported);
        if (bad_field) {
                snprintf(err, sizeof err, "field label not supported: %s", bad_field);
                reply_status(ret, 400, "BadRequest", err, NULL);
                goto fail;
        }
        uint64_t timeout_ms = 0;
        if (to_s && *to_s) {
                char *end;
                long t = strtol(to_s, &end, 10);
                if (*end || t < 0) {
                        reply_status(ret, 400, "BadRequest", "invalid timeoutSeconds", NULL);
                        goto fail;
                }
                timeout_ms = (uint64_t)t * 1000;
        }
        if (close_after_ms >= 0 && (timeout_ms == 0 || (uint64_t)close_after_ms < timeout_ms))
                timeout_ms = close_after_ms == 0 ? 1 : (uint64_t)close_after_ms;
        if (timeout_ms > 0 &&
            sd_event_add_time_relative(srv->event, &w->timeout, CLOCK_BOOTTIME, timeout_ms * 1000,
                                       1000, on_timeout, w) < 0) {
                reply_status(ret, 500, "InternalError", "cannot arm the watch timeout", NULL);
                goto fail;
        }

        /* Link in before sending anything: watch_free unlinks. */
        w->col_next = c->watches;
        if (c->watches)
                c->watches->col_prev = w;
        c->watches = w;
        w->all_next = srv->all_watches;
        if (srv->all_watches)
                srv->all_watches->all_prev = w;
        srv->all_watches = w;
        srv->n_watches++;

        if (resume) {
                if (from_rv < srv->history_floor) {
                        snprintf(err, sizeof err,
                                 "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
                                 "\"status\":\"Failure\",\"message\":\"too old resource version: "
                                 "%" PRIu64 " (%" PRIu64 ")\",\"reason\":\"Expired\",\"code\":410}",
                                 from_rv, srv->history_floor + 1);
                        append_line(w, "ERROR", err);
                        w->ending = true;
                } else {
                        w->last_rv = from_rv;
                        for (size_t i = 0; i < srv->history_len; i++) {
                                event *ev =
                                        srv->history[(srv->history_start + i) % srv->history_max];
                                if (ev->col == c && ev->rv > from_rv)
                                        deliver(w, ev);
                        }
                }
        } else if (initial_events && from_rv > srv->rv) {
                /* What the real server answers once it gave up waiting. */
                snprintf(err, sizeof err,
                         "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
                         "\"status\":\"Failure\",\"message\":\"Timeout: Too large resource "
                         "version: %" PRIu64 ", current: %" PRIu64 "\",\"reason\":\"Timeout\","
                         "\"details\":{\"causes\":[{\"reason\":\"ResourceVersionTooLarge\","
                         "\"message\":\"Too large resource version\"}],\"retryAfterSeconds\":1},"
                         "\"code\":504}",
                         from_rv, srv->rv);
                append_line(w, "ERROR", err);
                w->ending = true;
        } else if (!sie || initial_events) {
                /* sendInitialEvents=false without a resourceVersion starts
                 * at the most recent one, with nothing before it. */
                send_initial(w);
                if (initial_events && w->bookmarks)
                        send_bookmark(w, true);
        }
        if (w->last_rv < srv->rv)
                w->last_rv = srv->rv;

        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024,
                                                                      watch_read, w, watch_free);
        if (!resp) {
                reply_status(ret, 500, "InternalError", "out of memory", NULL);
                watch_free(w);
                return NULL;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache, private");
        return resp;
fail:
        selector_free(w->labels);
        selector_free(w->fields);
        free(w->ns);
        free(w->api_version);
        free(w->version);
        free(w->include);
        free(w);
        return NULL;
}

void watch_stop_all(server *srv) {
        for (watch *w = srv->all_watches; w; w = w->all_next)
                watch_end(w);
}

int watch_init(server *srv) {
        int r;

        srv->history = calloc(srv->history_max, sizeof *srv->history);
        if (!srv->history)
                return -ENOMEM;
        r = sd_event_add_time_relative(srv->event, &srv->sweep_timer, CLOCK_BOOTTIME,
                                       10 * KOC_USEC_PER_SEC, KOC_USEC_PER_SEC, on_sweep_timer,
                                       srv);
        if (r < 0)
                return r;
        (void)sd_event_source_set_enabled(srv->sweep_timer, SD_EVENT_ON);
        if (srv->bookmark_interval_usec == 0)
                return 0;
        r = sd_event_add_time_relative(srv->event, &srv->bookmark_timer, CLOCK_BOOTTIME,
                                       srv->bookmark_interval_usec, 10000, on_bookmark_timer, srv);
        if (r < 0)
                return r;
        (void)sd_event_source_set_enabled(srv->bookmark_timer, SD_EVENT_ON);
        return 0;
}

void watch_done(server *srv) {
        srv->bookmark_timer = sd_event_source_disable_unref(srv->bookmark_timer);
        srv->sweep_timer = sd_event_source_disable_unref(srv->sweep_timer);
}
