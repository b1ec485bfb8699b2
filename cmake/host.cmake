# host/: code shared by gpt2_cpu and train_gpt2cu (tokenizer, data, checkpoints, CLI, logging, sampling).
file(GLOB LLM_HOST_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/host/*.cpp)
list(FILTER LLM_HOST_SOURCES EXCLUDE REGEX "/comm_mpi\\.cpp$")
add_library(llm_host STATIC ${LLM_HOST_SOURCES})
target_include_directories(llm_host PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(llm_host PUBLIC PkgConfig::PCRE2 nlohmann_json::nlohmann_json CLI11::CLI11
                      OpenMP::OpenMP_CXX Threads::Threads)

# llm_comm: the host-memory communication backends (host/comm_mpi.h). Links libmpi only when MPI is found, so
# only the programs that may run data parallel on the CPU pay for it; LLM_WITH_MPI tells the code.
set(MPI_CXX_SKIP_MPICXX ON CACHE BOOL "no MPI C++ bindings (the C API is used)")
find_package(MPI QUIET COMPONENTS CXX)
add_library(llm_comm STATIC ${CMAKE_SOURCE_DIR}/host/comm_mpi.cpp)
target_link_libraries(llm_comm PUBLIC llm_host)
if(MPI_CXX_FOUND)
  target_link_libraries(llm_comm PUBLIC MPI::MPI_CXX)
  target_compile_definitions(llm_comm PUBLIC LLM_WITH_MPI=1)
  message(STATUS "MPI found: data-parallel CPU training (mpirun: ${MPIEXEC_EXECUTABLE})")
else()
  message(STATUS "MPI not found: the CPU programs run single-process only (install libopenmpi-dev)")
endif()
