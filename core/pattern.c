/* SPDX-License-Identifier: Apache-2.0 */
#include "pattern.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct obuf {
        char *data;
        size_t len, alloc;
        int error;
} obuf;

static void put(obuf *b, const char *s, size_t n) {
        if (b->error)
                return;
        if (b->len + n + 1 > b->alloc) {
                size_t a = b->alloc ? b->alloc : 64;
                while (a < b->len + n + 1)
                        a *= 2;
                char *d = realloc(b->data, a);
                if (!d) {
                        b->error = -ENOMEM;
                        return;
                }
                b->data = d;
                b->alloc = a;
        }
        memcpy(b->data + b->len, s, n);
        b->len += n;
        b->data[b->len] = 0;
}

static void puts_(obuf *b, const char *s) {
        put(b, s, strlen(s));
}

static int fail(obuf *b, char *err, size_t errlen, const char *fmt, const char *what, int n) {
        snprintf(err, errlen, fmt, n, what);
        free(b->data);
        b->data = NULL;
        return -EINVAL;
}

/* RE2's control escapes: the character itself, or 0. */
static char control_escape(char e) {
        switch (e) {
        case 'a': return '\a';
        case 'f': return '\f';
        case 't': return '\t';
        case 'n': return '\n';
        case 'r': return '\r';
        case 'v': return '\v';
        default: return 0;
        }
}

/* RE2's Perl classes inside a bracket expression (\s is [\t\n\f\r ]). */
static const char *perl_class(char e) {
        switch (e) {
        case 'd': return "0-9";
        case 'w': return "A-Za-z0-9_";
        case 's': return "\t\n\f\r ";
        default: return NULL;
        }
}

static bool is_punct(char c) {
        return c > ' ' && c < 0x7f && !(c >= '0' && c <= '9') && !(c >= 'a' && c <= 'z') &&
               !(c >= 'A' && c <= 'Z');
}

/* A literal inside a bracket expression: ], -, ^ and [ as collating
 * symbols, which POSIX reads as themselves anywhere in the list. */
static void put_class_char(obuf *b, char c) {
        if (strchr("]-^[", c)) {
                char s[] = {'[', '.', c, '.', ']'};
                put(b, s, sizeof s);
        } else
                put(b, &c, 1);
}

/* One character of a bracket expression at p[*j] (a literal or an escaped
 * one): 1 with *ret, 0 when it is a Perl class (appended already), or
 * -EINVAL. */
static int class_char(obuf *b, const char *p, size_t *j, char *ret, const char **bad) {
        char c = p[*j];
        if (c != '\\') {
                (*j)++;
                *ret = c;
                return 1;
        }
        char e = p[*j + 1];
        *bad = p + *j;
        if (!e)
                return -EINVAL;
        *j += 2;
        const char *cls = perl_class(e);
        if (cls) {
                puts_(b, cls);
                return 0;
        }
        if (control_escape(e)) {
                *ret = control_escape(e);
                return 1;
        }
        if (is_punct(e)) {
                *ret = e;
                return 1;
        }
        return -EINVAL;
}

static const char *const posix_classes[] = {"alnum", "alpha", "blank", "cntrl", "digit", "graph",
                                            "lower", "print", "punct", "space", "upper", "xdigit"};

/* [:name:] at p (RE2's ASCII classes): its length, 0 when p is a plain [,
 * -1 for a name RE2 does not know (which it refuses). */
static int posix_class(obuf *b, const char *p) {
        if (p[0] != '[' || p[1] != ':')
                return 0;
        const char *end = strstr(p + 2, ":]");
        if (!end)
                return 0;
        if (end - p > 16)
                return -1;
        size_t n = (size_t)(end - (p + 2));
        if (n == 4 && !strncmp(p + 2, "word", 4)) {
                puts_(b, "A-Za-z0-9_");
                return (int)n + 4;
        }
        for (size_t i = 0; i < sizeof posix_classes / sizeof *posix_classes; i++)
                if (strlen(posix_classes[i]) == n && !strncmp(p + 2, posix_classes[i], n)) {
                        put(b, p, n + 4);
                        return (int)n + 4;
                }
        return -1;
}

/* The bracket expression starting at p[i] == '['; returns the index of its
 * closing ]. */
