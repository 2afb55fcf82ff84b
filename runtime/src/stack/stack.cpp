// stack/stack.cpp: green-thread stacks — mapping, caching, overflow detection.
//
// # Shape
// Each stack is an anonymous mapping of options::stack_size usable bytes
// (64 KiB by default; MAP_NORESERVE, so only touched pages cost RSS). A
// PROT_NONE guard page below it turns an overflow into a SIGSEGV that the
// handler here attributes to the green thread ("greenring: stack overflow in
// green thread #N") before dying with the default action.
//
// # The map budget
// A guarded stack costs 2 kernel mappings and vm.max_map_count is 65,530 by
// default, so guard pages alone would cap a process near 32k green threads.
// Guarded stacks are used while fewer than (max_map_count - reserve) / 2 exist
// (reserve: 1/8 of the limit, at least 8,192, for the program's own mappings).
// Beyond that, stacks come from unguarded slabs of 64 stacks (one mapping per
// slab) with canary words just below each stack (in the resident top page of
// the slot underneath: no extra RSS), checked on every switch away from and
// back to the green thread and when it ends; a one-time warning says so.
// Canaries catch overflows that write past the bottom of the stack; a frame
// that jumps over them is not caught — raise vm.max_map_count
// (docs/limits.md) to keep every stack guarded.
//
// # Caching
// mmap+munmap per spawn costs ~35x a cached spawn on the target VMs, so freed
// stacks go to a per-OS-thread cache (bounded; guarded overflow is unmapped,
// unguarded overflow goes to a global free list since slabs are never unmapped).
// A stack freed on another thread than it was made on (a joiner dropping the
// last reference) simply joins that thread's cache.
#include "stack/stack.hpp"

#include "detail/sys.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <vector>

#if defined(GREENRING_ASAN)
#include <sanitizer/asan_interface.h>
#endif

