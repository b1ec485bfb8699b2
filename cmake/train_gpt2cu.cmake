# train_gpt2cu.cmake — the GPU trainer, built twice from train_gpt2.cu, and its parity tests (label trainer).
#
#   train_gpt2cu_cpu    train_gpt2.cu through the CUDA-on-CPU layer (g++; own matmul + attention kernels): CI runs it
#   test_trainer        GoogleTest, through the layer: emulated GPU trainer vs the fp32 CPU reference
#                       (fp32 / bf16 / dropout parity over 10 steps, recompute, exact resume via train_gpt2cu_cpu)
#   test_trainer_matmul GoogleTest, through the layer (label trainer): --matmul/--tf32, plan cache, declined calls
#   test_attention_path GoogleTest (label trainer): --attention's selection rule + the flag on train_gpt2cu_cpu
#   test_trainer_dp     GoogleTest (label dp): `mpirun -np 2 train_gpt2cu_cpu train ...` (MPI backend) vs one
#                       process with 2 accumulation steps, ZeRO-1 vs ZeRO-0, ZeRO-1 resume, bad launches
#   train_gpt2cu        nvcc (sm_80 + sm_90 by default, LLM_CUDA_ARCHS), cuBLASLt, NCCL (multi-GPU; found next to
#                       the toolkit or via NCCL_HOME); only with nvcc and LLM_WITH_CUDA
#   test_trainer_gpu    the same test source compiled by nvcc (not in `all`; scripts/gpu_check.sh builds and runs it)
get_filename_component(LLM_TRAINER_ROOT "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
llm_require_files(${LLM_TRAINER_ROOT}/tests/test_attention_path.cpp
                  ${LLM_TRAINER_ROOT}/tests/test_gpu_generate.cpp
                  ${LLM_TRAINER_ROOT}/tests/test_trainer_dp.cpp
                  ${LLM_TRAINER_ROOT}/tests/test_trainer_matmul.cu
                  ${LLM_TRAINER_ROOT}/tests/test_trainer_parity.cu
                  ${LLM_TRAINER_ROOT}/tests/test_trainer_reliability.cpp)

if(COMMAND cucpu_add_executable AND TARGET llm_model_cpu)
  cucpu_add_executable(train_gpt2cu_cpu ${LLM_TRAINER_ROOT}/train_gpt2.cu)
  target_link_libraries(train_gpt2cu_cpu PRIVATE llm_model_cpu llm_comm llm_host)

  # data parallel through mpirun (skips itself when mpirun was not found)
  add_executable(test_trainer_dp ${LLM_TRAINER_ROOT}/tests/test_trainer_dp.cpp)
  target_link_libraries(test_trainer_dp PRIVATE llm_host GTest::gtest GTest::gtest_main)
  set(llm_mpirun "")
  if(MPI_CXX_FOUND AND MPIEXEC_EXECUTABLE)
    set(llm_mpirun "${MPIEXEC_EXECUTABLE}")
  endif()
  target_compile_definitions(test_trainer_dp PRIVATE TRAIN_GPT2CU_BIN="$<TARGET_FILE:train_gpt2cu_cpu>"
                             MPIRUN_BIN="${llm_mpirun}")
  add_dependencies(test_trainer_dp train_gpt2cu_cpu)
  gtest_discover_tests(test_trainer_dp DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 60
                       PROPERTIES LABELS dp TIMEOUT 300)

  # issue 13: SIGTERM, output lock and memory checks of the GPU trainer (subprocess, label trainer)
  add_executable(test_trainer_reliability ${LLM_TRAINER_ROOT}/tests/test_trainer_reliability.cpp)
  target_link_libraries(test_trainer_reliability PRIVATE llm_host GTest::gtest GTest::gtest_main)
  target_compile_definitions(test_trainer_reliability PRIVATE TRAIN_GPT2CU_BIN="$<TARGET_FILE:train_gpt2cu_cpu>")
  add_dependencies(test_trainer_reliability train_gpt2cu_cpu)
  gtest_discover_tests(test_trainer_reliability PROPERTIES LABELS trainer TIMEOUT 300 DISCOVERY_TIMEOUT 60)

  # the program shell of both programs (host/program.h): --help, usage lines, error lines (label host)
  if(TARGET gpt2_cpu)
    add_executable(test_program_shell ${LLM_TRAINER_ROOT}/tests/test_program_shell.cpp)
    target_link_libraries(test_program_shell PRIVATE llm_host GTest::gtest GTest::gtest_main)
    target_compile_definitions(test_program_shell PRIVATE GPT2_CPU_BIN="$<TARGET_FILE:gpt2_cpu>"
                               TRAIN_GPT2CU_BIN="$<TARGET_FILE:train_gpt2cu_cpu>")
    add_dependencies(test_program_shell gpt2_cpu train_gpt2cu_cpu)
    gtest_discover_tests(test_program_shell PROPERTIES LABELS host TIMEOUT 120 DISCOVERY_TIMEOUT 60)
  endif()

  cucpu_add_executable(test_trainer ${LLM_TRAINER_ROOT}/tests/test_trainer_parity.cu
                       ${LLM_TRAINER_ROOT}/tests/test_trainer_graph.cu
                       ${LLM_TRAINER_ROOT}/tests/test_trainer_eval.cu)
  target_link_libraries(test_trainer PRIVATE llm_model_cpu llm_host GTest::gtest GTest::gtest_main)
  target_compile_definitions(test_trainer PRIVATE LLM_SOURCE_DIR="${LLM_TRAINER_ROOT}"
                             TRAIN_GPT2CU_BIN="$<TARGET_FILE:train_gpt2cu_cpu>")
  add_dependencies(test_trainer train_gpt2cu_cpu)
  if(TARGET gpt2_cpu)  # end-to-end: same log as the CPU program
    target_compile_definitions(test_trainer PRIVATE GPT2_CPU_BIN="$<TARGET_FILE:gpt2_cpu>")
    add_dependencies(test_trainer gpt2_cpu)
  endif()
  gtest_discover_tests(test_trainer DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 60
                       PROPERTIES LABELS trainer TIMEOUT 600)

  # --matmul / --tf32: plan cache and declined calls through a fake cuBLASLt, and the flags on train_gpt2cu_cpu
  cucpu_add_executable(test_trainer_matmul ${LLM_TRAINER_ROOT}/tests/test_trainer_matmul.cu)
  target_link_libraries(test_trainer_matmul PRIVATE llm_model_cpu llm_host GTest::gtest GTest::gtest_main)
  target_compile_definitions(test_trainer_matmul PRIVATE TRAIN_GPT2CU_BIN="$<TARGET_FILE:train_gpt2cu_cpu>")
  add_dependencies(test_trainer_matmul train_gpt2cu_cpu)
  gtest_discover_tests(test_trainer_matmul DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 60
                       PROPERTIES LABELS trainer TIMEOUT 300)

  # --attention: the selection rule (gpu/attention_path.h) and the flag on every subcommand, as subprocesses
  add_executable(test_attention_path ${LLM_TRAINER_ROOT}/tests/test_attention_path.cpp)
  target_link_libraries(test_attention_path PRIVATE llm_host GTest::gtest GTest::gtest_main)
  target_compile_definitions(test_attention_path PRIVATE LLM_SOURCE_DIR="${LLM_TRAINER_ROOT}"
                             TRAIN_GPT2CU_BIN="$<TARGET_FILE:train_gpt2cu_cpu>")
  add_dependencies(test_attention_path train_gpt2cu_cpu)
  gtest_discover_tests(test_attention_path DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 60
                       PROPERTIES LABELS trainer TIMEOUT 300 ENVIRONMENT "OMP_NUM_THREADS=1")

  # train -e / eval --model with HF weights and `generate` (gpu/generate.cuh) vs gpt2_cpu, as subprocesses
  if(TARGET gpt2_cpu)
    add_executable(test_gpu_generate ${LLM_TRAINER_ROOT}/tests/test_gpu_generate.cpp)
    target_link_libraries(test_gpu_generate PRIVATE llm_host GTest::gtest GTest::gtest_main)
    target_compile_definitions(test_gpu_generate PRIVATE LLM_SOURCE_DIR="${LLM_TRAINER_ROOT}"
                               TRAIN_GPT2CU_BIN="$<TARGET_FILE:train_gpt2cu_cpu>" GPT2_CPU_BIN="$<TARGET_FILE:gpt2_cpu>")
    add_dependencies(test_gpu_generate train_gpt2cu_cpu gpt2_cpu)
    gtest_discover_tests(test_gpu_generate PROPERTIES LABELS "weights;trainer" TIMEOUT 300 DISCOVERY_TIMEOUT 60
                         ENVIRONMENT "OMP_NUM_THREADS=1")
  endif()
endif()

if(NOT LLM_WITH_CUDA OR NOT NVCC_EXECUTABLE)
  return()
endif()

set(LLM_CUDA_ARCHS "80;90" CACHE STRING "GPU architectures (sm_XX) of build/train_gpt2cu")
get_filename_component(LLM_CUDA_BIN ${NVCC_EXECUTABLE} DIRECTORY)
find_library(LLM_CUDART_LIB cudart HINTS ${LLM_CUDA_BIN}/../lib64 ${LLM_CUDA_BIN}/../lib $ENV{CUDA_HOME}/lib64)
find_library(LLM_CUBLASLT_LIB cublasLt HINTS ${LLM_CUDA_BIN}/../lib64 ${LLM_CUDA_BIN}/../lib $ENV{CUDA_HOME}/lib64)
if(NOT LLM_CUDART_LIB OR NOT LLM_CUBLASLT_LIB)
  message(WARNING "train_gpt2cu: cudart/cublasLt libraries not found; the nvcc trainer is not built")
  return()
endif()
# NCCL (multi-GPU): CUDA 13 toolkits ship it in <cuda>/include + <cuda>/lib; else NCCL_HOME or the system.
find_path(LLM_NCCL_INCLUDE nccl.h HINTS $ENV{NCCL_HOME}/include ${LLM_CUDA_BIN}/../include)
find_library(LLM_NCCL_LIB nccl HINTS $ENV{NCCL_HOME}/lib $ENV{NCCL_HOME}/lib64 ${LLM_CUDA_BIN}/../lib
             ${LLM_CUDA_BIN}/../lib64)
if(NOT LLM_NCCL_INCLUDE OR NOT LLM_NCCL_LIB)
  message(WARNING "train_gpt2cu: NCCL (nccl.h / libnccl) not found (set NCCL_HOME); the nvcc trainer is not built")
  return()
endif()
message(STATUS "train_gpt2cu: NCCL ${LLM_NCCL_LIB}")

set(llm_gencode "")
foreach(arch IN LISTS LLM_CUDA_ARCHS)
  list(APPEND llm_gencode -gencode arch=compute_${arch},code=sm_${arch})
endforeach()

# nvcc compiles one .cu into an object; g++ links it with the host libraries (built with the same g++).
function(llm_nvcc_object out src)
  file(RELATIVE_PATH rel ${LLM_TRAINER_ROOT} ${src})
  string(REGEX REPLACE "[/.]" "_" key ${rel})
  set(obj ${CMAKE_BINARY_DIR}/nvcc_trainer/${key}.o)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/nvcc_trainer
    COMMAND ${NVCC_EXECUTABLE} -std=c++17 -O3 ${llm_gencode} -Xcompiler=-fopenmp -I${LLM_TRAINER_ROOT}
            -I${LLM_NCCL_INCLUDE} ${ARGN} -MD -MF ${obj}.d -c ${src} -o ${obj}
    DEPENDS ${src}
    DEPFILE ${obj}.d
    COMMENT "nvcc ${LLM_CUDA_ARCHS}: ${rel}"
    VERBATIM)
  set(${out} ${obj} PARENT_SCOPE)
