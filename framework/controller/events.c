/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The reconcile's Event recorder: events.k8s.io/v1 Events with series, as
 * client-go's tools/events, sent through the fenced client (writer.c).
 *
 * - An Event names the object it is about (regarding), the controller
 *   (reportingController) and this replica (reportingInstance: controller
 *   name, "-", the manager's identity or the host name), what was done
 *   (action) and why (reason), with a note and a type.
 * - Repeats are a series.  Events with the same action, reason,
 *   reportingController and regarding object (kind, apiVersion, namespace,
 *   name, uid: client-go's isomorphic key without the object's
 *   resourceVersion, so that a series survives the object's own status
 *   writes) are one Event: the first is created, each repeat patches its
 *   series (count, lastObservedTime).  A series ends 6 minutes after its last
 *   repeat (client-go's finishTime): the next one starts a new Event.  A
 *   series whose Event is gone (the API server's event TTL, 1 h by default)
 *   is created again.  client-go accumulates the repeats after the second
 *   and sends them every 30 minutes from a goroutine; here each repeat is
 *   one PATCH at once, so the count on the server is always exact, and the
 *   spam filter below bounds how many there are.
 * - A spam filter per regarding object (client-go's tools/record: a token
 *   bucket of 25, refilled one every 5 minutes) drops what is beyond:
 *   -EBUSY, counted in koc_controller_events_dropped_total.
 * - When the server does not serve events.k8s.io/v1 (a create answered 404
 *   without a Status naming a missing namespace), the controller writes
 *   core/v1 Events from then on (count, firstTimestamp, lastTimestamp).
 * - A refused write is said at warn, once per answer's reason every 5
 *   minutes, and counted in koc_controller_events_rejected_total.
 * Memory is bounded: at most SERIES_MAX series and SPAM_MAX buckets, the
 * least recently used going first.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "controller-internal.h"
#include "core/ratelimit.h"
#include "core/util.h"
#include "koc/log.h"
#include "koc/time.h"

#define LOG "controller"

#define SERIES_MAX 1024
#define SPAM_MAX 4096
#define SERIES_FINISH_USEC (6 * 60 * KOC_USEC_PER_SEC)
#define SPAM_BURST 25.0
#define SPAM_REFILL_USEC (300 * KOC_USEC_PER_SEC)
#define LIMIT_ACTION 128
#define LIMIT_REASON 128
#define LIMIT_INSTANCE 128
#define LIMIT_NOTE 1024

typedef struct series {
        char *key;
        char name[320];
        char namespace_[256];
        bool core; /* written as a core/v1 Event */
        uint32_t count;
        uint64_t first_usec; /* realtime, for core's firstTimestamp */
        uint64_t last_seen;  /* boottime */
} series;

typedef struct bucket {
        char *key;
        double tokens;
        uint64_t refill_at;
        uint64_t last_used;
} bucket;

struct koc__events {
        pthread_mutex_t lock;
        atomic_bool core_only; /* the server does not serve events.k8s.io/v1 */
        series *series;
        size_t n_series;
        bucket *buckets;
        size_t n_buckets;
        char instance[LIMIT_INSTANCE + 1];
        koc_metric *recorded, *dropped, *rejected;
        uint64_t (*now)(void); /* boottime; tests may stub the clock */
};

int koc__events_new(koc_controller *c) {
        koc__events *ev = calloc(1, sizeof *ev);
        if (!ev)
                return -ENOMEM;
        pthread_mutex_init(&ev->lock, NULL);
        ev->now = koc_now_boottime_usec;
        const char *id = koc_manager_get_identity(c->m);
        char host[256] = "";
        if (!id || !*id) {
                if (gethostname(host, sizeof host - 1) < 0 || !*host)
                        snprintf(host, sizeof host, "unknown");
                id = host;
        }
        /* client-go: reportingController + "-" + hostname; the API allows
         * 128 characters. */
        char inst[600];
        snprintf(inst, sizeof inst, "%.250s-%.250s", c->name, id);
        snprintf(ev->instance, sizeof ev->instance, "%.*s", LIMIT_INSTANCE, inst);
        koc_metrics *m = koc_manager_get_metrics(c->m);
        char l[256];
        snprintf(l, sizeof l, "controller=\"%s\"", c->name);
        koc_metrics_add_counter(m, "koc_controller_events_recorded_total",
                                "Events written per controller (created, or a series patched).",
                                l, &ev->recorded);
        koc_metrics_add_counter(m, "koc_controller_events_dropped_total",
                                "Events dropped by the per-object spam filter.", l, &ev->dropped);
        koc_metrics_add_counter(m, "koc_controller_events_rejected_total",
                                "Event writes refused by the API server or not answered.", l,
                                &ev->rejected);
        c->events = ev;
        return 0;
}

void koc__events_free(koc__events *ev) {
        if (!ev)
                return;
        for (size_t i = 0; i < ev->n_series; i++)
                free(ev->series[i].key);
        for (size_t i = 0; i < ev->n_buckets; i++)
                free(ev->buckets[i].key);
        free(ev->series);
        free(ev->buckets);
        pthread_mutex_destroy(&ev->lock);
        free(ev);
}

void koc__events_set_clock(koc__events *ev, uint64_t (*now)(void)) {
        ev->now = now ? now : koc_now_boottime_usec;
}

static const char *meta_str(const cJSON *obj, const char *field) {
        return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(obj, "metadata"), field));
}

/* --- the spam filter ---------------------------------------------------------------- */

/* Under ev->lock.  True when the object may have one more Event now. */
static bool spam_allowed(koc__events *ev, const char *key, uint64_t now) {
        bucket *b = NULL;
        for (size_t i = 0; i < ev->n_buckets && !b; i++)
                if (strcmp(ev->buckets[i].key, key) == 0)
                        b = &ev->buckets[i];
        if (!b) {
                char *k = strdup(key);
                if (!k)
                        return true; /* better an Event too many than a crash */
                if (ev->n_buckets == SPAM_MAX) {
                        size_t old = 0;
                        for (size_t i = 1; i < ev->n_buckets; i++)
                                if (ev->buckets[i].last_used < ev->buckets[old].last_used)
                                        old = i;
                        free(ev->buckets[old].key);
                        b = &ev->buckets[old];
                } else {
                        bucket *v = realloc(ev->buckets, (ev->n_buckets + 1) * sizeof *v);
                        if (!v) {
                                free(k);
                                return true;
                        }
                        ev->buckets = v;
                        b = &ev->buckets[ev->n_buckets++];
                }
                *b = (bucket){.key = k, .tokens = SPAM_BURST, .refill_at = now};
        }
        if (now > b->refill_at) {
                b->tokens += (double)(now - b->refill_at) / SPAM_REFILL_USEC;
                if (b->tokens > SPAM_BURST)
                        b->tokens = SPAM_BURST;
        }
        b->refill_at = now;
        b->last_used = now;
        if (b->tokens < 1.0)
                return false;
        b->tokens -= 1.0;
        return true;
}

/* --- series ------------------------------------------------------------------------- */

static series *series_find(koc__events *ev, const char *key) {
        for (size_t i = 0; i < ev->n_series; i++)
                if (strcmp(ev->series[i].key, key) == 0)
                        return &ev->series[i];
        return NULL;
}

static series *series_add(koc__events *ev, const char *key, uint64_t now) {
        char *k = strdup(key);
        if (!k)
                return NULL;
        series *s;
        if (ev->n_series == SERIES_MAX) {
                size_t old = 0;
                for (size_t i = 1; i < ev->n_series; i++)
                        if (ev->series[i].last_seen < ev->series[old].last_seen)
                                old = i;
                free(ev->series[old].key);
                s = &ev->series[old];
        } else {
                series *v = realloc(ev->series, (ev->n_series + 1) * sizeof *v);
                if (!v) {
                        free(k);
                        return NULL;
                }
                ev->series = v;
                s = &ev->series[ev->n_series++];
        }
        *s = (series){.key = k, .last_seen = now};
        return s;
}

/* --- building the Event ------------------------------------------------------------- */

typedef struct event_args {
        const char *type, *reason, *action;
        char note[LIMIT_NOTE + 1];
        const char *kind, *api_version, *namespace_, *name, *uid, *rv;
} event_args;

/* note cut to the API's 1024 bytes, on a UTF-8 character boundary. */
static void cut_note(const char *in, char *out, size_t size) {
        size_t n = strlen(in);
        if (n >= size) {
                n = size - 1;
                while (n > 0 && ((unsigned char)in[n] & 0xC0) == 0x80)
                        n--;
        }
        memcpy(out, in, n);
        out[n] = '\0';
}

static void add_regarding(cJSON *parent, const char *field, const event_args *a) {
        cJSON *r = cJSON_AddObjectToObject(parent, field);
        const char *v[][2] = {{"kind", a->kind},
                              {"apiVersion", a->api_version},
                              {"namespace", a->namespace_},
                              {"name", a->name},
                              {"uid", a->uid},
                              {"resourceVersion", a->rv}};
        for (size_t i = 0; i < KOC_ELEMENTSOF(v); i++)
                if (v[i][1] && *v[i][1])
                        cJSON_AddStringToObject(r, v[i][0], v[i][1]);
}

static cJSON *build_create(koc_controller *c, const event_args *a, const series *s,
                           const char *now) {
        cJSON *ev = cJSON_CreateObject();
        if (!ev)
                return NULL;
        cJSON *md = cJSON_AddObjectToObject(ev, "metadata");
        cJSON_AddStringToObject(md, "name", s->name);
        cJSON_AddStringToObject(md, "namespace", s->namespace_);
        cJSON_AddStringToObject(ev, "type", a->type);
        cJSON_AddStringToObject(ev, "reason", a->reason);
        cJSON_AddStringToObject(ev, "action", a->action);
        cJSON_AddStringToObject(ev, "reportingInstance", c->events->instance);
        if (s->core) {
                cJSON_AddStringToObject(ev, "apiVersion", "v1");
                cJSON_AddStringToObject(ev, "kind", "Event");
                add_regarding(ev, "involvedObject", a);
                cJSON_AddStringToObject(ev, "message", a->note);
                cJSON_AddStringToObject(cJSON_AddObjectToObject(ev, "source"), "component",
                                        c->name);
                cJSON_AddStringToObject(ev, "reportingComponent", c->name);
                cJSON_AddStringToObject(ev, "firstTimestamp", now);
                cJSON_AddStringToObject(ev, "lastTimestamp", now);
                cJSON_AddNumberToObject(ev, "count", s->count);
        } else {
                cJSON_AddStringToObject(ev, "apiVersion", "events.k8s.io/v1");
                cJSON_AddStringToObject(ev, "kind", "Event");
                add_regarding(ev, "regarding", a);
                cJSON_AddStringToObject(ev, "note", a->note);
                cJSON_AddStringToObject(ev, "reportingController", c->name);
                cJSON_AddStringToObject(ev, "eventTime", now);
                if (s->count > 1) {
                        /* A series whose Event went away is created again
                         * with its count. */
                        cJSON *se = cJSON_AddObjectToObject(ev, "series");
                        cJSON_AddNumberToObject(se, "count", s->count);
                        cJSON_AddStringToObject(se, "lastObservedTime", now);
                }
        }
        return ev;
}

static cJSON *build_series_patch(const series *s, const char *now) {
        cJSON *p = cJSON_CreateObject();
        if (!p)
                return NULL;
        if (s->core) {
                cJSON_AddNumberToObject(p, "count", s->count);
                cJSON_AddStringToObject(p, "lastTimestamp", now);
        } else {
                cJSON *se = cJSON_AddObjectToObject(p, "series");
                cJSON_AddNumberToObject(se, "count", s->count);
                cJSON_AddStringToObject(se, "lastObservedTime", now);
        }
        return p;
}

/* --- sending ------------------------------------------------------------------------ */

static const koc_resource events_v1 = {.group = "events.k8s.io",
                                       .version = "v1",
                                       .resource = "events",
                                       .kind = "Event",
                                       .namespaced = true};
static const koc_resource core_events = {
        .version = "v1", .resource = "events", .kind = "Event", .namespaced = true};

const koc_resource *koc__events_resource(bool core) {
        return core ? &core_events : &events_v1;
}

/* A create answered 404 means that the route is not served, unless it is a
 * Status about a missing namespace. */
static bool not_served(const koc_response *resp) {
        if (resp->error < 0 || resp->status != 404)
                return false;
        const cJSON *b = resp->body;
        const char *kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "kind"));
        if (!kind || strcmp(kind, "Status") != 0)
                return true;
        const char *dk = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(b, "details"), "kind"));
        return !dk || strcmp(dk, "namespaces") != 0;
}

