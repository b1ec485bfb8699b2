// finetune_main.h — the fine-tuning subcommands of gpt2_cpu (argv[0] is the subcommand name):
//   finetune-classify  the book's chapter 6 (spam classifier) on labelled CSV/TSV files
//   classify           print the predicted label of a text with a saved classifier
//   finetune-instruct  the book's chapter 7 (Alpaca-style instruction following) on instruction JSON
// Each returns the process exit code; bad input prints "error: ..." and returns 2. See --help of each.
#pragma once

namespace llm {

int finetune_classify_main(int argc, char** argv);
int classify_main(int argc, char** argv);
int finetune_instruct_main(int argc, char** argv);

}  // namespace llm
