#include "host/binary_io.h"

#include <cerrno>
#include <cstring>
#include <sys/stat.h>

#include "host/error.h"

namespace llm {

InFile::InFile(const std::string& path) : path_(path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) fail(path, ": cannot open (", std::strerror(errno), ")");
  if (S_ISDIR(st.st_mode)) fail(path, ": is a directory, expected a file");
  f_ = std::fopen(path.c_str(), "rb");
  if (!f_) fail(path, ": cannot open (", std::strerror(errno), ")");
  size_ = static_cast<uint64_t>(st.st_size);
}

InFile::~InFile() {
  if (f_) std::fclose(f_);
}

void InFile::seek(uint64_t offset) {
  if (offset > size_) fail(path_, ": seek to byte ", offset, " past the end of the file (", size_, " bytes)");
  if (fseeko(f_, static_cast<off_t>(offset), SEEK_SET) != 0) fail(path_, ": seek failed (", std::strerror(errno), ")");
}

void InFile::read(void* dst, uint64_t bytes, const char* what) {
  if (bytes == 0) return;
  size_t got = std::fread(dst, 1, bytes, f_);
  if (got != bytes) fail(path_, ": truncated while reading ", what, " (wanted ", bytes, " bytes, got ", got, ")");
}

AtomicFile::AtomicFile(const std::string& path) : path_(path), tmp_(path + ".tmp") {
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_) fail(tmp_, ": cannot create (", std::strerror(errno), ")");
}

AtomicFile::~AtomicFile() {
  if (f_) std::fclose(f_);
  if (!committed_) std::remove(tmp_.c_str());
}

void AtomicFile::write(const void* src, uint64_t bytes) {
  if (bytes == 0) return;
  if (std::fwrite(src, 1, bytes, f_) != bytes) fail(tmp_, ": write failed (", std::strerror(errno), ")");
}

void AtomicFile::commit() {
  int rc = std::fflush(f_);
  int rc2 = std::fclose(f_);
  f_ = nullptr;
  if (rc != 0 || rc2 != 0) fail(tmp_, ": write failed (", std::strerror(errno), ")");
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
    fail(path_, ": cannot rename ", tmp_, " into place (", std::strerror(errno), ")");
  committed_ = true;
}

bool file_exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

}  // namespace llm
