// finetune_backend.cpp — FinetuneGPT2 behind the driver's backend interface (see finetune_backend.h).
#include "cpu/finetune_backend.h"

#include <algorithm>
#include <memory>
#include <vector>

#include "cpu/classifier.h"
#include "cpu/gpt2_infer.h"

namespace llm {

namespace {

// FinetuneGPT2 behind the backend interface.
class CpuFinetuneBackend final : public FinetuneBackend {
 public:
  CpuFinetuneBackend(const GPT2Config& c, std::vector<float>&& params, const FinetuneSpec& spec)
      : m_(c, std::move(params), spec) {}
  size_t num_trainable() const override { return m_.num_trainable(); }
  float forward_classify(const int* x, const int* labels, int B, int T) override {
    return m_.forward_classify(x, labels, B, T);
  }
  float forward_lm(const int* x, const int* targets, int B, int T) override { return m_.forward_lm(x, targets, B, T); }
  void zero_grad() override { m_.zero_grad(); }
  void backward() override { m_.backward(); }
  void adamw_step(float lr, float wd, int t) override { m_.adamw_step(lr, wd, t); }
  int predict(int b) const override { return m_.predict(b); }
  void set_head(const float* w, const float* b) override {
    std::copy_n(w, (size_t)m_.num_classes() * m_.config().channels, m_.head_weight());
    std::copy_n(b, m_.num_classes(), m_.head_bias());
  }
  GPT2Config export_merged(std::vector<float>* params, std::vector<float>* head_w,
                           std::vector<float>* head_b) override {
    m_.merge_lora();
    const GPT2Config& c = m_.config();
    params->assign(m_.base(), m_.base() + num_parameters(c));
    const size_t N = m_.num_classes();
    head_w->assign(m_.head_weight(), m_.head_weight() + N * c.channels);
    head_b->assign(m_.head_bias(), m_.head_bias() + N);
    return c;
  }

 private:
  FinetuneGPT2 m_;
};

}  // namespace

FinetuneProgram cpu_finetune_program() {
  FinetuneProgram p;
  p.make_backend = [](const GPT2Config& c, std::vector<float>&& params, const FinetuneSpec& spec) {
    return std::unique_ptr<FinetuneBackend>(new CpuFinetuneBackend(c, std::move(params), spec));
  };
  p.make_generator = [](const GPT2Config& c, std::vector<float>&& params) {
    return std::unique_ptr<LogitsModel>(new KVCacheGPT2(c, std::move(params)));
  };
  return p;
}

}  // namespace llm
