/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The MHD access handler: authentication, routing, fault injection, bodies
 * and responses.  A request may be parked (suspended) by a latency or hang
 * fault; MHD calls the handler again once it is resumed.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "apiserver.h"

enum { RS_NEW, RS_BODY, RS_WAIT, RS_READY, RS_DONE };

struct request {
        server *srv;
        struct MHD_Connection *conn;
        uint64_t start_usec;
        strbuf body;
        bool too_large;
        int state;
        bool faults_done;
        fault_action fa;
        sd_event_source *delay;
        request *hang_prev, *hang_next;
        bool hanging; /* parked in srv->hanging, by a hang or a latency rule */
        bool held;    /* parked by a hang rule (released when rules are cleared) */
        const char *mverb;
        char mresource[128];
        char path[512]; /* for --log-writes */
};

static void hang_unlink(request *req) {
        server *srv = req->srv;
        if (!req->hanging)
                return;
        if (req->hang_prev)
                req->hang_prev->hang_next = req->hang_next;
        else
                srv->hanging = req->hang_next;
        if (req->hang_next)
                req->hang_next->hang_prev = req->hang_prev;
        req->hang_prev = req->hang_next = NULL;
        req->hanging = false;
}

static void resume_request(request *req) {
        req->state = RS_READY;
        MHD_resume_connection(req->conn);
        koc__mhd_loop_kick(req->srv->mhd);
}

static void park(request *req, bool held) {
        server *srv = req->srv;
        req->state = RS_WAIT;
        req->held = held;
        req->hang_next = srv->hanging;
        req->hang_prev = NULL;
        if (srv->hanging)
                srv->hanging->hang_prev = req;
        srv->hanging = req;
        req->hanging = true;
        MHD_suspend_connection(req->conn);
}

void http_release_all(server *srv) {
        while (srv->hanging) {
                request *req = srv->hanging;
                hang_unlink(req);
                req->delay = sd_event_source_disable_unref(req->delay);
                resume_request(req);
        }
}

void http_release_hanging(server *srv) {
        request *next;
        for (request *req = srv->hanging; req; req = next) {
                next = req->hang_next;
                if (!req->held)
                        continue;
                hang_unlink(req);
                /* Released: the request now runs as if it had just arrived
                 * (the rule that held it is gone). */
                req->fa = (fault_action){.watch_close_after_ms = -1};
                resume_request(req);
        }
}

void http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                    enum MHD_RequestTerminationCode toe) {
        request *req = *con_cls;
        if (!req)
                return;
        hang_unlink(req);
        sd_event_source_disable_unref(req->delay);
        strbuf_free(&req->body);
        free(req);
        *con_cls = NULL;
}

static double elapsed(const request *req) {
        return (double)(koc_now_boottime_usec() - req->start_usec) / 1e6;
}

/* A response that sends half of its declared body, then breaks off. */
typedef struct dropper {
        char *body;
        size_t len;
        bool sent;
} dropper;

static ssize_t drop_read(void *cls, uint64_t pos, char *buf, size_t max) {
        dropper *d = cls;
        if (d->sent || d->len < 2)
                return MHD_CONTENT_READER_END_WITH_ERROR;
        size_t n = d->len / 2 < max ? d->len / 2 : max;
        memcpy(buf, d->body, n);
        d->sent = true;
        return (ssize_t)n;
}

static void drop_free(void *cls) {
        dropper *d = cls;
        free(d->body);
        free(d);
}

/* --log-writes: one JSON line per write request answered (injected errors
 * included), with both clocks, so that a test can line the server's view up
 * with its clients' logs; for a Lease written successfully, the holder and
 * leaseTransitions the server stored. */
