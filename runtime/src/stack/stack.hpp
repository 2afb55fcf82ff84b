// stack/stack.hpp: stack overflow detection hooks used by the worker (internal).
#pragma once
#include <greenring/detail/green_thread.hpp>

#include <atomic>

namespace greenring::detail {
// Installs the SIGSEGV handler (once per process) and an alternate signal
// stack for the calling thread (each worker calls it).
void install_overflow_handler() noexcept;
void remove_altstack() noexcept;
void set_stack_cache_capacity(std::size_t n) noexcept;
// GREENRING_STACK_SIZE in bytes (`k`/`m` suffixes), or 0 when it is unset or
// below 16 KiB. One parser for the runtime's default and the shim's.
std::size_t stack_size_from_env() noexcept;
// In the child of a fork: the slab free-list lock may have been held by a
// thread that does not exist there.
void stack_after_fork() noexcept;
// Checks the canary of a stack that has no guard page; aborts with the green
// thread's identity when it was overwritten.
inline constexpr std::uint64_t kCanary = 0x6772656e72696e67ULL;  // "grenring"
[[noreturn]] void report_canary_overflow(const gt_base* gt) noexcept;
// True once any unguarded stack has been handed out: until then the switch
// path skips canary checks entirely.
extern std::atomic<bool> g_canary_mode;
inline bool canary_mode() noexcept { return g_canary_mode.load(std::memory_order_relaxed); }
// The canary words sit just below the stack's lowest usable byte, in the top
// 64 bytes of the slab slot underneath (kept out of that slot's usable range).
// That page holds the lower stack's control block, so it is resident anyway:
// canaries cost no RSS, where canaries at the bottom of the stack itself would
// fault in a second page per idle green thread.
inline constexpr std::size_t kCanaryZone = 64;
inline void check_canary(const gt_base* gt) noexcept {
  if (!gt->stack.guarded) {
    auto* w = reinterpret_cast<const std::uint64_t*>(gt->stack.lo);
    if (w[-1] != kCanary || w[-8] != kCanary) report_canary_overflow(gt);
  }
}
}  // namespace greenring::detail
