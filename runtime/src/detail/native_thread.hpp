// detail/native_thread.hpp: OS threads the runtime itself needs (workers, the
// watchdog, DNS fallback helpers) are created here, never with std::thread.
//
// Why: under the LD_PRELOAD shim, pthread_create is interposed and makes green
// threads. A worker must be a real OS thread, so the runtime calls libc's
// pthread_create through a pointer the shim sets to the real one at start-up
// (set_native_pthread_create); linked programs keep the default, ::pthread_create.
#pragma once

#include <pthread.h>

#include <functional>
#include <utility>

namespace greenring::detail {

using pthread_create_fn = int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);
using pthread_join_fn = int (*)(pthread_t, void**);

void set_native_thread_functions(pthread_create_fn create, pthread_join_fn join) noexcept;
int native_pthread_create(pthread_t* t, const pthread_attr_t* attr, void* (*fn)(void*), void* arg) noexcept;
int native_pthread_join(pthread_t t, void** ret) noexcept;

// A joinable OS thread running `fn`; std::thread's shape, minus what we don't use.
// The constructor throws std::system_error when the thread cannot be created.
class native_thread {
 public:
  native_thread() noexcept = default;
  explicit native_thread(std::function<void()> fn);
  native_thread(native_thread&& o) noexcept : t_(o.t_), joinable_(std::exchange(o.joinable_, false)) {}
  native_thread& operator=(native_thread&& o) noexcept;
  ~native_thread();  // std::terminate when still joinable, like std::thread
  bool joinable() const noexcept { return joinable_; }
  void join();
  void detach() noexcept;

 private:
  pthread_t t_{};
  bool joinable_ = false;
};

}  // namespace greenring::detail
