/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "serving/tls.h"

/* A certificate chain or key file is a few KB; more is not one. */
#define MAX_PEM_BYTES (1024 * 1024)
#define MAX_CHAIN 16

struct koc__tls_pair {
        gnutls_pcert_st pcerts[MAX_CHAIN];
        unsigned n_pcerts;
        gnutls_privkey_t key;
        int64_t not_after;
        char *leaf_pem;
};

koc__tls_pair *koc__tls_pair_free(koc__tls_pair *p) {
        if (!p)
                return NULL;
        for (unsigned i = 0; i < p->n_pcerts; i++)
                gnutls_pcert_deinit(&p->pcerts[i]);
        if (p->key)
                gnutls_privkey_deinit(p->key);
        free(p->leaf_pem);
        free(p);
        return NULL;
}

int64_t koc__tls_pair_not_after(const koc__tls_pair *p) {
        return p->not_after;
}

char *koc__tls_pair_cert_pem(const koc__tls_pair *p) {
        return p->leaf_pem ? strdup(p->leaf_pem) : NULL;
}

void koc__tls_pair_get(koc__tls_pair *p, struct gnutls_pcert_st **ret_pcerts, unsigned *ret_n,
                       struct gnutls_privkey_st **ret_key) {
        *ret_pcerts = p->pcerts;
        *ret_n = p->n_pcerts;
        *ret_key = p->key;
}

static int read_file(const char *path, const char *what, gnutls_datum_t *ret, koc_error *err) {
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                int r = -errno;
                if (r == -ENOENT)
                        return koc_error_set(err, r, "%s file %s: missing", what, path);
                return koc_error_set(err, r, "%s file %s: unreadable: %s", what, path,
                                     strerror(-r));
        }
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                close(fd);
                return koc_error_set(err, -EINVAL, "%s file %s: unreadable: not a regular file",
                                     what, path);
        }
        size_t cap = MAX_PEM_BYTES + 1, len = 0;
        char *buf = malloc(cap + 1);
        if (!buf) {
                close(fd);
                return koc_error_set(err, -ENOMEM, "%s file %s: out of memory", what, path);
        }
        for (;;) {
                ssize_t n = read(fd, buf + len, cap - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        int r = -errno;
                        free(buf);
                        close(fd);
                        return koc_error_set(err, r, "%s file %s: unreadable: %s", what, path,
                                             strerror(-r));
                }
                if (n == 0)
                        break;
                len += (size_t)n;
                if (len >= cap)
                        break;
        }
        close(fd);
        if (len > MAX_PEM_BYTES) {
                free(buf);
                return koc_error_set(err, -EFBIG, "%s file %s: not PEM: larger than %d bytes",
                                     what, path, MAX_PEM_BYTES);
        }
        buf[len] = 0;
        ret->data = (unsigned char *)buf;
        ret->size = (unsigned)len;
        return 0;
}

static int key_id(int is_crt, void *obj, unsigned char *buf, size_t *len) {
        if (is_crt)
                return gnutls_x509_crt_get_key_id(obj, GNUTLS_KEYID_USE_SHA256, buf, len);
        return gnutls_x509_privkey_get_key_id(obj, GNUTLS_KEYID_USE_SHA256, buf, len);
}

