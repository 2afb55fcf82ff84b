// shim/src/common.cpp: the shared pieces declared in shim.hpp — real-symbol
// lookup, the enabled decision, lock identities, deadlines, word waits and the
// per-fd timeout table.
#include "shim.hpp"

#include <greenring/detail/parking_lot.hpp>

#include "io/wait_any.hpp"

#include <dlfcn.h>
#include <linux/futex.h>
#include <sys/auxv.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace greenring::shim {

std::atomic<bool> g_forked_child{false};

void* next_symbol(const char* name) noexcept {
  void* p = dlsym(RTLD_NEXT, name);
  if (!p) {
    static const char msg[] = "greenring: libc lacks a symbol the shim needs: ";
    detail::sys::raw(SYS_write, 2, detail::sys::L(msg), sizeof msg - 1);
    detail::sys::raw(SYS_write, 2, detail::sys::L(name), static_cast<long>(std::strlen(name)));
    detail::sys::raw(SYS_write, 2, detail::sys::L("\n"), 1);
    std::abort();
  }
  return p;
}

namespace {
// 0 undecided, 1 enabled, 2 disabled.
constinit std::atomic<int> g_enabled{0};
}  // namespace

bool enabled() noexcept {
  int e = g_enabled.load(std::memory_order_acquire);
  if (e == 0) {
    // Secure-execution mode (setuid/setgid/capabilities): the loader already
    // restricts LD_PRELOAD; if we were loaded anyway, change nothing.
    bool off = getauxval(AT_SECURE) != 0;
    if (!off) {
      const char* d = std::getenv("GREENRING_DISABLE");
      off = d && *d && std::strcmp(d, "0") != 0;
    }
    int want = off ? 2 : 1;
    g_enabled.compare_exchange_strong(e, want, std::memory_order_acq_rel);
    e = g_enabled.load(std::memory_order_acquire);
  }
  return e == 1;
}

namespace {
thread_local std::uint32_t t_tid = 0;  // trivially destructible: no TLS destructor registered
}

void forget_cached_tid() noexcept { t_tid = 0; }

std::uint32_t self_token() noexcept {
  if (green()) return 0x40000000u | static_cast<std::uint32_t>(detail::current_gt()->id & 0x3fffffffu);
  if (!t_tid) t_tid = static_cast<std::uint32_t>(detail::sys::raw(SYS_gettid));
  return t_tid;
}

time_point deadline_from_abs(clockid_t clk, const timespec& abs) noexcept {
  timespec now{};
  clock_gettime(clk, &now);
  long long ns = (static_cast<long long>(abs.tv_sec) - now.tv_sec) * 1000000000LL + (abs.tv_nsec - now.tv_nsec);
  auto base = steady::now();
  if (ns <= 0) return base;
  return base + std::chrono::nanoseconds(ns);
}

time_point deadline_from_rel(const timespec& rel) noexcept {
  if (rel.tv_sec < 0) return steady::now();
  if (rel.tv_sec > 100LL * 365 * 86400) return time_point::max();
  return steady::now() + std::chrono::seconds(rel.tv_sec) + std::chrono::nanoseconds(rel.tv_nsec);
}

time_point deadline_from_ms(long long ms) noexcept {
  if (ms < 0) return time_point::max();
  return steady::now() + std::chrono::milliseconds(ms);
}

namespace {

int kernel_word_wait(const std::uint32_t* addr, std::uint32_t expected, time_point until, bool shared) noexcept {
  timespec ts{};
  timespec* tsp = nullptr;
  if (until != time_point::max()) {
    // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time: steady_clock's clock.
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(until.time_since_epoch()).count();
    ts.tv_sec = static_cast<time_t>(ns / 1000000000);
    ts.tv_nsec = static_cast<long>(ns % 1000000000);
    tsp = &ts;
  }
  int op = FUTEX_WAIT_BITSET | (shared ? 0 : FUTEX_PRIVATE_FLAG);
  long r = detail::sys::raw(SYS_futex, detail::sys::L(addr), op, expected, detail::sys::L(tsp), 0,
                            static_cast<long>(FUTEX_BITSET_MATCH_ANY));
  if (r == -ETIMEDOUT) return ETIMEDOUT;
  if (r == -EAGAIN) return EAGAIN;
  return 0;  // woken, EINTR (a spurious wake-up for our callers)
}

}  // namespace

