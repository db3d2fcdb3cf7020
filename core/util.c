/* SPDX-License-Identifier: Apache-2.0 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <systemd/sd-event.h>
#include <systemd/sd-id128.h>
#include <cjson/cJSON.h>
#include <unistd.h>
#include <time.h>

#include "util.h"

static uint64_t clock_usec(clockid_t id) {
        struct timespec ts;
        if (clock_gettime(id, &ts) < 0)
                return 0;
        return (uint64_t)ts.tv_sec * KOC_USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

KOC_EXPORT uint64_t koc_now_boottime_usec(void) {
        return clock_usec(CLOCK_BOOTTIME);
}

KOC_EXPORT uint64_t koc_now_realtime_usec(void) {
        return clock_usec(CLOCK_REALTIME);
}

struct timespec koc__monotonic_deadline(uint64_t usec) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (usec % 1000000) * 1000;
        ts.tv_sec += (time_t)(usec / 1000000 + ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        return ts;
}

char *koc__format_timestamp(uint64_t usec, int digits, char *buf, size_t size) {
        time_t sec = (time_t)(usec / KOC_USEC_PER_SEC);
        unsigned frac = (unsigned)(usec % KOC_USEC_PER_SEC);
        struct tm tm;
        char base[24];
        if (!gmtime_r(&sec, &tm) || strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
                snprintf(buf, size, "invalid");
                return buf;
        }
        if (digits == 6)
                snprintf(buf, size, "%s.%06uZ", base, frac);
        else if (digits == 3)
                snprintf(buf, size, "%s.%03uZ", base, frac / 1000);
        else
                snprintf(buf, size, "%sZ", base);
        return buf;
}

KOC_EXPORT char *koc_format_microtime(uint64_t usec, char *buf, size_t size) {
        return koc__format_timestamp(usec, 6, buf, size);
}

KOC_EXPORT int koc_parse_rfc3339(const char *s, uint64_t *ret) {
        struct tm tm = {0};
        if (!s)
                return -EINVAL;
        const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!p)
                return -EINVAL;
        /* strptime accepts one-digit fields; RFC 3339 does not. */
        if (strlen(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
            s[13] != ':' || s[16] != ':')
                return -EINVAL;
        uint64_t frac = 0;
        if (*p == '.') {
                int n = 0;
                p++;
                if (!isdigit((unsigned char)*p))
                        return -EINVAL;
                for (; isdigit((unsigned char)*p); p++, n++)
                        if (n < 6)
                                frac = frac * 10 + (uint64_t)(*p - '0');
                for (; n < 6; n++)
                        frac *= 10;
        }
        long offset = 0;
        if (*p == 'Z' || *p == 'z') {
                p++;
        } else if (*p == '+' || *p == '-') {
                int sign = *p == '-' ? -1 : 1;
                if (!isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2]) || p[3] != ':' ||
                    !isdigit((unsigned char)p[4]) || !isdigit((unsigned char)p[5]))
                        return -EINVAL;
                offset = sign * (((p[1] - '0') * 10 + (p[2] - '0')) * 3600 +
                                 ((p[4] - '0') * 10 + (p[5] - '0')) * 60);
                p += 6;
        } else {
                return -EINVAL;
        }
        if (*p != '\0')
                return -EINVAL;
        time_t t = timegm(&tm);
        if (t == (time_t)-1 || t - offset < 0)
                return -EINVAL;
        *ret = (uint64_t)(t - offset) * KOC_USEC_PER_SEC + frac;
        return 0;
}

KOC_EXPORT int koc_parse_duration(const char *s, uint64_t *ret) {
        static const struct {
                const char *unit;
                double usec;
        } units[] = {
                /* Go accepts both the micro sign (U+00B5) and Greek mu (U+03BC). */
                {"ns", 0.001}, {"us", 1},  {"\u00b5s", 1}, {"\u03bcs", 1},
                {"ms", 1000},  {"s", 1e6}, {"m", 60e6},    {"h", 3600e6},
        };
        if (!s || !*s)
                return -EINVAL;
        if (strcmp(s, "0") == 0) {
                *ret = 0;
                return 0;
        }
        double total = 0;
        const char *p = s;
        while (*p) {
                if (!isdigit((unsigned char)*p) && *p != '.')
                        return -EINVAL;
                /* Digits and at most one '.', as Go accepts: no signs, no exponents. */
                char num[64];
                size_t n = 0;
                bool dot = false;
                for (; isdigit((unsigned char)*p) || (*p == '.' && !dot); p++) {
                        if (*p == '.')
                                dot = true;
                        if (n + 1 >= sizeof num)
                                return -ERANGE;
                        num[n++] = *p;
                }
                num[n] = '\0';
                if (n == 0 || (n == 1 && dot))
                        return -EINVAL;
                double v = strtod(num, NULL);
                size_t best = 0;
                int which = -1;
                for (size_t i = 0; i < KOC_ELEMENTSOF(units); i++) {
                        size_t l = strlen(units[i].unit);
                        if (strncmp(p, units[i].unit, l) == 0 && l > best) {
                                best = l;
                                which = (int)i;
                        }
                }
                if (which < 0)
                        return -EINVAL;
                p += best;
                total += v * units[which].usec;
        }
        /* llround() is only defined below 2^63 (LLONG_MAX rounds up to it
         * as a double): "9223372036854775808us" must fail, not overflow. */
        if (!isfinite(total) || total >= 0x1p63)
                return -ERANGE;
        *ret = (uint64_t)llround(total);
        return 0;
}

