/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A program that uses only the lower layers (client, leader election,
 * shutdown, metrics) and links libkoc.a: tests/abi/check-no-mhd.sh checks
 * that it needs no libmicrohttpd, which only probes/ (and so the manager)
 * uses.  Exits 0 when every handle could be made.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <koc/client.h>
#include <koc/config.h>
#include <koc/leader.h>
#include <koc/metrics.h>
#include <koc/shutdown.h>

int main(void) {
        char path[] = "/tmp/koc-core-only-XXXXXX";
        int fd = mkstemp(path);
        if (fd < 0)
                return 2;
        FILE *f = fdopen(fd, "w");
        if (!f)
                return 2;
        /* Nothing here sends a request; the server is never contacted. */
        fputs("apiVersion: v1\nkind: Config\ncurrent-context: c\n"
              "contexts:\n- name: c\n  context: {cluster: k, user: u, namespace: ns}\n"
              "clusters:\n- name: k\n  cluster: {server: 'https://127.0.0.1:1'}\n"
              "users:\n- name: u\n  user: {token: t}\n",
              f);
        fclose(f);
        sd_event *event = NULL;
        koc_cluster_config *cfg = NULL;
        koc_client *client = NULL;
        koc_leader_config *lc = NULL;
        koc_leader *leader = NULL;
        koc_shutdown *shutdown = NULL;
        koc_metrics *metrics = NULL;
        koc_error err = {0};
        int r = sd_event_new(&event);
        if (r >= 0)
                r = koc_cluster_config_load(path, NULL, &cfg, &err);
        if (r >= 0)
                r = koc_client_new(event, cfg, &client);
        if (r >= 0)
                r = koc_leader_config_new("default", "core-only", &lc);
        if (r >= 0)
                r = koc_leader_new(client, lc, &leader, &err);
        if (r >= 0)
                r = koc_shutdown_new(event, &shutdown);
        if (r >= 0)
                r = koc_metrics_new(&metrics);
        if (r >= 0)
                r = koc_leader_register_metrics(leader, metrics);
        koc_metrics_unref(metrics);
        koc_shutdown_unref(shutdown);
        koc_leader_unref(leader);
        koc_leader_config_free(lc);
        koc_client_unref(client);
        koc_cluster_config_unref(cfg);
        sd_event_unref(event);
        unlink(path);
        if (r < 0) {
                fprintf(stderr, "core-only: %d %s\n", r, err.message);
                return 1;
        }
        printf("core-only ok\n");
        return 0;
}