endfunction()

# cuDNN SDPA attention (cmake/cudnn.cmake): -DLLM_CUDNN on the users, the one nvcc-compiled attention_cudnn.o, libcudnn
set(llm_cudnn_objs "")
set(llm_cudnn_libs "")
if(LLM_CUDNN_FOUND)
  set(llm_cudnn_objs ${LLM_CUDNN_OBJ})
  set(llm_cudnn_libs ${LLM_CUDNN_LIBS})
  set_source_files_properties(${LLM_CUDNN_OBJ} PROPERTIES EXTERNAL_OBJECT TRUE GENERATED TRUE)
endif()

llm_nvcc_object(train_obj ${LLM_TRAINER_ROOT}/train_gpt2.cu ${LLM_CUDNN_DEFS})
add_executable(train_gpt2cu ${train_obj} ${llm_cudnn_objs})
set_source_files_properties(${train_obj} PROPERTIES EXTERNAL_OBJECT TRUE GENERATED TRUE)
set_target_properties(train_gpt2cu PROPERTIES LINKER_LANGUAGE CXX)
target_link_libraries(train_gpt2cu PRIVATE llm_model_cpu llm_comm llm_host ${LLM_NCCL_LIB} ${LLM_CUBLASLT_LIB}
                      ${llm_cudnn_libs} ${LLM_CUDART_LIB} dl rt)
