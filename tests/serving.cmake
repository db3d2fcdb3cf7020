# The TLS server (serving/): certificates, rotation under load, TLS versions,
# and the metrics filter's TokenReview/SubjectAccessReview paths.
koc_add_test(NAME test-serving SOURCES integration/test-serving.c ${KOC_HARNESS_SOURCES}
             MODULES core serving LIBS PkgConfig::CURL PkgConfig::GNUTLS
             LABELS integration tsan TIMEOUT 300)
# A manager with --metrics-secure on koc-apiserver, and as k8s-test-metrics-secure on
# kube-apiserver (ServiceAccount tokens, a ClusterRole bound for /metrics).
koc_add_test(NAME test-metrics-secure SOURCES integration/test-metrics-secure.c ${KOC_HARNESS_SOURCES}
             MODULES core leader probes serving shutdown cache manager LIBS PkgConfig::CURL
             LABELS integration tsan K8S TIMEOUT 180)
# Admission webhooks on a manager, asked directly with hand-made AdmissionReviews.
koc_add_test(NAME test-webhook SOURCES integration/test-webhook.c ${KOC_HARNESS_SOURCES}
             MODULES core leader probes serving shutdown cache manager LIBS PkgConfig::CURL
             LABELS integration tsan TIMEOUT 180)
