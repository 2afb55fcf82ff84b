// driver/probe.cpp: choosing the driver.
//
// Order: an explicit options::driver, else GREENRING_BACKEND ("uring",
// "io_uring" or "epoll"), else io_uring when a probe ring can be set up.
// The probe is a real io_uring_queue_init: that is the only test that sees
// every way io_uring can be refused (ENOSYS on old kernels, EPERM from seccomp
// filters and from kernel.io_uring_disabled=2 or =1 without the group, ENOMEM
// from RLIMIT_MEMLOCK before 5.12).
#include "driver/driver.hpp"

#include <greenring/runtime.hpp>

#include <liburing.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace greenring::detail {

backend choose_backend(backend requested, unsigned entries, std::string& why) {
  if (requested == backend::automatic) {
    if (const char* env = std::getenv("GREENRING_BACKEND"); env && *env) {
      if (!std::strcmp(env, "epoll")) {
        why = "GREENRING_BACKEND=epoll";
        return backend::epoll;
      }
      if (!std::strcmp(env, "uring") || !std::strcmp(env, "io_uring")) {
        requested = backend::uring;
      } else if (std::strcmp(env, "auto") != 0) {
        throw std::invalid_argument(std::string("greenring: GREENRING_BACKEND must be uring, epoll or auto, not ") + env);
      }
    }
  }
  if (requested == backend::epoll) {
    if (why.empty()) why = "options::driver = epoll";
    return backend::epoll;
  }
  io_uring ring;
  int err = io_uring_queue_init(entries ? entries : 8, &ring, 0);
  if (err == 0) {
    io_uring_queue_exit(&ring);
    return backend::uring;
  }
  if (requested == backend::uring)
    throw std::runtime_error(std::string("greenring: io_uring requested but io_uring_queue_init failed: ") +
                             std::strerror(-err));
  why = std::string("io_uring_queue_init failed: ") + std::strerror(-err);
  return backend::epoll;
}

}  // namespace greenring::detail
