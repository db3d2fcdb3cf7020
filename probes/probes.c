/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The probes server: request routing, named checks in the kube-apiserver
 * style, the readiness switch and /metrics.  The HTTP engine and its loop glue
 * are in core/mhd-glue.c.
 *
 * Every request is answered from the first access-handler call (the headers),
 * so a request body is never read: requests that announce one get 413 and the
 * connection is closed.  The constant answers ("ok", 404, 405) are built once
 * and shared by every request.
 */
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "koc/log.h"
#include "koc/probes.h"
#include "core/mhd-glue.h"
#include "probes-internal.h"

#define DEFAULT_MAX_CONNECTIONS 256u
#define DEFAULT_IDLE_TIMEOUT_SEC 10u
#define DEFAULT_MAX_REQUEST_BYTES (16u * 1024u)
/* The kubelet opens one connection per probe, from the node's address, and
 * sends its request at once; Prometheus keeps one or two.  32 leaves room for
 * both behind one address (a NAT), and one address cannot fill the server. */
#define DEFAULT_MAX_PER_ADDRESS 32u
/* A request arrives in one packet; the kubelet's probes time out after 1 s by
 * default. */
#define DEFAULT_REQUEST_TIMEOUT_USEC (3 * KOC_USEC_PER_SEC)
#define MAX_LISTENERS 4
#define MAX_CHECKS 64
#define MAX_EXCLUDES 16
#define WHY_MAX 256
#define CHECK_NAME_MAX 63

/* Below the default priority: lease renewals and API traffic on the same loop
 * are dispatched first when both are pending, so probe load cannot delay them. */
#define HTTP_PRIORITY (SD_EVENT_PRIORITY_NORMAL + 10)

#define CONTENT_TYPE_TEXT "text/plain; charset=utf-8"
#define CONTENT_TYPE_METRICS "text/plain; version=0.0.4; charset=utf-8"

enum check_kind { KIND_HEALTH, KIND_READY, _KIND_MAX };

typedef struct probe_check {
        char name[CHECK_NAME_MAX + 1];
        koc_probes_check_t fn;
        void *userdata;
        koc_destroy_t destroy;
} probe_check;

typedef struct listener {
        koc_probes *probes;
        unsigned kinds;
        koc_mhd_event *http;
} listener;

/* Request-count metrics are looked up once and cached per (path, code). */
enum path_label { PATH_HEALTHZ, PATH_LIVEZ, PATH_READYZ, PATH_METRICS, PATH_OTHER, _PATH_MAX };
static const char *const path_labels[_PATH_MAX] = { "/healthz", "/livez", "/readyz", "/metrics",
                                                    "other" };
static const unsigned code_labels[] = { 200, 404, 405, 413, 503 };
#define N_CODES (sizeof(code_labels) / sizeof(code_labels[0]))

struct koc_probes {
        unsigned n_ref;
        sd_event *event;
        koc_metrics *metrics;
        atomic_bool ready;

        probe_check checks[_KIND_MAX][MAX_CHECKS];
        size_t n_checks[_KIND_MAX];

        listener *listeners[MAX_LISTENERS];
        size_t n_listeners;
        koc_mhd_limits limits;

        struct MHD_Response *resp_ok, *resp_not_found, *resp_not_allowed, *resp_too_large;
        koc_metric *requests[_PATH_MAX][N_CODES];
        koc_metric *closes[_KOC_MHD_CLOSE_MAX];
};

static const char *const close_labels[_KOC_MHD_CLOSE_MAX] = {
        [KOC_MHD_CLOSE_DEADLINE] = "request_deadline",
        [KOC_MHD_CLOSE_PER_ADDRESS] = "per_address",
        [KOC_MHD_CLOSE_FULL] = "max_connections",
        [KOC_MHD_CLOSE_REFUSED] = "refused",
};

