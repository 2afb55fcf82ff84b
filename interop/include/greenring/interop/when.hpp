// greenring/interop/when.hpp: structured combinators over tasks.
//
//   when_all(std::vector<task<T>>)    -> task<std::vector<T>>   (void: task<void>;
//                                        T&: std::reference_wrapper<T>)
//   when_all(task<A>, task<B>, ...)   -> task<std::tuple<A, B, ...>>  (void: std::monostate)
//   when_any(std::vector<task<T>>)    -> task<when_any_result<T>> {index, value}
//                                        (void: task<std::size_t>, the index)
//   when_any(task<A>, task<B>, ...)   -> task<std::variant<A, B, ...>>, index() = winner
//                                        (void: std::monostate; T&: reference_wrapper)
//   with_timeout(awaitable, deadline | duration) -> task<T>
//
// All children run concurrently as coroutines on the awaiting coroutine's
// worker, each with its own cancellation scope. The combinator's task finishes
// only when every child it started has finished - nothing outlives it.
//
// when_all: every child's result, in order. When a child fails, the others are
//   cancelled (and children not yet started are never started); the first
//   failure is rethrown once all have finished.
// when_any: the first child to finish wins - with its value or its exception;
//   the others are cancelled and awaited; the winner's outcome is returned or
//   rethrown. A loser that completes with a value anyway (it was past its last
//   cancellation point) has its value dropped. Empty input: std::invalid_argument.
// with_timeout: runs the awaitable; when the deadline passes first it is
//   cancelled and, if it ended with greenring::cancelled, greenring::timed_out
//   is thrown; a result that made it is returned.
// Cancelling the awaiting coroutine cancels every running child; the
// combinator then throws greenring::cancelled.
//
// Lifetimes: with_timeout(awaitable) keeps a reference to a non-task
// awaitable; co_await the result in the same full-expression.
#pragma once

#include <greenring/interop/detail/loop.hpp>
#include <greenring/interop/task.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace greenring {

template <class T>
struct when_any_result {
  std::size_t index;
  T value;
};

namespace detail::coro {

struct gather_core;

struct gather_child final : completion {
  gather_core* g = nullptr;
  std::size_t index = 0;
  cancel_scope scope;
  promise_base* p = nullptr;
  std::coroutine_handle<> h;
  bool started = false;
  bool finished = false;
};

// The non-template engine of when_all / when_any / with_timeout (src/when.cpp).
struct gather_core {
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  bool any = false;
  time_point until = time_point::max();
  std::vector<gather_child> kids;

  std::size_t remaining = 0;
  std::size_t pick = npos;  // any: the winner; all: the first to fail
  bool stop = false;        // start no more children
  bool early_cancel = false;
  bool deadline_hit = false;
  std::coroutine_handle<> parent;
  cancel_scope* parent_scope = nullptr;
  cancel_slot slot;
  timer_node timer;
  loop* l = nullptr;

  explicit gather_core(bool any_mode, time_point deadline = time_point::max()) : any(any_mode), until(deadline) {}
  gather_core(const gather_core&) = delete;
  gather_core& operator=(const gather_core&) = delete;

  template <class P>
  void add(std::coroutine_handle<P> h) {
    if (h.done()) throw std::invalid_argument("greenring: when_all/when_any/with_timeout of a task that already ran");
    gather_child& c = kids.emplace_back();
    c.h = h;
    c.p = &h.promise();
  }

  // await_suspend: starts the children; false when no suspension is needed.
  bool start(std::coroutine_handle<> parent, cancel_scope* ps);
  // await_resume: throws greenring::cancelled when the parent was cancelled
  // before anything started, else the picked child's exception (all mode:
  // the first failure; any mode: the winner's), translating cancellation.
  void settle();
};

struct gather_awaitable {
  using greenring_native_awaitable = void;
  gather_core& core;
  bool await_ready() const noexcept { return core.kids.empty() && core.until == time_point::max(); }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    return core.start(h, scope_of(h));
  }
  void await_resume() { core.settle(); }
};

template <class T>
using vec_elem_t = std::conditional_t<std::is_reference_v<T>, std::reference_wrapper<std::remove_reference_t<T>>, T>;
template <class T>
using tuple_elem_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;
template <class T>
using variant_elem_t = std::conditional_t<std::is_void_v<T>, std::monostate, vec_elem_t<T>>;

template <class T>
tuple_elem_t<T> take_slot(task<T>& t) {
  if constexpr (std::is_void_v<T>) {
    t.handle().promise().get();
    return {};
  } else {
    return t.handle().promise().get();
  }
}

