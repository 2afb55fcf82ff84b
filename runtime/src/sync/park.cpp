// sync/park.cpp: the waiter queue every blocking primitive is built on
// (park() itself lives in worker/spawn.cpp beside the cancellation handshake
// it shares a lock with). See greenring/detail/park.hpp for the protocol.
#include <greenring/detail/park.hpp>

namespace greenring::detail {

void waitq::push(waiter& w) noexcept {
  w.prev = tail_;
  w.next = nullptr;
  if (tail_) tail_->next = &w; else head_ = &w;
  tail_ = &w;
  w.linked = true;
}

void waitq::push_front(waiter& w) noexcept {
  w.prev = nullptr;
  w.next = head_;
  if (head_) head_->prev = &w; else tail_ = &w;
  head_ = &w;
  w.linked = true;
}

void waitq::remove(waiter& w) noexcept {
  if (w.prev) w.prev->next = w.next; else head_ = w.next;
  if (w.next) w.next->prev = w.prev; else tail_ = w.prev;
  w.prev = w.next = nullptr;
  w.linked = false;
}

waiter* waitq::pop() noexcept {
  waiter* w = head_;
  if (w) remove(*w);
  return w;
}

waiter* waitq::wake_one(wake r, std::uintptr_t tag) noexcept {
  while (waiter* w = pop()) {
    w->tag = tag;  // before unpark: the waiter reads it once it holds the guarding lock
    if (w->p.unpark(r)) return w;
    w->tag = 0;
  }
  return nullptr;
}

std::size_t waitq::wake_all(wake r) noexcept {
  std::size_t n = 0;
  while (waiter* w = pop()) n += w->p.unpark(r);
  return n;
}

wake waitq::wait(std::unique_lock<spinlock>& lk, time_point until, bool cancellable) noexcept {
  waiter w;
  push(w);
  lk.unlock();
  wake r = park(w.p, until, cancellable);
  lk.lock();
  if (w.linked) remove(w);
  return r;
}

}  // namespace greenring::detail
