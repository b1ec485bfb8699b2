# cmake -P script (test cmake_require_names_a_missing_file): llm_require_files on one existing and one missing
# file must stop with the message naming the missing one.
include(${CMAKE_CURRENT_LIST_DIR}/../../cmake/require.cmake)
llm_require_files(${CMAKE_CURRENT_LIST_DIR}/require_missing.cmake ${CMAKE_CURRENT_LIST_DIR}/no_such_test_file.cu)
message(STATUS "not reached")
