// bench/micro/interop_bench.cpp: the coroutine interop layer (issue 3), each
// figure next to the matching green-thread-only figure, measured in the same
// process run. Every runtime has options.workers = 1, so both sides of each
// pair run on one worker thread.
//
//   await_ready_task/*      get the result of something that is already done
//     coro_await_           greenring::await_(t) on a green thread, t a task<int>
//                           that finishes without suspending (frame allocation,
//                           inline start, final_suspend, free: all counted)
//     green_join_finished   join() of a green thread that has already finished
//     plain_call            the same body as a plain function call (floor)
//
//   await_finished_green_thread/*
//     coro_co_await         co_await of a finished greenring::join_handle<int>
//                           from a coroutine
//     green_join_finished   join() of a finished green thread from a green thread
//     (join_finished batches: 128 green threads are spawned and run to their end
//     with the timer paused, then joined one per iteration)
//
//   roundtrip/*             run an empty body on a new green thread and get back
//     coro_async_           co_await greenring::async_([]{}) from a coroutine
//     green_spawn_join      greenring::spawn([]{}).join() from a green thread
//
//   pingpong/*              A writes 1 byte to an AF_UNIX socketpair, B (blocked in
//                           read) echoes it, A (blocked in read) gets it back.
//                           One iteration = one round trip = 2 blocking hand-offs.
//     coroutines            two coroutines, greenring::co::read/write
//     green_threads         two green threads, greenring::io::read/write
//
// The `for (auto _ : state)` loop runs on the worker thread, inside the green
// thread or the coroutine being measured (Google Benchmark's timer reads the
// calling thread's clocks), so runtime construction is not timed. Real time.
#include "bench_util.hpp"

#include <benchmark/benchmark.h>

#include <greenring/greenring.hpp>
#include <greenring/interop/interop.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <vector>

namespace gr = greenring;

namespace {

gr::options one_worker() {
  gr::options o;
  o.workers = 1;
  return o;
}

using bench::die;
using bench::socket_pair;

__attribute__((noinline)) int body(int x) { return x + 1; }

gr::task<int> ready_task(int x) { co_return body(x); }

// ---- await of a ready task --------------------------------------------------------

void await_ready_coro(benchmark::State& state) {
  gr::runtime rt(one_worker());
  gr::spawn([&] {
    int x = 0;
    for (auto _ : state) x = gr::await_(ready_task(x));
    benchmark::DoNotOptimize(x);
  }).join();
}

void await_ready_plain_call(benchmark::State& state) {
  gr::runtime rt(one_worker());
  gr::spawn([&] {
    int x = 0;
    for (auto _ : state) {
      x = body(x);
      benchmark::DoNotOptimize(x);
    }
  }).join();
}

// Below options::stack_cache (256): joining must not unmap stacks (munmap would dominate).
constexpr std::size_t kBatch = 128;

// Green threads that have finished, handed out one per iteration; each batch
// of kBatch is made with the timer paused, so an iteration times one join.
class finished_threads {
 public:
  explicit finished_threads(benchmark::State& state) : state_(state) {}

  gr::join_handle<int>& next() {
    if (i_ == kBatch) {
      state_.PauseTiming();
      hs_.clear();
      for (std::size_t k = 0; k < kBatch; ++k) hs_.push_back(gr::spawn([k] { return static_cast<int>(k); }));
      // They run while we yield; the last one done means all are (FIFO, one worker).
      while (!hs_.back().wait_for(std::chrono::seconds(0))) gr::this_fiber::yield();
      gr::this_fiber::yield();
      i_ = 0;
      state_.ResumeTiming();
    }
    return hs_[i_++];
  }

