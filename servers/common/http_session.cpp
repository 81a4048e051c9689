#include "http_session.hpp"

#include <algorithm>

namespace cmbench::http {

void HttpSession::on_bytes(std::string_view data) {
  if (closing_ || data.empty()) return;  // after a final response, input is only drained
  if (pending_.empty()) {
    // Fast path: parse straight from the caller's buffer and keep only the leftover bytes.
    const std::size_t used = parse_turn(data);
    if (!closing_ && used < data.size()) pending_.assign(data.substr(used));
    return;
  }
  pending_.append(data);
  if (!backlog_) parse_pending();  // with a backlog, process() is due first: order is kept
}

void HttpSession::process() {
  if (backlog_ && !paused()) parse_pending();
}

std::size_t HttpSession::parse_turn(std::string_view input) {
  std::size_t used = 0;
  backlog_ = false;
  const auto start = std::chrono::steady_clock::now();
  for (int turn = 0; used < input.size(); ++turn) {
    const bool spent =
        turn > 0 && (turn == kRequestsPerTurn ||
                     std::chrono::steady_clock::now() - start >= kTurnBudget);
    if (paused() || spent) {
      backlog_ = !closing_;  // more may be complete: the next turn (or drained output) decides
      break;
    }
    auto result = parser_.parse(input.substr(used));
    if (result.status == ParseStatus::NeedMore) break;
    if (result.status == ParseStatus::Error) {
      enqueue(respond_error(result.error_status));
      break;
    }
    if (defer_ && defer_(result.request)) {
      deferred_ = std::make_unique<DeferredRequest>(result.request);
      waiting_ = true;  // paused() from here: the next iteration stops this turn
    } else {
      enqueue(respond(result.request));
    }
    parser_.reset();
    used += result.consumed;
  }
  return used;
}

void HttpSession::parse_pending() {
  const std::size_t used = parse_turn(pending_);
  if (closing_ || used == pending_.size()) {
    std::string().swap(pending_);  // give the memory back: idle connections hold nothing
  } else if (used > 0) {
    pending_.erase(0, used);
  }
}

void HttpSession::enqueue(Response r) {
  ++requests_;
  closing_ = closing_ || r.close_after;
  out_bytes_ += r.size();
  out_.push_back(std::move(r));
}

void HttpSession::resume(Response response) {
  if (!waiting_) return;
  waiting_ = false;
  deferred_.reset();
  enqueue(std::move(response));
  backlog_ = !closing_ && !pending_.empty();  // the requests behind it get the next turn
}

void HttpSession::reject(int status) {
  if (closing_) return;
  enqueue(respond_error(status));
  std::string().swap(pending_);
  backlog_ = false;
}

int HttpSession::gather(iovec* iov, int max) const {
  int n = 0;
  std::size_t skip = out_offset_;
  const auto block = filler_block();
  const auto add = [&](const char* p, std::size_t len) {
    if (len <= skip) {
      skip -= len;
      return;
    }
    iov[n].iov_base = const_cast<char*>(p + skip);
    iov[n].iov_len = len - skip;
    skip = 0;
    ++n;
  };
  for (std::size_t i = out_index_; i < out_.size() && n < max; ++i) {
    const Response& r = out_[i];
    add(r.head.data(), r.head.size());
    if (n < max) add(r.body.data(), r.body.size());
    // The filler is served by pointing repeatedly at one shared block of 'x'.
    for (std::size_t left = r.filler; left > 0 && n < max;) {
      const std::size_t len = std::min(left, block.size());
      add(block.data(), len);
      left -= len;
    }
  }
  return n;
}

void HttpSession::on_written(std::size_t n) {
  out_bytes_ -= n;
  out_offset_ += n;
  while (out_index_ < out_.size() && out_offset_ >= out_[out_index_].size()) {
    out_offset_ -= out_[out_index_].size();
    ++out_index_;
  }
  if (out_index_ == out_.size()) {
    std::vector<Response>().swap(out_);  // idle connections hold no response memory
    out_index_ = 0;
    out_offset_ = 0;
  }
}

Want HttpSession::next() const noexcept {
  if (has_output()) return Want::Write;
  if (closing_) return Want::Finish;
  return backlog_ ? Want::Process : Want::Read;
}

Phase HttpSession::phase() const noexcept {
  if (has_output() || closing_ || backlog_ || waiting_) return Phase::Busy;
  if (pending_.empty()) return Phase::Idle;
  return parser_.head_complete() ? Phase::Busy : Phase::Head;
}

}  // namespace cmbench::http
