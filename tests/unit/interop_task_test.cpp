// interop_task_test: greenring::task<T> through await_ (green thread),
// sync_wait (plain thread) and co_await (coroutine): values, void, references,
// move-only results, exceptions in both directions, the error outside a green
// thread, and deep await chains (1,000,000 nested co_awaits of ready tasks, and
// as many in sequence) on a 64 KiB green-thread stack without overflow.
#include "helpers/test_util.hpp"

#include <greenring/interop/interop.hpp>

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

namespace gr = greenring;
using gr_test::opts;
using namespace std::chrono_literals;

namespace {

gr::task<int> forty_two() { co_return 42; }
gr::task<void> set_flag(bool& f) {
  f = true;
  co_return;
}
gr::task<int&> ref_to(int& x) { co_return x; }
gr::task<std::unique_ptr<int>> make_unique_int(int v) { co_return std::make_unique<int>(v); }
gr::task<int> thrower() {
  throw std::runtime_error("from coroutine");
  co_return 0;
}
gr::task<int> add_one(gr::task<int> t) { co_return 1 + co_await std::move(t); }
gr::task<std::string> concat() {
  std::string s = "a";
  s += std::to_string(co_await forty_two());
  bool f = false;
  co_await set_flag(f);
  s += f ? "t" : "f";
  co_return s;
}

gr::task<long> nested(long n) {
  if (n == 0) co_return 0;
  co_return 1 + co_await nested(n - 1);
}

gr::task<long> sequential(long n) {
  long s = 0;
  for (long i = 0; i < n; ++i) s += co_await forty_two();
  co_return s;
}

}  // namespace

TEST(InteropTask, AwaitValueVoidReferenceMoveOnly) {
  gr::runtime rt(opts(2));
  gr::spawn([] {
    EXPECT_EQ(gr::await_(forty_two()), 42);
    bool f = false;
    gr::await_(set_flag(f));
    EXPECT_TRUE(f);
    int x = 7;
    int& r = gr::await_(ref_to(x));
    EXPECT_EQ(&r, &x);
    auto p = gr::await_(make_unique_int(9));
    ASSERT_TRUE(p);
    EXPECT_EQ(*p, 9);
    EXPECT_EQ(gr::await_(add_one(add_one(forty_two()))), 44);
    EXPECT_EQ(gr::await_(concat()), "a42t");
  }).join();
}

TEST(InteropTask, ExceptionFromCoroutineReachesGreenThread) {
  gr::runtime rt(opts(2));
  gr::spawn([] {
    try {
      gr::await_(thrower());
      ADD_FAILURE() << "await_ did not throw";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "from coroutine");
    }
    // Through a chain of awaits.
    EXPECT_THROW(gr::await_(add_one(thrower())), std::runtime_error);
  }).join();
}

TEST(InteropTask, ExceptionCaughtInsideCoroutine) {
  gr::runtime rt(opts(1));
  auto t = []() -> gr::task<int> {
    try {
      co_await thrower();
    } catch (const std::runtime_error&) {
      co_return 1;
    }
    co_return 0;
  };
  EXPECT_EQ(gr::sync_wait(t()), 1);
}

TEST(InteropTask, AwaitOutsideGreenThreadIsAnError) {
  gr::runtime rt(opts(1));
  try {
    gr::await_(forty_two());
    FAIL() << "await_ on a plain thread did not throw";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("outside a green thread"), std::string::npos) << e.what();
  }
  // And without any runtime at all.
}

TEST(InteropTask, AwaitOutsideAnyRuntimeIsAnError) { EXPECT_THROW(gr::await_(forty_two()), std::logic_error); }

TEST(InteropTask, SyncWaitFromMainWithAndWithoutRuntime) {
  // No runtime: sync_wait starts one for the call.
  ASSERT_EQ(gr::runtime::current(), nullptr);
  EXPECT_EQ(gr::sync_wait(forty_two()), 42);
  EXPECT_EQ(gr::runtime::current(), nullptr);
  EXPECT_THROW(gr::sync_wait(thrower()), std::runtime_error);
  {
    gr::runtime rt(opts(2));
    EXPECT_EQ(gr::sync_wait(add_one(forty_two())), 43);
    int x = 1;
    EXPECT_EQ(&gr::sync_wait(ref_to(x)), &x);
    // From a green thread sync_wait is await_.
    EXPECT_EQ(gr::spawn([] { return gr::sync_wait(forty_two()); }).join(), 42);
  }
}

TEST(InteropTask, TaskIsLazyAndDestroyingUnstartedIsFine) {
  int runs = 0;
  auto body = [](int& n) -> gr::task<void> {
    ++n;
    co_return;
  };
  {
    auto t = body(runs);
    EXPECT_EQ(runs, 0);
  }
  EXPECT_EQ(runs, 0);
  gr::sync_wait(body(runs));
  EXPECT_EQ(runs, 1);
}

TEST(InteropTask, MillionNestedAwaitsOfReadyTasksDoNotOverflow) {
  // 64 KiB green-thread stacks: a chain that grew the stack by even one
  // frame per level would die long before a million.
  gr::runtime rt(opts(1, 64 * 1024));
  constexpr long kDepth = 1'000'000;
  EXPECT_EQ(gr::spawn([] { return gr::await_(nested(kDepth)); }).join(), kDepth);
}

TEST(InteropTask, MillionSequentialAwaitsOfReadyTasksDoNotOverflow) {
  gr::runtime rt(opts(1, 64 * 1024));
  constexpr long kN = 1'000'000;
  EXPECT_EQ(gr::spawn([] { return gr::await_(sequential(kN)); }).join(), 42 * kN);
}

TEST(InteropTask, DeepChainThatSuspendsAtTheBottom) {
  // The bottom of a 100,000-deep chain suspends (a real sleep), so the whole
  // chain is resumed later by the runner: the unwinding must be flat there too.
  gr::runtime rt(opts(1, 64 * 1024));
  struct rec {
    static gr::task<long> go(long n) {
      if (n == 0) {
        co_await gr::co::sleep_for(1ms);
        co_return 0;
      }
      co_return 1 + co_await go(n - 1);
    }
  };
  EXPECT_EQ(gr::sync_wait(rec::go(100'000)), 100'000);
}

TEST(InteropTask, InsideGreenringRunOnTheAdoptedMainThread) {
  // greenring::run makes the calling thread worker 0 (options::adopt_calling_thread):
  // coroutines, their runner and async_ green threads then share the main thread.
  auto main_id = std::this_thread::get_id();
  auto body = [&]() -> gr::task<int> {
    co_await gr::co::sleep_for(1ms);
    int v = co_await gr::async_([] { return 20; });
    co_return v + (std::this_thread::get_id() == main_id ? 1 : 0);
  };
  EXPECT_EQ(gr::run(opts(2), [&] { return gr::await_(body()) + gr::sync_wait(forty_two()); }), 63);
  EXPECT_EQ(gr::runtime::current(), nullptr);
}
