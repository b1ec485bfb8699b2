// The layers only point down: host/ (formats, data, tokenizer, CLI, schedules, training and fine-tuning drivers)
// <- cpu/ and gpu/ (the backends) <- the programs. Read from the sources: no file under host/ includes cpu/ or
// gpu/, and no file under gpu/ includes cpu/ (the CPU reference is used by the tests only).
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

// "<file>:<line>: <text>" for every #include line of the C++/CUDA files under root/dir that names a header under
// one of `banned` ("cpu/", "gpu/"). Also returns the number of files read through *files_read.
std::vector<std::string> includes_of(const fs::path& root, const std::string& dir,
                                     const std::vector<std::string>& banned, int* files_read) {
  std::vector<std::string> found;
  *files_read = 0;
  for (const auto& entry : fs::recursive_directory_iterator(root / dir)) {
    if (!entry.is_regular_file()) continue;
    const std::string ext = entry.path().extension().string();
    if (ext != ".h" && ext != ".cpp" && ext != ".cuh" && ext != ".cu") continue;
    std::ifstream in(entry.path());
    ++*files_read;
    int n = 0;
    for (std::string line; std::getline(in, line);) {
      n++;
      const size_t hash = line.find_first_not_of(" \t");
      if (hash == std::string::npos || line.compare(hash, 1, "#") != 0) continue;
      const size_t inc = line.find("include", hash);
      if (inc == std::string::npos) continue;
      const size_t open = line.find_first_of("\"<", inc);
      if (open == std::string::npos) continue;
      for (const std::string& b : banned)
        if (line.compare(open + 1, b.size(), b) == 0)
          found.push_back(fs::relative(entry.path(), root).string() + ":" + std::to_string(n) + ": " + line);
    }
  }
  return found;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

}  // namespace

TEST(Layers, HostIncludesNeitherCpuNorGpu) {
  int files = 0;
  const auto found = includes_of(LLM_SOURCE_DIR, "host", {"cpu/", "gpu/"}, &files);
  EXPECT_GT(files, 20);  // the directory was found and read
  EXPECT_TRUE(found.empty()) << "host/ must not depend on the backends:\n" << joined(found);
}

TEST(Layers, GpuDoesNotIncludeCpu) {
  int files = 0;
  const auto found = includes_of(LLM_SOURCE_DIR, "gpu", {"cpu/"}, &files);
  EXPECT_GT(files, 3);
  EXPECT_TRUE(found.empty()) << "gpu/ must not depend on the CPU reference (tests may):\n" << joined(found);
}

// The scanner itself: it finds an include of a banned directory in either spelling and indented, in a nested
// folder too, and nothing else (other directories, comments, a name that merely ends in "cpu/").
TEST(Layers, ScannerFindsBannedIncludes) {
  const fs::path root = fs::temp_directory_path() / ("llm_layers_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "host" / "sub");
  std::ofstream(root / "host" / "a.h") << "#include \"cpu/x.h\"\n#include \"host/y.h\"\n"
                                          "// #include \"gpu/z.cuh\"\n#include \"mycpu/w.h\"\n";
  std::ofstream(root / "host" / "sub" / "b.cpp") << "int x;\n  #  include <gpu/k.cuh>\n";
  std::ofstream(root / "host" / "notes.txt") << "#include \"cpu/ignored.h\"\n";
  int files = 0;
  const auto found = includes_of(root, "host", {"cpu/", "gpu/"}, &files);
  EXPECT_EQ(files, 2);
  ASSERT_EQ(found.size(), 2u) << joined(found);
  const std::string all = joined(found);
  EXPECT_NE(all.find("host/a.h:1: #include \"cpu/x.h\""), std::string::npos) << all;
  EXPECT_NE(all.find("host/sub/b.cpp:2:   #  include <gpu/k.cuh>"), std::string::npos) << all;
  fs::remove_all(root);
}
