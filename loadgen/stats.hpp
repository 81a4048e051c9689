// What one worker thread measures; merged across threads after the run.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "histogram.hpp"

namespace cmbench::loadgen {

// Error kinds of docs/architecture.md §4, in JSON order. Each failed request counts exactly once.
enum class Err : std::uint8_t { connect, read, write, timeout, status, parse };
constexpr std::size_t kErrKinds = 6;
constexpr std::array<std::string_view, kErrKinds> kErrNames = {"connect", "read", "write",
                                                               "timeout", "status", "parse"};

// Histograms hold microseconds from 0 to one hour; longer values are clamped to an hour so that
// counts stay exact (1 us .. 100 s is required; an hour leaves room for stalled runs).
constexpr std::int64_t kMaxRecordableUs = 3'600'000'000;

struct Second {
  std::uint64_t requests = 0;
  std::uint64_t errors = 0;
};

struct Stats {
  explicit Stats(std::size_t seconds = 1)
      : latency(1, kMaxRecordableUs, 3), service(1, kMaxRecordableUs, 3), lag(1, kMaxRecordableUs, 3),
        wait(1, kMaxRecordableUs, 3), timeline(seconds) {}

  // Records nanoseconds into a microsecond histogram, clamped into its range.
  static void record_ns(Histogram& h, std::int64_t ns) noexcept {
    std::int64_t us = ns / 1000;
    if (us < 0) us = 0;
    if (us > kMaxRecordableUs) us = kMaxRecordableUs;
    h.record(us);
  }

  void merge(const Stats& o) {
    latency.merge(o.latency);
    service.merge(o.service);
    lag.merge(o.lag);
    wait.merge(o.wait);
    requests += o.requests;
    bytes += o.bytes;
    incomplete += o.incomplete;
    sent += o.sent;
    for (std::size_t i = 0; i < kErrKinds; ++i) errors[i] += o.errors[i];
    if (timeline.size() < o.timeline.size()) timeline.resize(o.timeline.size());
    for (std::size_t i = 0; i < o.timeline.size(); ++i) {
      timeline[i].requests += o.timeline[i].requests;
      timeline[i].errors += o.timeline[i].errors;
    }
  }

  std::uint64_t error_total() const noexcept {
    std::uint64_t n = 0;
    for (auto e : errors) n += e;
    return n;
  }

  Histogram latency;   // from the intended send time (open loop) or the actual send (closed loop)
  Histogram service;   // open loop: from the actual send
  // Open loop, one value each per request written, so that latency = wait + lag + service:
  //   wait: from the intended time to when its connection was free (ready) -- the server had not
  //         yet answered the request before it on that connection, or the connection was being
  //         (re)opened. The server's share: a knee, not a generator fault.
  //   lag:  from ready to the actual send -- the generator's own lateness (timer wake-up, CPU).
  Histogram lag;
  Histogram wait;
  std::uint64_t requests = 0;    // successful (2xx) responses to requests of the measured window
  std::uint64_t bytes = 0;       // bytes read during the measured window
  std::uint64_t incomplete = 0;  // requests of the window without an outcome when it ended
  std::uint64_t sent = 0;        // requests of the window actually written
  std::array<std::uint64_t, kErrKinds> errors{};
  std::vector<Second> timeline;  // per second of the window, by completion time
};

}  // namespace cmbench::loadgen
