# libkoc.so exports exactly the KOC_EXPORT declarations of include/koc/*.h (koc.sym).
add_test(NAME abi-exports
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/abi/check-exports.sh $<TARGET_FILE:koc>
                 ${PROJECT_SOURCE_DIR})
set_tests_properties(abi-exports PROPERTIES LABELS unit TIMEOUT 60)

# Older (shorter) and newer (longer) public structs against libkoc.so itself,
# through the public headers only, as an already-built program would call it.
koc_add_test(NAME test-abi-structs SOURCES unit/test-abi-structs.c LIBS koc LABELS unit TIMEOUT 120)
