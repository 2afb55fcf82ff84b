// greenring/interop/detail/loop.hpp: the per-worker coroutine loop that the
// interop templates expand to (internal; the implementation and the design
// essay are in interop/src/loop.cpp).
//
// # What runs coroutines
// Every worker that ever runs a coroutine gets one `loop`, created lazily, and
// one *runner*: an ordinary green thread of that worker (started with the
// runtime's own make_green_thread, so it is placed, counted and cancelled at
// shutdown like any other) that drains the loop's queue of work_items and
// fires its timers. Coroutines are resumed only there, or inline on the green
// thread that starts them (await_, sync_wait), never on the dispatcher's stack,
// never inside a driver callback and never on a foreign thread.
//
// # Thread affinity of the pieces declared here
// - work_item: pushed by any thread with post(); run by the runner only.
// - timer_node, cancel_scope, cancel_slot, pending_add/done: the loop's owner
//   worker thread only (green-thread context). Cross-thread requests (a
//   co_handle::cancel from another thread) become a posted work_item.
// - drive/transfer: the calling green thread.
#pragma once

#include <greenring/cancel.hpp>

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <utility>

namespace greenring::detail {
class runtime_impl;
}

namespace greenring::detail::coro {

class loop;

// A unit of work for a loop's runner. Intrusive: an item is owned by whoever
// embeds it and may be queued at most once at a time.
struct work_item {
  void (*fn)(work_item*) noexcept = nullptr;
  void* ctx = nullptr;  // free for the owner (usually a back-pointer)
  work_item* next = nullptr;
};

// A deadline on a loop's timer heap; `item` is run inline by the runner once
// `when` has passed. Owner thread only.
struct timer_node {
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
  clock::time_point when{};
  std::size_t index = npos;  // position in the heap, npos when not armed
  work_item item;
  bool armed() const noexcept { return index != npos; }
};

// What to do when the computation waiting here is cancelled. A leaf
// awaitable registers one in its cancel_scope for as long as it is suspended.
struct cancel_slot {
  void (*fn)(cancel_slot*) noexcept = nullptr;
  void* ctx = nullptr;
};

// Cancellation state of one sequential chain of tasks (a root and every task it
// awaits directly share one scope; when_all/when_any children get their own).
// A chain has at most one suspended leaf at a time, hence one slot.
//
// request() is sticky until a leaf delivers it by throwing greenring::cancelled
// (consume()), exactly like a green thread's request, which is consumed by the
// throw. Owner worker thread only: no lock.
class cancel_scope {
 public:
  bool requested() const noexcept { return requested_; }
  void request() noexcept {
    requested_ = true;
    if (cancel_slot* s = std::exchange(slot_, nullptr)) s->fn(s);
  }
  bool consume() noexcept { return std::exchange(requested_, false); }
  void attach(cancel_slot* s) noexcept { slot_ = s; }
  void detach(cancel_slot* s) noexcept {
    if (slot_ == s) slot_ = nullptr;
  }

 private:
  bool requested_ = false;
  cancel_slot* slot_ = nullptr;
};

// The loop of the calling worker thread, created (with its runner) on first
// use. Throws std::logic_error when the caller is not a green thread.
loop& current_loop();
// Same, but nullptr instead of the exception when the caller is not a green
// thread of a worker.
loop* current_loop_or_null();
// The loop of worker `index` of `rt`, created on first use. Any thread.
// `first`, when given, is posted before the registry lock is released, so a
// loop that is retiring at shutdown cannot be freed between lookup and post;
// `*home`, when given, is set to the loop just before that post.
loop& loop_of(runtime_impl& rt, unsigned index, work_item* first = nullptr, loop** home = nullptr);
unsigned loop_worker_index(const loop&) noexcept;

// Any thread, any context (driver callbacks included): queues `it` for the
// runner and wakes it. Never blocks, never resumes anything inline.
void post(loop&, work_item* it) noexcept;

// Owner thread. A leaf that will later post (or fire a timer) calls
// pending_add before suspending and pending_done just before it resumes its
// coroutine; the runner does not retire at shutdown while any is pending.
void pending_add(loop&) noexcept;
void pending_done(loop&) noexcept;

// Owner thread. Arming an earlier deadline than the runner sleeps to wakes it.
void add_timer(loop&, timer_node*) noexcept;
void remove_timer(loop&, timer_node*) noexcept;

// Resumes h, then every coroutine handed over with transfer() while it ran:
// the trampoline that keeps long chains of symmetric transfers flat even where
// the compiler does not turn them into tail calls (GCC 12 with ASan).
void drive(std::coroutine_handle<> h) noexcept;
// For await_suspend/final_suspend: the handle to return. Inside drive() on
// the same green thread it parks h for drive and returns noop_coroutine();
// elsewhere it returns h (plain symmetric transfer).
std::coroutine_handle<> transfer(std::coroutine_handle<> h) noexcept;

// Called by greenring's own blocking waits (await_, co_handle::join) before
// they park: when the caller is its worker's runner, another runner takes
// over, so coroutines the wait depends on keep running.
void abdicate_if_runner();

// A coroutine that, when resumed (on any thread), posts `it` to `l`; used as
// the handle given to third-party awaitables. Its frame frees itself.
std::coroutine_handle<> make_trampoline(loop& l, work_item* it);
void destroy_trampoline(std::coroutine_handle<> h) noexcept;

// A work_item that resumes a suspended coroutine: pending_done, then drive.
struct resume_item : work_item {
  std::coroutine_handle<> h;
  loop* owner = nullptr;
  resume_item() noexcept { fn = &run; }
  static void run(work_item* w) noexcept {
    auto* r = static_cast<resume_item*>(w);
    loop& l = *r->owner;
    auto h = r->h;
    pending_done(l);
    drive(h);
  }
};

}  // namespace greenring::detail::coro
