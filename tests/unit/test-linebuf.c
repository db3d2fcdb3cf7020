/* SPDX-License-Identifier: Apache-2.0 */
/* The watch stream line splitter: every split point, CRLF, empty lines, caps. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/linebuf.h"

#define MAX_LINES 16

typedef struct collected {
        char *lines[MAX_LINES];
        size_t n;
        int fail_at; /* return -EIO for this line index (or -1) */
} collected;

static int collect(const char *line, size_t len, void *userdata) {
        collected *c = userdata;
        if ((int)c->n == c->fail_at)
                return -EIO;
        assert_true(c->n < MAX_LINES);
        /* The line must not contain its terminator. */
        assert_null(memchr(line, '\n', len));
        c->lines[c->n] = strndup(line, len);
        assert_non_null(c->lines[c->n]);
        c->n++;
        return 0;
}

static void collected_free(collected *c) {
        for (size_t i = 0; i < c->n; i++)
                free(c->lines[i]);
        c->n = 0;
}

static const char *const events[] = {
        "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"1\"}}}",
        "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"2\"}"
        "}}",
        "{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"3\"}}"
        "}",
};

static char *make_stream(const char *sep) {
        size_t n = 0;
        for (size_t i = 0; i < 3; i++)
                n += strlen(events[i]) + strlen(sep);
        char *s = malloc(n + 1);
        assert_non_null(s);
        s[0] = 0;
        for (size_t i = 0; i < 3; i++) {
                strcat(s, events[i]);
                strcat(s, sep);
        }
        return s;
}

static void assert_three_events(collected *c) {
        assert_int_equal(c->n, 3);
        for (size_t i = 0; i < 3; i++)
                assert_string_equal(c->lines[i], events[i]);
}

/* Feeds the stream in two chunks split at every offset, and in three chunks
 * split at every pair of offsets. */
static void test_every_split_point(void **state) {
        const char *seps[] = {"\n", "\r\n"};
        for (size_t s = 0; s < 2; s++) {
                char *stream = make_stream(seps[s]);
                size_t len = strlen(stream);
                for (size_t i = 0; i <= len; i++) {
                        koc_linebuf lb;
                        collected c = {.fail_at = -1};
                        koc__linebuf_init(&lb, 0);
                        assert_int_equal(koc__linebuf_feed(&lb, stream, i, collect, &c), 0);
                        assert_int_equal(koc__linebuf_feed(&lb, stream + i, len - i, collect, &c),
                                         0);
                        assert_int_equal(koc__linebuf_pending(&lb), 0);
                        assert_int_equal(koc__linebuf_finish(&lb, collect, &c), 0);
                        assert_three_events(&c);
                        collected_free(&c);
                        koc__linebuf_done(&lb);
                }
                for (size_t i = 0; i <= len; i += 7)
                        for (size_t j = i; j <= len; j++) {
                                koc_linebuf lb;
                                collected c = {.fail_at = -1};
                                koc__linebuf_init(&lb, 0);
                                assert_int_equal(koc__linebuf_feed(&lb, stream, i, collect, &c), 0);
                                assert_int_equal(
                                        koc__linebuf_feed(&lb, stream + i, j - i, collect, &c), 0);
                                assert_int_equal(
                                        koc__linebuf_feed(&lb, stream + j, len - j, collect, &c), 0);
                                assert_three_events(&c);
                                collected_free(&c);
                                koc__linebuf_done(&lb);
                        }
                free(stream);
        }
}

static void test_byte_by_byte(void **state) {
        char *stream = make_stream("\n");
        koc_linebuf lb;
        collected c = {.fail_at = -1};
        koc__linebuf_init(&lb, 0);
        for (size_t i = 0; stream[i]; i++) {
                assert_int_equal(koc__linebuf_feed(&lb, stream + i, 1, collect, &c), 0);
                /* Each event comes out exactly when its newline arrives. */
                size_t expect = 0;
                for (size_t k = 0; k <= i; k++)
                        expect += stream[k] == '\n';
                assert_int_equal(c.n, expect);
        }
        assert_three_events(&c);
        collected_free(&c);
        koc__linebuf_done(&lb);
        free(stream);
}

static void test_empty_lines_skipped(void **state) {
        const char *s = "\n\r\n\nabc\n\n\r\ndef\r\n\n";
        koc_linebuf lb;
        collected c = {.fail_at = -1};
        koc__linebuf_init(&lb, 0);
        assert_int_equal(koc__linebuf_feed(&lb, s, strlen(s), collect, &c), 0);
        assert_int_equal(c.n, 2);
        assert_string_equal(c.lines[0], "abc");
        assert_string_equal(c.lines[1], "def");
        collected_free(&c);
        koc__linebuf_done(&lb);
}

