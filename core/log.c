/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "koc/log.h"
#include "util.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t log_once = PTHREAD_ONCE_INIT;
static atomic_int log_level = KOC_LOG_INFO;
static atomic_int log_format = KOC_LOG_FORMAT_LOGFMT;
static koc_log_handler_t log_handler;
static void *log_userdata;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

static void log_init_from_env(void) {
        const char *s = getenv("KOC_LOG_LEVEL");
        if (s && *s) {
                int l = koc_log_level_from_string(s);
                if (l >= 0)
                        atomic_store(&log_level, l);
        }
        s = getenv("KOC_LOG_FORMAT");
        if (s && strcasecmp(s, "json") == 0)
                atomic_store(&log_format, KOC_LOG_FORMAT_JSON);
}

KOC_EXPORT int koc_log_level_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
                if (strcasecmp(s, level_names[i]) == 0)
                        return (int)i;
        if (strcasecmp(s, "warning") == 0)
                return KOC_LOG_WARN;
        return -EINVAL;
}

KOC_EXPORT void koc_log_set_handler(koc_log_handler_t handler, void *userdata) {
        pthread_mutex_lock(&log_lock);
        log_handler = handler;
        log_userdata = userdata;
        pthread_mutex_unlock(&log_lock);
}

KOC_EXPORT void koc_log_set_level(int level) {
        pthread_once(&log_once, log_init_from_env);
        if (level < KOC_LOG_ERROR)
                level = KOC_LOG_ERROR;
        if (level > KOC_LOG_DEBUG)
                level = KOC_LOG_DEBUG;
        atomic_store(&log_level, level);
}

KOC_EXPORT int koc_log_get_level(void) {
        pthread_once(&log_once, log_init_from_env);
        return atomic_load(&log_level);
}

KOC_EXPORT void koc_log_set_format(enum koc_log_format format) {
        pthread_once(&log_once, log_init_from_env);
        atomic_store(&log_format, format == KOC_LOG_FORMAT_JSON ? KOC_LOG_FORMAT_JSON
                                                                : KOC_LOG_FORMAT_LOGFMT);
}

KOC_EXPORT bool koc_log_enabled(int level) {
        return level <= koc_log_get_level();
}

/* Writes s quoted for logfmt (or JSON: the escapes are the same subset). */
static void put_quoted(FILE *f, const char *s) {
        fputc('"', f);
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                switch (*p) {
                case '"': fputs("\\\"", f); break;
                case '\\': fputs("\\\\", f); break;
                case '\n': fputs("\\n", f); break;
                case '\r': fputs("\\r", f); break;
                case '\t': fputs("\\t", f); break;
                default:
                        if (*p < 0x20)
                                fprintf(f, "\\u%04x", *p);
                        else
                                fputc(*p, f);
                }
        }
        fputc('"', f);
}

static void default_handler(int level, const char *component, const char *message) {
        char ts[40];
        koc__format_timestamp(koc_now_realtime_usec(), 3, ts, sizeof ts);
        /* One fwrite-sized line under the stdio lock, so lines never interleave. */
        char *line = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&line, &len);
        if (!f)
                return;
        if (atomic_load(&log_format) == KOC_LOG_FORMAT_JSON) {
                fprintf(f, "{\"time\":\"%s\",\"level\":\"%s\",\"component\":", ts, level_names[level]);
                put_quoted(f, component);
                fputs(",\"msg\":", f);
                put_quoted(f, message);
                fputs("}\n", f);
        } else {
                fprintf(f, "time=%s level=%s component=%s msg=", ts, level_names[level], component);
                put_quoted(f, message);
                fputc('\n', f);
        }
        fclose(f);
        fwrite(line, 1, len, stderr);
        free(line);
}

KOC_EXPORT void koc_logv(int level, const char *component, const char *fmt, va_list ap) {
        if (!koc_log_enabled(level))
                return;
        if (level < KOC_LOG_ERROR)
                level = KOC_LOG_ERROR;
        char buf[2048];
        vsnprintf(buf, sizeof buf, fmt, ap);
        if (!component)
                component = "koc";
        pthread_mutex_lock(&log_lock);
        if (log_handler)
                log_handler(level, component, buf, log_userdata);
        else
                default_handler(level, component, buf);
        pthread_mutex_unlock(&log_lock);
}

KOC_EXPORT void koc_log(int level, const char *component, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        koc_logv(level, component, fmt, ap);
        va_end(ap);
}

KOC_EXPORT int koc_error_set(koc_error *err, int code, const char *fmt, ...) {
        if (err) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(err->message, sizeof err->message, fmt, ap);
                va_end(ap);
                err->code = code;
        }
        return code;
}
