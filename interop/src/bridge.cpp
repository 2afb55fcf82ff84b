// interop/src/bridge.cpp: the two ways a coroutine tree gets a root -
// await_ (a green thread waits for it) and co_spawn (it lives on its own and
// is joined or awaited through a co_handle).
//
// # await_: run inline, park only if it suspends
// The task is resumed right on the calling green thread (drive()). Most
// awaited tasks that are already able to finish do so there, with no queue, no
// runner, no context switch. If it suspends, the green thread parks on a
// parker that the task's final_suspend unparks (await_sink below), under the
// await_sink's own spinlock: the "structure lock" of the parker protocol, so
// the waker never touches a parker whose wait already ended.
// The task's later resumptions run on the worker's runner; they cannot run on
// the parked green thread, and nothing is gained by waking it for them.
//
// Cancellation (green thread -> coroutine): park() is cancellable; when it
// ends with wake::cancelled (or the deadline), the task's cancel_scope is
// cancelled - on this worker's thread, which owns the task - and the green
// thread waits again, uncancellably, until the task has finished: nothing the
// task owns outlives the call.
//
// # co_spawn roots
// A root is started by a work_item on its home loop, so co_spawn from any
// thread never runs user code inline. Its final_suspend marks it done under
// root_base::lk, wakes joiners, posts a waiting coroutine to its own loop, and
// drops the coroutine's reference. join/co_await/cancel can come from any
// thread; cancel posts an item that requests the scope on the home worker.
#include <greenring/interop/await.hpp>
#include <greenring/interop/detail/root.hpp>

#include "interop_internal.hpp"

namespace greenring::detail::coro {

namespace {

struct await_sink final : completion {
  spinlock lk;
  bool done = false;
  parker* p = nullptr;

  static std::coroutine_handle<> finished(completion* c, promise_base&) noexcept {
    auto* self = static_cast<await_sink*>(c);
    std::unique_lock<spinlock> g(self->lk);
    self->done = true;
    if (self->p) std::exchange(self->p, nullptr)->unpark(wake::signalled);
    return std::noop_coroutine();
  }
};

wake wait_finished(await_sink& w, time_point until, bool cancellable) noexcept {
  for (;;) {
    parker pk;
    {
      std::unique_lock<spinlock> g(w.lk);
      if (w.done) return wake::signalled;
      w.p = &pk;
    }
    wake r = park(pk, until, cancellable);
    {
      std::unique_lock<spinlock> g(w.lk);
      w.p = nullptr;
      if (w.done) return wake::signalled;  // finished first, or meanwhile: report it
    }
    if (r == wake::cancelled || r == wake::timeout) return r;
  }
}

}  // namespace

end_reason run_on_green_thread(std::coroutine_handle<> h, promise_base& p, time_point until) {
  if (!current_gt())
    throw std::logic_error(
        "greenring: await_ called outside a green thread (from a plain thread use "
        "greenring::sync_wait; from a coroutine use co_await)");
  this_fiber::check_cancelled();
  if (h.done()) return end_reason::normal;  // awaited before: just its outcome
  cancel_scope scope;
  await_sink w;
  w.fn = &await_sink::finished;
  p.scope = &scope;
  p.sink = &w;
  drive(h);
  {
    std::unique_lock<spinlock> g(w.lk);
    if (w.done) return end_reason::normal;
  }
  // It suspended. If we are a coroutine runner, let a new runner take over
  // before we park: the task's resumptions may need one.
  abdicate_if_runner();
  wake r = wait_finished(w, until, true);
  if (r == wake::signalled) return end_reason::normal;
  scope.request();
  wait_finished(w, time_point::max(), false);
  return r == wake::cancelled ? end_reason::cancelled : end_reason::timeout;
}

// ---- co_spawn roots --------------------------------------------------------------

namespace {

std::coroutine_handle<> root_finished(completion* c, promise_base&) noexcept {
  auto* r = static_cast<root_base*>(c);
  {
    std::unique_lock<spinlock> g(r->lk);
    r->done = true;
    r->joiners.wake_all();
    if (work_item* cont = std::exchange(r->cont, nullptr)) post(*r->cont_loop, cont);
  }
  r->home->unlink_root(r);
  root_release(r);  // may free the frame we are finishing in: touch nothing after
  return std::noop_coroutine();
}

void root_start(work_item* it) noexcept {
  auto* r = static_cast<root_base*>(it->ctx);
  r->home->link_root(r);
  r->promise->scope = &r->scope;
  r->promise->sink = r;
  drive(r->h);
}

void root_cancel_item(work_item* it) noexcept {
  auto* r = static_cast<root_base*>(it->ctx);
  if (!r->done) r->scope.request();  // done is written on this thread
  {
    std::unique_lock<spinlock> g(r->lk);
    r->cancel_queued = false;
  }
  root_release(r);
}

}  // namespace

void root_launch(root_base* r, int worker_index) {
  r->fn = &root_finished;
  r->start_item.fn = &root_start;
  r->start_item.ctx = r;
  r->cancel_item.fn = &root_cancel_item;
  r->cancel_item.ctx = r;
  worker* here = current_worker();
  runtime_impl* rt = nullptr;
  if (here) {
    rt = &here->rt();
  } else {
    runtime* cur = runtime::current();
    if (!cur) throw std::logic_error("greenring: co_spawn with no greenring::runtime alive");
    rt = &cur->impl();
  }
  unsigned index;
  if (worker_index >= 0)
    index = static_cast<unsigned>(worker_index);
  else if (here && current_gt())
    index = here->index();  // coroutines are cheap: keep them where they are made
  else
    index = rt->pick_worker(-1)->index();
  // home is set, and the start item posted, under the registry lock: the loop
  // cannot retire in between, and the start item (which reads home) is ordered
  // after the store by the queue lock.
  loop_of(*rt, index, &r->start_item, &r->home);
}

void root_release(root_base* r) noexcept {
  if (r->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) r->destroy(r);
}

void root_cancel(root_base* r) noexcept {
  std::unique_lock<spinlock> g(r->lk);
  if (r->done || r->cancel_queued) return;
  r->cancel_queued = true;
  r->refs.fetch_add(1, std::memory_order_relaxed);
  // Posted under lk: the root cannot finish (and its loop cannot retire) meanwhile.
  r->home->post(&r->cancel_item);
}

wake root_wait(root_base* r, time_point until, bool cancellable) {
  if (root_is_done(r)) return wake::signalled;
  abdicate_if_runner();  // the root may need this worker's runner
  std::unique_lock<spinlock> g(r->lk);
  if (r->done) return wake::signalled;
  wake w = r->joiners.wait(g, until, cancellable);
  return r->done ? wake::signalled : w;
}

bool root_set_continuation(root_base* r, work_item* cont, loop& l) noexcept {
  std::unique_lock<spinlock> g(r->lk);
  if (r->done) return false;
  r->cont = cont;
  r->cont_loop = &l;
  return true;
}

bool root_is_done(root_base* r) noexcept {
  std::unique_lock<spinlock> g(r->lk);
  return r->done;
}

}  // namespace greenring::detail::coro
