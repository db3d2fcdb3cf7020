# Regression tests for what the fuzzers in tests/fuzz/ found (the fuzzers
# themselves build with clang outside CMake: tests/fuzz/run.sh).
koc_add_test(NAME test-hostile-lease
             SOURCES unit/test-hostile-lease.c ${PROJECT_SOURCE_DIR}/leader/fsm.c
             MODULES core LABELS unit)
koc_add_test(NAME test-hostile-files SOURCES unit/test-hostile-files.c MODULES core LABELS unit
             LIBS PkgConfig::CURL)
koc_add_test(NAME test-hostile-parse SOURCES unit/test-hostile-parse.c MODULES core LABELS unit)