template <class T>
using when_all_vec_t = std::conditional_t<std::is_void_v<T>, void, std::vector<vec_elem_t<T>>>;
template <class T>
using when_any_vec_t = std::conditional_t<std::is_void_v<T>, std::size_t, when_any_result<vec_elem_t<T>>>;

template <std::size_t I, class V, class Tuple>
V variant_from(Tuple& tasks) {
  auto& t = std::get<I>(tasks);
  using T = typename std::remove_reference_t<decltype(t)>::value_type;
  if constexpr (std::is_void_v<T>) {
    t.handle().promise().get();
    return V(std::in_place_index<I>);
  } else {
    return V(std::in_place_index<I>, t.handle().promise().get());
  }
}

template <class V, class Tuple, std::size_t... I>
V variant_at(Tuple& tasks, std::size_t i, std::index_sequence<I...>) {
  using fn_t = V (*)(Tuple&);
  static constexpr fn_t table[] = {&variant_from<I, V, Tuple>...};
  return table[i](tasks);
}

}  // namespace detail::coro

template <class T>
task<detail::coro::when_all_vec_t<T>> when_all(std::vector<task<T>> tasks) {
  detail::coro::gather_core core(false);
  core.kids.reserve(tasks.size());
  for (auto& t : tasks) {
    if (!t) throw std::invalid_argument("greenring: when_all of an empty task");
    core.add(t.handle());
  }
  co_await detail::coro::gather_awaitable{core};
  if constexpr (std::is_void_v<T>) {
    co_return;
  } else {
    std::vector<detail::coro::vec_elem_t<T>> out;
    out.reserve(tasks.size());
    for (auto& t : tasks) out.push_back(t.handle().promise().get());
    co_return out;
  }
}

template <class... T>
task<std::tuple<detail::coro::tuple_elem_t<T>...>> when_all(task<T>... tasks) {
  detail::coro::gather_core core(false);
  core.kids.reserve(sizeof...(T));
  if ((!tasks || ...)) throw std::invalid_argument("greenring: when_all of an empty task");
  (core.add(tasks.handle()), ...);
  co_await detail::coro::gather_awaitable{core};
  co_return std::tuple<detail::coro::tuple_elem_t<T>...>(detail::coro::take_slot(tasks)...);
}

template <class T>
task<detail::coro::when_any_vec_t<T>> when_any(std::vector<task<T>> tasks) {
  if (tasks.empty()) throw std::invalid_argument("greenring: when_any of no tasks");
  detail::coro::gather_core core(true);
  core.kids.reserve(tasks.size());
  for (auto& t : tasks) {
    if (!t) throw std::invalid_argument("greenring: when_any of an empty task");
    core.add(t.handle());
  }
  co_await detail::coro::gather_awaitable{core};
  std::size_t i = core.pick;
  if constexpr (std::is_void_v<T>) {
    co_return i;
  } else {
    co_return when_any_result<detail::coro::vec_elem_t<T>>{i, tasks[i].handle().promise().get()};
  }
}

template <class... T>
  requires(sizeof...(T) > 0)
task<std::variant<detail::coro::variant_elem_t<T>...>> when_any(task<T>... tasks) {
  using V = std::variant<detail::coro::variant_elem_t<T>...>;
  detail::coro::gather_core core(true);
  core.kids.reserve(sizeof...(T));
  if ((!tasks || ...)) throw std::invalid_argument("greenring: when_any of an empty task");
  (core.add(tasks.handle()), ...);
  co_await detail::coro::gather_awaitable{core};
  auto tup = std::forward_as_tuple(tasks...);
  co_return detail::coro::variant_at<V>(tup, core.pick, std::index_sequence_for<T...>{});
}

template <class T>
task<T> with_timeout(task<T> t, deadline until) {
  if (!t) throw std::invalid_argument("greenring: with_timeout of an empty task");
  detail::coro::gather_core core(true, until);
  core.add(t.handle());
  co_await detail::coro::gather_awaitable{core};  // throws timed_out / cancelled / the task's exception
  co_return t.handle().promise().get();
}

template <class A>
  requires(!detail::coro::is_task_v<A>)
auto with_timeout(A&& a, deadline until) {
  return with_timeout(detail::coro::as_task(static_cast<A&&>(a)), until);
}

template <class A, class Rep, class Period>
auto with_timeout(A&& a, std::chrono::duration<Rep, Period> d) {
  return with_timeout(static_cast<A&&>(a), after(std::chrono::duration_cast<clock::duration>(d)));
}

}  // namespace greenring
