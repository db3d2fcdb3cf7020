# Tests and benchmark of the probes module.
koc_add_test(NAME test-probes SOURCES unit/test-probes.c MODULES core probes
             LIBS PkgConfig::CURL LABELS unit TIMEOUT 60)
