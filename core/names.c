/* SPDX-License-Identifier: Apache-2.0 */
/* DNS-1123 names (k8s.io/apimachinery/pkg/util/validation) and path segments. */
#include "names.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Word for word what apimachinery says (its double space included), so
 * that koc-apiserver answers as the real kube-apiserver does. */
static const char label_fmt[] =
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
        "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
        "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
static const char subdomain_fmt[] =
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
        "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
        "regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

static bool is_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* [a-z0-9]([-a-z0-9]*[a-z0-9])? over s[0, n). */
static bool is_label(const char *s, size_t n) {
        if (n == 0 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
                return false;
        for (size_t i = 1; i + 1 < n; i++)
                if (!is_alnum(s[i]) && s[i] != '-')
                        return false;
        return true;
}

const char *koc__dns1123_label_error(const char *value) {
        if (!value || !value[0])
                return "must not be empty";
        /* The length first, as apimachinery does; strnlen bounds the scan of
         * a hostile, very long value. */
        size_t n = strnlen(value, KOC_DNS1123_LABEL_MAX + 1);
        if (n > KOC_DNS1123_LABEL_MAX)
                return "must be no more than 63 characters";
        return is_label(value, n) ? NULL : label_fmt;
}

const char *koc__dns1123_subdomain_error(const char *value) {
        if (!value || !value[0])
                return "must not be empty";
        size_t n = strnlen(value, KOC_DNS1123_SUBDOMAIN_MAX + 1);
        if (n > KOC_DNS1123_SUBDOMAIN_MAX)
                return "must be no more than 253 characters";
        for (size_t start = 0; start <= n;) {
                const char *dot = memchr(value + start, '.', n - start);
                size_t end = dot ? (size_t)(dot - value) : n;
                if (!is_label(value + start, end - start))
                        return subdomain_fmt;
                start = end + 1;
        }
        return NULL;
}

char *koc__path_segment_escape(const char *segment) {
        size_t n = strlen(segment);
        char *out = malloc(3 * n + 1);
        if (!out)
                return NULL;
        /* "." and ".." would be removed from the path as dot segments. */
        if (strcmp(segment, ".") == 0 || strcmp(segment, "..") == 0) {
                for (size_t i = 0; i < n; i++)
                        memcpy(out + 3 * i, "%2E", 3);
                out[3 * n] = '\0';
                return out;
        }
        *koc__percent_encode_into(out, segment) = '\0';
        return out;
}

const char *koc__path_segment_name_error(const char *value) {
        if (!value || !value[0])
                return "must not be empty";
        if (strcmp(value, ".") == 0)
                return "may not be '.'";
        if (strcmp(value, "..") == 0)
                return "may not be '..'";
        for (const unsigned char *s = (const unsigned char *)value; *s; s++) {
                switch (*s) {
                case '/':
                        return "may not contain '/'";
                case '%':
                        return "may not contain '%'";
                case '?':
                        return "may not contain '?'";
                case '#':
                        return "may not contain '#'";
                default:
                        if (*s <= ' ' || *s == 0x7f)
                                return "may not contain whitespace or control characters";
                }
        }
        return NULL;
}

char *koc__name_quote(const char *value, char *buf, size_t size) {
        static const char hex[] = "0123456789abcdef";
        if (size < 4) {
                if (size)
                        buf[0] = '\0';
                return buf;
        }
        if (!value)
                value = "(null)";
        /* cut: where "..." goes should the rest not fit; the last whole
         * character that leaves room for it. */
        size_t o = 0, cut = 0;
        for (const unsigned char *s = (const unsigned char *)value; *s; s++) {
                bool plain = *s >= ' ' && *s < 0x7f && *s != '"' && *s != '\\';
                size_t need = plain ? 1 : 4;
                if (o + need + 1 > size) {
                        memcpy(buf + cut, "...", 4);
                        return buf;
                }
                if (plain)
                        buf[o++] = (char)*s;
                else {
                        buf[o++] = '\\';
                        buf[o++] = 'x';
                        buf[o++] = hex[*s >> 4];
                        buf[o++] = hex[*s & 15];
                }
                if (o + 4 <= size)
                        cut = o;
        }
        buf[o] = '\0';
        return buf;
}
