// worker/worker.cpp: one OS thread per worker, its Boost.Fiber scheduling
// algorithm, and the runtime that starts and stops them.
//
// # One loop iteration (what a worker does between two green threads)
// Boost.Fiber's scheduler calls our algorithm; all waiting is the driver's.
//  1. awakened(ctx): a context became runnable (spawned, unparked, yielded);
//     it joins the FIFO ready queue.
//  2. pick_next(): once per scheduler pass — on the dispatcher's turn, which
//     Boost.Fiber gives it once per round of the ready queue — the worker
//     polls without blocking: drains its inbox (green threads posted from other threads),
//     flushes the SQEs queued during the pass in one io_uring_enter and reaps
//     completions, unparking their green threads. So a busy worker never
//     starves I/O and never pays one enter per suspension.
//  3. suspend_until(t): nothing is runnable. Spin up to options::idle_spin
//     polling the driver and the inbox (waking a halted vCPU costs ~20 us on
//     the target VMs, ANCHORS.md), then park in driver::wait() until a
//     completion, a notify() or the earliest timer t (Boost's sleep queue).
//  4. notify(): any thread, after queueing work for this worker (see the
//     state-word protocol in worker.hpp).
#include "worker/worker.hpp"

#include "detail/sys.hpp"
#include "dns/lookup.hpp"
#include "io/fd_registry.hpp"
#include "stack/stack.hpp"
#include "worker/green_tls.hpp"
#include "worker/asan_switch.hpp"

#include <greenring/detail/parking_lot.hpp>

#include <boost/fiber/algo/round_robin.hpp>

#include <cxxabi.h>

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <mutex>
#include <new>
#include <stdexcept>

namespace greenring::detail {
namespace {

thread_local worker* tls_worker = nullptr;

std::mutex g_runtimes_lk;
std::vector<runtime*> g_runtimes;  // live runtimes, newest last

inline void spin_pause() noexcept { __builtin_ia32_pause(); }

using eh_globals = eh_state;  // libstdc++'s per-thread exception state

class worker_algo final : public boost::fibers::algo::algorithm {
 public:
  // Constructed by use_scheduling_algorithm on the worker's thread, in its
  // main context: that is what runs now.
  explicit worker_algo(worker& w) noexcept
      : w_(w), running_(boost::fibers::context::active()), main_ctx_(running_),
        eh_(reinterpret_cast<eh_globals*>(abi::__cxa_get_globals())) {
    tls_.bind();
  }

  // When the scheduler shuts down, the ending dispatcher resumes the main
  // context directly, not through pick_next: give the thread the main
  // context's own state back (an adopted thread goes on running its code).
  ~worker_algo() override {
    if (running_ == main_ctx_) return;
    eh_->caught = main_eh_.caught;
    eh_->uncaught = main_eh_.uncaught;
    tls_.load(main_tls_);
  }

  void awakened(boost::fibers::context* ctx) noexcept override {
    if (!dispatcher_ && ctx->is_context(boost::fibers::type::dispatcher_context)) dispatcher_ = ctx;
    asan::note_context(ctx);
    ctx->ready_link(rq_);
  }

  boost::fibers::context* pick_next() noexcept override {
    // Who is calling: every switch on a worker goes through here (Boost.Fiber
    // resumes what we return, or its dispatcher when we return nullptr), so we
    // track the running context ourselves instead of paying context::active()'s
    // TLS lookup in the shared library on every switch. Unknown (nullptr) only
    // if a switch bypassed us, e.g. a launch::dispatch fiber: then ask Boost.
    auto* active = running_ ? running_ : boost::fibers::context::active();
    // Boost's dispatcher re-queues itself behind every context it resumes, so
    // it gets exactly one turn per pass over the ready queue: that turn is
    // where the pass's submissions are flushed and completions reaped. Only
    // there: a suspending green thread calls pick_next while still holding
    // its parker's lock, and reaping unparks.
    bool from_dispatcher = active == dispatcher_;
    if (from_dispatcher) w_.poll_events();
    if (w_.abandoned()) [[unlikely]]
      drop_forked_copies();
    if (rq_.empty()) {
      asan::before_switch(active, nullptr);
      if (!from_dispatcher) {
        swap_thread_state(active, dispatcher_);
        running_ = dispatcher_;
        note_switch(nullptr);
      }
      return nullptr;
    }
    boost::fibers::context* ctx = &rq_.front();
    rq_.pop_front();
    // Canary-mode stacks (no guard page) are checked at every switch, on the
    // way out of the suspending green thread and into the next one.
    if (canary_mode()) {
      if (auto* cur = static_cast<gt_base*>(active->get_properties())) check_canary(cur);
      if (auto* next = static_cast<gt_base*>(ctx->get_properties())) check_canary(next);
    }
    asan::before_switch(active, ctx);
    swap_thread_state(active, ctx);
    running_ = ctx;
    note_switch(static_cast<gt_base*>(ctx->get_properties()));
    return ctx;
  }

