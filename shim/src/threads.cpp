// shim/src/threads.cpp: pthread_create makes green threads.
//
// Symbols owned here:
//   pthread_create pthread_join pthread_tryjoin_np pthread_timedjoin_np
//   pthread_clockjoin_np pthread_detach pthread_exit pthread_self
//   pthread_key_create pthread_key_delete pthread_getspecific pthread_setspecific
//   pthread_getattr_np pthread_setname_np pthread_getname_np pthread_kill
//   pthread_sigqueue pthread_cancel pthread_setcancelstate pthread_setcanceltype
//   pthread_testcancel pthread_getschedparam pthread_setschedparam
//   pthread_getaffinity_np pthread_setaffinity_np pthread_getcpuclockid
//
// # pthread_t of a green thread
// A heap record (gthread) with its address tagged by the low bit. glibc's
// pthread_t is a pointer to an aligned TCB, so a set low bit can never be a
// native thread: every function taking a pthread_t tells the two apart with
// one test, and native handles go to libc untouched. The record outlives the
// green thread until it is joined or detached (a joiner reads the value from
// it), and owns nothing of the stack, which the runtime reclaims at exit.
//
// # Thread-specific data
// Keys are greenring's for every thread (one key space): values live in the
// record for green threads and in a calloc'd array for native threads, whose
// destructors run from a glibc key's destructor at native thread exit.
//
// # pthread_exit and cancellation
// pthread_exit throws; the exception unwinds C frames (x86-64 code has unwind
// tables by default) and C++ destructors, and the record gets the value. A
// pthread_cancel request becomes greenring's cancellation, delivered at the
// green thread's next blocking call (I/O, sleep, wait), which then unwinds
// the same way with PTHREAD_CANCELED. C cleanup handlers registered with
// pthread_cleanup_push in C (setjmp-based) code are not run: docs/compat.md.
#include "shim.hpp"
#include "threads.hpp"

#include <greenring/cancel.hpp>
#include <greenring/runtime.hpp>
#include <greenring/spawn.hpp>
#include <greenring/sync.hpp>

#include "stack/stack.hpp"
#include "worker/worker.hpp"

#include <dlfcn.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>

#include <climits>
#include <csetjmp>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string_view>
#include <vector>

