/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The probes server's answer to a request (probes/probes.c,
 * koc__probes_dispatch): routing, methods, the body rule, the checks with
 * ?exclude= and ?verbose, /metrics; no socket.
 *
 * Input: one byte of switches (what the listener serves, whether it has a
 * metrics registry, the readiness switch, which checks fail), then fields
 * separated by NUL: method, request target (path?query, percent-encoded as on
 * the wire), Content-Length, Transfer-Encoding (a header is absent when its
 * field is missing).  The harness splits and decodes the target as
 * libmicrohttpd does.
 *
 * Checked beyond "no crash, leak, UB": the status follows from a model of the
 * rules (405 for methods other than GET and HEAD, then 413 for an announced
 * body, then 404 for unknown paths and checks, 503 exactly when a check that
 * is not excluded fails); every text body is printable ASCII lines, so request
 * text is never echoed raw; check results end with "<endpoint> check
 * passed|failed".
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "koc/log.h"
#include "koc/metrics.h"
#include "koc/probes.h"
#include "probes/probes-internal.h"

enum {
        SW_METRICS_KIND = 1 << 0, /* the listener serves /metrics */
        SW_NO_HEALTH = 1 << 1,    /* ... and not the checks */
        SW_NO_REGISTRY = 1 << 2,  /* the server has no metrics registry */
        SW_NOT_READY = 1 << 3,    /* koc_probes_set_ready(false) */
        SW_LEADER_FAILS = 1 << 4, /* ready check "leader" */
        SW_RENEWAL_FAILS = 1 << 5 /* health check "leader-renewal" */
};

static sd_event *event;
static koc_probes *with_registry, *without_registry;
static uint8_t switches;

static int check_leader(char *why, size_t size, void *ud) {
        if (!(switches & SW_LEADER_FAILS))
                return 0;
        snprintf(why, size, "not the leader");
        return -EAGAIN;
}

static int check_renewal(char *why, size_t size, void *ud) {
        if (!(switches & SW_RENEWAL_FAILS))
                return 0;
        /* Control characters and a reason longer than the buffer. */
        memset(why, '\t', size);
        memcpy(why, "renewal\noverdue\r\x7f", 18);
        return -ETIMEDOUT;
}

static int check_ok(char *why, size_t size, void *ud) {
        return 0;
}

static koc_probes *make(koc_metrics *m) {
        koc_probes *p = NULL;
        if (koc_probes_new(event, m, &p) < 0 ||
            koc_probes_add_ready_check(p, "leader", check_leader, NULL, NULL) < 0 ||
            koc_probes_add_ready_check(p, "informers", check_ok, NULL, NULL) < 0 ||
            koc_probes_add_health_check(p, "leader-renewal", check_renewal, NULL, NULL) < 0)
                abort();
        return p;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        koc_metrics *m = NULL;
        koc_log_set_level(KOC_LOG_ERROR);
        if (sd_event_new(&event) < 0 || koc_metrics_new(&m) < 0)
                abort();
        with_registry = make(m);
        without_registry = make(NULL);
        koc_metrics_unref(m);
        return 0;
}

/* --- the request -------------------------------------------------------------- */

#define MAX_ARGS 64

typedef struct args {
        size_t n;
        char *key[MAX_ARGS];
        char *value[MAX_ARGS]; /* NULL for "key" without "=" */
} args;

static int hex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Decodes %XX in place, as MHD_http_unescape does; a NUL ends the string. */
static void unescape(char *s) {
        char *w = s;
        for (char *r = s; *r; r++) {
                if (r[0] == '%' && hex(r[1]) >= 0 && hex(r[2]) >= 0) {
                        *w++ = (char)(hex(r[1]) * 16 + hex(r[2]));
                        r += 2;
                } else
                        *w++ = *r;
        }
        *w = 0;
}

static void parse_query(char *q, args *a) {
        while (q && *q && a->n < MAX_ARGS) {
                char *amp = strchr(q, '&');
                if (amp)
                        *amp = 0;
                char *eq = strchr(q, '=');
                if (eq)
                        *eq = 0;
                unescape(q);
                if (eq)
                        unescape(eq + 1);
                if (*q) {
                        a->key[a->n] = q;
                        a->value[a->n] = eq ? eq + 1 : NULL;
                        a->n++;
                }
                q = amp ? amp + 1 : NULL;
        }
}

static void each_arg(void *userdata, void (*fn)(void *cls, const char *key, const char *value),
                     void *cls) {
        const args *a = userdata;
        for (size_t i = 0; i < a->n; i++)
                fn(cls, a->key[i], a->value[i]);
}

/* --- the model ---------------------------------------------------------------- */

static bool is_health_name(const char *n) {
        return strcmp(n, "ping") == 0 || strcmp(n, "leader-renewal") == 0;
}

static bool is_ready_name(const char *n) {
        return strcmp(n, "shutdown") == 0 || strcmp(n, "leader") == 0 ||
               strcmp(n, "informers") == 0;
}

static bool fails(const char *n) {
        return (strcmp(n, "shutdown") == 0 && (switches & SW_NOT_READY)) ||
               (strcmp(n, "leader") == 0 && (switches & SW_LEADER_FAILS)) ||
               (strcmp(n, "leader-renewal") == 0 && (switches & SW_RENEWAL_FAILS));
}

/* The first 16 distinct non-empty exclude values are honoured. */
static bool excluded(const args *a, const char *name) {
        const char *seen[16];
        size_t n = 0;
        for (size_t i = 0; i < a->n && n < 16; i++) {
                if (strcmp(a->key[i], "exclude") != 0 || !a->value[i] || !a->value[i][0])
                        continue;
                bool dup = false;
                for (size_t k = 0; k < n; k++)
                        dup = dup || strcmp(seen[k], a->value[i]) == 0;
                if (!dup)
                        seen[n++] = a->value[i];
        }
        for (size_t k = 0; k < n; k++)
                if (strcmp(seen[k], name) == 0)
                        return true;
        return false;
}

