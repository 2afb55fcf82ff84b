// interop_when_test: when_all / when_any / with_timeout with exact counts -
// every child started is finished when the combinator returns, when_any has
// exactly one winner and every loser is cancelled (or had already finished),
// when_all cancels the rest on the first failure and never starts the ones
// after it; tuple/variant forms with void and reference children; and
// co_spawn / co_handle (join from main and green threads, co_await, cancel).
#include "helpers/test_util.hpp"

#include <greenring/interop/interop.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <variant>
#include <vector>

namespace gr = greenring;
using gr_test::opts;
using namespace std::chrono_literals;

namespace {

struct counters {
  std::atomic<int> started{0}, finished{0}, cancelled{0}, failed{0};
};

gr::task<int> child(counters& c, int value, std::chrono::microseconds sleep, bool fail = false) {
  c.started++;
  try {
    if (sleep.count() > 0) co_await gr::co::sleep_for(sleep);
    if (fail) {
      c.failed++;
      throw std::runtime_error("child failed");
    }
  } catch (const gr::cancelled&) {
    c.cancelled++;
    c.finished++;
    throw;
  }
  c.finished++;
  co_return value;
}

}  // namespace

TEST(InteropWhen, WhenAllTenThousandExactCount) {
  gr::runtime rt(opts(2));
  counters c;
  constexpr int kN = 10'000;
  auto t = [&]() -> gr::task<long> {
    std::vector<gr::task<int>> ts;
    for (int i = 0; i < kN; ++i) ts.push_back(child(c, i, std::chrono::microseconds(i % 7 == 0 ? 0 : i % 500)));
    auto vals = co_await gr::when_all(std::move(ts));
    long sum = 0;
    for (std::size_t i = 0; i < vals.size(); ++i) sum += vals[i] == static_cast<int>(i) ? 1 : 0;
    co_return sum;
  };
  EXPECT_EQ(gr::sync_wait(t()), kN);
  EXPECT_EQ(c.started.load(), kN);
  EXPECT_EQ(c.finished.load(), kN);
  EXPECT_EQ(c.cancelled.load(), 0);
}

TEST(InteropWhen, WhenAllVoidEmptyAndTuple) {
  gr::runtime rt(opts(1));
  std::atomic<int> n{0};
  auto v = [&]() -> gr::task<void> {
    co_await gr::co::sleep_for(1ms);
    n++;
  };
  auto t = [&]() -> gr::task<std::string> {
    std::vector<gr::task<void>> vs;
    for (int i = 0; i < 10; ++i) vs.push_back(v());
    co_await gr::when_all(std::move(vs));
    co_await gr::when_all(std::vector<gr::task<void>>{});
    int target = 4;
    auto ref = [&]() -> gr::task<int&> { co_return target; };
    auto str = []() -> gr::task<std::string> { co_return "s"; };
    auto [a, b, c] = co_await gr::when_all(ref(), v(), str());
    static_assert(std::is_same_v<decltype(b), std::monostate>);
    co_return std::to_string(&a == &target) + c + std::to_string(n.load());
  };
  EXPECT_EQ(gr::sync_wait(t()), "1s11");
}

TEST(InteropWhen, WhenAllFirstFailureCancelsTheRest) {
  gr::runtime rt(opts(1));
  counters c;
  auto t = [&]() -> gr::task<void> {
    std::vector<gr::task<int>> ts;
    for (int i = 0; i < 20; ++i) ts.push_back(child(c, i, 30s));
    ts.push_back(child(c, -1, 2ms, true));   // fails after 2 ms
    ts.push_back(child(c, -2, 0us, true));   // fails at once, while children are still being started
    for (int i = 0; i < 5; ++i) ts.push_back(child(c, i, 30s));  // never started
    co_await gr::when_all(std::move(ts));
  };
  gr_test::stopwatch sw;
  EXPECT_THROW(gr::sync_wait(t()), std::runtime_error);
  EXPECT_LT(sw.elapsed_ms(), 5000);
  EXPECT_EQ(c.started.load(), 22);   // the five after the immediate failure never ran
  EXPECT_EQ(c.failed.load(), 1);     // the 2 ms one was cancelled before failing
  EXPECT_EQ(c.cancelled.load(), 21);
  EXPECT_EQ(c.finished.load(), 21);  // the failed one does not count as finished
}

