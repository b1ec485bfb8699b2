# require.cmake — llm_require_files(<file>...): a source a fragment lists must exist. A missing one (renamed,
# deleted) stops the configure with a message naming it and the fragment that lists it, instead of an
# `if(EXISTS ...)` that would make its test or benchmark vanish without a word.
# Also usable in script mode (tests/cmake/require_missing.cmake checks the message).
function(llm_require_files)
  foreach(f IN LISTS ARGN)
    if(NOT EXISTS "${f}")
      message(FATAL_ERROR "${CMAKE_CURRENT_LIST_FILE} lists ${f}, which does not exist (renamed or deleted? update "
                          "the list)")
    endif()
  endforeach()
endfunction()