namespace greenring::shim {
namespace {

constexpr std::uint64_t kMagic = 0x67726e7468726421ull;  // "grnthrd!"
constexpr unsigned kKeys = PTHREAD_KEYS_MAX;

struct key_slot {
  std::atomic<std::uint64_t> seq{0};  // odd: in use
  std::atomic<void (*)(void*)> dtor{nullptr};
};
key_slot g_keys[kKeys];

struct key_val {
  void* v = nullptr;
  std::uint64_t seq = 0;
};

}  // namespace

struct gthread {
  std::uint64_t magic = kMagic;
  void* (*fn)(void*) = nullptr;
  void* arg = nullptr;
  void* ret = nullptr;
  std::uint32_t done = 0;  // futex word: 1 once finished
  std::atomic<int> refs{2};  // the green thread itself + (a joiner or detach)
  std::atomic<bool> detached{false};
  std::atomic<bool> joining{false};
  detail::gt_base* gt = nullptr;
  pthread_t worker_thread{};  // the OS thread running it (signals, scheduling queries)
  std::vector<key_val> keys;
  char name[16] = {};
  std::size_t stack_size = 0;
  int cancel_state = PTHREAD_CANCEL_ENABLE;
  int cancel_type = PTHREAD_CANCEL_DEFERRED;
  std::atomic<bool> cancel_pending{false};
  // pthread_cleanup_push buffers of C code (glibc's setjmp-based form): newest first.
  __pthread_unwind_buf_t* c_cleanup = nullptr;
  void* exit_value = nullptr;
};

namespace {

inline bool tagged(pthread_t t) noexcept { return (static_cast<std::uintptr_t>(t) & 1u) != 0; }
inline gthread* rec_of(pthread_t t) noexcept {
  auto* r = reinterpret_cast<gthread*>(static_cast<std::uintptr_t>(t) & ~std::uintptr_t(1));
  return r && r->magic == kMagic ? r : nullptr;
}
inline pthread_t handle_of(gthread* r) noexcept {
  return static_cast<pthread_t>(reinterpret_cast<std::uintptr_t>(r) | 1u);
}

void release(gthread* r) noexcept {
  if (r->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    r->magic = 0;
    delete r;
  }
}

// ---- keys ----------------------------------------------------------------------

thread_local key_val* t_native_keys = nullptr;  // calloc'd kKeys entries
constinit std::atomic<int> g_native_key_state{0};  // 0 none, 1 creating, 2 ready
pthread_key_t g_native_key;

void run_key_destructors(key_val* vals, std::size_t n) {
  for (int round = 0; round < PTHREAD_DESTRUCTOR_ITERATIONS; ++round) {
    bool any = false;
    for (std::size_t k = 0; k < n; ++k) {
      if (!vals[k].v || vals[k].seq != g_keys[k].seq.load(std::memory_order_acquire)) continue;
      void (*d)(void*) = g_keys[k].dtor.load(std::memory_order_acquire);
      void* v = vals[k].v;
      vals[k].v = nullptr;
      if (d) {
        d(v);
        any = true;
      }
    }
    if (!any) break;
  }
}

void native_keys_dtor(void* p) {
  auto* vals = static_cast<key_val*>(p);
  run_key_destructors(vals, kKeys);
  t_native_keys = nullptr;
  std::free(vals);
}

key_val* native_keys(bool create) noexcept {
  if (t_native_keys || !create) return t_native_keys;
  int s = g_native_key_state.load(std::memory_order_acquire);
  while (s != 2) {
    if (s == 0 && g_native_key_state.compare_exchange_strong(s, 1)) {
      GR_REAL(pthread_key_create)(&g_native_key, &native_keys_dtor);
      g_native_key_state.store(2, std::memory_order_release);
      break;
    }
    sched_yield();
    s = g_native_key_state.load(std::memory_order_acquire);
  }
  auto* vals = static_cast<key_val*>(std::calloc(kKeys, sizeof(key_val)));
  if (!vals) return nullptr;
  t_native_keys = vals;
  GR_REAL(pthread_setspecific)(g_native_key, vals);
  return vals;
}

// The thread that forked, in a fork child (threads_after_fork_child).
thread_local gthread* t_fork_survivor = nullptr;

gthread* current_record() noexcept {
  if (!green()) return t_fork_survivor;
  return static_cast<gthread*>(detail::current_gt()->user);
}

// In a fork child, threads created by a plain thread (the one that forked, or
// native threads it made) are green threads of a runtime of the child's own,
// started by the first such pthread_create. One attempt: a runtime that
// cannot start leaves the child's threads native.
std::atomic<bool> g_child_rt_lock{false};
std::atomic<bool> g_child_rt_failed{false};

bool child_runtime() noexcept {
  if (!g_forked_child.load(std::memory_order_relaxed) || g_child_rt_failed.load(std::memory_order_relaxed))
    return false;
  if (greenring::runtime::current()) return true;
  while (g_child_rt_lock.exchange(true, std::memory_order_acquire)) sched_yield();
  bool ok = greenring::runtime::current() != nullptr || start_runtime(false);
  if (!ok) g_child_rt_failed.store(true, std::memory_order_relaxed);
  g_child_rt_lock.store(false, std::memory_order_release);
  return ok;
}

// pthread_exit from main, or from the thread that forked in a fork child: the
// process lives until the other threads have ended, then exits 0.
[[noreturn]] void exit_when_alone() {
  auto* rt = greenring::runtime::current();
  std::size_t self = green() ? 1 : 0;
  while (rt && rt->live_green_threads() > self) {
    if (green())
      greenring::this_fiber::sleep_for(std::chrono::milliseconds(5));
    else
      GR_REAL(usleep)(5000);
  }
  std::exit(0);
}

// ---- native-thread rule (GREENRING_NATIVE_THREADS) ------------------------------

bool wants_native(void* (*fn)(void*)) noexcept {
  static const char* rule = [] {
    const char* e = std::getenv("GREENRING_NATIVE_THREADS");
    return e && *e ? e : nullptr;
  }();
  if (!rule) return false;
  std::string_view r(rule);
  if (r == "*" || r == "all") return true;
  Dl_info info{};
  if (!dladdr(reinterpret_cast<void*>(fn), &info)) return false;
  std::string_view sym = info.dli_sname ? info.dli_sname : "";
  std::string_view file = info.dli_fname ? info.dli_fname : "";
  if (auto slash = file.rfind('/'); slash != std::string_view::npos) file.remove_prefix(slash + 1);
  while (!r.empty()) {
    auto comma = r.find(',');
    std::string_view item = r.substr(0, comma);
    if (!item.empty() && (item == sym || item == file)) return true;
    if (comma == std::string_view::npos) break;
    r.remove_prefix(comma + 1);
  }
  return false;
}

std::size_t default_stack() noexcept {
  static std::size_t sz = [] {
    if (std::size_t v = detail::stack_size_from_env()) return v;
    pthread_attr_t a;
    std::size_t s = 0;
    if (pthread_getattr_default_np(&a) == 0) {
      pthread_attr_getstacksize(&a, &s);
      pthread_attr_destroy(&a);
    }
    return s ? s : std::size_t(8) << 20;
  }();
  return sz;
}

std::size_t clamp_stack(std::size_t s) noexcept {
  constexpr std::size_t lo = 16 * 1024, hi = std::size_t(1) << 30;
  return s < lo ? lo : s > hi ? hi : s;
}

struct thread_exit {
  void* value;
};

void finish(gthread* r) noexcept {
  run_key_destructors(r->keys.data(), r->keys.size());
  __atomic_store_n(&r->done, 1u, __ATOMIC_RELEASE);
  word_wake(&r->done, INT_MAX, false);
  release(r);
}

void body(gthread* r) noexcept {
  r->worker_thread = GR_REAL(pthread_self)();
  try {
    r->ret = r->fn(r->arg);
  } catch (const thread_exit& e) {
    r->ret = e.value;
  } catch (const greenring::cancelled&) {
    r->ret = PTHREAD_CANCELED;
  } catch (...) {
    std::terminate();  // as for an exception escaping a native thread
  }
  bool survivor = r == t_fork_survivor;  // finish may free r
  finish(r);
  if (survivor) exit_when_alone();  // the fork child's first thread ended like this one
}

// Spawns r as a green thread; EAGAIN when memory or the runtime says no.
int launch(gthread* r, int worker) noexcept {
  try {
    auto& rt = detail::runtime_for_spawn();
    detail::gt_state<void>* st = nullptr;
    auto ctx = detail::make_green_thread<void>(rt, worker, [r] { body(r); }, st, r->stack_size, r);
    r->gt = st;
    return 0;  // ctx released here: the scheduler keeps the context alive until it ends
  } catch (...) {
    return EAGAIN;
  }
}

int join_impl(pthread_t t, void** ret, time_point until, bool try_only) {
  gthread* r = rec_of(t);
  if (!r) return ESRCH;
  if (r == current_record()) return EDEADLK;
  if (r->detached.load(std::memory_order_acquire)) return EINVAL;
  if (r->joining.exchange(true, std::memory_order_acq_rel)) return EINVAL;
  while (__atomic_load_n(&r->done, __ATOMIC_ACQUIRE) == 0) {
    if (try_only) {
      r->joining.store(false, std::memory_order_release);
      return EBUSY;
    }
    int w = word_wait(&r->done, 0, until, false);
    if (w == ETIMEDOUT && __atomic_load_n(&r->done, __ATOMIC_ACQUIRE) == 0) {
      r->joining.store(false, std::memory_order_release);
      return ETIMEDOUT;
    }
  }
  if (ret) *ret = r->ret;
  release(r);
  return 0;
}

}  // namespace

namespace {

// glibc keeps its own links in __pad; for green threads they are ours.
inline __pthread_unwind_buf_t*& prev_of(__pthread_unwind_buf_t* b) noexcept {
  return reinterpret_cast<__pthread_unwind_buf_t*&>(b->__pad[0]);
}

// Runs the newest C cleanup handler: longjmp into the frame that pushed it,
// where glibc's macro calls the routine and then __pthread_unwind_next.
[[noreturn]] void run_c_cleanup(gthread* r) {
  void* top = r->c_cleanup->__cancel_jmp_buf;  // a __jmp_buf_tag without its signal mask
  std::longjmp(*static_cast<std::jmp_buf*>(top), 1);
}

void cancel_hook(detail::gt_base* gt) {
  auto* r = static_cast<gthread*>(gt->user);
  if (!r || !r->c_cleanup) return;  // plain exception unwinding will do
  r->exit_value = PTHREAD_CANCELED;
  run_c_cleanup(r);
}

}  // namespace

void install_cancel_hook() noexcept { detail::set_cancel_hook(&cancel_hook); }

void* current_thread_record() noexcept { return current_record(); }

void threads_after_fork_child(void* record) noexcept {
  t_fork_survivor = static_cast<gthread*>(record);
  g_child_rt_lock.store(false, std::memory_order_relaxed);
  g_child_rt_failed.store(false, std::memory_order_relaxed);
}

[[noreturn]] void exit_green_thread(void* value) {
  gthread* r = current_record();
  if (r && r->c_cleanup) {
    r->exit_value = value;
    run_c_cleanup(r);
  }
  throw thread_exit{value};
}


// main() as a green thread on worker 0; never returns (the green thread ends the
// process with exit(), as __libc_start_main would).
[[noreturn]] void run_main_green(int (*main_fn)(int, char**, char**), int argc, char** argv, char** envp) {
  auto* r = new gthread();
  rlimit rl{};
  std::size_t st = std::size_t(8) << 20;
  if (getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > 0)
    st = static_cast<std::size_t>(rl.rlim_cur);
  r->stack_size = clamp_stack(st);
  r->refs.store(1);  // nobody joins main
  r->detached.store(true);
  struct main_args {
    int (*fn)(int, char**, char**);
    int argc;
    char** argv;
    char** envp;
  };
  static main_args a{main_fn, argc, argv, envp};
  r->fn = [](void*) -> void* {
    int rc = 0;
    try {
      rc = a.fn(a.argc, a.argv, a.envp);
    } catch (const thread_exit&) {
      exit_when_alone();
    }
    std::exit(rc);
  };
  if (launch(r, 0) != 0) {
    static const char msg[] = "greenring: cannot start main() as a green thread\n";
    detail::sys::raw(SYS_write, 2, detail::sys::L(msg), sizeof msg - 1);
    std::abort();
  }
  // Not run yet (queued on this worker, which is this thread): main continues
  // the main OS thread, so it keeps that thread's green-TLS values.
  detail::inherit_green_tls(r->gt);
  // Worker 0's own context: runs the green threads placed here until exit().
  greenring::event never;
  for (;;) never.wait();
}

}  // namespace greenring::shim

