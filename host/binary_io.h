// binary_io.h — checked binary file access shared by every file format in host/.
//
// Why: every reader must bounds-check and name the file in its error, and every writer must never leave a
// half-written file behind. InFile throws llm::Error ("<path>: ...") on any short read; AtomicFile writes to
// "<path>.tmp" and renames over <path> only in commit(), removing the temporary if it is destroyed uncommitted.
// All formats are little-endian; this code assumes a little-endian host (x86-64, aarch64).
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>

namespace llm {

class InFile {
 public:
  explicit InFile(const std::string& path);  // fails with "<path>: cannot open (...)"
  ~InFile();
  InFile(const InFile&) = delete;
  InFile& operator=(const InFile&) = delete;
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  void seek(uint64_t offset);                            // fails past the end
  void read(void* dst, uint64_t bytes, const char* what);  // fails "<path>: truncated while reading <what>"
 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  uint64_t size_ = 0;
};

class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);  // opens "<path>.tmp" for writing
  ~AtomicFile();                                 // removes the temporary unless commit() succeeded
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  void write(const void* src, uint64_t bytes);
  void commit();  // flush, fsync, close, rename to the final path, fsync the directory
 private:
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
  bool committed_ = false;
};

bool file_exists(const std::string& path);

// fsync of the directory holding path (makes a rename / new entry durable).
void sync_parent_dir(const std::string& path);

}  // namespace llm
