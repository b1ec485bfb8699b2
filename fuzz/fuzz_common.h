// fuzz_common.h — helpers shared by the file-parser libFuzzer targets.
//
// MemFile: the loaders take a path, so each input is written to a memfd (memfd_create; no disk I/O, one per
// process, so parallel fuzzers never share a file) and the loader opens "/proc/self/fd/N" like any file.
// patch_crc: our model and state files carry a CRC-32C of the whole file (computed with the CRC slot zeroed);
// a mutated input almost never has a matching CRC, so the targets can recompute it (chosen by a mode bit) to
// fuzz the parser past the checksum too.
// write_seed: the targets write their own valid seed files (FUZZ_WRITE_SEEDS=<dir>, see scripts/run_fuzz.sh)
// with the project's writers, CRCs included.
#pragma once
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "host/crc32c.h"

namespace fuzz {

class MemFile {
 public:
  MemFile() {
    fd_ = memfd_create("fuzz-input", 0);
    if (fd_ < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemFile() { close(fd_); }
  // Replaces the contents with data[0..n).
  void set(const void* data, size_t n) {
    if (ftruncate(fd_, 0) != 0) std::abort();
    const char* p = static_cast<const char*>(data);
    for (size_t done = 0; done < n;) {
      ssize_t w = pwrite(fd_, p + done, n - done, static_cast<off_t>(done));
      if (w <= 0) std::abort();
      done += static_cast<size_t>(w);
    }
  }
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

inline int32_t slot(const std::string& f, int i) {
  int32_t v;
  std::memcpy(&v, f.data() + 4 * i, 4);
  return v;
}

// When the file has a 1024-byte header and slot flag_slot == 1: stores the CRC-32C of the whole file (with
// slot crc_slot zeroed) into slot crc_slot, as our writers do.
inline void patch_crc(std::string* f, int flag_slot, int crc_slot) {
  if (f->size() < 1024 || slot(*f, flag_slot) != 1) return;
  std::memset(&(*f)[4 * crc_slot], 0, 4);
  const uint32_t crc = llm::crc32c(f->data(), f->size());
  std::memcpy(&(*f)[4 * crc_slot], &crc, 4);
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Writes <dir>/<name> = mode byte + body.
inline void write_seed(const char* dir, const std::string& name, uint8_t mode, const std::string& body) {
  std::ofstream out(std::string(dir) + "/" + name, std::ios::binary);
  out.put(static_cast<char>(mode));
  out << body;
}

// The bytes the project's writer `write(path)` puts in a file (seed generation only: a per-process scratch file,
// removed afterwards).
template <class Write>
std::string written_bytes(const char* tag, Write write) {
  const std::string tmp = "/tmp/fuzz_seed_" + std::to_string(getpid()) + "_" + tag;
  write(tmp);
  std::string body = slurp(tmp);
  std::remove(tmp.c_str());
  return body;
}

}  // namespace fuzz

// LLVMFuzzerInitialize for a target whose seeds come from write_seeds(dir): with FUZZ_WRITE_SEEDS=<dir> the binary
// writes them and exits (scripts/run_fuzz.sh), otherwise it fuzzes.
#define FUZZ_SEEDS_FROM_ENV(write_seeds)                           \
  extern "C" int LLVMFuzzerInitialize(int*, char***) {             \
    if (const char* dir = std::getenv("FUZZ_WRITE_SEEDS")) {       \
      write_seeds(dir);                                            \
      std::exit(0);                                                \
    }                                                              \
    return 0;                                                      \
  }
