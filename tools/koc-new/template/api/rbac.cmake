
# The RBAC rules the program needs, as it prints them (--print-rbac: its
# informers, the accesses its controllers declare, Events, the Lease), kept
# in rbac-values.yaml for the chart (helm install -f rbac-values.yaml).
# `cmake --build build --target __NAME__-rbac-values` writes it again after a
# change; the test __NAME__-rbac fails while it differs.  Added by
# `koc-new api`.
add_custom_target(__NAME__-rbac-values
                  COMMAND $<TARGET_FILE:__NAME__> --print-rbac > ${CMAKE_CURRENT_SOURCE_DIR}/rbac-values.yaml
                  DEPENDS __NAME__ VERBATIM)
if(BUILD_TESTING)
  add_test(NAME __NAME__-rbac
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tests/check-rbac.sh $<TARGET_FILE:__NAME__>
                   ${CMAKE_CURRENT_SOURCE_DIR}/rbac-values.yaml)
endif()
