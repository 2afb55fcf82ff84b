// shim/src/sync.cpp: pthread synchronisation and futex waits that suspend a
// green thread, not its worker.
//
// Symbols owned here:
//   pthread_mutex_init pthread_mutex_destroy pthread_mutex_lock pthread_mutex_trylock
//   pthread_mutex_timedlock pthread_mutex_clocklock pthread_mutex_unlock
//   pthread_mutex_consistent
//   pthread_cond_init pthread_cond_destroy pthread_cond_wait pthread_cond_timedwait
//   pthread_cond_clockwait pthread_cond_signal pthread_cond_broadcast
//   pthread_rwlock_init pthread_rwlock_destroy pthread_rwlock_rdlock
//   pthread_rwlock_tryrdlock pthread_rwlock_timedrdlock pthread_rwlock_clockrdlock
//   pthread_rwlock_wrlock pthread_rwlock_trywrlock pthread_rwlock_timedwrlock
//   pthread_rwlock_clockwrlock pthread_rwlock_unlock
//   pthread_barrier_init pthread_barrier_destroy pthread_barrier_wait
//   pthread_spin_init pthread_spin_destroy pthread_spin_lock pthread_spin_trylock
//   pthread_spin_unlock
//   sem_init sem_destroy sem_wait sem_trywait sem_timedwait sem_clockwait sem_post
//   sem_getvalue
//   pthread_once  syscall (SYS_futex only; every other number goes to the kernel as is)
//
// # Why greenring implements these for every caller, not only green threads
// One mutex can be shared by green and native threads, so it needs one
// implementation; and glibc's cannot serve green threads: it records the OS
// TID as owner (two green threads on one worker share it, so recursive and
// error-checking mutexes would misjudge ownership) and sleeps in the kernel
// (stopping the whole worker). Every wait here is a futex-style wait on a
// 32-bit word (shim word_wait): green threads park in greenring's parking lot,
// native threads sleep in FUTEX_WAIT; every wake goes through word_wake, which
// wakes both — so no wake-up is lost between the two kinds of waiter.
//
// # Layouts
// Objects keep glibc's sizes and static initialisers (all-zero, or __kind set
// for PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP & co.). Mutexes keep glibc's field
// meanings (__lock, __count, __owner, __kind); condvars, rwlocks and barriers
// use their own words inside glibc's storage, away from the fields glibc's
// initialisers set (the condvar clock/pshared bits in __wrefs, rwlock __flags
// and __shared); sem_t uses glibc's 64-bit layout exactly (value | waiters << 32).
//
// Mutex words follow Drepper's "Futexes are tricky" three-state lock
// (0 free, 1 locked, 2 locked with waiters); condvars are a sequence word.
#include "shim.hpp"

#include <linux/futex.h>
#include <semaphore.h>
#include <sched.h>
#include <sys/syscall.h>

#include <greenring/spawn.hpp>

#include <climits>
#include <cstdarg>
#include <cstring>

