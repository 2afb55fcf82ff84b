// cxx_sync: the C++20 standard library's threading on top of the shim (run
// with 4 workers). libstdc++ reaches pthread_create, pthread mutex/cond and,
// for std::atomic::wait / std::counting_semaphore / std::latch, raw
// syscall(SYS_futex) — the last is the interesting part for the shim, since a
// futex wait that blocks the worker would deadlock a green notifier. Exact
// counts everywhere:
//  - std::thread + std::mutex stress; std::async (launch::async and deferred),
//    std::promise/std::future across threads, exceptions through futures,
//    future::wait_for timing out;
//  - std::condition_variable producer/consumer, wait_for timeout;
//  - std::latch, std::counting_semaphore (try_acquire_for timing out),
//    std::atomic<int>::wait/notify_one/notify_all ping-pong.
#include "check.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <latch>
#include <mutex>
#include <numeric>
#include <semaphore>
#include <stdexcept>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

static void test_threads_and_futures() {
  std::mutex m;
  long counter = 0;
  {
    std::vector<std::thread> ts;
    for (int i = 0; i < 8; i++)
      ts.emplace_back([&] {
        for (int k = 0; k < 20000; k++) {
          std::lock_guard<std::mutex> g(m);
          ++counter;
        }
      });
    for (auto& t : ts) t.join();
  }
  std::printf("std::thread + std::mutex count: %ld\n", counter);
  CHECK(counter == 160000);

  std::vector<std::future<long>> fs;
  for (long i = 1; i <= 32; i++)
    fs.push_back(std::async(i % 2 ? std::launch::async : std::launch::deferred, [i] {
      long s = 0;
      for (long k = 1; k <= i * 1000; k++) s += k;
      return s;
    }));
  long total = 0;
  for (auto& f : fs) total += f.get();
  long want = 0;
  for (long i = 1; i <= 32; i++) want += i * 1000 * (i * 1000 + 1) / 2;
  std::printf("std::async results: %s\n", yes(total == want));
  CHECK(total == want);

  // promise/future relay: each thread waits for its predecessor's value.
  constexpr int kChain = 64;
  std::vector<std::promise<int>> ps(kChain + 1);
  std::vector<std::thread> chain;
  for (int i = 0; i < kChain; i++)
    chain.emplace_back([&, i] { ps[i + 1].set_value(ps[i].get_future().get() + 1); });
  auto last = ps[kChain].get_future();
  ps[0].set_value(0);
  int relayed = last.get();
  for (auto& t : chain) t.join();
  std::printf("promise chain value: %d\n", relayed);
  CHECK(relayed == kChain);

  auto thrower = std::async(std::launch::async, []() -> int { throw std::runtime_error("boom"); });
  bool caught = false;
  try {
    thrower.get();
  } catch (const std::runtime_error& e) {
    caught = std::string(e.what()) == "boom";
  }
  std::printf("exception through future: %s\n", yes(caught));
  CHECK(caught);

  std::promise<void> never;
  auto nf = never.get_future();
  auto t0 = std::chrono::steady_clock::now();
  bool timed_out = nf.wait_for(100ms) == std::future_status::timeout;
  auto waited = std::chrono::steady_clock::now() - t0;
  std::printf("future::wait_for timeout after >=90ms: %s\n", yes(timed_out && waited >= 90ms));
  CHECK(timed_out && waited >= 90ms && waited < 5s);
}

