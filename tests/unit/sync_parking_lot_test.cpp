// sync_parking_lot_test: the address-keyed futex waits the shim builds pthread
// primitives on. A futex mutex shared by green threads on 4 workers and plain
// OS threads (exact count, no lost wake-ups), value mismatch, deadlines,
// cancellation, and wake counts.
#include <greenring/detail/parking_lot.hpp>
#include <greenring/greenring.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace gr = greenring;
namespace d = greenring::detail;
using namespace std::chrono_literals;

namespace {

// Drepper's three-state futex mutex (0 free, 1 locked, 2 locked with waiters),
// the protocol glibc's own mutex uses: a fair test of the parking lot.
struct futex_mutex {
  std::uint32_t word = 0;
  void lock() {
    std::uint32_t c = 0;
    if (__atomic_compare_exchange_n(&word, &c, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return;
    if (c != 2) c = __atomic_exchange_n(&word, 2, __ATOMIC_ACQUIRE);
    while (c != 0) {
      d::futex_wait(&word, 2, d::time_point::max(), false);
      c = __atomic_exchange_n(&word, 2, __ATOMIC_ACQUIRE);
    }
  }
  void unlock() {
    if (__atomic_exchange_n(&word, 0, __ATOMIC_RELEASE) == 2) d::futex_wake(&word, 1);
  }
};

gr::options opts(unsigned w) {
  gr::options o;
  o.workers = w;
  return o;
}

}  // namespace

TEST(SyncParkingLot, FutexMutexSharedByGreenAndOsThreadsExactCount) {
  gr::runtime rt(opts(4));
  futex_mutex m;
  long counter = 0;  // protected by m only
  constexpr int kGreen = 1000, kGreenIters = 200, kOs = 4, kOsIters = 20000;
  std::vector<gr::join_handle<void>> hs;
  for (int i = 0; i < kGreen; ++i)
    hs.push_back(gr::spawn_on(static_cast<unsigned>(i % 4), [&] {
      for (int k = 0; k < kGreenIters; ++k) {
        m.lock();
        long v = counter;
        if (k % 16 == 0) gr::this_fiber::yield();  // hold the lock across a switch: others must park
        counter = v + 1;
        m.unlock();
      }
    }));
  std::vector<std::thread> ts;
  for (int i = 0; i < kOs; ++i)
    ts.emplace_back([&] {
      for (int k = 0; k < kOsIters; ++k) {
        m.lock();
        ++counter;
        m.unlock();
      }
    });
  for (auto& h : hs) h.join();
  for (auto& t : ts) t.join();
  EXPECT_EQ(counter, long(kGreen) * kGreenIters + long(kOs) * kOsIters);
  EXPECT_EQ(m.word, 0u);
}

TEST(SyncParkingLot, ValueMismatchReturnsEagainAtOnce) {
  gr::runtime rt(opts(1));
  std::uint32_t w = 5;
  EXPECT_EQ(gr::spawn([&] { return d::futex_wait(&w, 4, d::time_point::max(), true); }).join(), -EAGAIN);
  EXPECT_EQ(d::futex_wait(&w, 4, d::time_point::max(), false), -EAGAIN);  // plain thread: kernel path
}

TEST(SyncParkingLot, DeadlinePassesWithEtimedout) {
  gr::runtime rt(opts(1));
  std::uint32_t w = 0;
  auto h = gr::spawn([&] {
    auto t0 = gr::clock::now();
    int r = d::futex_wait(&w, 0, gr::after(30ms), true);
    return std::make_pair(r, gr::clock::now() - t0);
  });
  auto [r, took] = h.join();
  EXPECT_EQ(r, -ETIMEDOUT);
  EXPECT_GE(took, 30ms);
  EXPECT_LT(took, 30ms + 500ms);
  EXPECT_EQ(d::futex_wait(&w, 0, gr::after(10ms), false), -ETIMEDOUT);
}

TEST(SyncParkingLot, CancellationEndsTheWait) {
  gr::runtime rt(opts(2));
  std::uint32_t w = 0;
  std::atomic<bool> waiting{false};
  auto h = gr::spawn([&] {
    waiting = true;
    return d::futex_wait(&w, 0, d::time_point::max(), true);
  });
  while (!waiting) std::this_thread::sleep_for(1ms);
  std::this_thread::sleep_for(10ms);
  h.cancel();
  EXPECT_EQ(h.join(), -ECANCELED);
}

TEST(SyncParkingLot, WakeCountsExactlyAcrossWorkers) {
  gr::runtime rt(opts(4));
  std::uint32_t w = 0;
  constexpr int kWaiters = 100;
  std::atomic<int> parked{0}, released{0};
  std::vector<gr::join_handle<void>> hs;
  for (int i = 0; i < kWaiters; ++i)
    hs.push_back(gr::spawn_on(static_cast<unsigned>(i % 4), [&] {
      parked.fetch_add(1);
      while (__atomic_load_n(&w, __ATOMIC_ACQUIRE) == 0) d::futex_wait(&w, 0, d::time_point::max(), false);
      released.fetch_add(1);
    }));
  while (parked.load() < kWaiters) std::this_thread::sleep_for(1ms);
  std::this_thread::sleep_for(20ms);  // let them reach the lot; correctness does not depend on it
  __atomic_store_n(&w, 1, __ATOMIC_RELEASE);
  int total = 0;
  while (released.load() < kWaiters) {
    total += d::futex_wake(&w, 7);
    std::this_thread::sleep_for(1ms);
  }
  for (auto& h : hs) h.join();
  EXPECT_EQ(released.load(), kWaiters);
  EXPECT_LE(total, kWaiters);  // never reports more wake-ups than there were waiters
}
