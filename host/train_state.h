// train_state.h — our training-state file (state_########.bin), everything besides the weights that an exact
// resume needs: the step, the AdamW moments, the RNG seed, the data loader position and a fingerprint of
// the run's settings.
//
// Why: resumed training must equal uninterrupted training bit for bit. Weights go to the llm.c checkpoint;
// this file holds the rest. Dropout masks are a pure function of (seed, step, micro-step) (host/philox.h),
// sampling re-seeds at every sampling event and the LR is recomputed from the step, so the seed, the step and
// the loader position are the whole RNG/data state.
//
// Layout (little-endian): 256 int32 header slots, then the fingerprint bytes, the settings bytes (version 2),
// AdamW m, AdamW v (fp32).
//   slot 0 magic 20261128 | 1 version 1 or 2 | 2-3 step | 4-5 seed | 6-7 num_parameters | 8-9 loader epoch
//   10-11 loader shard | 12-13 loader window | 14 fingerprint length in bytes
//   15 settings length in bytes (version 2; host/cli.h resume_settings_text)
//   16 = 1: slot 17 holds the CRC-32C of the file (header with slot 17 = 0, then everything after it), checked on
//   load (version 2; 0 = none) | all other slots 0
// 64-bit values take two slots, low word first. File size must be 1024 + fingerprint + settings +
// 8·num_parameters. Version 1 files (no settings) still load.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "host/data_loader.h"

namespace llm {

constexpr int kTrainStateMagic = 20261128;
constexpr int kTrainStateVersion = 2;  // written; 1 and 2 are read

struct TrainState {
  int64_t step = 0;            // optimizer steps completed
  uint64_t seed = 0;           // run seed (dropout masks, sampling)
  LoaderPosition loader;       // next train batch
  std::string fingerprint;     // canonical text of the settings a resume must share (model, batch, optimizer)
  std::string settings;        // the run's flags a resume inherits when not given again ("" in version 1 files)
  std::vector<float> m, v;     // AdamW first/second moments, num_parameters each
};

// Atomic write ("<path>.tmp" + rename).
void save_train_state(const std::string& path, const TrainState& s);

// Reads and validates; num_parameters is what the model in hand expects (checked against the file).
TrainState load_train_state(const std::string& path, size_t num_parameters);

// Only the settings text (header + settings bytes; no optimizer state is read). "" for version 1 files.
std::string read_train_state_settings(const std::string& path);

}  // namespace llm
