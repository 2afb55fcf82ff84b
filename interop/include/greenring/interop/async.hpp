// greenring/interop/async.hpp: a coroutine waiting for green threads.
//
//   co_await async_(fn, args...)   runs fn(args...) - any synchronous call tree:
//                                  green I/O, greenring::mutex, sleeps, and in a
//                                  preloaded process any intercepted blocking libc
//                                  call - on a new green thread, and resumes the
//                                  coroutine with its result or exception.
//   co_await handle                (a greenring::join_handle<T>) the green
//                                  thread's result or exception.
//
// # async_
// Arguments are decay-copied (like spawn); fn and its arguments live in the
// awaitable, in the coroutine frame, until fn returns. The green thread is
// placed by spawn's rule (on the coroutine's worker unless that worker is
// overloaded). When fn returns, the green thread posts the coroutine to its
// owning worker's runner, which resumes it there.
// Cancellation, both ways: cancelling the awaiting coroutine cancels the green
// thread (its current or next cancellable call throws greenring::cancelled; if
// it had not started yet, fn is not called at all); the coroutine is resumed
// once the green thread has finished, with fn's exception - greenring::cancelled
// - or with fn's result if it finished anyway (the cancellation then stays
// pending for the next greenring awaitable). Cancelling the green thread by
// other means reaches the coroutine as fn's greenring::cancelled exception.
//
// # co_await join_handle
// Ready at once when the green thread has finished (no suspension, no helper).
// Otherwise a small helper green thread on the coroutine's worker waits for it
// and posts the coroutine back. The handle is joined (consumed) by the await.
// Cancelling the awaiting coroutine cancels the awaited green thread and still
// waits for it (nothing is left running behind the coroutine's back).
#pragma once

#include <greenring/cancel.hpp>
#include <greenring/interop/detail/loop.hpp>
#include <greenring/interop/task.hpp>
#include <greenring/spawn.hpp>

#include <exception>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>

namespace greenring {

namespace detail::coro {

// The non-template half of a coroutine waiting for a green thread.
class gt_wait_base {
 protected:
  // false: the chain is already cancelled, do not suspend (await_resume throws).
  bool prepare(std::coroutine_handle<> h, cancel_scope* sc) {
    scope_ = sc;
    if (sc && sc->requested()) {
      early_cancel_ = true;
      return false;
    }
    loop& l = current_loop();
    item_.h = h;
    item_.owner = &l;
    pending_add(l);
    return true;
  }
  void abort() noexcept { pending_done(*item_.owner); }
  void arm(void (*fn)(cancel_slot*) noexcept, void* ctx) noexcept {
    if (!scope_) return;
    slot_.fn = fn;
    slot_.ctx = ctx;
    scope_->attach(&slot_);
  }
  // From the green thread, last thing it does for us.
  void complete() noexcept { post(*item_.owner, &item_); }
  void settle() {
    if (scope_) scope_->detach(&slot_);
    if (early_cancel_) {
      scope_->consume();
      throw cancelled();
    }
  }
  // Rethrows `e`, first consuming the chain's cancellation when `e` is the
  // greenring::cancelled that it caused.
  [[noreturn]] void rethrow(std::exception_ptr e) {
    if (scope_ && scope_->requested() && is_cancelled(e)) scope_->consume();
    std::rethrow_exception(e);
  }

  resume_item item_{};
  cancel_slot slot_{};
  cancel_scope* scope_ = nullptr;
  bool early_cancel_ = false;
};

template <class R, class Fn>
class async_awaitable : gt_wait_base {
 public:
  using greenring_native_awaitable = void;
  explicit async_awaitable(Fn fn) : fn_(std::move(fn)) {}
  async_awaitable(const async_awaitable&) = delete;
  async_awaitable& operator=(const async_awaitable&) = delete;

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    if (!prepare(h, scope_of(h))) return false;
    try {
      gt_ = greenring::spawn([this]() noexcept { body(); });
    } catch (...) {
      abort();
      throw;
    }
    arm(&cancel_green_thread, this);
    return true;
  }
  R await_resume() {
    settle();
    if (error_) rethrow(error_);
    return value_.take();
  }

 private:
  void body() noexcept {
    try {
      this_fiber::check_cancelled();  // cancelled before it started: fn is not run
      value_.set_from(fn_);
    } catch (...) {
      error_ = std::current_exception();
    }
    complete();  // the coroutine may run (and free us) from here on
  }
  static void cancel_green_thread(cancel_slot* s) noexcept { static_cast<async_awaitable*>(s->ctx)->gt_.cancel(); }

  Fn fn_;
  result_box<R> value_;
  std::exception_ptr error_;
  join_handle<void> gt_;
};

template <class T>
class join_awaiter : gt_wait_base {
 public:
  using greenring_native_awaitable = void;
  explicit join_awaiter(join_handle<T>& h) noexcept : h_(h) {}
  join_awaiter(const join_awaiter&) = delete;
  join_awaiter& operator=(const join_awaiter&) = delete;

  bool await_ready() {
    if (!h_.joinable()) throw std::logic_error("greenring: co_await on a join_handle that is not joinable");
    // Has it finished? Under a guard: a cancellation pending on the green
    // thread that runs this coroutine is not ours to deliver here.
    this_fiber::cancellation_guard g;
    return h_.wait_until(clock::time_point::min());
  }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    if (!prepare(h, scope_of(h))) return false;
    try {
      helper_ = greenring::spawn_on(static_cast<unsigned>(loop_worker_index(*item_.owner)),
                                    [this]() noexcept { wait_body(); });
    } catch (...) {
      abort();
      throw;
    }
    arm(&cancel_target, this);
    return true;
  }
  T await_resume() {
    settle();
    try {
      return h_.join();  // finished: returns or rethrows without waiting
    } catch (const cancelled&) {
      rethrow(std::current_exception());
    }
  }

 private:
  void wait_body() noexcept {
    {
      this_fiber::cancellation_guard g;  // only the target's end ends this wait
      try {
        h_.wait_until(no_deadline);
      } catch (...) {
      }
    }
    complete();
  }
  static void cancel_target(cancel_slot* s) noexcept { static_cast<join_awaiter*>(s->ctx)->h_.cancel(); }

  join_handle<T>& h_;
  join_handle<void> helper_;
};

}  // namespace detail::coro

template <class F, class... A>
auto async_(F&& fn, A&&... args) {
  using R = std::invoke_result_t<std::decay_t<F>, std::decay_t<A>...>;
  auto bound = [f = std::forward<F>(fn), tup = std::make_tuple(std::forward<A>(args)...)]() mutable -> R {
    return std::apply(std::move(f), std::move(tup));
  };
  return detail::coro::async_awaitable<R, decltype(bound)>(std::move(bound));
}

template <class T>
detail::coro::join_awaiter<T> operator co_await(join_handle<T>& h) noexcept {
  return detail::coro::join_awaiter<T>(h);
}
template <class T>
detail::coro::join_awaiter<T> operator co_await(join_handle<T>&& h) noexcept {
  return detail::coro::join_awaiter<T>(h);
}

}  // namespace greenring
