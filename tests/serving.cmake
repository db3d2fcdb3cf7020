# The TLS server (serving/): certificates, rotation under load, TLS versions,
# and the metrics filter's TokenReview/SubjectAccessReview paths.
koc_add_test(NAME test-serving SOURCES integration/test-serving.c ${KOC_HARNESS_SOURCES}
             MODULES core serving LIBS PkgConfig::CURL PkgConfig::GNUTLS
             LABELS integration TIMEOUT 300)
