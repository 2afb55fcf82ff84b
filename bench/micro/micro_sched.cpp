// bench/micro/micro_sched.cpp: scheduling costs of greenring next to their
// baselines, measured in the same process run.
//
//   yield_roundtrip/*   two fibers on one thread alternately yielding. One
//                       iteration = one round trip = 2 yields (A->B and B->A;
//                       for Boost.Fiber and greenring the dispatcher also takes
//                       its one turn per pass over the ready queue). Per one-way
//                       switch = half the figure.
//     greenring                 greenring::this_fiber::yield, options.workers = 1
//     greenring_epoll           the same on the epoll driver (options.driver = backend::epoll)
//     greenring_pending_read    the same (io_uring) while a third green thread waits in
//                               io::read on an idle socket, i.e. one op is in flight
//     boost_fiber_round_robin   boost::this_fiber::yield, default round_robin, plain std::thread
//     boost_context_resume      raw boost::context::fiber, two contexts resuming each other
//
//   spawn_join/*        start an empty body and wait for it. One iteration = one spawn + one join.
//     greenring                 greenring::spawn([]{}).join() from a green thread (local worker)
//     greenring_epoll           the same on the epoll driver
//     greenring_pending_read    the same (io_uring) while another green thread waits in io::read
//     boost_fiber_default       boost::fibers::fiber([]{}).join() on a plain thread: default
//                               stack allocator = fixedsize_stack, malloc of 128 KiB per fiber
//     boost_fiber_pooled        same with boost::fibers::pooled_fixedsize_stack (128 KiB)
//     pthread                   pthread_create + pthread_join
//
// How the timing works: the `for (auto _ : state)` loop itself runs on the
// green thread (or the fiber): Google Benchmark's timer reads the wall clock
// and the calling OS thread's CPU clock, both from the thread that runs the
// loop, so nothing outside the loop (runtime construction, the plain thread's
// join) is timed and no PauseTiming is needed. All benchmarks use real time.
#include <benchmark/benchmark.h>

#include <greenring/greenring.hpp>

#include <boost/context/fiber.hpp>
#include <boost/fiber/fiber.hpp>
#include <boost/fiber/operations.hpp>
#include <boost/fiber/pooled_fixedsize_stack.hpp>

#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>

namespace {

greenring::options one_worker(greenring::backend b = greenring::backend::automatic) {
  greenring::options o;
  o.workers = 1;
  o.driver = b;
  return o;
}

// A green thread blocked in io::read on an idle socketpair for as long as this
// object lives: keeps one io_uring op in flight on the worker.
class pending_read {
 public:
  pending_read() {
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd_) != 0) std::abort();
    reader_ = greenring::spawn([fd = fd_[0]] {
      char c;
      return greenring::io::read(fd, &c, 1);
    });
    greenring::this_fiber::yield();  // let it block
  }
  ~pending_read() {
    char c = 'x';
    if (::write(fd_[1], &c, 1) != 1) std::abort();
    if (reader_.join() != 1) std::abort();
    ::close(fd_[0]);
    ::close(fd_[1]);
  }

 private:
  int fd_[2] = {-1, -1};
  greenring::join_handle<ssize_t> reader_;
};

// ---- yield ping-pong --------------------------------------------------------

void yield_greenring_on(benchmark::State& state, greenring::backend b, bool with_pending_read) {
  greenring::runtime rt(one_worker(b));
  greenring::spawn([&] {
    std::unique_ptr<pending_read> pending;
    if (with_pending_read) pending = std::make_unique<pending_read>();
    bool stop = false;  // both green threads live on worker 0: no atomics needed
    auto partner = greenring::spawn([&] {
      while (!stop) greenring::this_fiber::yield();
    });
    greenring::this_fiber::yield();  // let the partner start
    for (auto _ : state) greenring::this_fiber::yield();
    stop = true;
    partner.join();
  }).join();
}
void yield_greenring(benchmark::State& state) {
  yield_greenring_on(state, greenring::backend::automatic, false);
}
void yield_greenring_epoll(benchmark::State& state) { yield_greenring_on(state, greenring::backend::epoll, false); }
void yield_greenring_pending(benchmark::State& state) {
  yield_greenring_on(state, greenring::backend::automatic, true);
}

