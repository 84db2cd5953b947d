// The handler under many threads at once (run under TSan in the concurrency
// suite): requests of every kind from many clients, reloads and metrics
// renders in between, and a race of starts for one service.
#include <atomic>
#include <barrier>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "lib/http/handler.h"
#include "tests/unit/http/http_test_util.h"

namespace xg2g {
namespace {

using testing::Fixture;
using testing::Get;
using testing::kAdminToken;
using testing::kReadToken;
using testing::kWriteToken;
using testing::Post;
using testing::StartBody;
using testing::StopBody;

TEST_SUITE("concurrency") {
  TEST_CASE("mixed requests, reloads and metrics renders on many threads") {
    Fixture::Options options;
    options.rate = 1000;
    options.burst = 20;
    options.max_clients = 64;  // small: eviction runs under contention too
    options.trusted_proxies = "10.0.0.0/8";
    Fixture f(options);
    constexpr int kThreads = 8;
    constexpr int kRounds = 150;
    std::atomic<int> unexpected{0};
    std::atomic<int> started{0};
    std::atomic<bool> done{false};

    std::thread reloader([&] {
      int n = 0;
      while (!done.load()) {
        auto policy = ParseHttpPolicy(testing::StandardTokens(), n % 2 == 0, 1000, 10 + n % 20,
                                      n % 3 == 0 ? "192.0.2.0/24" : "", "10.0.0.0/8", "");
        REQUIRE(policy.ok());
        policy->rate_limit.max_clients = 64;
        f.handler->Reload(std::move(*policy));
        (void)f.handler->metrics().Render();
        ++n;
        std::this_thread::yield();
      }
    });
    std::vector<std::thread> workers;
    for (int t = 0; t < kThreads; ++t) {
      workers.emplace_back([&, t] {
        for (int i = 0; i < kRounds; ++i) {
          const std::string peer = fmt::format("198.51.{}.{}", t, i % 200);
          HttpResponse r;
          switch (i % 6) {
            case 0: {
              r = f.Do(Post("/api/v3/intents", StartBody(fmt::format("svc:{}:{}", t, i)))
                           .Bearer(kWriteToken).From(peer));
              if (r.status == 202) {
                started.fetch_add(1);
                testing::Json json(r.body);
                const std::string id = json.String("sessionId");
                (void)f.Do(Get("/api/v3/sessions/" + id).Bearer(kReadToken).From(peer));
                (void)f.Do(Post("/api/v3/intents", StopBody(id)).Bearer(kWriteToken).From(peer));
              }
              break;
            }
            case 1:
              r = f.Do(Get("/api/v3/sessions?limit=5").Bearer(kAdminToken).From("10.0.0.1")
                           .Header("X-Forwarded-For", peer));
              break;
            case 2:
              r = f.Do(Get("/api/v3/sessions").From(peer));
              break;
            case 3:
              r = f.Do(Get("/metrics"));
              break;
            case 4:
              r = f.Do(Get("/readyz"));
              break;
            default:
              r = f.Do(Get("/api/v3/sessions/nope").Bearer(kReadToken).From(peer));
              break;
          }
          const int s = r.status;
          if (!(s == 200 || s == 202 || s == 401 || s == 404 || s == 409 || s == 429)) {
            unexpected.fetch_add(1);
          }
        }
      });
    }
    for (auto& w : workers) w.join();
    done.store(true);
    reloader.join();
    CHECK(unexpected.load() == 0);
    CHECK(started.load() > 0);
    const std::string metrics = f.handler->metrics().Render();
    CHECK(metrics.find("xg2g_v3_http_requests_in_flight 0\n") != std::string::npos);
  }

  TEST_CASE("ten concurrent starts of one service on one tuner: one 202, nine 409") {
    Fixture::Options options;
    options.tuner_slots = "0";
    Fixture f(options);
    constexpr int kThreads = 10;
    std::barrier gate(kThreads);
    std::atomic<int> accepted{0};
    std::atomic<int> busy{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        gate.arrive_and_wait();
        const HttpResponse r =
            f.Do(Post("/api/v3/intents", StartBody("1:0:19:ONE:0:0:0:0:0:0:"))
                     .Bearer(kWriteToken).From(fmt::format("192.0.2.{}", t)));
        if (r.status == 202) accepted.fetch_add(1);
        if (r.status == 409) busy.fetch_add(1);
      });
    }
    for (auto& t : threads) t.join();
    CHECK(accepted.load() == 1);
    CHECK(busy.load() == kThreads - 1);
    auto leases = f.store->ListLeases();
    REQUIRE(leases.ok());
    CHECK(leases->size() == 2);  // one service lease, one tuner lease
  }
}

}  // namespace
}  // namespace xg2g
