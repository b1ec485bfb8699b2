// finetune_main.h — the fine-tuning verbs of gpt2_cpu and train_gpt2cu (host/program.h):
//   finetune-classify  the book's chapter 6 (spam classifier) on labelled CSV/TSV files
//   classify           print the predicted label of a text with a saved classifier
//   finetune-instruct  the book's chapter 7 (Alpaca-style instruction following) on instruction JSON
// Bad input is an llm::Error (the shell prints "error: ..." and exits 2). See --help of each.
//
// Why a backend interface: the driver (flags, data, shuffling, epochs, evaluation, accuracy, ROUGE-L, files) is
// the same for every device; only the model differs. gpt2_cpu passes the CPU backend (FinetuneGPT2, the
// reference); train_gpt2cu passes the device one (gpu/finetune_gpu.cuh) and an --precision flag.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "host/finetune_spec.h"  // FinetuneSpec
#include "host/generate.h"  // LogitsModel (greedy responses of finetune-instruct)

namespace CLI { class App; }

namespace llm {

class Program;

// One fine-tuning model behind virtual calls (the CPU reference: cpu/finetune_backend.h; the device:
// gpu/finetune_gpu.cuh).
class FinetuneBackend {
 public:
  virtual ~FinetuneBackend() = default;
  virtual size_t num_trainable() const = 0;
  // inputs (B,T), labels (B) / targets (B,T) with -100 = ignore, or nullptr: mean loss, or -1 without labels.
  virtual float forward_classify(const int* inputs, const int* labels, int B, int T) = 0;
  virtual float forward_lm(const int* inputs, const int* targets, int B, int T) = 0;
  virtual void zero_grad() = 0;
  virtual void backward() = 0;
  virtual void adamw_step(float lr, float weight_decay, int t) = 0;  // betas (0.9, 0.999), eps 1e-8, t 1-based
  virtual int predict(int b) const = 0;                                // argmax of the last class logits, row b
  virtual void set_head(const float* w, const float* b) = 0;           // classification head (N,C), (N)
  // LoRA merged into the weights (the model stays usable for inference); returns the config (untied when a tied
  // LM head was merged), fills the base parameters and, for classification, the head.
  virtual GPT2Config export_merged(std::vector<float>* params, std::vector<float>* head_w,
                                   std::vector<float>* head_b) = 0;
};

struct FinetuneProgram {
  std::function<std::unique_ptr<FinetuneBackend>(const GPT2Config&, std::vector<float>&&, const FinetuneSpec&)>
      make_backend;
  // greedy generation after finetune-instruct
  std::function<std::unique_ptr<LogitsModel>(const GPT2Config&, std::vector<float>&&)> make_generator;
  std::function<void(CLI::App&)> extra_options;  // e.g. --precision (may be empty)
};

// Adds finetune-classify, classify and finetune-instruct to the program, each running on p's backend; p's
// extra_options are added to each.
void add_finetune_commands(Program& program, const FinetuneProgram& p);

}  // namespace llm
