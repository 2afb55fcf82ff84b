// interop/src/interop_internal.hpp: the loop class (see loop.cpp for the
// design essay and the ownership of each field).
#pragma once

#include <greenring/interop/detail/loop.hpp>
#include <greenring/interop/detail/root.hpp>

#include "worker/worker.hpp"

#include <vector>

namespace greenring::detail::coro {

class loop {
 public:
  explicit loop(worker& w) noexcept;
  loop(const loop&) = delete;
  loop& operator=(const loop&) = delete;

  worker& owner() const noexcept { return w_; }
  driver& drv() const noexcept { return w_.drv(); }

  // Any thread.
  void post(work_item* it) noexcept;

  // Owner thread.
  void pending_add() noexcept { ++pending_; }
  void pending_done() noexcept { --pending_; }
  void add_timer(timer_node* t) noexcept;
  void remove_timer(timer_node* t) noexcept;
  void link_root(root_base* r) noexcept;
  void unlink_root(root_base* r) noexcept;
  bool is_runner() const noexcept;
  void abdicate();

  void start_runner();

 private:
  void run();
  bool try_retire() noexcept;
  void sift_up(std::size_t i) noexcept;
  void sift_down(std::size_t i) noexcept;

  worker& w_;

  // Guarded by qlk_ (any thread).
  spinlock qlk_;
  work_item* head_ = nullptr;
  work_item* tail_ = nullptr;
  parker* sleeper_ = nullptr;
  time_point sleeper_until_ = time_point::max();  // written by the runner before it sleeps

  // Owner thread only.
  gt_base* runner_ = nullptr;
  work_item* batch_ = nullptr;
  std::vector<timer_node*> heap_;
  std::size_t pending_ = 0;
  root_base* roots_ = nullptr;
  std::size_t nroots_ = 0;
};

}  // namespace greenring::detail::coro
