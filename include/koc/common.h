/* SPDX-License-Identifier: Apache-2.0 */
/*
 * koc/common.h: conventions shared by every koc module.
 *
 * Fallible calls return an int: 0 (or a positive value) on success, a negative
 * errno on failure.  Where a person must act on a failure (a kubeconfig field,
 * an invalid configuration, an API Status), the call also fills a koc_error
 * whose message names what, where and why.  Handles are reference counted:
 * koc_x_unref(NULL) is a no-op and returns NULL, and each handle has a
 * koc_x_unrefp() helper for __attribute__((cleanup)).
 *
 * Extensible structs.  The structs that programs fill (koc_request_spec,
 * koc_watch_spec, koc_manager_config, the callback tables, runnables) may
 * grow at their end in later releases.  Each function that takes one is an
 * exported koc_x_sized() that also receives the struct's size, called through
 * a macro of the plain name that passes sizeof as compiled into the program:
 *
 *   koc_client_request(c, &(koc_request_spec){ .method = "GET", .path = p }, h, ud, NULL);
 *   // is koc_client_request_sized(c, sizeof(koc_request_spec), &(...){...}, h, ud, NULL)
 *
 * The library reads only the bytes a program passes and treats the fields it
 * lacks as zero (every new field is added so that zero means "as before"); it
 * returns -EINVAL for a size below the first field, or for a longer (newer)
 * struct with a non-zero byte beyond what this library knows.  Structs the
 * library fills (koc_response, koc_watch_event) only grow at the end and are
 * always allocated by the library; koc_error keeps its layout.
 */
#ifndef KOC_COMMON_H
#define KOC_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(KOC_BUILDING)
#define KOC_EXPORT __attribute__((visibility("default")))
#else
#define KOC_EXPORT
#endif

#define KOC_USEC_PER_SEC UINT64_C(1000000)
#define KOC_USEC_PER_MSEC UINT64_C(1000)

/* Detail of a failure, for the calls whose failures a person must act on.
 * code is the same negative errno the call returned; message is one line. */
typedef struct koc_error {
        int code;
        char message[512];
} koc_error;

/* Sets *err (when err is not NULL) and returns code, so callers can write
 * `return koc_error_set(err, -EINVAL, "%s: field %s: %s", file, field, why);` */
KOC_EXPORT int koc_error_set(koc_error *err, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Defines name##p(type **p) that unrefs *p, for __attribute__((cleanup)). */
#define KOC_DEFINE_POINTER_CLEANUP_FUNC(type, func)                                          \
        static inline void func##p(type **p) {                                               \
                if (*p)                                                                      \
                        func(*p);                                                            \
        }

#define _koc_cleanup_(f) __attribute__((cleanup(f)))

/* Every registration that keeps a userdata pointer (callbacks, checks,
 * steps, hooks, runnables, collectors, watches, the log handler) also takes a
 * destroy callback, which may be NULL.  It runs once, with that userdata, when
 * the registration goes: it is removed or replaced, or its owner is freed.
 * When the registration call fails, destroy is not called and the caller
 * still owns userdata. */
typedef void (*koc_destroy_t)(void *userdata);

#ifdef __cplusplus
}
#endif
#endif
