/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What an answer's head and body do to the API client (core/client.c): the
 * header callback's reading of each line, koc__header_line_parse (status
 * lines, Retry-After in any case, every other header ignored), and the
 * bounded body buffer, koc__body_append.  curl decodes gzip itself
 * (CURLOPT_ACCEPT_ENCODING) and hands the client decoded bytes, so the cap is
 * what bounds a gzip body's expansion; a body here stands for decoded bytes.
 *
 * Input: two bytes of body cap (0..65535), one byte seeding the chunk sizes,
 * then a response: header lines up to an empty line, then the body.
 *
 * Checked beyond "no crash, leak, UB": a status line gives a code in 0..999,
 * the three digits after its first space, 0 unless there are three; no other line
 * is a status line; a Retry-After is at most a day away, and an HTTP date in
 * the past means now; the body kept equals the bytes received while they fit,
 * -EMSGSIZE comes exactly when the total passes the cap and leaves the kept
 * bytes as they were, and the buffer never grows beyond cap + 1 bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/client-internal.h"
#include "koc/time.h"

#define NOW (1700000000ull * KOC_USEC_PER_SEC)

static void check_line(const char *p, size_t n) {
        koc_header_line h;
        koc__header_line_parse(p, n, NOW, &h);
        bool status_line = n >= 12 && memcmp(p, "HTTP/", 5) == 0;
        if (status_line != (h.status >= 0) || h.status > 999)
                abort();
        if (status_line) {
                const char *sp = memchr(p, ' ', n);
                bool digits = sp && (size_t)(sp - p) + 4 <= n && sp[1] >= '0' && sp[1] <= '9' &&
                              sp[2] >= '0' && sp[2] <= '9' && sp[3] >= '0' && sp[3] <= '9';
                if (h.status != (digits ? (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0')
                                        : 0))
                        abort();
                if (h.has_retry_after)
                        abort();
        }
        if (h.has_retry_after &&
            (h.retry_after_usec > 86400 * KOC_USEC_PER_SEC || n <= 12 ||
             strncasecmp(p, "Retry-After:", 12) != 0))
                abort();
        if (!h.has_retry_after && h.retry_after_usec != 0)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 3)
                return 0;
        size_t max = (size_t)data[0] | (size_t)data[1] << 8;
        uint32_t seed = data[2] | 1u;
        const char *p = (const char *)data + 3, *end = (const char *)data + size;

        /* The head: curl hands over one line at a time, with its line end. */
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
                check_line(p, n);
                bool last = n == 1 || (n == 2 && p[0] == '\r');
                p += n;
                if (last)
                        break;
        }

        /* The body, in chunks of pseudo-random size. */
        const char *body = p;
        char *buf = NULL;
        size_t len = 0, alloc = 0, total = 0;
        while (p < end) {
                seed = seed * 1103515245u + 12345u;
                size_t n = 1 + (seed >> 16) % 700;
                if (n > (size_t)(end - p))
                        n = (size_t)(end - p);
                int r = koc__body_append(&buf, &len, &alloc, max, p, n);
                if (r == -ENOMEM)
                        break;
                total += n;
                if ((r == -EMSGSIZE) != (total > max) || (r < 0 && r != -EMSGSIZE))
                        abort();
                if (alloc > max + 1 || len > max)
                        abort();
                if (r < 0)
                        break; /* the transfer is aborted here */
                p += n;
        }
        /* What is kept is the body's beginning, up to the chunk that did
         * not fit. */
        if (len != (size_t)(p - body) || (len && memcmp(buf, body, len) != 0))
                abort();
        free(buf);
        return 0;
}