int word_wait(const std::uint32_t* addr, std::uint32_t expected, time_point until, bool shared,
              bool cancellable) noexcept {
  if (!green()) return kernel_word_wait(addr, expected, until, shared);
  time_point t = until;
  if (shared) t = std::min(until, steady::now() + std::chrono::milliseconds(2));
  int r = detail::futex_wait(addr, expected, t, cancellable);
  if (r == -ECANCELED) return ECANCELED;
  if (r == -EAGAIN) return EAGAIN;
  if (r == -ETIMEDOUT) return t == until ? ETIMEDOUT : 0;
  return 0;
}

int word_wake(const std::uint32_t* addr, int n, bool shared) noexcept {
  int woken = detail::futex_wake(addr, n);  // green waiters, then private kernel waiters
  if (shared && woken < n) {
    long k = detail::sys::raw(SYS_futex, detail::sys::L(addr), FUTEX_WAKE, n - woken);
    if (k > 0) woken += static_cast<int>(k);
  }
  return woken;
}

// ---- per-fd timeouts -----------------------------------------------------------

namespace {
constexpr int kMaxFds = 1 << 20;  // beyond this SO_RCVTIMEO is not honoured on green threads
fd_timeouts g_fds[kMaxFds];       // zero pages: costs RSS only where used
}  // namespace

fd_timeouts* fd_state(int fd) noexcept { return fd >= 0 && fd < kMaxFds ? &g_fds[fd] : nullptr; }

namespace {
constinit std::atomic<std::uint32_t> g_timeo_gen{1};

std::uint64_t query_timeout(int fd, int name) noexcept {
  timeval tv{};
  socklen_t len = sizeof tv;
  long r = detail::sys::raw(SYS_getsockopt, fd, SOL_SOCKET, name, detail::sys::L(&tv), detail::sys::L(&len));
  if (r != 0) return 0;  // not a socket (ENOTSOCK), or closed: no timeout
  return static_cast<std::uint64_t>(tv.tv_sec) * 1000000u + static_cast<std::uint64_t>(tv.tv_usec);
}

time_point deadline_for(int fd, bool rcv) noexcept {
  auto* s = fd_state(fd);
  if (!s) return time_point::max();
  auto& gen = rcv ? s->rcv_gen : s->snd_gen;
  auto& val = rcv ? s->rcv_us : s->snd_us;
  std::uint32_t g = g_timeo_gen.load(std::memory_order_acquire);
  std::uint64_t us;
  if (gen.load(std::memory_order_acquire) != g) {
    us = query_timeout(fd, rcv ? SO_RCVTIMEO : SO_SNDTIMEO);
    val.store(us, std::memory_order_relaxed);
    gen.store(g, std::memory_order_release);
  } else {
    us = val.load(std::memory_order_relaxed);
  }
  return us ? steady::now() + std::chrono::microseconds(us) : time_point::max();
}
}  // namespace

void timeouts_changed() noexcept {
  std::uint32_t g = g_timeo_gen.load(std::memory_order_relaxed);
  std::uint32_t next;
  do {
    next = g + 1 == 0 ? 1 : g + 1;
  } while (!g_timeo_gen.compare_exchange_weak(g, next, std::memory_order_acq_rel));
}

void fd_forget(int fd) noexcept {
  // The runtime's "last read blocked" hint belongs to the old fd too: a new
  // non-blocking fd with a stale hint would wait in io_uring instead of EAGAIN.
  detail::forget_blocked_hint(fd);
  if (auto* s = fd_state(fd)) {
    s->rcv_gen.store(0, std::memory_order_release);
    s->snd_gen.store(0, std::memory_order_release);
  }
}

time_point recv_deadline(int fd) noexcept { return deadline_for(fd, true); }
time_point send_deadline(int fd) noexcept { return deadline_for(fd, false); }

}  // namespace greenring::shim
