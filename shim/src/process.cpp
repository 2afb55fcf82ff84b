// shim/src/process.cpp: processes.
//
// Symbols owned here:
//   fork daemon waitpid wait wait4 waitid system popen pclose
//
// fork: only the forking thread survives a fork, green or not. In the child it
// goes on, on its own stack, as a plain thread: its calls go to libc, as a
// native thread's do. The parent's runtime is forgotten there
// (detail::after_fork_child: its rings and eventfds closed, never used, its
// tables emptied), and the first pthread_create of the child starts the
// child's own runtime, so a pre-forking server's children still run their
// threads as green threads. exec starts over with the shim. posix_spawn and
// the exec family are not intercepted (they do not block the caller for long).
// daemon() is: glibc's forks through its internal __fork, which no preload
// sees, so its child would keep the parent's runtime, whose other workers
// are gone.
//
// Waiting for children suspends only the green thread: for one pid, on a
// pidfd (pidfd_open, Linux 5.3) that becomes readable when the child exits;
// for "any child", process groups, or stop/continue events, by polling the
// WNOHANG form with a pause growing from 1 to 20 ms.
//
// system and popen/pclose are greenring's own on green threads because
// glibc's wait for their child inside libc, out of the shim's reach.
#include "shim.hpp"
#include "threads.hpp"
#include "worker/worker.hpp"

#include <greenring/io.hpp>
#include <greenring/spawn.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <mutex>
#include <vector>

extern char** environ;

namespace greenring::shim {
namespace {

// Repeats `attempt` (a WNOHANG wait: 0 = nothing yet) until it reports.
template <class Attempt>
long wait_child(idtype_t type, id_t id, bool exit_only, Attempt attempt) {
  long r = attempt();
  if (r != 0) return r;
  int pidfd = -1;
  if (type == P_PID && exit_only) pidfd = static_cast<int>(detail::sys::raw(SYS_pidfd_open, static_cast<long>(id), 0));
  auto pause = std::chrono::milliseconds(1);
  for (;;) {
    if (pidfd >= 0) {
      greenring::io::poll(pidfd, POLLIN);
    } else {
      greenring::this_fiber::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds(20));
    }
    r = attempt();
    if (r != 0) break;
  }
  if (pidfd >= 0) detail::sys::raw(SYS_close, pidfd);
  return r;
}

idtype_t id_of(pid_t pid, id_t& id) noexcept {
  if (pid > 0) {
    id = static_cast<id_t>(pid);
    return P_PID;
  }
  id = static_cast<id_t>(pid < -1 ? -pid : 0);
  return pid < -1 || pid == 0 ? P_PGID : P_ALL;
}

pid_t g_wait4(pid_t pid, int* status, int options, rusage* ru) {
  if (options & WNOHANG) return GR_REAL(wait4)(pid, status, options, ru);
  id_t id;
  idtype_t type = id_of(pid, id);
  bool exit_only = !(options & (WUNTRACED | WCONTINUED));
  return static_cast<pid_t>(
      wait_child(type, id, exit_only, [&] { return static_cast<long>(GR_REAL(wait4)(pid, status, options | WNOHANG, ru)); }));
}

// popen'd streams and their children (POSIX: a child of popen must not keep
// earlier popen streams open, and pclose must find the pid).
struct popen_entry {
  FILE* f;
  pid_t pid;
  int fd;
};
std::vector<popen_entry> g_popen;
std::mutex g_popen_lk;

pid_t spawn_shell(const char* cmd, posix_spawn_file_actions_t* fa) {
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t def;
  sigemptyset(&def);
  sigaddset(&def, SIGINT);
  sigaddset(&def, SIGQUIT);
  posix_spawnattr_setsigdefault(&attr, &def);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
  const char* argv[] = {"sh", "-c", cmd, nullptr};
  pid_t pid = -1;
  int e = posix_spawn(&pid, "/bin/sh", fa, &attr, const_cast<char**>(argv), environ);
  posix_spawnattr_destroy(&attr);
  if (e != 0) {
    errno = e;
    return -1;
  }
  return pid;
}

}  // namespace
}  // namespace greenring::shim

using namespace greenring::shim;

GR_EXPORT pid_t fork() {
  if (!enabled()) return GR_REAL(fork)();
  void* me = current_thread_record();
  pid_t p = GR_REAL(fork)();
  if (p == 0) {
    greenring::detail::after_fork_child();
    threads_after_fork_child(me);
    // Threads a native thread creates are native; in the child of one they stay so.
    g_forked_child.store(me != nullptr);
    forget_cached_tid();
  }
  return p;
}

