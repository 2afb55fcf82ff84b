// interop_await_test: await_ from green threads - 10,000 green threads each
// await_-ing a task that sleeps and does socket I/O; third-party awaitables
// completed from foreign std::threads (resumption lands back on the owning
// worker); await_ called by a coroutine that runs on its worker's runner (the
// runner hands off instead of deadlocking); deadlines on await_.
#include "helpers/test_util.hpp"

#include <greenring/interop/interop.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace gr = greenring;
using gr_test::opts;
using namespace std::chrono_literals;

namespace {

// A third-party awaitable in the style of a callback library: it knows nothing
// about greenring and resumes its continuation from its own std::thread.
struct foreign_timer {
  std::chrono::milliseconds delay;
  int value;
  std::thread th;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    th = std::thread([h, d = delay] {
      std::this_thread::sleep_for(d);
      h.resume();
    });
  }
  int await_resume() { return value; }
  ~foreign_timer() {
    if (th.joinable()) th.join();  // it is finishing: it resumed us a moment ago
  }
};

// Same, but await_suspend returns bool and sometimes declines to suspend.
struct foreign_maybe {
  bool ready_after_all;
  std::thread th;
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) {
    if (ready_after_all) return false;
    th = std::thread([h] { h.resume(); });
    return true;
  }
  int await_resume() { return ready_after_all ? 1 : 2; }
  ~foreign_maybe() {
    if (th.joinable()) th.join();
  }
};

gr::task<bool> resumed_on_same_worker(int delay_ms) {
  auto before = std::this_thread::get_id();
  int w0 = gr::this_fiber::worker_index();
  int v = co_await foreign_timer{std::chrono::milliseconds(delay_ms), 5, {}};
  co_return v == 5 && std::this_thread::get_id() == before && gr::this_fiber::worker_index() == w0 &&
      gr::this_fiber::is_green_thread();
}

}  // namespace

TEST(InteropAwait, ForeignThreadAwaitableResumesOnOwningWorker) {
  gr::runtime rt(opts(3));
  constexpr int kN = 200;
  std::atomic<int> good{0};
  std::vector<gr::join_handle<void>> hs;
  for (int i = 0; i < kN; ++i)
    hs.push_back(gr::spawn_on(static_cast<unsigned>(i % 3), [&good, i] {
      if (gr::await_(resumed_on_same_worker(i % 5))) good++;
    }));
  for (auto& h : hs) h.join();
  EXPECT_EQ(good.load(), kN);
}

TEST(InteropAwait, AwaitForeignAwaitableDirectlyFromGreenThread) {
  gr::runtime rt(opts(2));
  gr::spawn([] {
    auto before = std::this_thread::get_id();
    EXPECT_EQ(gr::await_(foreign_timer{2ms, 9, {}}), 9);
    EXPECT_EQ(std::this_thread::get_id(), before);
    EXPECT_EQ(gr::await_(foreign_maybe{true, {}}), 1);
    EXPECT_EQ(gr::await_(foreign_maybe{false, {}}), 2);
  }).join();
}

TEST(InteropAwait, SyncWaitOnForeignAwaitableFromMain) {
  EXPECT_EQ(gr::sync_wait(foreign_timer{1ms, 3, {}}), 3);
}

TEST(InteropAwait, TenThousandGreenThreadsAwaitTasksThatSleepAndDoSocketIo) {
  gr_test::raise_nofile_limit();
  gr::runtime rt(opts(4));
  constexpr int kThreads = 10'000;  // green threads i and i^1 share one socketpair
  std::vector<gr_test::unique_fd> fds(kThreads);
  for (int i = 0; i < kThreads; i += 2) {
    auto [a, b] = gr_test::socket_pair();
    ASSERT_TRUE(a && b) << "socketpair failed at " << i << ": " << std::strerror(errno);
    fds[i] = std::move(a);
    fds[i + 1] = std::move(b);
  }
  auto exchange = [](int fd, int me, int sleep_us) -> gr::task<int> {
    co_await gr::co::sleep_for(std::chrono::microseconds(sleep_us));
    if (co_await gr::co::write(fd, &me, sizeof me) != sizeof me) co_return -1;
    int peer = -1;
    // The partner may not have written yet: this read usually suspends.
    if (co_await gr::co::read(fd, &peer, sizeof peer) != sizeof peer) co_return -2;
    co_return peer;
  };
  std::atomic<int> ok{0}, on_green{0};
  std::vector<gr::join_handle<void>> hs;
  hs.reserve(kThreads);
  std::mt19937 rng(7);
  for (int i = 0; i < kThreads; ++i) {
    int fd = fds[i].get();
    int sleep_us = static_cast<int>(rng() % 2000);
    hs.push_back(gr::spawn([&, fd, i, sleep_us] {
      int peer = gr::await_(exchange(fd, i, sleep_us));
      if (peer == (i ^ 1)) ok++;
      if (gr::this_fiber::is_green_thread()) on_green++;
    }));
  }
  for (auto& h : hs) h.join();
  EXPECT_EQ(ok.load(), kThreads);
  EXPECT_EQ(on_green.load(), kThreads);
}

