// bench/micro/micro_io.cpp: green I/O on an AF_UNIX socketpair next to the
// plain syscalls, measured in the same process run.
//
//   ready_read/*        1-byte read from a socket that already holds data.
//     greenring         greenring::io::read on a green thread (options.workers = 1)
//     plain_read        ::read on a plain thread
//                       The socket is kept full: one ::write of 32 KiB refills it
//                       every 32,768 reads (amortised: well under 1 ns per read),
//                       so one iteration is one read.
//   ready_write_read/*  one ::write of 1 byte then one 1-byte read, per iteration
//                       (the read+write pair; the write is a plain ::write on
//                       both sides, only the read differs).
//
//   calibration/null_syscall  syscall(SYS_getppid): what one kernel entry costs on
//                       this machine in this run (ANCHORS.md quotes 127 ns).
//
//   handoff_roundtrip/* A writes 1 byte, B (blocked in read) wakes and writes it
//                       back, A (blocked in read) wakes. One iteration = one
//                       round trip = 2 blocking hand-offs.
//     greenring_same_worker   both green threads on worker 0, options.workers = 1
//     greenring_two_workers   spawn_on(0) and spawn_on(1), options.workers = 2
//     os_threads_same_cpu     two std::threads, blocking ::read/::write, both pinned to one CPU
//     os_threads_two_cpus     the same, pinned to two different CPUs
//     os_threads_unpinned     the same, left to the kernel's scheduler
//
// As in micro_sched.cpp, the `for (auto _ : state)` loop runs on the green
// thread (or OS thread) doing the work; all figures are real time.
#include "bench_util.hpp"

#include <benchmark/benchmark.h>

#include <greenring/greenring.hpp>

#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

greenring::options n_workers(unsigned n) {
  greenring::options o;
  o.workers = n;
  return o;
}

using bench::die;
using bench::socket_pair;

void write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t r = ::write(fd, p, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      die("write");
    }
    p += r;
    n -= static_cast<std::size_t>(r);
  }
}

// ---- ready read -------------------------------------------------------------

constexpr std::size_t kFill = 32 * 1024;

template <class Read>
void ready_read_loop(benchmark::State& state, Read rd) {
  socket_pair sp;
  std::vector<char> fill(kFill, 'x');
  std::size_t avail = 0;
  char c;
  for (auto _ : state) {
    if (avail == 0) {
      write_all(sp.fd[1], fill.data(), fill.size());
      avail = fill.size();
    }
    if (rd(sp.fd[0], &c, 1) != 1) die("ready read");
    --avail;
  }
}

template <class Read>
void ready_write_read_loop(benchmark::State& state, Read rd) {
  socket_pair sp;
  char c = 'x';
  for (auto _ : state) {
    if (::write(sp.fd[1], &c, 1) != 1) die("write");
    if (rd(sp.fd[0], &c, 1) != 1) die("ready read");
  }
}

ssize_t plain_read(int fd, char* c, std::size_t n) { return ::read(fd, c, n); }
ssize_t green_read(int fd, char* c, std::size_t n) { return greenring::io::read(fd, c, n); }

// Whether the io fast path (preadv2 RWF_NOWAIT on a blocking socket) is
// supported by this kernel; if not, every green read would go through the ring.
std::string probe_rwf_nowait() {
  socket_pair sp;
  char c = 'x';
  if (::write(sp.fd[1], &c, 1) != 1) die("write");
  iovec iov{&c, 1};
  ssize_t r = ::preadv2(sp.fd[0], &iov, 1, -1, RWF_NOWAIT);
  return r == 1 ? "ok" : std::string("fails: ") + std::strerror(errno);
}

void ready_read_greenring(benchmark::State& state) {
  greenring::runtime rt(n_workers(1));
  greenring::spawn([&] { ready_read_loop(state, green_read); }).join();
}
void ready_read_plain(benchmark::State& state) { ready_read_loop(state, plain_read); }

void ready_write_read_greenring(benchmark::State& state) {
  greenring::runtime rt(n_workers(1));
  greenring::spawn([&] { ready_write_read_loop(state, green_read); }).join();
}
void ready_write_read_plain(benchmark::State& state) { ready_write_read_loop(state, plain_read); }

void null_syscall(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(::syscall(SYS_getppid));
}

// ---- blocked hand-off ------------------------------------------------------