using namespace greenring::shim;
using greenring::shim::gthread;

GR_EXPORT int pthread_create(pthread_t* t, const pthread_attr_t* attr, void* (*fn)(void*), void* arg) {
  if (wants_native(fn) || (!green() && !child_runtime())) return GR_REAL(pthread_create)(t, attr, fn, arg);
  auto* r = new (std::nothrow) gthread();
  if (!r) return EAGAIN;
  r->fn = fn;
  r->arg = arg;
  std::size_t st = 0;
  int detach = PTHREAD_CREATE_JOINABLE;
  if (attr) {
    pthread_attr_getstacksize(attr, &st);
    pthread_attr_getdetachstate(attr, &detach);
  }
  r->stack_size = clamp_stack(st ? st : default_stack());
  if (detach == PTHREAD_CREATE_DETACHED) {
    r->detached.store(true);
    r->refs.store(1);
  }
  *t = handle_of(r);  // before launch: the new thread may read its handle at once
  if (int e = launch(r, -1); e != 0) {
    delete r;
    return e;
  }
  return 0;
}

GR_EXPORT int pthread_join(pthread_t t, void** ret) {
  if (!tagged(t)) return GR_REAL(pthread_join)(t, ret);
  return join_impl(t, ret, time_point::max(), false);
}