static void log_write(request *req, int code, const char *body) {
        static const char *const writes[] = {"POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION"};
        bool is_write = false;
        for (size_t i = 0; req->mverb && i < KOC_ELEMENTSOF(writes); i++)
                is_write = is_write || strcmp(req->mverb, writes[i]) == 0;
        if (!req->srv->write_log || !is_write)
                return;
        cJSON *line = cJSON_CreateObject();
        char ts[64];
        koc_format_microtime(koc_now_realtime_usec(), ts, sizeof ts);
        cJSON_AddStringToObject(line, "time", ts);
        cJSON_AddNumberToObject(line, "boottime_us", (double)koc_now_boottime_usec());
        cJSON_AddNumberToObject(line, "received_us", (double)req->start_usec);
        cJSON_AddStringToObject(line, "verb", req->mverb);
        cJSON_AddStringToObject(line, "resource", req->mresource);
        cJSON_AddStringToObject(line, "path", req->path);
        cJSON_AddNumberToObject(line, "code", code);
        const char *ua =
                MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_USER_AGENT);
        cJSON_AddStringToObject(line, "user_agent", ua ? ua : "");
        if (req->fa.drop)
                cJSON_AddBoolToObject(line, "dropped", true);
        if (strcmp(req->mresource, "leases") == 0 && code >= 200 && code < 300 && body) {
                cJSON *obj = cJSON_Parse(body);
                const cJSON *spec = cJSON_GetObjectItemCaseSensitive(obj, "spec");
                const char *holder = json_str(spec, "holderIdentity");
                const cJSON *tr = cJSON_GetObjectItemCaseSensitive(spec, "leaseTransitions");
                cJSON_AddStringToObject(line, "holder", holder ? holder : "");
                cJSON_AddNumberToObject(line, "transitions",
                                        cJSON_IsNumber(tr) ? tr->valuedouble : 0);
                cJSON_Delete(obj);
        }
        char *s = cJSON_PrintUnformatted(line);
        if (s) {
                fprintf(req->srv->write_log, "%s\n", s);
                fflush(req->srv->write_log);
        }
        cJSON_free(s);
        cJSON_Delete(line);
}

static enum MHD_Result queue(request *req, int code, char *body, const char *content_type,
                             unsigned retry_after) {
        struct MHD_Response *resp = NULL;
        size_t len = body ? strlen(body) : 0;
        char ra[32];

        log_write(req, code, body);

        if (req->fa.drop) {
                dropper *d = calloc(1, sizeof *d);
                if (d) {
                        d->body = body;
                        d->len = len;
                        resp = MHD_create_response_from_callback(len, 4096, drop_read, d,
                                                                 drop_free);
                        if (!resp)
                                drop_free(d);
                        body = NULL;
                }
        } else
                resp = MHD_create_response_from_buffer(len, body ? body : (char *)"",
                                                       body ? MHD_RESPMEM_MUST_FREE
                                                            : MHD_RESPMEM_PERSISTENT);
        if (!resp) {
                free(body);
                return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache, private");
        if (retry_after) {
                snprintf(ra, sizeof ra, "%u", retry_after);
                MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
        }
        enum MHD_Result r = MHD_queue_response(req->conn, (unsigned)code, resp);
        MHD_destroy_response(resp);
        req->state = RS_DONE;
        if (req->mverb)
                metrics_observe(req->srv, req->mverb, req->mresource, code, elapsed(req));
        return r;
}

static enum MHD_Result queue_reply(request *req, reply *r) {
        return queue(req, r->code, r->body, "application/json", r->retry_after);
}

static enum MHD_Result queue_status(request *req, int code, const char *reason, const char *msg,
                                    cJSON *details) {
        reply r = {0};
        reply_status(&r, code, reason, msg, details);
        return queue_reply(req, &r);
}

static bool authorized(request *req) {
        const char *h = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                    MHD_HTTP_HEADER_AUTHORIZATION);
        size_t n = strlen(req->srv->token);
        if (!h || strncasecmp(h, "Bearer ", 7) != 0)
                return false;
        h += 7;
        while (*h == ' ')
                h++;
        return strlen(h) == n && CRYPTO_memcmp(h, req->srv->token, n) == 0;
}