static void test_condition_variable() {
  std::mutex m;
  std::condition_variable cv_items, cv_space;
  std::deque<int> q;
  int producers_left = 4;
  long sum = 0, n = 0;
  std::vector<std::thread> ts;
  for (int p = 0; p < 4; p++)
    ts.emplace_back([&, p] {
      for (int i = 1; i <= 5000; i++) {
        std::unique_lock<std::mutex> l(m);
        cv_space.wait(l, [&] { return q.size() < 8; });
        q.push_back(p * 100000 + i);
        cv_items.notify_one();
      }
      std::lock_guard<std::mutex> g(m);
      if (--producers_left == 0) cv_items.notify_all();
    });
  for (int c = 0; c < 4; c++)
    ts.emplace_back([&] {
      std::unique_lock<std::mutex> l(m);
      for (;;) {
        cv_items.wait(l, [&] { return !q.empty() || producers_left == 0; });
        if (q.empty()) return;
        sum += q.front();
        q.pop_front();
        n++;
        cv_space.notify_one();
      }
    });
  for (auto& t : ts) t.join();
  long want = 0;
  for (int p = 0; p < 4; p++) want += p * 100000L * 5000 + 5000L * 5001 / 2;
  std::printf("condition_variable items: %ld sum matches: %s\n", n, yes(sum == want));
  CHECK(n == 20000 && sum == want);

  std::unique_lock<std::mutex> l(m);
  auto t0 = std::chrono::steady_clock::now();
  bool to = !cv_items.wait_for(l, 100ms, [] { return false; });
  auto waited = std::chrono::steady_clock::now() - t0;
  std::printf("condition_variable::wait_for timeout after >=90ms: %s\n", yes(to && waited >= 90ms));
  CHECK(to && waited >= 90ms && waited < 5s);
}

static void test_cxx20_sync() {
  constexpr int kThreads = 16;
  std::latch ready(kThreads), go(1);
  std::atomic<int> arrived{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < kThreads; i++)
    ts.emplace_back([&] {
      arrived.fetch_add(1);
      ready.count_down();
      go.wait();
    });
  ready.wait();
  int seen = arrived.load();
  go.count_down();
  for (auto& t : ts) t.join();
  ts.clear();
  std::printf("latch: %d arrived before release\n", seen);
  CHECK(seen == kThreads);

  // At most 3 holders at once; 12 threads x 500 acquisitions.
  std::counting_semaphore<3> sem(3);
  std::atomic<int> inside{0}, peak{0};
  std::atomic<long> acquisitions{0};
  for (int i = 0; i < 12; i++)
    ts.emplace_back([&] {
      for (int k = 0; k < 500; k++) {
        sem.acquire();
        int now = inside.fetch_add(1) + 1;
        int p = peak.load();
        while (now > p && !peak.compare_exchange_weak(p, now)) {
        }
        if (k % 50 == 0) std::this_thread::yield();
        inside.fetch_sub(1);
        acquisitions.fetch_add(1);
        sem.release();
      }
    });
  for (auto& t : ts) t.join();
  ts.clear();
  std::printf("counting_semaphore acquisitions: %ld peak<=3: %s\n", acquisitions.load(), yes(peak.load() <= 3));
  CHECK(acquisitions.load() == 6000 && peak.load() <= 3 && peak.load() >= 1);

  std::counting_semaphore<1> empty(0);
  CHECK(!empty.try_acquire());
  auto t0 = std::chrono::steady_clock::now();
  bool got = empty.try_acquire_for(100ms);
  auto waited = std::chrono::steady_clock::now() - t0;
  std::printf("try_acquire_for timeout after >=90ms: %s\n", yes(!got && waited >= 90ms));
  CHECK(!got && waited >= 90ms && waited < 5s);

  // atomic wait/notify ping-pong: two threads alternate 2,000 times.
  std::atomic<int> turn{0};
  constexpr int kRounds = 2000;
  std::thread ping([&] {
    for (int r = 0; r < kRounds; r++) {
      int v;
      while ((v = turn.load()) % 2 != 0) turn.wait(v);
      turn.store(v + 1);
      turn.notify_one();
    }
  });
  std::thread pong([&] {
    for (int r = 0; r < kRounds; r++) {
      int v;
      while ((v = turn.load()) % 2 != 1) turn.wait(v);
      turn.store(v + 1);
      turn.notify_one();
    }
  });
  ping.join();
  pong.join();
  std::printf("atomic wait/notify ping-pong: %d\n", turn.load());
  CHECK(turn.load() == 2 * kRounds);

  // notify_all releases every waiter.
  std::atomic<int> gate{0};
  std::atomic<int> released{0};
  for (int i = 0; i < kThreads; i++)
    ts.emplace_back([&] {
      gate.wait(0);
      released.fetch_add(1);
    });
  gate.store(1);
  gate.notify_all();
  for (auto& t : ts) t.join();
  std::printf("atomic notify_all released: %d\n", released.load());
  CHECK(released.load() == kThreads);
}

int main() {
  test_threads_and_futures();
  test_condition_variable();
  test_cxx20_sync();
  return finish("cxx_sync");
}
