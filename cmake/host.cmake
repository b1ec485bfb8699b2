# host/: code shared by gpt2_cpu and train_gpt2cu (tokenizer, data, checkpoints, CLI, logging, sampling).
file(GLOB LLM_HOST_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/host/*.cpp)
add_library(llm_host STATIC ${LLM_HOST_SOURCES})
target_include_directories(llm_host PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(llm_host PUBLIC PkgConfig::PCRE2 nlohmann_json::nlohmann_json CLI11::CLI11
                      OpenMP::OpenMP_CXX Threads::Threads)
