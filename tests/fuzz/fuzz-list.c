/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The informer's list answers: the reflector's reading of list pages (items,
 * kind, metadata.continue, metadata.resourceVersion) and the store's
 * replacement on a re-list, with hostile pages (items that are not objects,
 * no name, duplicate keys, older resourceVersions, continue tokens that need
 * encoding, an expired token, failures between pages).
 *
 * Input: byte 0 picks the informer's selectors (bit 0: label selector "app",
 * bit 1: a field selector).  Then operations, each one byte and, for the
 * ones that carry text, a two-byte length and that many bytes:
 *   0-3  answer the list request with 200 and the text as the body (when a
 *        watch runs instead, it first ends with 410 Gone, which re-lists);
 *   4    answer with 410 Gone (the text as the body);
 *   5    answer with a transport failure or a 500 (high bit);
 *   6    end the watch cleanly (resumed from the last resourceVersion);
 *   7    a write's answer applied by read-your-own-writes (the text), or
 *        with the high bit a DELETE's answer ("KEY" or "KEY RV").
 *
 * Checked after every step (informer-fuzz.c): the store holds exactly what
 * the pages of the last complete list and the later writes leave, get() by
 * key gives the last version, the counts agree, no managedFields are
 * cached; the next page carries the continue token, percent-encoded, and the
 * first page none; the watch starts from the list's resourceVersion.
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
        fuzz_check(inf);
        while (fuzz_take(&in, &op)) {
                size_t len = 0;
                char *text = NULL;
                switch (op & 7) {
                case 0:
                case 1:
                case 2:
                case 3:
                        text = fuzz_take_text(&in, &len);
                        if (fuzz_watch_pending())
                                fuzz_watch_close(410, 0);
                        fuzz_answer_list(0, 200, text, len);
                        break;
                case 4:
                        text = fuzz_take_text(&in, &len);
                        fuzz_answer_list(0, 410, text, len);
                        break;
                case 5:
                        if (op & 0x80)
                                fuzz_answer_list(0, 500, "", 0);
                        else
                                fuzz_answer_list(-ECONNRESET, 0, "", 0);
                        break;
                case 6:
                        fuzz_watch_close(200, 0);
                        break;
                case 7:
                        /* This process's writes and deletions, answered
                         * while a list is in progress. */
                        text = fuzz_take_text(&in, &len);
                        if (op & 0x80)
                                fuzz_apply_delete(inf, text);
                        else
                                fuzz_apply_write(inf, text, len);
                        break;
                }
                free(text);
                fuzz_check(inf);
        }
        fuzz_informer_free(inf);
        return 0;
}