static const char *metric_verb(const char *verb) {
        static const char *const map[][2] = {
                {"get", "GET"},       {"list", "LIST"},
                {"watch", "WATCH"},   {"create", "POST"},
                {"update", "PUT"},    {"patch", "PATCH"},
                {"delete", "DELETE"}, {"deletecollection", "DELETECOLLECTION"},
        };
        for (size_t i = 0; i < KOC_ELEMENTSOF(map); i++)
                if (strcmp(map[i][0], verb) == 0)
                        return map[i][1];
        return "UNKNOWN";
}

static bool is_watch(struct MHD_Connection *conn) {
        const char *w = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "watch");
        return w && (strcmp(w, "1") == 0 || strcmp(w, "true") == 0);
}

/* The Kubernetes verb of a resource request, or NULL when not allowed. */
static const char *request_verb(const char *method, const api_path *p,
                                struct MHD_Connection *conn) {
        if (strcmp(method, "GET") == 0)
                return is_watch(conn) ? "watch" : p->name ? "get" : "list";
        if (strcmp(method, "POST") == 0)
                return p->name ? NULL : "create";
        if (strcmp(method, "PUT") == 0)
                return p->name ? "update" : NULL;
        if (strcmp(method, "PATCH") == 0)
                return p->name ? "patch" : NULL;
        if (strcmp(method, "DELETE") == 0)
                return p->name ? "delete" : "deletecollection";
        return NULL;
}

static enum MHD_Result injected_error(request *req, const api_path *p, const char *verb) {
        int code = req->fa.error_code;
        unsigned ra = req->fa.retry_after;
        char qr[256], msg[700];
        reply r = {0};
        cJSON *d = NULL;

        qualified_resource(p->group, p->resource, qr, sizeof qr);
        switch (code) {
        case 429:
                if (!ra)
                        ra = 1;
                d = cJSON_CreateObject();
                cJSON_AddNumberToObject(d, "retryAfterSeconds", ra);
                reply_status(&r, code, "TooManyRequests",
                             "Too many requests, please try again later.", d);
                break;
        case 403:
                snprintf(msg, sizeof msg,
                         "%s is forbidden: User \"system:serviceaccount:default:koc\" cannot %s "
                         "resource "
                         "\"%s\" in API group \"%s\"%s%s%s",
                         qr, verb, p->resource, p->group,
                         p->ns ? " in the namespace \"" : " at the cluster scope",
                         p->ns ? p->ns : "", p->ns ? "\"" : "");
                d = cJSON_CreateObject();
                if (p->name)
                        cJSON_AddStringToObject(d, "name", p->name);
                if (*p->group)
                        cJSON_AddStringToObject(d, "group", p->group);
                cJSON_AddStringToObject(d, "kind", p->resource);
                reply_status(&r, code, "Forbidden", msg, d);
                break;
        case 500:
                d = cJSON_CreateObject();
                cJSON *causes = cJSON_AddArrayToObject(d, "causes"), *c = cJSON_CreateObject();
                cJSON_AddStringToObject(c, "message", "injected fault");
                cJSON_AddItemToArray(causes, c);
                reply_status(&r, code, "InternalError", "Internal error occurred: injected fault",
                             d);
                break;
        case 503:
                reply_status(&r, code, "ServiceUnavailable",
                             "the server is currently unable to handle the request", NULL);
                break;
        case 504:
                reply_status(
                        &r, code, "Timeout",
                        "the server was unable to return a response in the time allotted, but may "
                        "still be processing the request",
                        NULL);
                break;
        case 401:
                reply_status(&r, code, "Unauthorized", "Unauthorized", NULL);
                break;
        case 404:
                reply_not_found(&r, p, p->name ? p->name : "");
                break;
        case 409:
                snprintf(msg, sizeof msg,
                         "Operation cannot be fulfilled on %s \"%s\": the object has been "
                         "modified; please "
                         "apply your changes to the latest version and try again",
                         qr, p->name ? p->name : "");
                reply_status(&r, code, "Conflict", msg, NULL);
                break;
        default:
                reply_status(&r, code, "", "injected fault", NULL);
        }
        r.retry_after = ra;
        return queue_reply(req, &r);
}

static enum MHD_Result handle_admin(request *req, const char *method) {
        server *srv = req->srv;
        char err[512];

