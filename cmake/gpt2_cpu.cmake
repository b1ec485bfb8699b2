# gpt2_cpu.cmake — the CPU training program build/gpt2_cpu and the host-code tests (label "host").
llm_require_files(${CMAKE_SOURCE_DIR}/gpt2_cpu.cpp ${CMAKE_SOURCE_DIR}/tests/test_dp_unit.cpp
                  ${CMAKE_SOURCE_DIR}/tests/test_dp_cli.cpp)
if(TARGET llm_model_cpu)
  add_executable(gpt2_cpu ${CMAKE_SOURCE_DIR}/gpt2_cpu.cpp)
  target_link_libraries(gpt2_cpu PRIVATE llm_model_cpu llm_host llm_comm)
endif()

# Unit tests of the host file formats, loader, CLI parsing and progress log.
file(GLOB LLM_HOST_TEST_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/test_host_*.cpp)
if(LLM_HOST_TEST_SOURCES)
  add_executable(test_host ${LLM_HOST_TEST_SOURCES})
  target_link_libraries(test_host PRIVATE llm_host GTest::gtest GTest::gtest_main)
  target_compile_definitions(test_host PRIVATE LLM_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  gtest_discover_tests(test_host PROPERTIES LABELS host TIMEOUT 120 DISCOVERY_TIMEOUT 60)
  # scripts/plot_log.py (reads main.log; Python is only needed for plots): summary on a log with known answers
  find_package(Python3 COMPONENTS Interpreter QUIET)
  if(Python3_Interpreter_FOUND)
    add_test(NAME plot_log_summary COMMAND bash ${CMAKE_SOURCE_DIR}/tests/test_plot_log.sh)
    set_tests_properties(plot_log_summary PROPERTIES LABELS host TIMEOUT 60)
  endif()
endif()

# End-to-end tests that run build/gpt2_cpu as a subprocess on tiny generated shards.
file(GLOB LLM_GPT2_CPU_CLI_TEST_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/test_gpt2_cpu_cli*.cpp)
if(LLM_GPT2_CPU_CLI_TEST_SOURCES AND TARGET gpt2_cpu)
  add_executable(test_gpt2_cpu_cli ${LLM_GPT2_CPU_CLI_TEST_SOURCES})
  target_link_libraries(test_gpt2_cpu_cli PRIVATE llm_model_cpu llm_host GTest::gtest GTest::gtest_main)
  target_compile_definitions(test_gpt2_cpu_cli PRIVATE LLM_SOURCE_DIR="${CMAKE_SOURCE_DIR}"
                             GPT2_CPU_BIN="$<TARGET_FILE:gpt2_cpu>")
  add_dependencies(test_gpt2_cpu_cli gpt2_cpu)
  if(MPI_CXX_FOUND AND MPIEXEC_EXECUTABLE)  # (the reliability tests' data-parallel cases)
    target_compile_definitions(test_gpt2_cpu_cli PRIVATE LLM_MPIEXEC="${MPIEXEC_EXECUTABLE}"
                               LLM_MPIEXEC_NUMPROC_FLAG="${MPIEXEC_NUMPROC_FLAG}")
  endif()
  gtest_discover_tests(test_gpt2_cpu_cli PROPERTIES LABELS host TIMEOUT 300 DISCOVERY_TIMEOUT 60)
endif()

# Data parallel (label dp): launch env + TCP rendezvous + loader mapping (no MPI needed), MpiComm's collectives
# under mpiexec, and gpt2_cpu under mpiexec (1 rank vs 2 ranks, ZeRO-1 vs ZeRO-0, resume, bad input). Tests that
# need MPI skip with a message when CMake found none.
if(TARGET gpt2_cpu)
  add_executable(test_dp ${CMAKE_SOURCE_DIR}/tests/test_dp_unit.cpp ${CMAKE_SOURCE_DIR}/tests/test_dp_cli.cpp)
  target_link_libraries(test_dp PRIVATE llm_comm llm_host GTest::gtest GTest::gtest_main)
  target_compile_definitions(test_dp PRIVATE GPT2_CPU_BIN="$<TARGET_FILE:gpt2_cpu>")
  if(MPI_CXX_FOUND AND MPIEXEC_EXECUTABLE)
    target_compile_definitions(test_dp PRIVATE LLM_MPIEXEC="${MPIEXEC_EXECUTABLE}"
                               LLM_MPIEXEC_NUMPROC_FLAG="${MPIEXEC_NUMPROC_FLAG}")
  endif()
  add_dependencies(test_dp gpt2_cpu)
  gtest_discover_tests(test_dp PROPERTIES LABELS dp TIMEOUT 300 DISCOVERY_TIMEOUT 60)

  if(MPI_CXX_FOUND AND MPIEXEC_EXECUTABLE)
    add_executable(test_dp_mpi ${CMAKE_SOURCE_DIR}/tests/test_dp_mpi.cpp)
    target_link_libraries(test_dp_mpi PRIVATE llm_comm GTest::gtest)
    add_test(NAME DpMpi.CollectivesOnThreeRanks
             COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 3 $<TARGET_FILE:test_dp_mpi>)
    # Open MPI in CI containers: root, fewer cores than ranks, other tests running alongside
    set_tests_properties(DpMpi.CollectivesOnThreeRanks PROPERTIES LABELS dp TIMEOUT 120 ENVIRONMENT
      "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1;OMPI_MCA_hwloc_base_binding_policy=none;OMPI_MCA_btl_vader_single_copy_mechanism=none")
  endif()
endif()

# scripts/gpu_check.sh's control flow without a GPU (GPU_CHECK_DRY_RUN=1: fake steps that pass, fail, time out,
# crash, print no result line, are interrupted): the one summary table, its rows, counts and exit code
add_test(NAME gpu_check_dry_run COMMAND bash ${CMAKE_SOURCE_DIR}/tests/test_gpu_check_dry_run.sh)
set_tests_properties(gpu_check_dry_run PROPERTIES LABELS "host;gpu_check" TIMEOUT 300)
