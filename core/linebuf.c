/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "linebuf.h"

void koc__linebuf_init(koc_linebuf *lb, size_t max_line) {
        *lb = (koc_linebuf){.max_line = max_line ? max_line : KOC_LINEBUF_DEFAULT_MAX};
}

void koc__linebuf_done(koc_linebuf *lb) {
        free(lb->buf);
        lb->buf = NULL;
        lb->len = lb->alloc = 0;
}

/* Strips one trailing "\r" and skips empty lines. */
static int emit(const char *line, size_t len, koc_linebuf_line_t cb, void *userdata) {
        if (len > 0 && line[len - 1] == '\r')
                len--;
        if (len == 0)
                return 0;
        return cb(line, len, userdata);
}

/* Appends to the tail buffer.  The caller has checked that the result stays
 * within max_line (plus one byte for a "\r" that is stripped later). */
static int append(koc_linebuf *lb, const char *data, size_t n) {
        size_t need = lb->len + n;
        size_t cap = lb->max_line + 1;

        if (need > lb->alloc) {
                size_t a = lb->alloc ? lb->alloc : 4096;
                while (a < need)
                        a = a > cap / 2 ? cap : a * 2;
                if (a > cap)
                        a = cap;
                char *p = realloc(lb->buf, a);
                if (!p)
                        return -ENOMEM;
                lb->buf = p;
                lb->alloc = a;
        }
        memcpy(lb->buf + lb->len, data, n);
        lb->len = need;
        return 0;
}

/* A line's length as the cap sees it: without a trailing "\r". */
static bool over_cap(const koc_linebuf *lb, size_t len, bool complete, char last) {
        if (complete && len > 0 && last == '\r')
                len--;
        /* An unfinished line may still end in a "\r" that is not counted. */
        return complete ? len > lb->max_line : len > lb->max_line + 1;
}

static int fail(koc_linebuf *lb, int r) {
        lb->error = r;
        koc__linebuf_done(lb);
        return r;
}

int koc__linebuf_feed(koc_linebuf *lb, const char *data, size_t n, koc_linebuf_line_t cb,
                     void *userdata) {
        int r;

        if (lb->error)
                return lb->error;

        while (n > 0) {
                const char *nl = memchr(data, '\n', n);
                if (!nl) {
                        if (over_cap(lb, lb->len + n, false, 0))
                                return fail(lb, -EMSGSIZE);
                        r = append(lb, data, n);
                        if (r < 0)
                                return fail(lb, r);
                        return 0;
                }

                size_t part = (size_t)(nl - data);
                if (lb->len == 0) {
                        /* The common case: a whole line inside this chunk. */
                        if (over_cap(lb, part, true, part ? data[part - 1] : 0))
                                return fail(lb, -EMSGSIZE);
                        r = emit(data, part, cb, userdata);
                } else {
                        if (over_cap(lb, lb->len + part, true,
                                     part ? data[part - 1] : lb->buf[lb->len - 1]))
                                return fail(lb, -EMSGSIZE);
                        r = append(lb, data, part);
                        if (r < 0)
                                return fail(lb, r);
                        size_t len = lb->len;
                        lb->len = 0;
                        r = emit(lb->buf, len, cb, userdata);
                }
                if (r < 0)
                        return fail(lb, r);
                data = nl + 1;
                n -= part + 1;
        }
        return 0;
}

int koc__linebuf_finish(koc_linebuf *lb, koc_linebuf_line_t cb, void *userdata) {
        if (lb->error)
                return lb->error;
        if (lb->len == 0)
                return 0;
        size_t len = lb->len;
        lb->len = 0;
        if (len > lb->max_line && !(len == lb->max_line + 1 && lb->buf[len - 1] == '\r'))
                return fail(lb, -EMSGSIZE);
        int r = emit(lb->buf, len, cb, userdata);
        if (r < 0)
                return fail(lb, r);
        return r;
}