/* Counts a connection the slow-client guard closed or refused. */
static void count_close(void *userdata, enum koc_mhd_close why) {
        koc_probes *p = userdata;
        if (!p->metrics || (unsigned)why >= _KOC_MHD_CLOSE_MAX)
                return;
        if (!p->closes[why]) {
                char labels[64];
                snprintf(labels, sizeof(labels), "reason=\"%s\"", close_labels[why]);
                if (koc_metrics_add_counter(p->metrics, "koc_probes_connections_closed_total",
                                            "Connections the probes server closed or refused "
                                            "so that requests that arrive whole are served: "
                                            "request_deadline (no whole request in time), "
                                            "per_address and max_connections (room made by "
                                            "closing the oldest waiting one), refused (every "
                                            "connection busy).",
                                            labels, &p->closes[why]) < 0)
                        return;
        }
        koc_metric_inc(p->closes[why]);
}

static int builtin_ping(char *why, size_t why_size, void *userdata) {
        return 0;
}

static int builtin_shutdown(char *why, size_t why_size, void *userdata) {
        koc_probes *p = userdata;
        if (atomic_load_explicit(&p->ready, memory_order_acquire))
                return 0;
        snprintf(why, why_size, "process is shutting down");
        return -ESHUTDOWN;
}

/* --- responses ------------------------------------------------------------ */

static struct MHD_Response *text_response(const char *body, size_t len,
                                          enum MHD_ResponseMemoryMode mode) {
        struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, mode);
        if (!r)
                return NULL;
        if (MHD_add_response_header(r, "Content-Type", CONTENT_TYPE_TEXT) != MHD_YES ||
            MHD_add_response_header(r, "X-Content-Type-Options", "nosniff") != MHD_YES ||
            MHD_add_response_header(r, "Cache-Control", "no-store") != MHD_YES) {
                MHD_destroy_response(r);
                return NULL;
        }
        return r;
}

static int make_static_responses(koc_probes *p) {
        static const char ok[] = "ok";
        static const char not_found[] = "404 page not found\n";
        static const char not_allowed[] = "405 method not allowed\n";
        static const char too_large[] = "413 request body not allowed\n";

        p->resp_ok = text_response(ok, strlen(ok), MHD_RESPMEM_PERSISTENT);
        p->resp_not_found = text_response(not_found, strlen(not_found), MHD_RESPMEM_PERSISTENT);
        p->resp_not_allowed = text_response(not_allowed, strlen(not_allowed),
                                            MHD_RESPMEM_PERSISTENT);
        p->resp_too_large = text_response(too_large, strlen(too_large), MHD_RESPMEM_PERSISTENT);
        if (!p->resp_ok || !p->resp_not_found || !p->resp_not_allowed || !p->resp_too_large)
                return -ENOMEM;
        if (MHD_add_response_header(p->resp_not_allowed, "Allow", "GET, HEAD") != MHD_YES ||
            MHD_add_response_header(p->resp_too_large, "Connection", "close") != MHD_YES)
                return -ENOMEM;
        return 0;
}

static void count_request(koc_probes *p, enum path_label path, unsigned code) {
        if (!p->metrics)
                return;
        size_t ci = 0;
        while (ci < N_CODES && code_labels[ci] != code)
                ci++;
        if (ci == N_CODES)
                return;
        if (!p->requests[path][ci]) {
                char labels[96];
                snprintf(labels, sizeof(labels), "path=\"%s\",code=\"%u\"", path_labels[path],
                         code);
                if (koc_metrics_add_counter(p->metrics, "koc_probes_http_requests_total",
                                            "HTTP requests answered by the probes server, by "
                                            "path and status code.",
                                            labels, &p->requests[path][ci]) < 0)
                        return;
        }
        koc_metric_inc(p->requests[path][ci]);
}

/* --- checks --------------------------------------------------------------- */

static bool valid_check_name(const char *name) {
        size_t n = strlen(name);
        return n > 0 && n <= CHECK_NAME_MAX &&
               strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") ==
                       n;
}

