// finetune_backend.h — the CPU reference (FinetuneGPT2, cpu/classifier.h) behind the fine-tuning driver's
// backend interface (host/finetune_main.h): what gpt2_cpu gives add_finetune_commands.
#pragma once
#include "host/finetune_main.h"

namespace llm {

// FinetuneGPT2 as a FinetuneBackend, and the KV-cache model (cpu/gpt2_infer.h) for finetune-instruct's greedy
// responses.
FinetuneProgram cpu_finetune_program();

}  // namespace llm
