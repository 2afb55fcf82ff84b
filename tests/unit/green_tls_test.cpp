// Green TLS (detail::add_green_tls): registered thread-local variables are
// kept per green thread across switches. Perl >= 5.36 keeps its interpreter
// in one (PL_current_context); green threads sharing a worker must not see
// each other's. An unregistered variable in the same test is the control: it
// shows the switches really happen and that the test would fail without the
// swapping.
#include <greenring/greenring.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <vector>

namespace gr = greenring;

namespace {

thread_local std::uint64_t tl_ctx = 0;          // registered, 8 bytes
thread_local std::uint32_t tl_small = 0x5eed;   // registered, 4 bytes, nonzero image
thread_local std::uint64_t tl_unregistered = 0; // control: one per OS thread

std::ptrdiff_t tp_offset(const void* p) {
  return static_cast<const char*>(p) - static_cast<const char*>(__builtin_thread_pointer());
}

void register_once() {
  static bool done = [] {
    EXPECT_TRUE(gr::detail::add_green_tls(tp_offset(&tl_ctx), sizeof tl_ctx, 0));
    EXPECT_TRUE(gr::detail::add_green_tls(tp_offset(&tl_small), sizeof tl_small, 0x5eed));
    EXPECT_TRUE(gr::detail::add_green_tls(tp_offset(&tl_ctx), sizeof tl_ctx, 0));  // again: no-op
    return true;
  }();
  (void)done;
}

struct counts {
  std::atomic<int> ctx_wrong{0}, small_wrong{0}, initial_wrong{0}, control_changed{0};
};

// Each green thread stores its own id, then switches many times (yield and
// real sleeps, so other green threads of the worker run in between) and
// checks its values after every switch.
void run_many(unsigned workers, int threads, counts& c) {
  gr::options o;
  o.workers = workers;
  gr::runtime rt(o);
  std::vector<gr::join_handle<void>> hs;
  for (int i = 0; i < threads; ++i) {
    hs.push_back(gr::spawn_on(static_cast<unsigned>(i) % workers, [i, &c] {
      if (tl_ctx != 0 || tl_small != 0x5eed) c.initial_wrong++;
      const std::uint64_t mine = 1000 + static_cast<std::uint64_t>(i);
      tl_ctx = mine;
      tl_small = static_cast<std::uint32_t>(mine * 3);
      tl_unregistered = mine;
      for (int k = 0; k < 50; ++k) {
        if (k % 5 == 0)
          gr::this_fiber::sleep_for(std::chrono::microseconds(100));
        else
          gr::this_fiber::yield();
        if (tl_ctx != mine) c.ctx_wrong++;
        if (tl_small != static_cast<std::uint32_t>(mine * 3)) c.small_wrong++;
        if (tl_unregistered != mine) c.control_changed++;
      }
    }));
  }
  for (auto& h : hs) h.join();
}

void expect_each_kept_its_own(unsigned workers, int threads) {
  register_once();
  ASSERT_GE(gr::detail::green_tls_count(), 2u);
  counts c;
  run_many(workers, threads, c);
  EXPECT_EQ(c.initial_wrong.load(), 0);
  EXPECT_EQ(c.ctx_wrong.load(), 0);
  EXPECT_EQ(c.small_wrong.load(), 0);
  // The unregistered variable is shared by a worker's green threads: the
  // interleaving overwrote it, so the checks above were not vacuous.
  EXPECT_GT(c.control_changed.load(), 0);
}

TEST(GreenTls, EachGreenThreadKeepsItsOwnValueOnOneWorker) { expect_each_kept_its_own(1, 200); }
TEST(GreenTls, EachGreenThreadKeepsItsOwnValueOnFourWorkers) { expect_each_kept_its_own(4, 400); }

// The adopted thread (worker 0's own context) keeps its value while green
// threads run on it, and a green thread starts from the variable's initial
// value, not from its spawner's, as a new OS thread would.
TEST(GreenTls, AdoptedThreadKeepsItsValueAndGreenThreadsStartFresh) {
  register_once();
  tl_ctx = 4242;
  tl_small = 7;
  std::uint64_t seen_ctx = 1;
  std::uint32_t seen_small = 1;
  {
    gr::options o;
    o.workers = 1;
    o.adopt_calling_thread = true;
    gr::runtime rt(o);
    auto h = gr::spawn_on(0, [&] {
      seen_ctx = tl_ctx;
      seen_small = tl_small;
      tl_ctx = 99;
      tl_small = 98;
      gr::this_fiber::yield();
    });
    EXPECT_EQ(tl_ctx, 4242u);
    h.join();
    EXPECT_EQ(tl_ctx, 4242u);
    EXPECT_EQ(tl_small, 7u);
  }
  EXPECT_EQ(seen_ctx, 0u);
  EXPECT_EQ(seen_small, 0x5eedu);
  EXPECT_EQ(tl_ctx, 4242u);
}

TEST(GreenTls, RejectsBadSizes) {
  int dummy = 0;
  EXPECT_FALSE(gr::detail::add_green_tls(tp_offset(&dummy), 3, 0));
  EXPECT_FALSE(gr::detail::add_green_tls(tp_offset(&dummy), 16, 0));
}

}  // namespace