  bool has_ready_fibers() const noexcept override { return !rq_.empty(); }

  // In a fork child: the parent's other green threads of this worker exist
  // here only as copies of their stacks; they must never run (POSIX: only the
  // forking thread survives). They are dropped from the ready queue, unrun
  // and leaked, whenever they become ready (a timer, a wake).
  void drop_forked_copies() noexcept {
    for (auto it = rq_.begin(); it != rq_.end();) {
      boost::fibers::context* c = &*it;
      if (c == w_.survivor || c == dispatcher_)
        ++it;
      else
        it = rq_.erase(it);
    }
  }

  void suspend_until(std::chrono::steady_clock::time_point const& until) noexcept override {
    w_.idle(until);
  }

  void notify() noexcept override { w_.notify(); }

 private:
  // Each context keeps its own C++ exception state and green-TLS values
  // (green_tls.hpp) across switches: green threads in their gt_base, the
  // worker's main and dispatcher contexts here. The TLS block is the OS
  // thread's, so the addresses are fixed: a few loads and stores per switch.
  struct saved_state {
    eh_globals* eh;
    std::uint64_t* tls;
  };
  saved_state slot(boost::fibers::context* c) noexcept {
    if (c) {
      if (auto* gt = static_cast<gt_base*>(c->get_properties())) return {&gt->eh, gt->tls};
      if (c != dispatcher_) return {&main_eh_, main_tls_};
    }
    return {&other_eh_, other_tls_};
  }
  void swap_thread_state(boost::fibers::context* from, boost::fibers::context* to) noexcept {
    if (from == to) return;
    saved_state out = slot(from);
    saved_state in = slot(to);
    out.eh->caught = eh_->caught;
    out.eh->uncaught = eh_->uncaught;
    eh_->caught = in.eh->caught;
    eh_->uncaught = in.eh->uncaught;
    if (tls_.size()) {
      tls_.save(out.tls);
      tls_.load(in.tls);
    }
  }

