// sched_spawn_test: spawn/join results, void and reference results,
// exceptions, spawn_on placement, ids, detach.
#include <greenring/greenring.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>

namespace gr = greenring;

namespace {
gr::options opts(unsigned workers) {
  gr::options o;
  o.workers = workers;
  return o;
}
}  // namespace

TEST(SchedSpawn, JoinReturnsValue) {
  gr::runtime rt(opts(2));
  auto h = gr::spawn([](int a, std::string b) { return b + std::to_string(a); }, 7, std::string("x"));
  EXPECT_EQ(h.join(), "x7");
  EXPECT_FALSE(h.joinable());
}

TEST(SchedSpawn, VoidAndReferenceResults) {
  gr::runtime rt(opts(2));
  int target = 5;
  std::atomic<int> ran{0};
  auto v = gr::spawn([&] { ran++; });
  v.join();
  EXPECT_EQ(ran.load(), 1);
  auto r = gr::spawn([&]() -> int& { return target; });
  int& ref = r.join();
  EXPECT_EQ(&ref, &target);
}

TEST(SchedSpawn, ExceptionPropagatesToJoiner) {
  gr::runtime rt(opts(2));
  auto h = gr::spawn([]() -> int { throw std::runtime_error("boom"); });
  try {
    h.join();
    FAIL() << "join did not throw";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "boom");
  }
}

TEST(SchedSpawn, SpawnOnPinsToWorker) {
  gr::runtime rt(opts(3));
  for (unsigned w = 0; w < 3; ++w) {
    auto h = gr::spawn_on(w, [] { return gr::this_fiber::worker_index(); });
    EXPECT_EQ(h.join(), static_cast<int>(w));
  }
  EXPECT_THROW(gr::spawn_on(3, [] {}), std::out_of_range);
}

TEST(SchedSpawn, NestedSpawnJoinAcrossWorkersExactCount) {
  gr::runtime rt(opts(4));
  constexpr int kOuter = 50, kInner = 40;
  auto total = gr::spawn([] {
    std::vector<gr::join_handle<long>> outer;
    for (int i = 0; i < kOuter; ++i)
      outer.push_back(gr::spawn_on(static_cast<unsigned>(i % 4), [i] {
        std::vector<gr::join_handle<long>> inner;
        for (int j = 0; j < kInner; ++j) inner.push_back(gr::spawn([i, j] { return long(i * 1000 + j); }));
        long s = 0;
        for (auto& h : inner) s += h.join();
        return s;
      }));
    long s = 0;
    for (auto& h : outer) s += h.join();
    return s;
  });
  long expect = 0;
  for (int i = 0; i < kOuter; ++i)
    for (int j = 0; j < kInner; ++j) expect += i * 1000 + j;
  EXPECT_EQ(total.join(), expect);
}

TEST(SchedSpawn, IdsAreUniqueAndNonZero) {
  gr::runtime rt(opts(2));
  auto a = gr::spawn([] { return gr::this_fiber::id(); });
  auto b = gr::spawn([] { return gr::this_fiber::id(); });
  auto ida = a.id(), idb = b.id();
  EXPECT_NE(ida, 0u);
  EXPECT_NE(ida, idb);
  EXPECT_EQ(a.join(), ida);
  EXPECT_EQ(b.join(), idb);
  EXPECT_EQ(gr::this_fiber::id(), 0u);  // main thread is not a green thread
  EXPECT_FALSE(gr::this_fiber::is_green_thread());
}

TEST(SchedSpawn, DetachedGreenThreadsRunToCompletion) {
  gr::runtime rt(opts(2));
  gr::semaphore done(0);
  for (int i = 0; i < 100; ++i) gr::spawn([&] { done.release(); }).detach();
  for (int i = 0; i < 100; ++i) done.acquire();
  EXPECT_EQ(done.available(), 0u);
}

TEST(SchedSpawn, RunHelperReturnsResult) {
  EXPECT_EQ(gr::run(opts(1), [] { return 42; }), 42);
}

TEST(SchedSpawn, YieldInterleavesOnOneWorker) {
  gr::runtime rt(opts(1));
  std::vector<int> order;
  gr::mutex m;
  auto body = [&](int id) {
    for (int i = 0; i < 3; ++i) {
      order.push_back(id);
      gr::this_fiber::yield();
    }
  };
  // Spawned from a green thread of the same worker, both are queued before
  // either runs (spawning from the main thread would let `a` start first).
  gr::spawn_on(0, [&] {
    auto a = gr::spawn(body, 1);
    auto b = gr::spawn(body, 2);
    a.join();
    b.join();
  }).join();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 1, 2, 1, 2}));
}

TEST(SchedSpawn, RunAdoptsTheCallingThreadAsWorkerZero) {
  const auto main_id = std::this_thread::get_id();
  for (int round = 0; round < 3; ++round) {  // the thread is handed back each time
    auto [idx, same_thread, other] = gr::run(opts(2), [&] {
      auto o = gr::spawn_on(1, [] { return gr::this_fiber::worker_index(); }).join();
      return std::make_tuple(gr::this_fiber::worker_index(), std::this_thread::get_id() == main_id, o);
    });
    EXPECT_EQ(idx, 0);
    EXPECT_TRUE(same_thread);
    EXPECT_EQ(other, 1);
    EXPECT_EQ(gr::this_fiber::worker_index(), -1);  // plain thread again
  }
  EXPECT_THROW(gr::run(opts(1), []() -> int { throw std::runtime_error("x"); }), std::runtime_error);
}

TEST(SchedSpawn, AdoptedRuntimeCancelsLeftoverGreenThreadsOnDestruction) {
  std::atomic<int> unwound{0};
  struct on_unwind {
    std::atomic<int>& n;
    ~on_unwind() { n.fetch_add(1); }
  };
  {
    gr::options o = opts(2);
    o.adopt_calling_thread = true;
    gr::runtime rt(o);
    for (int i = 0; i < 20; ++i)
      gr::spawn_on(static_cast<unsigned>(i % 2), [&] {
        on_unwind guard{unwound};
        gr::this_fiber::sleep_for(std::chrono::hours(1));
      }).detach();
    gr::this_fiber::sleep_for(std::chrono::milliseconds(20));  // main context waits: worker 0 runs
  }
  EXPECT_EQ(unwound.load(), 20);
}
