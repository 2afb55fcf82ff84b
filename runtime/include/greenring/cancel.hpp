// greenring/cancel.hpp: cancellation and deadlines.
#pragma once

#include <chrono>
#include <exception>

namespace greenring {

using clock = std::chrono::steady_clock;
using deadline = clock::time_point;
inline constexpr deadline no_deadline = deadline::max();

inline deadline after(clock::duration d) noexcept {
  auto now = clock::now();
  return d >= no_deadline - now ? no_deadline : now + d;
}

// Thrown from a cancellable suspension of a green thread whose cancellation was
// requested (join_handle::cancel). Delivered once: the request is consumed by
// the throw, so cleanup code that suspends during unwinding is not re-cancelled.
class cancelled : public std::exception {
 public:
  const char* what() const noexcept override { return "greenring: green thread cancelled"; }
};

// Thrown by operations that waited past their deadline and have no errno
// channel (join, sleep-free primitives report it via their return value instead).
class timed_out : public std::exception {
 public:
  const char* what() const noexcept override { return "greenring: deadline passed"; }
};

namespace this_fiber {

// While one of these lives, cancellation requests are held back; they are
// delivered at the first cancellable suspension after the last guard dies.
class cancellation_guard {
 public:
  cancellation_guard() noexcept;
  ~cancellation_guard();
  cancellation_guard(const cancellation_guard&) = delete;
  cancellation_guard& operator=(const cancellation_guard&) = delete;
};

// True when cancellation of the calling green thread has been requested and not yet delivered.
bool cancellation_requested() noexcept;

// Throws greenring::cancelled if cancellation is pending (and not guarded).
void check_cancelled();

}  // namespace this_fiber
}  // namespace greenring