GR_EXPORT int pthread_tryjoin_np(pthread_t t, void** ret) {
  if (!tagged(t)) return GR_REAL(pthread_tryjoin_np)(t, ret);
  return join_impl(t, ret, time_point::max(), true);
}

GR_EXPORT int pthread_timedjoin_np(pthread_t t, void** ret, const timespec* abs) {
  if (!tagged(t)) return GR_REAL(pthread_timedjoin_np)(t, ret, abs);
  if (abs && !valid_timespec(abs)) return EINVAL;
  return join_impl(t, ret, abs ? deadline_from_abs(CLOCK_REALTIME, *abs) : time_point::max(), false);
}

GR_EXPORT int pthread_clockjoin_np(pthread_t t, void** ret, clockid_t clk, const timespec* abs) {
  if (!tagged(t)) return GR_REAL(pthread_clockjoin_np)(t, ret, clk, abs);
  if (clk != CLOCK_REALTIME && clk != CLOCK_MONOTONIC) return EINVAL;
  if (abs && !valid_timespec(abs)) return EINVAL;
  return join_impl(t, ret, abs ? deadline_from_abs(clk, *abs) : time_point::max(), false);
}

GR_EXPORT int pthread_detach(pthread_t t) {
  if (!tagged(t)) return GR_REAL(pthread_detach)(t);
  gthread* r = rec_of(t);
  if (!r) return ESRCH;
  if (r->detached.exchange(true) || r->joining.load()) return EINVAL;
  release(r);
  return 0;
}

