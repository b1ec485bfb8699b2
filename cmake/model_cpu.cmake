# model_cpu.cmake — the fp32 CPU reference: ops, GPT-2 model, optimizer (library llm_model_cpu),
# its tests (label "model") and the CPU step benchmark.
get_filename_component(LLM_MODEL_ROOT ${CMAKE_CURRENT_LIST_DIR}/.. ABSOLUTE)
file(GLOB LLM_MODEL_CPU_SOURCES CONFIGURE_DEPENDS ${LLM_MODEL_ROOT}/cpu/*.cpp)
add_library(llm_model_cpu STATIC ${LLM_MODEL_CPU_SOURCES})
target_include_directories(llm_model_cpu PUBLIC ${LLM_MODEL_ROOT})
target_link_libraries(llm_model_cpu PUBLIC llm_host OpenMP::OpenMP_CXX)
# -fno-math-errno lets GCC call the vectorised libm (libmvec) for exp/tanh inside `omp simd` loops;
# it changes no results (errno is never read).
target_compile_options(llm_model_cpu PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-fno-math-errno>)

file(GLOB LLM_MODEL_TEST_SOURCES CONFIGURE_DEPENDS ${LLM_MODEL_ROOT}/tests/test_model_*.cpp)
if(LLM_MODEL_TEST_SOURCES)
  add_executable(test_model ${LLM_MODEL_TEST_SOURCES})
  target_link_libraries(test_model PRIVATE llm_model_cpu GTest::gtest GTest::gtest_main)
  target_compile_definitions(test_model PRIVATE LLM_SOURCE_DIR="${LLM_MODEL_ROOT}")
  gtest_discover_tests(test_model PROPERTIES LABELS model TIMEOUT 300 DISCOVERY_TIMEOUT 60)
endif()

if(EXISTS ${LLM_MODEL_ROOT}/dev/bench_cpu_step.cpp)
  add_executable(bench_cpu_step ${LLM_MODEL_ROOT}/dev/bench_cpu_step.cpp)
  target_link_libraries(bench_cpu_step PRIVATE llm_model_cpu)
endif()

# GEMM micro-benchmark: the GPT-2 124M linear-layer shapes, old kernel (dev/gemm_old.cpp) vs cpu/gemm.cpp.
if(EXISTS ${LLM_MODEL_ROOT}/dev/bench_gemm.cpp)
  add_executable(bench_gemm ${LLM_MODEL_ROOT}/dev/bench_gemm.cpp ${LLM_MODEL_ROOT}/dev/gemm_old.cpp)
  target_link_libraries(bench_gemm PRIVATE llm_model_cpu)
endif()
