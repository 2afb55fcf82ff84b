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
//
// Green TLS: a few thread-local variables are a thread's identity to the
// program (Perl >= 5.36 keeps the current interpreter in PL_current_context);
// green threads sharing a worker would share them and trample each other. The
// built-in list and GREENRING_GREEN_TLS name such variables; each is resolved
// here once (dlsym gives this thread's address, dl_iterate_phdr proves it is
// in a module's TLS block and gives the image's initial value) and handed to
// the runtime, which keeps one copy per green thread (add_green_tls).
#include "shim.hpp"
#include "threads.hpp"

#include <greenring/runtime.hpp>

#include "detail/native_thread.hpp"
#include "io/wait_any.hpp"

#include <boost/fiber/context.hpp>

#include <dlfcn.h>
#include <link.h>

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

// Thread-local "current context" variables of runtimes that run their
// threads through pthread_create; absent ones cost nothing.
constexpr const char* builtin_green_tls[] = {
    "PL_current_context",  // Perl >= 5.36 (PERL_USE_THREAD_LOCAL): the interpreter
};

struct tls_lookup {
  std::uintptr_t addr;
  std::size_t size;
  bool found;
  std::uint64_t initial;
};

int find_tls_block(dl_phdr_info* info, std::size_t, void* arg) {
  auto* f = static_cast<tls_lookup*>(arg);
  if (!info->dlpi_tls_data) return 0;
  for (unsigned i = 0; i < info->dlpi_phnum; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_TLS) continue;
    auto base = reinterpret_cast<std::uintptr_t>(info->dlpi_tls_data);
    if (f->addr < base || f->addr + f->size > base + ph.p_memsz) return 0;
    std::size_t off = f->addr - base;
    if (off < ph.p_filesz) {
      std::size_t n = ph.p_filesz - off < f->size ? ph.p_filesz - off : f->size;
      std::memcpy(&f->initial, reinterpret_cast<const char*>(info->dlpi_addr + ph.p_vaddr) + off, n);
    }
    f->found = true;
    return 1;
  }
  return 0;
}

void green_tls_warn(const char* name, const char* why) noexcept {
  std::fprintf(stderr, "greenring: GREENRING_GREEN_TLS: %s: %s; ignored\n", name, why);
}

// One variable: `explicit_name` when the user named it (a miss is reported).
void register_green_tls(const char* name, std::size_t size, bool explicit_name) noexcept {
  void* a = dlsym(RTLD_DEFAULT, name);
  if (!a) {
    if (explicit_name) green_tls_warn(name, "no such symbol in the program or its libraries");
    return;
  }
  tls_lookup f{reinterpret_cast<std::uintptr_t>(a), size, false, 0};
  dl_iterate_phdr(find_tls_block, &f);
  if (!f.found) {
    if (explicit_name) green_tls_warn(name, "not a thread-local variable of a module loaded at start-up");
    return;
  }
  auto off = static_cast<char*>(a) - static_cast<char*>(__builtin_thread_pointer());
  if (!detail::add_green_tls(off, size, f.initial))
    green_tls_warn(name, "more than 8 green-TLS variables, or a size other than 1, 2, 4, 8");
}

// GREENRING_GREEN_TLS=name[:size],... (size in bytes, default 8).
void register_green_tls_all() noexcept {
  for (const char* n : builtin_green_tls) register_green_tls(n, sizeof(void*), false);
  const char* e = std::getenv("GREENRING_GREEN_TLS");
  if (!e) return;
  while (*e) {
    const char* end = std::strchr(e, ',');
    std::size_t len = end ? static_cast<std::size_t>(end - e) : std::strlen(e);
    char item[256];
    if (len > 0 && len < sizeof item) {
      std::memcpy(item, e, len);
      item[len] = 0;
      std::size_t size = sizeof(void*);
      if (char* colon = std::strchr(item, ':')) {
        *colon = 0;
        char* num_end = nullptr;
        unsigned long v = std::strtoul(colon + 1, &num_end, 10);
        size = (*num_end || num_end == colon + 1) ? 0 : v;  // 0: rejected by add_green_tls
      }
      register_green_tls(item, size, true);
    }
    if (!end) break;
    e = end + 1;
  }
}

int green_main(int argc, char** argv, char** envp) {
  detail::set_native_thread_functions(GR_REAL(pthread_create), GR_REAL(pthread_join));
  install_cancel_hook();
  register_green_tls_all();  // before the runtime: workers bind it as they start
  detail::enable_blocked_hints(true);  // fds.cpp sees every fcntl(F_SETFL) and ioctl(FIONBIO)
  // Without a runtime no caller is green: every wrapper passes through.
  if (!start_runtime(true)) return g_main(argc, argv, envp);
  run_main_green(g_main, argc, argv, envp);
}

bool from_object(void* fn, const void* probe) noexcept {
  Dl_info a{}, b{};
  if (!dladdr(fn, &a) || !dladdr(probe, &b)) return false;
  return a.dli_fbase == b.dli_fbase;
}

}  // namespace

bool start_runtime(bool adopt_calling_thread) noexcept {
  greenring::options o;
  o.adopt_calling_thread = adopt_calling_thread;
  o.workers = env_unsigned("GREENRING_WORKERS");
  // Green threads made by pthread_create size their stacks from the attribute
  // (threads.cpp); this is only the runtime's default for its own.
  try {
    new greenring::runtime(o);  // never deleted: see the file comment
    return true;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "greenring: cannot start the runtime (%s); running natively\n", e.what());
    return false;
  }
}

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
