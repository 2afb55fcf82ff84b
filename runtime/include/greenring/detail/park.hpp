// greenring/detail/park.hpp: the one way a green thread (or any Boost.Fiber
// context) waits in greenring.
//
// A parker lives on the waiting context's stack for the length of one wait.
// Whoever wants to end the wait calls unpark(reason) while holding the lock of
// the structure through which it found the parker (a waitq's lock, the fd
// registry bucket, the green thread's own lock for cancellation). The waiter
// unlinks itself from every such structure under that same lock before park()'s
// caller returns, so no waker ever touches a dead parker.
//
// Why a lock inside the parker: Boost.Fiber only guarantees that a wake from
// another thread finds the context already switched out if the waker serialises
// with the spinlock the waiter handed to suspend()/wait_until(). parker::lk is
// that lock. The first unpark wins and fixes the reason; later ones return
// false so, e.g., a semaphore can hand its permit to the next waiter instead.
#pragma once

#include <boost/fiber/context.hpp>
#include <boost/fiber/detail/spinlock.hpp>

#include <chrono>
#include <cstdint>
#include <mutex>

namespace greenring::detail {

using spinlock = boost::fibers::detail::spinlock;
using time_point = std::chrono::steady_clock::time_point;

enum class wake : std::uint8_t {
  none,       // still waiting
  signalled,  // the awaited thing happened (or was handed over)
  timeout,    // the deadline passed first
  cancelled,  // the green thread's cancellation was requested
  closed,     // the fd being waited on was closed by greenring::io::close
};

struct parker {
  spinlock lk;
  boost::fibers::waker w;
  wake reason = wake::none;
  bool parked = false;

  // Ends the wait with `r` unless it already ended. Returns whether this call ended it.
  bool unpark(wake r) noexcept {
    std::unique_lock<spinlock> g(lk);
    if (reason != wake::none) return false;
    reason = r;
    if (parked) w.wake();
    return true;
  }
};

// Suspends the calling context until unpark() or `until`. With `cancellable`,
// a pending cancellation of the calling green thread ends the wait (before or
// during it) with wake::cancelled; the request is not consumed here.
wake park(parker& p, time_point until, bool cancellable) noexcept;

// An intrusive FIFO of waiters. It has no lock of its own: the structure that
// embeds it guards it (and its own state) with one spinlock.
struct waiter {
  parker p;
  waiter* prev = nullptr;
  waiter* next = nullptr;
  bool linked = false;
  std::uintptr_t tag = 0;  // what the waker handed over (wake_one's `tag`), read under the guarding lock
};

class waitq {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  void push(waiter& w) noexcept;
  void push_front(waiter& w) noexcept;
  waiter* front() const noexcept { return head_; }
  void remove(waiter& w) noexcept;
  waiter* pop() noexcept;
  // Pops and unparks waiters until one accepts (its wait had not already ended).
  // The accepted waiter finds `tag` in waiter::tag. Returns it or nullptr.
  // Caller holds the guarding lock.
  waiter* wake_one(wake r = wake::signalled, std::uintptr_t tag = 0) noexcept;
  std::size_t wake_all(wake r = wake::signalled) noexcept;

  // Enqueues a waiter, releases `lk`, parks, re-takes `lk`, dequeues if still
  // queued. Returns how the wait ended. `lk` is held again on return.
  wake wait(std::unique_lock<spinlock>& lk, time_point until, bool cancellable) noexcept;

 private:
  waiter* head_ = nullptr;
  waiter* tail_ = nullptr;
};

}  // namespace greenring::detail