static int bracket(obuf *b, const char *p, size_t i, size_t *ret_end, char *err, size_t errlen) {
        size_t j = i + 1;
        put(b, "[", 1);
        if (p[j] == '^') {
                put(b, "^", 1);
                j++;
        }
        for (bool first = true; p[j] != ']' || first; first = false) {
                if (!p[j]) {
                        snprintf(err, errlen, "missing closing ]: `%.32s`", p + i);
                        return -EINVAL;
                }
                int k = posix_class(b, p + j);
                if (k < 0) {
                        snprintf(err, errlen, "unknown or negated POSIX class: `%.*s`",
                                 (int)(strstr(p + j, ":]") - (p + j)) + 2, p + j);
                        return -EINVAL;
                }
                if (k > 0) {
                        j += (size_t)k;
                        continue;
                }
                const char *bad = NULL;
                char lo, hi;
                int r = class_char(b, p, &j, &lo, &bad);
                if (r == 0)
                        continue;
                if (r < 0)
                        goto bad_escape;
                if (p[j] == '-' && p[j + 1] && p[j + 1] != ']') {
                        size_t at = j;
                        j++;
                        obuf scratch = {0};
                        r = class_char(&scratch, p, &j, &hi, &bad);
                        free(scratch.data);
                        if (r < 0)
                                goto bad_escape;
                        if (r == 0 || (unsigned char)hi < (unsigned char)lo) {
                                snprintf(err, errlen, "invalid character class range: `%.*s`",
                                         (int)(j - at + 1), p + at - 1);
                                return -EINVAL;
                        }
                        put_class_char(b, lo);
                        put(b, "-", 1);
                        put_class_char(b, hi);
                        continue;
                }
                put_class_char(b, lo);
                continue;
        bad_escape:
                if (bad && bad[1] && strchr("DWS", bad[1]))
                        snprintf(err, errlen, "`\\%c` inside a bracket expression is not supported", bad[1]);
                else
                        snprintf(err, errlen, "invalid or unsupported escape sequence: `\\%c`",
                                 bad && bad[1] ? bad[1] : ' ');
                return -EINVAL;
        }
        put(b, "]", 1);
        *ret_end = j;
        return 0;
}

/* A {n}, {n,} or {n,m} repetition at p; anything else is a literal { in RE2. */
static bool is_repeat(const char *p) {
        size_t i = 1, d = strspn(p + i, "0123456789");
        if (d == 0)
                return false;
        i += d;
        if (p[i] == ',')
                i += 1 + strspn(p + i + 1, "0123456789");
        return p[i] == '}';
}

int koc__pattern_to_posix(const char *p, char **ret_posix, char *err, size_t errlen) {
        obuf b = {0};
        put(&b, "", 0);
        for (size_t i = 0; p[i]; i++) {
                char c = p[i];
                if (c == '[') {
                        size_t end;
                        if (bracket(&b, p, i, &end, err, errlen) < 0) {
                                free(b.data);
                                return -EINVAL;
                        }
                        i = end;
                } else if (c == '(' && p[i + 1] == '?') {
                        if (p[i + 2] != ':')
                                return fail(&b, err, errlen, "unsupported group `%.*s`: only (?:...) is",
                                            p + i, p[i + 2] ? 3 : 2);
                        put(&b, "(", 1);
                        i += 2;
                } else if (c == '{' && !is_repeat(p + i)) {
                        put(&b, "\\{", 2);
                } else if (c != '\\') {
                        put(&b, &c, 1);
                } else {
                        char e = p[++i];
                        const char *cls = perl_class(e);
                        if (!e)
                                return fail(&b, err, errlen, "trailing backslash%.*s", "", 0);
                        if (cls) {
                                puts_(&b, "[");
                                puts_(&b, cls);
                                puts_(&b, "]");
                        } else if (e && strchr("DWS", e)) {
                                puts_(&b, "[^");
                                puts_(&b, perl_class((char)(e - 'A' + 'a')));
                                puts_(&b, "]");
                        } else if (control_escape(e)) {
                                char lit = control_escape(e);
                                put(&b, &lit, 1);
                        } else if (is_punct(e)) {
                                char s[] = {'\\', e};
                                /* POSIX's specials stay escaped; other punctuation
                                 * (\< \> \` \' are GNU operators) goes bare. */
                                if (strchr(".[]{}()*+?^$|\\", e))
                                        put(&b, s, 2);
                                else
                                        put(&b, &e, 1);
                        } else
                                return fail(&b, err, errlen,
                                            "invalid or unsupported escape sequence: `%.*s`", p + i - 1, 2);
                }
        }
        if (b.error) {
                free(b.data);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        *ret_posix = b.data;
        return 0;
}