/* An Event the server refused (most often: the operator's RBAC lacks create
 * on events) is said once per answer's reason and window, with the object,
 * the Event's reason and the server's answer: the caller usually ignores the
 * result of a best-effort Event, and a person must still learn why none
 * appear. */
static void event_refused(koc_reconcile_context *ctx, const event_args *a, const char *method,
                          const koc_response *resp) {
        koc_controller *c = ctx->c;
        size_t slot = resp->error < 0 || (unsigned)resp->reason >= _KOC_REASON_MAX
                              ? _KOC_REASON_MAX
                              : (size_t)resp->reason;
        koc_metric_inc(c->events->rejected);
        const char *ns = a->namespace_;
        if (resp->error < 0)
                koc__log_ratelimited(&c->event_failure_rl[slot], KOC_LOG_WARN, LOG,
                                     "controller=%s event reason=%s about %s %s%s%s not recorded: "
                                     "%s (%s)",
                                     c->name, a->reason, a->kind ? a->kind : "object",
                                     ns ? ns : "", ns ? "/" : "", a->name,
                                     strerror(-resp->error), resp->message);
        else
                koc__log_ratelimited(&c->event_failure_rl[slot], KOC_LOG_WARN, LOG,
                                     "controller=%s event reason=%s about %s %s%s%s not recorded: "
                                     "%s %s status=%ld reason=%s message=\"%s\"",
                                     c->name, a->reason, a->kind ? a->kind : "object",
                                     ns ? ns : "", ns ? "/" : "", a->name, method,
                                     ctx->last_error.path, resp->status,
                                     koc_reason_to_string(resp->reason), resp->message);
}

