# A separate project finds and links the installed koc (CMake package and pkg-config).
add_test(NAME install-check
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/install/check.sh ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR})
set_tests_properties(install-check PROPERTIES LABELS install TIMEOUT 300)
