// The store contract suite (DESIGN.md §3), written once for every backend.
//
// A backend's test binary is built from main.cc, contract.cc and
// contract_test.cc (the cases) plus one file of its own that defines
// BackendUnderTest(). Nothing in the cases knows which backend runs them:
//
//   const StoreBackend& BackendUnderTest() {
//     static const StoreBackend* backend = new StoreBackend{
//         .name = "lmdb",
//         .open = [](const OpenRequest& request) { return OpenStore("lmdb:" + request.scratch_dir,
//                                                                   request.clock); },
//         .durable = true};
//     return *backend;
//   }
//
// Time. Expiry cases never sleep when they can help it: a backend whose store
// reads the clock it is given (`takes_clock`) gets a FakeClock and the suite
// moves it by hand. A backend that keeps its own clock (Redis uses the
// server's) sets takes_clock = false: the same cases then use
// `short_ttl_ms` and wait in real time until the store's own NowMs() has
// passed the deadline. Setting XG2G_STORE_TEST_CLOCK=real in the environment
// runs any backend that way, which keeps the real-time path tested.
#ifndef XG2G_TESTS_STORE_CONTRACT_H_
#define XG2G_TESTS_STORE_CONTRACT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "lib/common/clock.h"
#include "lib/session/session.h"
#include "lib/store/store.h"

namespace xg2g::store_test {

struct OpenRequest {
  // The test's FakeClock, or null when the test runs on real time.
  Clock* clock = nullptr;
  // An empty directory private to this test, removed after it (for file
  // backends).
  std::string scratch_dir;
  // Unique among the tests of this run (for shared servers: a key prefix).
  std::string unique_name;
  // False: the test's first open, which must give an empty store. True: open
  // the data of the test's previous store again (a restart); only asked of
  // durable backends.
  bool reopen = false;
};

struct StoreBackend {
  std::string name;
  std::function<absl::StatusOr<std::unique_ptr<Store>>(const OpenRequest&)> open;
  // True when the store's expiry follows the clock passed in OpenRequest.
  bool takes_clock = true;
  // True when data survives closing and reopening (the restart cases run).
  bool durable = false;
  // Real time only: a TTL short enough to wait out, long enough that a grant
  // is still fresh when the call that made it returns.
  int64_t short_ttl_ms = 150;
};

// Defined by each backend's test binary.
const StoreBackend& BackendUnderTest();

// One test's store: opens a fresh one and moves its time.
class StoreHarness {
 public:
  StoreHarness();  // fails the test when the store does not open
  ~StoreHarness();
  StoreHarness(const StoreHarness&) = delete;
  StoreHarness& operator=(const StoreHarness&) = delete;

  Store& store() { return *store_; }
  const StoreBackend& backend() const { return backend_; }

  // True when time only moves through AdvanceTo/AdvanceMs, so a case may
  // check exact deadlines.
  bool fake_time() const { return fake_time_; }
  // A TTL the expiry cases wait out: free with a fake clock, short in real time.
  int64_t ShortTtlMs() const;
  // A TTL that never runs out within a test.
  static constexpr int64_t LongTtlMs() { return 3'600'000; }

  // Returns once store().NowMs() >= deadline_ms: moves the fake clock, or
  // waits in real time (failing the test after a generous bound).
  void AdvanceTo(int64_t deadline_ms);
  void AdvanceMs(int64_t ms) { AdvanceTo(store().NowMs() + ms); }

  // Closes the store and opens the same data again. False (nothing done)
  // when the backend is not durable.
  bool Reopen();

 private:
  void Open(bool reopen);

  const StoreBackend& backend_;
  const bool fake_time_;
  FakeClock clock_;  // declared before store_: outlives it
  OpenRequest request_;
  std::unique_ptr<Store> store_;
};

// A session with every field set to something worth round-tripping.
SessionRecord SampleSession(std::string id);

}  // namespace xg2g::store_test

#endif  // XG2G_TESTS_STORE_CONTRACT_H_
