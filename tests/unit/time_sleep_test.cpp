// time_sleep_test: sleeping green threads. 100,000 concurrent sleepers on 2
// workers all wake (exact count) and really overlap; sleep_for lasts at least
// its duration and not much longer; sleep_until in the past, zero and negative
// durations return at once; sleeping suspends only the green thread; sleeping
// on a plain OS thread blocks that thread for the duration.
//
// Note: beyond ~28k live green threads the runtime runs out of its
// vm.max_map_count budget for guarded stacks and prints a one-time warning
// ("greenring: ... guarded stacks in use ...") before switching to canary
// stacks; that output is expected in the 100,000 test.
#include "helpers/test_util.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace gr = greenring;
using gr_test::opts;
using gr_test::stopwatch;
using namespace std::chrono_literals;

namespace {
constexpr auto kMargin = 500ms;  // generous upper tolerance for timed waits
}

TEST(TimeSleep, HundredThousandConcurrentSleepersAllWake) {
  constexpr int kN = 100000;
  constexpr auto kSleep = 200ms;
  std::atomic<int> arrived{0}, woke{0};
  std::atomic<int> short_sleeps{0};  // woke before their 200 ms were up
  std::atomic<gr::clock::rep> last_wake{0};  // latest wake-up, in clock ticks
  gr::event all_arrived, go, all_woke;
  gr::runtime rt(opts(2));
  // Spawning from a green thread places the children on its own worker or the
  // other one, without a cross-thread post per spawn from the test thread.
  auto spawner = gr::spawn([&] {
    std::vector<gr::join_handle<int>> hs;
    hs.reserve(kN);
    for (int i = 0; i < kN; ++i)
      hs.push_back(gr::spawn([&, kSleep] {
        if (arrived.fetch_add(1) + 1 == kN) all_arrived.set();
        go.wait();  // all start sleeping together
        auto t0 = gr::clock::now();
        gr::this_fiber::sleep_for(kSleep);
        auto t1 = gr::clock::now();
        if (t1 - t0 < kSleep) short_sleeps.fetch_add(1, std::memory_order_relaxed);
        auto ticks = t1.time_since_epoch().count();
        auto prev = last_wake.load(std::memory_order_relaxed);
        while (prev < ticks && !last_wake.compare_exchange_weak(prev, ticks, std::memory_order_relaxed)) {
        }
        if (woke.fetch_add(1) + 1 == kN) all_woke.set();
        return 1;
      }));
    // Join only once everyone has woken: each join releases a stack (a syscall
    // per stack beyond the cache), which would otherwise run on this worker
    // in the middle of the wake-ups and delay the other sleepers' timers.
    all_woke.wait();
    long s = 0;
    for (auto& h : hs) s += h.join();
    return s;
  });
  all_arrived.wait();
  // All 100,000 exist at once (plus the spawner, blocked in its first join).
  EXPECT_EQ(rt.live_green_threads(), static_cast<std::size_t>(kN) + 1);
  EXPECT_EQ(woke.load(), 0);
  const auto start = gr::clock::now();
  go.set();
  long sum = spawner.join();
  EXPECT_EQ(sum, kN);
  EXPECT_EQ(woke.load(), kN);
  EXPECT_EQ(short_sleeps.load(), 0);
  EXPECT_EQ(rt.live_green_threads(), 0u);
  // From the release to the last wake-up. Serially this would take
  // 100,000 x 200 ms = 5.5 hours; overlapped, about 200 ms plus scheduling.
  auto span = gr::clock::time_point(gr::clock::duration(last_wake.load())) - start;
  EXPECT_GE(span, kSleep);
  EXPECT_LT(span, 120s) << "sleepers did not overlap";  // generous: loaded CI machines; serial would be hours
  RecordProperty("sleep_phase_ms", static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(span).count()));
}

TEST(TimeSleep, SleepForLastsAtLeastItsDurationWithinTolerance) {
  gr::runtime rt(opts(2));
  auto elapsed = gr::spawn([] {
                   stopwatch sw;
                   gr::this_fiber::sleep_for(50ms);
                   return sw.elapsed();
                 }).join();
  EXPECT_GE(elapsed, 50ms);
  EXPECT_LT(elapsed, 50ms + kMargin);
}

TEST(TimeSleep, ManySleepersOnOneWorkerEachWithinTolerance) {
  // 200 green threads on one worker sleeping 10..209 ms: each one's sleep lasts
  // at least its duration, and they overlap (the worker is not blocked).
  constexpr int kN = 200;
  std::atomic<int> early{0}, late{0};
  gr::runtime rt(opts(1));
  stopwatch sw;
  std::vector<gr::join_handle<void>> hs;
  for (int i = 0; i < kN; ++i)
    hs.push_back(gr::spawn([&, i] {
      auto d = std::chrono::milliseconds(10 + i);
      stopwatch mine;
      gr::this_fiber::sleep_for(d);
      auto e = mine.elapsed();
      if (e < d) early.fetch_add(1);
      if (e >= d + kMargin) late.fetch_add(1);
    }));
  for (auto& h : hs) h.join();
  EXPECT_EQ(early.load(), 0);
  EXPECT_EQ(late.load(), 0);
  EXPECT_LT(sw.elapsed(), 209ms + kMargin);  // serially: ~22 s
}

TEST(TimeSleep, SleepUntilInThePastReturnsAtOnce) {
  gr::runtime rt(opts(1));
  auto elapsed = gr::spawn([] {
                   stopwatch sw;
                   gr::this_fiber::sleep_until(gr::clock::now() - 1h);
                   gr::this_fiber::sleep_until(gr::clock::time_point::min());
                   gr::this_fiber::sleep_until(gr::clock::now());
                   gr::this_fiber::sleep_for(0ms);
                   gr::this_fiber::sleep_for(-5s);
                   return sw.elapsed();
                 }).join();
  EXPECT_LT(elapsed, kMargin);
}

TEST(TimeSleep, SleepingSuspendsOnlyTheGreenThread) {
  // One worker: while one green thread sleeps 1 h, another on the same worker
  // keeps running to completion; cancelling the sleeper then ends the test.
  gr::runtime rt(opts(1));
  auto sleeper = gr::spawn_on(0, [] { gr::this_fiber::sleep_for(1h); });
  auto worker = gr::spawn_on(0, [] {
    long s = 0;
    for (int i = 0; i < 1000; ++i) {
      s += i;
      gr::this_fiber::yield();
    }
    return s;
  });
  EXPECT_EQ(worker.join(), 999L * 1000 / 2);
  sleeper.cancel();
  EXPECT_THROW(sleeper.join(), gr::cancelled);
}

TEST(TimeSleep, SleepOnPlainThreadBlocksForTheDuration) {
  gr::runtime rt(opts(1));
  stopwatch sw;
  gr::this_fiber::sleep_for(30ms);  // the test thread is not a green thread
  EXPECT_GE(sw.elapsed(), 30ms);
  EXPECT_LT(sw.elapsed(), 30ms + kMargin);
  std::thread t([] {
    stopwatch s2;
    gr::this_fiber::sleep_until(gr::after(20ms));
    EXPECT_GE(s2.elapsed(), 20ms);
  });
  t.join();
}
