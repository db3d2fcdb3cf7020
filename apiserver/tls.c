/* SPDX-License-Identifier: Apache-2.0 */
/* A throwaway CA and a serving certificate for 127.0.0.1, ::1 and localhost,
 * made at start with OpenSSL (EC P-256). */
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver.h"

static EVP_PKEY *new_key(void) {
        return EVP_EC_gen("P-256");
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
        X509V3_CTX ctx;
        X509_EXTENSION *ext;

        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
        if (!ext)
                return -EINVAL;
        int ok = X509_add_ext(cert, ext, -1);
        X509_EXTENSION_free(ext);
        return ok ? 0 : -EINVAL;
}

static X509 *new_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, bool ca) {
        X509 *cert = X509_new();
        unsigned char serial[16];
        BIGNUM *bn = NULL;
        X509_NAME *name;
        int ok = 0;

        if (!cert)
                return NULL;
        if (RAND_bytes(serial, sizeof serial) != 1)
                goto out;
        serial[0] &= 0x7f;
        bn = BN_bin2bn(serial, sizeof serial, NULL);
        if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)))
                goto out;
        if (!X509_set_version(cert, 2))
                goto out;
        /* Valid from an hour ago (clock skew) for a year. */
        if (!X509_gmtime_adj(X509_getm_notBefore(cert), -3600) ||
            !X509_gmtime_adj(X509_getm_notAfter(cert), 365L * 24 * 3600))
                goto out;
        if (!X509_set_pubkey(cert, key))
                goto out;
        name = X509_get_subject_name(cert);
        if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"koc", -1,
                                        -1, 0) ||
            !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
                                        0))
                goto out;
        if (!X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name))
                goto out;
        X509 *iss = issuer ? issuer : cert;
        if (ca) {
                if (add_ext(cert, iss, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
                    add_ext(cert, iss, NID_key_usage,
                            "critical,keyCertSign,cRLSign,digitalSignature") < 0 ||
                    add_ext(cert, iss, NID_subject_key_identifier, "hash") < 0)
                        goto out;
        } else {
                if (add_ext(cert, iss, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
                    add_ext(cert, iss, NID_key_usage, "critical,digitalSignature,keyEncipherment") <
                            0 ||
                    add_ext(cert, iss, NID_ext_key_usage, "serverAuth") < 0 ||
                    add_ext(cert, iss, NID_subject_key_identifier, "hash") < 0 ||
                    add_ext(cert, iss, NID_authority_key_identifier, "keyid:always") < 0 ||
                    add_ext(cert, iss, NID_subject_alt_name, "IP:127.0.0.1,IP:::1,DNS:localhost") <
                            0)
                        goto out;
        }
        if (!X509_sign(cert, issuer_key ? issuer_key : key, EVP_sha256()))
                goto out;
        ok = 1;
out:
        BN_free(bn);
        if (!ok) {
                X509_free(cert);
                return NULL;
        }
        return cert;
}

static char *bio_to_string(BIO *bio) {
        char *data;
        long n = BIO_get_mem_data(bio, &data);
        if (n <= 0)
                return NULL;
        char *s = malloc((size_t)n + 1);
        if (!s)
                return NULL;
        memcpy(s, data, (size_t)n);
        s[n] = 0;
        return s;
}

static char *cert_pem(X509 *cert) {
        BIO *bio = BIO_new(BIO_s_mem());
        char *s = NULL;
        if (bio && PEM_write_bio_X509(bio, cert))
                s = bio_to_string(bio);
        BIO_free(bio);
        return s;
}

static char *key_pem(EVP_PKEY *key) {
        BIO *bio = BIO_new(BIO_s_mem());
        char *s = NULL;
        if (bio && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL))
                s = bio_to_string(bio);
        BIO_free(bio);
        return s;
}

int tls_make_certs(char **ret_ca_pem, char **ret_cert_pem, char **ret_key_pem) {
        EVP_PKEY *ca_key = new_key(), *key = new_key();
        X509 *ca = NULL, *cert = NULL;
        char *ca_s = NULL, *cert_s = NULL, *key_s = NULL;
        int r = -EIO;

        if (!ca_key || !key)
                goto out;
        ca = new_cert(ca_key, "koc-apiserver-ca", NULL, NULL, true);
        if (!ca)
                goto out;
        cert = new_cert(key, "koc-apiserver", ca, ca_key, false);
        if (!cert)
                goto out;
        ca_s = cert_pem(ca);
        cert_s = cert_pem(cert);
        key_s = key_pem(key);
        if (!ca_s || !cert_s || !key_s)
                goto out;
        *ret_ca_pem = ca_s;
        *ret_cert_pem = cert_s;
        *ret_key_pem = key_s;
        ca_s = cert_s = key_s = NULL;
        r = 0;
out:
        free(ca_s);
        free(cert_s);
        if (key_s) {
                explicit_bzero(key_s, strlen(key_s));
                free(key_s);
        }
        X509_free(ca);
        X509_free(cert);
        EVP_PKEY_free(ca_key);
        EVP_PKEY_free(key);
        return r;
}