/* One request; 0 with *ret, or a negative errno (nothing answered: fenced,
 * cancelled). */
static int send(koc_reconcile_context *ctx, const series *s, bool patch, const cJSON *body,
                koc_response **ret) {
        return koc__reconcile_submit(ctx, koc__events_resource(s->core),
                                     patch ? "PATCH" : "POST", s->namespace_,
                                     patch ? s->name : NULL, NULL, NULL, body,
                                     patch ? "application/merge-patch+json" : NULL, ret);
}

static bool ok_answer(const koc_response *resp) {
        return resp->error == 0 && resp->status >= 200 && resp->status < 300;
}

/* Records; the series s is a copy taken under the lock, written back by the
 * caller.  Returns 0 or the errno of koc/client.h's table. */
static int record(koc_reconcile_context *ctx, const event_args *a, series *s, bool patch) {
        koc_controller *c = ctx->c;
        char now[64];
        koc_format_microtime(koc_now_realtime_usec(), now, sizeof now);
        koc_response *resp = NULL;
        int r;
        for (int attempt = 0; attempt < 3; attempt++) {
                cJSON *body = patch ? build_series_patch(s, now) : build_create(c, a, s, now);
                if (!body)
                        return -ENOMEM;
                koc_response_free(resp);
                resp = NULL;
                r = send(ctx, s, patch, body, &resp);
                cJSON_Delete(body);
                if (r < 0)
                        return r;
                if (ok_answer(resp))
                        break;
                if (patch && resp->error == 0 && resp->status == 404) {
                        /* The Event is gone (its TTL): create it again,
                         * under a new name. */
                        snprintf(s->name, sizeof s->name, "%.200s.%" PRIx64, a->name,
                                 koc_now_realtime_usec() * 1000);
                        patch = false;
                        continue;
                }
                if (!patch && !s->core && not_served(resp)) {
                        if (!atomic_exchange(&c->events->core_only, true))
                                koc_log_info(LOG,
                                             "controller=%s the API server does not serve "
                                             "events.k8s.io/v1: recording core/v1 Events",
                                             c->name);
                        s->core = true;
                        continue;
                }
                break;
        }
        r = koc_response_errno(resp);
        if (r < 0)
                event_refused(ctx, a, patch ? "PATCH" : "POST", resp);
        else
                koc_metric_inc(c->events->recorded);
        koc_response_free(resp);
        return r;
}

