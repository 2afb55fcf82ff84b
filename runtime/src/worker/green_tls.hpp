// worker/green_tls.hpp: a worker's view of the green-TLS registry (see
// add_green_tls in greenring/detail/green_thread.hpp).
//
// The registry is process-wide and fixed before workers start; each worker
// snapshots it once on its own thread (the variables' addresses are that
// thread's), so a switch costs one load and one store per variable and no
// lookup. With nothing registered, n == 0 and the switch pays one branch.
#pragma once

#include <greenring/detail/green_thread.hpp>

#include <cstdint>
#include <cstring>

namespace greenring::detail {

class green_tls_view {
 public:
  // On the worker's OS thread, before it runs green threads.
  void bind() noexcept;

  std::size_t size() const noexcept { return n_; }

  void save(std::uint64_t* out) const noexcept {
    for (std::size_t i = 0; i < n_; ++i) copy(&out[i], addr_[i], size_[i]);
  }
  void load(const std::uint64_t* in) const noexcept {
    for (std::size_t i = 0; i < n_; ++i) copy(addr_[i], &in[i], size_[i]);
  }

 private:
  // Constant-size memcpy per case: a single mov, no call.
  static void copy(void* to, const void* from, std::uint8_t size) noexcept {
    switch (size) {
      case 8: std::memcpy(to, from, 8); break;
      case 4: std::memcpy(to, from, 4); break;
      case 2: std::memcpy(to, from, 2); break;
      default: std::memcpy(to, from, 1); break;
    }
  }

  std::size_t n_ = 0;
  void* addr_[max_green_tls] = {};
  std::uint8_t size_[max_green_tls] = {};
};

}  // namespace greenring::detail
