// greenring/interop/task.hpp: greenring::task<T>, a lazily started coroutine.
//
// task<T> (T, T& or void) does nothing until it is awaited: co_await from
// another task (or any coroutine), await_() from a green thread, sync_wait()
// from a plain thread, co_spawn(), when_all/when_any. Its result or exception
// goes to whoever awaits it. A task is move-only and awaited at most once;
// destroying a task that never started just frees its frame. Destroying one
// that is suspended is a bug (greenring's own awaiters never do it).
//
// # Where a task runs
// On the worker that first resumes it (its *owning* worker), for its whole
// life: greenring's own awaitables resume it through that worker's loop (see
// detail/loop.hpp), and any other awaitable is wrapped by await_transform so
// that its resumption, from whatever thread, is posted back to the owning
// worker. A task that awaits a task continues on the same worker.
//
// # Symmetric transfer
// co_await of a task hands control to it with symmetric transfer, and
// final_suspend hands control back the same way, so neither a long sequence of
// awaits of ready tasks nor a deep chain of nested awaits grows the stack.
// Compilers do not always emit that transfer as a tail call (GCC 12 does not
// under -fsanitize=address), so inside greenring's
// resumption loops (detail::coro::drive) the transfer goes through a
// trampoline instead; see interop/src/loop.cpp.
//
// # Cancellation
// Every task awaited (directly or transitively) from one root shares that
// root's cancel_scope; greenring's awaitables register in it while they are
// suspended and end with greenring::cancelled when it is cancelled. Awaitables
// from other libraries are not cancellable: a cancelled chain waits for them
// to complete.
#pragma once

#include <greenring/cancel.hpp>
#include <greenring/interop/detail/loop.hpp>
#include <greenring/spawn.hpp>

#include <coroutine>
#include <exception>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace greenring {

template <class T = void>
class task;

template <class T>
class co_handle;

namespace detail::coro {

// ---- which awaitables are greenring's own ----------------------------------

template <class A>
struct is_native : std::false_type {};
template <>
struct is_native<std::suspend_always> : std::true_type {};
template <>
struct is_native<std::suspend_never> : std::true_type {};
template <class T>
struct is_native<task<T>> : std::true_type {};
template <class T>
struct is_native<join_handle<T>> : std::true_type {};
template <class T>
struct is_native<co_handle<T>> : std::true_type {};

template <class A>
concept native_tagged = requires { typename A::greenring_native_awaitable; };

template <class A>
inline constexpr bool is_native_v = native_tagged<A> || is_native<A>::value;

template <class T>
struct is_task : std::false_type {};
template <class T>
struct is_task<task<T>> : std::true_type {};
template <class T>
inline constexpr bool is_task_v = is_task<std::remove_cvref_t<T>>::value;

// The awaiter an awaitable turns into (operator co_await, member or free, else itself).
template <class A>
decltype(auto) get_awaiter(A&& a) {
  if constexpr (requires { static_cast<A&&>(a).operator co_await(); })
    return static_cast<A&&>(a).operator co_await();
  else if constexpr (requires { operator co_await(static_cast<A&&>(a)); })
    return operator co_await(static_cast<A&&>(a));
  else
    return static_cast<A&&>(a);
}

template <class A>
using awaiter_t = decltype(get_awaiter(std::declval<A>()));

template <class A>
using raw_await_result_t = decltype(std::declval<awaiter_t<A>&>().await_resume());

// What await_/as_task return for an awaitable: rvalue references decay.
template <class A>
using await_result_t = std::conditional_t<std::is_rvalue_reference_v<raw_await_result_t<A>>,
                                          std::remove_cvref_t<raw_await_result_t<A>>,
                                          raw_await_result_t<A>>;

// ---- storage for a result --------------------------------------------------

template <class T>
struct result_box {
  std::optional<T> v;
  template <class F>
  void set_from(F& f) {
    v.emplace(f());
  }
  template <class U>
  void set(U&& u) {
    v.emplace(std::forward<U>(u));
  }
  T take() { return std::move(*v); }
};
template <class T>
struct result_box<T&> {
  T* v = nullptr;
  template <class F>
  void set_from(F& f) {
    v = &f();
  }
  void set(T& u) { v = &u; }
  T& take() { return *v; }
};
template <>
struct result_box<void> {
  template <class F>
  void set_from(F& f) {
    f();
  }
  void take() {}
};

// True when `e` holds a greenring::cancelled.
bool is_cancelled(const std::exception_ptr& e) noexcept;

// ---- the promise -----------------------------------------------------------

struct promise_base;

// Told, instead of a continuation, when a task finishes (await_, co_spawn,
// when_all children). Runs inside final_suspend on the owning worker; returns
// the coroutine to transfer to (noop_coroutine() for none).
struct completion {
  std::coroutine_handle<> (*fn)(completion*, promise_base&) noexcept = nullptr;
};

template <class P>
cancel_scope* scope_of(std::coroutine_handle<P> h) noexcept;

// Hands the resumption of a third-party awaitable back to the owning worker:
// the awaitable gets a trampoline handle whose resumption, from any thread,
// posts the real continuation to this worker's loop.
template <class Aw>
struct foreign_awaiter {
  Aw inner;  // the awaiter itself, or a reference to it (it outlives the suspension)
  resume_item item{};

