/* SPDX-License-Identifier: Apache-2.0 */
/* The built-in resources koc-apiserver describes in discovery, and the
 * parsing of API paths. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "apiserver.h"

static const resinfo builtins[] = {
        {"", "v1", "namespaces", "Namespace", false, true, "ns"},
        {"", "v1", "configmaps", "ConfigMap", true, false, "cm"},
        {"", "v1", "secrets", "Secret", true, false, NULL},
        {"", "v1", "events", "Event", true, false, "ev"},
        {"", "v1", "pods", "Pod", true, true, "po"},
        {"", "v1", "services", "Service", true, true, "svc"},
        {"", "v1", "endpoints", "Endpoints", true, false, "ep"},
        {"", "v1", "serviceaccounts", "ServiceAccount", true, false, "sa"},
        {"", "v1", "nodes", "Node", false, true, "no"},
        {"", "v1", "persistentvolumes", "PersistentVolume", false, true, "pv"},
        {"", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true, true, "pvc"},
        {"coordination.k8s.io", "v1", "leases", "Lease", true, false, NULL},
        {"apps", "v1", "deployments", "Deployment", true, true, "deploy"},
        {"apps", "v1", "statefulsets", "StatefulSet", true, true, "sts"},
        {"apps", "v1", "replicasets", "ReplicaSet", true, true, "rs"},
        {"apps", "v1", "daemonsets", "DaemonSet", true, true, "ds"},
        {"batch", "v1", "jobs", "Job", true, true, NULL},
        {"events.k8s.io", "v1", "events", "Event", true, false, "ev"},
        {"apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
         false, true, "crd,crds"},
        {"rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false, false, NULL},
        {"rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false,
         false, NULL},
        {"rbac.authorization.k8s.io", "v1", "roles", "Role", true, false, NULL},
        {"rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true, false, NULL},
};

/* Cluster-scoped resources that discovery does not list in full. */
static const char *const cluster_scoped[] = {
        "namespaces",
        "nodes",
        "persistentvolumes",
        "customresourcedefinitions",
        "clusterroles",
        "clusterrolebindings",
        "storageclasses",
        "priorityclasses",
        "validatingwebhookconfigurations",
        "mutatingwebhookconfigurations",
        "apiservices",
        "certificatesigningrequests",
        "ingressclasses",
        "runtimeclasses",
        "csidrivers",
        "csinodes",
        "volumeattachments",
        "componentstatuses",
};

/* Built-in resources of the real server that koc-apiserver stores as plain
 * JSON without describing them in discovery.  Anything else under a
 * built-in group is "not found", as on the real server. */
static const struct {
        const char *group, *resource;
} served[] = {
        {"", "limitranges"},
        {"", "resourcequotas"},
        {"", "replicationcontrollers"},
        {"", "podtemplates"},
        {"", "componentstatuses"},
        {"apps", "controllerrevisions"},
        {"batch", "cronjobs"},
        {"autoscaling", "horizontalpodautoscalers"},
        {"policy", "poddisruptionbudgets"},
        {"networking.k8s.io", "ingresses"},
        {"networking.k8s.io", "ingressclasses"},
        {"networking.k8s.io", "networkpolicies"},
        {"discovery.k8s.io", "endpointslices"},
        {"coordination.k8s.io", "leasecandidates"},
        {"storage.k8s.io", "storageclasses"},
        {"storage.k8s.io", "csidrivers"},
        {"storage.k8s.io", "csinodes"},
        {"storage.k8s.io", "volumeattachments"},
        {"storage.k8s.io", "csistoragecapacities"},
        {"scheduling.k8s.io", "priorityclasses"},
        {"node.k8s.io", "runtimeclasses"},
        {"admissionregistration.k8s.io", "validatingwebhookconfigurations"},
        {"admissionregistration.k8s.io", "mutatingwebhookconfigurations"},
        {"admissionregistration.k8s.io", "validatingadmissionpolicies"},
        {"admissionregistration.k8s.io", "validatingadmissionpolicybindings"},
        {"certificates.k8s.io", "certificatesigningrequests"},
        {"apiregistration.k8s.io", "apiservices"},
        {"flowcontrol.apiserver.k8s.io", "flowschemas"},
        {"flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations"},
};

bool builtin_group(const char *group) {
        for (size_t i = 0; i < KOC_ELEMENTSOF(builtins); i++)
                if (strcmp(builtins[i].group, group) == 0)
                        return true;
        for (size_t i = 0; i < KOC_ELEMENTSOF(served); i++)
                if (strcmp(served[i].group, group) == 0)
                        return true;
        return false;
}

bool builtin_served(const char *group, const char *resource) {
        if (builtin_lookup(group, resource))
                return true;
        for (size_t i = 0; i < KOC_ELEMENTSOF(served); i++)
                if (strcmp(served[i].group, group) == 0 &&
                    strcmp(served[i].resource, resource) == 0)
                        return true;
        return false;
}

