// worker/asan_switch.hpp: telling AddressSanitizer about green-thread switches.
//
// Debian's Boost.Context is the fcontext build, which does not annotate its
// stack switches for sanitizers. ASan then believes every green thread runs on
// the worker thread's own stack; the visible damage is at exception unwinding:
// __asan_handle_no_return cannot clean the shadow of the frames an exception
// skips ("ASan is ignoring requested __asan_handle_no_return"), and those
// stale redzones later produce false stack-buffer-overflow reports.
//
// Every switch Boost.Fiber makes on a worker goes through our algorithm's
// pick_next() (which returns the next context, or nullptr meaning "the
// dispatcher"), so that is where we call __sanitizer_start_switch_fiber with
// the target's stack. The matching __sanitizer_finish_switch_fiber is made
// lazily at the next pick_next on the new stack: between the two, ASan is in
// its "switching" state, where it resolves the current stack by the stack
// pointer, which is right on either side. Stack bounds: a green thread's from
// its control block, the worker thread's main context from
// pthread_getattr_np, the dispatcher's (a malloc'd Boost stack) from
// __asan_locate_address. Fake stacks are not tracked: use-after-return
// detection is off in the sanitizer job (scripts/test.sh says why).
//
// The only unannotated switches left are Boost's own at thread exit
// (scheduler teardown, dispatcher <-> main, after all green threads ended).
#pragma once

#include <boost/fiber/context.hpp>

#if defined(GREENRING_ASAN)
#include <greenring/detail/green_thread.hpp>

#include <pthread.h>
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>

namespace greenring::detail::asan {

struct thread_state {
  bool pending = false;
  const void* main_bottom = nullptr;
  std::size_t main_size = 0;
  boost::fibers::context* dispatcher = nullptr;
  const void* disp_bottom = nullptr;
  std::size_t disp_size = 0;
};
inline thread_local thread_state t_state;

inline void finish_pending() noexcept {
  if (t_state.pending) {
    __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
    t_state.pending = false;
  }
}

inline void note_context(boost::fibers::context* ctx) noexcept {
  if (!t_state.dispatcher && ctx->is_context(boost::fibers::type::dispatcher_context)) {
    t_state.dispatcher = ctx;
    void* region = nullptr;
    std::size_t size = 0;
    char name[8];
    __asan_locate_address(ctx, name, sizeof name, &region, &size);
    t_state.disp_bottom = region;
    t_state.disp_size = size;
  }
}

inline void bounds_of(boost::fibers::context* ctx, const void*& bottom, std::size_t& size) noexcept {
  if (auto* gt = static_cast<gt_base*>(ctx->get_properties())) {
    bottom = gt->stack.lo;
    size = static_cast<std::size_t>(gt->stack.hi - gt->stack.lo);
  } else if (ctx->is_context(boost::fibers::type::main_context)) {
    if (!t_state.main_bottom) {
      pthread_attr_t a;
      void* addr = nullptr;
      std::size_t sz = 0;
      if (pthread_getattr_np(pthread_self(), &a) == 0) {
        pthread_attr_getstack(&a, &addr, &sz);
        pthread_attr_destroy(&a);
      }
      t_state.main_bottom = addr;
      t_state.main_size = sz;
    }
    bottom = t_state.main_bottom;
    size = t_state.main_size;
  } else {
    bottom = t_state.disp_bottom;
    size = t_state.disp_size;
  }
}

// Called in pick_next: `from` is the active context, `to` the one it returns
// (nullptr: the dispatcher, unless `from` is the dispatcher, which then does
// not switch at all).
inline void before_switch(boost::fibers::context* from, boost::fibers::context* to) noexcept {
  finish_pending();
  if (!to) {
    if (from->is_context(boost::fibers::type::dispatcher_context) || !t_state.dispatcher) return;
    to = t_state.dispatcher;
  }
  if (to == from) return;
  const void* bottom = nullptr;
  std::size_t size = 0;
  bounds_of(to, bottom, size);
  if (!bottom) return;
  __sanitizer_start_switch_fiber(nullptr, bottom, size);
  t_state.pending = true;
}

}  // namespace greenring::detail::asan
#else
namespace greenring::detail::asan {
inline void finish_pending() noexcept {}
inline void note_context(boost::fibers::context*) noexcept {}
inline void before_switch(boost::fibers::context*, boost::fibers::context*) noexcept {}
}  // namespace greenring::detail::asan
#endif
