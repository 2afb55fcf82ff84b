// worker/green_tls.cpp: the green-TLS registry (add_green_tls) and the
// per-green-thread initial values.
//
// Why by thread-pointer offset: a variable in the static TLS block (the
// executable's and those of libraries loaded at start-up) sits at the same
// offset from the thread pointer on every thread, so one registration made on
// any thread gives each worker its own address without dlsym on every worker.
// Written once, before workers start, read by them afterwards: entries are
// filled before `g_count` is published with release.
#include "worker/green_tls.hpp"

#include <greenring/detail/park.hpp>

#include <atomic>
#include <mutex>

namespace greenring::detail {
namespace {

spinlock g_lk;
std::atomic<std::size_t> g_count{0};
std::ptrdiff_t g_offset[max_green_tls];
std::uint8_t g_size[max_green_tls];
std::uint64_t g_initial[max_green_tls];

}  // namespace

bool add_green_tls(std::ptrdiff_t tp_offset, std::size_t size, std::uint64_t initial) noexcept {
  if (size != 1 && size != 2 && size != 4 && size != 8) return false;
  std::lock_guard<spinlock> g(g_lk);
  std::size_t n = g_count.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < n; ++i)
    if (g_offset[i] == tp_offset) return true;
  if (n == max_green_tls) return false;
  g_offset[n] = tp_offset;
  g_size[n] = static_cast<std::uint8_t>(size);
  g_initial[n] = initial;
  g_count.store(n + 1, std::memory_order_release);
  return true;
}

std::size_t green_tls_count() noexcept { return g_count.load(std::memory_order_acquire); }

gt_base::gt_base() noexcept : boost::fibers::fiber_properties(nullptr) {
  // All slots, not just the registered ones: a worker that binds later may
  // see more entries than existed when this green thread was made.
  (void)g_count.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < max_green_tls; ++i) tls[i] = g_initial[i];
}

void green_tls_view::bind() noexcept {
  auto* tp = static_cast<char*>(__builtin_thread_pointer());
  n_ = g_count.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < n_; ++i) {
    addr_[i] = tp + g_offset[i];
    size_[i] = g_size[i];
  }
}

void inherit_green_tls(gt_base* gt) noexcept {
  green_tls_view v;
  v.bind();
  v.save(gt->tls);
}

}  // namespace greenring::detail
