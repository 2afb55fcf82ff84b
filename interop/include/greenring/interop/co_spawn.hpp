// greenring/interop/co_spawn.hpp: running a coroutine on its own, the
// coroutine counterpart of spawn().
//
//   co_handle<T> co_spawn(task<T>)                 on the calling worker (from a
//                                                  green thread), else the least loaded
//   co_handle<T> co_spawn_on(unsigned worker, task<T>)
//
// The task starts soon after, on its worker's coroutine runner (never inline:
// co_spawn returns at once, from any thread). co_handle<T> mirrors
// join_handle<T>:
//   join()            green thread: suspends (cancellation point, does not cancel
//                     the coroutine); plain thread: blocks. Result or exception.
//   wait_until(d)     true once finished.
//   co_await h        from a coroutine: result or exception. Cancelling the
//                     awaiting coroutine cancels the spawned one and waits for it.
//   cancel()          any thread: the coroutine's current or next greenring
//                     awaitable ends with greenring::cancelled.
//   detach() / ~co_handle   it runs on; its result is dropped.
// At runtime shutdown every co_spawn'ed coroutine still running is cancelled,
// and the runtime waits for it to finish.
#pragma once

#include <greenring/interop/detail/root.hpp>
#include <greenring/interop/task.hpp>

#include <stdexcept>
#include <utility>

namespace greenring {

namespace detail::coro {

template <class T>
struct root final : root_base {
  task<T> t;
  explicit root(task<T>&& tk) : t(std::move(tk)) {
    h = t.handle();
    promise = &t.handle().promise();
    destroy = [](root_base* b) noexcept { delete static_cast<root*>(b); };
  }
};

}  // namespace detail::coro

template <class T>
class co_handle {
 public:
  co_handle() noexcept = default;
  co_handle(co_handle&& o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
  co_handle& operator=(co_handle&& o) noexcept {
    if (this != &o) {
      detach();
      r_ = std::exchange(o.r_, nullptr);
    }
    return *this;
  }
  ~co_handle() { detach(); }

  bool joinable() const noexcept { return r_ != nullptr; }

  T join() {
    check();
    if (detail::coro::root_wait(r_, detail::time_point::max(), true) == detail::wake::cancelled)
      detail::throw_cancelled();
    return finish();
  }

  bool wait_until(deadline until) {
    check();
    auto w = detail::coro::root_wait(r_, until, true);
    if (w == detail::wake::cancelled) detail::throw_cancelled();
    return w == detail::wake::signalled;
  }
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> d) {
    return wait_until(after(std::chrono::duration_cast<clock::duration>(d)));
  }

  void cancel() noexcept {
    if (r_) detail::coro::root_cancel(r_);
  }

  void detach() noexcept {
    if (r_) detail::coro::root_release(std::exchange(r_, nullptr));
  }

  struct awaiter {
    using greenring_native_awaitable = void;
    co_handle& hd;
    detail::coro::resume_item item{};
    detail::coro::cancel_slot slot{};
    detail::coro::cancel_scope* scope = nullptr;
    bool early_cancel = false;

    bool await_ready() {
      hd.check();
      return detail::coro::root_is_done(hd.r_);
    }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
      scope = detail::coro::scope_of(h);
      if (scope && scope->requested()) {
        early_cancel = true;
        return false;
      }
      auto& l = detail::coro::current_loop();
      item.h = h;
      item.owner = &l;
      detail::coro::pending_add(l);
      if (!detail::coro::root_set_continuation(hd.r_, &item, l)) {
        detail::coro::pending_done(l);
        return false;
      }
      if (scope) {
        slot.ctx = this;
        slot.fn = [](detail::coro::cancel_slot* s) noexcept { static_cast<awaiter*>(s->ctx)->hd.cancel(); };
        scope->attach(&slot);
      }
      return true;
    }
    T await_resume() {
      if (scope) scope->detach(&slot);
      if (early_cancel) {
        scope->consume();
        throw cancelled();
      }
      if (scope && scope->requested() && hd.r_->promise->ended_cancelled) scope->consume();
      return hd.finish();
    }
  };
  awaiter operator co_await() & noexcept { return awaiter{*this}; }
  awaiter operator co_await() && noexcept { return awaiter{*this}; }

 private:
  template <class U>
  friend co_handle<U> co_spawn_on_impl(int, task<U>);

  explicit co_handle(detail::coro::root<T>* r) noexcept : r_(r) {}

  void check() const {
    if (!r_) throw std::logic_error("greenring: join on a co_handle that is not joinable");
  }
  T finish() {
    struct release {
      detail::coro::root<T>* r;
      ~release() { detail::coro::root_release(r); }
    } guard{std::exchange(r_, nullptr)};
    return guard.r->t.handle().promise().get();
  }

  detail::coro::root<T>* r_ = nullptr;
};

template <class T>
co_handle<T> co_spawn_on_impl(int worker, task<T> t) {
  if (!t || t.done()) throw std::logic_error("greenring: co_spawn of an empty task or one that already ran");
  auto* r = new detail::coro::root<T>(std::move(t));
  try {
    detail::coro::root_launch(r, worker);
  } catch (...) {
    delete r;
    throw;
  }
  return co_handle<T>(r);
}

template <class T>
co_handle<T> co_spawn(task<T> t) {
  return co_spawn_on_impl(-1, std::move(t));
}

template <class T>
co_handle<T> co_spawn_on(unsigned worker, task<T> t) {
  return co_spawn_on_impl(static_cast<int>(worker), std::move(t));
}

}  // namespace greenring
