/* SPDX-License-Identifier: Apache-2.0 */
/* Internal helpers shared by koc's modules: clocks, time formats, durations,
 * identities.  Not part of the public API (the public ones are in koc/time.h). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "koc/time.h"

typedef struct sd_event sd_event;

#define KOC_ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

static inline void koc__freep(void *p) {
        free(*(void **)p);
}
#define _koc_cleanup_free_ __attribute__((cleanup(koc__freep)))

/* String equality where NULL counts as "" (an optional field left out). */
static inline bool koc__streq_null(const char *a, const char *b) {
        return strcmp(a ? a : "", b ? b : "") == 0;
}

/* Formats usec since the epoch as RFC 3339 UTC with `digits` fractional
 * digits (0, 3 or 6): "2026-11-24T10:00:00.123456Z".  Returns buf. */
char *koc__format_timestamp(uint64_t usec, int digits, char *buf, size_t size);

/* CLOCK_MONOTONIC now plus usec, as a pthread_cond_timedwait deadline for a
 * condition variable set to that clock. */
struct timespec koc__monotonic_deadline(uint64_t usec);

/* Replaces *p with a copy of v (NULL: with NULL), freeing the old string;
 * -ENOMEM leaves *p as it was. */
int koc__set_string(char **p, const char *v);
/* Gives the heap's free pages back to the system (glibc's malloc_trim:
 * whole free pages anywhere in the heap, not only at its top); nothing
 * elsewhere.  After a list, whose parse trees and temporaries leave free
 * memory between the records it cached. */
void koc__heap_release(void);

/* Uniform random number in [0, n), from a thread-local PRNG seeded from
 * getrandom(); for jitter, not for secrets. */
uint64_t koc__random_u64(uint64_t n);

/* Writes s to out with every byte but RFC 3986's unreserved characters
 * (letters, digits, "-._~") percent-encoded (%XX, upper-case hex); out holds
 * at least 3 * strlen(s) + 1 bytes.  Returns the end of what it wrote (it
 * writes no NUL).  The one percent-encoder (core/query.c): query strings and
 * path segments both go through it. */
char *koc__percent_encode_into(char *out, const char *s);

/* Extensible structs.  A public struct that programs fill (a spec, a
 * configuration, a callback table) reaches the library together with the size
 * the program was compiled with (the call-site macros in include/koc/ pass
 * sizeof).  koc__struct_import() copies the caller's struct into the
 * library's own, full-sized one: fields an older program does not know are
 * zero, which every new field must take to mean "as before".  -EINVAL when
 * src is NULL, src_size is below min_size (the caller's struct cannot even
 * hold the first field), or src_size is larger than dst_size and a byte
 * beyond dst_size is not zero (a newer program asks for something this
 * library cannot do; libbpf's OPTS reject it the same way). */
int koc__struct_import(void *dst, size_t dst_size, const void *src, size_t src_size,
                       size_t min_size);
/* The minimum size of a struct: up to the end of its first field. */
#define KOC__STRUCT_MIN_SIZE(type, first) (offsetof(type, first) + sizeof(((type *)0)->first))
/* koc__struct_import() into *dst (a struct of the same type), with the
 * minimum taken from its first field. */
#define KOC__IMPORT(dst, src, src_size, first)                                                     \
        koc__struct_import((dst), sizeof(*(dst)), (src), (src_size),                               \
                           KOC__STRUCT_MIN_SIZE(__typeof__(*(dst)), first))

/* The thread that runs a loop: the owner of a default loop
 * (sd_event_get_tid), else the calling thread, which creates a handle on the
 * loop's thread by contract. */
pid_t koc__loop_tid(sd_event *event);

/* Removes every member of object o called name: a hostile body may give one
 * twice, and cJSON's lookups find only the first (Go readers take the last). */
struct cJSON;
void koc__json_delete_all(struct cJSON *o, const char *name);

/* "group/version", or the version alone for the core group (NULL or "").
 * -EINVAL when it does not fit in size (buf then holds it cut short). */
int koc__api_version_format(const char *group, const char *version, char *buf, size_t size);

/* Sets o's apiVersion and kind (kind: when not NULL) where they are not
 * strings, as objects read from a list lack them.  -ENOMEM. */
int koc__json_fill_type(struct cJSON *o, const char *api_version, const char *kind);
/* Debug builds (no NDEBUG) check that a loop-only call runs on the loop's
 * thread: a call from a worker thread races with the loop on state that is
 * not locked, which is far easier to find at the call than in its effects. */
#ifndef NDEBUG
#include <assert.h>
#include <unistd.h>
#define KOC__ASSERT_LOOP_THREAD(tid)                                                               \
        assert(gettid() == (tid) && "loop-only call off the loop thread")
#else
#define KOC__ASSERT_LOOP_THREAD(tid) ((void)0)
#endif
