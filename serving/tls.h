/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A serving certificate and its key, loaded from PEM files and checked, or
 * generated in memory (self-signed).  GnuTLS objects, since libmicrohttpd
 * is built with GnuTLS and takes them from the certificate callback.
 * Internal to koc.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "koc/common.h"

typedef struct koc__tls_pair koc__tls_pair;

/* Reads cert_file (a chain: the leaf first) and key_file and checks them.
 * Errors name the file and the reason: -ENOENT missing, -EACCES and the like
 * unreadable, -EBADMSG not PEM (or no certificate / no key in it),
 * -EKEYREJECTED the key does not match the certificate, -EKEYEXPIRED expired
 * or not yet valid.  now_sec: wall-clock seconds to check validity against. */
int koc__tls_pair_load(const char *cert_file, const char *key_file, int64_t now_sec,
                       koc__tls_pair **ret, koc_error *err);
/* The same checks on a pair already in memory (cert_len, key_len bytes;
 * need not be NUL-terminated); cert_name and key_name stand for the files in
 * errors. */
int koc__tls_pair_from_pem(const void *cert, size_t cert_len, const void *key, size_t key_len,
                           const char *cert_name, const char *key_name, int64_t now_sec,
                           koc__tls_pair **ret, koc_error *err);
/* A self-signed ECDSA P-256 certificate for `cn` with the DNS names
 * localhost and cn and the addresses 127.0.0.1 and ::1, valid one year. */
int koc__tls_pair_self_signed(const char *cn, koc__tls_pair **ret, koc_error *err);
koc__tls_pair *koc__tls_pair_free(koc__tls_pair *p);
/* The leaf's notAfter (seconds since the epoch). */
int64_t koc__tls_pair_not_after(const koc__tls_pair *p);
/* The leaf as PEM (malloc'ed), e.g. for a client's CA bundle in tests. */
char *koc__tls_pair_cert_pem(const koc__tls_pair *p);

/* For the GnuTLS certificate callback: the parsed chain and key. */
struct gnutls_pcert_st;
struct gnutls_privkey_st;
void koc__tls_pair_get(koc__tls_pair *p, struct gnutls_pcert_st **ret_pcerts, unsigned *ret_n,
                       struct gnutls_privkey_st **ret_key);

/* The priority string of every koc TLS server: TLS 1.3 and 1.2 only, AEAD
 * ciphers with forward secrecy. */
#define KOC__TLS_PRIORITIES                                                                        \
        "SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"    \
        "+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:%SERVER_PRECEDENCE"
