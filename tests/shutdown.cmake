# Tests of the shutdown module.
koc_add_test(NAME test-shutdown SOURCES unit/test-shutdown.c MODULES core shutdown LABELS unit
             TIMEOUT 60)
# Shutdown and probes composed: the readiness sequence seen over HTTP.
koc_add_test(NAME test-shutdown-probes SOURCES unit/test-shutdown-probes.c
             MODULES core probes shutdown LIBS PkgConfig::CURL LABELS unit tsan TIMEOUT 60)
