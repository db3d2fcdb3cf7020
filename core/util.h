/* SPDX-License-Identifier: Apache-2.0 */
/* Internal helpers shared by koc's modules: clocks, time formats, durations,
 * identities.  Not part of the public API (the public ones are in koc/time.h). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "koc/time.h"

#define KOC_ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

static inline void koc__freep(void *p) {
        free(*(void **)p);
}
#define _koc_cleanup_free_ __attribute__((cleanup(koc__freep)))

/* Formats usec since the epoch as RFC 3339 UTC with `digits` fractional
 * digits (0, 3 or 6): "2026-11-24T10:00:00.123456Z".  Returns buf. */
char *koc__format_timestamp(uint64_t usec, int digits, char *buf, size_t size);

/* Uniform random number in [0, n), from a thread-local PRNG seeded from
 * getrandom(); for jitter, not for secrets. */
uint64_t koc__random_u64(uint64_t n);
