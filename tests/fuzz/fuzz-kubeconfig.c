/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kubeconfig loader on arbitrary files.  Errors are expected; crashes,
 * leaks and unbounded work are not.  Exec credential plugins are never run:
 * the link wraps koc__exec_credential_run (-Wl,--wrap) with a stub that
 * refuses, so fuzz input cannot start programs.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/cluster-config.h"
#include "koc/config.h"

int __wrap_koc__exec_credential_run(const koc_exec_config *e, char **ret_token,
                                    uint64_t *ret_expiry, koc_error *err);
int __wrap_koc__exec_credential_run(const koc_exec_config *e, char **ret_token,
                                    uint64_t *ret_expiry, koc_error *err) {
        (void)e;
        (void)ret_token;
        (void)ret_expiry;
        return koc_error_set(err, -EPERM, "exec plugins are not run while fuzzing");
}

static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        (void)argc;
        (void)argv;
        snprintf(path, sizeof path, "/tmp/koc-fuzz-kubeconfig-%d", (int)getpid());
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        FILE *f = fopen(path, "we");
        if (!f)
                abort();
        if (size && fwrite(data, 1, size, f) != size)
                abort();
        if (fclose(f) != 0)
                abort();

        koc_cluster_config *cfg = NULL;
        koc_error err = {0};
        int r = koc_cluster_config_from_kubeconfig(path, NULL, &cfg, &err);
        if (r < 0) {
                if (cfg || err.message[0] == '\0')
                        abort(); /* a failure returns nothing and says why */
        } else {
                if (!cfg || !koc_cluster_config_server(cfg))
                        abort();
                (void)strlen(koc_cluster_config_namespace(cfg));
                koc_cluster_config_unref(cfg);
        }
        /* A named context that may or may not exist. */
        cfg = NULL;
        memset(&err, 0, sizeof err);
        r = koc_cluster_config_from_kubeconfig(path, "ctx", &cfg, &err);
        if (r >= 0)
                koc_cluster_config_unref(cfg);
        unlink(path);
        return 0;
}