static probe_check *find_check(koc_probes *p, enum check_kind kind, const char *name) {
        for (size_t i = 0; i < p->n_checks[kind]; i++)
                if (strcmp(p->checks[kind][i].name, name) == 0)
                        return &p->checks[kind][i];
        return NULL;
}

/* Runs one check; on failure why holds one printable line. */
static int run_check(const probe_check *ch, char *why, size_t why_size) {
        why[0] = 0;
        int r = ch->fn(why, why_size, ch->userdata);
        if (r >= 0)
                return 0;
        why[why_size - 1] = 0;
        if (!why[0])
                snprintf(why, why_size, "%s", strerror(-r));
        for (char *q = why; *q; q++)
                if ((unsigned char)*q < 0x20 || *q == 0x7f)
                        *q = ' ';
        return r;
}

typedef struct query {
        bool verbose;
        size_t n_excludes;
        const char *excludes[MAX_EXCLUDES];
        bool matched[MAX_EXCLUDES];
} query;

static void collect_query(void *cls, const char *key, const char *value) {
        query *q = cls;
        if (strcmp(key, "verbose") == 0)
                q->verbose = true;
        else if (strcmp(key, "exclude") == 0 && value && *value) {
                for (size_t i = 0; i < q->n_excludes; i++)
                        if (strcmp(q->excludes[i], value) == 0)
                                return;
                if (q->n_excludes < MAX_EXCLUDES)
                        q->excludes[q->n_excludes++] = value;
        }
}

static bool take_exclude(query *q, const char *name) {
        for (size_t i = 0; i < q->n_excludes; i++)
                if (strcmp(q->excludes[i], name) == 0) {
                        q->matched[i] = true;
                        return true;
                }
        return false;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Writes s as a Go %q string would for plain names; anything unusual is
 * escaped so that request text is never echoed raw. */
static void put_quoted(FILE *f, const char *s) {
        fputc('"', f);
        for (size_t i = 0; s[i] && i < CHECK_NAME_MAX; i++) {
                unsigned char ch = (unsigned char)s[i];
                if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
                        fputc(ch, f);
                else
                        fprintf(f, "\\x%02x", ch);
        }
        fputc('"', f);
}

static void answer_static(koc__probes_answer *a, unsigned code, enum koc__probes_body body) {
        a->code = code;
        a->body = body;
}

static void answer_text(koc__probes_answer *a, unsigned code, char *text, size_t len) {
        a->code = code;
        a->body = KOC__PROBES_BODY_TEXT;
        a->text = text;
        a->len = len;
}

/* /healthz, /livez, /readyz: every check of `kind` in order, like
 * kube-apiserver's handleRootHealth. */
static int serve_checks(koc_probes *p, const koc__probes_request *req, enum check_kind kind,
                        const char *endpoint, koc__probes_answer *a) {
        enum { RESULT_OK, RESULT_FAILED, RESULT_EXCLUDED };
        query q = { 0 };
        if (req->each_arg)
                req->each_arg(req->userdata, collect_query, &q);

        /* Every check runs once; the text is built only when someone reads
         * it (verbose or failure), so the common "ok" costs no allocation. */
        size_t n = p->n_checks[kind], n_failed = 0;
        uint8_t result[MAX_CHECKS];
        char why[WHY_MAX], *whys = NULL;
        for (size_t i = 0; i < n; i++) {
                const probe_check *ch = &p->checks[kind][i];
                if (take_exclude(&q, ch->name))
                        result[i] = RESULT_EXCLUDED;
                else if (run_check(ch, why, sizeof(why)) < 0) {
                        result[i] = RESULT_FAILED;
                        if (!whys && !(whys = malloc(n * WHY_MAX)))
                                return -ENOMEM;
                        memcpy(whys + i * WHY_MAX, why, WHY_MAX);
                        n_failed++;
                } else
                        result[i] = RESULT_OK;
        }
        /* Failures are always verbose; success is a bare "ok" unless asked. */
        if (n_failed == 0 && !q.verbose) {
                answer_static(a, MHD_HTTP_OK, KOC__PROBES_BODY_OK);
                return 0;
        }

        char *body = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&body, &len);
        if (!out) {
                free(whys);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                const char *name = p->checks[kind][i].name;
                if (result[i] == RESULT_EXCLUDED)
                        fprintf(out, "[+]%s excluded: ok\n", name);
                else if (result[i] == RESULT_FAILED)
                        fprintf(out, "[-]%s failed: %s\n", name, whys + i * WHY_MAX);
                else
                        fprintf(out, "[+]%s ok\n", name);
        }
        free(whys);

        const char *unmatched[MAX_EXCLUDES];
        size_t n_unmatched = 0;
        for (size_t i = 0; i < q.n_excludes; i++)
                if (!q.matched[i])
                        unmatched[n_unmatched++] = q.excludes[i];
        if (n_unmatched > 0) {
                qsort(unmatched, n_unmatched, sizeof(unmatched[0]), cmp_str);
                fputs("warn: some health checks cannot be excluded: no matches for ", out);
                for (size_t i = 0; i < n_unmatched; i++) {
                        if (i > 0)
                                fputc(',', out);
                        put_quoted(out, unmatched[i]);
                }
                fputc('\n', out);
        }

        if (n_failed > 0)
                fprintf(out, "%s check failed\n", endpoint);
        else
                fprintf(out, "%s check passed\n", endpoint);
        if (fclose(out) != 0) {
                free(body);
                return -ENOMEM;
        }
        if (n_failed > 0)
                koc_log_debug("probes", "%s check failed checks=%zu", endpoint, n_failed);
        answer_text(a, n_failed ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_OK, body, len);
        return 0;
}

