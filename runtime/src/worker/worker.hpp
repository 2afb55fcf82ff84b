// worker/worker.hpp: workers and the runtime that owns them (internal).
//
// # Worker state word (wake protocol)
//   running  : the worker's thread is executing fibers or scheduler code.
//   parked   : it is, or is about to be, blocked in driver::wait().
//   notified : someone queued work for it since it last looked.
// notify() (any thread) = exchange(notified); if the old value was parked, the
// driver is kicked (one eventfd write). The worker, before blocking, does
// exchange(parked): an old value of notified means work was queued after its
// last look, so it does not block. After any wake it stores running and only
// then drains its queues. Every producer enqueues before notify(), so every
// item is either seen by that drain or announced by a later notified.
//
// # Rejected designs
// 1. A mutex+condvar park: one more futex round trip on top of the ring wait,
//    and the ring could not be waited on at the same time.
// 2. Always kicking the eventfd: a syscall per cross-worker wake-up even when
//    the target is busy and would have found the work on its next pass.
// 3. Stealing green threads between workers: foreign code caches &errno and
//    thread-locals, so green threads never migrate (see docs/design.md).
#pragma once

#include "driver/driver.hpp"

#include <greenring/detail/green_thread.hpp>

#include "detail/native_thread.hpp"
#include <greenring/runtime.hpp>
#include <greenring/sync.hpp>

#include <boost/fiber/algo/algorithm.hpp>
#include <boost/fiber/operations.hpp>
#include <boost/fiber/scheduler.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <memory>
#include <vector>

namespace greenring::detail {

class runtime_impl;

class worker {
 public:
  worker(runtime_impl& rt, unsigned index) : rt_(rt), index_(index) {}

  runtime_impl& rt() noexcept { return rt_; }
  unsigned index() const noexcept { return index_; }
  driver& drv() noexcept { return *drv_; }

  // Any thread: makes the worker look at its queues soon.
  void notify() noexcept;
  // Any thread: hands a built green thread to this worker.
  void post(boost::fibers::context* ctx) noexcept;

  // Owner thread only.
  void poll_events() noexcept;                          // non-blocking pass work
  void idle(std::chrono::steady_clock::time_point until) noexcept;  // suspend_until
  void link_live(gt_base* gt) noexcept;
  void unlink_live(gt_base* gt) noexcept;

  std::atomic<std::size_t> live{0};  // placed here and not yet finished
  bool is_parked() const noexcept { return state_.load(std::memory_order_relaxed) == parked; }

  // In the child of a fork (after_fork_child): the worker's thread is gone, or
  // is the forking thread, which goes on as a plain thread. The driver is
  // abandoned (its ring is the parent's); should a context of this worker
  // still suspend, the thread sleeps on the state word instead.
  void abandon() noexcept;
  bool abandoned() const noexcept { return abandoned_.load(std::memory_order_relaxed); }
  // The only context of an abandoned worker that may still run (with the
  // scheduler's dispatcher): the green thread that forked, on its own thread.
  // Every other one is a copy of a parent's thread and is dropped unrun.
  boost::fibers::context* survivor = nullptr;

  // Written only by the owner thread (plain load+store, no lock prefix), read
  // by the watchdog: progress and who is running.
  std::atomic<std::uint64_t> switches{0};
  std::atomic<std::uint64_t> running_gt{0};
  std::atomic<std::uint64_t> stalls{0};

  // Set up by the worker's thread before it reports ready.
  std::unique_ptr<driver> drv_;
  native_thread thread;
  event stop;        // the runtime is shutting down
  event drained;     // live reached 0 after stop
  std::atomic<bool> stopping{false};

 private:
  friend class runtime_impl;
  void drain_inbox() noexcept;
  void idle_abandoned(std::chrono::steady_clock::time_point until) noexcept;

  enum : int { running, parked, notified };
  runtime_impl& rt_;
  unsigned index_;
  alignas(64) std::atomic<int> state_{running};
  std::atomic<bool> abandoned_{false};
  alignas(64) spinlock inbox_lk_;
  std::vector<boost::fibers::context*> inbox_;
  std::vector<boost::fibers::context*> inbox_spare_;
  std::atomic<bool> inbox_nonempty_{false};
  gt_base* live_head_ = nullptr;  // owner thread only
};

class runtime_impl {
 public:
  runtime_impl(runtime& self, options opts);
  ~runtime_impl();

  runtime& self;
  options opts;
  backend chosen = backend::uring;
  std::string fallback_reason;
  std::size_t stack_size = 64 * 1024;
  std::vector<std::unique_ptr<worker>> workers;
  std::atomic<std::uint64_t> next_id{1};

  worker* pick_worker(int requested);
  void shutdown() noexcept;

  native_thread watchdog;
  std::chrono::milliseconds watchdog_period{0};
  std::mutex watchdog_lk;
  std::condition_variable watchdog_cv;
  bool watchdog_stop = false;

 private:
  void watchdog_main() noexcept;
  void init_worker(worker& w);
  void drain_worker(worker& w) noexcept;
  void worker_main(worker& w, std::atomic<int>& ready, std::exception_ptr& err);
};

// The worker whose thread this is, or nullptr.
worker* current_worker() noexcept;

// For the LD_PRELOAD shim, in the child of a fork made by a green thread, which
// goes on as the child's only thread: every runtime of the parent is
// forgotten (its workers abandoned: no ring or eventfd of the parent is used
// or kept open), the calling thread stops being a worker, and the
// process-wide tables (parking lot, fd waiters, stack slabs, DNS helpers) are
// emptied and unlocked. A runtime constructed afterwards is the child's own.
// Not for linked programs: their runtime objects would still be destroyed.
void after_fork_child() noexcept;

}  // namespace greenring::detail
