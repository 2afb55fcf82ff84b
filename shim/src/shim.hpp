// shim/src/shim.hpp: what every family of interposed symbols shares.
//
// # The one rule
// An interposed function does greenring's work only when the caller is a green
// thread of the shim's runtime (green()); any other caller — a native thread,
// a constructor before main, a forked child, a process started with
// GREENRING_DISABLE=1 or in secure-execution mode — gets libc's own function,
// found with dlsym(RTLD_NEXT) the first time it is needed. Exceptions: the
// synchronisation family (sync.cpp) owns pthread mutexes, condvars & co. for
// every caller while the shim is enabled, because one mutex can be shared by
// green and native threads and must have one implementation.
//
// # Early start-up
// Wrappers can run before any constructor of ours (other libraries'
// constructors call them). Nothing here allocates or needs initialising:
// real-function slots are constant-initialised atomics filled by dlsym (which
// may call calloc — fine, malloc is not interposed), and enabled() decides
// lazily from the auxiliary vector and the environment, both ready before any
// constructor runs.
#pragma once

#include <greenring/detail/green_thread.hpp>
#include <greenring/detail/park.hpp>

#include "detail/sys.hpp"

#include <pthread.h>
#include <time.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>

namespace greenring::detail {
class worker;
worker* current_worker() noexcept;
}  // namespace greenring::detail

namespace greenring::shim {

using detail::time_point;
using steady = std::chrono::steady_clock;

// dlsym(RTLD_NEXT, name); writes a message and aborts when libc lacks it.
void* next_symbol(const char* name) noexcept;

// libc's function `fn`, with fn's own declared type.
#define GR_REAL(fn)                                                                  \
  ([]() noexcept {                                                                   \
    static constinit std::atomic<void*> slot{nullptr};                               \
    void* p = slot.load(std::memory_order_relaxed);                                  \
    if (!p) {                                                                        \
      p = ::greenring::shim::next_symbol(#fn);                                       \
      slot.store(p, std::memory_order_relaxed);                                      \
    }                                                                                \
    return reinterpret_cast<decltype(&::fn)>(p);                                     \
  }())

// Same, for symbols no header declares: pass the function type.
#define GR_REAL_T(type, name)                                                        \
  ([]() noexcept {                                                                   \
    static constinit std::atomic<void*> slot{nullptr};                               \
    void* p = slot.load(std::memory_order_relaxed);                                  \
    if (!p) {                                                                        \
      p = ::greenring::shim::next_symbol(name);                                      \
      slot.store(p, std::memory_order_relaxed);                                      \
    }                                                                                \
    return reinterpret_cast<type>(p);                                                \
  }())

// Whether the shim intercepts at all in this process (decided once).
bool enabled() noexcept;

// Set in the child of a fork() made by a green thread: that thread goes on as
// a plain thread, and the first pthread_create there starts the child's own
// runtime.
extern std::atomic<bool> g_forked_child;

// The caller is a green thread of the runtime and the shim is active. (In a
// fork child the thread that forked is no worker any more: not green.)
inline bool green() noexcept {
  return detail::current_worker() != nullptr && detail::current_gt() != nullptr;
}

// An identity for lock ownership that is unique across green and native
// threads (glibc's own mutexes use the OS TID, which green threads share).
std::uint32_t self_token() noexcept;
void forget_cached_tid() noexcept;  // in a fork child: the TID changed

// ---- time --------------------------------------------------------------------

inline bool valid_timespec(const timespec* ts) noexcept {
  return ts && ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000;
}

// An absolute time on `clk` as a steady-clock deadline.
time_point deadline_from_abs(clockid_t clk, const timespec& abs) noexcept;
// now + a relative timespec / milliseconds (negative ms: no deadline).
time_point deadline_from_rel(const timespec& rel) noexcept;
time_point deadline_from_ms(long long ms) noexcept;

// ---- waiting on a 32-bit word (futex semantics, green or native) --------------

// Waits while *addr == expected, until woken, `until`, or spuriously.
// Returns 0, EAGAIN (value differed), ETIMEDOUT, or ECANCELED (only with
// `cancellable` on a green thread). `shared`: the word may be in memory shared
// with other processes (their wakes reach kernel waiters only, so green
// waiters re-check every 2 ms).
int word_wait(const std::uint32_t* addr, std::uint32_t expected, time_point until, bool shared,
              bool cancellable = false) noexcept;
// Wakes up to n waiters (green and native). Returns how many were woken.
int word_wake(const std::uint32_t* addr, int n, bool shared) noexcept;

// -1 with errno = e.
template <class T = int>
inline T fail(int e) noexcept {
  errno = e;
  return static_cast<T>(-1);
}

// Per-fd state the kernel does not let us read back cheaply: SO_RCVTIMEO /
// SO_SNDTIMEO as deadlines for blocking calls on green threads.
// Values are read from the kernel (getsockopt) the first time a green thread
// uses the fd, then cached until a setsockopt of either timeout anywhere in
// the process (a generation count: a socket may have several fds — dup,
// SCM_RIGHTS) or until the fd number is closed or reused.
struct fd_timeouts {
  std::atomic<std::uint64_t> rcv_us{0};
  std::atomic<std::uint64_t> snd_us{0};
  std::atomic<std::uint32_t> rcv_gen{0};  // 0: not known
  std::atomic<std::uint32_t> snd_gen{0};
};
void timeouts_changed() noexcept;  // a setsockopt(SO_RCVTIMEO/SO_SNDTIMEO) reached the kernel
fd_timeouts* fd_state(int fd) noexcept;  // nullptr for fds beyond the table
void fd_forget(int fd) noexcept;         // the fd number was closed or is new
// Deadline for a receive (or send) on fd: now + its timeout, or no deadline.
time_point recv_deadline(int fd) noexcept;
time_point send_deadline(int fd) noexcept;

}  // namespace greenring::shim

#define GR_EXPORT extern "C" __attribute__((visibility("default")))
