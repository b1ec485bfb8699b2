// finetune_main.cpp — finetune-classify / classify / finetune-instruct on any FinetuneBackend (see finetune_main.h).
//
// Sequence-length rules (documented choice): classification texts are truncated to --max-length (default: the
// longest training text, capped at the model context), then right-padded with 50256; instruction items longer
// than min(--max-length, context) are truncated by the collate step, and generation stops when the context is
// full (or at 50256, or after --max-new-tokens).
#include "host/finetune_main.h"

#include <omp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <sstream>

#include "host/checkpoint.h"
#include "host/cli.h"
#include "host/error.h"
#include "host/weights_check.h"
#include "host/finetune_data.h"
#include "host/finetune_spec.h"
#include "host/program.h"
#include "host/sampling.h"
#include "host/tokenizer.h"

namespace llm {

namespace {

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream is(s);
  while (std::getline(is, cur, ',')) out.push_back(cur);
  return out;
}

// Deterministic Fisher-Yates with mt19937_64 (same order on every platform).
void shuffle_indices(std::vector<int>& idx, std::mt19937_64& rng) {
  for (size_t i = idx.size(); i > 1; i--) std::swap(idx[i - 1], idx[rng() % i]);
}

// Common fine-tuning options.
struct CommonOpts {
  std::string model, out;
  int batch = 8, epochs = 5, threads = 0, max_length = 0, max_train = 0, lora_rank = 0;
  float lr = 5e-5f, wd = 0.1f, lora_alpha = 0.0f;
  std::string train_blocks = "last";
  uint64_t seed = 123;
};

// The book's epoch loop, shared by both fine-tunes: every epoch reshuffles the training indices (one mt19937_64
// stream seeded with --seed), then takes n_train / batch optimizer steps (drop_last) on the batches
// order[bi·batch, (bi+1)·batch): zero_grad, forward(those indices) (the batch's mean loss), backward, AdamW;
// end_epoch(epoch, mean train loss) follows each epoch. `what` names the training items in the error.
void run_epochs(FinetuneBackend& m, const CommonOpts& o, size_t n_train, const char* what,
                const std::function<float(const int* idx)>& forward,
                const std::function<void(int epoch, double mean_loss)>& end_epoch) {
  std::mt19937_64 rng(o.seed);
  std::vector<int> order(n_train);
  const int n_batches = (int)n_train / o.batch;
  if (n_batches == 0 && o.epochs > 0) fail("--batch ", o.batch, " is larger than the ", n_train, " training ", what);
  int step = 0;
  for (int ep = 0; ep < o.epochs; ep++) {
    for (size_t i = 0; i < order.size(); i++) order[i] = (int)i;
    shuffle_indices(order, rng);
    double ep_loss = 0;
    for (int bi = 0; bi < n_batches; bi++) {
      m.zero_grad();
      ep_loss += forward(order.data() + (size_t)bi * o.batch);
      m.backward();
      m.adamw_step(o.lr, o.wd, ++step);
    }
    end_epoch(ep + 1, ep_loss / std::max(1, n_batches));
  }
}

void add_common(CLI::App& app, CommonOpts& o, int default_epochs, const std::string& default_blocks) {
  o.epochs = default_epochs;
  o.train_blocks = default_blocks;
  app.add_option("--model", o.model, "pretrained llm.c checkpoint (.bin)")->required();
  app.add_option("--out", o.out, "where to write the fine-tuned model")->required();
  app.add_option("-b,--batch", o.batch, "batch size")->capture_default_str();
  app.add_option("--epochs", o.epochs, "epochs")->capture_default_str();
  app.add_option("--lr", o.lr, "AdamW learning rate")->capture_default_str();
  app.add_option("--weight-decay", o.wd, "AdamW weight decay (every trainable tensor)")->capture_default_str();
  app.add_option("--max-length", o.max_length, "truncate/pad length (0 = automatic, see --help text)");
  app.add_option("--max-train", o.max_train, "use only the first N training examples (0 = all)");
  app.add_option("--train-blocks", o.train_blocks,
                 "trainable blocks: 'last', 'all' (every tensor incl. embeddings), or a number K = the last K blocks")
      ->capture_default_str();
  app.add_option("--lora-rank", o.lora_rank, "LoRA rank (> 0 enables LoRA; base weights frozen)");
  app.add_option("--lora-alpha", o.lora_alpha, "LoRA alpha (default = rank)");
  app.add_option("--seed", o.seed, "head/adapter init and shuffle seed")->check(strict_uint64())->capture_default_str();
  app.add_option("--threads", o.threads, "OpenMP threads (0 = default)")->check(CLI::Range(0, kMaxThreads));
  add_allow_nonfinite_flag(app);
}

FinetuneSpec make_spec(const CommonOpts& o, const GPT2Config& c, int num_classes) {
  if (o.batch <= 0) fail("--batch ", o.batch, " must be positive");
  if (o.epochs < 0) fail("--epochs ", o.epochs, " must be >= 0");
  if (o.lora_rank < 0) fail("--lora-rank ", o.lora_rank, " must be positive (0 = no LoRA)");
  FinetuneSpec s;
  s.num_classes = num_classes;
  s.seed = o.seed;
  if (o.train_blocks == "last") {
    s.train_from_layer = c.num_layers - 1;
  } else if (o.train_blocks == "all") {
    s.train_from_layer = 0;
    s.train_embeddings = true;
  } else {
    int k = 0;
    try { k = std::stoi(o.train_blocks); } catch (...) { fail("--train-blocks '", o.train_blocks, "': expected last, all or a number"); }
    if (k < 0 || k > c.num_layers) fail("--train-blocks ", k, " not in [0, ", c.num_layers, "]");
    s.train_from_layer = c.num_layers - k;
  }
  s.lora_rank = o.lora_rank;
  s.lora_alpha = o.lora_alpha != 0.0f ? o.lora_alpha : (float)o.lora_rank;
  return s;
}

// ---- classification ------------------------------------------------------------------------------------------

struct ClsSet {
  std::vector<std::vector<int>> ids;  // each padded to max_length
  std::vector<int> labels;
};

ClsSet encode_set(const Tokenizer& tok, const std::vector<LabeledText>& rows, int max_length) {
  ClsSet s;
  for (const auto& r : rows) {
    s.ids.push_back(pad_to_length(tok.encode(r.text, SpecialMode::kAsText), max_length));
    s.labels.push_back(r.label);
  }
  return s;
}

// Accuracy and mean batch loss over the first max_batches batches (0 = all) of a set, in order.
std::pair<double, double> evaluate_cls(FinetuneBackend& m, const ClsSet& s, int batch, int max_batches) {
  const int n = (int)s.ids.size(), T = (int)s.ids[0].size();
  int correct = 0, seen = 0, batches = 0;
  double loss_sum = 0;
  for (int i = 0; i < n && (max_batches <= 0 || batches < max_batches); i += batch, batches++) {
    const int B = std::min(batch, n - i);
    std::vector<int> x((size_t)B * T);
    for (int b = 0; b < B; b++) std::copy(s.ids[i + b].begin(), s.ids[i + b].end(), x.begin() + (size_t)b * T);
    loss_sum += m.forward_classify(x.data(), &s.labels[i], B, T);
    for (int b = 0; b < B; b++) correct += m.predict(b) == s.labels[i + b];
    seen += B;
  }
  return {(double)correct / seen, loss_sum / batches};
}

// The flags of finetune-classify.
struct ClassifyTrainCli {
  CommonOpts o;
  std::string train, val, test, classes = "0,1", names = "not spam,spam";
  bool tsv = false;
  int eval_batches = 0;
};

void add_finetune_classify_options(CLI::App& app, ClassifyTrainCli& a) {
  add_common(app, a.o, 5, "last");
  app.add_option("--train", a.train, "training CSV (header with Label and Text columns)")->required();
  app.add_option("--val", a.val, "validation CSV");
  app.add_option("--test", a.test, "test CSV");
  app.add_option("--classes", a.classes, "label values in the files, comma separated (index = class id)")
      ->capture_default_str();
  app.add_option("--label-names", a.names, "names printed by classify, comma separated")->capture_default_str();
  app.add_flag("--tsv", a.tsv, "tab-separated files");
  app.add_option("--eval-batches", a.eval_batches, "batches per set for the per-epoch accuracy (0 = whole sets)");
}

int run_finetune_classify(ClassifyTrainCli& a, const FinetuneProgram& p) {
  const CommonOpts& o = a.o;
  const std::string &train = a.train, &val = a.val, &test = a.test, &classes = a.classes, &names = a.names;
  const bool tsv = a.tsv;
  int& eval_batches = a.eval_batches;
  if (o.threads > 0) omp_set_num_threads(o.threads);
  const auto cls = split_commas(classes), label_names = split_commas(names);
  if (label_names.size() != cls.size()) fail("--label-names has ", label_names.size(), " names for ", cls.size(), " classes");
  const char sep = tsv ? '\t' : ',';
  auto train_rows = read_labeled_csv(train, cls, sep);
  if (o.max_train > 0 && (size_t)o.max_train < train_rows.size()) train_rows.resize(o.max_train);
  std::vector<float> w;
  const CheckpointInfo info = load_checkpoint(o.model, &w);
  const GPT2Config& c = info.config;
  if (c.vocab_size < 50257) fail(o.model, ": vocabulary ", c.vocab_size, " is smaller than GPT-2's 50257");
  const Tokenizer tok = Tokenizer::from_default();
  int max_length = o.max_length;
  if (max_length > c.max_seq_len) fail("--max-length ", max_length, " exceeds the model context ", c.max_seq_len);
  if (max_length <= 0) {  // the book: longest training sequence, here also capped at the context
    for (const auto& r : train_rows) max_length = std::max<int>(max_length, tok.encode(r.text, SpecialMode::kAsText).size());
    max_length = std::min(max_length, c.max_seq_len);
  }
  const ClsSet tr = encode_set(tok, train_rows, max_length);
  ClsSet va, te;
  if (!val.empty()) va = encode_set(tok, read_labeled_csv(val, cls, sep), max_length);
  if (!test.empty()) te = encode_set(tok, read_labeled_csv(test, cls, sep), max_length);
  const std::unique_ptr<FinetuneBackend> model = p.make_backend(c, std::move(w), make_spec(o, c, (int)cls.size()));
  FinetuneBackend& m = *model;
  std::printf("classifier: %zu train / %zu val / %zu test texts, max length %d, %zu trainable parameters\n",
              tr.ids.size(), va.ids.size(), te.ids.size(), max_length, m.num_trainable());
  auto report = [&](const char* tag) {
    auto a = evaluate_cls(m, tr, o.batch, eval_batches);
    std::printf("%s train acc %.4f loss %.4f", tag, a.first, a.second);
    if (!va.ids.empty()) { a = evaluate_cls(m, va, o.batch, eval_batches); std::printf(" | val acc %.4f loss %.4f", a.first, a.second); }
    if (!te.ids.empty()) { a = evaluate_cls(m, te, o.batch, eval_batches); std::printf(" | test acc %.4f loss %.4f", a.first, a.second); }
    std::printf("\n");
    std::fflush(stdout);
  };
  auto batch = [&](const int* idx) {
    std::vector<int> x((size_t)o.batch * max_length), y(o.batch);
    for (int b = 0; b < o.batch; b++) {
      std::copy(tr.ids[idx[b]].begin(), tr.ids[idx[b]].end(), x.begin() + (size_t)b * max_length);
      y[b] = tr.labels[idx[b]];
    }
    return m.forward_classify(x.data(), y.data(), o.batch, max_length);
  };
  run_epochs(m, o, tr.ids.size(), "texts", batch, [&](int ep, double loss) {
    std::printf("epoch %d: mean train loss %.4f\n", ep, loss);
    char tag[32];
    std::snprintf(tag, sizeof tag, "epoch %d:", ep);
    report(tag);
  });
  const int saved_eval = eval_batches;
  eval_batches = 0;  // final numbers on the full sets
  report("final:");
  eval_batches = saved_eval;
  ClassifierFile f;
  f.config = m.export_merged(&f.params, &f.head_w, &f.head_b);
  f.labels = label_names;
  f.max_length = max_length;
  save_classifier(o.out, f);
  std::printf("wrote %s\n", o.out.c_str());
  return 0;
}

// The flags of classify.
struct ClassifyCli {
  std::string model, text;
  int threads = 0;
};

void add_classify_options(CLI::App& app, ClassifyCli& a) {
  app.add_option("--model", a.model, "classifier file written by finetune-classify")->required();
  app.add_option("--text", a.text, "the text to classify")->required();
  app.add_option("--threads", a.threads, "OpenMP threads (0 = default)")->check(CLI::Range(0, kMaxThreads));
  add_allow_nonfinite_flag(app);
}

int run_classify(const ClassifyCli& a, const FinetuneProgram& p) {
  const std::string &model = a.model, &text = a.text;
  const int threads = a.threads;
  if (threads > 0) omp_set_num_threads(threads);
  ClassifierFile f = load_classifier(model);
  const Tokenizer tok = Tokenizer::from_default();
  std::vector<int> ids = tok.encode(text, SpecialMode::kAsText);
  if (ids.empty()) fail("--text is empty");
  // the book's classify_review: truncate to min(max_length, context), pad to max_length
  const int len = f.max_length > 0 ? f.max_length : std::min<int>(ids.size(), f.config.max_seq_len);
  ids = pad_to_length(ids, len);
  FinetuneSpec s;
  s.num_classes = (int)f.labels.size();
  s.train_from_layer = f.config.num_layers;
  s.train_final_ln = s.train_head = false;
  const std::unique_ptr<FinetuneBackend> m = p.make_backend(f.config, std::move(f.params), s);
  m->set_head(f.head_w.data(), f.head_b.data());
  m->forward_classify(ids.data(), nullptr, 1, len);
  std::printf("%s\n", f.labels[m->predict(0)].c_str());
  return 0;
}

// ---- instruction fine-tuning ---------------------------------------------------------------------------------

struct InstrSet {
  std::vector<std::vector<int>> ids;  // full training text
  std::vector<int> prompt_len;        // tokens of format_input + response header
};

InstrSet encode_instr(const Tokenizer& tok, const std::vector<InstructionEntry>& es) {
  InstrSet s;
  for (const auto& e : es) {
    s.ids.push_back(tok.encode(format_training_text(e), SpecialMode::kAsText));
    s.prompt_len.push_back((int)tok.encode(format_input(e) + kResponseHeader, SpecialMode::kAsText).size());
  }
  return s;
}

CollatedBatch batch_of(const InstrSet& s, const std::vector<int>& idx, int max_len, bool mask_prompt) {
  std::vector<std::vector<int>> items;
  std::vector<int> pl;
  for (int k : idx) items.push_back(s.ids[k]), pl.push_back(s.prompt_len[k]);
  return collate_instructions(items, 50256, -100, max_len, mask_prompt ? &pl : nullptr);
}

// Mean of batch means (the book's calc_loss_loader) and the token-weighted mean (for perplexity).
std::pair<double, double> eval_instr(FinetuneBackend& m, const InstrSet& s, int batch, int max_len, bool mask_prompt,
                                     int max_batches) {
  double sum_batch = 0, sum_tok = 0;
  long tokens = 0;
  int batches = 0;
  for (size_t i = 0; i < s.ids.size() && (max_batches <= 0 || batches < max_batches); i += batch, batches++) {
    std::vector<int> idx;
    for (size_t k = i; k < std::min(s.ids.size(), i + batch); k++) idx.push_back((int)k);
    const CollatedBatch b = batch_of(s, idx, max_len, mask_prompt);
    const float loss = m.forward_lm(b.inputs.data(), b.targets.data(), b.B, b.T);
    long valid = 0;
    for (int t : b.targets) valid += t != -100;
    sum_batch += loss;
    sum_tok += (double)loss * valid;
    tokens += valid;
  }
  return {sum_batch / std::max(1, batches), tokens ? sum_tok / tokens : 0.0};
}

std::string trim(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  return b == std::string::npos ? "" : s.substr(b, s.find_last_not_of(ws) - b + 1);
}

// The flags of finetune-instruct.
struct InstructCli {
  CommonOpts o;
  std::string data, responses;
  bool mask_prompt = false;
  int max_new = 256, max_test = 0, eval_batches = 0;
};

void add_finetune_instruct_options(CLI::App& app, InstructCli& a) {
  add_common(app, a.o, 2, "all");
  app.add_option("--data", a.data, "instruction JSON (array of {instruction, input, output})")->required();
  app.add_option("--responses", a.responses, "write the test split with model_response here (JSON)");
  app.add_flag("--mask-prompt", a.mask_prompt, "also ignore the prompt tokens in the loss (exercise 7.2)");
  app.add_option("--max-new-tokens", a.max_new, "generation limit per test entry")->capture_default_str();
  app.add_option("--max-test", a.max_test, "generate for the first N test entries only (0 = all)");
  app.add_option("--eval-batches", a.eval_batches, "val batches for the per-epoch loss (0 = all)");
}

int run_finetune_instruct(const InstructCli& a, const FinetuneProgram& p) {
  const CommonOpts& o = a.o;
  const std::string &data = a.data, &responses = a.responses;
  const bool mask_prompt = a.mask_prompt;
  const int max_new = a.max_new, max_test = a.max_test, eval_batches = a.eval_batches;
  if (o.threads > 0) omp_set_num_threads(o.threads);
  if (max_new < 0) fail("--max-new-tokens ", max_new, " must be >= 0");
  const InstructionSplit split = split_instructions(read_instruction_json(data));
  std::vector<float> w;
  const CheckpointInfo info = load_checkpoint(o.model, &w);
  const GPT2Config& c = info.config;
  if (c.vocab_size < 50257) fail(o.model, ": vocabulary ", c.vocab_size, " is smaller than GPT-2's 50257");
  if (o.max_length > c.max_seq_len) fail("--max-length ", o.max_length, " exceeds the model context ", c.max_seq_len);
  const int max_len = o.max_length > 0 ? o.max_length : std::min(1024, c.max_seq_len);
  const Tokenizer tok = Tokenizer::from_default();
  InstrSet tr = encode_instr(tok, split.train), va = encode_instr(tok, split.val), te = encode_instr(tok, split.test);
  if (o.max_train > 0 && (size_t)o.max_train < tr.ids.size()) { tr.ids.resize(o.max_train); tr.prompt_len.resize(o.max_train); }
  const std::unique_ptr<FinetuneBackend> model = p.make_backend(c, std::move(w), make_spec(o, c, 0));
  FinetuneBackend& m = *model;
  std::printf("instruct: %zu train / %zu val / %zu test entries, %zu trainable parameters\n", tr.ids.size(),
              va.ids.size(), te.ids.size(), m.num_trainable());
  auto batch = [&](const int* idx) {
    const CollatedBatch b = batch_of(tr, std::vector<int>(idx, idx + o.batch), max_len, mask_prompt);
    return m.forward_lm(b.inputs.data(), b.targets.data(), b.B, b.T);
  };
  run_epochs(m, o, tr.ids.size(), "entries", batch, [&](int ep, double loss) {
    const auto v = eval_instr(m, va, o.batch, max_len, mask_prompt, eval_batches);
    std::printf("epoch %d: train loss %.4f | val loss %.4f\n", ep, loss, v.first);
    std::fflush(stdout);
  });
  const auto v = eval_instr(m, va, o.batch, max_len, mask_prompt, 0);
  const auto ref = eval_instr(m, te, o.batch, max_len, /*mask_prompt=*/true, 0);  // response tokens (+ end-of-text)
  std::printf("val_loss %.6f\nref_response_perplexity %.6f\n", v.first, std::exp(ref.second));
  std::vector<float> merged, unused_w, unused_b;
  const GPT2Config merged_config = m.export_merged(&merged, &unused_w, &unused_b);
  save_checkpoint(o.out, merged_config, merged.data());
  std::printf("wrote %s\n", o.out.c_str());
  // greedy responses for the test split
  const size_t n_gen = max_test > 0 ? std::min<size_t>(max_test, split.test.size()) : split.test.size();
  const std::unique_ptr<LogitsModel> generator = p.make_generator(merged_config, std::move(merged));
  LogitsModel& gen = *generator;
  std::vector<InstructionEntry> done;
  std::vector<std::string> outs;
  double rouge = 0;
  int exact = 0;
  for (size_t k = 0; k < n_gen; k++) {
    const auto& e = split.test[k];
    std::vector<int> ids = tok.encode(format_input(e), SpecialMode::kAsText);
    if ((int)ids.size() >= c.max_seq_len) ids.erase(ids.begin(), ids.end() - (c.max_seq_len - 1));
    std::vector<int> out;
    const float* logits = gen.prefill(ids.data(), (int)ids.size());
    for (int i = 0; i < max_new; i++) {
      const int next = argmax(logits, c.vocab_size);
      if (next == 50256) break;
      out.push_back(next);
      if ((int)(ids.size() + out.size()) >= c.max_seq_len) break;  // context full
      logits = gen.step(next);
    }
    // the book: decode, drop the prompt, delete "### Response:", strip
    std::string resp = tok.decode(out);
    for (size_t p; (p = resp.find("### Response:")) != std::string::npos;) resp.erase(p, 13);
    resp = trim(resp);
    rouge += rouge_l_f1(resp, e.output);
    exact += exact_match(resp, e.output);
    done.push_back(e);
    outs.push_back(resp);
  }
  if (n_gen > 0)
    std::printf("test responses %zu: exact_match %.4f rouge_l_f1 %.4f\n", n_gen, (double)exact / n_gen, rouge / n_gen);
  if (!responses.empty()) {
    write_instruction_responses(responses, done, outs);
    std::printf("wrote %s\n", responses.c_str());
  }
  return 0;
}

}  // namespace

void add_finetune_commands(Program& program, const FinetuneProgram& p) {
  auto cls = std::make_shared<ClassifyTrainCli>();
  CLI::App& fc = program.add("finetune-classify", "the book's chapter 6: fine-tune a classifier on labelled CSV/TSV "
                             "texts (last block + LN + head, more blocks, or LoRA)",
                             [cls, p] { return run_finetune_classify(*cls, p); });
  add_finetune_classify_options(fc, *cls);
  auto one = std::make_shared<ClassifyCli>();
  CLI::App& c = program.add("classify", "print the label a fine-tuned classifier gives a text",
                            [one, p] { return run_classify(*one, p); });
  add_classify_options(c, *one);
  auto ins = std::make_shared<InstructCli>();
  CLI::App& fi = program.add("finetune-instruct", "the book's chapter 7: instruction fine-tuning on Alpaca-style "
                             "JSON, then greedy responses for the test split",
                             [ins, p] { return run_finetune_instruct(*ins, p); });
  add_finetune_instruct_options(fi, *ins);
  if (p.extra_options)
    for (CLI::App* app : {&fc, &c, &fi}) p.extra_options(*app);
}

}  // namespace llm
