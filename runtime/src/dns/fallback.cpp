// dns/fallback.cpp: glibc's own resolver functions, run on helper OS threads.
//
// Used when nsswitch.conf names hosts: sources c-ares cannot serve
// (mdns4_minimal, myhostname, resolve, ldap, ...) or GREENRING_DNS_FORCE_FALLBACK=1.
// The green caller parks on an event; the helper runs the blocking glibc call.
//
// # Reaching glibc without recursing
// Under the LD_PRELOAD shim, ::getaddrinfo is the shim's, which forwards green
// callers back here. dlsym(RTLD_NEXT, "getaddrinfo") from this object finds
// the next definition after it in the lookup order: libgreenring is linked into
// the preload library (or into the program), so that is libc's.
//
// # The pool
// At most kMaxHelpers native threads (detail::native_thread: real OS threads
// even under the shim), started on demand when no helper is idle, kept for the
// life of the process (never joined: the pool is a leaked singleton, so exit
// never waits on a helper stuck in a slow NSS module). A job owns its inputs
// and outputs (shared_ptr): a caller that is cancelled leaves, the helper
// finishes and the last owner frees the result.
#include "dns/lookup.hpp"

#include "detail/native_thread.hpp"

#include <greenring/spawn.hpp>
#include <greenring/sync.hpp>

#include <dlfcn.h>

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>

namespace greenring::detail::dns {
namespace {

constexpr std::size_t kMaxHelpers = 4;  // lookups are rare and slow; 4 in parallel covers bursts

std::atomic<std::uint64_t> g_fallback_calls{0};

struct job {
  std::function<void()> fn;
  greenring::event done;
};

class helper_pool {
 public:
  void submit(std::shared_ptr<job> j) {
    std::unique_lock<std::mutex> g(lk_);
    q_.push_back(std::move(j));
    if (idle_ == 0 && threads_ < kMaxHelpers) {
      ++threads_;
      native_thread([this] { loop(); }).detach();
    }
    cv_.notify_one();
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> g(lk_);
    for (;;) {
      ++idle_;
      cv_.wait(g, [&] { return !q_.empty(); });
      --idle_;
      auto j = std::move(q_.front());
      q_.pop_front();
      g.unlock();
      j->fn();
      j->done.set();
      j.reset();
      g.lock();
    }
  }

  std::mutex lk_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<job>> q_;
  std::size_t threads_ = 0;
  std::size_t idle_ = 0;
};

std::atomic<helper_pool*> g_pool{nullptr};

helper_pool& pool() {
  helper_pool* p = g_pool.load(std::memory_order_acquire);
  if (!p) {
    auto* fresh = new helper_pool;  // leaked on purpose: see the header comment
    if (g_pool.compare_exchange_strong(p, fresh, std::memory_order_acq_rel)) return *fresh;
    delete fresh;  // another thread won
  }
  return *p;
}

template <class T>
T next_symbol(const char* name) {
  void* p = dlsym(RTLD_NEXT, name);
  if (!p) p = dlsym(RTLD_DEFAULT, name);  // only when nothing follows us: then no interposer either
  return reinterpret_cast<T>(p);
}

}  // namespace

void fallback_after_fork() noexcept { g_pool.store(nullptr, std::memory_order_release); }

const glibc_fns& glibc() {
  static const glibc_fns f = {
      next_symbol<decltype(glibc_fns::getaddrinfo)>("getaddrinfo"),
      next_symbol<decltype(glibc_fns::freeaddrinfo)>("freeaddrinfo"),
      next_symbol<decltype(glibc_fns::getnameinfo)>("getnameinfo"),
      next_symbol<decltype(glibc_fns::gethostbyname_r)>("gethostbyname_r"),
      next_symbol<decltype(glibc_fns::gethostbyname2_r)>("gethostbyname2_r"),
      next_symbol<decltype(glibc_fns::gethostbyaddr_r)>("gethostbyaddr_r"),
  };
  return f;
}

bool use_glibc() noexcept {
  if (const char* f = std::getenv("GREENRING_DNS_FORCE_FALLBACK"); f && std::strcmp(f, "1") == 0) return true;
  return !hosts_config().servable;
}

std::uint64_t fallback_calls() noexcept { return g_fallback_calls.load(std::memory_order_relaxed); }

void run_on_helper(std::function<void()> fn) {
  g_fallback_calls.fetch_add(1, std::memory_order_relaxed);
  if (!this_fiber::is_green_thread()) {
    fn();  // a plain thread may block itself
    return;
  }
  auto j = std::make_shared<job>();
  j->fn = std::move(fn);
  pool().submit(j);
  j->done.wait();  // cancellation point: the job keeps running and owns its data
}

}  // namespace greenring::detail::dns