void yield_boost_fiber(benchmark::State& state) {
  std::thread th([&] {
    bool stop = false;
    boost::fibers::fiber partner([&] {
      while (!stop) boost::this_fiber::yield();
    });
    boost::fibers::fiber timed([&] {
      boost::this_fiber::yield();
      for (auto _ : state) boost::this_fiber::yield();
      stop = true;
    });
    timed.join();
    partner.join();
  });
  th.join();
}

void yield_boost_context(benchmark::State& state) {
  namespace ctx = boost::context;
  ctx::fiber f{[](ctx::fiber&& c) {
    for (;;) c = std::move(c).resume();
    return std::move(c);
  }};
  for (auto _ : state) f = std::move(f).resume();
  // Destroying f unwinds the other context (forced_unwind).
}

// ---- spawn + join -----------------------------------------------------------

void spawn_join_greenring_on(benchmark::State& state, greenring::backend b, bool with_pending_read) {
  greenring::runtime rt(one_worker(b));
  greenring::spawn([&] {
    std::unique_ptr<pending_read> pending;
    if (with_pending_read) pending = std::make_unique<pending_read>();
    for (auto _ : state) greenring::spawn([] {}).join();
  }).join();
}
void spawn_join_greenring(benchmark::State& state) {
  spawn_join_greenring_on(state, greenring::backend::automatic, false);
}
void spawn_join_greenring_epoll(benchmark::State& state) {
  spawn_join_greenring_on(state, greenring::backend::epoll, false);
}
void spawn_join_greenring_pending(benchmark::State& state) {
  spawn_join_greenring_on(state, greenring::backend::automatic, true);
}

void spawn_join_boost_default(benchmark::State& state) {
  std::thread th([&] {
    for (auto _ : state) boost::fibers::fiber([] {}).join();
  });
  th.join();
}

void spawn_join_boost_pooled(benchmark::State& state) {
  std::thread th([&] {
    boost::fibers::pooled_fixedsize_stack salloc;
    for (auto _ : state) boost::fibers::fiber(std::allocator_arg, salloc, [] {}).join();
  });
  th.join();
}

void* empty_thread(void*) { return nullptr; }

void spawn_join_pthread(benchmark::State& state) {
  for (auto _ : state) {
    pthread_t t;
    if (pthread_create(&t, nullptr, empty_thread, nullptr) != 0) {
      state.SkipWithError("pthread_create failed");
      break;
    }
    pthread_join(t, nullptr);
  }
}

}  // namespace

BENCHMARK(yield_greenring)->Name("yield_roundtrip/greenring")->UseRealTime();
BENCHMARK(yield_greenring_epoll)->Name("yield_roundtrip/greenring_epoll")->UseRealTime();
BENCHMARK(yield_greenring_pending)->Name("yield_roundtrip/greenring_pending_read")->UseRealTime();
BENCHMARK(yield_boost_fiber)->Name("yield_roundtrip/boost_fiber_round_robin")->UseRealTime();
BENCHMARK(yield_boost_context)->Name("yield_roundtrip/boost_context_resume")->UseRealTime();

BENCHMARK(spawn_join_greenring)->Name("spawn_join/greenring")->UseRealTime();
BENCHMARK(spawn_join_greenring_epoll)->Name("spawn_join/greenring_epoll")->UseRealTime();
BENCHMARK(spawn_join_greenring_pending)->Name("spawn_join/greenring_pending_read")->UseRealTime();
BENCHMARK(spawn_join_boost_default)->Name("spawn_join/boost_fiber_default")->UseRealTime();
BENCHMARK(spawn_join_boost_pooled)->Name("spawn_join/boost_fiber_pooled")->UseRealTime();
BENCHMARK(spawn_join_pthread)->Name("spawn_join/pthread")->UseRealTime();

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  {
    greenring::runtime rt(one_worker());
    benchmark::AddCustomContext("greenring_backend", rt.backend_name());
    benchmark::AddCustomContext("greenring_backend_features", rt.backend_features());
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
