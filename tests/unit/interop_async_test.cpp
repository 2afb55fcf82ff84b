// interop_async_test: coroutine -> green thread. co_await async_(fn, args...)
// with values, void, references, move-only arguments and exceptions; a legacy
// call tree blocking in green I/O, a greenring::mutex and sleeps inside async_;
// 10,000 coroutines each co_await-ing async_ of a function doing blocking
// socket I/O through the runtime; co_await of a green thread's join_handle,
// finished or not.
#include "helpers/test_util.hpp"

#include <greenring/interop/interop.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace gr = greenring;
using gr_test::opts;
using namespace std::chrono_literals;

namespace {

int legacy_square(int x) {
  gr::this_fiber::sleep_for(1ms);  // a blocking call: fine on a green thread
  return x * x;
}

}  // namespace

TEST(InteropAsync, ResultsVoidReferencesMoveOnlyArgs) {
  gr::runtime rt(opts(2));
  int target = 3;
  auto t = [&]() -> gr::task<std::string> {
    int sq = co_await gr::async_(legacy_square, 7);
    bool ran = false;
    co_await gr::async_([&ran] { ran = true; });
    int& r = co_await gr::async_([&]() -> int& { return target; });
    auto up = co_await gr::async_([](std::unique_ptr<int> p) { return p; }, std::make_unique<int>(11));
    std::string s = co_await gr::async_([](std::string a, const std::string& b) { return a + b; },
                                        std::string("x"), std::string("y"));
    co_return std::to_string(sq) + (ran ? "r" : "-") + (&r == &target ? "&" : "-") + std::to_string(*up) + s;
  };
  EXPECT_EQ(gr::sync_wait(t()), "49r&11xy");
}

TEST(InteropAsync, ExceptionFromGreenThreadReachesCoroutine) {
  gr::runtime rt(opts(2));
  auto t = []() -> gr::task<int> {
    try {
      co_await gr::async_([]() -> int { throw std::runtime_error("from green thread"); });
    } catch (const std::runtime_error& e) {
      co_return std::string(e.what()) == "from green thread" ? 1 : 2;
    }
    co_return 0;
  };
  EXPECT_EQ(gr::sync_wait(t()), 1);
  // Uncaught: on through the coroutine to the green thread that awaits it.
  auto u = []() -> gr::task<void> { co_await gr::async_([] { throw std::logic_error("deep"); }); };
  EXPECT_THROW(gr::spawn([&] { gr::await_(u()); }).join(), std::logic_error);
}

TEST(InteropAsync, LegacyCallTreeBlocksInGreenIoMutexAndSleep) {
  gr::runtime rt(opts(2));
  auto [a, b] = gr_test::socket_pair();
  gr::mutex m;
  // A "legacy" synchronous function: mutex, sleep, blocking read, blocking write.
  auto legacy = [&](int fd) -> std::string {
    std::lock_guard<gr::mutex> g(m);
    gr::this_fiber::sleep_for(1ms);
    char buf[16] = {};
    ssize_t n = gr::io::read(fd, buf, 5);  // blocks until the coroutine writes
    if (n != 5) return "short";
    if (gr::io::write(fd, "pong!", 5) != 5) return "wfail";
    return std::string(buf, 5);
  };
  auto coro = [&]() -> gr::task<std::string> {
    auto [got, _] = co_await gr::when_all(
        [&]() -> gr::task<std::string> { co_return co_await gr::async_(legacy, a.get()); }(),
        [&]() -> gr::task<void> {
          co_await gr::co::sleep_for(2ms);
          co_await gr::co::write(b.get(), "ping!", 5);
          char r[5];
          co_await gr::co::read(b.get(), r, 5);
        }());
    co_return got;
  };
  EXPECT_EQ(gr::sync_wait(coro()), "ping!");
}

TEST(InteropAsync, TenThousandCoroutinesEachAwaitAsyncDoingBlockingSocketIo) {
  gr_test::raise_nofile_limit();
  constexpr int kWorkers = 4;
  constexpr int kCoroutines = 10'000;  // coroutines i and i^1 share one socketpair
  gr::runtime rt(opts(kWorkers));
  std::vector<gr_test::unique_fd> fds(kCoroutines);
  for (int i = 0; i < kCoroutines; i += 2) {
    auto [a, b] = gr_test::socket_pair();
    ASSERT_TRUE(a && b);
    fds[i] = std::move(a);
    fds[i + 1] = std::move(b);
  }
  // The legacy function: plain blocking calls through the runtime's green I/O.
  auto blocking_exchange = [](int fd, int me) -> int {
    if (gr::io::write(fd, &me, sizeof me) != sizeof me) return -1;
    int peer = -1;
    if (gr::io::read(fd, &peer, sizeof peer) != sizeof peer) return -2;
    return peer;
  };
  std::atomic<int> ok{0}, green_threads_seen{0};
  auto one = [&](int i) -> gr::task<void> {
    int w = gr::this_fiber::worker_index();
    int peer = co_await gr::async_(blocking_exchange, fds[i].get(), i);
    if (peer == (i ^ 1)) ok++;
    if (gr::this_fiber::worker_index() == w) green_threads_seen++;  // resumed on its own worker
  };
  // One green thread per worker drives a when_all over its share of coroutines.
  std::vector<gr::join_handle<void>> drivers;
  for (int w = 0; w < kWorkers; ++w)
    drivers.push_back(gr::spawn_on(static_cast<unsigned>(w), [&, w] {
      std::vector<gr::task<void>> ts;
      for (int i = w; i < kCoroutines; i += kWorkers) ts.push_back(one(i));
      gr::await_(gr::when_all(std::move(ts)));
    }));
  for (auto& d : drivers) d.join();
  EXPECT_EQ(ok.load(), kCoroutines);
  EXPECT_EQ(green_threads_seen.load(), kCoroutines);
  // Nothing left behind: only the workers' coroutine runners stay (an async_
  // green thread posts its coroutine just before it ends, so allow it a moment).
  for (int i = 0; i < 500 && rt.live_green_threads() > kWorkers; ++i) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(rt.live_green_threads(), static_cast<std::size_t>(kWorkers));
}

TEST(InteropAsync, CoAwaitJoinHandleFinishedAndRunning) {
  gr::runtime rt(opts(2));
  int target = 0;
  auto t = [&]() -> gr::task<int> {
    // Finished before the await: ready at once.
    auto done = gr::spawn([] { return 5; });
    while (!done.wait_for(0ms)) co_await gr::co::sleep_for(1ms);
    int a = co_await done;
    // Still running: the coroutine is resumed when it ends.
    auto running = gr::spawn([] {
      gr::this_fiber::sleep_for(5ms);
      return 6;
    });
    int b = co_await std::move(running);
    // void and reference results, exceptions.
    co_await gr::spawn([] { gr::this_fiber::sleep_for(1ms); });
    int& r = co_await gr::spawn([&]() -> int& { return target; });
    int c = 0;
    try {
      co_await gr::spawn([]() -> int {
        gr::this_fiber::sleep_for(1ms);
        throw std::runtime_error("x");
      });
    } catch (const std::runtime_error&) {
      c = 1;
    }
    co_return a * 100 + b * 10 + c + (&r == &target ? 1000 : 0);
  };
  EXPECT_EQ(gr::sync_wait(t()), 1561);
}

TEST(InteropAsync, CoAwaitOfNonJoinableHandleThrows) {
  gr::runtime rt(opts(1));
  auto t = []() -> gr::task<void> {
    gr::join_handle<int> h;
    co_await h;
  };
  EXPECT_THROW(gr::sync_wait(t()), std::logic_error);
}
