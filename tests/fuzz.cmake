# Regression tests for what the fuzzers in tests/fuzz/ found, as cmocka
# tests of the regular build (the fuzzers themselves build with clang:
# tests/fuzz/run.sh, registered below with KOC_FUZZ).
koc_add_test(NAME test-hostile-lease
             SOURCES unit/test-hostile-lease.c ${PROJECT_SOURCE_DIR}/leader/lease-record.c
             MODULES core LABELS unit)
koc_add_test(NAME test-hostile-files SOURCES unit/test-hostile-files.c MODULES core LABELS unit
             LIBS PkgConfig::CURL)
koc_add_test(NAME test-hostile-parse SOURCES unit/test-hostile-parse.c MODULES core LABELS unit)

# The libFuzzer harnesses as ctest tests (label fuzz), with -DKOC_FUZZ=ON:
# fuzz-build compiles every harness with clang (tests/fuzz/run.sh
# --build-only, into <build>/fuzz), then fuzz-<target> replays that target's
# regression inputs and fuzzes it for KOC_FUZZ_SECONDS under ASan and UBSan.
# Off by default: the build and the other tests use gcc, and
# scripts/test.sh runs this label in its own stage (build-fuzz/).
option(KOC_FUZZ "Register the libFuzzer harnesses as ctest tests (label fuzz; needs clang)" OFF)
if(KOC_FUZZ)
  find_program(KOC_FUZZ_CC NAMES clang clang-14 REQUIRED)
  set(KOC_FUZZ_SECONDS 15 CACHE STRING "Seconds each fuzz target runs under ctest")
  set(KOC_FUZZ_TARGETS linebuf status time kubeconfig leader-fsm apiserver list watch-store
                       selector transform)
  list(APPEND KOC_FUZZ_TARGETS exec-credential in-cluster response helpers path probes gen-types schema
                               serving-pem jsonpatch)
  list(APPEND KOC_FUZZ_TARGETS authz webhook)
  set(fuzz_env "CC_FUZZ=${KOC_FUZZ_CC}" "KOC_FUZZ_DIR=${PROJECT_BINARY_DIR}/fuzz")
  add_test(NAME fuzz-build
           COMMAND env ${fuzz_env} bash ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/run.sh --build-only)
  set_tests_properties(fuzz-build PROPERTIES LABELS fuzz TIMEOUT 900 FIXTURES_SETUP fuzz-built)
  math(EXPR fuzz_timeout "${KOC_FUZZ_SECONDS} * 4 + 120")
  foreach(t IN LISTS KOC_FUZZ_TARGETS)
    add_test(NAME fuzz-${t}
             COMMAND env ${fuzz_env} bash ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/run.sh --no-build
                     ${KOC_FUZZ_SECONDS} ${t})
    set_tests_properties(fuzz-${t} PROPERTIES LABELS fuzz TIMEOUT ${fuzz_timeout}
                         FIXTURES_REQUIRED fuzz-built)
  endforeach()
endif()
