// interop/src/loop.cpp: the per-worker coroutine loop and its runner green
// thread; drive/transfer (the symmetric-transfer trampoline); trampolines for
// third-party awaitables.
//
// # Why a runner green thread, and not the dispatcher
// Resuming a coroutine runs arbitrary user code: it may take a greenring::mutex,
// call green I/O, even await_. That is only legal on a green thread. Driver
// completion callbacks (io_op::on_complete) run on the dispatcher, inside
// pick_next, where nothing may park, and foreign threads cannot run worker
// code at all. So every resumption is a work_item posted to the owning
// worker's loop, and one green thread per worker - the runner - runs them.
//
// # The loop, field by field, and who may touch it
// - qlk guards head/tail (the FIFO of posted items) and sleeper (the runner's
//   parker while it waits). post() may be called from any thread and from
//   driver callbacks: it appends and, if the runner sleeps, unparks it under
//   qlk - the "structure lock" the parker protocol (park.hpp) asks for.
// - Everything else is the owner worker thread's: the timer heap, pending
//   (leaves that will still post or fire), the list of co_spawn roots, the
//   runner's identity and the batch it is running. Green threads of one worker
//   never run concurrently, so these need no lock.
//
// # One runner pass
//  1. Take the whole queue (one lock) and run the items in order. An item
//     usually resumes a coroutine with drive(); the coroutine runs until it
//     suspends again, possibly registering new items or timers.
//  2. Fire the timers whose deadline has passed (inline, same way).
//  3. At shutdown (worker::stopping): request cancellation of every co_spawn
//     root on this worker; once nothing is pending, retire (see below).
//  4. If items arrived meanwhile, yield once - so the dispatcher gets its turn
//     to poll the driver and other green threads run - and go to 1.
//  5. Otherwise park until post() or the earliest timer. The park is
//     cancellable only so that the runtime's shutdown (which cancels every
//     live green thread, every 10 ms until they are gone) wakes it; the
//     request is consumed on the spot.
//
// # Runner hand-off (abdication)
// A coroutine running on the runner may call a blocking greenring function.
// For most of them that merely delays the worker's other coroutines
// (docs/interop.md says so), but await_ and co_handle::join wait for
// coroutines - possibly ones that need this very runner. Those call
// abdicate_if_runner(): the items left in the current batch go back to the
// front of the queue, a new runner is started, and the old one, when its item
// returns, simply ends. The old runner is counted as pending until then, so
// the loop cannot retire under it.
//
// # Retirement and lifetime
// A loop lives from first use until its runtime shuts down: the runner leaves
// only when the worker is stopping, nothing is pending, no root is alive, no
// timer is armed and the queue is empty; it then unregisters the loop under
// the registry lock (so a concurrent loop_of either finds it before or creates
// a fresh one after) and frees it. Everything that may post to a loop holds a
// pending count or a live root, so nothing posts to a freed loop.
//
// # drive/transfer: symmetric transfer without relying on tail calls
// co_await of a task returns the task's handle from await_suspend, and
// final_suspend returns the awaiting coroutine's: symmetric transfer. The
// standard promises it does not grow the stack, but that needs the compiler
// to emit the resume as a tail call, and GCC 12 does not under
// -fsanitize=address (use-after-scope poisoning alone is enough to stop it,
// and with UBSan added turning that off does not help): 1,000,000 nested
// awaits then blow any stack. So greenring's own resumption points call
// drive(h), which records "green thread X is driving" in a thread_local; a
// transfer() made by a coroutine running on X while that record stands stores
// the target in a thread_local slot and returns noop_coroutine(), unwinding
// to drive(), which resumes the target from its loop. The record is one-shot
// (cleared by the transfer that uses it) and re-armed by drive() before each
// resume, so user code that resumes coroutines by hand inside a driven
// coroutine cannot make a transfer land in the wrong place: it just falls back
// to a plain symmetric transfer. The record is keyed by the Boost.Fiber
// context, because several green threads share the OS thread's thread_locals:
// when the driving green thread parks inside a coroutine (a blocking call) and
// another runs, the other sees a record that is not its own and falls back too.
//
// # Rejected designs
// 1. Resuming coroutines in io_op::on_complete: it runs on the dispatcher
//    inside the driver's reap loop; user code there could park (illegal) or
//    start ops on the driver it is iterating.
// 2. One runner per coroutine (a green thread each): costs a stack per
//    coroutine, which is what a coroutine is meant to save.
// 3. A lock-free MPSC queue: posting is rare next to what a resumption costs;
//    a spinlock and an intrusive list are simpler and allocation-free.
#include <greenring/interop/detail/loop.hpp>
#include <greenring/interop/task.hpp>

#include "interop_internal.hpp"
#include "worker/worker.hpp"

#include <mutex>
#include <unordered_map>
#include <vector>

