// sync_primitives_test: gr::mutex, condition_variable, semaphore, event and
// channel hand-offs across 4 workers and up to 1,000 green threads, checked with
// exact counts (no lost wake-ups, no lost or duplicated items/permits); plus the
// same primitives shared between plain std::threads and green threads.
#include "helpers/test_util.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace gr = greenring;
using gr_test::opts;
using namespace std::chrono_literals;

// ---- mutex ---------------------------------------------------------------------

TEST(SyncMutex, ThousandGreenThreadsThousandIncrementsExact) {
  constexpr int kThreads = 1000, kIters = 1000;
  gr::mutex m;
  long counter = 0;            // deliberately not atomic: the mutex protects it
  std::atomic<int> inside{0};  // > 1 would mean two holders at once
  std::atomic<int> overlaps{0};
  gr::event gate;  // all start together, so the lock is contended from the first increment
  gr::runtime rt(opts(4));
  std::vector<gr::join_handle<void>> hs;
  hs.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t)
    hs.push_back(gr::spawn_on(static_cast<unsigned>(t % 4), [&] {
      gate.wait();
      for (int i = 0; i < kIters; ++i) {
        std::lock_guard<gr::mutex> g(m);
        if (inside.fetch_add(1, std::memory_order_relaxed) != 0) overlaps.fetch_add(1);
        ++counter;
        inside.fetch_sub(1, std::memory_order_relaxed);
      }
    }));
  gate.set();
  for (auto& h : hs) h.join();
  EXPECT_EQ(counter, long(kThreads) * kIters);
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_TRUE(m.try_lock());  // left unlocked
  m.unlock();
}

TEST(SyncMutex, TryLockReflectsOwnership) {
  gr::mutex m;
  gr::runtime rt(opts(2));
  gr::spawn([&] {
    EXPECT_TRUE(m.try_lock());
    EXPECT_FALSE(m.try_lock());
    // Another green thread (other worker) cannot take it either.
    EXPECT_FALSE(gr::spawn_on(1, [&] { return m.try_lock(); }).join());
    m.unlock();
    EXPECT_TRUE(gr::spawn_on(1, [&] {
                  bool ok = m.try_lock();
                  if (ok) m.unlock();
                  return ok;
                }).join());
  }).join();
}

// ---- channel -------------------------------------------------------------------

TEST(SyncChannel, ProducersConsumersEveryValueExactlyOnce) {
  constexpr int kProducers = 16, kConsumers = 16, kPer = 5000;
  constexpr int kTotal = kProducers * kPer;
  gr::channel<int> ch(64);
  gr::runtime rt(opts(4));
  std::vector<gr::join_handle<void>> producers;
  std::vector<gr::join_handle<std::vector<int>>> consumers;
  for (int c = 0; c < kConsumers; ++c)
    consumers.push_back(gr::spawn_on(static_cast<unsigned>(c % 4), [&] {
      std::vector<int> got;
      while (auto v = ch.pop()) got.push_back(*v);
      return got;
    }));
  for (int p = 0; p < kProducers; ++p)
    producers.push_back(gr::spawn_on(static_cast<unsigned>((p + 1) % 4), [&ch, p] {
      for (int i = 0; i < kPer; ++i) ASSERT_EQ(ch.push(p * kPer + i), gr::channel_status::ok);
    }));
  for (auto& h : producers) h.join();
  ch.close();
  std::vector<int> seen(kTotal, 0);
  long long sum = 0;
  long count = 0;
  int order_violations = 0;
  for (auto& h : consumers) {
    std::vector<int> got = h.join();
    std::vector<int> last(kProducers, -1);  // per producer, values must rise (FIFO)
    for (int v : got) {
      ASSERT_GE(v, 0);
      ASSERT_LT(v, kTotal);
      ++seen[static_cast<std::size_t>(v)];
      sum += v;
      ++count;
      int p = v / kPer;
      if (v <= last[static_cast<std::size_t>(p)]) ++order_violations;
      last[static_cast<std::size_t>(p)] = v;
    }
  }
  EXPECT_EQ(count, kTotal);
  EXPECT_EQ(sum, static_cast<long long>(kTotal) * (kTotal - 1) / 2);
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), kTotal);
  EXPECT_EQ(order_violations, 0);
  EXPECT_EQ(ch.size(), 0u);
}

