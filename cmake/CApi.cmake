# The C API: the shared library `fkv` (src/api/*.cpp over fkv_core), exporting only fkv_* symbols, its
# install rules (header, library, fkv-config.cmake, fkv.pc), the example C program and the API tests'
# wiring. Included from the top-level CMakeLists.txt.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

file(GLOB FKV_API_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/api/*.cpp)
add_library(fkv SHARED ${FKV_API_SOURCES})
target_include_directories(fkv PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
                                      $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_link_libraries(fkv PRIVATE fkv_core)
target_compile_definitions(fkv PRIVATE FKV_BUILDING_LIBRARY)
# Hidden by default for the API's own objects; the version script also hides everything fkv_core and the
# static C++ dependencies bring in, so the library's ABI is exactly the fkv_* functions of fkv.h.
set(FKV_API_VERSION_SCRIPT ${PROJECT_SOURCE_DIR}/cmake/fkv.map)
set_target_properties(fkv PROPERTIES
  C_VISIBILITY_PRESET hidden CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON
  VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR}
  PUBLIC_HEADER ${PROJECT_SOURCE_DIR}/include/fkv.h
  LINK_DEPENDS ${FKV_API_VERSION_SCRIPT})
target_link_options(fkv PRIVATE "LINKER:--version-script=${FKV_API_VERSION_SCRIPT}")
if(NOT FKV_SANITIZE)  # sanitizer runtimes resolve their symbols at load time
  target_link_options(fkv PRIVATE "LINKER:--no-undefined")
endif()

install(TARGETS fkv EXPORT fkvTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  PUBLIC_HEADER DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT fkvTargets NAMESPACE fkv:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/fkv)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/fkv-config.cmake.in
  ${PROJECT_BINARY_DIR}/fkv-config.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/fkv)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/fkv-config-version.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/fkv-config.cmake ${PROJECT_BINARY_DIR}/fkv-config-version.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/fkv)
configure_file(${PROJECT_SOURCE_DIR}/cmake/fkv.pc.in ${PROJECT_BINARY_DIR}/fkv.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/fkv.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# The example application, in C, against the shared library only.
add_executable(fkv-simple-chat ${PROJECT_SOURCE_DIR}/tools/examples/simple_chat.c)
target_link_libraries(fkv-simple-chat PRIVATE fkv)
set_target_properties(fkv-simple-chat PROPERTIES C_STANDARD 99 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF)
target_compile_options(fkv-simple-chat PRIVATE -Wall -Wextra -pedantic)

# Runs after the whole tree is configured, when tests/ has made fkv_api_tests (tests/api/*.cpp).
function(fkv_api_wire_tests)
  if(NOT FKV_TESTS)
    return()
  endif()
  if(TARGET fkv_api_tests)
    target_link_libraries(fkv_api_tests PRIVATE fkv)
    set(tools fkv-parity fkv-bench fkv-eval fkv-simple-chat)
    foreach(tool ${tools})
      if(TARGET ${tool})
        add_dependencies(fkv_api_tests ${tool})
      endif()
    endforeach()
    target_compile_definitions(fkv_api_tests PRIVATE FKV_BINARY_DIR="${PROJECT_BINARY_DIR}")
  endif()
  # The header must stay C99: compile it with the C compiler at its strictest.
  add_test(NAME api.header_is_c99
           COMMAND ${CMAKE_C_COMPILER} -std=c99 -pedantic -Werror -Wall -Wextra -fsyntax-only
                   -I${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/tests/api/header_c99.c)
  # The example runs a short greedy reply on the default model.
  add_test(NAME api.simple_chat_example
           COMMAND fkv-simple-chat --n-predict 8 --prompt "What is 2+2?")
  # Install into a temporary prefix; build the example through fkv.pc and through fkv-config.cmake.
  add_test(NAME api.install_and_consume
           COMMAND bash ${PROJECT_SOURCE_DIR}/tests/api/install_test.sh ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR}
                   ${CMAKE_C_COMPILER})
  set_tests_properties(api.header_is_c99 api.simple_chat_example api.install_and_consume PROPERTIES LABELS api)
endfunction()
cmake_language(DEFER DIRECTORY ${PROJECT_SOURCE_DIR} CALL fkv_api_wire_tests)
