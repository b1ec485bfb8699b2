# kernels.cmake — CPU-executed kernel tests (label `kernels`) and dev/cuda microbenchmarks built through the
# CUDA-on-CPU layer (their validation run is a test too, labels `kernels;dev`).
# Needs cmake/cuda_cpu.cmake (llm_add_kernel_test, cucpu_add_executable).
if(NOT COMMAND llm_add_kernel_test)
  message(WARNING "kernels: the CUDA-on-CPU layer is not available; kernel tests are disabled")
  return()
endif()

# ---- kern1: elementwise, LayerNorm, encoder, optimizer kernels -------------------------------------------
foreach(op common gelu residual dropout layernorm encoder adamw global_norm)
  if(EXISTS ${CMAKE_SOURCE_DIR}/tests/kernels/test_${op}.cu)
    llm_add_kernel_test(test_kernel_${op} ${CMAKE_SOURCE_DIR}/tests/kernels/test_${op}.cu
                        LIBS llm_model_cpu TIMEOUT 120)
  endif()
endforeach()

# dev/cuda/<op>.cu: on the CPU layer they validate every kernel version against the reference (no timing).
set(LLM_KERN1_DEV_VERSIONS "gelu:1,2" "residual:1,2" "dropout:1,2" "layernorm:1,2,3,4,5" "encoder:1,2,3" "adamw:1"
    "global_norm:1,2")
foreach(entry IN LISTS LLM_KERN1_DEV_VERSIONS)
  string(REPLACE ":" ";" parts ${entry})
  list(GET parts 0 op)
  list(GET parts 1 versions)
  set(src ${CMAKE_SOURCE_DIR}/dev/cuda/${op}.cu)
  if(NOT EXISTS ${src})
    continue()
  endif()
  cucpu_add_executable(dev_${op} ${src})
  target_link_libraries(dev_${op} PRIVATE llm_model_cpu)
  add_dependencies(kernel_tests dev_${op})  # `ctest -L kernels` runs them: build them with the kernel tests
  string(REPLACE "," ";" versions ${versions})
  foreach(v IN LISTS versions)
    add_test(NAME dev_${op}_v${v} COMMAND dev_${op} ${v})
    set_tests_properties(dev_${op}_v${v} PROPERTIES LABELS "kernels;dev" TIMEOUT 120)
  endforeach()
endforeach()
# nvcc compile-only checks (sm_80, sm_90) of these dev files, the tests and every kernel header: cmake/cuda.cmake
# (target nvcc_check).
# ---- end kern1 ---------------------------------------------------------------------------------------------

# ---- kern2 appends its lines below -------------------------------------------------------------------------
# kern2: matmul, attention, classifier — tests (label kernels), dev/cuda labs (validation run on the CPU layer,
# label dev), nvcc compile-only checks of the dev labs (label nvcc).
foreach(op matmul matmul_plan attention classifier)
  if(EXISTS ${CMAKE_SOURCE_DIR}/tests/kernels/test_${op}.cu)
    llm_add_kernel_test(test_kernel_${op} ${CMAKE_SOURCE_DIR}/tests/kernels/test_${op}.cu
                        LIBS llm_model_cpu TIMEOUT 120)
  endif()
endforeach()
set(LLM_KERN2_DEV_VERSIONS "matmul:1,2,3,4" "attention:1,2,3" "classifier:1,2,3" "flash_attention:1,2")
foreach(entry IN LISTS LLM_KERN2_DEV_VERSIONS)
  string(REPLACE ":" ";" parts ${entry})
  list(GET parts 0 op)
  list(GET parts 1 versions)
  set(src ${CMAKE_SOURCE_DIR}/dev/cuda/${op}.cu)
  if(NOT EXISTS ${src})
    continue()
  endif()
  cucpu_add_executable(dev_${op} ${src})
  target_link_libraries(dev_${op} PRIVATE llm_model_cpu)
  string(REPLACE "," ";" versions ${versions})
  foreach(v IN LISTS versions)
    add_test(NAME dev_${op}_v${v} COMMAND dev_${op} ${v})
    set_tests_properties(dev_${op}_v${v} PROPERTIES LABELS "kernels;dev" TIMEOUT 120)
  endforeach()
  if(LLM_WITH_CUDA AND NVCC_EXECUTABLE)
    foreach(arch 80 90)
      add_test(NAME nvcc_dev_${op}_sm${arch}
               COMMAND ${NVCC_EXECUTABLE} -std=c++17 -arch=sm_${arch} -I${CMAKE_SOURCE_DIR} -c -x cu ${src}
                       -o ${CMAKE_BINARY_DIR}/nvcc_dev_${op}_sm${arch}.o)
      set_tests_properties(nvcc_dev_${op}_sm${arch} PROPERTIES LABELS "nvcc" TIMEOUT 300)
    endforeach()
  endif()
endforeach()

