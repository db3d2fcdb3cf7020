# koc-gen-types (tools/koc-gen-types): types generated at build time from the
# test CRDs in tests/gen/ by koc_generate_types(), as a user's project does,
# then compiled with koc's warnings (-Werror under KOC_WERROR) and tested.
koc_add_test(NAME test-gen-types SOURCES gen/test-gen-types.c MODULES core LABELS unit)
koc_generate_types(TARGET test-gen-types CRD gen/widgets-crd.yaml)
koc_generate_types(TARGET test-gen-types CRD gen/gadgets-crd.yaml)
# The generator's own refusals and its output's stability (a shell test).
add_test(NAME test-gen-types-cli
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/gen/cli.sh $<TARGET_FILE:koc-gen-types>
                 ${CMAKE_CURRENT_SOURCE_DIR}/gen)
set_tests_properties(test-gen-types-cli PROPERTIES LABELS unit TIMEOUT 120)
