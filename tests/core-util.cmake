koc_add_test(NAME test-time SOURCES unit/test-time.c MODULES core LABELS unit)
koc_add_test(NAME test-log SOURCES unit/test-log.c MODULES core LABELS unit)
koc_add_test(NAME test-names SOURCES unit/test-names.c MODULES core LABELS unit)
koc_add_test(NAME test-ratelimit SOURCES unit/test-ratelimit.c MODULES core LABELS unit)
