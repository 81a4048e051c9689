// Replays fuzzer inputs through LLVMFuzzerTestOneInput in an ordinary build (no libFuzzer), so
// the committed corpus is a regression test in every `make test`. Arguments are files or
// directories; `--min-files N` fails the run if fewer inputs were found (an empty corpus must
// not pass silently).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

bool replay_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "replay: cannot read %s\n", path.c_str());
    return false;
  }
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Named first, so an input that trips an invariant (abort) is identified in the test log.
  std::fprintf(stderr, "replay: %s (%zu bytes)\n", path.c_str(), bytes.size());
  LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t min_files = 1;
  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--min-files" && i + 1 < argc) {
      min_files = std::stoul(argv[++i]);
      continue;
    }
    std::error_code ec;
    if (std::filesystem::is_directory(arg, ec)) {
      for (const auto& entry : std::filesystem::directory_iterator(arg, ec)) {
        if (entry.is_regular_file()) files.push_back(entry.path());
      }
    } else {
      files.emplace_back(arg);
    }
  }
  std::sort(files.begin(), files.end());
  std::size_t ok = 0;
  for (const auto& f : files) ok += replay_file(f) ? 1 : 0;
  std::printf("replayed %zu of %zu inputs\n", ok, files.size());
  if (ok != files.size() || ok < min_files) {
    std::fprintf(stderr, "replay: expected at least %zu readable inputs\n", min_files);
    return 1;
  }
  return 0;
}
