# The container image (Dockerfile at the root): without a container engine,
# its runtime stage is compared with what the built binary links (ldd, dpkg -S)
# and with the chart's UID.
if(TARGET koc-example-leader)
  add_test(NAME image-check
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/image/check.sh ${PROJECT_SOURCE_DIR}/Dockerfile
                   $<TARGET_FILE:koc-example-leader> ${PROJECT_SOURCE_DIR}/charts/koc-example/values.yaml
                   ${PROJECT_SOURCE_DIR}/scripts/install-deps.sh)
  set_tests_properties(image-check PROPERTIES LABELS tools TIMEOUT 120)
endif()