namespace greenring::shim {
namespace {

// ---- glibc's mutex layout (x86-64) ----------------------------------------------
struct glibc_mutex {
  std::uint32_t lock;
  std::uint32_t count;
  int owner;
  std::uint32_t nusers;
  int kind;
  short spins;
  short elision;
  void* prev;
  void* next;
};
static_assert(sizeof(glibc_mutex) == sizeof(pthread_mutex_t));

constexpr int kKindMask = 3;         // PTHREAD_MUTEX_KIND_MASK_NP
constexpr int kRobustBit = 16;
constexpr int kPsharedBit = 128;     // PTHREAD_MUTEX_PSHARED_BIT

inline glibc_mutex* M(pthread_mutex_t* m) noexcept { return reinterpret_cast<glibc_mutex*>(m); }
inline bool pshared(const glibc_mutex* m) noexcept { return (m->kind & kPsharedBit) != 0; }

inline std::uint32_t xchg(std::uint32_t* w, std::uint32_t v) noexcept {
  return __atomic_exchange_n(w, v, __ATOMIC_ACQUIRE);
}
inline bool cas(std::uint32_t* w, std::uint32_t& expect, std::uint32_t v) noexcept {
  return __atomic_compare_exchange_n(w, &expect, v, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}
inline std::uint32_t ld(const std::uint32_t* w) noexcept { return __atomic_load_n(w, __ATOMIC_ACQUIRE); }

// Acquires a three-state lock word. 0 or ETIMEDOUT.
int word_lock(std::uint32_t* w, time_point until, bool shared) noexcept {
  std::uint32_t c = 0;
  if (cas(w, c, 1)) return 0;
  if (!green()) {  // a native thread spins a little before sleeping
    for (int i = 0; i < 100 && c != 0; ++i) {
      __builtin_ia32_pause();
      c = ld(w);
      if (c == 0 && cas(w, c, 1)) return 0;
    }
  }
  if (c != 2) c = xchg(w, 2);
  while (c != 0) {
    if (word_wait(w, 2, until, shared) == ETIMEDOUT) {
      c = xchg(w, 2);  // POSIX: a lock that became free in time still counts
      return c == 0 ? 0 : ETIMEDOUT;
    }
    c = xchg(w, 2);
  }
  return 0;
}

void word_unlock(std::uint32_t* w, bool shared) noexcept {
  if (__atomic_exchange_n(w, 0u, __ATOMIC_RELEASE) == 2) word_wake(w, 1, shared);
}

int mutex_lock(pthread_mutex_t* mp, time_point until, bool try_only) {
  glibc_mutex* m = M(mp);
  int type = m->kind & kKindMask;
  if (type != PTHREAD_MUTEX_RECURSIVE && type != PTHREAD_MUTEX_ERRORCHECK && !(m->kind & kRobustBit)) {
    // Normal and adaptive mutexes never ask who owns them: no identity lookup.
    if (try_only) {
      std::uint32_t c = 0;
      if (!cas(&m->lock, c, 1)) return EBUSY;
    } else if (int e = word_lock(&m->lock, until, pshared(m)); e) {
      return e;
    }
    ++m->nusers;
    return 0;
  }
  std::uint32_t self = self_token();
  if (type == PTHREAD_MUTEX_RECURSIVE && static_cast<std::uint32_t>(m->owner) == self) {
    if (m->count == UINT_MAX) return EAGAIN;
    ++m->count;
    return 0;
  }
  if (type == PTHREAD_MUTEX_ERRORCHECK && static_cast<std::uint32_t>(m->owner) == self)
    return try_only ? EBUSY : EDEADLK;
  if (try_only) {
    std::uint32_t c = 0;
    if (!cas(&m->lock, c, 1)) return EBUSY;
  } else if (int e = word_lock(&m->lock, until, pshared(m)); e) {
    return e;
  }
  m->owner = static_cast<int>(self);
  m->count = 1;
  ++m->nusers;
  return 0;
}

int mutex_unlock(pthread_mutex_t* mp) {
  glibc_mutex* m = M(mp);
  int type = m->kind & kKindMask;
  if (type == PTHREAD_MUTEX_RECURSIVE || type == PTHREAD_MUTEX_ERRORCHECK || (m->kind & kRobustBit)) {
    if (static_cast<std::uint32_t>(m->owner) != self_token() || ld(&m->lock) == 0) return EPERM;
    if (type == PTHREAD_MUTEX_RECURSIVE && --m->count != 0) return 0;
  }
  m->owner = 0;
  m->count = 0;
  --m->nusers;
  word_unlock(&m->lock, pshared(m));
  return 0;
}

int check_abs(const timespec* abs) noexcept { return valid_timespec(abs) ? 0 : EINVAL; }

// The deadline of a timed wait, or EINVAL for a clock or timespec glibc
// rejects. Condvars, rwlocks and semaphores check before anything else
// (glibc's pthread_rwlock_common.c, sem_timedwait.c); mutexes check the clock
// first but the timespec only when they must wait (POSIX: a free mutex is
// taken whatever the timeout says), so they use check_abs.
int abs_deadline(clockid_t clk, const timespec* abs, time_point& until) noexcept {
  if ((clk != CLOCK_REALTIME && clk != CLOCK_MONOTONIC) || !valid_timespec(abs)) return EINVAL;
  until = deadline_from_abs(clk, *abs);
  return 0;
}

// ---- condition variables ----------------------------------------------------------
// Words: [0] sequence, [1] waiters. glibc's __wrefs (word 9): bit 0 pshared, bit 1 monotonic clock.
struct cond_words {
  std::uint32_t seq;
  std::uint32_t waiters;
  std::uint32_t pad[7];
  std::uint32_t wrefs;
  std::uint32_t signals[2];
};
static_assert(sizeof(cond_words) == sizeof(pthread_cond_t));
inline cond_words* C(pthread_cond_t* c) noexcept { return reinterpret_cast<cond_words*>(c); }
inline bool cond_pshared(const cond_words* c) noexcept { return (c->wrefs & 1u) != 0; }
inline clockid_t cond_clock(const cond_words* c) noexcept {
  return (c->wrefs & 2u) ? CLOCK_MONOTONIC : CLOCK_REALTIME;
}

int cond_wait(pthread_cond_t* cp, pthread_mutex_t* mp, time_point until) {
  cond_words* c = C(cp);
  glibc_mutex* m = M(mp);
  int type = m->kind & kKindMask;
  if ((type == PTHREAD_MUTEX_ERRORCHECK || type == PTHREAD_MUTEX_RECURSIVE) &&
      static_cast<std::uint32_t>(m->owner) != self_token())
    return EPERM;
  std::uint32_t seq = ld(&c->seq);
  __atomic_fetch_add(&c->waiters, 1u, __ATOMIC_SEQ_CST);
  std::uint32_t saved = m->count;
  m->count = 1;
  mutex_unlock(mp);
  int r = word_wait(&c->seq, seq, until, cond_pshared(c), true);
  __atomic_fetch_sub(&c->waiters, 1u, __ATOMIC_SEQ_CST);
  // The mutex is held again on every return, cancellation included (POSIX).
  word_lock(&m->lock, time_point::max(), pshared(m));
  m->owner = static_cast<int>(self_token());
  m->count = saved;
  ++m->nusers;
  if (r == ECANCELED) {
    mutex_unlock(mp);  // a cancelled waiter's cleanup would unlock; ours is an exception unwind
    detail::throw_cancelled();
  }
  return r == ETIMEDOUT ? ETIMEDOUT : 0;
}

// ---- rwlocks ------------------------------------------------------------------------
// Words inside pthread_rwlock_t: [0] internal lock, [1] sequence, [2] readers,
// [3] writer (owner token), [4] writers waiting, [5] threads waiting on the
// sequence (so an unlock with nobody waiting costs no wake: OpenSSL 3 takes
// and drops read locks by the hundred thousand per certificate decode, and a
// FUTEX_WAKE syscall on each made that thousands of times slower).
// glibc's __shared is word 7, __flags word 12.
struct rw_words {
  std::uint32_t lk, seq, readers, writer, wwait, nwait, pad6;
  std::uint32_t shared;
  std::uint32_t pad8, pad9, pad10, pad11;
  std::uint32_t flags;
  std::uint32_t pad13;
};
static_assert(sizeof(rw_words) == sizeof(pthread_rwlock_t));
inline rw_words* R(pthread_rwlock_t* r) noexcept { return reinterpret_cast<rw_words*>(r); }

int rw_lock(pthread_rwlock_t* rp, bool write, time_point until, bool try_only) {
  rw_words* r = R(rp);
  bool sh = r->shared != 0;
  std::uint32_t self = self_token();
  // glibc's default prefers readers (a reader may enter while writers wait);
  // PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP makes new readers queue behind them.
  bool prefer_writer = r->flags == PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP;
  word_lock(&r->lk, time_point::max(), sh);
  if (r->writer == self) {
    word_unlock(&r->lk, sh);
    return try_only ? EBUSY : EDEADLK;
  }
  if (write) ++r->wwait;
  for (;;) {
    bool ok = write ? (r->writer == 0 && r->readers == 0) : (r->writer == 0 && !(prefer_writer && r->wwait > 0));
    if (ok) break;
    if (try_only) {
      if (write) --r->wwait;
      word_unlock(&r->lk, sh);
      return EBUSY;
    }
    std::uint32_t seq = ld(&r->seq);
    ++r->nwait;
    word_unlock(&r->lk, sh);
    int w = word_wait(&r->seq, seq, until, sh);
    word_lock(&r->lk, time_point::max(), sh);
    --r->nwait;
    if (w == ETIMEDOUT) {
      bool now_ok = write ? (r->writer == 0 && r->readers == 0) : (r->writer == 0);
      if (!now_ok) {
        if (write) {
          --r->wwait;
          if (r->nwait > 0) {
            __atomic_fetch_add(&r->seq, 1u, __ATOMIC_RELEASE);  // readers held back by us may go
            word_wake(&r->seq, INT_MAX, sh);
          }
        }
        word_unlock(&r->lk, sh);
        return ETIMEDOUT;
      }
      break;
    }
  }
  if (write) {
    --r->wwait;
    r->writer = self;
  } else {
    if (r->readers == UINT_MAX) {
      word_unlock(&r->lk, sh);
      return EAGAIN;
    }
    ++r->readers;
  }
  word_unlock(&r->lk, sh);
  return 0;
}

int rw_unlock(pthread_rwlock_t* rp) {
  rw_words* r = R(rp);
  bool sh = r->shared != 0;
  word_lock(&r->lk, time_point::max(), sh);
  bool wake = false;
  if (r->writer != 0) {
    if (r->writer != self_token()) {
      word_unlock(&r->lk, sh);
      return EPERM;
    }
    r->writer = 0;
    wake = true;
  } else if (r->readers > 0) {
    wake = --r->readers == 0;
  } else {
    word_unlock(&r->lk, sh);
    return EPERM;
  }
  wake = wake && r->nwait > 0;  // waiters count themselves under lk before they wait
  if (wake) __atomic_fetch_add(&r->seq, 1u, __ATOMIC_RELEASE);
  word_unlock(&r->lk, sh);
  if (wake) word_wake(&r->seq, INT_MAX, sh);
  return 0;
}

// ---- barriers -------------------------------------------------------------------------
struct barrier_words {
  std::uint32_t lk, count, arrived, seq, shared, pad[3];
};
static_assert(sizeof(barrier_words) == sizeof(pthread_barrier_t));
inline barrier_words* B(pthread_barrier_t* b) noexcept { return reinterpret_cast<barrier_words*>(b); }

// ---- semaphores (glibc's 64-bit layout) -----------------------------------------------
struct sem_words {
  std::uint32_t value;
  std::uint32_t waiters;
  int priv;  // FUTEX_PRIVATE_FLAG, or 0 when process-shared
  int pad;
};
static_assert(sizeof(sem_words) <= sizeof(sem_t));
inline sem_words* S(sem_t* s) noexcept { return reinterpret_cast<sem_words*>(s); }

int sem_wait_impl(sem_t* sp, time_point until, bool try_only) {
  sem_words* s = S(sp);
  bool sh = s->priv == 0;
  for (;;) {
    std::uint32_t v = ld(&s->value);
    while (v > 0) {
      if (__atomic_compare_exchange_n(&s->value, &v, v - 1, true, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return 0;
    }
    if (try_only) return fail(EAGAIN);
    __atomic_fetch_add(&s->waiters, 1u, __ATOMIC_SEQ_CST);
    int r = word_wait(&s->value, 0, until, sh, true);
    __atomic_fetch_sub(&s->waiters, 1u, __ATOMIC_SEQ_CST);
    if (r == ECANCELED) detail::throw_cancelled();
    if (r == ETIMEDOUT) {
      v = ld(&s->value);
      while (v > 0) {
        if (__atomic_compare_exchange_n(&s->value, &v, v - 1, true, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return 0;
      }
      return fail(ETIMEDOUT);
    }
  }
}

// ---- futex(2) through syscall() ----------------------------------------------------------
long raw_result(long r) noexcept { return r < 0 ? fail<long>(static_cast<int>(-r)) : r; }

long futex_call(std::uint32_t* addr, int op, std::uint32_t val, const timespec* ts, std::uint32_t* addr2,
                std::uint32_t val3) {
  int cmd = op & FUTEX_CMD_MASK;
  bool shared = !(op & FUTEX_PRIVATE_FLAG);
  bool wait = cmd == FUTEX_WAIT || (cmd == FUTEX_WAIT_BITSET && val3 == FUTEX_BITSET_MATCH_ANY);
  bool wake = cmd == FUTEX_WAKE || (cmd == FUTEX_WAKE_BITSET && val3 == FUTEX_BITSET_MATCH_ANY);
  if (wake) {
    // Every waker goes through the parking lot so green waiters hear it too.
    int n = static_cast<int>(val > INT_MAX ? INT_MAX : val);
    return word_wake(addr, n, shared);
  }
  if (wait && green()) {
    time_point until = time_point::max();
    if (ts) {
      if (!valid_timespec(ts)) return fail<long>(EINVAL);
      if (cmd == FUTEX_WAIT) until = deadline_from_rel(*ts);
      else until = deadline_from_abs((op & FUTEX_CLOCK_REALTIME) ? CLOCK_REALTIME : CLOCK_MONOTONIC, *ts);
    }
    int r = word_wait(addr, val, until, shared);
    if (r == EAGAIN) return fail<long>(EAGAIN);
    if (r == ETIMEDOUT) return fail<long>(ETIMEDOUT);
    return 0;
  }
  return raw_result(detail::sys::raw(SYS_futex, detail::sys::L(addr), op, val, detail::sys::L(ts),
                                     detail::sys::L(addr2), val3));
}

}  // namespace
}  // namespace greenring::shim

using namespace greenring::shim;

// ---- mutex ---------------------------------------------------------------------------------

GR_EXPORT int pthread_mutex_init(pthread_mutex_t* m, const pthread_mutexattr_t* a) {
  if (!enabled()) return GR_REAL(pthread_mutex_init)(m, a);
  int type = PTHREAD_MUTEX_DEFAULT, ps = PTHREAD_PROCESS_PRIVATE, robust = PTHREAD_MUTEX_STALLED;
  if (a) {
    pthread_mutexattr_gettype(a, &type);
    pthread_mutexattr_getpshared(a, &ps);
    pthread_mutexattr_getrobust(a, &robust);
  }
  std::memset(m, 0, sizeof *m);
  M(m)->kind = type | (ps == PTHREAD_PROCESS_SHARED ? kPsharedBit : 0) | (robust == PTHREAD_MUTEX_ROBUST ? kRobustBit : 0);
  return 0;
}

GR_EXPORT int pthread_mutex_destroy(pthread_mutex_t* m) {
  if (!enabled()) return GR_REAL(pthread_mutex_destroy)(m);
  return ld(&M(m)->lock) != 0 ? EBUSY : 0;
}

GR_EXPORT int pthread_mutex_lock(pthread_mutex_t* m) {
  if (!enabled()) return GR_REAL(pthread_mutex_lock)(m);
  return mutex_lock(m, time_point::max(), false);
}

GR_EXPORT int pthread_mutex_trylock(pthread_mutex_t* m) {
  if (!enabled()) return GR_REAL(pthread_mutex_trylock)(m);
  return mutex_lock(m, time_point::max(), true);
}

GR_EXPORT int pthread_mutex_timedlock(pthread_mutex_t* m, const timespec* abs) {
  if (!enabled()) return GR_REAL(pthread_mutex_timedlock)(m, abs);
  // POSIX: a mutex that is free now is taken without looking at abs.
  if (int e = check_abs(abs); e) return mutex_lock(m, time_point::max(), true) == 0 ? 0 : e;
  return mutex_lock(m, deadline_from_abs(CLOCK_REALTIME, *abs), false);
}

GR_EXPORT int pthread_mutex_clocklock(pthread_mutex_t* m, clockid_t clk, const timespec* abs) {
  if (!enabled()) return GR_REAL(pthread_mutex_clocklock)(m, clk, abs);
  if (clk != CLOCK_REALTIME && clk != CLOCK_MONOTONIC) return EINVAL;
  if (int e = check_abs(abs); e) return mutex_lock(m, time_point::max(), true) == 0 ? 0 : e;
  return mutex_lock(m, deadline_from_abs(clk, *abs), false);
}

GR_EXPORT int pthread_mutex_unlock(pthread_mutex_t* m) {
  if (!enabled()) return GR_REAL(pthread_mutex_unlock)(m);
  return mutex_unlock(m);
}

GR_EXPORT int pthread_mutex_consistent(pthread_mutex_t* m) {
  if (!enabled()) return GR_REAL(pthread_mutex_consistent)(m);
  return (M(m)->kind & kRobustBit) ? 0 : EINVAL;
}

// ---- condvar ----------------------------------------------------------------------------------

GR_EXPORT int pthread_cond_init(pthread_cond_t* c, const pthread_condattr_t* a) {
  if (!enabled()) return GR_REAL(pthread_cond_init)(c, a);
  clockid_t clk = CLOCK_REALTIME;
  int ps = PTHREAD_PROCESS_PRIVATE;
  if (a) {
    pthread_condattr_getclock(a, &clk);
    pthread_condattr_getpshared(a, &ps);
  }
  std::memset(c, 0, sizeof *c);
  C(c)->wrefs = (ps == PTHREAD_PROCESS_SHARED ? 1u : 0u) | (clk == CLOCK_MONOTONIC ? 2u : 0u);
  return 0;
}

GR_EXPORT int pthread_cond_destroy(pthread_cond_t* c) {
  if (!enabled()) return GR_REAL(pthread_cond_destroy)(c);
  return 0;
}

GR_EXPORT int pthread_cond_wait(pthread_cond_t* c, pthread_mutex_t* m) {
  if (!enabled()) return GR_REAL(pthread_cond_wait)(c, m);
  return cond_wait(c, m, time_point::max());
}

GR_EXPORT int pthread_cond_timedwait(pthread_cond_t* c, pthread_mutex_t* m, const timespec* abs) {
  if (!enabled()) return GR_REAL(pthread_cond_timedwait)(c, m, abs);
  time_point until;
  if (int e = abs_deadline(cond_clock(C(c)), abs, until)) return e;
  return cond_wait(c, m, until);
}

GR_EXPORT int pthread_cond_clockwait(pthread_cond_t* c, pthread_mutex_t* m, clockid_t clk, const timespec* abs) {
  if (!enabled()) return GR_REAL(pthread_cond_clockwait)(c, m, clk, abs);
  time_point until;
  if (int e = abs_deadline(clk, abs, until)) return e;
  return cond_wait(c, m, until);
}

GR_EXPORT int pthread_cond_signal(pthread_cond_t* cp) {
  if (!enabled()) return GR_REAL(pthread_cond_signal)(cp);
  cond_words* c = C(cp);
  __atomic_fetch_add(&c->seq, 1u, __ATOMIC_SEQ_CST);
  if (__atomic_load_n(&c->waiters, __ATOMIC_SEQ_CST) != 0) word_wake(&c->seq, 1, cond_pshared(c));
  return 0;
}

GR_EXPORT int pthread_cond_broadcast(pthread_cond_t* cp) {
  if (!enabled()) return GR_REAL(pthread_cond_broadcast)(cp);
  cond_words* c = C(cp);
  __atomic_fetch_add(&c->seq, 1u, __ATOMIC_SEQ_CST);
  if (__atomic_load_n(&c->waiters, __ATOMIC_SEQ_CST) != 0) word_wake(&c->seq, INT_MAX, cond_pshared(c));
  return 0;
}

// ---- rwlock --------------------------------------------------------------------------------------

GR_EXPORT int pthread_rwlock_init(pthread_rwlock_t* r, const pthread_rwlockattr_t* a) {
  if (!enabled()) return GR_REAL(pthread_rwlock_init)(r, a);
  int kind = PTHREAD_RWLOCK_DEFAULT_NP, ps = PTHREAD_PROCESS_PRIVATE;
  if (a) {
    pthread_rwlockattr_getkind_np(a, &kind);
    pthread_rwlockattr_getpshared(a, &ps);
  }
  std::memset(r, 0, sizeof *r);
  R(r)->flags = static_cast<std::uint32_t>(kind);
  R(r)->shared = ps == PTHREAD_PROCESS_SHARED ? 1 : 0;
  return 0;
}

GR_EXPORT int pthread_rwlock_destroy(pthread_rwlock_t* r) {
  if (!enabled()) return GR_REAL(pthread_rwlock_destroy)(r);
  return 0;
}

GR_EXPORT int pthread_rwlock_rdlock(pthread_rwlock_t* r) {
  if (!enabled()) return GR_REAL(pthread_rwlock_rdlock)(r);
  return rw_lock(r, false, time_point::max(), false);
}
GR_EXPORT int pthread_rwlock_tryrdlock(pthread_rwlock_t* r) {
  if (!enabled()) return GR_REAL(pthread_rwlock_tryrdlock)(r);
  return rw_lock(r, false, time_point::max(), true);
}
GR_EXPORT int pthread_rwlock_wrlock(pthread_rwlock_t* r) {
  if (!enabled()) return GR_REAL(pthread_rwlock_wrlock)(r);
  return rw_lock(r, true, time_point::max(), false);
}
GR_EXPORT int pthread_rwlock_trywrlock(pthread_rwlock_t* r) {
  if (!enabled()) return GR_REAL(pthread_rwlock_trywrlock)(r);
  return rw_lock(r, true, time_point::max(), true);
}

static int rw_timed(pthread_rwlock_t* r, bool write, clockid_t clk, const timespec* abs) {
  time_point until;
  if (int e = abs_deadline(clk, abs, until)) return e;
  return rw_lock(r, write, until, false);
}
GR_EXPORT int pthread_rwlock_timedrdlock(pthread_rwlock_t* r, const timespec* abs) {
  if (!enabled()) return GR_REAL(pthread_rwlock_timedrdlock)(r, abs);
  return rw_timed(r, false, CLOCK_REALTIME, abs);
}
GR_EXPORT int pthread_rwlock_clockrdlock(pthread_rwlock_t* r, clockid_t clk, const timespec* abs) {
  if (!enabled()) return GR_REAL(pthread_rwlock_clockrdlock)(r, clk, abs);
  return rw_timed(r, false, clk, abs);
}
GR_EXPORT int pthread_rwlock_timedwrlock(pthread_rwlock_t* r, const timespec* abs) {
  if (!enabled()) return GR_REAL(pthread_rwlock_timedwrlock)(r, abs);
  return rw_timed(r, true, CLOCK_REALTIME, abs);
}
GR_EXPORT int pthread_rwlock_clockwrlock(pthread_rwlock_t* r, clockid_t clk, const timespec* abs) {
  if (!enabled()) return GR_REAL(pthread_rwlock_clockwrlock)(r, clk, abs);
  return rw_timed(r, true, clk, abs);
}
GR_EXPORT int pthread_rwlock_unlock(pthread_rwlock_t* r) {
  if (!enabled()) return GR_REAL(pthread_rwlock_unlock)(r);
  return rw_unlock(r);
}

// ---- barrier ------------------------------------------------------------------------------------

GR_EXPORT int pthread_barrier_init(pthread_barrier_t* b, const pthread_barrierattr_t* a, unsigned count) {
  if (!enabled()) return GR_REAL(pthread_barrier_init)(b, a, count);
  if (count == 0) return EINVAL;
  int ps = PTHREAD_PROCESS_PRIVATE;
  if (a) pthread_barrierattr_getpshared(a, &ps);
  std::memset(b, 0, sizeof *b);
  B(b)->count = count;
  B(b)->shared = ps == PTHREAD_PROCESS_SHARED;
  return 0;
}

GR_EXPORT int pthread_barrier_destroy(pthread_barrier_t* b) {
  if (!enabled()) return GR_REAL(pthread_barrier_destroy)(b);
  return 0;
}

GR_EXPORT int pthread_barrier_wait(pthread_barrier_t* bp) {
  if (!enabled()) return GR_REAL(pthread_barrier_wait)(bp);
  barrier_words* b = B(bp);
  bool sh = b->shared != 0;
  word_lock(&b->lk, time_point::max(), sh);
  if (++b->arrived == b->count) {
    b->arrived = 0;
    __atomic_fetch_add(&b->seq, 1u, __ATOMIC_RELEASE);
    word_unlock(&b->lk, sh);
    word_wake(&b->seq, INT_MAX, sh);
    return PTHREAD_BARRIER_SERIAL_THREAD;
  }
  std::uint32_t seq = ld(&b->seq);
  word_unlock(&b->lk, sh);
  while (ld(&b->seq) == seq) word_wait(&b->seq, seq, time_point::max(), sh);
  return 0;
}

// ---- spinlock --------------------------------------------------------------------------------------

GR_EXPORT int pthread_spin_init(pthread_spinlock_t* l, int) {
  if (!enabled()) return GR_REAL(pthread_spin_init)(l, 0);
  __atomic_store_n(l, 0, __ATOMIC_RELEASE);
  return 0;
}
GR_EXPORT int pthread_spin_destroy(pthread_spinlock_t* l) {
  if (!enabled()) return GR_REAL(pthread_spin_destroy)(l);
  return 0;
}
GR_EXPORT int pthread_spin_lock(pthread_spinlock_t* l) {
  if (!enabled()) return GR_REAL(pthread_spin_lock)(l);
  // A green spinner yields: the holder may be a green thread of the same worker.
  bool g = green();
  for (unsigned n = 0;; ++n) {
    if (__atomic_load_n(l, __ATOMIC_RELAXED) == 0 && __atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE) == 0) return 0;
    if (g && n % 64 == 63) greenring::this_fiber::yield();
    else if (!g && n % 1024 == 1023) sched_yield();
    else __builtin_ia32_pause();
  }
}
GR_EXPORT int pthread_spin_trylock(pthread_spinlock_t* l) {
  if (!enabled()) return GR_REAL(pthread_spin_trylock)(l);
  return __atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE) == 0 ? 0 : EBUSY;
}
GR_EXPORT int pthread_spin_unlock(pthread_spinlock_t* l) {
  if (!enabled()) return GR_REAL(pthread_spin_unlock)(l);
  __atomic_store_n(l, 0, __ATOMIC_RELEASE);
  return 0;
}

// ---- semaphores ------------------------------------------------------------------------------------

GR_EXPORT int sem_init(sem_t* s, int pshared, unsigned value) {
  if (!enabled()) return GR_REAL(sem_init)(s, pshared, value);
  if (value > SEM_VALUE_MAX) return fail(EINVAL);
  std::memset(s, 0, sizeof *s);
  S(s)->value = value;
  S(s)->priv = pshared ? 0 : FUTEX_PRIVATE_FLAG;
  return 0;
}
GR_EXPORT int sem_destroy(sem_t* s) {
  if (!enabled()) return GR_REAL(sem_destroy)(s);
  return 0;
}
GR_EXPORT int sem_wait(sem_t* s) {
  if (!enabled()) return GR_REAL(sem_wait)(s);
  return sem_wait_impl(s, time_point::max(), false);
}
GR_EXPORT int sem_trywait(sem_t* s) {
  if (!enabled()) return GR_REAL(sem_trywait)(s);
  return sem_wait_impl(s, time_point::max(), true);
}
GR_EXPORT int sem_timedwait(sem_t* s, const timespec* abs) {
  if (!enabled()) return GR_REAL(sem_timedwait)(s, abs);
  time_point until;
  if (abs_deadline(CLOCK_REALTIME, abs, until)) return fail(EINVAL);
  return sem_wait_impl(s, until, false);
}
GR_EXPORT int sem_clockwait(sem_t* s, clockid_t clk, const timespec* abs) {
  if (!enabled()) return GR_REAL(sem_clockwait)(s, clk, abs);
  time_point until;
  if (abs_deadline(clk, abs, until)) return fail(EINVAL);
  return sem_wait_impl(s, until, false);
}
GR_EXPORT int sem_post(sem_t* sp) {
  if (!enabled()) return GR_REAL(sem_post)(sp);
  sem_words* s = S(sp);
  std::uint32_t v = ld(&s->value);
  do {
    if (v >= SEM_VALUE_MAX) return fail(EOVERFLOW);
  } while (!__atomic_compare_exchange_n(&s->value, &v, v + 1, true, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
  if (__atomic_load_n(&s->waiters, __ATOMIC_SEQ_CST) != 0) word_wake(&s->value, 1, s->priv == 0);
  return 0;
}
GR_EXPORT int sem_getvalue(sem_t* s, int* out) {
  if (!enabled()) return GR_REAL(sem_getvalue)(s, out);
  *out = static_cast<int>(ld(&S(s)->value));
  return 0;
}

// ---- once -------------------------------------------------------------------------------------------

GR_EXPORT int pthread_once(pthread_once_t* o, void (*init)()) {
  if (!enabled()) return GR_REAL(pthread_once)(o, init);
  // 0 not run, 1 running, 2 done (glibc's done value), 3 running with waiters.
  auto* w = reinterpret_cast<std::uint32_t*>(o);
  for (;;) {
    std::uint32_t s = ld(w);
    if (s == 2) return 0;
    if (s == 0) {
      if (!cas(w, s, 1)) continue;
      struct reset_on_unwind {  // an exception (pthread_exit, cancellation) lets the next caller retry
        std::uint32_t* w;
        bool done = false;
        ~reset_on_unwind() {
          if (!done && __atomic_exchange_n(w, 0u, __ATOMIC_RELEASE) == 3) word_wake(w, INT_MAX, false);
        }
      } guard{w};
      init();
      guard.done = true;
      if (__atomic_exchange_n(w, 2u, __ATOMIC_RELEASE) == 3) word_wake(w, INT_MAX, false);
      return 0;
    }
    if (s == 1 && !__atomic_compare_exchange_n(w, &s, 3u, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) continue;
    word_wait(w, 3, time_point::max(), false);
  }
}

// ---- syscall(SYS_futex, ...) -----------------------------------------------------------------------

GR_EXPORT long syscall(long number, ...) {
  va_list ap;
  va_start(ap, number);
  long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long);
  long a4 = va_arg(ap, long), a5 = va_arg(ap, long), a6 = va_arg(ap, long);
  va_end(ap);
  if (number == SYS_futex && enabled()) {
    return futex_call(reinterpret_cast<std::uint32_t*>(a1), static_cast<int>(a2), static_cast<std::uint32_t>(a3),
                      reinterpret_cast<const timespec*>(a4), reinterpret_cast<std::uint32_t*>(a5),
                      static_cast<std::uint32_t>(a6));
  }
  return raw_result(greenring::detail::sys::raw(number, a1, a2, a3, a4, a5, a6));
}
