// detail/native_thread.cpp: see native_thread.hpp.
#include "detail/native_thread.hpp"

#include <atomic>
#include <cerrno>
#include <exception>
#include <memory>
#include <system_error>

namespace greenring::detail {
namespace {
std::atomic<pthread_create_fn> g_create{&::pthread_create};
std::atomic<pthread_join_fn> g_join{&::pthread_join};

void* trampoline(void* p) {
  std::unique_ptr<std::function<void()>> fn(static_cast<std::function<void()>*>(p));
  (*fn)();
  return nullptr;
}
}  // namespace

void set_native_thread_functions(pthread_create_fn create, pthread_join_fn join) noexcept {
  if (create) g_create.store(create, std::memory_order_release);
  if (join) g_join.store(join, std::memory_order_release);
}

int native_pthread_create(pthread_t* t, const pthread_attr_t* attr, void* (*fn)(void*), void* arg) noexcept {
  return g_create.load(std::memory_order_acquire)(t, attr, fn, arg);
}

int native_pthread_join(pthread_t t, void** ret) noexcept { return g_join.load(std::memory_order_acquire)(t, ret); }

native_thread::native_thread(std::function<void()> fn) {
  auto* p = new std::function<void()>(std::move(fn));
  if (int rc = native_pthread_create(&t_, nullptr, &trampoline, p); rc != 0) {
    delete p;
    throw std::system_error(rc, std::generic_category(), "greenring: pthread_create");
  }
  joinable_ = true;
}

native_thread& native_thread::operator=(native_thread&& o) noexcept {
  if (joinable_) std::terminate();
  t_ = o.t_;
  joinable_ = std::exchange(o.joinable_, false);
  return *this;
}

native_thread::~native_thread() {
  if (joinable_) std::terminate();
}

void native_thread::join() {
  if (!joinable_) throw std::system_error(EINVAL, std::generic_category(), "greenring: join");
  if (int rc = native_pthread_join(t_, nullptr); rc != 0)
    throw std::system_error(rc, std::generic_category(), "greenring: pthread_join");
  joinable_ = false;
}

void native_thread::detach() noexcept {
  if (joinable_) pthread_detach(t_);
  joinable_ = false;
}

}  // namespace greenring::detail
