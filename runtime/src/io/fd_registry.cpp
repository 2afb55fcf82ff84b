// io/fd_registry.cpp: see fd_registry.hpp. A fixed array of buckets keyed by
// fd number: no allocation, and waits on different fds rarely share a lock.
#include "io/fd_registry.hpp"

#include <cstring>
#include <mutex>
#include <new>

namespace greenring::detail {
namespace {

constexpr std::size_t kBuckets = 1024;

struct alignas(64) bucket {
  spinlock lk;
  fd_wait* head = nullptr;
};

bucket g_buckets[kBuckets];
const spinlock kFreshLock{};

bucket& bucket_for(int fd) noexcept { return g_buckets[static_cast<unsigned>(fd) % kBuckets]; }

}  // namespace

void fd_wait_add(fd_wait& w) noexcept {
  bucket& b = bucket_for(w.fd);
  std::lock_guard<spinlock> g(b.lk);
  w.prev = nullptr;
  w.next = b.head;
  if (b.head) b.head->prev = &w;
  b.head = &w;
}

void fd_wait_remove(fd_wait& w) noexcept {
  bucket& b = bucket_for(w.fd);
  std::lock_guard<spinlock> g(b.lk);
  if (w.prev) w.prev->next = w.next; else b.head = w.next;
  if (w.next) w.next->prev = w.prev;
  w.prev = w.next = nullptr;
}

void fd_registry_after_fork() noexcept {
  // Only buckets that were used (see parking_lot_after_fork).
  for (auto& b : g_buckets)
    if (b.head || std::memcmp(&b.lk, &kFreshLock, sizeof kFreshLock) != 0) new (&b) bucket();
}

std::size_t fd_wait_close(int fd) noexcept {
  if (fd < 0) return 0;
  bucket& b = bucket_for(fd);
  std::lock_guard<spinlock> g(b.lk);
  std::size_t n = 0;
  for (fd_wait* w = b.head; w; w = w->next)
    if (w->fd == fd) n += w->p->unpark(wake::closed);
  return n;
}

}  // namespace greenring::detail