 private:
  benchmark::State& state_;
  std::vector<gr::join_handle<int>> hs_;
  std::size_t i_ = kBatch;
};

void join_finished_green(benchmark::State& state) {
  gr::runtime rt(one_worker());
  gr::spawn([&] {
    finished_threads finished(state);
    long sum = 0;
    for (auto _ : state) sum += finished.next().join();
    benchmark::DoNotOptimize(sum);
  }).join();
}

void coawait_finished_coro(benchmark::State& state) {
  gr::runtime rt(one_worker());
  auto t = [&]() -> gr::task<long> {
    finished_threads finished(state);
    long sum = 0;
    // next() makes its batches with green-thread calls: coroutine code may use them, it runs on one.
    for (auto _ : state) sum += co_await finished.next();
    co_return sum;
  };
  gr::spawn([&] { benchmark::DoNotOptimize(gr::await_(t())); }).join();
}

// ---- round trip through a new green thread -------------------------------------------

void roundtrip_async_coro(benchmark::State& state) {
  gr::runtime rt(one_worker());
  auto t = [&]() -> gr::task<void> {
    co_await gr::async_([] {});  // warm: the runner and the stack cache
    for (auto _ : state) co_await gr::async_([] {});
  };
  gr::spawn([&] { gr::await_(t()); }).join();
}

void roundtrip_spawn_join_green(benchmark::State& state) {
  gr::runtime rt(one_worker());
  gr::spawn([&] {
    gr::spawn([] {}).join();
    for (auto _ : state) gr::spawn([] {}).join();
  }).join();
}

// ---- socketpair ping-pong ------------------------------------------------------------------

void pingpong_coroutines(benchmark::State& state) {
  gr::runtime rt(one_worker());
  socket_pair sp;
  auto echo = [&]() -> gr::task<void> {
    char c;
    while (co_await gr::co::read(sp.fd[1], &c, 1) == 1)
      if (co_await gr::co::write(sp.fd[1], &c, 1) != 1) break;
  };
  auto ping = [&]() -> gr::task<void> {
    char c = 'x';
    for (auto _ : state) {
      if (co_await gr::co::write(sp.fd[0], &c, 1) != 1) die("co::write");
      if (co_await gr::co::read(sp.fd[0], &c, 1) != 1) die("co::read");
    }
    ::shutdown(sp.fd[0], SHUT_WR);  // the echo coroutine sees EOF
  };
  auto e = gr::co_spawn_on(0, echo());
  gr::spawn([&] { gr::await_(ping()); }).join();
  e.join();
}

void pingpong_green_threads(benchmark::State& state) {
  gr::runtime rt(one_worker());
  socket_pair sp;
  auto e = gr::spawn([&] {
    char c;
    while (gr::io::read(sp.fd[1], &c, 1) == 1)
      if (gr::io::write(sp.fd[1], &c, 1) != 1) break;
  });
  gr::spawn([&] {
    char c = 'x';
    for (auto _ : state) {
      if (gr::io::write(sp.fd[0], &c, 1) != 1) die("io::write");
      if (gr::io::read(sp.fd[0], &c, 1) != 1) die("io::read");
    }
    ::shutdown(sp.fd[0], SHUT_WR);
  }).join();
  e.join();
}

}  // namespace

BENCHMARK(await_ready_coro)->Name("await_ready_task/coro_await_")->UseRealTime();
BENCHMARK(join_finished_green)->Name("await_ready_task/green_join_finished")->UseRealTime();
BENCHMARK(await_ready_plain_call)->Name("await_ready_task/plain_call")->UseRealTime();
BENCHMARK(coawait_finished_coro)->Name("await_finished_green_thread/coro_co_await")->UseRealTime();
BENCHMARK(join_finished_green)->Name("await_finished_green_thread/green_join_finished")->UseRealTime();
BENCHMARK(roundtrip_async_coro)->Name("roundtrip/coro_async_")->UseRealTime();
BENCHMARK(roundtrip_spawn_join_green)->Name("roundtrip/green_spawn_join")->UseRealTime();
BENCHMARK(pingpong_coroutines)->Name("pingpong/coroutines")->UseRealTime();
BENCHMARK(pingpong_green_threads)->Name("pingpong/green_threads")->UseRealTime();

BENCHMARK_MAIN();
