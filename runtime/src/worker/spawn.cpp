// worker/spawn.cpp: launching, finishing, joining and cancelling green threads,
// and the this_fiber functions.
//
// A green thread is built on the spawning thread (stack from that thread's
// cache, control block at the stack top, Boost context below it) and then
// either attached to the local scheduler directly or posted to its worker's
// inbox. Only the owner worker ever resumes it.
//
// Cancellation handshake (gt_base::lk): request_cancel sets cancel_requested,
// then, under lk, unparks the parker the green thread registered for a
// cancellable wait. park() registers under the same lock after checking the
// flag, so a request is never missed between the check and the suspension.
#include "worker/worker.hpp"

#include "stack/stack.hpp"

#include <greenring/cancel.hpp>
#include <greenring/spawn.hpp>

#include <stdexcept>

namespace greenring::detail {

gt_base* current_gt() noexcept {
  auto* ctx = boost::fibers::context::active();
  return ctx ? static_cast<gt_base*>(ctx->get_properties()) : nullptr;
}

runtime_impl& runtime_for_spawn() {
  if (auto* w = current_worker()) return w->rt();
  runtime* rt = runtime::current();
  if (!rt) throw std::logic_error("greenring: spawn with no greenring::runtime alive");
  return rt->impl();
}

std::size_t stack_size(runtime_impl& rt) noexcept { return rt.stack_size; }

void launch(runtime_impl& rt, int requested, boost::fibers::context* ctx, gt_base* gt) {
  worker* w = rt.pick_worker(requested);
  gt->id = rt.next_id.fetch_add(1, std::memory_order_relaxed);
  gt->owner = w;
  w->live.fetch_add(1, std::memory_order_relaxed);
  if (w == current_worker()) {
    auto* active = boost::fibers::context::active();
    active->attach(ctx);
    active->get_scheduler()->schedule(ctx);
  } else {
    w->post(ctx);
  }
}

void enter_green_thread(gt_base* gt) noexcept { gt->owner->link_live(gt); }

void leave_green_thread(gt_base* gt) noexcept {
  check_canary(gt);
  worker* w = gt->owner;
  w->unlink_live(gt);
  {
    std::unique_lock<spinlock> g(gt->lk);
    gt->done = true;
    gt->joiners.wake_all();
  }
  if (w->live.fetch_sub(1, std::memory_order_acq_rel) == 1 && w->stopping.load(std::memory_order_acquire))
    w->drained.set();
}

wake join_wait(gt_base* gt, time_point until, bool cancellable) noexcept {
  std::unique_lock<spinlock> g(gt->lk);
  if (gt->done) return wake::signalled;
  wake r = gt->joiners.wait(g, until, cancellable);
  if (gt->done) return wake::signalled;  // finished while we were being cancelled: report it
  return r;
}

void request_cancel(gt_base* gt) noexcept {
  gt->cancel_requested.store(true, std::memory_order_release);
  std::unique_lock<spinlock> g(gt->lk);
  if (gt->current_parker) gt->current_parker->unpark(wake::cancelled);
}

std::atomic<void (*)(gt_base*)> g_cancel_hook{nullptr};

void set_cancel_hook(void (*hook)(gt_base*)) noexcept { g_cancel_hook.store(hook, std::memory_order_release); }

[[noreturn]] void throw_cancelled() {
  gt_base* gt = current_gt();
  if (gt) gt->cancel_requested.store(false, std::memory_order_relaxed);
  if (auto* hook = g_cancel_hook.load(std::memory_order_acquire); hook && gt) hook(gt);  // may not return
  throw cancelled();
}

wake park(parker& p, time_point until, bool cancellable) noexcept {
  auto* ctx = boost::fibers::context::active();
  gt_base* gt = cancellable ? static_cast<gt_base*>(ctx->get_properties()) : nullptr;
  if (gt) {
    std::unique_lock<spinlock> g(gt->lk);
    if (gt->cancel_block > 0) {
      gt = nullptr;
    } else if (gt->cancel_requested.load(std::memory_order_acquire)) {
      g.unlock();
      p.unpark(wake::cancelled);
      return p.reason;
    } else {
      gt->current_parker = &p;
    }
  }
  {
    std::unique_lock<spinlock> lk(p.lk);
    while (p.reason == wake::none) {
      if (until != time_point::max() && until <= std::chrono::steady_clock::now()) {
        p.reason = wake::timeout;
        break;
      }
      p.parked = true;
      p.w = ctx->create_waker();
      if (until == time_point::max())
        ctx->suspend(lk);
      else
        ctx->wait_until(until, lk, boost::fibers::waker(p.w));
      lk.lock();
      p.parked = false;
    }
  }
  if (gt) {
    std::unique_lock<spinlock> g(gt->lk);
    gt->current_parker = nullptr;
  }
  return p.reason;
}

}  // namespace greenring::detail

namespace greenring::this_fiber {

using namespace greenring::detail;

bool is_green_thread() noexcept { return current_gt() != nullptr; }
std::uint64_t id() noexcept {
  gt_base* gt = current_gt();
  return gt ? gt->id : 0;
}
int worker_index() noexcept {
  worker* w = current_worker();
  return w ? static_cast<int>(w->index()) : -1;
}

void yield() {
  auto* ctx = boost::fibers::context::active();
  ctx->yield();
  if (auto* gt = static_cast<gt_base*>(ctx->get_properties());
      gt && gt->cancel_requested.load(std::memory_order_relaxed))
    check_cancelled();
}

void sleep_until(deadline until) {
  parker p;
  if (park(p, until, true) == wake::cancelled) throw_cancelled();
}

cancellation_guard::cancellation_guard() noexcept {
  if (gt_base* gt = current_gt()) {
    std::unique_lock<spinlock> g(gt->lk);
    ++gt->cancel_block;
  }
}
cancellation_guard::~cancellation_guard() {
  if (gt_base* gt = current_gt()) {
    std::unique_lock<spinlock> g(gt->lk);
    --gt->cancel_block;
  }
}

bool cancellation_requested() noexcept {
  gt_base* gt = current_gt();
  return gt && gt->cancel_requested.load(std::memory_order_acquire);
}

void check_cancelled() {
  gt_base* gt = current_gt();
  if (!gt || !gt->cancel_requested.load(std::memory_order_acquire)) return;
  {
    std::unique_lock<spinlock> g(gt->lk);
    if (gt->cancel_block > 0) return;
  }
  throw_cancelled();
}

}  // namespace greenring::this_fiber
