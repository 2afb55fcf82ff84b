// driver_fallback_test: which driver a runtime picks.
//  (a) GREENRING_BACKEND=epoll -> "epoll"; options.driver = backend::epoll ->
//      "epoll" (and it wins over the environment); default options with
//      GREENRING_BACKEND unset -> "io_uring" on a machine where io_uring works;
//      an invalid GREENRING_BACKEND is rejected.
//  (b) In a forked child whose seccomp filter makes io_uring_setup fail with
//      EPERM, default options fall back to "epoll" and green socket I/O works;
//      options.driver = backend::uring (and GREENRING_BACKEND=uring) throw.
//
// The environment is restored after each test. Only one runtime that runs
// green threads is built per test, and none is alive when the test forks.
#include "helpers/test_util.hpp"

#include <gtest/gtest.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/io_uring.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

namespace gr = greenring;
using gr_test::opts;
using gr_test::scoped_env;

namespace {

// Whether io_uring_setup works in this process (what the runtime's probe,
// io_uring_queue_init, needs first).
bool io_uring_works() {
  io_uring_params p{};
  long fd = ::syscall(__NR_io_uring_setup, 8, &p);
  if (fd < 0) return false;
  ::close(static_cast<int>(fd));
  return true;
}

// A few round trips over a socketpair between two green threads on different
// workers (when there are two). Returns the number of rounds completed.
int green_ping_pong(gr::runtime& rt, int rounds) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return -1;
  auto pong = gr::spawn_on(rt.workers() - 1, [fd = sv[1], rounds] {
    for (int i = 0; i < rounds; ++i) {
      int v = 0;
      if (gr::io::read(fd, &v, sizeof v, gr::after(std::chrono::seconds(10))) != sizeof v) return false;
      ++v;
      if (gr::io::write(fd, &v, sizeof v) != sizeof v) return false;
    }
    return true;
  });
  auto ping = gr::spawn_on(0, [fd = sv[0], rounds] {
    int done = 0;
    for (int i = 0; i < rounds; ++i) {
      int v = 2 * i;
      if (gr::io::write(fd, &v, sizeof v) != sizeof v) break;
      if (gr::io::read(fd, &v, sizeof v, gr::after(std::chrono::seconds(10))) != sizeof v) break;
      if (v != 2 * i + 1) break;
      ++done;
    }
    return done;
  });
  int done = ping.join();
  bool ok = pong.join();
  ::close(sv[0]);
  ::close(sv[1]);
  return ok ? done : -1;
}

}  // namespace

// ---- (a) selection -----------------------------------------------------------------

TEST(DriverSelect, EnvEpollSelectsEpoll) {
  scoped_env env("GREENRING_BACKEND", "epoll");
  gr::runtime rt(opts(2));
  EXPECT_STREQ(rt.backend_name(), "epoll");
  EXPECT_EQ(green_ping_pong(rt, 50), 50);
}

TEST(DriverSelect, OptionEpollSelectsEpollAndBeatsEnv) {
  scoped_env env("GREENRING_BACKEND", "uring");  // the explicit option wins over this
  gr::options o = opts(2);
  o.driver = gr::backend::epoll;
  gr::runtime rt(o);
  EXPECT_STREQ(rt.backend_name(), "epoll");
  EXPECT_EQ(green_ping_pong(rt, 50), 50);
}

TEST(DriverSelect, DefaultIsIoUringWhenAvailable) {
  scoped_env env("GREENRING_BACKEND", std::nullopt);
  if (!io_uring_works()) GTEST_SKIP() << "io_uring_setup fails in this process: " << std::strerror(errno);
  gr::runtime rt(opts(2));
  EXPECT_STREQ(rt.backend_name(), "io_uring");
  EXPECT_EQ(green_ping_pong(rt, 50), 50);
}

TEST(DriverSelect, ExplicitUringAndEnvSpellings) {
  if (!io_uring_works()) GTEST_SKIP() << "io_uring_setup fails in this process";
  // No green threads in these runtimes: only the selection is checked.
  for (const char* v : {"uring", "io_uring", "auto"}) {
    scoped_env env("GREENRING_BACKEND", v);
    gr::runtime rt(opts(1));
    EXPECT_STREQ(rt.backend_name(), "io_uring") << "GREENRING_BACKEND=" << v;
  }
  scoped_env env("GREENRING_BACKEND", std::nullopt);
  gr::options o = opts(1);
  o.driver = gr::backend::uring;
  gr::runtime rt(o);
  EXPECT_STREQ(rt.backend_name(), "io_uring");
}

