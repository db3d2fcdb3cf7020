/* SPDX-License-Identifier: Apache-2.0 */
/*
 * koc/time.h: clocks, Kubernetes time formats and Go-style durations.
 *
 * koc measures every deadline on CLOCK_BOOTTIME: monotonic, and it keeps
 * running while the machine is suspended, so a lease that expired during a
 * suspend reads as expired on wake-up.  Wall-clock time is used only to write
 * timestamps that other programs read (Lease renewTime, logs).
 */
#ifndef KOC_TIME_H
#define KOC_TIME_H

#include <koc/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CLOCK_BOOTTIME in microseconds. */
KOC_EXPORT uint64_t koc_now_boottime_usec(void);
/* CLOCK_REALTIME in microseconds since the epoch. */
KOC_EXPORT uint64_t koc_now_realtime_usec(void);

/* Kubernetes MicroTime: "2006-01-02T15:04:05.000000Z" (always 6 digits, UTC).
 * buf must hold at least KOC_MICROTIME_MAX bytes. */
#define KOC_MICROTIME_MAX 32
KOC_EXPORT char *koc_format_microtime(uint64_t usec_since_epoch, char *buf, size_t size);
/* Parses RFC 3339 (Time or MicroTime, any fraction, Z or +hh:mm offset).
 * -EINVAL when s is not a valid timestamp. */
KOC_EXPORT int koc_parse_rfc3339(const char *s, uint64_t *ret_usec_since_epoch);

/* Parses a Go duration ("500ms", "15s", "1m30s", "1.5h", "250us"); -EINVAL
 * on anything else, -ERANGE on overflow.  A bare "0" is accepted. */
KOC_EXPORT int koc_parse_duration(const char *s, uint64_t *ret_usec);
/* Formats a duration the way Go does ("1.5s", "250ms", "2m0s"). */
KOC_EXPORT char *koc_format_duration(uint64_t usec, char *buf, size_t size);

/* A random RFC 4122 version 4 UUID, lower-case ("xxxxxxxx-xxxx-4xxx-...").
 * buf must hold 37 bytes (36 characters and the NUL). */
KOC_EXPORT int koc_uuid_random(char *buf);

#ifdef __cplusplus
}
#endif
#endif