/* /readyz/NAME and friends: one check alone. */
static int serve_one_check(koc_probes *p, enum check_kind kind, const char *name,
                           koc__probes_answer *a) {
        const probe_check *ch = find_check(p, kind, name);
        if (!ch) {
                answer_static(a, MHD_HTTP_NOT_FOUND, KOC__PROBES_BODY_NOT_FOUND);
                return 0;
        }

        char why[WHY_MAX];
        if (run_check(ch, why, sizeof(why)) >= 0) {
                answer_static(a, MHD_HTTP_OK, KOC__PROBES_BODY_OK);
                return 0;
        }
        char *body = NULL;
        int n = asprintf(&body, "internal server error: %s\n", why);
        if (n < 0)
                return -ENOMEM;
        answer_text(a, MHD_HTTP_SERVICE_UNAVAILABLE, body, (size_t)n);
        return 0;
}

static int serve_metrics(koc_probes *p, koc__probes_answer *a) {
        int r = koc_metrics_render(p->metrics, &a->text, &a->len);
        if (r < 0) {
                koc_log_warn("probes", "cannot render metrics: %s", strerror(-r));
                return r;
        }
        a->code = MHD_HTTP_OK;
        a->body = KOC__PROBES_BODY_METRICS;
        return 0;
}

/* A request announces a body with a Content-Length other than 0 or with
 * Transfer-Encoding. */
static bool has_body(const koc__probes_request *req) {
        const char *cl = req->content_length;
        if (cl && strspn(cl, "0") != strlen(cl))
                return true;
        return req->transfer_encoding != NULL;
}

/* Matches "/healthz", "/healthz/NAME" for prefix "/healthz"; *ret_name gets
 * NAME or NULL. */
static bool match_path(const char *url, const char *prefix, const char **ret_name) {
        size_t n = strlen(prefix);
        if (strncmp(url, prefix, n) != 0)
                return false;
        if (url[n] == 0) {
                *ret_name = NULL;
                return true;
        }
        if (url[n] == '/' && url[n + 1] != 0) {
                *ret_name = url + n + 1;
                return true;
        }
        return false;
}

