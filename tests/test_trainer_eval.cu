// test_trainer_eval.cu — the model of `train_gpt2cu eval` / `hellaswag` (gpu::make_forward_model) allocates no
// optimizer state, on the CUDA-on-CPU layer (whose cudaMemGetInfo counts the live device bytes exactly):
//   * after set_weights and a forward it holds exactly the bytes of the training model minus the optimizer state
//     (fp32: none before the first step; bf16: the fp32 master), and optimizer_bytes() is 0;
//   * its losses are bit-identical to the training model's (the same kernels on the same params: bf16 rounds the
//     fp32 weights to nearest either way), and its get_weights is the params widened;
//   * the training model's first zero_grad allocates gradients + m + v: (sizeof(floatX) + 8) bytes per parameter.
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "host/gpt2_init.h"
#include "host_test_util.h"

#include "gpu/train_model.cuh"

namespace {

size_t device_bytes_in_use() {
  size_t free_b = 0, total = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total));
  return total - free_b;
}

template <class floatX>
gpu::GpuTrainModel<floatX>& typed(llm::TrainModel& m) {
  auto* t = dynamic_cast<gpu::GpuTrainModel<floatX>*>(&m);
  if (!t) throw std::runtime_error("not the expected precision");
  return *t;
}

template <class floatX>
void expect_forward_only_model_holds_no_optimizer(gpu::Precision prec) {
  const llm::GPT2Config cfg = llm::preset_config("tiny");
  llm::TrainOptions o;
  o.batch_size = 2;
  o.seq_len = 16;
  const int BT = o.batch_size * o.seq_len;
  const size_t n = llm::num_parameters(cfg);
  std::vector<float> w(n);
  llm::init_gpt2_params(cfg, 7, w.data());
  const std::vector<uint16_t> tok = host_test::lcg_tokens(BT + 1, 3);
  std::vector<int> x(tok.begin(), tok.begin() + BT), y(tok.begin() + 1, tok.end());
  for (int& id : x) id %= cfg.vocab_size;
  for (int& id : y) id %= cfg.vocab_size;
  const gpu::DeviceInfo dev = gpu::device_info();
  // a first model and forward, so that anything allocated once per process is already there
  gpu::make_forward_model(prec, cfg, o, dev)->eval_loss(x.data(), y.data(), o.batch_size, o.seq_len);

  const size_t used0 = device_bytes_in_use();
  auto fwd = gpu::make_forward_model(prec, cfg, o, dev);
  fwd->set_weights(w);
  const float loss_fwd = fwd->eval_loss(x.data(), y.data(), o.batch_size, o.seq_len);
  std::vector<float> tl_fwd(BT);
  fwd->token_losses(tl_fwd.data(), x.data(), y.data(), o.batch_size, o.seq_len);
  const size_t fwd_bytes = device_bytes_in_use() - used0;
  EXPECT_EQ(typed<floatX>(*fwd).model().optimizer_bytes(), 0u);

  const size_t used1 = device_bytes_in_use();
  auto train = gpu::make_train_model(prec, cfg, o, false, dev);
  train->set_weights(w);
  const float loss_train = train->eval_loss(x.data(), y.data(), o.batch_size, o.seq_len);
  std::vector<float> tl_train(BT);
  train->token_losses(tl_train.data(), x.data(), y.data(), o.batch_size, o.seq_len);
  const size_t master = std::is_same<floatX, float>::value ? 0 : n * sizeof(float);
  EXPECT_EQ(device_bytes_in_use() - used1, fwd_bytes + master);
  EXPECT_EQ(typed<floatX>(*train).model().optimizer_bytes(), master);

  // eval's output: bit for bit the training model's (what eval built before)
  EXPECT_EQ(std::memcmp(&loss_fwd, &loss_train, sizeof(float)), 0) << loss_fwd << " vs " << loss_train;
  EXPECT_EQ(std::memcmp(tl_fwd.data(), tl_train.data(), BT * sizeof(float)), 0);
  std::vector<float> back;
  fwd->get_weights(&back);
  ASSERT_EQ(back.size(), n);
  for (size_t i = 0; i < n; i++)  // no master: the params widened (bf16: w rounded to nearest)
    ASSERT_EQ(back[i], kern::to_float(kern::from_float<floatX>(w[i]))) << "parameter " << i;

  const size_t used2 = device_bytes_in_use();
  train->zero_grad();
  const size_t step_state = n * (sizeof(floatX) + 2 * sizeof(float));  // gradients + m + v (world 1: no padding)
  EXPECT_EQ(device_bytes_in_use() - used2, step_state);
  EXPECT_EQ(typed<floatX>(*train).model().optimizer_bytes(), master + step_state);
}

TEST(TrainerEval, ForwardOnlyModelAllocatesNoOptimizerFp32) {
  expect_forward_only_model_holds_no_optimizer<float>(gpu::Precision::kFp32);
}
TEST(TrainerEval, ForwardOnlyModelAllocatesNoOptimizerBf16) {
  expect_forward_only_model_holds_no_optimizer<__nv_bfloat16>(gpu::Precision::kBf16);
}

}  // namespace
