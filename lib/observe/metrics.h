// Prometheus metrics: counters, gauges and histograms, with or without
// labels, rendered in the text exposition format (version 0.0.4).
//
// A MetricsRegistry is set up once (families added at start-up) and then
// updated from any number of threads: Counter, Gauge and Histogram are
// lock-free atomics; a labelled family finds its child under a shared lock
// and creates a missing one under an exclusive lock. Render() may run
// concurrently with updates; each sample is read atomically, a histogram's
// buckets, sum and count are not read together (as in every Prometheus
// client).
#ifndef XG2G_LIB_OBSERVE_METRICS_H_
#define XG2G_LIB_OBSERVE_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

namespace xg2g {

class Counter {
 public:
  void Inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(int64_t v) { value_.store(v, std::memory_order_relaxed); }
  void Add(int64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  int64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

class Histogram {
 public:
  // `bounds`: the upper bounds of the buckets, strictly increasing; +Inf is
  // implicit.
  explicit Histogram(const std::vector<double>* bounds);
  void Observe(double value);
  // Cumulative count per bound (and a last entry for +Inf), sum, count.
  std::vector<uint64_t> CumulativeCounts() const;
  double Sum() const { return sum_.load(std::memory_order_relaxed); }
  uint64_t Count() const { return count_.load(std::memory_order_relaxed); }

 private:
  const std::vector<double>* bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket, not cumulative
  std::atomic<double> sum_{0};
  std::atomic<uint64_t> count_{0};
};

// Bucket bounds, in seconds, for request latencies of an in-process handler
// whose store may be local (microseconds) or remote (milliseconds).
const std::vector<double>& LatencyBuckets();

enum class MetricType { kCounter, kGauge, kHistogram };

// A metric family: one name, one help text, fixed label names, one child per
// distinct combination of label values.
template <typename T>
class Family {
 public:
  // The child for `values` (one per label name, in order), created on first
  // use. The pointer stays valid for the registry's lifetime.
  T* With(std::initializer_list<std::string_view> values);

 private:
  friend class MetricsRegistry;
  struct Child {
    std::vector<std::string> values;
    std::unique_ptr<T> metric;
  };
  Family(std::vector<std::string> labels, const std::vector<double>* bounds)
      : labels_(std::move(labels)), bounds_(bounds) {}

  std::vector<std::string> labels_;
  const std::vector<double>* bounds_;  // histograms only
  mutable std::shared_mutex mu_;
  std::map<std::string, Child, std::less<>> children_;  // key: values joined by '\xff'
};

class MetricsRegistry {
 public:
  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Registration (normally at set-up; safe at any time). Names follow the
  // Prometheus conventions (counters end in _total, units in the name); a
  // name is registered once. The returned pointers live as long as the
  // registry.
  Counter* AddCounter(std::string name, std::string help);
  Gauge* AddGauge(std::string name, std::string help);
  Family<Counter>* AddCounterFamily(std::string name, std::string help,
                                    std::vector<std::string> labels);
  Family<Gauge>* AddGaugeFamily(std::string name, std::string help,
                                std::vector<std::string> labels);
  Family<Histogram>* AddHistogramFamily(std::string name, std::string help,
                                        std::vector<std::string> labels,
                                        std::vector<double> bounds);
  // A value read when the registry renders (for numbers another component
  // keeps, such as an engine's counters). `fn` runs inside Render(), on the
  // rendering thread; it must not call back into the registry.
  void AddCallback(std::string name, std::string help, MetricType type,
                   std::function<double()> fn);

  // The text exposition of every family, in registration order, children in
  // label order.
  std::string Render() const;

 private:
  struct Entry {
    std::string name;
    std::string help;
    MetricType type{};
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Family<Counter>> counters;
    std::unique_ptr<Family<Gauge>> gauges;
    std::unique_ptr<Family<Histogram>> histograms;
    std::unique_ptr<std::vector<double>> bounds;
    std::function<double()> fn;
  };
  Entry& Add(std::string name, std::string help, MetricType type);

  mutable std::shared_mutex mu_;
  std::vector<std::unique_ptr<Entry>> entries_;
};

// Content-Type of Render()'s output.
inline constexpr std::string_view kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace xg2g

#endif  // XG2G_LIB_OBSERVE_METRICS_H_