int koc__probes_dispatch(koc_probes *p, unsigned kinds, const koc__probes_request *req,
                         koc__probes_answer *ret) {
        koc__probes_answer a = { .path = PATH_OTHER };
        enum check_kind kind = KIND_HEALTH;
        const char *endpoint = NULL, *name = NULL, *url = req->url;
        int r = 0;

        if ((kinds & KOC_PROBES_HEALTH) && match_path(url, "/healthz", &name))
                a.path = PATH_HEALTHZ, kind = KIND_HEALTH, endpoint = "healthz";
        else if ((kinds & KOC_PROBES_HEALTH) && match_path(url, "/livez", &name))
                a.path = PATH_LIVEZ, kind = KIND_HEALTH, endpoint = "livez";
        else if ((kinds & KOC_PROBES_HEALTH) && match_path(url, "/readyz", &name))
                a.path = PATH_READYZ, kind = KIND_READY, endpoint = "readyz";
        else if ((kinds & KOC_PROBES_METRICS) && p->metrics && strcmp(url, "/metrics") == 0)
                a.path = PATH_METRICS;

        if (strcmp(req->method, MHD_HTTP_METHOD_GET) != 0 &&
            strcmp(req->method, MHD_HTTP_METHOD_HEAD) != 0)
                answer_static(&a, MHD_HTTP_METHOD_NOT_ALLOWED, KOC__PROBES_BODY_NOT_ALLOWED);
        else if (has_body(req))
                answer_static(&a, MHD_HTTP_CONTENT_TOO_LARGE, KOC__PROBES_BODY_TOO_LARGE);
        else if (a.path == PATH_METRICS)
                r = serve_metrics(p, &a);
        else if (a.path == PATH_OTHER)
                answer_static(&a, MHD_HTTP_NOT_FOUND, KOC__PROBES_BODY_NOT_FOUND);
        else if (name)
                r = serve_one_check(p, kind, name, &a);
        else
                r = serve_checks(p, req, kind, endpoint, &a);
        if (r < 0)
                return r;
        *ret = a;
        return 0;
}

void koc__probes_answer_done(koc__probes_answer *a) {
        free(a->text);
        a->text = NULL;
}

/* --- serving over MHD ------------------------------------------------------ */

typedef struct arg_walk {
        void (*fn)(void *cls, const char *key, const char *value);
        void *cls;
} arg_walk;

static enum MHD_Result on_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                              const char *value) {
        arg_walk *w = cls;
        w->fn(w->cls, key, value);
        return MHD_YES;
}

static void each_mhd_arg(void *userdata, void (*fn)(void *cls, const char *key, const char *value),
                         void *cls) {
        arg_walk w = { fn, cls };
        MHD_get_connection_values(userdata, MHD_GET_ARGUMENT_KIND, on_arg, &w);
}

/* Turns an answer into an MHD response (taking its text) and queues it. */
static enum MHD_Result queue_answer(koc_probes *p, struct MHD_Connection *c,
                                    koc__probes_answer *a) {
        struct MHD_Response *r = NULL, *shared = NULL;
        enum MHD_Result ret;

        switch (a->body) {
        case KOC__PROBES_BODY_OK:
                shared = p->resp_ok;
                break;
        case KOC__PROBES_BODY_NOT_FOUND:
                shared = p->resp_not_found;
                break;
        case KOC__PROBES_BODY_NOT_ALLOWED:
                shared = p->resp_not_allowed;
                break;
        case KOC__PROBES_BODY_TOO_LARGE:
                shared = p->resp_too_large;
                break;
        case KOC__PROBES_BODY_TEXT:
                r = text_response(a->text, a->len, MHD_RESPMEM_MUST_FREE);
                break;
        case KOC__PROBES_BODY_METRICS:
                r = MHD_create_response_from_buffer(a->len, a->text, MHD_RESPMEM_MUST_FREE);
                if (r && (MHD_add_response_header(r, "Content-Type", CONTENT_TYPE_METRICS) !=
                                  MHD_YES ||
                          MHD_add_response_header(r, "Cache-Control", "no-store") != MHD_YES)) {
                        MHD_destroy_response(r); /* frees the text */
                        a->text = NULL;
                        return MHD_NO;
                }
                break;
        }
        if (shared) {
                count_request(p, a->path, a->code);
                return MHD_queue_response(c, a->code, shared);
        }
        if (!r) {
                koc__probes_answer_done(a);
                return MHD_NO;
        }
        a->text = NULL; /* the response owns it now */
        count_request(p, a->path, a->code);
        ret = MHD_queue_response(c, a->code, r);
        MHD_destroy_response(r);
        return ret;
}

