# The shape of the library: folders include only downwards (tests/tools/layers.sh),
# and the check itself finds each forbidden kind of include in a small tree.
add_test(NAME layers COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tools/layers.sh ${PROJECT_SOURCE_DIR})
set_tests_properties(layers PROPERTIES LABELS unit TIMEOUT 60)
add_test(NAME layers-check COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tools/test-layers.sh
                                   ${CMAKE_CURRENT_SOURCE_DIR}/tools/layers.sh)
set_tests_properties(layers-check PROPERTIES LABELS unit TIMEOUT 60)
