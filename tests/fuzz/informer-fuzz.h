/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What fuzz-list.c and fuzz-watch-store.c share: an informer (the real
 * informer, reflector and store of framework/controller and core/reflector.c)
 * whose API client is a stand-in, and a reference model of what its cache
 * must hold.
 *
 * The stand-in.  The link wraps (-Wl,--wrap, see run.sh) the client calls the
 * reflector and the informer make: koc_client_request_sized records the list
 * request in flight, koc_client_watch_sized the watch, and the harness answers
 * them with fuzz input (fuzz_answer_list, fuzz_watch_event, fuzz_watch_close).
 * sd_event_add_time_relative is wrapped too, so that the reflector's backoff
 * timers fire at once: fuzz_run() dispatches the loop until nothing is due.
 *
 * The model.  A list of (key, resourceVersion) pairs, updated with the rules
 * the informer documents (newer-only writes; a list staged until it ends,
 * then authoritative: it replaces what it lists and removes what it did not
 * return, except writes since it began that are newer; a list whose continue
 * token repeats is abandoned; deletion tombstones for read-your-own-writes),
 * and compared with the
 * store after every step by fuzz_check(): the count, the keys, get() by key
 * giving the last version, the byte count, the stored JSON parsing back
 * without managedFields.  Any difference aborts.
 */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "framework/cache/informer.h"

typedef struct fuzz_input {
        const uint8_t *p;
        size_t n;
} fuzz_input;

bool fuzz_take(fuzz_input *in, uint8_t *ret);
/* A two-byte length, then that many bytes (fewer at the end of the input):
 * a malloc'ed NUL-terminated copy, *ret_len its length (it may hold NULs). */
char *fuzz_take_text(fuzz_input *in, size_t *ret_len);

/* Creates the informer (namespace "ns", configmaps) with the given
 * selectors and a fresh model; aborts on failure. */
koc_informer *fuzz_informer_new(const char *label_selector, const char *field_selector);
void fuzz_informer_free(koc_informer *inf);

/* Dispatches the loop (the reflector's timers) until nothing is due. */
void fuzz_run(void);

/* True while a list request / a watch is in flight. */
bool fuzz_list_pending(void);
bool fuzz_watch_pending(void);
/* The query of the request in flight and the resourceVersion of the watch
 * (NULL when it had none). */
const char *fuzz_list_query(void);
const char *fuzz_watch_resource_version(void);

/* Answers the list request in flight: error (0 or a negative errno), the
 * HTTP status and the body text (parsed as the client would: NULL when it is
 * not JSON).  Updates the model first.  No-op without a request. */
void fuzz_answer_list(int error, long status, const char *body, size_t len);
/* Delivers one watch line through koc__watch_line_parse (a line that is not
 * an event ends the watch with -EBADMSG, and an event of an unknown type is
 * skipped, as the client does). */
void fuzz_watch_line(const char *line, size_t len);
/* Ends the watch with a CLOSED event (status, error). */
void fuzz_watch_close(long status, int error);
/* Read-your-own-writes: the informer applies an object this process wrote,
 * or a deletion by key. */
void fuzz_apply_write(koc_informer *inf, const char *json, size_t len);
void fuzz_apply_delete(koc_informer *inf, const char *key);

/* Compares the store with the model; aborts on any difference. */
void fuzz_check(koc_informer *inf);
size_t fuzz_model_count(void);
