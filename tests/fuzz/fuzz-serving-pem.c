/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The serving certificate and key, as files a Secret volume may hold: any
 * bytes, checked (PEM, chain, key match, validity) without a crash, with an
 * error naming the file or a pair that can be used.
 *
 * Input: the certificate file's bytes, a NUL byte, the key file's bytes
 * (without a NUL, both are the same bytes).  The seeds hold real pairs.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serving/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const uint8_t *nul = memchr(data, 0, size);
        size_t cert_len = nul ? (size_t)(nul - data) : size;
        const uint8_t *key = nul ? nul + 1 : data;
        size_t key_len = nul ? size - cert_len - 1 : size;
        koc__tls_pair *p = NULL;
        koc_error err = {0};

        int r = koc__tls_pair_from_pem(data, cert_len, key, key_len, "tls.crt", "tls.key",
                                       1800000000, &p, &err);
        if (r < 0) {
                if (p || !err.message[0] || err.code != r)
                        abort();
                if (!strstr(err.message, "tls.crt") && !strstr(err.message, "tls.key") &&
                    r != -EFBIG)
                        abort();
                return 0;
        }
        if (!p || koc__tls_pair_not_after(p) <= 1800000000)
                abort();
        char *pem = koc__tls_pair_cert_pem(p);
        if (!pem || !strstr(pem, "-----BEGIN CERTIFICATE-----"))
                abort();
        free(pem);
        koc__tls_pair_free(p);
        return 0;
}
