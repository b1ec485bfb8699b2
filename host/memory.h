// memory.h — one checked allocation path for sizes that come from files or flags.
//
// Why: a model header claiming ~95G parameters (a sparse file of matching size) made `generate`/`export`/
// `finetune-*` die of std::bad_alloc (rc 134) and `train`/`eval` print "out of memory" without a file name; a
// gpt2-xl training run on a 24 GiB machine allocated for a minute and was then OOM-killed (rc 137, no message).
// Every such size is compared with the memory the machine can give this process before anything is allocated:
// the smallest of MemAvailable (/proc/meminfo) and the cgroup limit minus usage (v2 memory.max/current, v1
// memory.limit_in_bytes/usage_in_bytes). LLM_MEMORY_LIMIT=<bytes> caps it further (tests, shared machines).
#pragma once
#include <cstdint>
#include <string>

#include "host/gpt2_config.h"

namespace llm {

// Bytes this process can still allocate (see above); UINT64_MAX when nothing can be read.
uint64_t available_memory_bytes();

// Fails "<source>: needs X GiB of memory for <purpose>, but only Y GiB are available (...)" when bytes exceeds
// available_memory_bytes().
void check_memory(const std::string& source, uint64_t bytes, const std::string& purpose);

// "1.23 GiB"
std::string format_gib(uint64_t bytes);

// fp32 floats of the forward activations of a B×T batch (llm.c's activation tensors); a training step keeps
// about as many again for their gradients.
uint64_t activation_floats(const GPT2Config& c, int B, int T);

}  // namespace llm
