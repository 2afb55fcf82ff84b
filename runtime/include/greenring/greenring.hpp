// greenring/greenring.hpp: the whole public API.
#pragma once

#include <greenring/cancel.hpp>
#include <greenring/io.hpp>
#include <greenring/runtime.hpp>
#include <greenring/spawn.hpp>
#include <greenring/sync.hpp>
#include <greenring/tls.hpp>

namespace greenring {

// Runs fn on a green thread of a fresh runtime built from `opts`, waits for it
// and returns its result (or rethrows its exception). The calling thread is
// worker 0 and fn runs there; the runtime is destroyed (remaining green
// threads cancelled and joined) before run returns.
template <class F>
auto run(options opts, F&& fn) {
  opts.adopt_calling_thread = true;
  runtime rt(opts);
  auto h = spawn_on(0, std::forward<F>(fn));
  return h.join();
}
template <class F>
auto run(F&& fn) {
  return run(options{}, std::forward<F>(fn));
}

}  // namespace greenring
