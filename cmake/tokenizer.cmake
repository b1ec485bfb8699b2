# Tokenizer component: GPT-2 BPE (host/tokenizer*.cpp, host/token_shard.cpp, host/data_prep.cpp and
# host/sliding_window.cpp are compiled into llm_host by cmake/host.cmake), the `tokenizer` CLI, its
# tests (label "tokenizer"), the benchmark and, with -DLLM_FUZZ=ON, the libFuzzer targets.

if(EXISTS ${CMAKE_SOURCE_DIR}/tools/tokenizer.cpp)
  add_executable(tokenizer ${CMAKE_SOURCE_DIR}/tools/tokenizer.cpp)
  target_link_libraries(tokenizer PRIVATE llm_host)
endif()

# Tests: one binary, fixtures located through LLM_SOURCE_DIR; tools found through LLM_BINARY_DIR.
file(GLOB LLM_TOKENIZER_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/test_tokenizer*.cpp)
add_executable(test_tokenizer ${LLM_TOKENIZER_TESTS})
target_link_libraries(test_tokenizer PRIVATE llm_host GTest::gtest GTest::gtest_main)
target_compile_definitions(test_tokenizer PRIVATE LLM_SOURCE_DIR="${CMAKE_SOURCE_DIR}"
                                                  LLM_BINARY_DIR="${CMAKE_BINARY_DIR}")
if(TARGET tokenizer)
  add_dependencies(test_tokenizer tokenizer)
endif()
gtest_discover_tests(test_tokenizer DISCOVERY_TIMEOUT 60 PROPERTIES LABELS tokenizer TIMEOUT 300)

# Benchmark (speed is measured only here): dev/bench_tokenizer.sh runs it next to tiktoken.
if(EXISTS ${CMAKE_SOURCE_DIR}/dev/bench_tokenizer.cpp)
  add_executable(bench_tokenizer ${CMAKE_SOURCE_DIR}/dev/bench_tokenizer.cpp)
  target_link_libraries(bench_tokenizer PRIVATE llm_host)
endif()

# libFuzzer targets (clang only): cmake -DLLM_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ ...
if(LLM_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "LLM_FUZZ=ON needs clang (set CMAKE_CXX_COMPILER=clang++)")
  endif()
  # the tokenizer sources are compiled into each fuzzer so that they carry coverage instrumentation
  set(LLM_FUZZ_SOURCES ${CMAKE_SOURCE_DIR}/host/tokenizer.cpp ${CMAKE_SOURCE_DIR}/host/tokenizer_files.cpp
                       ${CMAKE_SOURCE_DIR}/host/token_shard.cpp)
  foreach(f fuzz_tokenizer_roundtrip fuzz_vocab_parsers)
    add_executable(${f} ${CMAKE_SOURCE_DIR}/fuzz/${f}.cpp ${LLM_FUZZ_SOURCES})
    target_include_directories(${f} PRIVATE ${CMAKE_SOURCE_DIR})
    target_compile_options(${f} PRIVATE -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer -g)
    target_link_options(${f} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(${f} PRIVATE PkgConfig::PCRE2 nlohmann_json::nlohmann_json Threads::Threads)
    target_compile_definitions(${f} PRIVATE LLM_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  endforeach()
endif()