TEST(SyncChannel, CloseDrainsThenReportsClosed) {
  gr::channel<int> ch(16);
  gr::runtime rt(opts(2));
  gr::spawn([&] {
    for (int i = 0; i < 10; ++i) EXPECT_EQ(ch.push(i), gr::channel_status::ok);
    ch.close();
    EXPECT_EQ(ch.push(99), gr::channel_status::closed);
    EXPECT_EQ(ch.size(), 10u);
    for (int i = 0; i < 5; ++i) {
      int v = -1;
      EXPECT_EQ(ch.pop(v), gr::channel_status::ok);
      EXPECT_EQ(v, i);
    }
    for (int i = 5; i < 10; ++i) EXPECT_EQ(ch.pop(), std::optional<int>(i));
    int v = -1;
    EXPECT_EQ(ch.pop(v), gr::channel_status::closed);
    EXPECT_EQ(v, -1);
    EXPECT_EQ(ch.pop(), std::nullopt);
    EXPECT_EQ(ch.pop(v, gr::after(10ms)), gr::channel_status::closed);  // closed wins, no waiting
  }).join();
}

TEST(SyncChannel, CloseWakesEveryBlockedPopperAndPusher) {
  constexpr int kPoppers = 200, kPushers = 200;
  gr::channel<int> empty(4);
  gr::channel<int> full(1);
  gr::semaphore started(0);
  gr::runtime rt(opts(4));
  ASSERT_EQ(full.push(7), gr::channel_status::ok);
  std::vector<gr::join_handle<gr::channel_status>> poppers, pushers;
  for (int i = 0; i < kPoppers; ++i)
    poppers.push_back(gr::spawn_on(static_cast<unsigned>(i % 4), [&] {
      started.release();
      int v;
      return empty.pop(v);
    }));
  for (int i = 0; i < kPushers; ++i)
    pushers.push_back(gr::spawn_on(static_cast<unsigned>(i % 4), [&, i] {
      started.release();
      return full.push(i);
    }));
  for (int i = 0; i < kPoppers + kPushers; ++i) started.acquire();
  // Nobody can have finished: the channels are empty/full and open.
  EXPECT_EQ(rt.live_green_threads(), static_cast<std::size_t>(kPoppers + kPushers));
  empty.close();
  full.close();
  for (auto& h : poppers) EXPECT_EQ(h.join(), gr::channel_status::closed);
  for (auto& h : pushers) EXPECT_EQ(h.join(), gr::channel_status::closed);
  EXPECT_EQ(full.pop(), std::optional<int>(7));  // queued item still drains
  EXPECT_EQ(full.pop(), std::nullopt);
}

// ---- condition_variable ----------------------------------------------------------

TEST(SyncCondvar, PingPongAcrossWorkers) {
  constexpr int kRounds = 5000;
  gr::mutex m;
  gr::condition_variable cv;
  int turn = 0;   // whose move: 0 or 1
  int moves = 0;  // total moves so far
  int bad = 0;
  gr::runtime rt(opts(4));
  auto player = [&](int me) {
    int where = gr::this_fiber::worker_index();
    for (int i = 0; i < kRounds; ++i) {
      std::unique_lock<gr::mutex> lk(m);
      cv.wait(lk, [&] { return turn == me; });
      if (moves != 2 * i + me) ++bad;  // strict alternation
      ++moves;
      turn = 1 - me;
      cv.notify_one();
    }
    return where;
  };
  auto a = gr::spawn_on(0, player, 0);
  auto b = gr::spawn_on(1, player, 1);
  EXPECT_EQ(a.join(), 0);
  EXPECT_EQ(b.join(), 1);
  EXPECT_EQ(moves, 2 * kRounds);
  EXPECT_EQ(bad, 0);
}

TEST(SyncCondvar, NotifyAllBarrierNoLostWakeups) {
  constexpr int kThreads = 64, kGenerations = 200;
  gr::mutex m;
  gr::condition_variable cv;
  int arrived = 0;
  int generation = 0;
  std::atomic<long> passes{0};
  gr::runtime rt(opts(4));
  std::vector<gr::join_handle<void>> hs;
  for (int t = 0; t < kThreads; ++t)
    hs.push_back(gr::spawn_on(static_cast<unsigned>(t % 4), [&] {
      for (int g = 0; g < kGenerations; ++g) {
        std::unique_lock<gr::mutex> lk(m);
        int my_gen = generation;
        if (++arrived == kThreads) {
          arrived = 0;
          ++generation;
          cv.notify_all();
        } else {
          cv.wait(lk, [&] { return generation != my_gen; });
        }
        passes.fetch_add(1, std::memory_order_relaxed);
      }
    }));
  for (auto& h : hs) h.join();
  EXPECT_EQ(generation, kGenerations);
  EXPECT_EQ(passes.load(), long(kThreads) * kGenerations);
}

// ---- semaphore -----------------------------------------------------------------

