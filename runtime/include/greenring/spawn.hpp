// greenring/spawn.hpp: starting, joining, detaching and cancelling green threads.
#pragma once

#include <greenring/cancel.hpp>
#include <greenring/detail/green_thread.hpp>

#include <cstdint>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

namespace greenring {

// Owns the right to join one green thread. Move-only. Destroying a joinable
// handle detaches the green thread (it runs on; its result is discarded).
template <class T>
class join_handle {
 public:
  join_handle() noexcept = default;
  join_handle(join_handle&&) noexcept = default;
  join_handle& operator=(join_handle&& o) noexcept {
    if (this != &o) {
      detach();
      ctx_ = std::move(o.ctx_);
      st_ = std::exchange(o.st_, nullptr);
    }
    return *this;
  }
  ~join_handle() { detach(); }

  bool joinable() const noexcept { return static_cast<bool>(ctx_); }

  // Waits for the green thread and returns its result, or rethrows the
  // exception it ended with (greenring::cancelled if it was cancelled and let
  // that propagate). From a green thread the wait is cancellable; from a plain
  // OS thread it blocks that thread. Throws std::logic_error if not joinable.
  T join() {
    check();
    if (detail::join_wait(st_, detail::time_point::max(), true) == detail::wake::cancelled)
      detail::throw_cancelled();
    return finish();
  }

  // Waits until the green thread ends or `until` passes. Returns whether it ended;
  // join() then returns without waiting.
  bool wait_until(deadline until) {
    check();
    auto r = detail::join_wait(st_, until, true);
    if (r == detail::wake::cancelled) detail::throw_cancelled();
    return r == detail::wake::signalled;
  }
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> d) {
    return wait_until(after(std::chrono::duration_cast<clock::duration>(d)));
  }

  // Requests cancellation: the green thread's current or next cancellable
  // suspension throws greenring::cancelled. Thread-safe; a no-op once it ended.
  void cancel() noexcept {
    if (st_) detail::request_cancel(st_);
  }

  void detach() noexcept {
    ctx_.reset();
    st_ = nullptr;
  }

  // Process-unique id (never 0) and the index of the worker that runs it.
  std::uint64_t id() const noexcept { return st_ ? st_->id : 0; }

 private:
  template <class R, class F>
  friend join_handle<R> detail_spawn(int, F&&);

  join_handle(boost::intrusive_ptr<boost::fibers::context> c, detail::gt_state<T>* s) noexcept
      : ctx_(std::move(c)), st_(s) {}

  void check() const {
    if (!ctx_) throw std::logic_error("greenring: join on a handle that is not joinable");
  }
  T finish() {
    auto ctx = std::move(ctx_);  // releases the stack after the result is taken
    auto* st = std::exchange(st_, nullptr);
    if (st->error) std::rethrow_exception(st->error);
    return st->take();
  }

  boost::intrusive_ptr<boost::fibers::context> ctx_;
  detail::gt_state<T>* st_ = nullptr;
};

template <class R, class F>
join_handle<R> detail_spawn(int worker, F&& f) {
  detail::runtime_impl& rt = detail::runtime_for_spawn();
  detail::gt_state<R>* st = nullptr;
  auto ctx = detail::make_green_thread<R>(rt, worker, std::forward<F>(f), st);
  return join_handle<R>(std::move(ctx), st);
}

template <class F, class... A>
using spawn_result_t = std::invoke_result_t<std::decay_t<F>, std::decay_t<A>...>;

// Starts fn(args...) on a new green thread; arguments are decay-copied.
// Placement: from a green thread, its own worker unless that worker runs more
// than `balance_slack` (16) green threads beyond the least loaded worker, in
// which case the least loaded; from a plain thread, the least loaded worker.
template <class F, class... A>
join_handle<spawn_result_t<F, A...>> spawn(F&& fn, A&&... args) {
  return detail_spawn<spawn_result_t<F, A...>>(
      -1, [f = std::forward<F>(fn), tup = std::make_tuple(std::forward<A>(args)...)]() mutable
          -> decltype(auto) { return std::apply(std::move(f), std::move(tup)); });
}

// Like spawn, on worker `worker` (0-based; std::out_of_range if no such worker).
template <class F, class... A>
join_handle<spawn_result_t<F, A...>> spawn_on(unsigned worker, F&& fn, A&&... args) {
  return detail_spawn<spawn_result_t<F, A...>>(
      static_cast<int>(worker),
      [f = std::forward<F>(fn), tup = std::make_tuple(std::forward<A>(args)...)]() mutable
          -> decltype(auto) { return std::apply(std::move(f), std::move(tup)); });
}

namespace this_fiber {

// True on a green thread.
bool is_green_thread() noexcept;
// The calling green thread's id; 0 on a plain thread.
std::uint64_t id() noexcept;
// The calling thread's worker index, or -1 when it is not a worker.
int worker_index() noexcept;

// Lets the other runnable green threads of this worker run. Cancellation point.
void yield();

// Cancellation points: throw greenring::cancelled when cancelled while asleep.
void sleep_until(deadline until);
template <class Rep, class Period>
void sleep_for(std::chrono::duration<Rep, Period> d) {
  sleep_until(after(std::chrono::duration_cast<clock::duration>(d)));
}

}  // namespace this_fiber
}  // namespace greenring
