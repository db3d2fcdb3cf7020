/* SPDX-License-Identifier: Apache-2.0 */
/*
 * koc/log.h: the one logging facility of koc.
 *
 * One line per event on stderr, logfmt by default or JSON lines, with the
 * time (RFC 3339, UTC), the level and the component ("leader", "probes", ...):
 *
 *   time=2026-11-24T10:00:00.123Z level=info component=leader msg="became leader" identity=pod-a
 *
 * KOC_LOG_LEVEL (error, warn, info, debug) sets the level, KOC_LOG_FORMAT
 * (logfmt, json) the format; both are read once, at the first log call.
 * Programs may install their own handler to route koc's lines elsewhere.
 *
 *   koc_log_info("leader", "became leader identity=%s", id);
 */
#ifndef KOC_LOG_H
#define KOC_LOG_H

#include <koc/common.h>
#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

enum koc_log_level {
        KOC_LOG_ERROR = 0,
        KOC_LOG_WARN = 1,
        KOC_LOG_INFO = 2,
        KOC_LOG_DEBUG = 3,
};

enum koc_log_format {
        KOC_LOG_FORMAT_LOGFMT = 0,
        KOC_LOG_FORMAT_JSON = 1,
};

/* A handler gets the formatted message (no trailing newline). It may be
 * called from any thread; koc serialises calls to it. */
typedef void (*koc_log_handler_t)(int level, const char *component, const char *message,
                                  void *userdata);

/* handler NULL restores the default.  destroy (may be NULL) runs on userdata
 * when the handler is replaced by one with another userdata. */
KOC_EXPORT void koc_log_set_handler(koc_log_handler_t handler, void *userdata,
                                    koc_destroy_t destroy);
KOC_EXPORT void koc_log_set_level(int level);
KOC_EXPORT int koc_log_get_level(void);
KOC_EXPORT void koc_log_set_format(enum koc_log_format format);
/* Parses "error", "warn", "info", "debug"; returns the level or -EINVAL. */
KOC_EXPORT int koc_log_level_from_string(const char *s);

KOC_EXPORT void koc_log(int level, const char *component, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
KOC_EXPORT void koc_logv(int level, const char *component, const char *fmt, va_list ap);

/* True when a message of this level would be written (use before costly
 * formatting). */
KOC_EXPORT bool koc_log_enabled(int level);

#define koc_log_error(comp, ...) koc_log(KOC_LOG_ERROR, comp, __VA_ARGS__)
#define koc_log_warn(comp, ...) koc_log(KOC_LOG_WARN, comp, __VA_ARGS__)
#define koc_log_info(comp, ...) koc_log(KOC_LOG_INFO, comp, __VA_ARGS__)
#define koc_log_debug(comp, ...)                                                             \
        do {                                                                                 \
                if (koc_log_enabled(KOC_LOG_DEBUG))                                          \
                        koc_log(KOC_LOG_DEBUG, comp, __VA_ARGS__);                           \
        } while (0)

#ifdef __cplusplus
}
#endif
#endif
