// interop_cancel_test: cancellation both ways, ending in greenring::cancelled
// with nothing leaked (the sanitizer job runs this with leak detection) and no
// lost wake-up:
//  - green thread in await_ cancelled -> the awaited task (sleep, socket read,
//    async_ green thread, join of another green thread, when_all) is cancelled;
//  - coroutine (co_spawn handle, when_any loser, with_timeout) cancelled while
//    it awaits async_ -> its green thread is cancelled;
//  - a result that arrives anyway wins, the cancellation stays pending;
//  - cancellation racing completion, many times over, never hangs;
//  - runtime shutdown with coroutines parked everywhere finishes cleanly.
#include "helpers/test_util.hpp"

#include <greenring/interop/interop.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

namespace gr = greenring;
using gr_test::opts;
using namespace std::chrono_literals;

namespace {

// Waits (from a plain thread) until `flag` is set, up to 10 s.
bool eventually(const std::atomic<bool>& flag) {
  for (int i = 0; i < 10'000 && !flag.load(); ++i) std::this_thread::sleep_for(1ms);
  return flag.load();
}

// Runs `body` on a green thread, lets it reach its wait, cancels it, and
// returns whether join() threw greenring::cancelled.
template <class F>
bool cancel_green_thread_in(F body, const std::atomic<bool>& waiting) {
  auto h = gr::spawn(std::move(body));
  EXPECT_TRUE(eventually(waiting));
  std::this_thread::sleep_for(2ms);
  h.cancel();
  try {
    h.join();
  } catch (const gr::cancelled&) {
    return true;
  }
  return false;
}

}  // namespace

TEST(InteropCancel, GreenThreadInAwaitCancelsSleepingTask) {
  gr::runtime rt(opts(2));
  std::atomic<bool> waiting{false}, task_saw{false};
  auto t = [&]() -> gr::task<void> {
    waiting = true;
    try {
      co_await gr::co::sleep_for(30s);
    } catch (const gr::cancelled&) {
      task_saw = true;
      throw;
    }
  };
  EXPECT_TRUE(cancel_green_thread_in([&] { gr::await_(t()); }, waiting));
  EXPECT_TRUE(task_saw.load());
}

TEST(InteropCancel, GreenThreadInAwaitCancelsSocketRead) {
  gr::runtime rt(opts(2));
  auto [a, b] = gr_test::socket_pair();
  std::atomic<bool> waiting{false}, task_saw{false};
  auto t = [&]() -> gr::task<ssize_t> {
    char buf[16];
    waiting = true;
    try {
      co_return co_await gr::co::read(a.get(), buf, sizeof buf);
    } catch (const gr::cancelled&) {
      task_saw = true;
      throw;
    }
  };
  EXPECT_TRUE(cancel_green_thread_in([&] { gr::await_(t()); }, waiting));
  EXPECT_TRUE(task_saw.load());
  // The fd is still usable afterwards: the cancelled op is gone from the kernel.
  ASSERT_EQ(::write(b.get(), "q", 1), 1);
  char c = 0;
  EXPECT_EQ(::read(a.get(), &c, 1), 1);
}

TEST(InteropCancel, GreenThreadInAwaitCancelsAsyncGreenThread) {
  gr::runtime rt(opts(2));
  std::atomic<bool> waiting{false}, fn_saw{false}, task_saw{false};
  auto legacy = [&] {
    waiting = true;
    try {
      gr::this_fiber::sleep_for(30s);
    } catch (const gr::cancelled&) {
      fn_saw = true;
      throw;
    }
  };
  auto t = [&]() -> gr::task<void> {
    try {
      co_await gr::async_(legacy);
    } catch (const gr::cancelled&) {
      task_saw = true;
      throw;
    }
  };
  EXPECT_TRUE(cancel_green_thread_in([&] { gr::await_(t()); }, waiting));
  EXPECT_TRUE(fn_saw.load());
  EXPECT_TRUE(task_saw.load());
}

TEST(InteropCancel, GreenThreadInAwaitCancelsWhenAllAndJoinedGreenThread) {
  gr::runtime rt(opts(2));
  std::atomic<bool> waiting{false};
  std::atomic<int> cancelled_children{0};
  auto child = [&]() -> gr::task<void> {
    try {
      co_await gr::co::sleep_for(30s);
    } catch (const gr::cancelled&) {
      cancelled_children++;
      throw;
    }
  };
  auto joiner = [&]() -> gr::task<void> {
    auto h = gr::spawn([] { gr::this_fiber::sleep_for(30s); });
    waiting = true;
    try {
      co_await std::move(h);
    } catch (const gr::cancelled&) {
      cancelled_children++;
      throw;
    }
  };
  auto t = [&]() -> gr::task<void> { co_await gr::when_all(child(), child(), joiner(), child()); };
  EXPECT_TRUE(cancel_green_thread_in([&] { gr::await_(t()); }, waiting));
  EXPECT_EQ(cancelled_children.load(), 4);
}

TEST(InteropCancel, CancelledCoroutineCancelsItsAsyncGreenThread) {
  gr::runtime rt(opts(2));
  std::atomic<bool> waiting{false}, fn_saw{false};
  gr::event never;
  auto legacy = [&] {
    waiting = true;
    try {
      gr::this_fiber::sleep_for(1ms);
      never.wait();  // blocks until cancelled
    } catch (const gr::cancelled&) {
      fn_saw = true;
      throw;
    }
    return 1;
  };
  auto coro = [&]() -> gr::task<int> { co_return co_await gr::async_(legacy); };
  auto h = gr::co_spawn(coro());
  ASSERT_TRUE(eventually(waiting));
  h.cancel();
  EXPECT_THROW(h.join(), gr::cancelled);
  EXPECT_TRUE(fn_saw.load());
}

TEST(InteropCancel, CancelledCoroutineCancelsAsyncGreenThreadBlockedInSocketRead) {
  gr::runtime rt(opts(2));
  auto [a, b] = gr_test::socket_pair();
  std::atomic<bool> waiting{false}, fn_saw{false};
  auto legacy = [&](int fd) -> ssize_t {
    char buf[8];
    waiting = true;
    try {
      return gr::io::read(fd, buf, sizeof buf);  // blocks: nobody writes
    } catch (const gr::cancelled&) {
      fn_saw = true;
      throw;
    }
  };
  auto coro = [&]() -> gr::task<ssize_t> { co_return co_await gr::async_(legacy, a.get()); };
  auto h = gr::co_spawn(coro());
  ASSERT_TRUE(eventually(waiting));
  std::this_thread::sleep_for(2ms);
  h.cancel();
  EXPECT_THROW(h.join(), gr::cancelled);
  EXPECT_TRUE(fn_saw.load());
}

TEST(InteropCancel, AsyncNotStartedYetNeverRunsFn) {
  gr::runtime rt(opts(1));
  std::atomic<int> ran{0};
  // The coroutine is cancelled right after it suspends in async_, before the
  // new green thread got to run: fn must not run at all.
  auto coro = [&]() -> gr::task<void> {
    co_await gr::when_any(
        [&]() -> gr::task<void> { co_await gr::async_([&] { ran++; }); }(),
        []() -> gr::task<void> { co_return; }());  // finishes first, cancels the other
  };
  gr::sync_wait(coro());
  EXPECT_EQ(ran.load(), 0);
}

TEST(InteropCancel, WithTimeoutCancelsAsyncGreenThread) {
  gr::runtime rt(opts(2));
  std::atomic<bool> fn_saw{false};
  auto coro = [&]() -> gr::task<int> {
    co_return co_await gr::with_timeout(gr::async_([&] {
                                          try {
                                            gr::this_fiber::sleep_for(30s);
                                          } catch (const gr::cancelled&) {
                                            fn_saw = true;
                                            throw;
                                          }
                                          return 1;
                                        }),
                                        20ms);
  };
  gr_test::stopwatch sw;
  EXPECT_THROW(gr::sync_wait(coro()), gr::timed_out);
  EXPECT_LT(sw.elapsed_ms(), 5000);
  EXPECT_TRUE(fn_saw.load());
}

TEST(InteropCancel, ResultWinsAndCancellationStaysPending) {
  gr::runtime rt(opts(1));
  std::atomic<bool> waiting{false};
  std::atomic<int> stage{0};
  auto coro = [&]() -> gr::task<int> {
    // fn ignores cancellation (a guard) and returns a value anyway.
    int v = co_await gr::async_([&] {
      gr::this_fiber::cancellation_guard g;
      waiting = true;
      gr::this_fiber::sleep_for(20ms);
      return 5;
    });
    stage = v;
    co_await gr::co::sleep_for(30s);  // the pending cancellation is delivered here
    stage = -1;
    co_return v;
  };
  auto h = gr::co_spawn(coro());
  ASSERT_TRUE(eventually(waiting));
  h.cancel();
  EXPECT_THROW(h.join(), gr::cancelled);
  EXPECT_EQ(stage.load(), 5);
}

TEST(InteropCancel, CancellationRacingCompletionNeverHangs) {
  gr::runtime rt(opts(2));
  constexpr int kRounds = gr_test::kAsan ? 300 : 1000;
  std::atomic<int> values{0}, cancels{0};
  auto h = gr::spawn([&] {
    std::mt19937 rng(42);
    for (int i = 0; i < kRounds; ++i) {
      auto [a, b] = gr_test::socket_pair();
      int delay = static_cast<int>(rng() % 300);
      int kind = i % 3;
      auto t = [&, delay, kind]() -> gr::task<int> {
        if (kind == 0) {
          co_await gr::co::sleep_for(std::chrono::microseconds(delay));
        } else if (kind == 1) {
          char c;
          co_await gr::co::read(a.get(), &c, 1);
        } else {
          co_await gr::async_([delay] { gr::this_fiber::sleep_for(std::chrono::microseconds(delay)); });
        }
        co_return 1;
      };
      // The waiter and its canceller race the data/timer/green thread.
      auto waiter = gr::spawn([&] { return gr::await_(t()); });
      auto poker = gr::spawn([&, delay] {
        gr::this_fiber::sleep_for(std::chrono::microseconds(delay));
        ::write(b.get(), "x", 1);
      });
      gr::this_fiber::sleep_for(std::chrono::microseconds(rng() % 300));
      waiter.cancel();
      try {
        values += waiter.join();
      } catch (const gr::cancelled&) {
        cancels++;
      }
      poker.join();
    }
  });
  ASSERT_TRUE(h.wait_for(60s)) << "a cancellation was lost";
  h.join();
  EXPECT_EQ(values.load() + cancels.load(), kRounds);
}

TEST(InteropCancel, ShutdownWithCoroutinesParkedEverywhere) {
  auto [a, b] = gr_test::socket_pair();
  std::atomic<int> cancelled_count{0};
  {
    gr::runtime rt(opts(2));
    auto count = [&](auto body) -> gr::task<void> {
      try {
        co_await body();
      } catch (const gr::cancelled&) {
        cancelled_count++;
        throw;
      }
    };
    // Detached co_spawn'ed coroutines in a sleep, a socket read, an async_,
    // a when_any; a green thread in await_ on one more.
    gr::co_spawn(count([]() -> gr::task<void> { co_await gr::co::sleep_for(60s); })).detach();
    gr::co_spawn(count([&]() -> gr::task<void> {
      char c;
      co_await gr::co::read(a.get(), &c, 1);
    })).detach();
    gr::co_spawn(count([]() -> gr::task<void> {
      co_await gr::async_([] { gr::this_fiber::sleep_for(60s); });
    })).detach();
    gr::co_spawn_on(1, count([]() -> gr::task<void> {
      co_await gr::when_any([]() -> gr::task<void> { co_await gr::co::sleep_for(60s); }(),
                            []() -> gr::task<void> { co_await gr::co::sleep_for(61s); }());
    })).detach();
    gr::spawn([&] { gr::await_(count([]() -> gr::task<void> { co_await gr::co::sleep_for(60s); })); }).detach();
    std::this_thread::sleep_for(20ms);
  }  // ~runtime: cancels, waits, frees every loop
  EXPECT_EQ(cancelled_count.load(), 5);
}