static void fmt_time(int64_t t, char *buf, size_t size) {
        time_t tt = (time_t)t;
        struct tm tm;
        if (!gmtime_r(&tt, &tm) || !strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
                snprintf(buf, size, "%lld", (long long)t);
}

/* Parses and checks a pair already in memory; cert_name and key_name say
 * where it came from in errors. */
static int pair_from_pem(const gnutls_datum_t *cert, const gnutls_datum_t *key,
                         const char *cert_name, const char *key_name, int64_t now_sec,
                         koc__tls_pair **ret, koc_error *err) {
        gnutls_x509_crt_t *crts = NULL;
        unsigned n = 0;
        gnutls_x509_privkey_t xkey = NULL;
        koc__tls_pair *p = NULL;
        int r, g;

        if (!memmem(cert->data, cert->size, "-----BEGIN CERTIFICATE-----", 27))
                return koc_error_set(err, -EBADMSG,
                                     "certificate file %s: not PEM: no CERTIFICATE block",
                                     cert_name);
        g = gnutls_x509_crt_list_import2(&crts, &n, cert, GNUTLS_X509_FMT_PEM, 0);
        if (g < 0 || n == 0) {
                r = koc_error_set(err, -EBADMSG, "certificate file %s: not PEM: %s", cert_name,
                                  g < 0 ? gnutls_strerror(g) : "no certificate");
                goto out;
        }
        if (n > MAX_CHAIN) {
                r = koc_error_set(err, -E2BIG, "certificate file %s: more than %d certificates",
                                  cert_name, MAX_CHAIN);
                goto out;
        }
        if (!memmem(key->data, key->size, "-----BEGIN ", 11) ||
            !memmem(key->data, key->size, "PRIVATE KEY-----", 16)) {
                r = koc_error_set(err, -EBADMSG, "key file %s: not PEM: no PRIVATE KEY block",
                                  key_name);
                goto out;
        }
        g = gnutls_x509_privkey_init(&xkey);
        if (g >= 0)
                g = gnutls_x509_privkey_import2(xkey, key, GNUTLS_X509_FMT_PEM, NULL,
                                                GNUTLS_PKCS_PLAIN);
        if (g < 0) {
                r = koc_error_set(err, -EBADMSG, "key file %s: not PEM: %s", key_name,
                                  gnutls_strerror(g));
                goto out;
        }
        unsigned char a[64], b[64];
        size_t la = sizeof a, lb = sizeof b;
        if (key_id(1, crts[0], a, &la) < 0 || key_id(0, xkey, b, &lb) < 0 || la != lb ||
            memcmp(a, b, la) != 0) {
                r = koc_error_set(err, -EKEYREJECTED,
                                  "key file %s: key does not match the certificate in %s",
                                  key_name, cert_name);
                goto out;
        }
        int64_t nb = gnutls_x509_crt_get_activation_time(crts[0]);
        int64_t na = gnutls_x509_crt_get_expiration_time(crts[0]);
        char t[40];
        if (na != -1 && na <= now_sec) {
                fmt_time(na, t, sizeof t);
                r = koc_error_set(err, -EKEYEXPIRED, "certificate file %s: expired at %s",
                                  cert_name, t);
                goto out;
        }
        if (nb != -1 && nb > now_sec) {
                fmt_time(nb, t, sizeof t);
                r = koc_error_set(err, -EKEYEXPIRED, "certificate file %s: not valid before %s",
                                  cert_name, t);
                goto out;
        }

        p = calloc(1, sizeof(*p));
        if (!p) {
                r = koc_error_set(err, -ENOMEM, "out of memory");
                goto out;
        }
        p->not_after = na;
        unsigned m = n;
        g = gnutls_pcert_import_x509_list(p->pcerts, crts, &m, 0);
        if (g < 0) {
                r = koc_error_set(err, -EBADMSG, "certificate file %s: %s", cert_name,
                                  gnutls_strerror(g));
                goto out;
        }
        p->n_pcerts = m;
        gnutls_datum_t pem = {0};
        if (gnutls_x509_crt_export2(crts[0], GNUTLS_X509_FMT_PEM, &pem) >= 0) {
                p->leaf_pem = strndup((const char *)pem.data, pem.size);
                gnutls_free(pem.data);
        }
        g = gnutls_privkey_init(&p->key);
        if (g >= 0)
                g = gnutls_privkey_import_x509(p->key, xkey, GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE);
        if (g < 0) {
                r = koc_error_set(err, -EBADMSG, "key file %s: %s", key_name, gnutls_strerror(g));
                goto out;
        }
        xkey = NULL; /* owned by p->key now */
        *ret = p;
        p = NULL;
        r = 0;
out:
        koc__tls_pair_free(p);
        if (xkey)
                gnutls_x509_privkey_deinit(xkey);
        for (unsigned i = 0; i < n; i++)
                gnutls_x509_crt_deinit(crts[i]);
        gnutls_free(crts);
        return r;
}

int koc__tls_pair_from_pem(const void *cert, size_t cert_len, const void *key, size_t key_len,
                           const char *cert_name, const char *key_name, int64_t now_sec,
                           koc__tls_pair **ret, koc_error *err) {
        if (cert_len > MAX_PEM_BYTES || key_len > MAX_PEM_BYTES)
                return koc_error_set(err, -EFBIG, "certificate or key larger than %d bytes",
                                     MAX_PEM_BYTES);
        /* GnuTLS' legacy key parser (gnutls_x509_privkey_import_openssl)
         * reads past a PEM buffer that does not end in a NUL (found by
         * fuzz-serving-pem): both get one, as read_file() gives them. */
        char *c0 = malloc(cert_len + 1), *k0 = malloc(key_len + 1);
        int r;
        if (!c0 || !k0)
                r = koc_error_set(err, -ENOMEM, "out of memory");
        else {
                memcpy(c0, cert, cert_len);
                c0[cert_len] = 0;
                memcpy(k0, key, key_len);
                k0[key_len] = 0;
                gnutls_datum_t c = {.data = (unsigned char *)c0, .size = (unsigned)cert_len};
                gnutls_datum_t k = {.data = (unsigned char *)k0, .size = (unsigned)key_len};
                r = pair_from_pem(&c, &k, cert_name, key_name, now_sec, ret, err);
        }
        free(c0);
        if (k0) {
                explicit_bzero(k0, key_len);
                free(k0);
        }
        return r;
}

int koc__tls_pair_load(const char *cert_file, const char *key_file, int64_t now_sec,
                       koc__tls_pair **ret, koc_error *err) {
        gnutls_datum_t cert = {0}, key = {0};
        int r = read_file(cert_file, "certificate", &cert, err);
        if (r < 0)
                return r;
        r = read_file(key_file, "key", &key, err);
        if (r >= 0)
                r = pair_from_pem(&cert, &key, cert_file, key_file, now_sec, ret, err);
        free(cert.data);
        if (key.data) {
                explicit_bzero(key.data, key.size);
                free(key.data);
        }
        return r;
}

int koc__tls_pair_self_signed(const char *cn, koc__tls_pair **ret, koc_error *err) {
        gnutls_x509_privkey_t key = NULL;
        gnutls_x509_crt_t crt = NULL;
        gnutls_datum_t cpem = {0}, kpem = {0};
        unsigned char serial[16];
        int64_t now = time(NULL);
        int g, r;

        g = gnutls_x509_privkey_init(&key);
        if (g >= 0)
                g = gnutls_x509_privkey_generate(
                        key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
        if (g >= 0)
                g = gnutls_x509_crt_init(&crt);
        if (g >= 0)
                g = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof serial);
        serial[0] &= 0x7f;
        if (g >= 0)
                g = gnutls_x509_crt_set_version(crt, 3);
        if (g >= 0)
                g = gnutls_x509_crt_set_serial(crt, serial, sizeof serial);
        if (g >= 0)
                g = gnutls_x509_crt_set_activation_time(crt, (time_t)(now - 60));
        if (g >= 0)
                g = gnutls_x509_crt_set_expiration_time(crt, (time_t)(now + 365 * 24 * 3600));
        if (g >= 0)
                g = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
                                                  (unsigned)strlen(cn));
        if (g >= 0)
                g = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, "localhost", 9,
                                                         GNUTLS_FSAN_APPEND);
        if (g >= 0)
                g = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, cn,
                                                         (unsigned)strlen(cn),
                                                         GNUTLS_FSAN_APPEND);
        static const unsigned char v4[4] = {127, 0, 0, 1};
        static const unsigned char v6[16] = {[15] = 1};
        if (g >= 0)
                g = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, v4, 4,
                                                         GNUTLS_FSAN_APPEND);
        if (g >= 0)
                g = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, v6, 16,
                                                         GNUTLS_FSAN_APPEND);
        if (g >= 0)
                g = gnutls_x509_crt_set_key(crt, key);
        if (g >= 0)
                g = gnutls_x509_crt_set_basic_constraints(crt, 0, -1);
        if (g >= 0)
                g = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE);
        if (g >= 0)
                g = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0);
        if (g >= 0)
                g = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0);
        if (g >= 0)
                g = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &cpem);
        if (g >= 0)
                g = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL,
                                                      GNUTLS_PKCS_PLAIN, &kpem);
        if (g < 0)
                r = koc_error_set(err, -EIO, "self-signed certificate: %s", gnutls_strerror(g));
        else
                r = koc__tls_pair_from_pem(cpem.data, cpem.size, kpem.data, kpem.size,
                                           "(self-signed)", "(self-signed)", now, ret, err);
        if (kpem.data) {
                explicit_bzero(kpem.data, kpem.size);
                gnutls_free(kpem.data);
        }
        gnutls_free(cpem.data);
        if (crt)
                gnutls_x509_crt_deinit(crt);
        if (key)
                gnutls_x509_privkey_deinit(key);
        return r;
}