TEST(InteropWhen, WhenAnyExactlyOneWinnerOthersCancelled) {
  gr::runtime rt(opts(2));
  for (int round = 0; round < 20; ++round) {
    counters c;
    constexpr int kN = 50;
    auto t = [&]() -> gr::task<gr::when_any_result<int>> {
      std::vector<gr::task<int>> ts;
      for (int i = 0; i < kN; ++i) ts.push_back(child(c, i, i == 17 ? 1ms : 30s));
      co_return co_await gr::when_any(std::move(ts));
    };
    auto r = gr::sync_wait(t());
    EXPECT_EQ(r.index, 17u);
    EXPECT_EQ(r.value, 17);
    EXPECT_EQ(c.started.load(), kN);
    EXPECT_EQ(c.finished.load(), kN);
    EXPECT_EQ(c.cancelled.load(), kN - 1);
  }
}

TEST(InteropWhen, WhenAnyReadyChildStopsTheStart) {
  gr::runtime rt(opts(1));
  counters c;
  auto t = [&]() -> gr::task<std::size_t> {
    std::vector<gr::task<int>> ts;
    ts.push_back(child(c, 0, 30s));
    ts.push_back(child(c, 1, 0us));  // ready: wins while starting
    ts.push_back(child(c, 2, 30s));  // never started
    co_return (co_await gr::when_any(std::move(ts))).index;
  };
  EXPECT_EQ(gr::sync_wait(t()), 1u);
  EXPECT_EQ(c.started.load(), 2);
  EXPECT_EQ(c.cancelled.load(), 1);
}

TEST(InteropWhen, WhenAnyVariantAndException) {
  gr::runtime rt(opts(1));
  auto t = []() -> gr::task<std::size_t> {
    auto slow = []() -> gr::task<int> {
      co_await gr::co::sleep_for(30s);
      co_return 1;
    };
    auto fast = []() -> gr::task<std::string> {
      co_await gr::co::sleep_for(1ms);
      co_return "fast";
    };
    auto v = co_await gr::when_any(slow(), fast(), []() -> gr::task<void> { co_await gr::co::sleep_for(30s); }());
    EXPECT_EQ(std::get<1>(v), "fast");
    // The winner's exception is the result.
    auto boom = []() -> gr::task<int> {
      co_await gr::co::sleep_for(1ms);
      throw std::runtime_error("boom");
    };
    try {
      co_await gr::when_any(slow(), boom());
    } catch (const std::runtime_error&) {
      co_return v.index();
    }
    co_return 99;
  };
  EXPECT_EQ(gr::sync_wait(t()), 1u);
  std::vector<gr::task<int>> none;
  EXPECT_THROW(gr::sync_wait(gr::when_any(std::move(none))), std::invalid_argument);
}

TEST(InteropWhen, WithTimeout) {
  gr::runtime rt(opts(1));
  counters c;
  auto t = [&]() -> gr::task<int> {
    int fast = co_await gr::with_timeout(child(c, 5, 1ms), 5s);
    try {
      co_await gr::with_timeout(child(c, 6, 30s), 10ms);
    } catch (const gr::timed_out&) {
      co_return fast;
    }
    co_return -1;
  };
  gr_test::stopwatch sw;
  EXPECT_EQ(gr::sync_wait(t()), 5);
  EXPECT_LT(sw.elapsed_ms(), 5000);
  EXPECT_EQ(c.cancelled.load(), 1);
  EXPECT_EQ(c.finished.load(), 2);
}