static void test_last_line_without_newline(void **state) {
        koc_linebuf lb;
        collected c = {.fail_at = -1};
        koc__linebuf_init(&lb, 0);
        assert_int_equal(koc__linebuf_feed(&lb, "one\ntw", 6, collect, &c), 0);
        assert_int_equal(c.n, 1);
        assert_int_equal(koc__linebuf_pending(&lb), 2);
        assert_int_equal(koc__linebuf_feed(&lb, "o", 1, collect, &c), 0);
        assert_int_equal(koc__linebuf_finish(&lb, collect, &c), 0);
        assert_int_equal(c.n, 2);
        assert_string_equal(c.lines[1], "two");
        /* Nothing left: a second finish hands out nothing. */
        assert_int_equal(koc__linebuf_finish(&lb, collect, &c), 0);
        assert_int_equal(c.n, 2);
        collected_free(&c);
        koc__linebuf_done(&lb);
}

static void test_line_cap(void **state) {
        koc_linebuf lb;
        collected c = {.fail_at = -1};

        /* Exactly max_line bytes is accepted, also with CRLF, in one chunk or
         * split. */
        koc__linebuf_init(&lb, 8);
        assert_int_equal(koc__linebuf_feed(&lb, "12345678\n", 9, collect, &c), 0);
        assert_int_equal(koc__linebuf_feed(&lb, "1234", 4, collect, &c), 0);
        assert_int_equal(koc__linebuf_feed(&lb, "5678\r", 5, collect, &c), 0);
        assert_int_equal(koc__linebuf_feed(&lb, "\n", 1, collect, &c), 0);
        assert_int_equal(c.n, 2);
        assert_string_equal(c.lines[1], "12345678");
        assert_true(lb.alloc <= 9);
        koc__linebuf_done(&lb);
        collected_free(&c);

        /* One byte more fails, whole or split, and the error sticks. */
        koc__linebuf_init(&lb, 8);
        assert_int_equal(koc__linebuf_feed(&lb, "123456789\n", 10, collect, &c), -EMSGSIZE);
        assert_int_equal(koc__linebuf_feed(&lb, "ok\n", 3, collect, &c), -EMSGSIZE);
        assert_int_equal(c.n, 0);
        koc__linebuf_done(&lb);

        koc__linebuf_init(&lb, 8);
        assert_int_equal(koc__linebuf_feed(&lb, "ok\n12345", 8, collect, &c), 0);
        assert_int_equal(koc__linebuf_feed(&lb, "67890", 5, collect, &c), -EMSGSIZE);
        assert_int_equal(c.n, 1);
        assert_null(lb.buf); /* memory released at once */
        koc__linebuf_done(&lb);
        collected_free(&c);

        koc__linebuf_init(&lb, 8);
        assert_int_equal(koc__linebuf_feed(&lb, "123456789", 9, collect, &c), 0); /* may be \r */
        assert_int_equal(koc__linebuf_feed(&lb, "\n", 1, collect, &c), -EMSGSIZE);
        koc__linebuf_done(&lb);

        koc__linebuf_init(&lb, 8);
        assert_int_equal(koc__linebuf_feed(&lb, "123456789", 9, collect, &c), 0);
        assert_int_equal(koc__linebuf_finish(&lb, collect, &c), -EMSGSIZE);
        koc__linebuf_done(&lb);
        assert_int_equal(c.n, 0);
}

/* A 100 MB line fed in 64 KiB chunks: fails once over the cap, and the buffer
 * never grows beyond it. */
static void test_huge_line(void **state) {
        const size_t chunk = 64 * 1024, total = 100u * 1024 * 1024, cap = 1024 * 1024;
        char *buf = malloc(chunk);
        assert_non_null(buf);
        memset(buf, 'x', chunk);

        koc_linebuf lb;
        collected c = {.fail_at = -1};
        koc__linebuf_init(&lb, cap);
        size_t fed = 0, max_alloc = 0;
        int r = 0;
        for (; fed < total && r == 0; fed += chunk) {
                r = koc__linebuf_feed(&lb, buf, chunk, collect, &c);
                if (lb.alloc > max_alloc)
                        max_alloc = lb.alloc;
        }
        assert_int_equal(r, -EMSGSIZE);
        assert_true(fed <= cap + 2 * chunk); /* noticed as soon as it was over */
        assert_true(max_alloc <= cap + 1);
        /* The rest of the 100 MB is refused without allocating. */
        for (; fed < total; fed += chunk) {
                assert_int_equal(koc__linebuf_feed(&lb, buf, chunk, collect, &c), -EMSGSIZE);
                assert_int_equal(lb.alloc, 0);
        }
        assert_int_equal(c.n, 0);
        koc__linebuf_done(&lb);

        /* The default cap (16 MiB) holds for 100 MB as well. */
        koc__linebuf_init(&lb, 0);
        assert_int_equal(lb.max_line, KOC_LINEBUF_DEFAULT_MAX);
        max_alloc = 0;
        r = 0;
        for (fed = 0; fed < total && r == 0; fed += chunk) {
                r = koc__linebuf_feed(&lb, buf, chunk, collect, &c);
                if (lb.alloc > max_alloc)
                        max_alloc = lb.alloc;
        }
        assert_int_equal(r, -EMSGSIZE);
        assert_true(max_alloc <= KOC_LINEBUF_DEFAULT_MAX + 1);
        koc__linebuf_done(&lb);
        free(buf);
}

