/* SPDX-License-Identifier: Apache-2.0 */
/*
 * serving: an HTTPS server on the loop, for what a Kubernetes operator serves
 * to the cluster over TLS: metrics for those the cluster allows to read them,
 * and (on a server of their own) admission and conversion webhooks.
 * Internal to koc; the manager composes it.
 *
 * libmicrohttpd (GnuTLS) on the loop through core's MHD glue, with the same
 * guard against slow and idle clients as the probes server.  The certificate
 * and key come from files and are reloaded when they change (inotify on their
 * directories, where a Kubernetes Secret volume swaps its ..data symlink, plus
 * a periodic stat), or are generated in memory (self-signed) when no file is
 * given.  A reload never drops a connection: handshakes that start after it
 * get the new pair, those under way finish with the old one.  A bad rotation
 * (missing, unreadable, not PEM, key does not match, expired) keeps the
 * previous pair, with a rate-limited warn line naming the file and the reason
 * and koc_serving_certificate_reload_errors_total{server}.  TLS 1.2 and 1.3
 * only (KOC__TLS_PRIORITIES).
 *
 * Handlers are registered by path; each request is answered with
 * koc__serving_respond(), at once or later (the connection is suspended
 * meanwhile, the loop keeps running), e.g. after an API call:
 *
 *   koc_serving_config cfg = { .name = "webhook", .address = ":9443",
 *                              .cert_dir = "/tmp/k8s-webhook-server/serving-certs" };
 *   koc__serving_new(event, &cfg, &s, &err);
 *   koc__serving_add_handler(s, "/validate-memcacheds", "POST", 1 << 20, validate, NULL);
 *
 * A filter (at most one) runs before every handler and either answers the
 * request itself or hands it on with koc__serving_next(); the metrics
 * server's filter checks the bearer token and the permission (authz.h).
 * Everything runs on the loop's thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "koc/common.h"
#include "koc/metrics.h"

typedef struct koc_serving koc_serving;
typedef struct koc_serving_request koc_serving_request;

typedef struct koc_serving_config {
        /* Names the server in logs and metric labels ("metrics", "webhook"). */
        const char *name;
        /* Bind address, as the probes server takes it (":8443", "127.0.0.1:0"). */
        const char *address;
        /* The pair: cert_file and key_file, or cert_dir with tls.crt and
         * tls.key in it (a kubernetes.io/tls Secret's keys), or neither: a
         * self-signed pair generated at start (logged). */
        const char *cert_dir;
        const char *cert_file;
        const char *key_file;
        /* The stat fallback's period (0: 10 s). */
        uint64_t reload_interval_usec;
        /* Where the server's metrics go (may be NULL). */
        koc_metrics *metrics;
} koc_serving_config;

/* Loads (or generates) the pair, binds and listens.  Errors name the file
 * and the reason, or the address: -ENOENT, -EACCES, -EBADMSG, -EKEYREJECTED,
 * -EKEYEXPIRED, -EINVAL (configuration), -EADDRINUSE... */
int koc__serving_new(sd_event *event, const koc_serving_config *cfg, koc_serving **ret,
                     koc_error *err);
/* Stops (answering requests still waiting with 503) and frees; NULL is a no-op. */
koc_serving *koc__serving_free(koc_serving *s);
/* Closes the listener and every connection; pending requests get 503. */
void koc__serving_stop(koc_serving *s);
uint16_t koc__serving_port(const koc_serving *s);
/* The serving certificate (leaf) in PEM, malloc'ed: for a self-signed pair,
 * what a client must trust. */
char *koc__serving_cert_pem(const koc_serving *s);
/* Whether the certificate in use is still valid at `now` (seconds since the
 * epoch): 0, or -EKEYEXPIRED with `why` naming the file (or "self-signed")
 * and when it expired, or -ENOKEY when there is none.  A readiness check:
 * past its notAfter every client refuses the server until a rotated pair is
 * loaded. */
int koc__serving_check_certificate(const koc_serving *s, int64_t now, char *why, size_t why_size);
/* Checks the files now (as the inotify and stat triggers do); 0 when the
 * pair in use is the files' (reloaded or unchanged), else the load error. */
int koc__serving_reload(koc_serving *s, koc_error *err);

/* Calls fn for requests to path (exact match; a path ending in '/' matches
 * every path under it) with method (NULL: any), whose body is at most
 * max_body bytes (larger: 413; 0: no body allowed).  -EEXIST, -E2BIG (at
 * most 32 handlers), -EINVAL. */
typedef void (*koc_serving_handler_t)(koc_serving_request *req, void *userdata);
int koc__serving_add_handler(koc_serving *s, const char *path, const char *method,
                             size_t max_body, koc_serving_handler_t fn, void *userdata);
/* The filter runs first for every routed request (404, 405 and 413 are
 * answered before it). */
void koc__serving_set_filter(koc_serving *s, koc_serving_handler_t fn, void *userdata);
/* From a filter: runs the request's handler. */
void koc__serving_next(koc_serving_request *req);

const char *koc__serving_request_method(const koc_serving_request *req);
const char *koc__serving_request_path(const koc_serving_request *req);
/* A request header (case-insensitive name), or NULL. */
const char *koc__serving_request_header(const koc_serving_request *req, const char *name);
const char *koc__serving_request_body(const koc_serving_request *req, size_t *ret_len);
/* Called if the request ends before it is answered (the server stops):
 * cancel what answers it.  One per request; fn NULL clears it. */
void koc__serving_request_on_abort(koc_serving_request *req, void (*fn)(void *userdata),
                                   void *userdata);

/* Answers the request (once): body is taken (malloc'ed, may be NULL with
 * len 0); content_type NULL means text/plain.  Headers (may be NULL) is a
 * NULL-terminated list of name, value pairs. */
void koc__serving_respond(koc_serving_request *req, unsigned code, const char *content_type,
                          char *body, size_t len, const char *const *headers);
/* koc__serving_respond with a copy of a text. */
void koc__serving_respond_text(koc_serving_request *req, unsigned code, const char *text);
