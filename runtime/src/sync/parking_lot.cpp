// sync/parking_lot.cpp: see greenring/detail/parking_lot.hpp for the protocol.
// 4,096 buckets keyed by address (hashed to spread neighbouring words); each a
// spinlock and an intrusive list, so waits on unrelated words rarely contend.
#include <greenring/detail/green_thread.hpp>
#include <greenring/detail/parking_lot.hpp>

#include "detail/sys.hpp"

#include <linux/futex.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cstring>
#include <mutex>
#include <new>

namespace greenring::detail {
namespace {

constexpr std::size_t kBuckets = 4096;

struct lot_waiter {
  const std::uint32_t* addr;
  parker p;
  lot_waiter* prev = nullptr;
  lot_waiter* next = nullptr;
  bool linked = false;
};

struct alignas(64) bucket {
  spinlock lk;
  lot_waiter* head = nullptr;
  lot_waiter* tail = nullptr;

  void push(lot_waiter& w) noexcept {
    w.prev = tail;
    w.next = nullptr;
    if (tail) tail->next = &w; else head = &w;
    tail = &w;
    w.linked = true;
  }
  void remove(lot_waiter& w) noexcept {
    if (w.prev) w.prev->next = w.next; else head = w.next;
    if (w.next) w.next->prev = w.prev; else tail = w.prev;
    w.prev = w.next = nullptr;
    w.linked = false;
  }
};

bucket g_lot[kBuckets];
const spinlock kFreshLock{};  // what an unused bucket's lock looks like

bucket& bucket_for(const void* a) noexcept {
  auto x = reinterpret_cast<std::uintptr_t>(a) >> 2;
  x ^= x >> 17;
  x *= 0x9E3779B97F4A7C15ull;
  return g_lot[(x >> 40) % kBuckets];
}

int kernel_wait(const std::uint32_t* addr, std::uint32_t expected, time_point until) noexcept {
  for (;;) {
    timespec ts{};
    timespec* tsp = nullptr;
    if (until != time_point::max()) {
      auto now = std::chrono::steady_clock::now();
      if (until <= now) return -ETIMEDOUT;
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(until - now).count();
      ts.tv_sec = static_cast<time_t>(ns / 1000000000);
      ts.tv_nsec = static_cast<long>(ns % 1000000000);
      tsp = &ts;
    }
    long r = sys::raw(SYS_futex, sys::L(addr), FUTEX_WAIT_PRIVATE, expected, sys::L(tsp));
    if (r == -EINTR) {
      if (__atomic_load_n(addr, __ATOMIC_ACQUIRE) != expected) return 0;
      continue;
    }
    return r == -ETIMEDOUT || r == -EAGAIN ? static_cast<int>(r) : 0;
  }
}

}  // namespace

int futex_wait(const std::uint32_t* addr, std::uint32_t expected, time_point until, bool cancellable) noexcept {
  if (!current_gt()) return kernel_wait(addr, expected, until);
  bucket& b = bucket_for(addr);
  lot_waiter w{addr, {}};
  {
    std::unique_lock<spinlock> g(b.lk);
    if (__atomic_load_n(addr, __ATOMIC_SEQ_CST) != expected) return -EAGAIN;
    b.push(w);
  }
  wake r = park(w.p, until, cancellable);
  {
    std::unique_lock<spinlock> g(b.lk);
    if (w.linked) b.remove(w);
  }
  switch (r) {
    case wake::signalled: return 0;
    case wake::timeout: return -ETIMEDOUT;
    case wake::cancelled: return -ECANCELED;
    default: return 0;
  }
}

int futex_wake(const std::uint32_t* addr, int n) noexcept {
  if (n <= 0) return 0;
  bucket& b = bucket_for(addr);
  int woken = 0;
  {
    std::unique_lock<spinlock> g(b.lk);
    for (lot_waiter* w = b.head; w && woken < n;) {
      lot_waiter* next = w->next;
      if (w->addr == addr) {
        b.remove(*w);
        woken += w->p.unpark(wake::signalled);
      }
      w = next;
    }
  }
  if (woken < n) {
    long k = sys::raw(SYS_futex, sys::L(addr), FUTEX_WAKE_PRIVATE, n - woken);
    if (k > 0) woken += static_cast<int>(k);
  }
  return woken;
}

void parking_lot_after_fork() noexcept {
  // Only buckets that were used: a write to an untouched page would copy it
  // in the child (256 KiB of buckets, most never used).
  for (auto& b : g_lot)
    if (b.head || b.tail || std::memcmp(&b.lk, &kFreshLock, sizeof kFreshLock) != 0) new (&b) bucket();
}

}  // namespace greenring::detail
