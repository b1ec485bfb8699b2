# weights.cmake — HF/OpenAI weights, sampling, generation (label "weights"), the safetensors fuzzer, decode bench.
# host/safetensors.cpp, hf_gpt2.cpp, sampling.cpp, generate.cpp are in llm_host (host.cmake globs host/*.cpp);
# cpu/gpt2_infer.cpp is in llm_model_cpu (model_cpu.cmake globs cpu/*.cpp).
file(GLOB LLM_WEIGHTS_TEST_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/test_weights_*.cpp
     ${CMAKE_SOURCE_DIR}/tests/test_sampling*.cpp ${CMAKE_SOURCE_DIR}/tests/test_generate*.cpp)
if(LLM_WEIGHTS_TEST_SOURCES AND TARGET llm_model_cpu)
  add_executable(test_weights ${LLM_WEIGHTS_TEST_SOURCES})
  target_link_libraries(test_weights PRIVATE llm_model_cpu llm_host GTest::gtest GTest::gtest_main)
  target_compile_definitions(test_weights PRIVATE LLM_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  if(TARGET gpt2_cpu)
    target_compile_definitions(test_weights PRIVATE GPT2_CPU_BIN="$<TARGET_FILE:gpt2_cpu>")
    add_dependencies(test_weights gpt2_cpu)
  endif()
  # Tiny models: one OpenMP thread (2 spinning threads on a busy 2-core box are far slower, not faster).
  gtest_discover_tests(test_weights PROPERTIES LABELS weights TIMEOUT 300 DISCOVERY_TIMEOUT 60
                       ENVIRONMENT "OMP_NUM_THREADS=1")
endif()

if(EXISTS ${CMAKE_SOURCE_DIR}/dev/bench_decode.cpp AND TARGET llm_model_cpu)
  add_executable(bench_decode ${CMAKE_SOURCE_DIR}/dev/bench_decode.cpp)
  target_link_libraries(bench_decode PRIVATE llm_model_cpu llm_host)
endif()
if(EXISTS ${CMAKE_SOURCE_DIR}/dev/bench_membw.cpp)  # memory bandwidth: the ceiling for decode tok/s
  add_executable(bench_membw ${CMAKE_SOURCE_DIR}/dev/bench_membw.cpp)
  target_link_libraries(bench_membw PRIVATE OpenMP::OpenMP_CXX)
endif()

# libFuzzer targets (model files): configure a separate build with clang, e.g.
#   CC=clang CXX=clang++ cmake -S . -B build-fuzz-cmake -DLLM_FUZZ=ON && cmake --build build-fuzz-cmake --target fuzz_checkpoint
# or run the whole campaign with scripts/run_fuzz.sh. llm_add_fuzzer and llm_fuzz_host come from cmake/tokenizer.cmake.
if(LLM_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "LLM_FUZZ=ON needs clang (CXX=clang++)")
  endif()
  # safetensors + HF mapping, llm.c checkpoints via load_checkpoint/load_model, HF config.json
  foreach(f fuzz_safetensors fuzz_checkpoint fuzz_hf_config)
    llm_add_fuzzer(${f})
  endforeach()
endif()
