#include "host/binary_io.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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
  // durable before visible: the data reaches the disk (fsync) before the rename, and the rename itself (the
  // directory entry) before commit returns, so a later marker file (DONE_*) never outlives what it marks
  int rc = std::fflush(f_);
  if (rc == 0) rc = ::fsync(fileno(f_));
  const int err = errno;
  int rc2 = std::fclose(f_);
  f_ = nullptr;
  if (rc != 0 || rc2 != 0) fail(tmp_, ": write failed (", std::strerror(rc != 0 ? err : errno), ")");
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
    fail(path_, ": cannot rename ", tmp_, " into place (", std::strerror(errno), ")");
  committed_ = true;
  sync_parent_dir(path_);
}

void sync_parent_dir(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail(dir, ": cannot open the directory to sync it (", std::strerror(errno), ")");
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL && err != EROFS)  // (some filesystems cannot sync a directory)
    fail(dir, ": cannot sync the directory (", std::strerror(err), ")");
}

bool file_exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

}  // namespace llm