  bool await_ready() { return inner.await_ready(); }

  std::coroutine_handle<> await_suspend(std::coroutine_handle<> caller) {
    using R = decltype(inner.await_suspend(caller));
    loop* l = current_loop_or_null();
    if (!l) {
      // Not on a worker (a task driven by hand on a plain thread): nothing to
      // post back to, so the awaitable resumes us wherever it likes.
      if constexpr (std::is_void_v<R>) {
        inner.await_suspend(caller);
        return std::noop_coroutine();
      } else if constexpr (std::is_same_v<R, bool>) {
        return inner.await_suspend(caller) ? std::noop_coroutine() : caller;
      } else {
        return inner.await_suspend(caller);
      }
    }
    item.h = caller;
    item.owner = l;
    pending_add(*l);
    std::coroutine_handle<> tr;
    try {
      tr = make_trampoline(*l, &item);
    } catch (...) {
      pending_done(*l);
      throw;
    }
    try {
      if constexpr (std::is_void_v<R>) {
        inner.await_suspend(tr);
        return std::noop_coroutine();
      } else if constexpr (std::is_same_v<R, bool>) {
        if (inner.await_suspend(tr)) return std::noop_coroutine();
        destroy_trampoline(tr);
        pending_done(*l);
        return caller;
      } else {
        return inner.await_suspend(tr);
      }
    } catch (...) {
      destroy_trampoline(tr);
      pending_done(*l);
      throw;
    }
  }

  decltype(auto) await_resume() { return inner.await_resume(); }
};

// greenring's own awaiters, passed through unchanged (see await_transform).
template <class Aw>
struct native_awaiter {
  Aw inner;  // the awaiter, or a reference to the awaitable that is its own awaiter
  bool await_ready() { return inner.await_ready(); }
  template <class P>
  decltype(auto) await_suspend(std::coroutine_handle<P> h) {
    return inner.await_suspend(h);
  }
  decltype(auto) await_resume() { return inner.await_resume(); }
};

struct promise_base {
  std::coroutine_handle<> continuation{};  // a coroutine awaiting us, or
  completion* sink = nullptr;              // a non-coroutine waiter
  cancel_scope* scope = nullptr;
  std::exception_ptr error;
  bool ended_cancelled = false;  // error holds greenring::cancelled

  std::suspend_always initial_suspend() const noexcept { return {}; }

  struct final_awaiter {
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
      promise_base& p = h.promise();
      if (p.continuation) return transfer(p.continuation);
      if (p.sink) return p.sink->fn(p.sink, p);  // may destroy this frame: touch nothing after
      return std::noop_coroutine();
    }
    void await_resume() const noexcept {}
  };
  final_awaiter final_suspend() const noexcept { return {}; }

  void unhandled_exception() noexcept {
    error = std::current_exception();
    ended_cancelled = is_cancelled(error);
  }

