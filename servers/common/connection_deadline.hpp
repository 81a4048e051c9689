// The deadlines of docs/architecture.md §3, derived from a session's phase, for every model to share.
//
// A connection is under at most one deadline at a time, and which one follows from what its
// session is doing (HttpSession::phase()): quiet (Idle: new, or keep-alive after a response)
// for --idle-timeout, then closed silently; in the middle of a head (Head) for --header-timeout
// from the request's first byte, then answered 408 and closed; otherwise (Busy) none. After a
// final response, lingering close lasts kLingerTime from its start, however the peer trickles.
//
// A model calls update() after every change to the session (bytes fed, output written,
// process()) and acts when now >= at(): expire() says how. Call it after feeding bytes too,
// not only once the output is written: update() restarts a deadline only when the phase
// changes, so a request read and answered within one callback (Idle, Busy, Idle) must be seen
// as Busy in between, or a busy keep-alive connection keeps its first idle deadline. Every deadline of one kind has the
// same duration, so deadlines are set in the order of time: an event loop can keep them in one
// FIFO queue per kind (checking each entry is still current when it comes due) instead of a
// timer system call per connection.
#pragma once

#include <chrono>

#include "http_session.hpp"

namespace cmbench {

using Clock = std::chrono::steady_clock;

inline constexpr auto kLingerTime = std::chrono::seconds(1);  // lingering close lasts at most this

struct Timeouts {
  Clock::duration idle = std::chrono::seconds(75);    // --idle-timeout
  Clock::duration header = std::chrono::seconds(60);  // --header-timeout
};

enum class Expiry {
  Close,    // the idle deadline passed: close without a word
  Respond,  // the header deadline passed: HttpSession::reject(408) was queued; write it, finish
};

class ConnectionDeadline {
 public:
  // Derives the deadline from the session; true when it changed (a new deadline to queue).
  bool update(const http::HttpSession& session, const Timeouts& timeouts, Clock::time_point now) {
    return update(session.phase(), timeouts, now);
  }
  // The same from a phase the model works out itself (libevent: output still queued in its own
  // buffer counts as Busy even when the session has handed every byte over).
  bool update(http::Phase phase, const Timeouts& timeouts, Clock::time_point now) {
    if (phase == phase_ && at_ != Clock::time_point{}) return false;
    phase_ = phase;
    switch (phase) {
      case http::Phase::Idle: at_ = now + timeouts.idle; break;
      case http::Phase::Head: at_ = now + timeouts.header; break;
      case http::Phase::Busy: at_ = Clock::time_point::max(); break;
    }
    return true;
  }

  // When the current deadline ends (time_point::max() when there is none).
  Clock::time_point at() const noexcept { return at_; }
  http::Phase phase() const noexcept { return phase_; }
  bool due(Clock::time_point now) const noexcept { return now >= at_; }

  // The deadline passed: says what to do, queuing the 408 on the session when it applies.
  Expiry expire(http::HttpSession& session) {
    at_ = Clock::time_point::max();
    if (phase_ == http::Phase::Head) {
      session.reject(408);
      phase_ = http::Phase::Busy;
      return Expiry::Respond;
    }
    return Expiry::Close;
  }

 private:
  http::Phase phase_ = http::Phase::Idle;
  Clock::time_point at_{};  // epoch until the first update()
};

}  // namespace cmbench
