// greenring/sync.hpp: fiber-aware synchronisation that works across workers.
//
// Every primitive here suspends only the calling green thread; called from a
// plain OS thread it blocks that thread (Boost.Fiber gives every thread a
// scheduler), so green threads and OS threads can share them.
//
// | primitive          | blocks green thread | blocks worker | blocks OS thread (plain caller) | cancellable | deadline |
// |--------------------|---------------------|---------------|---------------------------------|-------------|----------|
// | mutex::lock        | yes                 | no            | yes                             | no (POSIX)  | try_lock_until |
//   (all: the waiter parks; "blocks OS thread" is for a plain-thread caller)
// | condition_variable | yes                 | no            | yes                             | yes         | wait_until |
// | semaphore::acquire | yes                 | no            | yes                             | yes         | try_acquire_until |
// | event::wait        | yes                 | no            | yes                             | yes         | wait_until |
// | channel push/pop   | yes                 | no            | yes                             | yes         | *_until |
//
// semaphore, event and channel hand their resource straight to the first
// waiter, FIFO, so a woken waiter never competes again (no lost wake-ups).
// mutex works like Go's sync.Mutex: unlock wakes the first waiter but a
// running green thread may take the lock first (barging: no cross-worker
// wake-up per lock operation, no lock convoy); a waiter that has waited over
// 1 ms switches the mutex to hand-off mode, FIFO, until the queue drains, so
// nobody starves. A cancelled condition_variable wait re-acquires the mutex
// before throwing, as pthread_cond_wait does.
#pragma once

#include <greenring/cancel.hpp>
#include <greenring/detail/park.hpp>

#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <utility>

namespace greenring {

class mutex {
 public:
  mutex() = default;
  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;
  void lock();
  bool try_lock() noexcept;
  bool try_lock_until(deadline until);
  template <class Rep, class Period>
  bool try_lock_for(std::chrono::duration<Rep, Period> d) {
    return try_lock_until(after(std::chrono::duration_cast<clock::duration>(d)));
  }
  void unlock() noexcept;

 private:
  detail::spinlock lk_;
  bool locked_ = false;
  bool starving_ = false;  // hand ownership to the queue head instead of letting lockers barge
  detail::waitq q_;
};

enum class cv_status { no_timeout, timeout };

class condition_variable {
 public:
  condition_variable() = default;
  condition_variable(const condition_variable&) = delete;
  condition_variable& operator=(const condition_variable&) = delete;

  void notify_one() noexcept;
  void notify_all() noexcept;

  void wait(std::unique_lock<mutex>& lk);
  template <class Pred>
  void wait(std::unique_lock<mutex>& lk, Pred pred) {
    while (!pred()) wait(lk);
  }
  cv_status wait_until(std::unique_lock<mutex>& lk, deadline until);
  template <class Pred>
  bool wait_until(std::unique_lock<mutex>& lk, deadline until, Pred pred) {
    while (!pred())
      if (wait_until(lk, until) == cv_status::timeout) return pred();
    return true;
  }
  template <class Rep, class Period, class Pred>
  bool wait_for(std::unique_lock<mutex>& lk, std::chrono::duration<Rep, Period> d, Pred pred) {
    return wait_until(lk, after(std::chrono::duration_cast<clock::duration>(d)), std::move(pred));
  }

 private:
  detail::spinlock lk_;
  detail::waitq q_;
};

// Counting semaphore.
class semaphore {
 public:
  explicit semaphore(std::size_t initial = 0) noexcept : count_(initial) {}
  semaphore(const semaphore&) = delete;
  semaphore& operator=(const semaphore&) = delete;
  void acquire();
  bool try_acquire() noexcept;
  bool try_acquire_until(deadline until);
  void release(std::size_t n = 1) noexcept;
  std::size_t available() const noexcept;

 private:
  mutable detail::spinlock lk_;
  std::size_t count_;
  detail::waitq q_;
};

// Manual-reset event: set() releases every current and future waiter until reset().
class event {
 public:
  void set() noexcept;
  void reset() noexcept;
  bool is_set() const noexcept;
  void wait();
  bool wait_until(deadline until);  // false on timeout
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> d) {
    return wait_until(after(std::chrono::duration_cast<clock::duration>(d)));
  }

 private:
  mutable detail::spinlock lk_;
  bool set_ = false;
  detail::waitq q_;
};

enum class channel_status { ok, closed, timeout };

// Bounded multi-producer multi-consumer FIFO channel. capacity >= 1.
// close(): pushes fail with channel_status::closed; pops drain what is queued,
// then return closed.
template <class T>
class channel {
 public:
  explicit channel(std::size_t capacity) : cap_(capacity ? capacity : 1) {}
  channel(const channel&) = delete;
  channel& operator=(const channel&) = delete;

  channel_status push(T v, deadline until = no_deadline) {
    std::unique_lock<detail::spinlock> g(lk_);
    for (;;) {
      if (closed_) return channel_status::closed;
      if (items_.size() < cap_) {
        items_.push_back(std::move(v));
        receivers_.wake_one();
        return channel_status::ok;
      }
      if (!wait_on(senders_, g, until)) return channel_status::timeout;
    }
  }

  channel_status pop(T& out, deadline until = no_deadline) {
    std::unique_lock<detail::spinlock> g(lk_);
    for (;;) {
      if (!items_.empty()) {
        out = std::move(items_.front());
        items_.pop_front();
        senders_.wake_one();
        return channel_status::ok;
      }
      if (closed_) return channel_status::closed;
      if (!wait_on(receivers_, g, until)) return channel_status::timeout;
    }
  }

  // std::nullopt once closed and drained.
  std::optional<T> pop() {
    T v;
    if (pop(v) != channel_status::ok) return std::nullopt;
    return v;
  }

  void close() noexcept {
    std::unique_lock<detail::spinlock> g(lk_);
    closed_ = true;
    senders_.wake_all();
    receivers_.wake_all();
  }

  std::size_t size() const noexcept {
    std::unique_lock<detail::spinlock> g(lk_);
    return items_.size();
  }

 private:
  // One wait of push or pop: false on timeout. Cancellation throws with the
  // lock released (the channel stays usable by the others).
  static bool wait_on(detail::waitq& q, std::unique_lock<detail::spinlock>& g, deadline until) {
    auto r = q.wait(g, until, true);
    if (r == detail::wake::cancelled) {
      g.unlock();
      this_fiber::check_cancelled();
      g.lock();
    }
    return r != detail::wake::timeout;
  }

  mutable detail::spinlock lk_;
  std::size_t cap_;
  bool closed_ = false;
  std::deque<T> items_;
  detail::waitq senders_;
  detail::waitq receivers_;
};

}  // namespace greenring