TEST(InteropWhen, NestedCombinatorsCancelTransitively) {
  gr::runtime rt(opts(1));
  counters c;
  auto inner = [&]() -> gr::task<void> {
    std::vector<gr::task<int>> ts;
    for (int i = 0; i < 10; ++i) ts.push_back(child(c, i, 30s));
    co_await gr::when_all(std::move(ts));
  };
  auto t = [&]() -> gr::task<std::size_t> {
    auto r = co_await gr::when_any(inner(), inner(), [&]() -> gr::task<void> { co_await gr::co::sleep_for(2ms); }());
    co_return r.index();
  };
  EXPECT_EQ(gr::sync_wait(t()), 2u);
  EXPECT_EQ(c.started.load(), 20);
  EXPECT_EQ(c.cancelled.load(), 20);
}

// ---- co_spawn -------------------------------------------------------------------

TEST(InteropSpawn, JoinFromMainGreenThreadAndCoroutine) {
  gr::runtime rt(opts(2));
  auto work = [](int v) -> gr::task<int> {
    co_await gr::co::sleep_for(1ms);
    co_return v;
  };
  auto h1 = gr::co_spawn(work(1));
  EXPECT_EQ(h1.join(), 1);  // plain thread blocks
  EXPECT_FALSE(h1.joinable());
  auto h2 = gr::co_spawn_on(1, work(2));
  EXPECT_EQ(gr::spawn([&] { return h2.join(); }).join(), 2);  // green thread suspends
  auto t = [&]() -> gr::task<int> {
    auto a = gr::co_spawn(work(3));
    auto b = gr::co_spawn_on(0, work(4));
    int x = co_await a;
    int y = co_await std::move(b);
    co_return x + y;
  };
  EXPECT_EQ(gr::sync_wait(t()), 7);
  auto thrower = []() -> gr::task<void> {
    co_await gr::co::sleep_for(1ms);
    throw std::runtime_error("spawned");
  };
  auto h3 = gr::co_spawn(thrower());
  EXPECT_THROW(h3.join(), std::runtime_error);
  EXPECT_THROW(gr::co_spawn_on(7, work(0)), std::out_of_range);
}

TEST(InteropSpawn, ManySpawnedCoroutinesDetachedAndJoined) {
  gr::runtime rt(opts(4));
  std::atomic<int> done{0};
  auto work = [&](int i) -> gr::task<int> {
    co_await gr::co::sleep_for(std::chrono::microseconds(i % 300));
    done++;
    co_return i;
  };
  std::vector<gr::co_handle<int>> hs;
  long expect = 0;
  for (int i = 0; i < 2000; ++i) {
    if (i % 2) {
      gr::co_spawn_on(static_cast<unsigned>(i % 4), work(i)).detach();
    } else {
      hs.push_back(gr::co_spawn(work(i)));
      expect += i;
    }
  }
  long sum = 0;
  for (auto& h : hs) sum += h.join();
  EXPECT_EQ(sum, expect);
  for (int i = 0; i < 5000 && done.load() < 2000; ++i) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(done.load(), 2000);
}

TEST(InteropSpawn, CancelFromAnotherThreadAndAwaitingCoroutineCancelsSpawned) {
  gr::runtime rt(opts(2));
  std::atomic<int> cancelled{0};
  auto forever = [&]() -> gr::task<int> {
    try {
      co_await gr::co::sleep_for(30s);
    } catch (const gr::cancelled&) {
      cancelled++;
      throw;
    }
    co_return 0;
  };
  auto h = gr::co_spawn(forever());
  std::this_thread::sleep_for(2ms);
  std::thread([&] { h.cancel(); }).join();
  EXPECT_THROW(h.join(), gr::cancelled);
  // A coroutine awaiting a handle, cancelled through its own awaiter.
  auto waiter = [&]() -> gr::task<int> { co_return co_await gr::co_spawn(forever()); };
  auto outer = gr::co_spawn(waiter());
  std::this_thread::sleep_for(2ms);
  outer.cancel();
  EXPECT_THROW(outer.join(), gr::cancelled);
  EXPECT_EQ(cancelled.load(), 2);
}
