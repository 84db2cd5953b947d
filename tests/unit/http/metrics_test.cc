// The metrics registry's text exposition, and `promtool check metrics` on a
// real /metrics answer.
#include "lib/observe/metrics.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <doctest/doctest.h>

#include "tests/unit/http/http_test_util.h"

namespace xg2g {
namespace {

using testing::Fixture;
using testing::Get;
using testing::Post;

bool Contains(const std::string& text, std::string_view needle) {
  return text.find(needle) != std::string::npos;
}

TEST_CASE("the registry renders counters, gauges, histograms and callbacks") {
  MetricsRegistry registry;
  Counter* plain = registry.AddCounter("demo_events_total", "Events.\nSecond line \\ here.");
  Gauge* level = registry.AddGauge("demo_level", "A level.");
  Family<Counter>* labelled = registry.AddCounterFamily("demo_by_kind_total", "By kind.", {"kind"});
  Family<Histogram>* latency = registry.AddHistogramFamily("demo_latency_seconds", "Latency.",
                                                           {"route"}, {0.1, 1});
  registry.AddCallback("demo_callback", "From a callback.", MetricType::kGauge, [] { return 2.5; });
  plain->Inc(3);
  level->Set(-4);
  labelled->With({"a\"b\\c\nd"})->Inc();
  labelled->With({"plain"})->Inc(2);
  labelled->With({"plain"})->Inc();
  Histogram* h = latency->With({"/x"});
  h->Observe(0.05);
  h->Observe(0.5);
  h->Observe(0.1);  // on the bound: counted in it
  h->Observe(7);

  const std::string text = registry.Render();
  CHECK(Contains(text, "# HELP demo_events_total Events.\\nSecond line \\\\ here.\n"));
  CHECK(Contains(text, "# TYPE demo_events_total counter\ndemo_events_total 3\n"));
  CHECK(Contains(text, "# TYPE demo_level gauge\ndemo_level -4\n"));
  CHECK(Contains(text, "demo_by_kind_total{kind=\"a\\\"b\\\\c\\nd\"} 1\n"));
  CHECK(Contains(text, "demo_by_kind_total{kind=\"plain\"} 3\n"));
  CHECK(Contains(text, "# TYPE demo_latency_seconds histogram\n"));
  CHECK(Contains(text, "demo_latency_seconds_bucket{route=\"/x\",le=\"0.1\"} 2\n"));
  CHECK(Contains(text, "demo_latency_seconds_bucket{route=\"/x\",le=\"1\"} 3\n"));
  CHECK(Contains(text, "demo_latency_seconds_bucket{route=\"/x\",le=\"+Inf\"} 4\n"));
  CHECK(Contains(text, "demo_latency_seconds_sum{route=\"/x\"} 7.65\n"));
  CHECK(Contains(text, "demo_latency_seconds_count{route=\"/x\"} 4\n"));
  CHECK(Contains(text, "demo_callback 2.5\n"));
  CHECK(labelled->With({"plain"}) == labelled->With({"plain"}));
}

// Runs `promtool check metrics` with `text` on stdin; -1 when promtool is not
// installed.
int Promtool(const std::string& text, std::string& output) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) return -1;
  char path[] = "/tmp/xg2g-metrics-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  close(fd);
  const std::string command = std::string("promtool check metrics < ") + path + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[4096];
  size_t n = 0;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  const int status = pclose(pipe);
  unlink(path);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

TEST_CASE("promtool check metrics passes on the handler's /metrics answer") {
  Fixture::Options options;
  options.rate = 1;
  options.burst = 2;
  Fixture f(options);
  // Something in every family: successes, each kind of refusal, a 404, a 429.
  const std::string id = f.Start("1:0:1:AA:1:1:C00000:0:0:0:");
  (void)f.Do(Get("/api/v3/sessions/" + id).Bearer(testing::kReadToken).From("192.0.2.20"));
  (void)f.Do(Get("/api/v3/sessions").From("192.0.2.21"));
  (void)f.Do(Get("/api/v3/sessions").Bearer(testing::kReadToken).From("192.0.2.22"));
  (void)f.Do(Get("/api/v3/sessions").Bearer("nope-nope-nope-nope").From("192.0.2.23"));
  for (int i = 0; i < 3; ++i) (void)f.Do(Get("/api/v3/sessions").From("192.0.2.24"));
  (void)f.Do(Get("/nowhere"));
  (void)f.Do(Post("/api/v3/intents", "{").Bearer(testing::kWriteToken).From("192.0.2.25"));
  (void)f.Do(Get("/readyz"));

  HttpResponse metrics = f.Do(Get("/metrics"));
  REQUIRE(metrics.status == 200);
  REQUIRE(metrics.Header("Content-Type") != nullptr);
  CHECK(*metrics.Header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
  const std::string& text = metrics.body;
  CHECK(Contains(text, "xg2g_v3_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v3/sessions/{id}\",status=\"200\",le=\"0.0001\"}"));
  CHECK(Contains(text, "route=\"unmatched\",status=\"404\""));
  CHECK(Contains(text, "xg2g_v3_http_requests_in_flight 1\n"));  // this request
  CHECK(Contains(text, "xg2g_v3_intents_total{type=\"start\",outcome=\"accepted\"} 1\n"));
  CHECK(Contains(text, "xg2g_v3_intents_total{type=\"unknown\",outcome=\"invalid\"} 1\n"));
  CHECK(Contains(text, "xg2g_v3_auth_failures_total{reason=\"missing\"}"));
  CHECK(Contains(text, "xg2g_v3_auth_failures_total{reason=\"forbidden\"} 1\n"));
  CHECK(Contains(text, "xg2g_v3_auth_failures_total{reason=\"invalid\"} 1\n"));
  CHECK(Contains(text, "xg2g_v3_rate_limit_rejections_total{route=\"/api/v3/sessions\"} 1\n"));
  CHECK(Contains(text, "xg2g_engine_start_intents_total 1\n"));
  CHECK(Contains(text, "xg2g_engine_active_sessions 1\n"));
  // No raw path and no token ever becomes a label or a value.
  CHECK_FALSE(Contains(text, id));
  CHECK_FALSE(Contains(text, "token-0123456789"));
  CHECK_FALSE(Contains(text, "/nowhere"));

  std::string output;
  const int rc = Promtool(text, output);
  if (rc == -1) {
    MESSAGE("promtool is not installed (Debian package prometheus): check skipped");
    return;
  }
  INFO("promtool said:\n", output, "\non:\n", text);
  CHECK(rc == 0);
}

TEST_CASE("/metrics lists the circuit breakers of the handler's registry") {
  FakeClock clock;
  CircuitBreakerRegistry registry;
  CircuitBreakerOptions breaker_options;
  breaker_options.failure_threshold = 2;
  CircuitBreaker breaker("receiver", breaker_options, &clock, {}, &registry);
  Fixture::Options options;
  options.breakers = &registry;
  Fixture f(options);

  std::string text = f.Do(Get("/metrics")).body;
  CHECK(Contains(text, "# TYPE xg2g_circuit_breaker_state gauge\n"));
  CHECK(Contains(text, "xg2g_circuit_breaker_state{name=\"receiver\"} 0\n"));
  CHECK(Contains(text,
                 "xg2g_circuit_breaker_trips_total{name=\"receiver\",reason=\"consecutive_failures\"} 0\n"));

  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<CircuitBreaker::Permit> permit = breaker.Allow();
    REQUIRE(permit.ok());
    permit->Record(UnavailableError("receiver down"));
  }
  text = f.Do(Get("/metrics")).body;
  CHECK(Contains(text, "xg2g_circuit_breaker_state{name=\"receiver\"} 2\n"));
  CHECK(Contains(text,
                 "xg2g_circuit_breaker_trips_total{name=\"receiver\",reason=\"consecutive_failures\"} 1\n"));
  std::string output;
  const int rc = Promtool(text, output);
  if (rc != -1) {
    INFO("promtool said:\n", output, "\non:\n", text);
    CHECK(rc == 0);
  }

  // Without a registry, no breaker series at all.
  Fixture plain;
  CHECK_FALSE(Contains(plain.Do(Get("/metrics")).body, "xg2g_circuit_breaker"));
}

}  // namespace
}  // namespace xg2g