GR_EXPORT void pthread_exit(void* value) {
  if (current_record()) exit_green_thread(value);
  GR_REAL(pthread_exit)(value);
  __builtin_unreachable();
}

GR_EXPORT pthread_t pthread_self() {
  if (gthread* r = current_record()) return handle_of(r);
  return GR_REAL(pthread_self)();
}

// ---- keys ------------------------------------------------------------------------

GR_EXPORT int pthread_key_create(pthread_key_t* key, void (*dtor)(void*)) {
  if (!enabled()) return GR_REAL(pthread_key_create)(key, dtor);
  for (unsigned k = 0; k < kKeys; ++k) {
    std::uint64_t s = g_keys[k].seq.load(std::memory_order_acquire);
    if (s & 1) continue;
    g_keys[k].dtor.store(dtor, std::memory_order_release);
    if (g_keys[k].seq.compare_exchange_strong(s, s + 1, std::memory_order_acq_rel)) {
      *key = k;
      return 0;
    }
  }
  return EAGAIN;
}

GR_EXPORT int pthread_key_delete(pthread_key_t key) {
  if (!enabled()) return GR_REAL(pthread_key_delete)(key);
  if (key >= kKeys) return EINVAL;
  std::uint64_t s = g_keys[key].seq.load(std::memory_order_acquire);
  if (!(s & 1) || !g_keys[key].seq.compare_exchange_strong(s, s + 1)) return EINVAL;
  return 0;
}

GR_EXPORT void* pthread_getspecific(pthread_key_t key) {
  if (!enabled()) return GR_REAL(pthread_getspecific)(key);
  if (key >= kKeys) return nullptr;
  std::uint64_t s = g_keys[key].seq.load(std::memory_order_acquire);
  if (gthread* r = current_record()) {
    if (key >= r->keys.size() || r->keys[key].seq != s) return nullptr;
    return r->keys[key].v;
  }
  key_val* v = native_keys(false);
  return v && v[key].seq == s ? v[key].v : nullptr;
}

GR_EXPORT int pthread_setspecific(pthread_key_t key, const void* value) {
  if (!enabled()) return GR_REAL(pthread_setspecific)(key, value);
  if (key >= kKeys) return EINVAL;
  std::uint64_t s = g_keys[key].seq.load(std::memory_order_acquire);
  if (!(s & 1)) return EINVAL;
  if (gthread* r = current_record()) {
    if (key >= r->keys.size()) {
      try {
        r->keys.resize(key + 1);
      } catch (...) {
        return ENOMEM;
      }
    }
    r->keys[key] = {const_cast<void*>(value), s};
    return 0;
  }
  key_val* v = native_keys(true);
  if (!v) return ENOMEM;
  v[key] = {const_cast<void*>(value), s};
  return 0;
}