namespace greenring::detail::coro {

namespace {

std::mutex g_registry_lk;
std::unordered_map<const worker*, loop*> g_registry;  // live loops, by worker

thread_local loop* tls_loop = nullptr;  // the loop of this worker thread, if any

// drive/transfer state (see the header comment).
thread_local boost::fibers::context* tls_driving = nullptr;
thread_local void* tls_next = nullptr;

}  // namespace

// ---- drive / transfer ----------------------------------------------------------

void drive(std::coroutine_handle<> h) noexcept {
  auto* self = boost::fibers::context::active();
  auto* outer = tls_driving;
  while (h) {
    tls_driving = self;
    h.resume();
    tls_driving = nullptr;
    h = std::coroutine_handle<>::from_address(std::exchange(tls_next, nullptr));
  }
  // A nested drive on the same green thread gives the record back to its
  // enclosing drive (which is still on this stack); anything else clears it.
  tls_driving = outer == self ? self : nullptr;
}

std::coroutine_handle<> transfer(std::coroutine_handle<> h) noexcept {
  if (tls_driving != nullptr && tls_driving == boost::fibers::context::active()) {
    tls_driving = nullptr;
    tls_next = h.address();
    return std::noop_coroutine();
  }
  return h;
}

bool is_cancelled(const std::exception_ptr& e) noexcept {
  if (!e) return false;
  try {
    std::rethrow_exception(e);
  } catch (const greenring::cancelled&) {
    return true;
  } catch (...) {
  }
  return false;
}

// ---- the loop --------------------------------------------------------------------

loop::loop(worker& w) noexcept : w_(w) {}

void loop::start_runner() {
  gt_state<void>* st = nullptr;
  // Detached: the intrusive_ptr is dropped at once; Boost keeps the context
  // alive while it runs. Placed on our worker whatever the placement rule says.
  auto ctx = make_green_thread<void>(w_.rt(), static_cast<int>(w_.index()), [this] { run(); }, st);
  (void)ctx;
}

void loop::post(work_item* it) noexcept {
  it->next = nullptr;
  std::unique_lock<spinlock> g(qlk_);
  if (tail_) tail_->next = it; else head_ = it;
  tail_ = it;
  if (sleeper_) std::exchange(sleeper_, nullptr)->unpark(wake::signalled);
}

void loop::add_timer(timer_node* t) noexcept {
  t->index = heap_.size();
  heap_.push_back(t);
  sift_up(t->index);
  if (t->index == 0) {
    std::unique_lock<spinlock> g(qlk_);
    if (sleeper_ && t->when < sleeper_until_) std::exchange(sleeper_, nullptr)->unpark(wake::signalled);
  }
}

void loop::remove_timer(timer_node* t) noexcept {
  if (!t->armed()) return;
  std::size_t i = t->index;
  t->index = timer_node::npos;
  timer_node* last = heap_.back();
  heap_.pop_back();
  if (last == t) return;
  heap_[i] = last;
  last->index = i;
  sift_down(i);
  sift_up(last->index);
}

void loop::sift_up(std::size_t i) noexcept {
  while (i > 0) {
    std::size_t parent = (i - 1) / 2;
    if (!(heap_[i]->when < heap_[parent]->when)) break;
    std::swap(heap_[i], heap_[parent]);
    heap_[i]->index = i;
    heap_[parent]->index = parent;
    i = parent;
  }
}

void loop::sift_down(std::size_t i) noexcept {
  for (;;) {
    std::size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < heap_.size() && heap_[l]->when < heap_[m]->when) m = l;
    if (r < heap_.size() && heap_[r]->when < heap_[m]->when) m = r;
    if (m == i) return;
    std::swap(heap_[i], heap_[m]);
    heap_[i]->index = i;
    heap_[m]->index = m;
    i = m;
  }
}

void loop::link_root(root_base* r) noexcept {
  r->prev = nullptr;
  r->next = roots_;
  if (roots_) roots_->prev = r;
  roots_ = r;
  ++nroots_;
}

void loop::unlink_root(root_base* r) noexcept {
  if (r->prev) r->prev->next = r->next; else roots_ = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = nullptr;
  --nroots_;
}

bool loop::is_runner() const noexcept { return runner_ != nullptr && runner_ == current_gt(); }

void loop::abdicate() {
  // Give back the rest of the batch, front of the queue, in order.
  if (batch_) {
    work_item* last = batch_;
    while (last->next) last = last->next;
    std::unique_lock<spinlock> g(qlk_);
    last->next = head_;
    head_ = batch_;
    if (!tail_) tail_ = last;
    batch_ = nullptr;
  }
  gt_base* me = runner_;
  runner_ = nullptr;
  ++pending_;  // the old runner, until it is back in run() and leaves
  try {
    start_runner();
  } catch (...) {  // no stack for a new runner: stay the runner (the wait may then stall)
    runner_ = me;
    --pending_;
    throw;
  }
}

