// sync/primitives.cpp: mutex, condition_variable, semaphore and event on the
// waiter queue. Each keeps its state and its queue under one spinlock, and
// hands the resource straight to the first waiter that accepts it: a waiter
// whose wait already ended (timeout, cancellation) refuses, and the resource
// goes to the next one or back to the pool. Hence no lost wake-ups and exact
// counts, whichever of notify, timeout and cancellation comes first.
#include <greenring/detail/green_thread.hpp>
#include <greenring/sync.hpp>

namespace greenring {

using detail::spinlock;
using detail::wake;

namespace {
// park() reports wake::cancelled only when the cancellation is deliverable.
[[noreturn]] void rethrow_cancel() { detail::throw_cancelled(); }
}  // namespace

// ---- mutex -----------------------------------------------------------------

void mutex::lock() { try_lock_until(no_deadline); }

bool mutex::try_lock() noexcept {
  std::unique_lock<spinlock> g(lk_);
  if (locked_) return false;
  locked_ = true;
  return true;
}

bool mutex::try_lock_until(deadline until) {
  constexpr auto kStarving = std::chrono::milliseconds(1);  // Go's starvationThresholdNs
  std::unique_lock<spinlock> g(lk_);
  if (!locked_) {
    locked_ = true;
    return true;
  }
  const auto t0 = clock::now();
  bool requeue_front = false;
  for (;;) {
    // waiter.tag = 1: unlock handed ownership to us (hand-off mode).
    detail::waiter w;
    if (requeue_front) q_.push_front(w); else q_.push(w);
    g.unlock();
    // Not cancellable, as pthread_mutex_lock is not a cancellation point.
    wake r = detail::park(w.p, until, false);
    g.lock();
    if (w.linked) q_.remove(w);
    if (w.tag == 1) return true;  // locked_ stayed true for us
    if (r == wake::timeout) return false;
    if (!locked_) {
      locked_ = true;
      return true;
    }
    // Someone barged in between the wake-up and now. Woken waiters go back to
    // the front; one that has waited too long turns on hand-off mode.
    if (clock::now() - t0 > kStarving) starving_ = true;
    requeue_front = true;
  }
}

void mutex::unlock() noexcept {
  std::unique_lock<spinlock> g(lk_);
  if (starving_) {
    if (q_.wake_one(wake::signalled, 1)) return;  // ownership passed: locked_ stays true
    starving_ = false;  // queue drained
    locked_ = false;
    return;
  }
  locked_ = false;
  q_.wake_one();  // it retries; a running green thread may get there first
}

// ---- condition_variable ---------------------------------------------------

void condition_variable::notify_one() noexcept {
  std::unique_lock<spinlock> g(lk_);
  q_.wake_one();
}

void condition_variable::notify_all() noexcept {
  std::unique_lock<spinlock> g(lk_);
  q_.wake_all();
}

void condition_variable::wait(std::unique_lock<mutex>& lk) {
  if (wait_until(lk, no_deadline) == cv_status::timeout) return;  // cannot happen without a deadline
}

cv_status condition_variable::wait_until(std::unique_lock<mutex>& lk, deadline until) {
  wake r;
  {
    std::unique_lock<spinlock> g(lk_);
    detail::waiter w;
    q_.push(w);
    g.unlock();
    lk.unlock();  // after we are queued, so a notify after unlock finds us
    r = detail::park(w.p, until, true);
    g.lock();
    if (w.linked) q_.remove(w);
  }
  lk.lock();
  if (r == wake::cancelled) rethrow_cancel();
  return r == wake::timeout ? cv_status::timeout : cv_status::no_timeout;
}

// ---- semaphore --------------------------------------------------------------

void semaphore::acquire() {
  if (!try_acquire_until(no_deadline)) rethrow_cancel();
}

bool semaphore::try_acquire() noexcept {
  std::unique_lock<spinlock> g(lk_);
  if (count_ == 0) return false;
  --count_;
  return true;
}

bool semaphore::try_acquire_until(deadline until) {
  std::unique_lock<spinlock> g(lk_);
  if (count_ > 0) {
    --count_;
    return true;
  }
  wake r = q_.wait(g, until, true);
  if (r == wake::signalled) return true;  // the permit was handed to us
  if (r == wake::cancelled) {
    g.unlock();
    rethrow_cancel();
  }
  return false;
}

void semaphore::release(std::size_t n) noexcept {
  std::unique_lock<spinlock> g(lk_);
  for (; n > 0; --n)
    if (!q_.wake_one()) break;
  count_ += n;
}

std::size_t semaphore::available() const noexcept {
  std::unique_lock<spinlock> g(lk_);
  return count_;
}

// ---- event --------------------------------------------------------------------

void event::set() noexcept {
  std::unique_lock<spinlock> g(lk_);
  set_ = true;
  q_.wake_all();
}

void event::reset() noexcept {
  std::unique_lock<spinlock> g(lk_);
  set_ = false;
}

bool event::is_set() const noexcept {
  std::unique_lock<spinlock> g(lk_);
  return set_;
}

void event::wait() {
  if (!wait_until(no_deadline)) rethrow_cancel();
}

bool event::wait_until(deadline until) {
  std::unique_lock<spinlock> g(lk_);
  if (set_) return true;
  wake r = q_.wait(g, until, true);
  if (r == wake::cancelled) {
    g.unlock();
    rethrow_cancel();
  }
  return r == wake::signalled || set_;
}

}  // namespace greenring
