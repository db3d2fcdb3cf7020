/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Watch events into the informer's store: lines of a watch stream read by
 * the client's own parser (koc__watch_line_parse), then the reflector and the
 * informer, with ADDED, MODIFIED, DELETED, BOOKMARK and ERROR events carrying
 * hostile objects (no name, names that are not strings, duplicate keys,
 * resourceVersions that are not numbers or go backwards, managedFields in
 * odd places), mixed with the writes this process makes
 * (read-your-own-writes), ends of the stream and 410 re-lists.
 *
 * Input: byte 0 picks the informer's selectors (bit 0: label selector "app",
 * bit 1: a field selector).  Then operations, each one byte and, for the
 * ones that carry text, a two-byte length and that many bytes:
 *   0-3  a watch line (the text); while a list is in flight instead, the
 *        text answers it as a list page with 200;
 *   4    a write's answer applied by read-your-own-writes (the text);
 *   5    a deletion this process made, by key (the text: "KEY" or "KEY RV",
 *        RV the deletion's resourceVersion);
 *   6    the stream ends: clean, 410 Gone or a transport failure (high bits);
 *   7    a list page (when a list is in flight) or a watch line.
 *
 * Checked after every event (informer-fuzz.c): the store's count, keys and
 * byte count match the model, get() by key returns the last version written
 * under the newer-only rule, a deletion removes the key, a deletion seen on
 * the watch keeps a late, older write's answer out; the watch resumes from
 * the last resourceVersion, and a 410 re-lists.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "informer-fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fuzz_input in = {data, size};
        uint8_t flags = 0, op;
        fuzz_take(&in, &flags);
        koc_informer *inf = fuzz_informer_new(flags & 1 ? "app" : NULL,
                                              flags & 2 ? "metadata.name!=skip" : NULL);
        /* Start watching from an empty list, so that the input is events. */
        static const char empty[] = "{\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[]}";
        fuzz_answer_list(0, 200, empty, sizeof empty - 1);
        fuzz_check(inf);
        while (fuzz_take(&in, &op)) {
                size_t len = 0;
                char *text = NULL;
                switch (op & 7) {
                case 0:
                case 1:
                case 2:
                case 3:
                case 7:
                        text = fuzz_take_text(&in, &len);
                        if (fuzz_list_pending())
                                fuzz_answer_list(0, 200, text, len);
                        else
                                fuzz_watch_line(text, len);
                        break;
                case 4:
                        text = fuzz_take_text(&in, &len);
                        fuzz_apply_write(inf, text, len);
                        break;
                case 5:
                        text = fuzz_take_text(&in, &len);
                        fuzz_apply_delete(inf, text);
                        break;
                case 6:
                        switch ((op >> 6) & 3) {
                        case 0:
                        case 1:
                                fuzz_watch_close(200, 0);
                                break;
                        case 2:
                                fuzz_watch_close(410, 0);
                                break;
                        default:
                                fuzz_watch_close(0, -ECONNRESET);
                                break;
                        }
                        break;
                }
                free(text);
                fuzz_check(inf);
        }
        fuzz_informer_free(inf);
        return 0;
}