static void test_callback_error_stops(void **state) {
        char *stream = make_stream("\n");
        koc_linebuf lb;
        collected c = {.fail_at = 1};
        koc__linebuf_init(&lb, 0);
        assert_int_equal(koc__linebuf_feed(&lb, stream, strlen(stream), collect, &c), -EIO);
        assert_int_equal(c.n, 1);
        assert_int_equal(koc__linebuf_feed(&lb, "x\n", 2, collect, &c), -EIO);
        assert_int_equal(c.n, 1);
        collected_free(&c);
        koc__linebuf_done(&lb);
        free(stream);
}

/* Many events joined in one chunk, then one event split over many chunks. */
static void test_joined_and_split(void **state) {
        koc_linebuf lb;
        collected c = {.fail_at = -1};
        koc__linebuf_init(&lb, 0);
        assert_int_equal(koc__linebuf_feed(&lb, "a\nb\nc\nd\ne\nf\ng\nh\nhalf", 20, collect, &c), 0);
        assert_int_equal(c.n, 8);
        assert_int_equal(koc__linebuf_feed(&lb, "-and", 4, collect, &c), 0);
        assert_int_equal(koc__linebuf_feed(&lb, "-half\nnext\n", 11, collect, &c), 0);
        assert_int_equal(c.n, 10);
        assert_string_equal(c.lines[7], "h");
        assert_string_equal(c.lines[8], "half-and-half");
        assert_string_equal(c.lines[9], "next");
        collected_free(&c);
        koc__linebuf_done(&lb);
}

/* Random streams (fixed seed): random events, LF or CRLF, empty lines,
 * random chunk sizes; every event comes out once, in order. */
typedef struct expect_ctx {
        char **lines;
        size_t n, next;
} expect_ctx;

static int expect_line(const char *line, size_t len, void *userdata) {
        expect_ctx *e = userdata;
        assert_true(e->next < e->n);
        assert_int_equal(len, strlen(e->lines[e->next]));
        assert_memory_equal(line, e->lines[e->next], len);
        e->next++;
        return 0;
}

static void test_random_chunks(void **state) {
        unsigned seed = 12345;
        for (int round = 0; round < 200; round++) {
                size_t n = 1 + (size_t)(rand_r(&seed) % 20);
                char **lines = calloc(n, sizeof *lines);
                char *stream = malloc(n * 300 + 16);
                size_t len = 0;
                assert_non_null(lines);
                assert_non_null(stream);
                for (size_t i = 0; i < n; i++) {
                        size_t l = 1 + (size_t)(rand_r(&seed) % 200);
                        lines[i] = malloc(l + 1);
                        assert_non_null(lines[i]);
                        for (size_t k = 0; k < l; k++)
                                lines[i][k] = (char)('a' + rand_r(&seed) % 26);
                        lines[i][l] = 0;
                        memcpy(stream + len, lines[i], l);
                        len += l;
                        if (rand_r(&seed) % 2)
                                stream[len++] = '\r';
                        stream[len++] = '\n';
                        if (rand_r(&seed) % 4 == 0)
                                stream[len++] = '\n'; /* an empty line */
                }
                koc_linebuf lb;
                expect_ctx e = {.lines = lines, .n = n};
                koc__linebuf_init(&lb, 256);
                for (size_t off = 0; off < len;) {
                        size_t chunk = 1 + (size_t)(rand_r(&seed) % 64);
                        if (chunk > len - off)
                                chunk = len - off;
                        assert_int_equal(
                                koc__linebuf_feed(&lb, stream + off, chunk, expect_line, &e), 0);
                        off += chunk;
                }
                assert_int_equal(koc__linebuf_finish(&lb, expect_line, &e), 0);
                assert_int_equal(e.next, n);
                assert_true(lb.alloc <= 257);
                koc__linebuf_done(&lb);
                for (size_t i = 0; i < n; i++)
                        free(lines[i]);
                free(lines);
                free(stream);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_every_split_point),
                cmocka_unit_test(test_byte_by_byte),
                cmocka_unit_test(test_empty_lines_skipped),
                cmocka_unit_test(test_last_line_without_newline),
                cmocka_unit_test(test_line_cap),
                cmocka_unit_test(test_huge_line),
                cmocka_unit_test(test_callback_error_stops),
                cmocka_unit_test(test_joined_and_split),
                cmocka_unit_test(test_random_chunks),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
