// greenring/detail/green_thread.hpp: the green-thread control block and the
// spawn machinery the public templates expand to.
//
// # Where the control block lives
// At the top of the green thread's own stack, above Boost.Fiber's context
// record. One stack, cached per OS thread, is the only memory a spawn needs.
// Boost.Fiber reaches it as the context's fiber_properties, so the current
// green thread is `context::active()->get_properties()` with no lookup.
// Boost deletes properties in ~context(); operator delete is a no-op because
// the stack itself is released right after, by the stack lease.
//
// # Fields and who may touch them
// - id, owner, stack: written before launch, read-only afterwards.
// - lk guards current_parker and the cancel handshake; cancel_requested is
//   also read without it as a hint.
// - cancel_block: only the green thread itself.
// - live_prev/live_next: only the owner worker's thread.
// - done/joiners: guarded by lk; the result and error are written by the green
//   thread before done is set and read by joiners after they observe done.
#pragma once

#include <greenring/detail/park.hpp>

#include <boost/fiber/context.hpp>
#include <boost/fiber/properties.hpp>
#include <boost/intrusive_ptr.hpp>

#include <atomic>
#include <cstdint>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

namespace greenring::detail {

class runtime_impl;
class worker;

struct stack_region {
  char* map_base = nullptr;  // start of the mapping (the guard page when guarded)
  std::size_t map_size = 0;
  char* lo = nullptr;        // lowest usable byte
  char* hi = nullptr;        // one past the highest usable byte
  bool guarded = false;      // false: canary at lo instead of a PROT_NONE page
  void* slab = nullptr;      // unguarded stacks: the slab they were carved from
};

// Mirrors libstdc++'s __cxa_eh_globals (cxxabi.h declares it opaque).
struct eh_state {
  void* caught = nullptr;
  unsigned int uncaught = 0;
};

// Green-local copies of chosen thread-local variables ("green TLS").
// Green threads that share a worker share its OS thread's TLS; for a few
// variables that a program uses as "my thread's context" (Perl >= 5.36 keeps
// its interpreter in the thread-local PL_current_context) that is fatal, so
// each green thread keeps its own value, swapped in and out at every switch
// like the exception state. Registered before a runtime starts (workers
// resolve the addresses when they start); at most max_green_tls words.
inline constexpr std::size_t max_green_tls = 8;

// Registers the static-TLS variable at `tp_offset` bytes from the thread
// pointer (same offset on every thread: modules loaded at start-up), `size`
// bytes (1, 2, 4 or 8); new green threads start with `initial`, as new OS
// threads start with the TLS image's value. False when full or size is bad.
// Registering the same offset twice is a no-op returning true.
bool add_green_tls(std::ptrdiff_t tp_offset, std::size_t size, std::uint64_t initial) noexcept;
// How many variables are registered.
std::size_t green_tls_count() noexcept;

struct gt_base : boost::fibers::fiber_properties {
  gt_base() noexcept;
  ~gt_base() override = default;
  static void operator delete(void*) noexcept {}

  std::uint64_t id = 0;
  worker* owner = nullptr;
  stack_region stack{};

  spinlock lk;
  parker* current_parker = nullptr;
  std::atomic<bool> cancel_requested{false};
  int cancel_block = 0;

  bool done = false;
  waitq joiners;
  std::exception_ptr error;

  gt_base* live_prev = nullptr;
  gt_base* live_next = nullptr;

  // The C++ runtime's per-OS-thread exception state (libstdc++'s
  // __cxa_eh_globals: exceptions being handled, uncaught count), saved here
  // while the green thread is switched out: a green thread that blocks inside
  // a catch block must not see another green thread's exceptions.
  eh_state eh;

  // This green thread's values of the green-TLS variables while it is
  // switched out (see add_green_tls); filled with their initial values.
  std::uint64_t tls[max_green_tls];

