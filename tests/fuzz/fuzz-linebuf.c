/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The watch line splitter under random chunkings.
 *
 * Input: byte 0 picks max_line (1..64, or the default), byte 1 seeds the
 * chunk sizes, the rest is the stream.  Every line handed out, and the point
 * where the feed fails with -EMSGSIZE, is checked against a reference split
 * of the whole stream; the tail buffer never exceeds max_line + 1 bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/linebuf.h"

typedef struct ref_line {
        const char *p;
        size_t len;
} ref_line;

typedef struct got {
        const ref_line *ref;
        size_t n_ref, next;
} got;

static int on_line(const char *line, size_t len, void *userdata) {
        got *g = userdata;
        if (g->next >= g->n_ref || g->ref[g->next].len != len ||
            memcmp(g->ref[g->next].p, line, len) != 0)
                abort(); /* a line the reference does not have */
        g->next++;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 2)
                return 0;
        size_t max_line = data[0] < 200 ? (size_t)(data[0] % 64) + 1 : 0;
        unsigned seed = data[1];
        const char *s = (const char *)data + 2;
        size_t n = size - 2;
        size_t cap = max_line ? max_line : KOC_LINEBUF_DEFAULT_MAX;

        /* The reference: split on "\n", strip one "\r", skip empty lines,
         * stop at the first line over the cap. */
        ref_line *ref = calloc(n + 1, sizeof *ref);
        if (!ref)
                return 0;
        size_t n_ref = 0;
        bool expect_error = false;
        for (size_t i = 0; i <= n && !expect_error;) {
                const char *nl = i < n ? memchr(s + i, '\n', n - i) : NULL;
                size_t end = nl ? (size_t)(nl - s) : n;
                size_t len = end - i;
                if (len > 0 && s[i + len - 1] == '\r')
                        len--;
                if (len > cap)
                        expect_error = true;
                else if (len > 0)
                        ref[n_ref++] = (ref_line){s + i, len};
                if (!nl)
                        break;
                i = end + 1;
        }

        koc_linebuf lb;
        koc__linebuf_init(&lb, max_line);
        got g = {.ref = ref, .n_ref = n_ref};
        int r = 0;
        size_t off = 0;
        while (off < n) {
                seed = seed * 1103515245u + 12345u;
                size_t chunk = 1 + (seed >> 16) % 17;
                if ((seed & 7) == 0)
                        chunk = n - off; /* now and then: the rest at once */
                if (chunk > n - off)
                        chunk = n - off;
                r = koc__linebuf_feed(&lb, s + off, chunk, on_line, &g);
                if (r < 0)
                        break;
                if (lb.alloc > cap + 1 || lb.len > cap + 1)
                        abort();
                off += chunk;
        }
        if (r == 0)
                r = koc__linebuf_finish(&lb, on_line, &g);
        if (expect_error != (r == -EMSGSIZE) || (r < 0 && r != -EMSGSIZE))
                abort();
        if (!expect_error && g.next != n_ref)
                abort(); /* a line went missing */
        if (expect_error && g.next != n_ref)
                abort(); /* every line before the overlong one came out */
        /* The error is sticky. */
        if (r < 0 && koc__linebuf_feed(&lb, "x\n", 2, on_line, &g) != r)
                abort();
        koc__linebuf_done(&lb);
        free(ref);
        return 0;
}