static enum MHD_Result handle_request(void *cls, struct MHD_Connection *c, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **req_cls) {
        listener *l = cls;
        koc_probes *p = l->probes;
        koc__probes_request req = {
                .method = method,
                .url = url,
                .content_length = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                              MHD_HTTP_HEADER_CONTENT_LENGTH),
                .transfer_encoding = MHD_lookup_connection_value(
                        c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING),
                .each_arg = each_mhd_arg,
                .userdata = c,
        };

        /* The first call sees the headers only.  A request that announces a
         * body is refused at once, without reading it (MHD then closes the
         * connection); the others are answered on the second call, once MHD
         * knows the request is complete, so that keep-alive is preserved. */
        if (!*req_cls) {
                *req_cls = (void *)1;
                if (!has_body(&req))
                        return MHD_YES;
        } else if (*upload_data_size > 0) {
                *upload_data_size = 0; /* a body that was not announced: dropped */
                return MHD_YES;
        }

        koc__probes_answer a;
        if (koc__probes_dispatch(p, l->kinds, &req, &a) < 0)
                return MHD_NO;
        return queue_answer(p, c, &a);
}

/* --- public API ----------------------------------------------------------- */

static void probes_free(koc_probes *p) {
        koc_probes_stop(p);
        for (int k = 0; k < _KIND_MAX; k++)
                for (size_t i = 0; i < p->n_checks[k]; i++)
                        if (p->checks[k][i].destroy)
                                p->checks[k][i].destroy(p->checks[k][i].userdata);
        if (p->resp_ok)
                MHD_destroy_response(p->resp_ok);
        if (p->resp_not_found)
                MHD_destroy_response(p->resp_not_found);
        if (p->resp_not_allowed)
                MHD_destroy_response(p->resp_not_allowed);
        if (p->resp_too_large)
                MHD_destroy_response(p->resp_too_large);
        koc_metrics_unref(p->metrics);
        sd_event_unref(p->event);
        free(p);
}

static int add_check(koc_probes *p, enum check_kind kind, const char *name, koc_probes_check_t fn,
                     void *userdata, koc_destroy_t destroy) {
        if (p->n_checks[kind] >= MAX_CHECKS)
                return -ENOSPC;
        probe_check *ch = &p->checks[kind][p->n_checks[kind]++];
        snprintf(ch->name, sizeof(ch->name), "%s", name);
        ch->fn = fn;
        ch->userdata = userdata;
        ch->destroy = destroy;
        return 0;
}

KOC_EXPORT int koc_probes_new(sd_event *event, koc_metrics *metrics, koc_probes **ret) {
        if (!event || !ret)
                return -EINVAL;
        koc_probes *p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->n_ref = 1;
        p->event = sd_event_ref(event);
        p->metrics = metrics ? koc_metrics_ref(metrics) : NULL;
        atomic_init(&p->ready, true);
        p->limits = (koc_mhd_limits){ DEFAULT_MAX_CONNECTIONS, DEFAULT_IDLE_TIMEOUT_SEC,
                                      DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_PER_ADDRESS,
                                      DEFAULT_REQUEST_TIMEOUT_USEC };
        int r = make_static_responses(p);
        if (r >= 0)
                r = add_check(p, KIND_HEALTH, "ping", builtin_ping, p, NULL);
        if (r >= 0)
                r = add_check(p, KIND_READY, "shutdown", builtin_shutdown, p, NULL);
        if (r < 0) {
                probes_free(p);
                return r;
        }
        *ret = p;
        return 0;
}