TEST(DriverSelect, InvalidEnvValueIsRejected) {
  scoped_env env("GREENRING_BACKEND", "kqueue");
  EXPECT_THROW(gr::runtime rt(opts(1)), std::invalid_argument);
  EXPECT_EQ(gr::runtime::current(), nullptr);
}

// ---- (b) seccomp makes io_uring_setup fail -------------------------------------------

namespace {

#if defined(__x86_64__)
constexpr unsigned kAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr unsigned kAuditArch = AUDIT_ARCH_AARCH64;
#else
constexpr unsigned kAuditArch = 0;  // unsupported: the test skips
#endif

constexpr int kChildSkip = 77;

// io_uring_setup -> EPERM, everything else allowed. The arch is checked first so
// that the syscall number means what we think; x32 syscalls (x86_64 numbers
// with __X32_SYSCALL_BIT set) are refused too.
int install_io_uring_filter() {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
#if defined(__x86_64__)
      BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u /* __X32_SYSCALL_BIT */, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
#endif
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{};
  prog.len = static_cast<unsigned short>(sizeof filter / sizeof filter[0]);
  prog.filter = filter;
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) return errno;
  return 0;
}

#define CHILD_CHECK(cond, code)                                                      \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "child: check failed (exit %d): %s\n", code, #cond);       \
      return code;                                                                    \
    }                                                                                 \
  } while (0)

// Runs in the forked child; the return value is its exit status.
int seccomp_child() {
  ::unsetenv("GREENRING_BACKEND");
  if (int e = install_io_uring_filter()) {
    std::fprintf(stderr, "child: cannot install seccomp filter: %s\n", std::strerror(e));
    return kChildSkip;
  }
  io_uring_params p{};
  errno = 0;
  long fd = ::syscall(__NR_io_uring_setup, 8, &p);
  CHILD_CHECK(fd == -1 && errno == EPERM, 2);

  // backend::uring never falls back: the constructor throws. (Checked before
  // any runtime runs green threads in this process.)
  {
    gr::options o;
    o.driver = gr::backend::uring;
    bool threw = false;
    try {
      gr::runtime rt(o);
    } catch (const std::exception& e) {
      threw = true;
      std::fprintf(stderr, "child: backend::uring threw as expected: %s\n", e.what());
    }
    CHILD_CHECK(threw, 3);
  }
  {
    ::setenv("GREENRING_BACKEND", "uring", 1);
    bool threw = false;
    try {
      gr::runtime rt;
    } catch (const std::exception&) {
      threw = true;
    }
    ::unsetenv("GREENRING_BACKEND");
    CHILD_CHECK(threw, 4);
  }
  CHILD_CHECK(gr::runtime::current() == nullptr, 5);

  // Default options: falls back to epoll, and green I/O works.
  gr::runtime rt;
  CHILD_CHECK(std::strcmp(rt.backend_name(), "epoll") == 0, 6);
  CHILD_CHECK(green_ping_pong(rt, 100) == 100, 7);
  CHILD_CHECK(gr::run(gr::options{}, [] { return 5; }) == 5, 8);  // a second, nested runtime
  return 0;
}

}  // namespace

TEST(DriverFallback, SeccompBlockedIoUringFallsBackToEpoll) {
  if (kAuditArch == 0) GTEST_SKIP() << "no seccomp arch constant for this architecture";
  ASSERT_EQ(gr::runtime::current(), nullptr) << "no runtime may be alive across fork()";
  std::fflush(nullptr);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0) << std::strerror(errno);
  if (pid == 0) {
    int code = 99;
    try {
      code = seccomp_child();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: unexpected exception: %s\n", e.what());
      code = 98;
    }
    std::fflush(nullptr);
    ::_exit(code);
  }
  int status = 0;
  pid_t w;
  do {
    w = ::waitpid(pid, &status, 0);
  } while (w < 0 && errno == EINTR);
  ASSERT_EQ(w, pid);
  ASSERT_TRUE(WIFEXITED(status)) << "child killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  if (WEXITSTATUS(status) == kChildSkip) GTEST_SKIP() << "seccomp filters unavailable here";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "see the child's message on stderr";
}
