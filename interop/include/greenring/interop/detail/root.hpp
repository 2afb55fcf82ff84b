// greenring/interop/detail/root.hpp: the shared state of a co_spawn'ed
// coroutine (internal; co_spawn.hpp is the public face).
//
// # Fields and who may touch them
// - refs: atomic; one for the running coroutine (dropped when it finishes),
//   one for the co_handle (dropped by join/detach), one per queued cancel item.
//   The last one frees the state and the task frame, which holds the result.
// - lk guards done, joiners, cont/cont_loop and cancel_queued: these are
//   touched by the handle's owner (any thread) and by the finishing coroutine.
// - home, scope, start/cancel items, prev/next: the home worker's thread
//   (scope and the root list belong to its loop).
#pragma once

#include <greenring/detail/park.hpp>
#include <greenring/interop/detail/loop.hpp>
#include <greenring/interop/task.hpp>

#include <atomic>

namespace greenring::detail::coro {

struct root_base : completion {
  std::atomic<int> refs{2};

  spinlock lk;
  bool done = false;
  waitq joiners;               // green threads and plain threads in join()
  work_item* cont = nullptr;   // a coroutine in co_await handle, and
  loop* cont_loop = nullptr;   // the loop to post it to
  bool cancel_queued = false;

  loop* home = nullptr;
  cancel_scope scope;
  work_item start_item;
  work_item cancel_item;
  root_base* prev = nullptr;
  root_base* next = nullptr;

  promise_base* promise = nullptr;
  std::coroutine_handle<> h;
  void (*destroy)(root_base*) noexcept = nullptr;  // frees the derived object and the frame
};

// Starts r on worker `worker` of the current runtime (-1: the calling worker,
// else the least loaded). Any thread.
void root_launch(root_base* r, int worker);
void root_release(root_base* r) noexcept;
// Thread-safe; a no-op once the coroutine finished.
void root_cancel(root_base* r) noexcept;
// Waits for the coroutine to finish (green thread: suspends; plain thread: blocks).
wake root_wait(root_base* r, time_point until, bool cancellable);
// Registers a coroutine continuation; false (nothing registered) when already done.
bool root_set_continuation(root_base* r, work_item* cont, loop& l) noexcept;
bool root_is_done(root_base* r) noexcept;

}  // namespace greenring::detail::coro