static bool verbose(const args *a) {
        for (size_t i = 0; i < a->n; i++)
                if (strcmp(a->key[i], "verbose") == 0)
                        return true;
        return false;
}

/* "/livez" -> "" (the endpoint), "/livez/NAME" -> "NAME"; NULL otherwise. */
static const char *under(const char *url, const char *prefix) {
        size_t n = strlen(prefix);
        if (strncmp(url, prefix, n) != 0)
                return NULL;
        if (!url[n])
                return "";
        return url[n] == '/' && url[n + 1] ? url + n + 1 : NULL;
}

static void check_text(const koc__probes_answer *a) {
        if (!a->text || a->len == 0)
                abort();
        for (size_t i = 0; i < a->len; i++) {
                unsigned char c = (unsigned char)a->text[i];
                if (c != '\n' && (c < 0x20 || c > 0x7e))
                        abort();
        }
        if (a->text[a->len - 1] != '\n')
                abort();
}

static void expect(const koc__probes_answer *a, unsigned code, enum koc__probes_body body) {
        if (a->code != code || a->body != body)
                abort();
}

static void check_answer(const koc__probes_answer *a, unsigned kinds, bool registry,
                         const char *method, const char *url, const char *cl, const char *te,
                         const args *q) {
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
                { expect(a, 405, KOC__PROBES_BODY_NOT_ALLOWED); return; }
        if ((cl && strspn(cl, "0") != strlen(cl)) || te)
                { expect(a, 413, KOC__PROBES_BODY_TOO_LARGE); return; }

        static const char *const endpoints[] = { "healthz", "livez", "readyz" };
        for (size_t e = 0; e < 3 && (kinds & KOC_PROBES_HEALTH); e++) {
                char prefix[16];
                snprintf(prefix, sizeof prefix, "/%s", endpoints[e]);
                const char *name = under(url, prefix);
                if (!name)
                        continue;
                bool ready = e == 2;
                if (*name) {
                        if (!(ready ? is_ready_name(name) : is_health_name(name)))
                                { expect(a, 404, KOC__PROBES_BODY_NOT_FOUND); return; }
                        if (!fails(name))
                                { expect(a, 200, KOC__PROBES_BODY_OK); return; }
                        expect(a, 503, KOC__PROBES_BODY_TEXT);
                        check_text(a);
                        if (strncmp(a->text, "internal server error: ", 23) != 0)
                                abort();
                        return;
                }
                static const char *const health[] = { "ping", "leader-renewal" };
                static const char *const readiness[] = { "shutdown", "leader", "informers" };
                const char *const *names = ready ? readiness : health;
                size_t n = ready ? 3 : 2;
                bool failed = false;
                for (size_t i = 0; i < n; i++)
                        failed = failed || (!excluded(q, names[i]) && fails(names[i]));
                if (!failed && !verbose(q))
                        { expect(a, 200, KOC__PROBES_BODY_OK); return; }
                expect(a, failed ? 503 : 200, KOC__PROBES_BODY_TEXT);
                check_text(a);
                char tail[64];
                int tl = snprintf(tail, sizeof tail, "%s check %s\n", endpoints[e],
                                  failed ? "failed" : "passed");
                if (a->len < (size_t)tl || memcmp(a->text + a->len - tl, tail, tl) != 0)
                        abort();
                return;
        }
        if ((kinds & KOC_PROBES_METRICS) && registry && strcmp(url, "/metrics") == 0) {
                expect(a, 200, KOC__PROBES_BODY_METRICS);
                return;
        }
        expect(a, 404, KOC__PROBES_BODY_NOT_FOUND);
}

/* --- the harness -------------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1 || size > 8192)
                return 0;
        switches = data[0];
        char *buf = malloc(size);
        if (!buf)
                return 0;
        memcpy(buf, data + 1, size - 1);
        buf[size - 1] = 0;

        /* Up to four NUL-separated fields. */
        char *field[4] = { NULL };
        size_t n_fields = 0;
        for (char *s = buf; n_fields < 4 && s < buf + size - 1; s += strlen(s) + 1)
                field[n_fields++] = s;
        const char *method = field[0] ? field[0] : "GET";
        char empty[1] = "";
        char *target = field[1] ? field[1] : empty;
        const char *cl = field[2], *te = field[3];

        char *query = strchr(target, '?');
        if (query)
                *query++ = 0;
        args q = { 0 };
        parse_query(query, &q);
        unescape(target);

        unsigned kinds = (switches & SW_NO_HEALTH) ? 0 : KOC_PROBES_HEALTH;
        if (switches & SW_METRICS_KIND)
                kinds |= KOC_PROBES_METRICS;
        if (!kinds)
                kinds = KOC_PROBES_METRICS;
        bool registry = !(switches & SW_NO_REGISTRY);
        koc_probes *p = registry ? with_registry : without_registry;
        koc_probes_set_ready(p, !(switches & SW_NOT_READY));

        koc__probes_request req = {
                .method = method,
                .url = target,
                .content_length = cl,
                .transfer_encoding = te,
                .each_arg = each_arg,
                .userdata = &q,
        };
        koc__probes_answer a;
        if (koc__probes_dispatch(p, kinds, &req, &a) == 0) {
                check_answer(&a, kinds, registry, method, target, cl, te, &q);
                koc__probes_answer_done(&a);
        }
        free(buf);
        return 0;
}