// ---- attributes, names, signals, scheduling ------------------------------------------

GR_EXPORT int pthread_getattr_np(pthread_t t, pthread_attr_t* attr) {
  if (!tagged(t)) return GR_REAL(pthread_getattr_np)(t, attr);
  gthread* r = rec_of(t);
  if (!r || !r->gt) return ESRCH;
  if (int e = pthread_attr_init(attr); e) return e;
  auto& s = r->gt->stack;
  pthread_attr_setstack(attr, s.lo, static_cast<std::size_t>(s.hi - s.lo));
  pthread_attr_setdetachstate(attr, r->detached.load() ? PTHREAD_CREATE_DETACHED : PTHREAD_CREATE_JOINABLE);
  return 0;
}

GR_EXPORT int pthread_setname_np(pthread_t t, const char* name) {
  if (!tagged(t)) return GR_REAL(pthread_setname_np)(t, name);
  gthread* r = rec_of(t);
  if (!r) return ESRCH;
  std::size_t n = std::strlen(name);
  if (n >= sizeof r->name) return ERANGE;
  std::memcpy(r->name, name, n + 1);
  return 0;
}

GR_EXPORT int pthread_getname_np(pthread_t t, char* buf, std::size_t len) {
  if (!tagged(t)) return GR_REAL(pthread_getname_np)(t, buf, len);
  gthread* r = rec_of(t);
  if (!r) return ESRCH;
  std::size_t n = std::strlen(r->name);
  if (len < n + 1) return ERANGE;
  std::memcpy(buf, r->name, n + 1);
  return 0;
}

GR_EXPORT int pthread_kill(pthread_t t, int sig) {
  if (!tagged(t)) return GR_REAL(pthread_kill)(t, sig);
  gthread* r = rec_of(t);
  if (!r) return ESRCH;
  if (sig < 0 || sig >= NSIG) return EINVAL;
  if (sig == 0 || __atomic_load_n(&r->done, __ATOMIC_ACQUIRE)) return 0;
  // The handler runs on the worker's OS thread, inside whichever green thread runs there.
  return GR_REAL(pthread_kill)(r->worker_thread, sig);
}

GR_EXPORT int pthread_sigqueue(pthread_t t, int sig, const union sigval value) {
  if (!tagged(t)) return GR_REAL(pthread_sigqueue)(t, sig, value);
  gthread* r = rec_of(t);
  if (!r) return ESRCH;
  return GR_REAL(pthread_sigqueue)(r->worker_thread, sig, value);
}

GR_EXPORT int pthread_cancel(pthread_t t) {
  if (!tagged(t)) return GR_REAL(pthread_cancel)(t);
  gthread* r = rec_of(t);
  if (!r) return ESRCH;
  r->cancel_pending.store(true, std::memory_order_release);
  if (r->cancel_state == PTHREAD_CANCEL_ENABLE && !__atomic_load_n(&r->done, __ATOMIC_ACQUIRE) && r->gt)
    greenring::detail::request_cancel(r->gt);
  return 0;
}

GR_EXPORT int pthread_setcancelstate(int state, int* old) {
  gthread* r = current_record();
  if (!r) return GR_REAL(pthread_setcancelstate)(state, old);
  if (state != PTHREAD_CANCEL_ENABLE && state != PTHREAD_CANCEL_DISABLE) return EINVAL;
  if (old) *old = r->cancel_state;
  int before = r->cancel_state;
  r->cancel_state = state;
  // Disabled: greenring's cancellation guard holds a request back until re-enabled.
  if (before == PTHREAD_CANCEL_ENABLE && state == PTHREAD_CANCEL_DISABLE) ++r->gt->cancel_block;
  if (before == PTHREAD_CANCEL_DISABLE && state == PTHREAD_CANCEL_ENABLE) {
    --r->gt->cancel_block;
    if (r->cancel_pending.load(std::memory_order_acquire)) greenring::detail::request_cancel(r->gt);
  }
  return 0;
}

