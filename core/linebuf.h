/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A splitter for newline-delimited streams (Kubernetes watch responses).
 *
 * Data arrives in chunks that may split one line or join several; the
 * splitter hands out each complete line once, without its "\n" (and without
 * a "\r" before it), and skips empty lines.  Complete lines inside one chunk
 * are handed out straight from the chunk; only the unfinished tail is copied,
 * into a buffer that grows geometrically but never beyond max_line + 1 bytes.
 * A line longer than max_line fails with -EMSGSIZE before it is stored, so a
 * hostile stream cannot make the buffer grow without bound.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Called for each complete, non-empty line.  line is not NUL-terminated
 * (len bytes).  A negative return stops the feed and is returned by it. */
typedef int (*koc_linebuf_line_t)(const char *line, size_t len, void *userdata);

typedef struct koc_linebuf {
        char *buf;       /* the unfinished tail of the stream */
        size_t len;      /* bytes in buf */
        size_t alloc;    /* bytes allocated; never above max_line + 1 */
        size_t max_line; /* longest accepted line, without the newline */
        int error;       /* sticky: once a feed failed, every later feed fails */
} koc_linebuf;

#define KOC_LINEBUF_DEFAULT_MAX (16u * 1024u * 1024u)

/* max_line 0 means KOC_LINEBUF_DEFAULT_MAX. */
void koc__linebuf_init(koc_linebuf *lb, size_t max_line);
void koc__linebuf_done(koc_linebuf *lb);

/* Feeds n bytes.  Returns 0, -EMSGSIZE when a line is over max_line, -ENOMEM,
 * or the callback's negative return. */
int koc__linebuf_feed(koc_linebuf *lb, const char *data, size_t n, koc_linebuf_line_t cb,
                     void *userdata);

/* At the end of the stream: hands out an unfinished last line, if any (a
 * stream need not end with a newline).  Returns what the callback returned,
 * 0 when there was nothing left, or the sticky error. */
int koc__linebuf_finish(koc_linebuf *lb, koc_linebuf_line_t cb, void *userdata);

/* Bytes of an unfinished line waiting for more data. */
static inline size_t koc__linebuf_pending(const koc_linebuf *lb) {
        return lb->len;
}
