/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The path builder every reconcile write goes through (koc__resource_path,
 * behind koc_resource_path, framework/cache/informer.c), on any group,
 * version, resource, namespace, name and subresource.
 *
 * Input: byte 0 holds flags (bit 0: a namespace, 1: a name, 2: a
 * subresource, 3: a group), byte 1 the buffer size (0-255, so that
 * -ENAMETOOLONG is reached too); the rest is six NUL-separated fields:
 * group, version, resource, namespace, name, subresource (missing ones are
 * "").
 *
 * Checked: a success gives a path with exactly the expected segments, in
 * order, each equal to its input and none empty, "." or ".."; the path holds
 * no '?', '#', '%', whitespace or control character.  -EINVAL leaves the
 * buffer untouched and says why in one printable line; nothing else but
 * -ENAMETOOLONG is returned.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/names.h"
#include "framework/cache/informer.h"

#define CHECK(cond)                                                                                \
        do {                                                                                       \
                if (!(cond)) {                                                                     \
                        fprintf(stderr, "check failed: %s (line %d)\n", #cond, __LINE__);          \
                        abort();                                                                   \
                }                                                                                  \
        } while (0)

static bool printable(const char *s) {
        for (; *s; s++)
                if ((unsigned char)*s < ' ' || (unsigned char)*s >= 0x7f)
                        return false;
        return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 2)
                return 0;
        unsigned flags = data[0];
        size_t bufsize = data[1];
        char *text = malloc(size - 2 + 1);
        if (!text)
                return 0;
        memcpy(text, data + 2, size - 2);
        text[size - 2] = '\0';
        /* Six fields; NUL bytes in the input split them. */
        const char *field[6] = {"", "", "", "", "", ""};
        const char *p = text, *end = text + (size - 2);
        for (size_t i = 0; i < 6 && p <= end; i++) {
                field[i] = p;
                p += strlen(p) + 1;
        }
        koc_resource res = {.group = (flags & 8) ? field[0] : NULL,
                            .version = field[1],
                            .resource = field[2],
                            .namespaced = true};
        const char *ns = (flags & 1) ? field[3] : NULL;
        const char *name = (flags & 2) ? field[4] : NULL;
        const char *sub = (flags & 4) ? field[5] : NULL;

        char *buf = malloc(bufsize + 1);
        if (!buf) {
                free(text);
                return 0;
        }
        memset(buf, 'U', bufsize);
        buf[bufsize] = '\0';
        koc_error err = {0};
        int r = koc__resource_path(&res, ns, name, sub, buf, bufsize, &err);
        CHECK(r == 0 || r == -EINVAL || r == -ENAMETOOLONG);
        if (r == -EINVAL) {
                for (size_t i = 0; i < bufsize; i++)
                        CHECK(buf[i] == 'U');
                CHECK(err.code == -EINVAL && err.message[0]);
        }
        if (r < 0) {
                CHECK(printable(err.message));
        }
        if (r == 0) {
                bool core = !res.group || !*res.group;
                bool has_ns = ns && *ns;
                const char *want[9];
                size_t n = 0;
                want[n++] = core ? "api" : "apis";
                if (!core)
                        want[n++] = res.group;
                want[n++] = res.version;
                if (has_ns) {
                        want[n++] = "namespaces";
                        want[n++] = ns;
                }
                want[n++] = res.resource;
                if (name)
                        want[n++] = name;
                if (sub)
                        want[n++] = sub;
                CHECK(buf[0] == '/');
                for (const char *c = buf; *c; c++)
                        CHECK(*c != '?' && *c != '#' && *c != '%' && (unsigned char)*c > ' ' &&
                              (unsigned char)*c != 0x7f);
                /* Split on '/': exactly n segments, each its input. */
                size_t k = 0;
                for (const char *seg = buf + 1;; k++) {
                        const char *slash = strchr(seg, '/');
                        size_t len = slash ? (size_t)(slash - seg) : strlen(seg);
                        CHECK(k < n);
                        CHECK(len > 0);
                        CHECK(strlen(want[k]) == len && memcmp(seg, want[k], len) == 0);
                        CHECK(!(len == 1 && seg[0] == '.'));
                        CHECK(!(len == 2 && seg[0] == '.' && seg[1] == '.'));
                        if (!slash)
                                break;
                        seg = slash + 1;
                }
                CHECK(k + 1 == n);
        }
        /* The quote of any input is one printable line within its buffer. */
        char q[32];
        for (size_t i = 0; i < 6; i++) {
                koc__name_quote(field[i], q, sizeof q);
                CHECK(strlen(q) < sizeof q && printable(q));
        }
        free(buf);
        free(text);
        return 0;
}
