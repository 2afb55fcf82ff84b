// sched_watchdog_test: the blocking watchdog reports a worker held by one
// green thread (here: a plain blocking usleep that greenring does not see),
// names that green thread, reports each stall once, and stays silent for
// green threads that wait through greenring or keep switching. Also stats().
#include <greenring/greenring.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <mutex>
#include <vector>

namespace gr = greenring;
using namespace std::chrono_literals;

namespace {

struct collector {
  std::mutex m;
  std::vector<gr::stall_report> reports;
  void operator()(const gr::stall_report& r) {
    std::lock_guard<std::mutex> g(m);
    reports.push_back(r);
  }
  std::vector<gr::stall_report> get() {
    std::lock_guard<std::mutex> g(m);
    return reports;
  }
};

gr::options watched(collector& c) {
  gr::options o;
  o.workers = 2;
  o.watchdog = 100ms;  // well above scheduler preemption on a loaded 2-CPU CI machine
  o.on_stall = [&c](const gr::stall_report& r) { c(r); };
  return o;
}

}  // namespace

TEST(SchedWatchdog, ReportsAGreenThreadThatBlocksItsWorkerOnce) {
  collector c;
  std::uint64_t culprit = 0;
  {
    gr::runtime rt(watched(c));
    auto h = gr::spawn_on(1, [] {
      ::usleep(500 * 1000);  // a blocking call greenring cannot see: worker 1 is stuck
      return gr::this_fiber::id();
    });
    culprit = h.join();
  }
  auto r = c.get();
  ASSERT_EQ(r.size(), 1u) << "one report per stall, however long it lasts";
  EXPECT_EQ(r[0].worker, 1u);
  EXPECT_EQ(r[0].green_thread, culprit);
  EXPECT_GE(r[0].stalled, 100ms);
}

TEST(SchedWatchdog, SilentForGreenWaitsAndSwitchingGreenThreads) {
  collector c;
  {
    gr::runtime rt(watched(c));
    auto sleeper = gr::spawn_on(0, [] { gr::this_fiber::sleep_for(400ms); });
    auto spinner = gr::spawn_on(1, [] {
      auto end = gr::clock::now() + 400ms;
      while (gr::clock::now() < end) gr::this_fiber::yield();  // busy, but switching
    });
    auto other = gr::spawn_on(1, [] {
      for (int i = 0; i < 1000; ++i) gr::this_fiber::yield();
    });
    sleeper.join();
    spinner.join();
    other.join();
    auto st = rt.stats();
    ASSERT_EQ(st.size(), 2u);
    EXPECT_GT(st[1].switches, 1000u);
    EXPECT_EQ(st[0].stalls + st[1].stalls, 0u);
  }
  EXPECT_TRUE(c.get().empty());
}

TEST(SchedWatchdog, StatsCountLiveGreenThreads) {
  gr::options o;
  o.workers = 2;
  gr::runtime rt(o);
  gr::event release;
  std::vector<gr::join_handle<void>> hs;
  for (int i = 0; i < 10; ++i) hs.push_back(gr::spawn_on(static_cast<unsigned>(i % 2), [&] { release.wait(); }));
  gr::this_fiber::sleep_for(20ms);
  auto st = rt.stats();
  EXPECT_EQ(st[0].live_green_threads + st[1].live_green_threads, 10u);
  EXPECT_EQ(st[0].worker, 0u);
  EXPECT_EQ(st[1].worker, 1u);
  release.set();
  for (auto& h : hs) h.join();
  EXPECT_EQ(rt.live_green_threads(), 0u);
}