  // Owned by whoever spawned the green thread outside the public API (the
  // LD_PRELOAD shim keeps its pthread record here); the runtime never reads it.
  void* user = nullptr;
};

template <class T>
struct gt_state final : gt_base {
  std::optional<T> value;
  T take() { return std::move(*value); }
};
template <class T>
struct gt_state<T&> final : gt_base {
  T* value = nullptr;
  T& take() { return *value; }
};
template <>
struct gt_state<void> final : gt_base {
  void take() {}
};

// The green thread running on this OS thread, or nullptr.
gt_base* current_gt() noexcept;

runtime_impl& runtime_for_spawn();  // throws std::logic_error when no runtime lives
std::size_t stack_size(runtime_impl&) noexcept;
stack_region acquire_stack(std::size_t usable);  // throws std::bad_alloc
void release_stack(const stack_region&) noexcept;

// Called on the new green thread before and after its body.
void enter_green_thread(gt_base*) noexcept;
void leave_green_thread(gt_base*) noexcept;

// Attaches a built context to a worker (the placement rule when worker < 0) and
// makes it runnable there. Fills gt->id and gt->owner.
void launch(runtime_impl&, int worker, boost::fibers::context* ctx, gt_base* gt);

// Hands Boost.Fiber the stack acquired by spawn; returns it to the cache when
// Boost destroys the context.
struct stack_lease {
  stack_region region;
  boost::context::stack_context sctx;
  boost::context::stack_context allocate() noexcept { return sctx; }
  void deallocate(boost::context::stack_context&) noexcept { release_stack(region); }
};

template <class R, class F>
boost::intrusive_ptr<boost::fibers::context> make_green_thread(runtime_impl& rt, int worker, F&& fn,
                                                               gt_state<R>*& out, std::size_t stack_bytes = 0,
                                                               void* user = nullptr) {
  using state_t = gt_state<R>;
  stack_region region = acquire_stack(stack_bytes ? stack_bytes : stack_size(rt));
  auto top = reinterpret_cast<std::uintptr_t>(region.hi);
  auto* st_addr = reinterpret_cast<void*>((top - sizeof(state_t)) & ~std::uintptr_t(63));
  state_t* st = new (st_addr) state_t();
  st->stack = region;
  st->user = user;
  stack_lease lease{region, {}};
  lease.sctx.sp = st_addr;
  lease.sctx.size = static_cast<std::size_t>(static_cast<char*>(st_addr) - region.lo);
  auto body = [st, f = std::forward<F>(fn)]() mutable noexcept {
    enter_green_thread(st);
    try {
      if constexpr (std::is_void_v<R>) {
        f();
      } else if constexpr (std::is_reference_v<R>) {
        st->value = &f();
      } else {
        st->value.emplace(f());
      }
    } catch (...) {
      st->error = std::current_exception();
    }
    leave_green_thread(st);
  };
  boost::intrusive_ptr<boost::fibers::context> ctx;
  try {
    ctx = boost::fibers::make_worker_context_with_properties(boost::fibers::launch::post, st,
                                                             std::move(lease), std::move(body));
  } catch (...) {
    st->~state_t();
    release_stack(region);
    throw;
  }
  launch(rt, worker, ctx.get(), st);
  out = st;
  return ctx;
}

// Join/cancel plumbing shared by all join_handle<T>.
wake join_wait(gt_base* gt, time_point until, bool cancellable) noexcept;
void request_cancel(gt_base* gt) noexcept;
[[noreturn]] void throw_cancelled();
// Called by throw_cancelled before it throws (the request already consumed);
// it may leave by longjmp. The LD_PRELOAD shim runs C programs'
// pthread_cleanup_push handlers this way (they are setjmp-based, invisible to
// the exception unwinder). At most one hook; nullptr removes it.
void set_cancel_hook(void (*hook)(gt_base*)) noexcept;

// Copies the calling thread's live values of the green-TLS variables into gt,
// which must not have run yet: the LD_PRELOAD shim's main() green thread
// continues the main OS thread, so it keeps what constructors stored there.
void inherit_green_tls(gt_base* gt) noexcept;

}  // namespace greenring::detail
