# koc_generate_types(TARGET <target> CRD <crd.yaml> [PREFIX <c prefix>]
#                    [OUTPUT_DIR <dir>] [NAME <base name>])
#
# Generates C types for every version of a CustomResourceDefinition's schema
# with koc-gen-types (tools/koc-gen-types/README.md) and adds them to
# <target>: <OUTPUT_DIR>/<NAME>.h and <NAME>.c, where NAME defaults to the
# CRD file's name without extension followed by "-types" and OUTPUT_DIR to
# ${CMAKE_CURRENT_BINARY_DIR}/koc-types.  OUTPUT_DIR is added to the
# target's include directories, so the program includes "<NAME>.h".  The
# files are regenerated whenever the CRD or the generator changes.
#
# Also for Kubernetes OpenAPI documents:
# koc_generate_types(TARGET <t> OPENAPI <doc.json>... ROOTS <schema>...
#                    [OPAQUE <schema or schema.property>...] [STRING_ENUMS]
#                    NAME <base name> [PREFIX <prefix>] [OUTPUT_DIR <dir>])
function(koc_generate_types)
  cmake_parse_arguments(G "STRING_ENUMS" "TARGET;CRD;PREFIX;OUTPUT_DIR;NAME" "OPENAPI;ROOTS;OPAQUE" ${ARGN})
  if(NOT G_TARGET)
    message(FATAL_ERROR "koc_generate_types: TARGET is required")
  endif()
  if(NOT G_CRD AND NOT G_OPENAPI)
    message(FATAL_ERROR "koc_generate_types: give CRD <file> or OPENAPI <files> ROOTS <schemas>")
  endif()
  if(NOT TARGET koc::koc-gen-types)
    message(FATAL_ERROR "koc_generate_types: koc-gen-types is not available (koc built without tools?)")
  endif()
  if(NOT G_OUTPUT_DIR)
    set(G_OUTPUT_DIR ${CMAKE_CURRENT_BINARY_DIR}/koc-types)
  endif()
  set(args "")
  set(deps "")
  if(G_CRD)
    get_filename_component(crd "${G_CRD}" ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
    if(NOT G_NAME)
      get_filename_component(G_NAME "${crd}" NAME_WE)
      set(G_NAME "${G_NAME}-types")
    endif()
    list(APPEND args --crd ${crd})
    list(APPEND deps ${crd})
  else()
    if(NOT G_NAME OR NOT G_ROOTS)
      message(FATAL_ERROR "koc_generate_types: OPENAPI needs ROOTS and NAME")
    endif()
    foreach(d IN LISTS G_OPENAPI)
      get_filename_component(d "${d}" ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
      list(APPEND args --openapi ${d})
      list(APPEND deps ${d})
    endforeach()
    foreach(r IN LISTS G_ROOTS)
      list(APPEND args --root ${r})
    endforeach()
    foreach(o IN LISTS G_OPAQUE)
      list(APPEND args --opaque ${o})
    endforeach()
    if(G_STRING_ENUMS)
      list(APPEND args --string-enums)
    endif()
  endif()
  if(G_PREFIX)
    list(APPEND args --prefix ${G_PREFIX})
  endif()
  # In koc's tree a target-level dependency on the generator; from the
  # installed package a file-level one on the installed program.
  get_target_property(gen_imported koc::koc-gen-types IMPORTED)
  if(gen_imported)
    list(APPEND deps $<TARGET_FILE:koc::koc-gen-types>)
  else()
    get_target_property(gen_target koc::koc-gen-types ALIASED_TARGET)
    list(APPEND deps ${gen_target})
  endif()
  set(h ${G_OUTPUT_DIR}/${G_NAME}.h)
  set(c ${G_OUTPUT_DIR}/${G_NAME}.c)
  file(MAKE_DIRECTORY ${G_OUTPUT_DIR})
  add_custom_command(
    OUTPUT ${h} ${c}
    # A sanitized koc-gen-types does not fail the build over the memory it
    # leaves to the exit (it is a short-lived tool; ASan still checks accesses).
    # The directory again at build time: a removed build subtree regenerates.
    COMMAND ${CMAKE_COMMAND} -E make_directory ${G_OUTPUT_DIR}
    COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=0 $<TARGET_FILE:koc::koc-gen-types>
            ${args} --header ${h} --source ${c}
    DEPENDS ${deps}
    COMMENT "Generating C types ${G_NAME}.h"
    VERBATIM)
  target_sources(${G_TARGET} PRIVATE ${h} ${c})
  target_include_directories(${G_TARGET} PUBLIC $<BUILD_INTERFACE:${G_OUTPUT_DIR}>)
  target_link_libraries(${G_TARGET} PRIVATE PkgConfig::CJSON m)
endfunction()