        if (strcmp(method, "GET") == 0) {
                cJSON *l = faults_list(srv);
                reply r = {0};
                reply_json(&r, 200, l);
                cJSON_Delete(l);
                return queue_reply(req, &r);
        }
        if (strcmp(method, "DELETE") == 0) {
                faults_clear(srv);
                return queue_status(req, 200, NULL, "fault rules cleared", NULL);
        }
        if (strcmp(method, "POST") == 0) {
                cJSON *rule =
                        cJSON_ParseWithLength(req->body.data ? req->body.data : "", req->body.len);
                int r = rule ? faults_add(srv, rule, err, sizeof err) : -EINVAL;
                if (!rule)
                        snprintf(err, sizeof err, "the body is not valid JSON");
                cJSON_Delete(rule);
                if (r < 0)
                        return queue_status(req, 400, "BadRequest", err, NULL);
                return queue_status(req, 200, NULL, "fault rule added", NULL);
        }
        return queue_status(req, 405, "MethodNotAllowed",
                            "the server does not allow this method on the requested resource",
                            NULL);
}

static int on_delay(sd_event_source *s, uint64_t usec, void *userdata) {
        request *req = userdata;
        req->delay = sd_event_source_disable_unref(req->delay);
        hang_unlink(req);
        resume_request(req);
        return 0;
}

static enum MHD_Result handle_resource(request *req, const char *method, api_path *p) {
        server *srv = req->srv;
        const char *verb = request_verb(method, p, req->conn);

        if (!verb) {
                req->mverb = strcmp(method, "POST") == 0 ? "POST" : method;
                return queue_status(
                        req, 405, "MethodNotAllowed",
                        "the server does not allow this method on the requested resource", NULL);
        }
        req->mverb = metric_verb(verb);
        snprintf(req->mresource, sizeof req->mresource, "%s", p->resource);

        if (!req->faults_done) {
                const char *fverb = strcmp(verb, "deletecollection") == 0 ? "delete" : verb;
                req->faults_done = true;
                faults_match(srv, p->group, p->resource, fverb, &req->fa);
                if (req->fa.hang && !srv->stopping) {
                        park(req, true);
                        return MHD_YES;
                }
                if (req->fa.latency_ms > 0 && !srv->stopping &&
                    sd_event_add_time_relative(srv->event, &req->delay, CLOCK_BOOTTIME,
                                               req->fa.latency_ms * 1000, 1000, on_delay,
                                               req) >= 0) {
                        park(req, false);
                        return MHD_YES;
                }
        }
        if (srv->stopping)
                return queue_status(req, 503, "ServiceUnavailable", "the server is shutting down",
                                    NULL);
        if (req->fa.error_code)
                return injected_error(req, p, verb);
        if (req->too_large) {
                char msg[128];
                snprintf(msg, sizeof msg, "Request entity too large: limit is %u", MAX_BODY_SIZE);
                return queue_status(req, 413, "RequestEntityTooLarge", msg, NULL);
        }
        if (reviews_is_review(p)) {
                reply r = {0};
                reviews_handle(srv, verb, p, req->body.data ? req->body.data : "", req->body.len,
                               &r);
                return queue_reply(req, &r);
        }
        int known = store_resource_check(srv, p);
        if (known == -ENXIO)
                return queue(req, 404, strdup("404 page not found\n"), "text/plain; charset=utf-8",
                             0);
        if (known < 0)
                return queue_status(req, 404, "NotFound",
                                    "the server could not find the requested resource", NULL);
        if (strcmp(verb, "watch") == 0) {
                reply r = {0};
                struct MHD_Response *resp;
                resp = watch_start(srv, req->conn, p, req->fa.watch_close_after_ms, req->fa.drop,
                                   &r);
                if (!resp) {
                        req->fa.drop = false;
                        return queue_reply(req, &r);
                }
                enum MHD_Result ret = MHD_queue_response(req->conn, MHD_HTTP_OK, resp);
                MHD_destroy_response(resp);
                req->state = RS_DONE;
                metrics_observe(srv, req->mverb, req->mresource, 200, elapsed(req));
                return ret;
        }
        reply r = {0};
        const char *ct = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_TYPE);
        if (ct && strncasecmp(ct, "application/vnd.kubernetes.protobuf", 35) == 0 &&
            (strcmp(verb, "create") == 0 || strcmp(verb, "update") == 0)) {
                char err[512];
                char *json = protobuf_to_json(req->body.data ? req->body.data : "", req->body.len,
                                              err, sizeof err);
                if (!json)
                        return queue_status(req, 415, "UnsupportedMediaType", err, NULL);
                store_handle(srv, req->conn, verb, p, json, strlen(json), "application/json", &r);
                free(json);
                return queue_reply(req, &r);
        }
        store_handle(srv, req->conn, verb, p, req->body.data ? req->body.data : "", req->body.len,
                     ct, &r);
        return queue_reply(req, &r);
}