template <class Read, class Write>
void initiator(benchmark::State& state, int fd, Read rd, Write wr) {
  char c = 'x';
  for (auto _ : state) {
    if (wr(fd, &c, 1) != 1) die("initiator write");
    if (rd(fd, &c, 1) != 1) die("initiator read");
  }
  c = 'q';
  if (wr(fd, &c, 1) != 1) die("initiator write q");
}

template <class Read, class Write>
void echoer(int fd, Read rd, Write wr) {
  char c;
  for (;;) {
    if (rd(fd, &c, 1) != 1) die("echo read");
    if (c == 'q') return;
    if (wr(fd, &c, 1) != 1) die("echo write");
  }
}

ssize_t plain_write(int fd, const char* c, std::size_t n) { return ::write(fd, c, n); }
ssize_t green_write(int fd, const char* c, std::size_t n) { return greenring::io::write(fd, c, n); }

void handoff_greenring(benchmark::State& state, unsigned workers) {
  greenring::runtime rt(n_workers(workers));
  socket_pair sp;
  auto b = greenring::spawn_on(workers - 1, [&] { echoer(sp.fd[1], green_read, green_write); });
  auto a = greenring::spawn_on(0, [&] { initiator(state, sp.fd[0], green_read, green_write); });
  a.join();
  b.join();
}
void handoff_greenring_same_worker(benchmark::State& state) { handoff_greenring(state, 1); }
void handoff_greenring_two_workers(benchmark::State& state) { handoff_greenring(state, 2); }

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  std::vector<int> v;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return v;
  for (int i = 0; i < CPU_SETSIZE; ++i)
    if (CPU_ISSET(i, &set)) v.push_back(i);
  return v;
}

// Pins the calling thread (cpu < 0: leaves it alone).
void pin_self(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0) die("pthread_setaffinity_np");
}

void handoff_os(benchmark::State& state, int cpu_a, int cpu_b) {
  socket_pair sp;
  std::thread b([&] {
    pin_self(cpu_b);
    echoer(sp.fd[1], plain_read, plain_write);
  });
  std::thread a([&] {
    pin_self(cpu_a);
    initiator(state, sp.fd[0], plain_read, plain_write);
  });
  a.join();
  b.join();
}
void handoff_os_same_cpu(benchmark::State& state) {
  auto cpus = allowed_cpus();
  handoff_os(state, cpus.at(0), cpus.at(0));
}
void handoff_os_two_cpus(benchmark::State& state) {
  auto cpus = allowed_cpus();
  if (cpus.size() < 2) {
    state.SkipWithError("needs 2 CPUs");
    for (auto _ : state) {
    }
    return;
  }
  handoff_os(state, cpus[0], cpus[1]);
}
void handoff_os_unpinned(benchmark::State& state) { handoff_os(state, -1, -1); }

}  // namespace

BENCHMARK(null_syscall)->Name("calibration/null_syscall")->UseRealTime();
BENCHMARK(ready_read_greenring)->Name("ready_read/greenring")->UseRealTime();
BENCHMARK(ready_read_plain)->Name("ready_read/plain_read")->UseRealTime();
BENCHMARK(ready_write_read_greenring)->Name("ready_write_read/greenring")->UseRealTime();
BENCHMARK(ready_write_read_plain)->Name("ready_write_read/plain_read")->UseRealTime();

BENCHMARK(handoff_greenring_same_worker)->Name("handoff_roundtrip/greenring_same_worker")->UseRealTime();
BENCHMARK(handoff_greenring_two_workers)->Name("handoff_roundtrip/greenring_two_workers")->UseRealTime();
BENCHMARK(handoff_os_same_cpu)->Name("handoff_roundtrip/os_threads_same_cpu")->UseRealTime();
BENCHMARK(handoff_os_two_cpus)->Name("handoff_roundtrip/os_threads_two_cpus")->UseRealTime();
BENCHMARK(handoff_os_unpinned)->Name("handoff_roundtrip/os_threads_unpinned")->UseRealTime();

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  {
    greenring::runtime rt(n_workers(1));
    benchmark::AddCustomContext("greenring_backend", rt.backend_name());
    benchmark::AddCustomContext("greenring_backend_features", rt.backend_features());
  }
  benchmark::AddCustomContext("socket_preadv2_rwf_nowait", probe_rwf_nowait());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
