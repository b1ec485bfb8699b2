#include "host/error.h"
// The exception type is header-only; this unit keeps llm_host non-empty and checks the header compiles alone.