KOC_EXPORT koc_probes *koc_probes_ref(koc_probes *p) {
        if (p)
                p->n_ref++;
        return p;
}

KOC_EXPORT koc_probes *koc_probes_unref(koc_probes *p) {
        if (!p)
                return NULL;
        assert(p->n_ref > 0);
        if (--p->n_ref == 0)
                probes_free(p);
        return NULL;
}

KOC_EXPORT int koc_probes_set_limits(koc_probes *p, unsigned max_connections,
                                     uint64_t idle_timeout_usec, size_t max_request_bytes) {
        if (!p)
                return -EINVAL;
        if (max_request_bytes > 0 && max_request_bytes < 1024)
                return -EINVAL; /* MHD needs room for its own bookkeeping */
        if (idle_timeout_usec / KOC_USEC_PER_SEC > 24 * 3600)
                return -EINVAL;
        if (max_connections)
                p->limits.max_connections = max_connections;
        if (idle_timeout_usec)
                p->limits.idle_timeout_sec =
                        (unsigned)((idle_timeout_usec + KOC_USEC_PER_SEC - 1) / KOC_USEC_PER_SEC);
        if (max_request_bytes)
                p->limits.max_request_bytes = max_request_bytes;
        return 0;
}

KOC_EXPORT int koc_probes_set_client_limits(koc_probes *p, unsigned max_per_address,
                                            uint64_t request_timeout_usec) {
        if (!p)
                return -EINVAL;
        if (request_timeout_usec > 3600 * KOC_USEC_PER_SEC)
                return -EINVAL;
        if (max_per_address)
                p->limits.max_per_address = max_per_address;
        if (request_timeout_usec)
                p->limits.request_timeout_usec = request_timeout_usec;
        return 0;
}

static unsigned served_kinds(koc_probes *p) {
        unsigned k = 0;
        for (size_t i = 0; i < p->n_listeners; i++)
                k |= p->listeners[i]->kinds;
        return k;
}

KOC_EXPORT int koc_probes_listen(koc_probes *p, const char *address, unsigned kinds) {
        if (!p || !address || kinds == 0 || (kinds & ~(KOC_PROBES_HEALTH | KOC_PROBES_METRICS)))
                return -EINVAL;
        if (strcmp(address, "0") == 0) {
                koc_log_info("probes", "disabled kinds=%s", kinds & KOC_PROBES_METRICS
                                                                    ? "metrics" : "health");
                return 0;
        }
        struct sockaddr_storage ss;
        socklen_t len;
        bool any;
        int r = koc__parse_bind_address(address, &ss, &len, &any);
        if (r < 0) {
                koc_log_error("probes", "invalid bind address address=\"%s\"", address);
                return r;
        }
        if (served_kinds(p) & kinds)
                return -EEXIST;
        if (p->n_listeners >= MAX_LISTENERS)
                return -ENOSPC;

        listener *l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->probes = p;
        l->kinds = kinds;
        r = koc__mhd_event_start(p->event, (struct sockaddr *)&ss, len, !any, &p->limits,
                                HTTP_PRIORITY, handle_request, l, &l->http);
        if (r == -EAFNOSUPPORT && any) {
                /* No IPv6 on this host: ":PORT" falls back to every IPv4 address. */
                struct sockaddr_in sin = { .sin_family = AF_INET,
                                           .sin_port = ((struct sockaddr_in6 *)&ss)->sin6_port,
                                           .sin_addr.s_addr = htonl(INADDR_ANY) };
                r = koc__mhd_event_start(p->event, (struct sockaddr *)&sin, sizeof(sin), false,
                                        &p->limits, HTTP_PRIORITY, handle_request, l, &l->http);
        }
        if (r < 0) {
                koc_log_error("probes", "cannot listen address=\"%s\": %s", address,
                              strerror(-r));
                free(l);
                return r;
        }
        koc__mhd_event_on_close(l->http, count_close, p);
        p->listeners[p->n_listeners++] = l;
        koc_log_info("probes", "listening address=\"%s\" port=%u serves=\"%s%s%s\"", address,
                     koc__mhd_event_port(l->http),
                     kinds & KOC_PROBES_HEALTH ? "/healthz /livez /readyz" : "",
                     kinds == (KOC_PROBES_HEALTH | KOC_PROBES_METRICS) ? " " : "",
                     kinds & KOC_PROBES_METRICS ? "/metrics" : "");
        return 0;
}