TEST(SyncSemaphore, PermitsConservedWhenTimeoutsRaceReleases) {
  constexpr int kWaiters = 200, kAttempts = 50;
  constexpr int kReleasers = 4, kPermitsPerReleaser = 2500;
  constexpr long kReleased = long(kReleasers) * kPermitsPerReleaser;
  gr::semaphore s(0);
  std::atomic<long> acquired{0}, timeouts{0};
  gr::runtime rt(opts(4));
  std::vector<gr::join_handle<void>> hs;
  for (int w = 0; w < kWaiters; ++w)
    hs.push_back(gr::spawn_on(static_cast<unsigned>(w % 4), [&, w] {
      std::minstd_rand rng(static_cast<unsigned>(w) + 1);
      for (int i = 0; i < kAttempts; ++i) {
        auto d = std::chrono::microseconds(rng() % 300);
        if (s.try_acquire_until(gr::after(d)))
          acquired.fetch_add(1);
        else
          timeouts.fetch_add(1);
      }
    }));
  for (int r = 0; r < kReleasers; ++r)
    hs.push_back(gr::spawn_on(static_cast<unsigned>(r % 4), [&, r] {
      int left = kPermitsPerReleaser;
      while (left > 0) {
        std::size_t n = (r % 2 == 0) ? 1 : std::min(3, left);  // single and batched releases
        s.release(n);
        left -= static_cast<int>(n);
        // Slow enough that many waiters' deadlines pass while others get permits.
        if (left % 8 == 0) gr::this_fiber::sleep_for(std::chrono::microseconds(100)); else gr::this_fiber::yield();
      }
    }));
  for (auto& h : hs) h.join();
  RecordProperty("acquired", std::to_string(acquired.load()));
  RecordProperty("timeouts", std::to_string(timeouts.load()));
  EXPECT_EQ(acquired.load() + timeouts.load(), long(kWaiters) * kAttempts);
  // Every released permit is either held by a successful acquirer or still in the pool.
  EXPECT_EQ(acquired.load() + static_cast<long>(s.available()), kReleased);
}

TEST(SyncSemaphore, ReleaseHandsPermitsToBlockedAcquirersExactly) {
  constexpr int kWaiters = 1000;
  gr::semaphore s(0), ready(0);
  std::atomic<int> got{0};
  gr::runtime rt(opts(4));
  std::vector<gr::join_handle<void>> hs;
  for (int i = 0; i < kWaiters; ++i)
    hs.push_back(gr::spawn([&] {
      ready.release();
      s.acquire();
      got.fetch_add(1);
    }));
  for (int i = 0; i < kWaiters; ++i) ready.acquire();
  EXPECT_EQ(got.load(), 0);
  s.release(kWaiters / 2);
  s.release(kWaiters / 2 + 3);  // 3 extra stay in the pool
  for (auto& h : hs) h.join();
  EXPECT_EQ(got.load(), kWaiters);
  EXPECT_EQ(s.available(), 3u);
  EXPECT_TRUE(s.try_acquire());
  EXPECT_EQ(s.available(), 2u);
}

// ---- event ---------------------------------------------------------------------

TEST(SyncEvent, SetReleasesAllThousandWaiters) {
  constexpr int kWaiters = 1000;
  gr::event ev;
  gr::semaphore arrived(0);
  std::atomic<int> passed{0};
  gr::runtime rt(opts(4));
  std::vector<gr::join_handle<void>> hs;
  for (int i = 0; i < kWaiters; ++i)
    hs.push_back(gr::spawn_on(static_cast<unsigned>(i % 4), [&] {
      arrived.release();
      ev.wait();
      passed.fetch_add(1);
    }));
  for (int i = 0; i < kWaiters; ++i) arrived.acquire();
  EXPECT_EQ(passed.load(), 0);
  EXPECT_FALSE(ev.is_set());
  ev.set();
  for (auto& h : hs) h.join();
  EXPECT_EQ(passed.load(), kWaiters);
  // Manual reset: stays set for later waiters until reset().
  EXPECT_TRUE(gr::spawn([&] { return ev.wait_for(1h); }).join());
  ev.reset();
  EXPECT_FALSE(ev.is_set());
  EXPECT_FALSE(gr::spawn([&] { return ev.wait_for(5ms); }).join());
}

// ---- plain OS threads together with green threads --------------------------------

TEST(SyncPlainThreads, MutexSharedByOsThreadsAndGreenThreads) {
  constexpr int kGreen = 100, kOs = 2, kIters = 500;
  gr::mutex m;
  long counter = 0;
  gr::event gate;  // green and OS threads start contending together
  gr::runtime rt(opts(4));
  auto body = [&] {
    gate.wait();
    for (int k = 0; k < kIters; ++k) {
      std::lock_guard<gr::mutex> g(m);
      ++counter;
    }
  };
  std::vector<gr::join_handle<void>> hs;
  for (int i = 0; i < kGreen; ++i) hs.push_back(gr::spawn(body));
  std::vector<std::thread> ts;
  for (int i = 0; i < kOs; ++i) ts.emplace_back(body);
  gate.set();
  for (auto& t : ts) t.join();
  for (auto& h : hs) h.join();
  EXPECT_EQ(counter, long(kGreen + kOs) * kIters);
}