TEST(InteropAwait, AwaitFromCoroutineOnTheRunnerHandsOff) {
  // After its first suspension a task runs on the worker's runner. If it then
  // calls the blocking await_ on a task that itself needs the runner, a naive
  // runner would deadlock; greenring hands the runner role to a new green thread.
  gr::runtime rt(opts(1));
  auto inner = []() -> gr::task<int> {
    co_await gr::co::sleep_for(1ms);
    co_return 7;
  };
  auto outer = [&]() -> gr::task<int> {
    co_await gr::co::sleep_for(1ms);  // now on the runner
    int v = gr::await_(inner());       // blocking, from coroutine code
    co_await gr::co::sleep_for(1ms);   // and the chain still works afterwards
    co_return v + gr::await_(inner());
  };
  auto h = gr::spawn([&] { return gr::await_(outer()); });
  ASSERT_TRUE(h.wait_for(10s)) << "deadlock: await_ on the runner";
  EXPECT_EQ(h.join(), 14);
}

TEST(InteropAwait, ManyCoroutinesOnRunnerEachCallingAwait) {
  // Several coroutines queued on one runner batch; the first one's await_
  // abdicates mid-batch and the rest of the batch must still run.
  gr::runtime rt(opts(1));
  std::atomic<int> done{0};
  auto leaf = []() -> gr::task<int> {
    co_await gr::co::sleep_for(1ms);
    co_return 1;
  };
  auto one = [&]() -> gr::task<void> {
    co_await gr::co::sleep_for(2ms);
    gr::await_(leaf());
    done++;
  };
  auto h = gr::spawn([&] {
    std::vector<gr::task<void>> ts;
    for (int i = 0; i < 50; ++i) ts.push_back(one());
    gr::await_(gr::when_all(std::move(ts)));
  });
  ASSERT_TRUE(h.wait_for(20s));
  h.join();
  EXPECT_EQ(done.load(), 50);
}

TEST(InteropAwait, DeadlineCancelsTheTaskAndThrowsTimedOut) {
  gr::runtime rt(opts(2));
  std::atomic<bool> saw_cancel{false};
  auto slow = [&]() -> gr::task<int> {
    try {
      co_await gr::co::sleep_for(10s);
    } catch (const gr::cancelled&) {
      saw_cancel = true;
      throw;
    }
    co_return 1;
  };
  gr::spawn([&] {
    gr_test::stopwatch sw;
    EXPECT_THROW(gr::await_(slow(), gr::after(20ms)), gr::timed_out);
    EXPECT_LT(sw.elapsed_ms(), 5000);
    EXPECT_TRUE(saw_cancel.load());
    // A task that makes it in time returns normally.
    auto quick = []() -> gr::task<int> {
      co_await gr::co::sleep_for(1ms);
      co_return 3;
    };
    EXPECT_EQ(gr::await_for(quick(), 5s), 3);
  }).join();
}

TEST(InteropAwait, AwaitNativeAwaitableDirectly) {
  gr::runtime rt(opts(1));
  auto [a, b] = gr_test::socket_pair();
  gr::spawn([&] {
    char c = 'x';
    EXPECT_EQ(gr::await_(gr::co::write(a.get(), &c, 1)), 1);
    char d = 0;
    EXPECT_EQ(gr::await_(gr::co::read(b.get(), &d, 1)), 1);
    EXPECT_EQ(d, 'x');
    gr::await_(gr::co::sleep_for(1ms));
  }).join();
}