KOC_EXPORT int koc_probes_get_port(koc_probes *p, unsigned kind, uint16_t *ret_port) {
        if (!p || !ret_port || (kind != KOC_PROBES_HEALTH && kind != KOC_PROBES_METRICS))
                return -EINVAL;
        for (size_t i = 0; i < p->n_listeners; i++)
                if (p->listeners[i]->kinds & kind) {
                        *ret_port = koc__mhd_event_port(p->listeners[i]->http);
                        return 0;
                }
        return -ENXIO;
}

KOC_EXPORT void koc_probes_stop(koc_probes *p) {
        if (!p)
                return;
        if (p->n_listeners > 0)
                koc_log_info("probes", "stopped listeners=%zu", p->n_listeners);
        for (size_t i = 0; i < p->n_listeners; i++) {
                koc__mhd_event_free(p->listeners[i]->http);
                free(p->listeners[i]);
                p->listeners[i] = NULL;
        }
        p->n_listeners = 0;
}

static int add_user_check(koc_probes *p, enum check_kind kind, const char *name,
                          koc_probes_check_t fn, void *userdata, koc_destroy_t destroy) {
        if (!p || !name || !fn || !valid_check_name(name))
                return -EINVAL;
        if (strcmp(name, "ping") == 0 || strcmp(name, "shutdown") == 0 ||
            find_check(p, kind, name))
                return -EEXIST;
        return add_check(p, kind, name, fn, userdata, destroy);
}

KOC_EXPORT int koc_probes_add_health_check(koc_probes *p, const char *name,
                                           koc_probes_check_t check, void *userdata,
                                           koc_destroy_t destroy) {
        return add_user_check(p, KIND_HEALTH, name, check, userdata, destroy);
}

KOC_EXPORT int koc_probes_add_ready_check(koc_probes *p, const char *name, koc_probes_check_t check,
                                          void *userdata, koc_destroy_t destroy) {
        return add_user_check(p, KIND_READY, name, check, userdata, destroy);
}

KOC_EXPORT int koc_probes_remove_check(koc_probes *p, const char *name) {
        if (!p || !name)
                return -EINVAL;
        if (strcmp(name, "ping") == 0 || strcmp(name, "shutdown") == 0)
                return -EPERM;
        int removed = 0;
        for (int k = 0; k < _KIND_MAX; k++) {
                probe_check *ch = find_check(p, k, name);
                if (!ch)
                        continue;
                size_t i = (size_t)(ch - p->checks[k]);
                probe_check gone = *ch;
                memmove(ch, ch + 1, (p->n_checks[k] - i - 1) * sizeof(*ch));
                p->n_checks[k]--;
                removed++;
                /* After the removal, so that destroy sees a consistent server. */
                if (gone.destroy)
                        gone.destroy(gone.userdata);
        }
        return removed ? 0 : -ENOENT;
}

KOC_EXPORT void koc_probes_set_ready(koc_probes *p, bool ready) {
        if (!p)
                return;
        bool was = atomic_exchange_explicit(&p->ready, ready, memory_order_acq_rel);
        if (was != ready)
                koc_log_info("probes", "readiness switch %s", ready ? "on" : "off (not ready)");
}

KOC_EXPORT bool koc_probes_get_ready(koc_probes *p) {
        return p && atomic_load_explicit(&p->ready, memory_order_acquire);
}
