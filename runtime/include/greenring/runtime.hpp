// greenring/runtime.hpp: the runtime object that owns the workers.
//
// A runtime owns N workers. Each worker is one OS thread running a Boost.Fiber
// scheduler whose algorithm waits on that worker's I/O driver (io_uring, or the
// epoll fallback). Green threads never migrate between workers once started.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace greenring {

namespace detail {
class runtime_impl;
}

// What the blocking watchdog saw: a worker that ran one green thread (or its
// own scheduler code) without switching for `stalled`. Almost always a
// blocking call greenring does not know about (a plain libc call in linked
// code, a busy loop): every other green thread of that worker waited.
struct stall_report {
  unsigned worker;
  std::uint64_t green_thread;  // id of the green thread running, 0 if none
  std::chrono::milliseconds stalled;
};

// A snapshot of one worker, for monitoring.
struct worker_stats {
  unsigned worker;
  std::size_t live_green_threads;
  std::uint64_t switches;  // context switches made by the scheduler so far
  std::uint64_t stalls;    // stall reports made by the watchdog so far
  bool parked;             // idle in the kernel right now
};

// Which kernel interface carries the waiting.
enum class backend {
  automatic,  // io_uring if io_uring_setup works, else epoll (GREENRING_BACKEND overrides)
  uring,      // io_uring only: the constructor throws if the ring cannot be created
  epoll,      // epoll + non-blocking syscalls
};

struct options {
  // Number of workers (OS threads). 0: the CPUs in this process's affinity mask,
  // or GREENRING_WORKERS when set.
  unsigned workers = 0;
  // Usable stack bytes of each green thread (rounded up to pages). 0: 64 KiB, or
  // GREENRING_STACK_SIZE when set.
  std::size_t stack_size = 0;
  backend driver = backend::automatic;
  // Submission queue entries per io_uring (completion queue is 4x).
  unsigned ring_entries = 256;
  // How long an idle worker spins before it parks in the kernel. Waking a
  // halted vCPU costs ~20 us on the target VMs; spinning trades CPU for that.
  std::chrono::microseconds idle_spin{20};
  // Stacks kept for reuse per OS thread (beyond that they are unmapped).
  std::size_t stack_cache = 256;
  // The constructing thread becomes worker 0 instead of a new thread: green
  // threads on worker 0 run whenever that thread waits in greenring (join,
  // sleep, sync). The runtime must then be destroyed on the same thread,
  // which gets a plain Boost.Fiber scheduler back. greenring::run uses this,
  // and so does the LD_PRELOAD shim, so main() keeps the main OS thread.
  bool adopt_calling_thread = false;
  // Blocking watchdog: report a worker that does not switch for this long
  // while it has work (0: off). Default 0 here; GREENRING_WATCHDOG_MS sets it
  // when this is 0. Reports go to `on_stall`, or to stderr when it is empty;
  // one report per stall, however long it lasts.
  std::chrono::milliseconds watchdog{0};
  std::function<void(const stall_report&)> on_stall;
};

// The runtime. Construct one (or call greenring::run); the free functions
// (spawn, sleep_for, io::read, ...) find it from the calling green thread, or,
// on a plain OS thread, use the most recently started runtime that is alive.
//
// Destruction: requests cancellation of every green thread still alive, waits
// for all of them to finish unwinding, then stops and joins the worker threads.
class runtime {
 public:
  explicit runtime(options opts = {});
  ~runtime();
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  unsigned workers() const noexcept;
  // "io_uring" or "epoll" (what worker 0 runs; a worker whose own ring
  // set-up failed falls back to epoll alone and says so on stderr).
  const char* backend_name() const noexcept;
  // The kernel features the driver uses, e.g. "single_issuer defer_taskrun ext_arg".
  std::string backend_features() const;
  // Green threads started and not yet finished, summed over workers.
  std::size_t live_green_threads() const noexcept;
  // One snapshot per worker (read without stopping anything: approximate).
  std::vector<worker_stats> stats() const;

  // The runtime of the calling green thread; else the most recent live runtime; else nullptr.
  static runtime* current() noexcept;

  detail::runtime_impl& impl() noexcept { return *impl_; }

 private:
  std::unique_ptr<detail::runtime_impl> impl_;
};

}  // namespace greenring