namespace greenring::detail {

std::atomic<bool> g_canary_mode{false};

namespace {

constexpr std::size_t kPage = 4096;
constexpr std::size_t kSlabStacks = 64;

std::atomic<long> g_guarded{0};
std::atomic<bool> g_warned{false};
long g_guard_budget = -1;
std::once_flag g_budget_once;

// Unguarded stacks are never unmapped (a slab is one mapping; unmapping a
// stack would split it). A slab's memory is returned with one madvise when all
// its stacks are free again: one syscall per 64 stacks, not one per stack (a
// madvise costs ~170 us here, mostly TLB-shootdown IPIs to the other workers).
struct slab {
  char* base;
  std::size_t size;
  std::size_t free;
};
std::mutex g_free_lk;
// Never destroyed: slabs outlive static destruction (a worker may still be
// releasing stacks), and their descriptors stay reachable for LeakSanitizer.
std::vector<stack_region>& g_unguarded_free = *new std::vector<stack_region>();  // mixed sizes are skipped

long guard_budget() {
  std::call_once(g_budget_once, [] {
    long max_maps = 65530;
    if (FILE* f = std::fopen("/proc/sys/vm/max_map_count", "r")) {
      if (std::fscanf(f, "%ld", &max_maps) != 1) max_maps = 65530;
      std::fclose(f);
    }
    long reserve = max_maps / 8 < 8192 ? 8192 : max_maps / 8;
    g_guard_budget = max_maps > reserve ? (max_maps - reserve) / 2 : 0;
  });
  return g_guard_budget;
}

// Set when this thread's cache has been destroyed: Boost.Fiber may still
// release contexts during its own thread-exit teardown, after our TLS died.
thread_local bool t_cache_dead = false;

struct cache {
  std::vector<stack_region> v;
  ~cache() {
    t_cache_dead = true;
    for (auto& r : v) release_slow(r);
  }
  static void release_slow(const stack_region& r) noexcept {
#if defined(GREENRING_ASAN)
    // Leave no poisoned shadow behind: the kernel will map something else
    // here (a ring, another stack) and ASan would flag correct code in it.
    __asan_unpoison_memory_region(r.lo, static_cast<std::size_t>(r.hi - r.lo));
#endif
    if (r.guarded) {
      ::munmap(r.map_base, r.map_size);
      g_guarded.fetch_sub(1, std::memory_order_relaxed);
    } else {
      std::lock_guard<std::mutex> g(g_free_lk);
      g_unguarded_free.push_back(r);
      auto* s = static_cast<slab*>(r.slab);
      if (++s->free == kSlabStacks) ::madvise(s->base, s->size, MADV_DONTNEED);
    }
  }
};
thread_local cache t_cache;
std::atomic<std::size_t> g_cache_cap{256};

void write_canary(stack_region& r) noexcept {
  auto* w = reinterpret_cast<std::uint64_t*>(r.lo);
  w[-1] = kCanary;
  w[-8] = kCanary;
}

// The usable size a stack was made for (what acquire_stack was asked for).
std::size_t slot_size(const stack_region& r) noexcept { return r.guarded ? r.map_size - kPage : r.map_size; }

stack_region map_guarded(std::size_t usable) {
  std::size_t size = usable + kPage;
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                   -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  if (::mprotect(p, kPage, PROT_NONE) != 0) {
    ::munmap(p, size);
    throw std::bad_alloc();
  }
  stack_region r;
  r.map_base = static_cast<char*>(p);
  r.map_size = size;
  r.lo = r.map_base + kPage;
  r.hi = r.map_base + size;
  r.guarded = true;
  return r;
}

stack_region take_unguarded(std::size_t usable) {
  {
    std::lock_guard<std::mutex> g(g_free_lk);
    for (std::size_t i = g_unguarded_free.size(); i-- > 0;) {
      if (slot_size(g_unguarded_free[i]) == usable) {
        stack_region r = g_unguarded_free[i];
        g_unguarded_free[i] = g_unguarded_free.back();
        g_unguarded_free.pop_back();
        --static_cast<slab*>(r.slab)->free;
        return r;
      }
    }
  }
  // One extra page below slot 0 holds slot 0's canaries.
  std::size_t size = usable * kSlabStacks + kPage;
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                   -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  auto* base = static_cast<char*>(p);
  auto* sl = new slab{base, size, kSlabStacks - 1};  // lives as long as the process
  stack_region first;
  std::lock_guard<std::mutex> g(g_free_lk);
  for (std::size_t i = 0; i < kSlabStacks; ++i) {
    stack_region r;
    r.map_base = base + kPage + i * usable;
    r.map_size = usable;
    r.lo = r.map_base;
    r.hi = r.map_base + usable - kCanaryZone;  // the top 64 bytes hold the canaries of the slot above
    r.guarded = false;
    r.slab = sl;
    if (i == 0) first = r; else g_unguarded_free.push_back(r);
  }
  return first;
}

// A cached stack of exactly `usable` bytes, or an empty region.
stack_region take_cached(std::size_t usable) noexcept {
  if (t_cache_dead) return {};
  auto& v = t_cache.v;
  for (std::size_t i = v.size(); i-- > 0;) {
    if (slot_size(v[i]) == usable) {
      stack_region r = v[i];
      v[i] = v.back();
      v.pop_back();
      return r;
    }
  }
  return {};
}

// A reused stack goes out clean: frames unwound by exceptions (or ended by a
// fiber's termination) may have left poisoned ASan redzones behind, and an
// unguarded stack needs its canary words again (a slab madvise zeroes them).
stack_region& ready_for_use(stack_region& r) noexcept {
#if defined(GREENRING_ASAN)
  __asan_unpoison_memory_region(r.lo, static_cast<std::size_t>(r.hi - r.lo));
#endif
  if (!r.guarded) write_canary(r);
  return r;
}

}  // namespace

stack_region acquire_stack(std::size_t usable) {
  usable = (usable + kPage - 1) & ~(kPage - 1);
  if (stack_region r = take_cached(usable); r.lo) return ready_for_use(r);
  if (g_guarded.load(std::memory_order_relaxed) < guard_budget()) {
    g_guarded.fetch_add(1, std::memory_order_relaxed);
    try {
      return map_guarded(usable);
    } catch (...) {
      g_guarded.fetch_sub(1, std::memory_order_relaxed);
      if (errno != ENOMEM) throw;
    }
  }
  if (!g_warned.exchange(true)) {
    std::fprintf(stderr,
                 "greenring: %ld guarded stacks in use (vm.max_map_count budget); further green threads get "
                 "canary-checked stacks without guard pages (raise vm.max_map_count: see docs/limits.md)\n",
                 g_guarded.load());
  }
  g_canary_mode.store(true, std::memory_order_relaxed);
  stack_region r = take_unguarded(usable);
  return ready_for_use(r);
}

void release_stack(const stack_region& r) noexcept {
  if (t_cache_dead) {
    cache::release_slow(r);
    return;
  }
  auto& v = t_cache.v;
  if (v.size() < g_cache_cap.load(std::memory_order_relaxed)) {
    try {
      v.push_back(r);
      return;
    } catch (...) {
    }
  }
  cache::release_slow(r);
}

void set_stack_cache_capacity(std::size_t n) noexcept { g_cache_cap.store(n, std::memory_order_relaxed); }

// ---- overflow reporting ---------------------------------------------------

namespace {

struct sigaction g_prev_segv;
std::once_flag g_handler_once;
thread_local void* t_altstack = nullptr;

void write_str(const char* s) noexcept {
  sys::write(2, s, std::strlen(s));
}

void write_num(unsigned long long v) noexcept {
  char buf[24];
  int i = 23;
  buf[i] = 0;
  do {
    buf[--i] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  write_str(buf + i);
}

void report(const gt_base* gt, const char* how) noexcept {
  write_str("greenring: stack overflow in green thread #");
  write_num(gt->id);
  write_str(" (");
  write_num(slot_size(gt->stack));
  write_str("-byte stack, ");
  write_str(how);
  write_str("); raise GREENRING_STACK_SIZE or options::stack_size\n");
}

void on_segv(int sig, siginfo_t* si, void* uctx) {
  gt_base* gt = current_gt();
  auto* addr = static_cast<char*>(si->si_addr);
  if (gt && gt->stack.guarded && addr >= gt->stack.map_base && addr < gt->stack.lo) {
    report(gt, "guard page hit");
    signal(SIGSEGV, SIG_DFL);  // returning re-executes the fault and dies with SIGSEGV
    return;
  }
  if (g_prev_segv.sa_flags & SA_SIGINFO) {
    if (g_prev_segv.sa_sigaction) {
      g_prev_segv.sa_sigaction(sig, si, uctx);
      return;
    }
  } else if (g_prev_segv.sa_handler != SIG_DFL && g_prev_segv.sa_handler != SIG_IGN) {
    g_prev_segv.sa_handler(sig);
    return;
  }
  signal(SIGSEGV, SIG_DFL);
}

}  // namespace

[[noreturn]] void report_canary_overflow(const gt_base* gt) noexcept {
  report(gt, "canary overwritten");
  std::abort();
}

void install_overflow_handler() noexcept {
  std::call_once(g_handler_once, [] {
    struct sigaction sa{};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_prev_segv);
  });
  if (!t_altstack) {
    std::size_t sz = 64 * 1024;
    void* p = ::mmap(nullptr, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return;
    stack_t ss{};
    ss.ss_sp = p;
    ss.ss_size = sz;
    if (sigaltstack(&ss, nullptr) == 0) t_altstack = p; else ::munmap(p, sz);
  }
}

void remove_altstack() noexcept {
  if (!t_altstack) return;
  stack_t ss{};
  ss.ss_flags = SS_DISABLE;
  sigaltstack(&ss, nullptr);
  ::munmap(t_altstack, 64 * 1024);
  t_altstack = nullptr;
}

std::size_t stack_size_from_env() noexcept {
  const char* e = std::getenv("GREENRING_STACK_SIZE");
  if (!e || !*e) return 0;
  char* end = nullptr;
  unsigned long long v = std::strtoull(e, &end, 10);
  if (end && (*end == 'k' || *end == 'K')) v *= 1024;
  if (end && (*end == 'm' || *end == 'M')) v *= 1024 * 1024;
  return v >= 16 * 1024 ? static_cast<std::size_t>(v) : 0;
}

void stack_after_fork() noexcept { new (&g_free_lk) std::mutex(); }

}  // namespace greenring::detail
