/* SPDX-License-Identifier: Apache-2.0 */
/* Figures for the cluster configuration (not a test): loading a kubeconfig
 * with inline certificates, a merged KUBECONFIG of 50 contexts, and the
 * cost of koc__cluster_config_auth_header() between token re-reads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/config-internal.h"
#include "koc/time.h"

static char *b64_of_pem_cert(EVP_PKEY *key, char **ret_key_b64) {
        X509 *x = X509_new();
        ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
        X509_gmtime_adj(X509_getm_notBefore(x), 0);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600);
        X509_set_pubkey(x, key);
        X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                   (const unsigned char *)"bench", -1, -1, 0);
        X509_set_issuer_name(x, X509_get_subject_name(x));
        X509_sign(x, key, EVP_sha256());
        char *out[2];
        for (int i = 0; i < 2; i++) {
                BIO *b = BIO_new(BIO_s_mem());
                if (i == 0)
                        PEM_write_bio_X509(b, x);
                else
                        PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
                char *p;
                long n = BIO_get_mem_data(b, &p);
                out[i] = malloc(4 * ((size_t)n + 2) / 3 + 8);
                EVP_EncodeBlock((unsigned char *)out[i], (unsigned char *)p, (int)n);
                BIO_free(b);
        }
        X509_free(x);
        *ret_key_b64 = out[1];
        return out[0];
}

static double load_usec(const char *paths, int rounds) {
        uint64_t start = koc_now_boottime_usec();
        for (int i = 0; i < rounds; i++) {
                koc_cluster_config *cfg = NULL;
                koc_error err = {0};
                if (koc_cluster_config_from_kubeconfig(paths, NULL, &cfg, &err) < 0) {
                        fprintf(stderr, "%s\n", err.message);
                        exit(1);
                }
                koc_cluster_config_unref(cfg);
        }
        return (double)(koc_now_boottime_usec() - start) / rounds;
}

int main(void) {
        char dir[] = "/tmp/koc-bench-kubeconfig-XXXXXX";
        if (!mkdtemp(dir))
                return 1;
        EVP_PKEY *key = EVP_EC_gen("P-256");
        char *key_b64 = NULL;
        char *cert_b64 = b64_of_pem_cert(key, &key_b64);

        char one[256], two[256], token[256];
        snprintf(one, sizeof one, "%s/one.yaml", dir);
        snprintf(two, sizeof two, "%s/two.yaml", dir);
        snprintf(token, sizeof token, "%s/token", dir);
        FILE *f = fopen(token, "w");
        fputs("bench-token\n", f);
        fclose(f);
        f = fopen(one, "w");
        fprintf(f, "current-context: ctx-0\nclusters:\n");
        for (int i = 0; i < 50; i++)
                fprintf(f,
                        "- name: cluster-%d\n  cluster:\n    server: https://10.0.0.%d:6443\n"
                        "    certificate-authority-data: %s\n",
                        i, i, cert_b64);
        fprintf(f,
                "users:\n- name: user\n  user:\n    client-certificate-data: %s\n"
                "    client-key-data: %s\n    tokenFile: token\n",
                cert_b64, key_b64);
        fclose(f);
        f = fopen(two, "w");
        fprintf(f, "contexts:\n");
        for (int i = 0; i < 50; i++)
                fprintf(f, "- name: ctx-%d\n  context: {cluster: cluster-%d, user: user}\n", i, i);
        fclose(f);

        char list[600];
        snprintf(list, sizeof list, "%s:%s", one, two);
        struct stat_like {
                long size;
        } s1 = {0};
        f = fopen(one, "r");
        fseek(f, 0, SEEK_END);
        s1.size = ftell(f);
        fclose(f);
        printf("load merged kubeconfig (2 files, %ld + small bytes, 50 clusters with inline CA, "
               "client cert, tokenFile): %.0f us/load\n",
               s1.size, load_usec(list, 200));

        koc_cluster_config *cfg = NULL;
        if (koc_cluster_config_from_kubeconfig(list, NULL, &cfg, NULL) < 0)
                return 1;
        const int calls = 1000000;
        uint64_t start = koc_now_boottime_usec();
        for (int i = 0; i < calls; i++)
                if (!koc__cluster_config_auth_header(cfg))
                        return 1;
        printf("auth header between re-reads: %.0f ns/call\n",
               (double)(koc_now_boottime_usec() - start) * 1000.0 / calls);
        start = koc_now_boottime_usec();
        for (int i = 0; i < 20000; i++) {
                koc__cluster_config_token_invalidate(cfg);
                if (!koc__cluster_config_auth_header(cfg))
                        return 1;
        }
        printf("auth header with a token file re-read: %.1f us/call\n",
               (double)(koc_now_boottime_usec() - start) / 20000);
        koc_cluster_config_unref(cfg);

        unlink(one);
        unlink(two);
        unlink(token);
        rmdir(dir);
        free(cert_b64);
        free(key_b64);
        EVP_PKEY_free(key);
        return 0;
}
