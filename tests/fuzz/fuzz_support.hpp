// What both fuzz targets (fuzz_parser.cpp, fuzz_response.cpp) share: how a broken invariant is
// reported, and the PRNG that picks split points from the input itself, so that a corpus file
// stays plain HTTP and a crash reproduces from the file alone.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace cmbench::fuzz {

// Prints what broke and aborts, which libFuzzer reports as a crash. `target` names the fuzzer.
[[noreturn]] inline void fail(const char* target, const char* what, std::size_t a = 0, std::size_t b = 0) {
  std::fprintf(stderr, "%s invariant violated: %s (%zu, %zu)\n", target, what, a, b);
  std::abort();
}

// xorshift64*, seeded from an FNV-1a hash of the input.
class Rng {
 public:
  explicit Rng(std::string_view data) {
    std::uint64_t h = 1469598103934665603ULL;
    for (unsigned char c : data) h = (h ^ c) * 1099511628211ULL;
    state_ = h | 1;
  }
  std::uint64_t next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 2685821657736338717ULL;
  }
  // A piece (write or read) size skewed towards small values: 1..4 often, up to 64 or `max`
  // sometimes.
  std::size_t piece(std::size_t max) {
    const auto r = next();
    const std::size_t cap = (r & 3) == 0 ? max : (r & 3) == 1 ? 64 : 4;
    return 1 + static_cast<std::size_t>((r >> 8) % std::max<std::size_t>(cap, 1));
  }

 private:
  std::uint64_t state_;
};

}  // namespace cmbench::fuzz