KOC_EXPORT char *koc_format_duration(uint64_t usec, char *buf, size_t size) {
        if (usec == 0)
                snprintf(buf, size, "0s");
        else if (usec < 1000)
                snprintf(buf, size, "%" PRIu64 "us", usec);
        else if (usec < KOC_USEC_PER_SEC)
                snprintf(buf, size, "%gms", (double)usec / 1000.0);
        else if (usec < 60 * KOC_USEC_PER_SEC)
                snprintf(buf, size, "%gs", (double)usec / 1e6);
        else {
                uint64_t h = usec / (3600 * KOC_USEC_PER_SEC);
                uint64_t m = usec / (60 * KOC_USEC_PER_SEC) % 60;
                double sec = (double)(usec % (60 * KOC_USEC_PER_SEC)) / 1e6;
                if (h)
                        snprintf(buf, size, "%" PRIu64 "h%" PRIu64 "m%gs", h, m, sec);
                else
                        snprintf(buf, size, "%" PRIu64 "m%gs", m, sec);
        }
        return buf;
}

KOC_EXPORT int koc_uuid_random(char *buf) {
        sd_id128_t id;
        int r = sd_id128_randomize(&id);
        if (r < 0)
                return r;
        snprintf(buf, 37, SD_ID128_UUID_FORMAT_STR, SD_ID128_FORMAT_VAL(id));
        return 0;
}

void koc__heap_release(void) {
#ifdef __GLIBC__
        (void)malloc_trim(0);
#endif
}

int koc__set_string(char **p, const char *v) {
        char *n = v ? strdup(v) : NULL;
        if (v && !n)
                return -ENOMEM;
        free(*p);
        *p = n;
        return 0;
}

uint64_t koc__random_u64(uint64_t n) {
        static __thread uint64_t state;
        if (n == 0)
                return 0;
        if (state == 0) {
                if (getrandom(&state, sizeof state, 0) != (ssize_t)sizeof state || state == 0)
                        state = koc_now_boottime_usec() | 1;
        }
        /* xorshift64* */
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        return (state * UINT64_C(2685821657736338717)) % n;
}

int koc__struct_import(void *dst, size_t dst_size, const void *src, size_t src_size,
                       size_t min_size) {
        if (!src || src_size < min_size)
                return -EINVAL;
        for (size_t i = dst_size; i < src_size; i++)
                if (((const unsigned char *)src)[i] != 0)
                        return -EINVAL;
        size_t n = src_size < dst_size ? src_size : dst_size;
        memcpy(dst, src, n);
        memset((unsigned char *)dst + n, 0, dst_size - n);
        return 0;
}

pid_t koc__loop_tid(sd_event *event) {
        pid_t tid;

        if (event && sd_event_get_tid(event, &tid) >= 0)
                return tid;
        return gettid();
}

void koc__json_delete_all(cJSON *o, const char *name) {
        while (cJSON_IsObject(o) && cJSON_GetObjectItemCaseSensitive(o, name))
                cJSON_DeleteItemFromObjectCaseSensitive(o, name);
}

int koc__api_version_format(const char *group, const char *version, char *buf, size_t size) {
        bool core = !group || !*group;
        int n = snprintf(buf, size, "%s%s%s", core ? "" : group, core ? "" : "/",
                         version ? version : "");
        return n < 0 || (size_t)n >= size ? -EINVAL : 0;
}

int koc__json_fill_type(cJSON *o, const char *api_version, const char *kind) {
        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "apiVersion"))) {
                koc__json_delete_all(o, "apiVersion");
                if (!cJSON_AddStringToObject(o, "apiVersion", api_version))
                        return -ENOMEM;
        }
        if (kind && !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "kind"))) {
                koc__json_delete_all(o, "kind");
                if (!cJSON_AddStringToObject(o, "kind", kind))
                        return -ENOMEM;
        }
        return 0;
}
