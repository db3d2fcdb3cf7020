# Tests of the shutdown module.
koc_add_test(NAME test-shutdown SOURCES unit/test-shutdown.c MODULES core shutdown LABELS unit
             TIMEOUT 60)