static bool is_type(const char *t) {
        return t && (strcmp(t, "Normal") == 0 || strcmp(t, "Warning") == 0);
}

KOC_EXPORT int koc_reconcile_record_event_action(koc_reconcile_context *ctx, const cJSON *object,
                                                 const char *type, const char *reason,
                                                 const char *action, const char *note) {
        if (!ctx || !cJSON_IsObject(object) || !is_type(type) || !reason || !*reason ||
            strlen(reason) > LIMIT_REASON || !action || !*action || strlen(action) > LIMIT_ACTION)
                return -EINVAL;
        koc_controller *c = ctx->c;
        koc__events *ev = c->events;
        event_args a = {.type = type, .reason = reason, .action = action};
        cut_note(note ? note : "", a.note, sizeof a.note);
        a.name = meta_str(object, "name");
        if (!a.name || !*a.name)
                return -EINVAL;
        a.namespace_ = meta_str(object, "namespace");
        a.uid = meta_str(object, "uid");
        a.rv = meta_str(object, "resourceVersion");
        a.kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(object, "kind"));
        a.api_version =
                cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(object, "apiVersion"));
        /* Objects of a list carry no kind: without one, the object is taken
         * for the controller's own. */
        if (!a.kind || !*a.kind) {
                a.kind = koc__informer_get_resource(c->primary)->kind;
                a.api_version = c->api_version;
        }
        /* The isomorphic key; every part is bounded by the API's limits or
         * by the object's name. */
        char *key = NULL;
        if (asprintf(&key, "%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s", action, reason,
                     a.kind ? a.kind : "", a.api_version ? a.api_version : "",
                     a.namespace_ ? a.namespace_ : "", a.name, a.uid ? a.uid : "") < 0)
                return -ENOMEM;
        const char *object_key = strchr(strchr(key, '\x1f') + 1, '\x1f') + 1;

        /* The reconcile's last error is its own write's: an Event about a
         * failed write (the usual pattern) must not hide it. */
        __typeof__(ctx->last_error) earlier = ctx->last_error;
        pthread_mutex_lock(&ev->lock);
        uint64_t t = ev->now();
        if (!spam_allowed(ev, object_key, t)) {
                pthread_mutex_unlock(&ev->lock);
                free(key);
                koc_metric_inc(ev->dropped);
                return -EBUSY;
        }
        series *s = series_find(ev, key);
        bool patch = s && s->name[0] && t - s->last_seen < SERIES_FINISH_USEC &&
                     s->core == atomic_load(&ev->core_only);
        if (!s)
                s = series_add(ev, key, t);
        if (!s) {
                pthread_mutex_unlock(&ev->lock);
                free(key);
                return -ENOMEM;
        }
        if (patch)
                s->count++;
        else {
                s->core = atomic_load(&ev->core_only);
                s->count = 1;
                s->first_usec = koc_now_realtime_usec();
                /* client-go: the object's name and the time in hex. */
                snprintf(s->name, sizeof s->name, "%.200s.%" PRIx64, a.name,
                         s->first_usec * 1000);
                snprintf(s->namespace_, sizeof s->namespace_, "%s",
                         a.namespace_ && *a.namespace_ ? a.namespace_ : "default");
        }
        s->last_seen = t;
        series copy = *s;
        copy.key = NULL;
        pthread_mutex_unlock(&ev->lock);

        int r = record(ctx, &a, &copy, patch);

        /* Written back when the entry is still this series (another worker
         * may have reused the slot meanwhile). */
        pthread_mutex_lock(&ev->lock);
        series *back = series_find(ev, key);
        if (back) {
                if (r < 0 && !patch)
                        back->name[0] = '\0'; /* not created: the next one creates */
                else {
                        snprintf(back->name, sizeof back->name, "%s", copy.name);
                        back->core = copy.core;
                }
        }
        pthread_mutex_unlock(&ev->lock);
        free(key);
        if (r < 0)
                /* The reconcile's failure line names the Event only when
                 * the reconcile returns its errno. */
                ctx->last_error.mutating = false;
        if (earlier.code < 0)
                ctx->last_error = earlier;
        return r;
}

KOC_EXPORT int koc_reconcile_record_event(koc_reconcile_context *ctx, const cJSON *object,
                                          const char *type, const char *reason,
                                          const char *message) {
        return koc_reconcile_record_event_action(ctx, object, type, reason, reason, message);
}