GR_EXPORT int pthread_setcanceltype(int type, int* old) {
  gthread* r = current_record();
  if (!r) return GR_REAL(pthread_setcanceltype)(type, old);
  if (type != PTHREAD_CANCEL_DEFERRED && type != PTHREAD_CANCEL_ASYNCHRONOUS) return EINVAL;
  if (old) *old = r->cancel_type;
  r->cancel_type = type;  // asynchronous behaves as deferred (docs/compat.md)
  return 0;
}

GR_EXPORT void pthread_testcancel() {
  gthread* r = current_record();
  if (!r) return GR_REAL(pthread_testcancel)();
  if (r->cancel_state == PTHREAD_CANCEL_ENABLE && r->cancel_pending.load(std::memory_order_acquire))
    exit_green_thread(PTHREAD_CANCELED);
}

GR_EXPORT int pthread_getschedparam(pthread_t t, int* policy, sched_param* p) {
  if (!tagged(t)) return GR_REAL(pthread_getschedparam)(t, policy, p);
  gthread* r = rec_of(t);
  return r ? GR_REAL(pthread_getschedparam)(r->worker_thread, policy, p) : ESRCH;
}

// Scheduling a green thread's worker would move every green thread on it: accepted, not applied.
GR_EXPORT int pthread_setschedparam(pthread_t t, int policy, const sched_param* p) {
  if (!tagged(t)) return GR_REAL(pthread_setschedparam)(t, policy, p);
  return rec_of(t) ? 0 : ESRCH;
}

GR_EXPORT int pthread_getaffinity_np(pthread_t t, std::size_t n, cpu_set_t* set) {
  if (!tagged(t)) return GR_REAL(pthread_getaffinity_np)(t, n, set);
  gthread* r = rec_of(t);
  return r ? GR_REAL(pthread_getaffinity_np)(r->worker_thread, n, set) : ESRCH;
}

GR_EXPORT int pthread_setaffinity_np(pthread_t t, std::size_t n, const cpu_set_t* set) {
  if (!tagged(t)) return GR_REAL(pthread_setaffinity_np)(t, n, set);
  return rec_of(t) ? 0 : ESRCH;
}

GR_EXPORT int pthread_getcpuclockid(pthread_t t, clockid_t* clk) {
  if (!tagged(t)) return GR_REAL(pthread_getcpuclockid)(t, clk);
  gthread* r = rec_of(t);
  return r ? GR_REAL(pthread_getcpuclockid)(r->worker_thread, clk) : ESRCH;
}

// ---- C cleanup handlers (pthread_cleanup_push in C without -fexceptions) -------------

GR_EXPORT void __pthread_register_cancel(__pthread_unwind_buf_t* buf) {
  gthread* r = current_record();
  if (!r) return GR_REAL_T(void (*)(__pthread_unwind_buf_t*), "__pthread_register_cancel")(buf);
  prev_of(buf) = r->c_cleanup;
  r->c_cleanup = buf;
}

GR_EXPORT void __pthread_unregister_cancel(__pthread_unwind_buf_t* buf) {
  gthread* r = current_record();
  if (!r) return GR_REAL_T(void (*)(__pthread_unwind_buf_t*), "__pthread_unregister_cancel")(buf);
  r->c_cleanup = prev_of(buf);
}

// Called by glibc's pthread_cleanup_push macro after a handler ran during an exit:
// on to the next older handler, and after the last, the ordinary exit unwind.
GR_EXPORT void __pthread_unwind_next(__pthread_unwind_buf_t* buf) {
  gthread* r = current_record();
  if (!r) {
    GR_REAL_T(void (*)(__pthread_unwind_buf_t*), "__pthread_unwind_next")(buf);
    __builtin_unreachable();
  }
  r->c_cleanup = prev_of(buf);
  if (r->c_cleanup) run_c_cleanup(r);
  throw thread_exit{r->exit_value};
}
