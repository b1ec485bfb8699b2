# cuda_cpu/: the CUDA-on-CPU layer (fibers + fake runtime) and the helpers kernel code is built with.
#
#   cucpu                                   static library: scheduler + fake cudart; include dirs = repo root
#                                           and the CUDA toolkit headers; links Boost.Context
#   cucpu_add_executable(<name> <src...>)   .cu sources compiled as C++ by g++ (-x c++), linked with cucpu
#   llm_add_kernel_test(<name> <src...> [LIBS <lib...>] [LABELS <label...>] [TIMEOUT <s>])
#                                           a GoogleTest binary built with cucpu_add_executable, linked with
#                                           GTest::gtest_main, registered with ctest under label `kernels`
#                                           (plus LABELS), TIMEOUT default 120 s; recorded for the nvcc
#                                           compile-only check (cmake/cuda.cmake).
#   kernel_tests                            target that builds every cucpu_add_executable target (what
#                                           `ctest -L kernels` runs)
get_filename_component(CUCPU_ROOT "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
if(NOT CUDA_TOOLKIT_INCLUDE)
  message(WARNING "cuda_cpu: CUDA toolkit headers (cuda_runtime_api.h) not found; the CPU layer is disabled")
  return()
endif()
find_package(Boost 1.74 REQUIRED COMPONENTS context)

add_library(cucpu STATIC ${CUCPU_ROOT}/cuda_cpu/cucpu_sched.cpp ${CUCPU_ROOT}/cuda_cpu/cucpu_rt.cpp
            ${CUCPU_ROOT}/cuda_cpu/cucpu_graph.cpp)
target_include_directories(cucpu PUBLIC ${CUCPU_ROOT} ${CUDA_TOOLKIT_INCLUDE})
target_link_libraries(cucpu PUBLIC Boost::context Threads::Threads)
if(LLM_SANITIZE)
  target_compile_options(cucpu PRIVATE -g)
endif()
if(LLM_SANITIZE STREQUAL "thread")
  # the scheduler's own bookkeeping is not kernel memory: keep it out of TSan, but announce fibers/barriers
  target_compile_options(cucpu PRIVATE -fno-sanitize=thread)
  target_compile_definitions(cucpu PRIVATE CUCPU_TSAN=1)
endif()

add_custom_target(kernel_tests)
set_property(GLOBAL PROPERTY LLM_KERNEL_TEST_SOURCES "")

function(cucpu_add_executable name)
  set(srcs ${ARGN})
  foreach(src IN LISTS srcs)
    if(src MATCHES "\\.cu$")
      # g++ does not know the .cu extension: force C++ (the layer replaces the CUDA front-end)
      set_source_files_properties(${src} PROPERTIES LANGUAGE CXX COMPILE_OPTIONS "-xc++")
    endif()
  endforeach()
  add_executable(${name} ${srcs})
  target_link_libraries(${name} PRIVATE cucpu)
  if(LLM_SANITIZE)
    target_compile_options(${name} PRIVATE -g)  # sanitizer reports name kernel source lines
  endif()
  set_target_properties(${name} PROPERTIES LINKER_LANGUAGE CXX)
  add_dependencies(kernel_tests ${name})  # everything on the layer: kernel tests and dev/cuda validation runs
endfunction()

function(llm_add_kernel_test name)
  cmake_parse_arguments(KT "" "TIMEOUT" "LIBS;LABELS" ${ARGN})
  set(srcs ${KT_UNPARSED_ARGUMENTS})
  if(NOT KT_TIMEOUT)
    set(KT_TIMEOUT 120)
  endif()
  cucpu_add_executable(${name} ${srcs})
  target_link_libraries(${name} PRIVATE GTest::gtest_main ${KT_LIBS})
  target_compile_definitions(${name} PRIVATE LLM_SOURCE_DIR="${CUCPU_ROOT}")
  gtest_discover_tests(${name} DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 60
                       PROPERTIES LABELS "kernels;${KT_LABELS}" TIMEOUT ${KT_TIMEOUT})
  foreach(src IN LISTS srcs)
    get_filename_component(abs ${src} ABSOLUTE BASE_DIR ${CUCPU_ROOT})
    if(abs MATCHES "\\.cu$")
      set_property(GLOBAL APPEND PROPERTY LLM_KERNEL_TEST_SOURCES ${abs})
    endif()
  endforeach()
endfunction()

# The layer's own tests (label kernels) and the overhead benchmark.
llm_add_kernel_test(test_cucpu ${CUCPU_ROOT}/tests/test_cucpu_semantics.cpp ${CUCPU_ROOT}/tests/test_cucpu_graph.cpp
                    ${CUCPU_ROOT}/tests/test_cucpu_bugs.cpp TIMEOUT 120)
cucpu_add_executable(cucpu_overhead ${CUCPU_ROOT}/dev/cucpu_overhead.cpp)