get_filename_component(llm_nccl_dir ${LLM_NCCL_LIB} DIRECTORY)
set_target_properties(train_gpt2cu PROPERTIES BUILD_RPATH "${llm_nccl_dir}")

llm_nvcc_object(test_obj ${LLM_TRAINER_ROOT}/tests/test_trainer_parity.cu -DLLM_SOURCE_DIR="${LLM_TRAINER_ROOT}"
                -DTRAIN_GPT2CU_BIN="${CMAKE_BINARY_DIR}/train_gpt2cu" ${LLM_CUDNN_DEFS})
add_executable(test_trainer_gpu EXCLUDE_FROM_ALL ${test_obj} ${llm_cudnn_objs})
set_source_files_properties(${test_obj} PROPERTIES EXTERNAL_OBJECT TRUE GENERATED TRUE)
set_target_properties(test_trainer_gpu PROPERTIES LINKER_LANGUAGE CXX)
target_link_libraries(test_trainer_gpu PRIVATE llm_model_cpu llm_comm llm_host GTest::gtest GTest::gtest_main
                      ${LLM_NCCL_LIB} ${LLM_CUBLASLT_LIB} ${llm_cudnn_libs} ${LLM_CUDART_LIB} dl rt)
set_target_properties(test_trainer_gpu PROPERTIES BUILD_RPATH "${llm_nccl_dir}")
add_dependencies(test_trainer_gpu train_gpt2cu)