  // Every co_await in a greenring task comes through here. The result is
  // always a prvalue wrapper: GCC 12 copies an awaiter that await_transform
  // returns by reference, and greenring's awaiters are deliberately not
  // copyable (the kernel may own parts of them while suspended).
  template <class A>
  auto await_transform(A&& a) {
    using aw = decltype(get_awaiter(static_cast<A&&>(a)));
    if constexpr (is_native_v<std::remove_cvref_t<A>>)
      return native_awaiter<aw>{get_awaiter(static_cast<A&&>(a))};
    else
      return foreign_awaiter<aw>{get_awaiter(static_cast<A&&>(a))};
  }
};

template <class P>
cancel_scope* scope_of(std::coroutine_handle<P> h) noexcept {
  if constexpr (std::is_base_of_v<promise_base, P>)
    return h.promise().scope;
  else
    return nullptr;
}

template <class T>
struct promise final : promise_base {
  std::optional<T> value;
  task<T> get_return_object() noexcept;
  template <class U = T>
  void return_value(U&& u) {
    value.emplace(std::forward<U>(u));
  }
  T get() {
    if (error) std::rethrow_exception(error);
    return std::move(*value);
  }
};

template <class T>
struct promise<T&> final : promise_base {
  T* value = nullptr;
  task<T&> get_return_object() noexcept;
  void return_value(T& u) noexcept { value = &u; }
  T& get() {
    if (error) std::rethrow_exception(error);
    return *value;
  }
};

template <>
struct promise<void> final : promise_base {
  task<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void get() {
    if (error) std::rethrow_exception(error);
  }
};

}  // namespace detail::coro

template <class T>
class task {
 public:
  using promise_type = detail::coro::promise<T>;
  using handle_type = std::coroutine_handle<promise_type>;
  using value_type = T;

  task() noexcept = default;
  task(task&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  task& operator=(task&& o) noexcept {
    if (this != &o) {
      if (h_) h_.destroy();
      h_ = std::exchange(o.h_, nullptr);
    }
    return *this;
  }
  task(const task&) = delete;
  task& operator=(const task&) = delete;
  ~task() {
    if (h_) h_.destroy();
  }

  // False for a default-constructed or moved-from task.
  explicit operator bool() const noexcept { return static_cast<bool>(h_); }
  // True once the task ran to completion.
  bool done() const noexcept { return h_ && h_.done(); }

  struct awaiter {
    handle_type h;
    bool await_ready() const noexcept { return !h || h.done(); }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> caller) noexcept {
      promise_type& p = h.promise();
      p.continuation = caller;
      p.scope = detail::coro::scope_of(caller);
      return detail::coro::transfer(h);
    }
    T await_resume() {
      if (!h) throw std::logic_error("greenring: co_await on an empty task");
      return h.promise().get();
    }
  };
  awaiter operator co_await() && noexcept { return awaiter{h_}; }
  awaiter operator co_await() & noexcept { return awaiter{h_}; }

  // For greenring's own drivers (await_, co_spawn, when_all): the frame.
  handle_type handle() const noexcept { return h_; }
  handle_type release() noexcept { return std::exchange(h_, nullptr); }

 private:
  friend promise_type;
  explicit task(handle_type h) noexcept : h_(h) {}
  handle_type h_;
};

namespace detail::coro {
template <class T>
task<T> promise<T>::get_return_object() noexcept {
  return task<T>(std::coroutine_handle<promise<T>>::from_promise(*this));
}
template <class T>
task<T&> promise<T&>::get_return_object() noexcept {
  return task<T&>(std::coroutine_handle<promise<T&>>::from_promise(*this));
}
inline task<void> promise<void>::get_return_object() noexcept {
  return task<void>(std::coroutine_handle<promise<void>>::from_promise(*this));
}

// Wraps any awaitable into a task (await_ and the combinators use it). The
// awaitable is taken by reference: callers keep it alive until the task ends.
template <class A>
task<await_result_t<A>> as_task(A&& a) {
  co_return co_await static_cast<A&&>(a);
}
}  // namespace detail::coro

}  // namespace greenring
