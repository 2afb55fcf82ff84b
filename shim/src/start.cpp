// shim/src/start.cpp: process start-up under the shim.
//
// Symbols owned here:
//   __libc_start_main  __cxa_thread_atexit_impl
//
// __libc_start_main is where a dynamically linked program's _start hands over
// main. We hand libc a wrapper instead: it starts the runtime with the main
// OS thread as worker 0 (options::adopt_calling_thread) and runs main() as a
// green thread there, with a stack as large as the main thread's (RLIMIT_STACK).
// When main returns, that green thread calls exit() itself, exactly as libc's
// own start code does, so atexit handlers, static destructors and the exit
// status behave as before; the runtime is never torn down (exit ends the
// process, as it ends native threads).
//
// Thread-local destructors: exit() runs the calling OS thread's C++
// thread_local destructors. Those of Boost.Fiber and of greenring itself would
// dismantle the scheduler that the exiting green thread is running on (and
// wait for every other green thread of the worker to finish: a hang). So
// registrations coming from those two objects are dropped: the worker threads
// they belong to live as long as the process anyway.
#include "shim.hpp"
#include "threads.hpp"

#include <greenring/runtime.hpp>

#include "detail/native_thread.hpp"
#include "io/wait_any.hpp"

#include <boost/fiber/context.hpp>

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>

namespace greenring::shim {
namespace {

using main_fn = int (*)(int, char**, char**);
main_fn g_main = nullptr;

unsigned env_unsigned(const char* name) noexcept {
  const char* e = std::getenv(name);
  if (!e || !*e) return 0;
  return static_cast<unsigned>(std::strtoul(e, nullptr, 10));
}

int green_main(int argc, char** argv, char** envp) {
  detail::set_native_thread_functions(GR_REAL(pthread_create), GR_REAL(pthread_join));
  install_cancel_hook();
  detail::enable_blocked_hints(true);  // fds.cpp sees every fcntl(F_SETFL) and ioctl(FIONBIO)
  greenring::options o;
  o.adopt_calling_thread = true;
  o.workers = env_unsigned("GREENRING_WORKERS");
  // Green threads made by pthread_create size their stacks from the attribute
  // (threads.cpp); this is only the runtime's default for its own.
  greenring::runtime* rt = nullptr;
  try {
    rt = new greenring::runtime(o);  // never deleted: see the file comment
  } catch (const std::exception& e) {
    std::fprintf(stderr, "greenring: cannot start the runtime (%s); running natively\n", e.what());
    g_forked_child.store(true);  // every wrapper passes through from now on
    return g_main(argc, argv, envp);
  }
  (void)rt;
  run_main_green(g_main, argc, argv, envp);
}

bool from_object(void* fn, const void* probe) noexcept {
  Dl_info a{}, b{};
  if (!dladdr(fn, &a) || !dladdr(probe, &b)) return false;
  return a.dli_fbase == b.dli_fbase;
}

}  // namespace
}  // namespace greenring::shim

using namespace greenring::shim;

using start_main_t = int (*)(int (*)(int, char**, char**), int, char**, void (*)(), void (*)(), void (*)(), void*);

GR_EXPORT int __libc_start_main(int (*main)(int, char**, char**), int argc, char** argv, void (*init)(),
                                void (*fini)(), void (*rtld_fini)(), void* stack_end) {
  auto real = GR_REAL_T(start_main_t, "__libc_start_main");
  if (!enabled()) return real(main, argc, argv, init, fini, rtld_fini, stack_end);
  g_main = main;
  return real(&green_main, argc, argv, init, fini, rtld_fini, stack_end);
}

using thread_atexit_t = int (*)(void (*)(void*), void*, void*);

GR_EXPORT int __cxa_thread_atexit_impl(void (*dtor)(void*), void* obj, void* dso) {
  if (enabled()) {
    static int anchor;
    if (from_object(reinterpret_cast<void*>(dtor), &anchor) ||
        from_object(reinterpret_cast<void*>(dtor), reinterpret_cast<void*>(&boost::fibers::context::active)))
      return 0;
  }
  return GR_REAL_T(thread_atexit_t, "__cxa_thread_atexit_impl")(dtor, obj, dso);
}
