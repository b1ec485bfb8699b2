# cudnn.cmake — cuDNN SDPA attention (kernels/attention_cudnn.cu) for the nvcc builds: finds cuDNN (cudnn.h +
# libcudnn, normally inside the CUDA toolkit) and the header-only cudnn_frontend (the nvidia-cudnn-frontend wheel's
# include/ dir, installed by scripts/setup.sh; nothing is downloaded here). When all are found:
#   LLM_CUDNN_FOUND       ON
#   LLM_CUDNN_DEFS        -DLLM_CUDNN: for every nvcc compile of code that may call the cuDNN path
#   LLM_CUDNN_LIBS        libcudnn + libnvrtc (cudnn_frontend 1.x compiles some engines at run time), for
#                         train_gpt2cu / test_trainer_gpu
#   llm_cudnn_attention_obj  a target producing LLM_CUDNN_OBJ: kernels/attention_cudnn.cu compiled once by nvcc for
#                         sm_80 + sm_90 (part of nvcc_check and linked into train_gpt2cu)
# Otherwise the cuDNN path is disabled with a message and --attention cudnn is an error at run time.
#   -DLLM_WITH_CUDNN=OFF                    disable it
#   -DLLM_CUDNN_FRONTEND_INCLUDE=<dir>      the directory holding cudnn_frontend.h (default: asked from python3,
#                                           else $CUDNN_FRONTEND_PATH/include)
option(LLM_WITH_CUDNN "cuDNN SDPA attention in the nvcc builds when cuDNN and cudnn_frontend are found" ON)
set(LLM_CUDNN_FOUND OFF)
set(LLM_CUDNN_DEFS "")

if(NOT LLM_WITH_CUDA OR NOT NVCC_EXECUTABLE)
  return()  # no nvcc: nothing could use it (cuda.cmake already says so)
endif()
if(NOT LLM_WITH_CUDNN)
  message(STATUS "cudnn: disabled (LLM_WITH_CUDNN=OFF): train_gpt2cu has no --attention cudnn")
  return()
endif()

get_filename_component(llm_cudnn_cuda_bin ${NVCC_EXECUTABLE} DIRECTORY)
find_path(LLM_CUDNN_INCLUDE cudnn.h HINTS $ENV{CUDNN_HOME}/include ${llm_cudnn_cuda_bin}/../include)
find_library(LLM_CUDNN_LIB cudnn HINTS $ENV{CUDNN_HOME}/lib $ENV{CUDNN_HOME}/lib64 ${llm_cudnn_cuda_bin}/../lib64
             ${llm_cudnn_cuda_bin}/../lib)
find_library(LLM_NVRTC_LIB nvrtc HINTS ${llm_cudnn_cuda_bin}/../lib64 ${llm_cudnn_cuda_bin}/../lib)

# where pip put the wheel's headers (site-packages/include); asked without importing the package
set(llm_fe_hint "")
find_program(LLM_PYTHON3 python3)
if(LLM_PYTHON3)
  execute_process(
    COMMAND ${LLM_PYTHON3} -c
            "import importlib.metadata as m; print(m.distribution('nvidia-cudnn-frontend').locate_file('include'))"
    OUTPUT_VARIABLE llm_fe_hint OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE llm_fe_rc)
  if(NOT llm_fe_rc EQUAL 0)
    set(llm_fe_hint "")
  endif()
endif()
find_path(LLM_CUDNN_FRONTEND_INCLUDE cudnn_frontend.h HINTS ${llm_fe_hint} $ENV{CUDNN_FRONTEND_PATH}/include
          DOC "directory with cudnn_frontend.h (the nvidia-cudnn-frontend wheel's include/)")

if(NOT LLM_CUDNN_INCLUDE OR NOT LLM_CUDNN_LIB)
  message(STATUS "cudnn: cuDNN (cudnn.h / libcudnn) not found (set CUDNN_HOME): cuDNN attention disabled")
  return()
endif()
if(NOT LLM_NVRTC_LIB)
  message(STATUS "cudnn: libnvrtc (needed by cudnn_frontend) not found next to nvcc: cuDNN attention disabled")
  return()
endif()
if(NOT LLM_CUDNN_FRONTEND_INCLUDE)
  message(STATUS "cudnn: cudnn_frontend.h not found (run scripts/setup.sh, or set LLM_CUDNN_FRONTEND_INCLUDE): "
                 "cuDNN attention disabled")
  return()
endif()
file(STRINGS ${LLM_CUDNN_INCLUDE}/cudnn_version.h llm_cudnn_major REGEX "define CUDNN_MAJOR ")
string(REGEX MATCH "[0-9]+" llm_cudnn_major "${llm_cudnn_major}")
if(llm_cudnn_major AND llm_cudnn_major LESS 9)
  message(STATUS "cudnn: cuDNN ${llm_cudnn_major} found, the SDPA path needs cuDNN 9: cuDNN attention disabled")
  return()
endif()

set(LLM_CUDNN_FOUND ON)
set(LLM_CUDNN_DEFS -DLLM_CUDNN)
set(LLM_CUDNN_LIBS ${LLM_CUDNN_LIB} ${LLM_NVRTC_LIB})
message(STATUS "cudnn: ${LLM_CUDNN_LIB}, cudnn_frontend ${LLM_CUDNN_FRONTEND_INCLUDE}: cuDNN attention enabled")

# the one nvcc compile of the cuDNN path (host code only; both architectures, like nvcc_check)
get_filename_component(llm_cudnn_root "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
set(LLM_CUDNN_OBJ ${CMAKE_BINARY_DIR}/nvcc_cudnn/attention_cudnn.o)
add_custom_command(
  OUTPUT ${LLM_CUDNN_OBJ}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/nvcc_cudnn
  COMMAND ${NVCC_EXECUTABLE} -std=c++17 -O2 -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90
          -Xcompiler=-Wall -I${llm_cudnn_root} -I${LLM_CUDNN_INCLUDE} -isystem ${LLM_CUDNN_FRONTEND_INCLUDE}
          -DLLM_CUDNN -MD -MF ${LLM_CUDNN_OBJ}.d -c ${llm_cudnn_root}/kernels/attention_cudnn.cu -o ${LLM_CUDNN_OBJ}
  DEPENDS ${llm_cudnn_root}/kernels/attention_cudnn.cu
  DEPFILE ${LLM_CUDNN_OBJ}.d
  COMMENT "nvcc sm_80+sm_90: kernels/attention_cudnn.cu (cuDNN SDPA)"
  VERBATIM)
add_custom_target(llm_cudnn_attention_obj DEPENDS ${LLM_CUDNN_OBJ})
