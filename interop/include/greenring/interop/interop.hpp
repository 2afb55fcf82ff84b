// greenring/interop/interop.hpp: C++20 coroutines and green threads on one
// loop (issue 3). Link greenring::interop. Which thread runs what, where each
// resumption happens and what blocks what: docs/interop.md.
//
//   task.hpp      greenring::task<T>: lazy coroutine, symmetric transfer
//   await.hpp     await_ / await_for (green thread -> coroutine), sync_wait (main -> coroutine)
//   async.hpp     async_ and co_await join_handle (coroutine -> green thread)
//   io.hpp        greenring::co: read/write/recv/send/accept/connect/poll, sleep_*, yield
//   when.hpp      when_all, when_any, with_timeout
//   co_spawn.hpp  co_spawn / co_handle: a coroutine on its own
#pragma once

#include <greenring/greenring.hpp>
#include <greenring/interop/async.hpp>
#include <greenring/interop/await.hpp>
#include <greenring/interop/co_spawn.hpp>
#include <greenring/interop/io.hpp>
#include <greenring/interop/task.hpp>
#include <greenring/interop/when.hpp>
