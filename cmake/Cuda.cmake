# The CUDA backend (cuda/): built when nvcc is found (FKV_CUDA=AUTO) or required (FKV_CUDA=ON).
# It is a static library linked into fkv_core's users; registry.cpp sees FKV_HAVE_CUDA and "cuda_backend.h".
include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  if(FKV_CUDA STREQUAL "ON")
    message(FATAL_ERROR "FKV_CUDA=ON but no CUDA compiler (nvcc) was found; set CUDACXX or FKV_CUDA=AUTO")
  endif()
  message(STATUS "fkv: no CUDA compiler found, building without the CUDA backend")
  return()
endif()

# Two architectures keep CI's compile time modest: Ampere (80, also runs on Ada) and Hopper (90).
# Override with -DCMAKE_CUDA_ARCHITECTURES=90 on a Hopper-only machine to halve the build.
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES 80 90)
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
set(CMAKE_CUDA_STANDARD 17)  # CMake 3.25 does not know nvcc's C++20 flag; the kernels need 17
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
message(STATUS "fkv: CUDA backend on (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES})")

file(GLOB FKV_CUDA_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/cuda/*.cu ${PROJECT_SOURCE_DIR}/cuda/*.cpp)
add_library(fkv_cuda STATIC ${FKV_CUDA_SOURCES})
# The backend uses fkv_core (errors, type traits, rope_frequency) and fkv_core's registry uses the backend:
# a cycle CMake allows between static libraries (it repeats them on the link line).
target_include_directories(fkv_cuda PUBLIC ${PROJECT_SOURCE_DIR}/cuda)
target_link_libraries(fkv_cuda PUBLIC CUDA::cudart_static CUDA::cublas PRIVATE fkv_core)
target_compile_options(fkv_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr
                                        -Xcompiler=-Wall,-Wextra>)
set_target_properties(fkv_cuda PROPERTIES CUDA_SEPARABLE_COMPILATION OFF)

# fkv_core's registry creates the backend; fkv_core's users link fkv_cuda through it.
target_link_libraries(fkv_core PUBLIC fkv_cuda)
target_compile_definitions(fkv_core PUBLIC FKV_HAVE_CUDA)