# Real-GPU build, for scripts/gpu_check.sh (needs nvcc; running needs a GPU): -DLLM_GPU_BUILD=ON builds every
# registered kernel test source (llm_add_kernel_test) as gpu_<stem> and every dev/cuda/<op>.cu as gpu_dev_<op>,
# compiled by nvcc as real CUDA (cuBLASLt linked; cuDNN + cudnn_frontend for dev attention v3 when found and
# LLM_DEV_CUDNN=ON). The .cu files are reached through one-line wrapper TUs in the build dir because the CPU
# build marks the originals LANGUAGE CXX. Also writes gpu_dev_versions.txt ("<op> <v1,v2,...>" per line).
option(LLM_GPU_BUILD "Build the kernel tests and dev/cuda labs as real CUDA programs (scripts/gpu_check.sh)" OFF)
option(LLM_DEV_CUDNN "GPU build: compile the cuDNN SDPA version of dev/cuda/attention.cu when cuDNN is found" ON)
if(LLM_GPU_BUILD)
  if(NOT CMAKE_CUDA_COMPILER AND NVCC_EXECUTABLE)
    set(CMAKE_CUDA_COMPILER ${NVCC_EXECUTABLE})
  endif()
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES native)
  endif()
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  find_path(LLM_CUDNN_FRONTEND_INCLUDE cudnn_frontend.h HINTS ${CUDAToolkit_INCLUDE_DIRS} $ENV{CUDNN_FRONTEND_HOME}/include)
  find_library(LLM_CUDNN_LIBRARY cudnn HINTS ${CUDAToolkit_LIBRARY_DIR})
  set(gpu_dir ${CMAKE_BINARY_DIR}/gpu_wrappers)
  file(MAKE_DIRECTORY ${gpu_dir})
  function(llm_gpu_executable name src)
    set(tu ${gpu_dir}/${name}.cu)
    set(text "// generated by cmake/kernels.cmake (LLM_GPU_BUILD)\n#include \"${src}\"\n")
    set(old "")
    if(EXISTS ${tu})
      file(READ ${tu} old)
    endif()
    if(NOT old STREQUAL text)
      file(WRITE ${tu} "${text}")
    endif()
    add_executable(${name} ${tu})
    target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR})
    target_compile_definitions(${name} PRIVATE LLM_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
    target_link_libraries(${name} PRIVATE llm_model_cpu CUDA::cudart CUDA::cublasLt)
    set_target_properties(${name} PROPERTIES LINKER_LANGUAGE CXX)
    add_dependencies(gpu_all ${name})
  endfunction()
  add_custom_target(gpu_all)
  get_property(kt_sources GLOBAL PROPERTY LLM_KERNEL_TEST_SOURCES)
  foreach(src IN LISTS kt_sources)
    get_filename_component(stem ${src} NAME_WE)
    llm_gpu_executable(gpu_${stem} ${src})
    target_link_libraries(gpu_${stem} PRIVATE GTest::gtest_main)
  endforeach()
  set(version_lines "")
  foreach(entry IN LISTS LLM_KERN1_DEV_VERSIONS LLM_KERN2_DEV_VERSIONS)
    string(REPLACE ":" ";" parts ${entry})
    list(GET parts 0 op)
    list(GET parts 1 versions)
    if(EXISTS ${CMAKE_SOURCE_DIR}/dev/cuda/${op}.cu)
      llm_gpu_executable(gpu_dev_${op} ${CMAKE_SOURCE_DIR}/dev/cuda/${op}.cu)
      string(APPEND version_lines "${op} ${versions}\n")
    endif()
  endforeach()
  file(WRITE ${CMAKE_BINARY_DIR}/gpu_dev_versions.txt "${version_lines}")
  if(TARGET gpu_dev_attention AND LLM_DEV_CUDNN AND LLM_CUDNN_FRONTEND_INCLUDE AND LLM_CUDNN_LIBRARY)
    message(STATUS "kernels: dev attention v3 uses cuDNN (${LLM_CUDNN_LIBRARY}, ${LLM_CUDNN_FRONTEND_INCLUDE})")
    target_compile_definitions(gpu_dev_attention PRIVATE LLM_DEV_CUDNN=1)
    target_include_directories(gpu_dev_attention PRIVATE ${LLM_CUDNN_FRONTEND_INCLUDE})
    target_link_libraries(gpu_dev_attention PRIVATE ${LLM_CUDNN_LIBRARY})
  else()
    message(STATUS "kernels: dev attention v3 (cuDNN SDPA) not built: cudnn_frontend.h or libcudnn missing, or LLM_DEV_CUDNN=OFF")
  endif()
endif()
# ---- end kern2 ---------------------------------------------------------------------------------------------

# ---- gen: KV-cache decode attention (gpu/generate.cuh) -----------------------------------------------------
if(EXISTS ${CMAKE_SOURCE_DIR}/tests/kernels/test_attention_decode.cu)
  llm_add_kernel_test(test_kernel_attention_decode ${CMAKE_SOURCE_DIR}/tests/kernels/test_attention_decode.cu
                      LIBS llm_model_cpu TIMEOUT 120)
endif()

# ---- finetune: classification head (last-token gather/scatter, C → N head, N-class CE) + LoRA helpers --------
if(EXISTS ${CMAKE_SOURCE_DIR}/tests/kernels/test_cls_head.cu)
  llm_add_kernel_test(test_kernel_cls_head ${CMAKE_SOURCE_DIR}/tests/kernels/test_cls_head.cu
                      LIBS llm_model_cpu LABELS finetune TIMEOUT 120)
endif()

# ---- mma: tensor-core building blocks (kernels/mma.cuh, emulated by the layer) and the flash attention on them ---
foreach(op mma flash_attention)
  if(EXISTS ${CMAKE_SOURCE_DIR}/tests/kernels/test_${op}.cu)
    llm_add_kernel_test(test_kernel_${op} ${CMAKE_SOURCE_DIR}/tests/kernels/test_${op}.cu
                        LIBS llm_model_cpu TIMEOUT 120)
  endif()
endforeach()