static enum MHD_Result dispatch(request *req, const char *url, const char *method) {
        server *srv = req->srv;

        snprintf(req->path, sizeof req->path, "%s", url);
        if (strcmp(url, "/healthz") == 0 || strcmp(url, "/livez") == 0 ||
            strcmp(url, "/readyz") == 0)
                return queue(req, 200, strdup("ok"), "text/plain; charset=utf-8", 0);
        if (strcmp(url, "/version") != 0 && !authorized(req)) {
                req->fa = (fault_action){0};
                return queue_status(req, 401, "Unauthorized", "Unauthorized", NULL);
        }
        if (strcmp(url, "/metrics") == 0)
                return queue(req, 200, metrics_render(srv),
                             "text/plain; version=0.0.4; charset=utf-8", 0);
        if (strcmp(url, "/admin/faults") == 0)
                return handle_admin(req, method);

        api_path p = {0};
        if (api_path_parse(url, &p) == 0) {
                if (p.resource) {
                        enum MHD_Result r = handle_resource(req, method, &p);
                        api_path_free(&p);
                        return r;
                }
                api_path_free(&p);
        }
        reply r = {0};
        req->mverb = "GET";
        if (strcmp(method, "GET") == 0 && openapi_handle(srv, req->conn, url, &r) == 0)
                return queue_reply(req, &r);
        if (strcmp(method, "GET") == 0 && discovery_handle(srv, url, &r) == 0)
                return queue_reply(req, &r);
        return queue_status(req, 404, "NotFound",
                            "the server could not find the requested resource", NULL);
}

enum MHD_Result http_access(void *cls, struct MHD_Connection *conn, const char *url,
                            const char *method, const char *version, const char *upload_data,
                            size_t *upload_data_size, void **con_cls) {
        server *srv = cls;
        request *req = *con_cls;

        if (!req) {
                req = calloc(1, sizeof *req);
                if (!req)
                        return MHD_NO;
                req->srv = srv;
                req->conn = conn;
                req->start_usec = koc_now_boottime_usec();
                req->state = RS_BODY;
                req->fa.watch_close_after_ms = -1;
                const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                             MHD_HTTP_HEADER_CONTENT_LENGTH);
                if (cl && strtoull(cl, NULL, 10) > MAX_BODY_SIZE)
                        req->too_large = true;
                *con_cls = req;
                return MHD_YES;
        }
        if (*upload_data_size > 0) {
                if (!req->too_large) {
                        if (req->body.len + *upload_data_size > MAX_BODY_SIZE) {
                                req->too_large = true;
                                strbuf_free(&req->body);
                        } else if (strbuf_append(&req->body, upload_data, *upload_data_size) < 0)
                                return MHD_NO;
                }
                *upload_data_size = 0;
                return MHD_YES;
        }
        if (req->state == RS_WAIT || req->state == RS_DONE)
                return MHD_YES;
        if (req->too_large && strncmp(url, "/api", 4) != 0) {
                char msg[128];
                snprintf(msg, sizeof msg, "Request entity too large: limit is %u", MAX_BODY_SIZE);
                return queue_status(req, 413, "RequestEntityTooLarge", msg, NULL);
        }
        return dispatch(req, url, method);
}
