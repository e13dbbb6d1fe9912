# The Vulkan backend: GLSL compute shaders compiled by glslc at build time, their SPIR-V embedded in
# fkv_core as word arrays (src/backend/vulkan/vulkan_shaders.h looks them up by name).
find_package(Vulkan REQUIRED)
find_program(FKV_GLSLC glslc HINTS ${Vulkan_GLSLC_EXECUTABLE})
if(NOT FKV_GLSLC)
  message(FATAL_ERROR "FKV_VULKAN=ON needs glslc (Debian package glslc) to compile shaders/*.comp")
endif()
find_program(FKV_SPIRV_VAL spirv-val)

file(GLOB FKV_SHADERS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/shaders/*.comp)
set(FKV_SPV_DIR ${PROJECT_BINARY_DIR}/shaders)
file(MAKE_DIRECTORY ${FKV_SPV_DIR})
set(FKV_SPV_FILES)
foreach(shader ${FKV_SHADERS})
  get_filename_component(name ${shader} NAME_WE)
  set(spv ${FKV_SPV_DIR}/${name}.spv)
  # vulkan1.1 (SPIR-V 1.3) is what every target driver, lavapipe included, accepts.
  add_custom_command(
    OUTPUT ${spv}
    COMMAND ${FKV_GLSLC} --target-env=vulkan1.1 -O -I ${PROJECT_SOURCE_DIR}/shaders -MD -MF ${spv}.d -o ${spv}
            ${shader}
    DEPENDS ${shader}
    DEPFILE ${spv}.d
    COMMENT "glslc ${name}.comp"
    VERBATIM)
  list(APPEND FKV_SPV_FILES ${spv})
endforeach()

set(FKV_SHADERS_CPP ${PROJECT_BINARY_DIR}/vulkan_shaders_embedded.cpp)
string(REPLACE ";" "," FKV_SPV_LIST "${FKV_SPV_FILES}")
add_custom_command(
  OUTPUT ${FKV_SHADERS_CPP}
  COMMAND ${CMAKE_COMMAND} -DOUT=${FKV_SHADERS_CPP} -DSPV_FILES=${FKV_SPV_LIST} -P
          ${PROJECT_SOURCE_DIR}/cmake/EmbedSpirv.cmake
  DEPENDS ${FKV_SPV_FILES} ${PROJECT_SOURCE_DIR}/cmake/EmbedSpirv.cmake
  COMMENT "Embedding SPIR-V"
  VERBATIM)

file(GLOB FKV_VULKAN_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/backend/vulkan/*.cpp)
target_sources(fkv_core PRIVATE ${FKV_VULKAN_SOURCES} ${FKV_SHADERS_CPP})
target_link_libraries(fkv_core PUBLIC Vulkan::Vulkan)
target_compile_definitions(fkv_core PUBLIC FKV_HAVE_VULKAN=1)
if(FKV_SPIRV_VAL)
  target_compile_definitions(fkv_core PUBLIC FKV_SPIRV_VAL="${FKV_SPIRV_VAL}")
endif()
