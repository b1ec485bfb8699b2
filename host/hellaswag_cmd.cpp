#include "host/hellaswag_cmd.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <new>

#include "host/cli.h"  // check_threads
#include "host/error.h"
#include "host/program.h"
#include "host/tokenizer.h"
#include "host/weights_check.h"

namespace llm {

void add_hellaswag_options(CLI::App& app, HellaSwagOptions& o) {
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--model", o.model, "model: llm.c .bin, model.safetensors or a HF directory")->required();
  app.add_option("--data", o.data, "HellaSwag JSONL (hellaswag_val.jsonl from github.com/rowanz/hellaswag, data/)")
      ->required();
  app.add_option("-b,--batch-items", o.batch_items, "items per forward (4 rows each)")->capture_default_str();
  app.add_option("--max-items", o.max_items, "evaluate the first N items; -1 = all")->capture_default_str();
  app.add_option("--threads", o.threads, "OpenMP threads; 0 = OpenMP default")->capture_default_str();
  app.add_flag("--print-items", o.print_items, "print each item's ending losses and predictions before the summary");
  add_allow_nonfinite_flag(app);
}

int run_hellaswag(const HellaSwagOptions& o, const MakeTokenLossModel& make_model) {
  if (o.batch_items < 1 || o.batch_items > 4096) fail("-b/--batch-items must be in 1..4096 (got ", o.batch_items, ")");
  if (o.max_items != -1 && o.max_items < 1) fail("--max-items must be -1 or positive (got ", o.max_items, ")");
  check_threads(o.threads);
  if (o.threads > 0) omp_set_num_threads(o.threads);
  const GPT2Config cfg = read_model_config(o.model);  // a bad model is reported before the data is tokenized
  const Tokenizer tok = Tokenizer::from_default();
  std::vector<HellaSwagItem> items = load_hellaswag(o.data, tok, o.max_items);
  fit_hellaswag(&items, cfg.max_seq_len, cfg.vocab_size, o.data);
  const int T = hellaswag_positions(items);
  const int B = kHellaSwagEndings * std::min<int>(o.batch_items, static_cast<int>(items.size()));
  const LoadedModel m = load_model(o.model);
  std::unique_ptr<TokenLossModel> model = make_model(m, B, T);
  const HellaSwagResult r = evaluate_hellaswag(*model, items, B, T, true);
  for (size_t i = 0; i < r.items.size(); i++) {
    const HellaSwagScore& s = r.items[i];
    for (int j = 0; j < kHellaSwagEndings; j++)
      if (!std::isfinite(s.sum[j]))  // never an accuracy from NaN losses with exit 0
        fail(o.model, ": item ", i, " ending ", j, " has a non-finite loss (the forward pass overflows: damaged "
             "weights?)");
    if (o.print_items) std::printf("%s\n", hellaswag_item_line(static_cast<int>(i), items[i].label, s).c_str());
  }
  std::fprintf(stderr, "hellaswag: %.1f items/s (%zu items, B %d rows x T %d)\n",
               r.seconds > 0 ? r.items.size() / r.seconds : 0.0, r.items.size(), B, T);
  std::printf("%s\n", hellaswag_summary(r).c_str());
  return 0;
}

CLI::App& add_hellaswag_command(Program& p, const MakeTokenLossModel& make_model) {
  auto o = std::make_shared<HellaSwagOptions>();
  CLI::App& cmd = p.add("hellaswag", "HellaSwag accuracy of a model (acc: lowest summed ending loss; acc_norm: "
                        "lowest mean, llm.c's number); last line 'hellaswag: items N | acc A | acc_norm B'",
                        [o, make_model] { return run_hellaswag(*o, make_model); });
  add_hellaswag_options(cmd, *o);
  return cmd;
}

}  // namespace llm
