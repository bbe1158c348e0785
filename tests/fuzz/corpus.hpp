// The fuzz targets' files as the regression tests read them: the seed corpora and the saved
// crash inputs under tests/fuzz/ (TERN_SOURCE_ROOT, which the test environment sets).
#pragma once
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

namespace tern::fuzz {

inline std::filesystem::path fuzz_dir() {
  const char* root = std::getenv("TERN_SOURCE_ROOT");
  return std::filesystem::path(root ? root : ".") / "tests" / "fuzz";
}

/// The regular files of `dir` (none when it does not exist), hidden ones left out, sorted.
inline std::vector<std::filesystem::path> files_in(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> out;
  if (std::filesystem::is_directory(dir))
    for (const auto& e : std::filesystem::directory_iterator(dir))
      if (e.is_regular_file() && e.path().filename().string()[0] != '.') out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

/// A file's bytes, as a std::string or a std::vector<std::uint8_t>.
template <class Bytes>
Bytes slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace tern::fuzz
