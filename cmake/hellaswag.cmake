# hellaswag.cmake — HellaSwag evaluation tests (label hellaswag): host/hellaswag.h units (parsing, bad input,
# tokenization + truncation vs transformers, batching/scoring vs a closed-form model) and both programs against the
# HF reference (tests/fixtures/hellaswag/, scripts/gen_hellaswag_fixtures.py), standalone and during training.
llm_require_files(${CMAKE_SOURCE_DIR}/tests/test_hellaswag.cpp)
if(TARGET gpt2_cpu AND TARGET train_gpt2cu_cpu)
  add_executable(test_hellaswag ${CMAKE_SOURCE_DIR}/tests/test_hellaswag.cpp)
  target_link_libraries(test_hellaswag PRIVATE llm_host GTest::gtest GTest::gtest_main)
  target_compile_definitions(test_hellaswag PRIVATE LLM_SOURCE_DIR="${CMAKE_SOURCE_DIR}"
                             GPT2_CPU_BIN="$<TARGET_FILE:gpt2_cpu>" TRAIN_GPT2CU_BIN="$<TARGET_FILE:train_gpt2cu_cpu>")
  add_dependencies(test_hellaswag gpt2_cpu train_gpt2cu_cpu)
  gtest_discover_tests(test_hellaswag PROPERTIES LABELS hellaswag TIMEOUT 300 DISCOVERY_TIMEOUT 60)
endif()