/* The field labels the real server accepts in field selectors, beyond
 * metadata.name and metadata.namespace (each type's GetAttrs/field label
 * conversion). */
static const struct {
        const char *group, *resource, *fields;
} field_labels[] = {
        {"", "pods",
         "spec.nodeName spec.restartPolicy spec.schedulerName spec.serviceAccountName "
         "spec.hostNetwork status.phase status.podIP status.podIPs status.nominatedNodeName"},
        {"", "events",
         "involvedObject.kind involvedObject.namespace involvedObject.name involvedObject.uid "
         "involvedObject.apiVersion involvedObject.resourceVersion involvedObject.fieldPath "
         "reason reportingComponent source type"},
        {"events.k8s.io", "events",
         "regarding.kind regarding.namespace regarding.name regarding.uid regarding.apiVersion "
         "regarding.resourceVersion regarding.fieldPath reason reportingController type"},
        {"", "secrets", "type"},
        {"", "namespaces", "status.phase"},
        {"", "nodes", "spec.unschedulable"},
        {"", "services", "spec.clusterIP spec.type"},
        {"", "replicationcontrollers", "status.replicas"},
        {"apps", "replicasets", "status.replicas"},
        {"batch", "jobs", "status.successful"},
        {"certificates.k8s.io", "certificatesigningrequests", "spec.signerName"},
};

bool field_label_supported(const char *group, const char *resource, const char *field) {
        if (strcmp(field, "metadata.name") == 0 || strcmp(field, "metadata.namespace") == 0)
                return true;
        size_t n = strlen(field);
        for (size_t i = 0; i < KOC_ELEMENTSOF(field_labels); i++) {
                if (strcmp(field_labels[i].group, group) != 0 ||
                    strcmp(field_labels[i].resource, resource) != 0)
                        continue;
                for (const char *f = field_labels[i].fields; *f;) {
                        size_t len = strcspn(f, " ");
                        if (len == n && strncmp(f, field, n) == 0)
                                return true;
                        f += len;
                        f += strspn(f, " ");
                }
        }
        return false;
}

const resinfo *builtin_resources(size_t *ret_n) {
        *ret_n = KOC_ELEMENTSOF(builtins);
        return builtins;
}

const resinfo *builtin_lookup(const char *group, const char *resource) {
        for (size_t i = 0; i < KOC_ELEMENTSOF(builtins); i++)
                if (strcmp(builtins[i].group, group) == 0 &&
                    strcmp(builtins[i].resource, resource) == 0)
                        return &builtins[i];
        return NULL;
}

bool cluster_scoped_resource(const char *group, const char *resource) {
        const resinfo *ri = builtin_lookup(group, resource);
        if (ri)
                return !ri->namespaced;
        for (size_t i = 0; i < KOC_ELEMENTSOF(cluster_scoped); i++)
                if (strcmp(cluster_scoped[i], resource) == 0)
                        return true;
        return false;
}

void api_path_free(api_path *p) {
        free(p->buf);
        *p = (api_path){0};
}

/* /api/v1/..., /apis/GROUP/VERSION/... followed by
 *   RESOURCE[/NAME[/SUB]]  or  namespaces/NS/RESOURCE[/NAME[/SUB]] */
int api_path_parse(const char *url, api_path *ret) {
        char *segs[16];
        size_t n = 0;
        api_path p = {0};

        p.buf = strdup(url);
        if (!p.buf)
                return -ENOMEM;
        for (char *save = NULL, *s = strtok_r(p.buf, "/", &save); s;
             s = strtok_r(NULL, "/", &save)) {
                if (n == KOC_ELEMENTSOF(segs))
                        goto fail;
                segs[n++] = s;
        }
        size_t i;
        if (n >= 2 && strcmp(segs[0], "api") == 0) {
                p.group = "";
                p.version = segs[1];
                i = 2;
        } else if (n >= 3 && strcmp(segs[0], "apis") == 0) {
                p.group = segs[1];
                p.version = segs[2];
                i = 3;
        } else
                goto fail;
        size_t rest = n - i;
        if (rest == 0) {
                *ret = p;
                return 0;
        }
        if (rest >= 3 && strcmp(segs[i], "namespaces") == 0 && strcmp(segs[i + 2], "status") != 0 &&
            strcmp(segs[i + 2], "finalize") != 0) {
                p.ns = segs[i + 1];
                i += 2;
                rest -= 2;
        }
        if (rest > 3)
                goto fail;
        p.resource = segs[i];
        p.name = rest >= 2 ? segs[i + 1] : NULL;
        p.sub = rest >= 3 ? segs[i + 2] : NULL;
        *ret = p;
        return 0;
fail:
        free(p.buf);
        return -ENOENT;
}
