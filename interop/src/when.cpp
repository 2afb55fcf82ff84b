// interop/src/when.cpp: the engine behind when_all, when_any and with_timeout.
//
// A gather starts its children one after the other on the awaiting coroutine's
// worker (each inline, with drive(), until it first suspends), each child with
// its own cancel_scope and with the gather as its completion sink. The count
// of unfinished children starts at n + 1: the extra one is held by start()
// itself, so a child that finishes while later ones are still being started
// can never be taken for the last. The last child to finish transfers control
// to the awaiting coroutine (symmetric transfer, through the trampoline).
//
// Who cancels whom, always on the owning worker's thread:
//  - when_any: the first child to finish cancels the others;
//  - when_all: the first child to fail cancels the others;
//  - with_timeout: the deadline (a timer on the loop) cancels the child;
//  - the awaiting coroutine's own cancellation (its scope's slot) cancels all.
// After any of these no further child is started. Children already finished
// are left alone; nothing is resumed inline by a cancellation (leaves only
// post), so the sink logic never re-enters itself.
#include <greenring/interop/when.hpp>

#include "interop_internal.hpp"

namespace greenring::detail::coro {

namespace {

void cancel_running(gather_core& g, std::size_t except) noexcept {
  g.stop = true;
  for (auto& c : g.kids)
    if (c.started && !c.finished && c.index != except) c.scope.request();
}

void wrap_up(gather_core& g) noexcept {
  if (g.timer.armed()) g.l->remove_timer(&g.timer);
  if (g.parent_scope) g.parent_scope->detach(&g.slot);
}

std::coroutine_handle<> child_done(completion* c, promise_base& p) noexcept {
  auto* ch = static_cast<gather_child*>(c);
  gather_core& g = *ch->g;
  ch->finished = true;
  if (g.pick == gather_core::npos && (g.any || p.error)) {
    g.pick = ch->index;
    cancel_running(g, ch->index);
  }
  if (--g.remaining == 0) {
    wrap_up(g);
    return transfer(g.parent);
  }
  return std::noop_coroutine();
}

void on_deadline(work_item* it) noexcept {
  auto& g = *static_cast<gather_core*>(it->ctx);
  g.deadline_hit = true;
  cancel_running(g, gather_core::npos);
}

void on_parent_cancel(cancel_slot* s) noexcept { cancel_running(*static_cast<gather_core*>(s->ctx), gather_core::npos); }

}  // namespace

bool gather_core::start(std::coroutine_handle<> par, cancel_scope* ps) {
  parent = par;
  parent_scope = ps;
  if (ps && ps->requested()) {
    early_cancel = true;
    return false;
  }
  for (std::size_t i = 0; i < kids.size(); ++i) {
    kids[i].g = this;
    kids[i].index = i;
    kids[i].fn = &child_done;
  }
  remaining = kids.size() + 1;
  if (until != time_point::max()) {
    l = &current_loop();
    timer.when = until;
    timer.item.fn = &on_deadline;
    timer.item.ctx = this;
    l->add_timer(&timer);
  }
  if (ps) {
    slot.fn = &on_parent_cancel;
    slot.ctx = this;
    ps->attach(&slot);
  }
  for (auto& c : kids) {
    if (stop) {
      --remaining;
      continue;
    }
    c.started = true;
    c.p->scope = &c.scope;
    c.p->sink = &c;
    drive(c.h);
  }
  if (--remaining == 0) {
    wrap_up(*this);
    return false;
  }
  return true;
}

void gather_core::settle() {
  if (early_cancel) {
    parent_scope->consume();
    throw greenring::cancelled();
  }
  if (pick == npos) return;
  gather_child& c = kids[pick];
  if (!c.p->error) return;
  if (c.p->ended_cancelled) {
    if (parent_scope && parent_scope->consume()) std::rethrow_exception(c.p->error);
    if (deadline_hit) throw greenring::timed_out();
  }
  std::rethrow_exception(c.p->error);
}

}  // namespace greenring::detail::coro
