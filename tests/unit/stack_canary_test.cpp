// stack_canary_test: beyond the vm.max_map_count budget for guard pages,
// green threads get unguarded stacks whose overflow is caught by canaries
// checked at every switch. The death test exhausts the guard budget in the
// child, overflows one unguarded stack and expects the report naming it.
#include <greenring/greenring.hpp>

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace gr = greenring;

namespace {

// Touches a frame larger than the whole 64 KiB stack, from its low end up, so
// the first bytes written lie just below the stack, on the canary words.
__attribute__((noinline)) void overflow_then_switch() {
  volatile char big[66 * 1024];
  std::memset(const_cast<char*>(big), 0x5a, sizeof big);
  gr::this_fiber::yield();  // the switch is where the canary is checked
  big[0] = big[sizeof big - 1];
}

void exhaust_guard_budget_then_overflow() {
  gr::options o;
  o.workers = 1;
  o.stack_size = 64 * 1024;
  gr::runtime rt(o);
  gr::event release;
  std::vector<gr::join_handle<void>> holders;
  // More live stacks than the guard budget allows (28,669 with the default
  // vm.max_map_count of 65,530): the next one is a canary stack.
  long max_maps = 65530;
  if (FILE* f = std::fopen("/proc/sys/vm/max_map_count", "r")) {
    if (std::fscanf(f, "%ld", &max_maps) != 1) max_maps = 65530;
    std::fclose(f);
  }
  long reserve = max_maps / 8 < 8192 ? 8192 : max_maps / 8;
  long budget = (max_maps - reserve) / 2;
  gr::spawn([&] {
    for (long i = 0; i < budget + 8; ++i) holders.push_back(gr::spawn([&] { release.wait(); }));
    gr::spawn(overflow_then_switch).join();
  }).join();
}

}  // namespace

TEST(StackCanaryDeathTest, OverflowOfAnUnguardedStackIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  long max_maps = 0;
  if (FILE* f = std::fopen("/proc/sys/vm/max_map_count", "r")) {
    if (std::fscanf(f, "%ld", &max_maps) != 1) max_maps = 0;
    std::fclose(f);
  }
  if (max_maps > 200000) GTEST_SKIP() << "vm.max_map_count is raised: every stack stays guarded";
  EXPECT_DEATH(exhaust_guard_budget_then_overflow(),
               "greenring: stack overflow in green thread #[0-9]+ \\(65536-byte stack, canary overwritten\\)");
}