// The runner's body.
void loop::run() {
  gt_base* me = current_gt();
  runner_ = me;
  tls_loop = this;
  for (;;) {
    {
      std::unique_lock<spinlock> g(qlk_);
      batch_ = head_;
      head_ = tail_ = nullptr;
    }
    while (work_item* it = batch_) {
      batch_ = it->next;
      it->next = nullptr;
      it->fn(it);
      if (runner_ != me) {  // abdicated while the item ran
        --pending_;
        return;
      }
    }
    if (!heap_.empty()) {
      auto now = clock::now();
      while (!heap_.empty() && heap_.front()->when <= now) {
        timer_node* t = heap_.front();
        remove_timer(t);
        t->item.fn(&t->item);
        if (runner_ != me) {
          --pending_;
          return;
        }
      }
    }
    if (w_.stopping.load(std::memory_order_acquire)) {
      // Shutdown: cancel what only we know about (co_spawn roots; everything
      // else hangs off a green thread that the runtime cancels itself).
      for (root_base* r = roots_; r; r = r->next) r->scope.request();
      if (try_retire()) return;  // `this` is gone
    }
    parker p;
    {
      std::unique_lock<spinlock> g(qlk_);
      if (head_) {
        g.unlock();
        boost::fibers::context::active()->yield();  // let the dispatcher poll, others run
        continue;
      }
      sleeper_until_ = heap_.empty() ? time_point::max() : heap_.front()->when;
      sleeper_ = &p;
    }
    wake r = park(p, sleeper_until_, true);
    {
      std::unique_lock<spinlock> g(qlk_);
      sleeper_ = nullptr;
    }
    if (r == wake::cancelled) me->cancel_requested.store(false, std::memory_order_relaxed);
  }
}

bool loop::try_retire() noexcept {
  if (pending_ != 0 || nroots_ != 0 || !heap_.empty()) return false;
  {
    std::lock_guard<std::mutex> reg(g_registry_lk);
    std::unique_lock<spinlock> g(qlk_);
    if (head_) return false;
    g_registry.erase(&w_);
  }
  tls_loop = nullptr;
  delete this;
  return true;
}

// ---- free functions ------------------------------------------------------------

loop* current_loop_or_null() {
  if (!current_gt()) return nullptr;
  if (tls_loop) return tls_loop;
  worker* w = current_worker();
  if (!w) return nullptr;
  tls_loop = &loop_of(w->rt(), w->index());
  return tls_loop;
}

loop& current_loop() {
  if (tls_loop) return *tls_loop;
  worker* w = current_worker();
  if (!w || !current_gt())
    throw std::logic_error(
        "greenring: coroutine operation outside a green thread (a greenring coroutine must be "
        "started by await_, sync_wait, co_spawn or another task)");
  tls_loop = &loop_of(w->rt(), w->index());
  return *tls_loop;
}

loop& loop_of(runtime_impl& rt, unsigned index, work_item* first, loop** home) {
  if (index >= rt.workers.size()) throw std::out_of_range("greenring: co_spawn_on: no such worker");
  worker* w = rt.workers[index].get();
  std::lock_guard<std::mutex> reg(g_registry_lk);
  auto it = g_registry.find(w);
  loop* l = it != g_registry.end() ? it->second : nullptr;
  if (!l) {
    l = new loop(*w);
    try {
      l->start_runner();
    } catch (...) {
      delete l;
      throw;
    }
    g_registry.emplace(w, l);
  }
  if (home) *home = l;
  if (first) l->post(first);
  return *l;
}

unsigned loop_worker_index(const loop& l) noexcept { return l.owner().index(); }

void post(loop& l, work_item* it) noexcept { l.post(it); }
void pending_add(loop& l) noexcept { l.pending_add(); }
void pending_done(loop& l) noexcept { l.pending_done(); }
void add_timer(loop& l, timer_node* t) noexcept { l.add_timer(t); }
void remove_timer(loop& l, timer_node* t) noexcept { l.remove_timer(t); }

void abdicate_if_runner() {
  if (tls_loop && tls_loop->is_runner()) tls_loop->abdicate();
}

// ---- trampolines for third-party awaitables ---------------------------------------

namespace {

struct trampoline {
  struct promise_type {
    trampoline get_return_object() noexcept {
      return {std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() const noexcept { return {}; }
    std::suspend_never final_suspend() const noexcept { return {}; }  // frees itself
    void return_void() const noexcept {}
    void unhandled_exception() const noexcept { std::terminate(); }
  };
  std::coroutine_handle<promise_type> h;
};

// Runs on whatever thread resumes it. Copies what it needs first: once posted,
// the awaiting coroutine may run (and free `it`) on its worker at once.
trampoline trampoline_body(loop* l, work_item* it) {
  l->post(it);
  co_return;
}

}  // namespace

std::coroutine_handle<> make_trampoline(loop& l, work_item* it) { return trampoline_body(&l, it).h; }

void destroy_trampoline(std::coroutine_handle<> h) noexcept { h.destroy(); }

}  // namespace greenring::detail::coro
