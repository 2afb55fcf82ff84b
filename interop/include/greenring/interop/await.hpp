// greenring/interop/await.hpp: waiting for a coroutine from synchronous code.
//
//   T await_(awaitable [, deadline])     from a green thread
//   T await_for(awaitable, duration)     same, with a relative timeout
//   T sync_wait(awaitable)               from a plain thread (main): starts a
//                                        runtime if none is alive
//
// `awaitable` is a greenring::task<T> (taken by value: std::move it in) or
// anything co_await-able: greenring's own awaitables (co::read, async_,
// when_all, ...) and third-party ones, which may resume from any thread -
// their resumption is posted back to the calling green thread's worker.
//
// # await_
// Effects: starts the task on the calling green thread itself (no hop, no
// queue: an await_ of a task that completes without suspending costs one
// coroutine frame and no context switch); if it suspends, parks only the
// calling green thread until the task finishes. The task belongs to the
// caller's worker: its later resumptions run on that worker's coroutine
// runner. Returns: the task's result (T, T& or void). Throws: the task's
// exception; std::logic_error outside a green thread (use sync_wait there -
// never a silent hang).
// Cancellation: await_ is a cancellation point. Cancelling the calling green
// thread cancels the task (greenring's awaitables inside it end with
// greenring::cancelled) and waits for it to finish; await_ then throws
// greenring::cancelled (consuming the request) - or returns the task's result
// if it finished anyway, the request staying pending for the next suspension,
// as join() does. Deadline: when `until` passes first, the task is cancelled
// the same way and await_ throws greenring::timed_out (or returns a result
// that made it).
// A coroutine running on its worker's runner may call await_: if the awaited
// task suspends, the runner hands its role to a fresh runner green thread
// before parking, so the coroutines it waits for keep running.
//
// # sync_wait
// On a green thread: await_. On a plain thread: runs await_ on a green thread
// of the current runtime (runtime::current()), or of a runtime with default
// options created for the call and destroyed before sync_wait returns, and
// blocks the calling thread until it is done.
#pragma once

#include <greenring/detail/green_thread.hpp>
#include <greenring/interop/task.hpp>
#include <greenring/runtime.hpp>
#include <greenring/spawn.hpp>

#include <chrono>
#include <optional>

namespace greenring {

namespace detail::coro {

enum class end_reason : std::uint8_t { normal, cancelled, timeout };

// Starts h on the calling green thread, waits until it finished; on
// cancellation or timeout cancels it and waits for it to finish.
end_reason run_on_green_thread(std::coroutine_handle<> h, promise_base& p, time_point until);

template <class T>
T finish_root(promise<T>& p, end_reason why) {
  if (p.error && p.ended_cancelled) {
    if (why == end_reason::cancelled) throw_cancelled();  // consumes the green thread's request
    if (why == end_reason::timeout) throw timed_out();
  }
  return p.get();
}

}  // namespace detail::coro

template <class T>
T await_(task<T> t, deadline until = no_deadline) {
  if (!t) throw std::logic_error("greenring: await_ on an empty task");
  auto h = t.handle();
  auto why = detail::coro::run_on_green_thread(h, h.promise(), until);
  return detail::coro::finish_root(h.promise(), why);
}

template <class A>
  requires(!detail::coro::is_task_v<A>)
decltype(auto) await_(A&& a, deadline until = no_deadline) {
  return await_(detail::coro::as_task(static_cast<A&&>(a)), until);
}

template <class A, class Rep, class Period>
decltype(auto) await_for(A&& a, std::chrono::duration<Rep, Period> d) {
  return await_(static_cast<A&&>(a), after(std::chrono::duration_cast<clock::duration>(d)));
}

template <class T>
T sync_wait(task<T> t) {
  if (this_fiber::is_green_thread()) return await_(std::move(t));
  runtime* rt = runtime::current();
  std::optional<runtime> own;
  if (!rt) rt = &own.emplace();
  detail::gt_state<T>* st = nullptr;
  auto ctx = detail::make_green_thread<T>(
      rt->impl(), -1, [&t]() -> decltype(auto) { return await_(std::move(t)); }, st);
  detail::join_wait(st, detail::time_point::max(), false);
  if (st->error) std::rethrow_exception(st->error);
  return st->take();
}

template <class A>
  requires(!detail::coro::is_task_v<A>)
decltype(auto) sync_wait(A&& a) {
  return sync_wait(detail::coro::as_task(static_cast<A&&>(a)));
}

}  // namespace greenring
