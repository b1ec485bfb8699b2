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
  # The parsers' sources, instrumented once for coverage (fuzzer-no-link) and linked into every target here and
  # in cmake/weights.cmake. scripts/run_fuzz.sh builds the same targets with clang directly and runs the campaign.
  set(LLM_FUZZ_HOST_SOURCES)
  foreach(s binary_io checkpoint cli crc32c data_loader error gpt2_config hf_gpt2 memory safetensors token_shard
            tokenizer tokenizer_files train_state weights_check)
    list(APPEND LLM_FUZZ_HOST_SOURCES ${CMAKE_SOURCE_DIR}/host/${s}.cpp)
  endforeach()
  add_library(llm_fuzz_host STATIC ${LLM_FUZZ_HOST_SOURCES})
  target_include_directories(llm_fuzz_host PUBLIC ${CMAKE_SOURCE_DIR})
  target_compile_options(llm_fuzz_host PRIVATE -fsanitize=fuzzer-no-link,address,undefined
                         -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g)
  target_compile_definitions(llm_fuzz_host PUBLIC LLM_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  target_link_libraries(llm_fuzz_host PUBLIC PkgConfig::PCRE2 nlohmann_json::nlohmann_json CLI11::CLI11
                        Threads::Threads)
  # llm_add_fuzzer(name): fuzz/<name>.cpp + llm_fuzz_host, ASan + UBSan (UB fatal) + libFuzzer
  function(llm_add_fuzzer name)
    add_executable(${name} ${CMAKE_SOURCE_DIR}/fuzz/${name}.cpp)
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
                           -fno-omit-frame-pointer -g)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(${name} PRIVATE llm_fuzz_host)
  endfunction()
  # tokenizer files and round trip, token shards + DataLoader, training-state files, train/eval command lines
  foreach(f fuzz_tokenizer_roundtrip fuzz_vocab_parsers fuzz_token_shard fuzz_train_state fuzz_cli)
    llm_add_fuzzer(${f})
  endforeach()
endif()
