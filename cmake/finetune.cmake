# finetune.cmake — tests of the fine-tuning component (label "finetune"). The code itself is built by the
# existing globs: host/finetune_data.cpp, host/finetune_spec.cpp and host/finetune_main.cpp (the driver) into
# llm_host, cpu/classifier.cpp + cpu/finetune_backend.cpp into llm_model_cpu; the subcommands are wired in
# gpt2_cpu.cpp and train_gpt2.cu.
file(GLOB LLM_FINETUNE_TEST_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/test_finetune_*.cpp)
if(LLM_FINETUNE_TEST_SOURCES AND TARGET llm_model_cpu AND TARGET gpt2_cpu)
  add_executable(test_finetune ${LLM_FINETUNE_TEST_SOURCES})
  target_link_libraries(test_finetune PRIVATE llm_model_cpu llm_host GTest::gtest GTest::gtest_main)
  target_compile_definitions(test_finetune PRIVATE LLM_SOURCE_DIR="${CMAKE_SOURCE_DIR}"
                             GPT2_CPU_BIN="$<TARGET_FILE:gpt2_cpu>")
  add_dependencies(test_finetune gpt2_cpu)
  gtest_discover_tests(test_finetune PROPERTIES LABELS finetune TIMEOUT 300 DISCOVERY_TIMEOUT 60)
endif()

# Random-init checkpoint of a custom small size (figures recipe, tests).
if(TARGET llm_model_cpu)
  add_executable(finetune_init ${CMAKE_SOURCE_DIR}/tools/finetune_init.cpp)
  target_link_libraries(finetune_init PRIVATE llm_model_cpu llm_host)
endif()

# The device backend (gpu/finetune_gpu.cuh) through the CUDA-on-CPU layer vs FinetuneGPT2, and
# `train_gpt2cu_cpu finetune-classify` vs `gpt2_cpu finetune-classify` as subprocesses.
llm_require_files(${CMAKE_SOURCE_DIR}/tests/test_finetune_gpu.cu)
if(COMMAND cucpu_add_executable AND TARGET train_gpt2cu_cpu AND TARGET gpt2_cpu)
  cucpu_add_executable(test_finetune_gpu ${CMAKE_SOURCE_DIR}/tests/test_finetune_gpu.cu)
  target_link_libraries(test_finetune_gpu PRIVATE llm_model_cpu llm_host GTest::gtest GTest::gtest_main)
  target_compile_definitions(test_finetune_gpu PRIVATE LLM_SOURCE_DIR="${CMAKE_SOURCE_DIR}"
                             GPT2_CPU_BIN="$<TARGET_FILE:gpt2_cpu>" TRAIN_GPT2CU_BIN="$<TARGET_FILE:train_gpt2cu_cpu>")
  add_dependencies(test_finetune_gpu gpt2_cpu train_gpt2cu_cpu)
  gtest_discover_tests(test_finetune_gpu DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 60
                       PROPERTIES LABELS "finetune;trainer" TIMEOUT 600 ENVIRONMENT "OMP_NUM_THREADS=1")
endif()
