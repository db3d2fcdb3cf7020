# libkoc.so exports exactly the KOC_EXPORT declarations of include/koc/*.h (koc.sym).
add_test(NAME abi-exports
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/abi/check-exports.sh $<TARGET_FILE:koc>
                 ${PROJECT_SOURCE_DIR})
set_tests_properties(abi-exports PROPERTIES LABELS unit TIMEOUT 60)
# libkoc.a defines no global symbol but koc.sym's public functions and
# koc__ internal helpers: a static link gets them all, hidden or not.
add_test(NAME abi-static
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/abi/check-static.sh $<TARGET_FILE:koc_static>
                 ${PROJECT_SOURCE_DIR}/koc.sym)
set_tests_properties(abi-static PROPERTIES LABELS unit TIMEOUT 60)

# Older (shorter) and newer (longer) public structs against libkoc.so itself,
# through the public headers only, as an already-built program would call it.
koc_add_test(NAME test-abi-structs SOURCES unit/test-abi-structs.c LIBS koc LABELS unit TIMEOUT 120)

# A client and leader-only program linked with libkoc.a needs no
# libmicrohttpd (docs/design.md, "Who needs libmicrohttpd").
add_executable(core-only abi/core-only.c)
koc_target_settings(core-only)
target_link_libraries(core-only PRIVATE koc_static)
target_link_options(core-only PRIVATE -Wl,--as-needed)
add_test(NAME link-without-mhd COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/abi/check-no-mhd.sh
                                       $<TARGET_FILE:core-only>)
set_tests_properties(link-without-mhd PROPERTIES LABELS unit TIMEOUT 60)
add_test(NAME no-curl-above-core COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/abi/check-no-curl-above-core.sh
                                         ${PROJECT_SOURCE_DIR})
set_tests_properties(no-curl-above-core PROPERTIES LABELS unit TIMEOUT 60)