// glibc's daemon(), step for step, with the fork above.
GR_EXPORT int daemon(int nochdir, int noclose) {
  if (!enabled()) return GR_REAL(daemon)(nochdir, noclose);
  switch (fork()) {
    case -1: return -1;
    case 0: break;
    default: _exit(0);
  }
  if (setsid() == -1) return -1;
  if (!nochdir) (void)chdir("/");
  if (!noclose) {
    int fd = GR_REAL(open)("/dev/null", O_RDWR, 0);
    struct stat st {};
    if (fd == -1) return -1;
    if (fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3)) {
      close(fd);
      return -1;
    }
    (void)dup2(fd, STDIN_FILENO);
    (void)dup2(fd, STDOUT_FILENO);
    (void)dup2(fd, STDERR_FILENO);
    if (fd > 2) (void)close(fd);
  }
  return 0;
}

GR_EXPORT pid_t wait4(pid_t pid, int* status, int options, rusage* ru) {
  if (!green()) return GR_REAL(wait4)(pid, status, options, ru);
  return g_wait4(pid, status, options, ru);
}

GR_EXPORT pid_t waitpid(pid_t pid, int* status, int options) {
  if (!green()) return GR_REAL(waitpid)(pid, status, options);
  return g_wait4(pid, status, options, nullptr);
}

GR_EXPORT pid_t wait(int* status) {
  if (!green()) return GR_REAL(wait)(status);
  return g_wait4(-1, status, 0, nullptr);
}

GR_EXPORT int waitid(idtype_t type, id_t id, siginfo_t* info, int options) {
  if (!green() || (options & WNOHANG)) return GR_REAL(waitid)(type, id, info, options);
  bool exit_only = (options & (WSTOPPED | WCONTINUED)) == 0;
  return static_cast<int>(wait_child(type, id, exit_only, [&]() -> long {
    std::memset(info, 0, sizeof *info);
    int r = GR_REAL(waitid)(type, id, info, options | WNOHANG);
    if (r < 0) return -1;
    return info->si_pid != 0 ? 1 : 0;
  }) < 0 ? -1 : 0);
}

GR_EXPORT int system(const char* cmd) {
  if (!green() || !cmd) return GR_REAL(system)(cmd);
  pid_t pid = spawn_shell(cmd, nullptr);
  if (pid < 0) return 127 << 8;  // as glibc: the shell "exited 127"
  int status = 0;
  if (g_wait4(pid, &status, 0, nullptr) < 0) return -1;
  return status;
}

GR_EXPORT FILE* popen(const char* cmd, const char* mode) {
  if (!green()) return GR_REAL(popen)(cmd, mode);
  bool rd = mode && mode[0] == 'r', wr = mode && mode[0] == 'w';
  bool cloexec = mode && std::strchr(mode, 'e');
  if (!rd && !wr) {
    errno = EINVAL;
    return nullptr;
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return nullptr;
  int parent = rd ? p[0] : p[1], child = rd ? p[1] : p[0];
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, child, rd ? 1 : 0);
  pid_t pid;
  {
    std::lock_guard<std::mutex> g(g_popen_lk);
    for (auto& e : g_popen) posix_spawn_file_actions_addclose(&fa, e.fd);
    pid = spawn_shell(cmd, &fa);
  }
  posix_spawn_file_actions_destroy(&fa);
  int saved = errno;
  GR_REAL(close)(child);
  if (pid < 0) {
    GR_REAL(close)(parent);
    errno = saved;
    return nullptr;
  }
  if (!cloexec) fcntl(parent, F_SETFD, 0);
  FILE* f = fdopen(parent, rd ? "r" : "w");
  if (!f) {
    GR_REAL(close)(parent);
    int st;
    g_wait4(pid, &st, 0, nullptr);
    return nullptr;
  }
  std::lock_guard<std::mutex> g(g_popen_lk);
  g_popen.push_back({f, pid, parent});
  return f;
}

GR_EXPORT int pclose(FILE* f) {
  pid_t pid = -1;
  {
    std::lock_guard<std::mutex> g(g_popen_lk);
    for (std::size_t i = 0; i < g_popen.size(); ++i) {
      if (g_popen[i].f == f) {
        pid = g_popen[i].pid;
        g_popen[i] = g_popen.back();
        g_popen.pop_back();
        break;
      }
    }
  }
  if (pid < 0) return GR_REAL(pclose)(f);  // a native popen: libc's own bookkeeping
  std::fclose(f);
  int status = 0;
  pid_t r = green() ? g_wait4(pid, &status, 0, nullptr) : GR_REAL(waitpid)(pid, &status, 0);
  return r < 0 ? -1 : status;
}
