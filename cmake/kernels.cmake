# kernels.cmake — CPU-executed kernel tests (label `kernels`), dev/cuda microbenchmarks built through the
# CUDA-on-CPU layer (their validation run is a test too), and nvcc compile-only checks of the dev files.
# Needs cmake/cuda_cpu.cmake (llm_add_kernel_test, cucpu_add_executable).
if(NOT COMMAND llm_add_kernel_test)
  message(WARNING "kernels: the CUDA-on-CPU layer is not available; kernel tests are disabled")
  return()
endif()

# ---- kern1: elementwise, LayerNorm, encoder, optimizer kernels -------------------------------------------
foreach(op gelu residual dropout layernorm encoder adamw global_norm)
  if(EXISTS ${CMAKE_SOURCE_DIR}/tests/kernels/test_${op}.cu)
    llm_add_kernel_test(test_kernel_${op} ${CMAKE_SOURCE_DIR}/tests/kernels/test_${op}.cu
                        LIBS llm_model_cpu TIMEOUT 120)
  endif()
endforeach()

# dev/cuda/<op>.cu: on the CPU layer they validate every kernel version against the reference (no timing).
set(LLM_KERN1_DEV_VERSIONS "gelu:1,2" "residual:1,2" "dropout:1,2" "layernorm:1,2,3,4" "encoder:1,2,3" "adamw:1"
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
# ---- end kern1 ---------------------------------------------------------------------------------------------

# ---- kern2 appends its lines below -------------------------------------------------------------------------
# kern2: matmul, attention, classifier — tests (label kernels), dev/cuda labs (validation run on the CPU layer,
# label dev), nvcc compile-only checks of the dev labs (label nvcc).
foreach(op matmul attention classifier)
  if(EXISTS ${CMAKE_SOURCE_DIR}/tests/kernels/test_${op}.cu)
    llm_add_kernel_test(test_kernel_${op} ${CMAKE_SOURCE_DIR}/tests/kernels/test_${op}.cu
                        LIBS llm_model_cpu TIMEOUT 120)
  endif()
endforeach()
set(LLM_KERN2_DEV_VERSIONS "matmul:1,2,3,4" "attention:1,2,3" "classifier:1,2")
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
# ---- end kern2 ---------------------------------------------------------------------------------------------
