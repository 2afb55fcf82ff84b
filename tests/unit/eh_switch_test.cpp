// C++ exception state is per OS thread in libstdc++ (__cxa_eh_globals); green
// threads sharing a worker must each keep their own across switches, or a
// green thread that blocks inside a catch block sees (and ends) another's
// exception.
#include <greenring/greenring.hpp>

#include <gtest/gtest.h>

#include <exception>
#include <stdexcept>
#include <string>

namespace gr = greenring;

namespace {

std::string what_of(std::exception_ptr p) {
  try {
    std::rethrow_exception(p);
  } catch (const std::exception& e) {
    return e.what();
  }
  return {};
}

TEST(EhSwitch, CatchBlocksThatSuspendKeepTheirOwnException) {
  gr::options o;
  o.workers = 1;
  gr::runtime rt(o);
  std::string a_sees_before, a_sees_after, b_sees, a_rethrown;
  int b_uncaught_in_dtor = -1;
  gr::event a_in_catch, b_in_catch;
  auto a = gr::spawn_on(0, [&] {
    try {
      throw std::runtime_error("A");
    } catch (const std::exception&) {
      a_sees_before = what_of(std::current_exception());
      a_in_catch.set();
      b_in_catch.wait();  // B is now inside its own catch block, suspended
      a_sees_after = what_of(std::current_exception());
      try {
        throw;  // rethrows the exception being handled: must be A's
      } catch (const std::exception& e) {
        a_rethrown = e.what();
      }
    }
  });
  auto b = gr::spawn_on(0, [&] {
    a_in_catch.wait();
    try {
      throw std::runtime_error("B");
    } catch (const std::exception&) {
      b_in_catch.set();
      gr::this_fiber::yield();  // A runs and leaves its catch block
      gr::this_fiber::yield();
      b_sees = what_of(std::current_exception());
    }
    struct probe {
      int* out;
      ~probe() { *out = std::uncaught_exceptions(); }
    };
    { probe p{&b_uncaught_in_dtor}; }
  });
  a.join();
  b.join();
  EXPECT_EQ(a_sees_before, "A");
  EXPECT_EQ(a_sees_after, "A");
  EXPECT_EQ(a_rethrown, "A");
  EXPECT_EQ(b_sees, "B");
  EXPECT_EQ(b_uncaught_in_dtor, 0);
}

TEST(EhSwitch, UncaughtExceptionsCountedPerGreenThread) {
  gr::options o;
  o.workers = 1;
  gr::runtime rt(o);
  int seen_by_b = -1, seen_by_a = -1;
  gr::event a_unwinding, b_done;
  auto a = gr::spawn_on(0, [&] {
    struct blocker {
      gr::event* go;
      gr::event* wait;
      int* out;
      ~blocker() {
        go->set();
        wait->wait();  // suspends during stack unwinding
        *out = std::uncaught_exceptions();
      }
    };
    try {
      blocker bl{&a_unwinding, &b_done, &seen_by_a};
      throw std::runtime_error("unwinding");
    } catch (...) {
    }
  });
  auto b = gr::spawn_on(0, [&] {
    a_unwinding.wait();
    seen_by_b = std::uncaught_exceptions();
    b_done.set();
  });
  a.join();
  b.join();
  EXPECT_EQ(seen_by_b, 0);
  EXPECT_EQ(seen_by_a, 1);
}

}  // namespace