TEST(SyncPlainThreads, ChannelBetweenOsThreadAndGreenThreads) {
  constexpr int kN = 20000;
  gr::channel<int> to_green(8), to_os(8);
  gr::runtime rt(opts(4));
  // OS thread -> 4 green consumers.
  std::vector<gr::join_handle<long long>> consumers;
  for (int c = 0; c < 4; ++c)
    consumers.push_back(gr::spawn_on(static_cast<unsigned>(c), [&] {
      long long s = 0;
      while (auto v = to_green.pop()) s += *v;
      return s;
    }));
  std::thread producer([&] {
    for (int i = 1; i <= kN; ++i) to_green.push(i);
    to_green.close();
  });
  // 4 green producers -> OS thread consumer.
  std::vector<gr::join_handle<void>> producers;
  for (int p = 0; p < 4; ++p)
    producers.push_back(gr::spawn_on(static_cast<unsigned>(p), [&, p] {
      for (int i = 0; i < kN / 4; ++i) to_os.push(p * (kN / 4) + i + 1);
    }));
  long long os_sum = 0;
  long os_count = 0;
  std::thread consumer([&] {
    while (auto v = to_os.pop()) {
      os_sum += *v;
      ++os_count;
    }
  });
  producer.join();
  long long green_sum = 0;
  for (auto& h : consumers) green_sum += h.join();
  for (auto& h : producers) h.join();
  to_os.close();
  consumer.join();
  const long long expect = static_cast<long long>(kN) * (kN + 1) / 2;
  EXPECT_EQ(green_sum, expect);
  EXPECT_EQ(os_sum, expect);
  EXPECT_EQ(os_count, kN);
}

TEST(SyncPlainThreads, CondvarPingPongOsThreadAndGreenThread) {
  constexpr int kRounds = 2000;
  gr::mutex m;
  gr::condition_variable cv;
  int turn = 0, moves = 0, bad = 0;
  gr::runtime rt(opts(2));
  auto player = [&](int me) {
    for (int i = 0; i < kRounds; ++i) {
      std::unique_lock<gr::mutex> lk(m);
      cv.wait(lk, [&] { return turn == me; });
      if (moves != 2 * i + me) ++bad;
      ++moves;
      turn = 1 - me;
      cv.notify_one();
    }
  };
  auto g = gr::spawn(player, 0);
  std::thread os(player, 1);
  os.join();
  g.join();
  EXPECT_EQ(moves, 2 * kRounds);
  EXPECT_EQ(bad, 0);
}

TEST(SyncPlainThreads, SemaphoreAndEventAcrossOsAndGreen) {
  constexpr int kGreen = 500;
  gr::semaphore done(0);
  gr::event go;
  std::atomic<int> ran{0};
  gr::runtime rt(opts(4));
  for (int i = 0; i < kGreen; ++i)
    gr::spawn([&] {
      go.wait();  // released by a plain OS thread
      ran.fetch_add(1);
      done.release();
    }).detach();
  std::thread setter([&] { go.set(); });
  // The OS thread collects every permit the green threads release.
  std::thread collector([&] {
    for (int i = 0; i < kGreen; ++i) done.acquire();
  });
  setter.join();
  collector.join();
  EXPECT_EQ(ran.load(), kGreen);
  EXPECT_EQ(done.available(), 0u);
  // An OS thread waiting with a deadline times out like a green thread would.
  gr::event never;
  EXPECT_FALSE(never.wait_for(5ms));
  EXPECT_FALSE(done.try_acquire_until(gr::after(5ms)));
}

// A green thread that re-locks in a tight loop (it would win every barging
// race) must not starve a waiter on another worker: after 1 ms of waiting the
// mutex switches to hand-off mode and the waiter gets the lock.
TEST(SyncMutex, BargingHolderDoesNotStarveAWaiter) {
  gr::options o;
  o.workers = 2;
  gr::runtime rt(o);
  gr::mutex m;
  std::atomic<bool> stop{false};
  std::atomic<long> spins{0};
  auto hog = gr::spawn_on(0, [&] {
    while (!stop.load()) {
      m.lock();
      spins.fetch_add(1);
      m.unlock();
    }
  });
  while (spins.load() < 1000) std::this_thread::yield();
  auto waiter = gr::spawn_on(1, [&] {
    auto t0 = gr::clock::now();
    for (int i = 0; i < 100; ++i) {
      m.lock();
      m.unlock();
    }
    return gr::clock::now() - t0;
  });
  ASSERT_TRUE(waiter.wait_for(std::chrono::seconds(20))) << "waiter starved";
  auto took = waiter.join();
  stop = true;
  hog.join();
  EXPECT_LT(took, std::chrono::seconds(10));
}