  // Progress for the blocking watchdog. Only this thread writes these, so a
  // relaxed load+store (no lock prefix) is enough.
  void note_switch(const gt_base* next) noexcept {
    w_.switches.store(w_.switches.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    w_.running_gt.store(next ? next->id : 0, std::memory_order_relaxed);
  }

  worker& w_;
  boost::fibers::scheduler::ready_queue_type rq_;
  boost::fibers::context* running_;
  boost::fibers::context* main_ctx_;
  boost::fibers::context* dispatcher_ = nullptr;
  eh_globals* eh_;
  eh_globals main_eh_{};
  eh_globals other_eh_{};
  green_tls_view tls_;
  std::uint64_t main_tls_[max_green_tls] = {};
  std::uint64_t other_tls_[max_green_tls] = {};
};

unsigned default_workers() {
  if (const char* e = std::getenv("GREENRING_WORKERS"); e && *e) {
    long n = std::strtol(e, nullptr, 10);
    if (n > 0 && n <= 1024) return static_cast<unsigned>(n);
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return static_cast<unsigned>(CPU_COUNT(&set));
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<unsigned>(n) : 1;
}

std::size_t default_stack() {
  std::size_t v = stack_size_from_env();
  return v ? v : 64 * 1024;
}

}  // namespace

worker* current_worker() noexcept { return tls_worker; }

void worker::notify() noexcept {
  if (state_.exchange(notified, std::memory_order_acq_rel) != parked) return;
  if (abandoned_.load(std::memory_order_relaxed))
    sys::raw(SYS_futex, sys::L(&state_), FUTEX_WAKE_PRIVATE, 1);
  else
    drv_->wake();
}

void worker::abandon() noexcept {
  abandoned_.store(true, std::memory_order_relaxed);
  if (drv_) drv_->abandon();
}

void after_fork_child() noexcept {
  if (tls_worker) tls_worker->survivor = boost::fibers::context::active();
  tls_worker = nullptr;
  new (&g_runtimes_lk) std::mutex();
  for (runtime* rt : g_runtimes)
    for (auto& w : rt->impl().workers) w->abandon();
  g_runtimes.clear();
  parking_lot_after_fork();
  fd_registry_after_fork();
  stack_after_fork();
  dns::fallback_after_fork();
}

void worker::post(boost::fibers::context* ctx) noexcept {
  {
    std::lock_guard<spinlock> g(inbox_lk_);
    inbox_.push_back(ctx);
  }
  inbox_nonempty_.store(true, std::memory_order_release);
  notify();
}

void worker::drain_inbox() noexcept {
  if (!inbox_nonempty_.load(std::memory_order_acquire)) return;
  {
    std::lock_guard<spinlock> g(inbox_lk_);
    inbox_.swap(inbox_spare_);
    inbox_nonempty_.store(false, std::memory_order_relaxed);
  }
  auto* active = boost::fibers::context::active();
  for (auto* ctx : inbox_spare_) {
    active->attach(ctx);
    active->get_scheduler()->schedule(ctx);
  }
  inbox_spare_.clear();
}

void worker::poll_events() noexcept {
  drain_inbox();
  if (!abandoned_.load(std::memory_order_relaxed)) drv_->poll();
}

void worker::idle(std::chrono::steady_clock::time_point until) noexcept {
  using clk = std::chrono::steady_clock;
  if (abandoned_.load(std::memory_order_relaxed)) {
    idle_abandoned(until);
    return;
  }
  auto now = clk::now();
  auto spin_end = now + rt_.opts.idle_spin;
  if (spin_end > until) spin_end = until;
  while (now < spin_end) {
    if (state_.load(std::memory_order_relaxed) == notified) break;
    if (drv_->inflight() && drv_->poll(true) > 0) {
      drain_inbox();
      return;
    }
    for (int i = 0; i < 32; ++i) spin_pause();
    now = clk::now();
  }
  if (state_.exchange(parked, std::memory_order_acq_rel) != notified) {
    if (until == clk::time_point::max()) {
      drv_->wait(nullptr);
    } else {
      now = clk::now();
      auto d = until > now ? until - now : clk::duration::zero();
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
      timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
      drv_->wait(&ts);
    }
  }
  state_.store(running, std::memory_order_seq_cst);
  drain_inbox();  // wait() has reaped the completions already
}

void worker::idle_abandoned(std::chrono::steady_clock::time_point until) noexcept {
  if (state_.exchange(parked, std::memory_order_acq_rel) != notified) {
    timespec ts{};
    timespec* tsp = nullptr;
    if (until != std::chrono::steady_clock::time_point::max()) {
      auto d = until - std::chrono::steady_clock::now();
      auto ns = d.count() > 0 ? std::chrono::duration_cast<std::chrono::nanoseconds>(d).count() : 0;
      ts = {static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
      tsp = &ts;
    }
    sys::raw(SYS_futex, sys::L(&state_), FUTEX_WAIT_PRIVATE, parked, sys::L(tsp));
  }
  state_.store(running, std::memory_order_seq_cst);
  drain_inbox();
}

void worker::link_live(gt_base* gt) noexcept {
  gt->live_prev = nullptr;
  gt->live_next = live_head_;
  if (live_head_) live_head_->live_prev = gt;
  live_head_ = gt;
}

void worker::unlink_live(gt_base* gt) noexcept {
  if (gt->live_prev) gt->live_prev->live_next = gt->live_next; else live_head_ = gt->live_next;
  if (gt->live_next) gt->live_next->live_prev = gt->live_prev;
  gt->live_prev = gt->live_next = nullptr;
}

runtime_impl::runtime_impl(runtime& s, options o) : self(s), opts(o) {
  unsigned n = opts.workers ? opts.workers : default_workers();
  stack_size = opts.stack_size ? opts.stack_size : default_stack();
  chosen = choose_backend(opts.driver, opts.ring_entries, fallback_reason);
  if (opts.adopt_calling_thread && current_worker())
    throw std::logic_error("greenring: adopt_calling_thread on a thread that already is a worker");
  workers.reserve(n);
  for (unsigned i = 0; i < n; ++i) workers.push_back(std::make_unique<worker>(*this, i));
  unsigned first = 0;
  if (opts.adopt_calling_thread) {
    init_worker(*workers[0]);  // throws: nothing else started yet
    first = 1;
  }
  std::atomic<int> ready{0};
  std::vector<std::exception_ptr> errs(n);
  for (unsigned i = first; i < n; ++i) {
    worker& w = *workers[i];
    w.thread = native_thread([this, &w, &ready, &errs, i] { worker_main(w, ready, errs[i]); });
  }
  int want = static_cast<int>(n - first);
  while (ready.load(std::memory_order_acquire) < want) ready.wait(ready.load());
  for (auto& e : errs) {
    if (e) {
      shutdown();
      std::rethrow_exception(e);
    }
  }
  watchdog_period = opts.watchdog;
  if (watchdog_period.count() == 0) {
    if (const char* env = std::getenv("GREENRING_WATCHDOG_MS"); env && *env)
      watchdog_period = std::chrono::milliseconds(std::strtol(env, nullptr, 10));
  }
  if (watchdog_period.count() > 0) watchdog = native_thread([this] { watchdog_main(); });
}

// The blocking watchdog: a plain thread that samples each worker's switch
// counter every period/4. A worker that is not parked in the kernel and has not
// switched for a whole period has been held by one green thread (or one
// blocking call) all that time: report it once, with the green thread's id.
void runtime_impl::watchdog_main() noexcept {
  using clk = std::chrono::steady_clock;
  struct seen {
    std::uint64_t switches = ~std::uint64_t(0);
    clk::time_point since{};
    bool reported = false;
  };
  std::vector<seen> s(workers.size());
  auto tick = std::max(watchdog_period / 4, std::chrono::milliseconds(1));
  std::unique_lock<std::mutex> lk(watchdog_lk);
  while (!watchdog_cv.wait_for(lk, tick, [this] { return watchdog_stop; })) {
    auto now = clk::now();
    for (std::size_t i = 0; i < workers.size(); ++i) {
      worker& w = *workers[i];
      std::uint64_t sw = w.switches.load(std::memory_order_relaxed);
      if (w.is_parked() || sw != s[i].switches) {
        s[i] = seen{sw, now, false};
        continue;
      }
      if (s[i].reported || now - s[i].since < watchdog_period) continue;
      s[i].reported = true;
      w.stalls.fetch_add(1, std::memory_order_relaxed);
      stall_report r{static_cast<unsigned>(i), w.running_gt.load(std::memory_order_relaxed),
                     std::chrono::duration_cast<std::chrono::milliseconds>(now - s[i].since)};
      if (opts.on_stall) {
        opts.on_stall(r);
      } else {
        std::fprintf(stderr,
                     "greenring: worker %u has not switched for %lld ms, held by green thread #%llu "
                     "(a blocking call greenring does not see, or a busy loop; see docs/design.md)\n",
                     r.worker, static_cast<long long>(r.stalled.count()),
                     static_cast<unsigned long long>(r.green_thread));
      }
    }
  }
}

runtime_impl::~runtime_impl() { shutdown(); }

void runtime_impl::init_worker(worker& w) {
  if (chosen == backend::uring) {
    try {
      w.drv_ = make_uring_driver(opts.ring_entries);
    } catch (const std::system_error& e) {
      if (opts.driver == backend::uring) throw;
      std::fprintf(stderr, "greenring: worker %u: %s; using epoll\n", w.index(), e.what());
      w.drv_ = make_epoll_driver();
    }
  } else {
    w.drv_ = make_epoll_driver();
  }
  tls_worker = &w;
  install_overflow_handler();
  set_stack_cache_capacity(opts.stack_cache);
  boost::fibers::use_scheduling_algorithm<worker_algo>(w);
}

// Shutdown of one worker, on its own thread, in its main context:
//  1. request cancellation of every green thread that runs here, including
//     ones spawned while earlier ones unwind (hence the loop);
//  2. wait until none is left, so Boost's scheduler holds no green thread;
//  3. give the dispatcher a turn to release terminated contexts.
// Afterwards the thread exits (Boost's scheduler dies with it) or, for an
// adopted thread, gets a plain round_robin scheduler back.
void runtime_impl::drain_worker(worker& w) noexcept {
  while (w.live.load(std::memory_order_acquire) != 0) {
    for (gt_base* gt = w.live_head_; gt; gt = gt->live_next) request_cancel(gt);
    w.drained.wait_for(std::chrono::milliseconds(10));
  }
  boost::this_fiber::yield();
  asan::finish_pending();
}

void runtime_impl::worker_main(worker& w, std::atomic<int>& ready, std::exception_ptr& err) {
  try {
    init_worker(w);
  } catch (...) {
    err = std::current_exception();
    tls_worker = nullptr;
    ready.fetch_add(1, std::memory_order_release);
    ready.notify_all();
    return;
  }
  ready.fetch_add(1, std::memory_order_release);
  ready.notify_all();
  // The worker's main context only waits; green threads run while it does.
  w.stop.wait();
  drain_worker(w);
  tls_worker = nullptr;
  remove_altstack();
}

void runtime_impl::shutdown() noexcept {
  if (watchdog.joinable()) {
    {
      std::lock_guard<std::mutex> g(watchdog_lk);
      watchdog_stop = true;
    }
    watchdog_cv.notify_all();
    watchdog.join();
  }
  for (auto& w : workers) {
    if (!w->thread.joinable()) continue;
    w->stopping.store(true, std::memory_order_release);
    w->stop.set();
  }
  if (opts.adopt_calling_thread && !workers.empty() && tls_worker == workers[0].get()) {
    worker& w = *workers[0];
    w.stopping.store(true, std::memory_order_release);
    drain_worker(w);
    // Hand the thread back: a plain scheduler replaces ours (Boost moves any
    // ready context over), and nothing refers to this worker any more.
    boost::fibers::use_scheduling_algorithm<boost::fibers::algo::round_robin>();
    tls_worker = nullptr;
  }
  for (auto& w : workers)
    if (w->thread.joinable()) w->thread.join();
}

worker* runtime_impl::pick_worker(int requested) {
  if (requested >= 0) {
    if (static_cast<std::size_t>(requested) >= workers.size())
      throw std::out_of_range("greenring: spawn_on: no such worker");
    return workers[static_cast<std::size_t>(requested)].get();
  }
  // Placement rule: stay local (cheapest, keeps caches warm) unless the local
  // worker runs more than kSlack green threads beyond the least loaded one.
  constexpr std::size_t kSlack = 16;
  worker* best = workers[0].get();
  std::size_t best_live = best->live.load(std::memory_order_relaxed);
  for (std::size_t i = 1; i < workers.size(); ++i) {
    std::size_t l = workers[i]->live.load(std::memory_order_relaxed);
    if (l < best_live) {
      best = workers[i].get();
      best_live = l;
    }
  }
  worker* local = tls_worker;
  if (local && &local->rt() == this && local->live.load(std::memory_order_relaxed) <= best_live + kSlack)
    return local;
  return best;
}

}  // namespace greenring::detail

namespace greenring {

runtime::runtime(options opts) {
  impl_ = std::make_unique<detail::runtime_impl>(*this, opts);
  std::lock_guard<std::mutex> g(detail::g_runtimes_lk);
  detail::g_runtimes.push_back(this);
}

runtime::~runtime() {
  {
    std::lock_guard<std::mutex> g(detail::g_runtimes_lk);
    std::erase(detail::g_runtimes, this);
  }
  impl_->shutdown();
}

unsigned runtime::workers() const noexcept { return static_cast<unsigned>(impl_->workers.size()); }

const char* runtime::backend_name() const noexcept { return impl_->workers[0]->drv().name(); }

std::string runtime::backend_features() const { return impl_->workers[0]->drv().features(); }

std::size_t runtime::live_green_threads() const noexcept {
  std::size_t n = 0;
  for (auto& w : impl_->workers) n += w->live.load(std::memory_order_relaxed);
  return n;
}

std::vector<worker_stats> runtime::stats() const {
  std::vector<worker_stats> v;
  for (auto& w : impl_->workers)
    v.push_back({w->index(), w->live.load(std::memory_order_relaxed), w->switches.load(std::memory_order_relaxed),
                 w->stalls.load(std::memory_order_relaxed), w->is_parked()});
  return v;
}

runtime* runtime::current() noexcept {
  if (auto* w = detail::current_worker()) return &w->rt().self;
  std::lock_guard<std::mutex> g(detail::g_runtimes_lk);
  return detail::g_runtimes.empty() ? nullptr : detail::g_runtimes.back();
}

}  // namespace greenring
