#include "lib/observe/metrics.h"

#include <cmath>
#include <iterator>
#include <mutex>

#include <fmt/format.h>

namespace xg2g {
namespace {

constexpr char kLabelSeparator = '\xff';

template <typename T>
std::unique_ptr<T> MakeMetric(const std::vector<double>* /*bounds*/) {
  return std::make_unique<T>();
}
template <>
std::unique_ptr<Histogram> MakeMetric<Histogram>(const std::vector<double>* bounds) {
  return std::make_unique<Histogram>(bounds);
}

void AppendEscaped(std::string& out, std::string_view s, bool quotes) {
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quotes && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

void AppendNumber(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    fmt::format_to(std::back_inserter(out), "{}", v);
  }
}

// {a="x",b="y"} with an optional extra label (le) at the end.
void AppendLabels(std::string& out, const std::vector<std::string>& names,
                  const std::vector<std::string>& values, std::string_view extra_name = {},
                  std::string_view extra_value = {}) {
  if (names.empty() && extra_name.empty()) return;
  out += '{';
  bool first = true;
  for (size_t i = 0; i < names.size(); ++i) {
    if (!first) out += ',';
    first = false;
    out += names[i];
    out += "=\"";
    AppendEscaped(out, values[i], true);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

std::string_view TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter: return "counter";
    case MetricType::kGauge: return "gauge";
    case MetricType::kHistogram: return "histogram";
  }
  return "untyped";
}

}  // namespace

Histogram::Histogram(const std::vector<double>* bounds)
    : bounds_(bounds), counts_(new std::atomic<uint64_t>[bounds->size() + 1]) {
  for (size_t i = 0; i <= bounds_->size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  size_t i = 0;
  const size_t n = bounds_->size();
  while (i < n && value > (*bounds_)[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::CumulativeCounts() const {
  std::vector<uint64_t> out(bounds_->size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    out[i] = running;
  }
  return out;
}

const std::vector<double>& LatencyBuckets() {
  static const std::vector<double>* const buckets = new std::vector<double>{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return *buckets;
}

template <typename T>
T* Family<T>::With(std::initializer_list<std::string_view> values) {
  // The key is built on the stack for the common short case.
  char stack[256];
  std::string heap;
  size_t len = 0;
  for (std::string_view v : values) len += v.size() + 1;
  std::string_view key;
  if (len <= sizeof stack) {
    size_t at = 0;
    for (std::string_view v : values) {
      std::copy(v.begin(), v.end(), stack + at);
      at += v.size();
      stack[at++] = kLabelSeparator;
    }
    key = std::string_view(stack, at);
  } else {
    for (std::string_view v : values) {
      heap.append(v);
      heap += kLabelSeparator;
    }
    key = heap;
  }
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    auto it = children_.find(key);
    if (it != children_.end()) return it->second.metric.get();
  }
  std::unique_lock<std::shared_mutex> lock(mu_);
  auto it = children_.find(key);
  if (it != children_.end()) return it->second.metric.get();
  Child child;
  for (std::string_view v : values) child.values.emplace_back(v);
  child.values.resize(labels_.size());  // a short list gets empty values
  child.metric = MakeMetric<T>(bounds_);
  T* metric = child.metric.get();
  children_.emplace(std::string(key), std::move(child));
  return metric;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

MetricsRegistry::Entry& MetricsRegistry::Add(std::string name, std::string help, MetricType type) {
  auto entry = std::make_unique<Entry>();
  entry->name = std::move(name);
  entry->help = std::move(help);
  entry->type = type;
  std::unique_lock<std::shared_mutex> lock(mu_);
  entries_.push_back(std::move(entry));
  return *entries_.back();
}

Counter* MetricsRegistry::AddCounter(std::string name, std::string help) {
  Entry& e = Add(std::move(name), std::move(help), MetricType::kCounter);
  e.counter = std::make_unique<Counter>();
  return e.counter.get();
}

Gauge* MetricsRegistry::AddGauge(std::string name, std::string help) {
  Entry& e = Add(std::move(name), std::move(help), MetricType::kGauge);
  e.gauge = std::make_unique<Gauge>();
  return e.gauge.get();
}

Family<Counter>* MetricsRegistry::AddCounterFamily(std::string name, std::string help,
                                                   std::vector<std::string> labels) {
  auto family = std::unique_ptr<Family<Counter>>(new Family<Counter>(std::move(labels), nullptr));
  Family<Counter>* out = family.get();
  Entry& e = Add(std::move(name), std::move(help), MetricType::kCounter);
  e.counters = std::move(family);
  return out;
}

Family<Gauge>* MetricsRegistry::AddGaugeFamily(std::string name, std::string help,
                                               std::vector<std::string> labels) {
  auto family = std::unique_ptr<Family<Gauge>>(new Family<Gauge>(std::move(labels), nullptr));
  Family<Gauge>* out = family.get();
  Entry& e = Add(std::move(name), std::move(help), MetricType::kGauge);
  e.gauges = std::move(family);
  return out;
}

Family<Histogram>* MetricsRegistry::AddHistogramFamily(std::string name, std::string help,
                                                       std::vector<std::string> labels,
                                                       std::vector<double> bounds) {
  auto owned_bounds = std::make_unique<std::vector<double>>(std::move(bounds));
  auto family = std::unique_ptr<Family<Histogram>>(
      new Family<Histogram>(std::move(labels), owned_bounds.get()));
  Family<Histogram>* out = family.get();
  Entry& e = Add(std::move(name), std::move(help), MetricType::kHistogram);
  e.bounds = std::move(owned_bounds);
  e.histograms = std::move(family);
  return out;
}

void MetricsRegistry::AddCallback(std::string name, std::string help, MetricType type,
                                  std::function<double()> fn) {
  Entry& e = Add(std::move(name), std::move(help), type);
  e.fn = std::move(fn);
}

std::string MetricsRegistry::Render() const {
  std::string out;
  out.reserve(4096);
  std::shared_lock<std::shared_mutex> lock(mu_);
  for (const auto& entry : entries_) {
    const Entry& e = *entry;
    out += "# HELP ";
    out += e.name;
    out += ' ';
    AppendEscaped(out, e.help, false);
    out += "\n# TYPE ";
    out += e.name;
    out += ' ';
    out += TypeName(e.type);
    out += '\n';
    auto sample = [&out, &e](std::string_view suffix, const std::vector<std::string>& names,
                             const std::vector<std::string>& values, double value,
                             std::string_view extra_name = {}, std::string_view extra_value = {}) {
      out += e.name;
      out += suffix;
      AppendLabels(out, names, values, extra_name, extra_value);
      out += ' ';
      AppendNumber(out, value);
      out += '\n';
    };
    static const std::vector<std::string> kNone;
    if (e.counter) sample("", kNone, kNone, static_cast<double>(e.counter->Value()));
    if (e.gauge) sample("", kNone, kNone, static_cast<double>(e.gauge->Value()));
    if (e.fn) sample("", kNone, kNone, e.fn());
    if (e.counters) {
      std::shared_lock<std::shared_mutex> family_lock(e.counters->mu_);
      for (const auto& [key, child] : e.counters->children_) {
        sample("", e.counters->labels_, child.values, static_cast<double>(child.metric->Value()));
      }
    }
    if (e.gauges) {
      std::shared_lock<std::shared_mutex> family_lock(e.gauges->mu_);
      for (const auto& [key, child] : e.gauges->children_) {
        sample("", e.gauges->labels_, child.values, static_cast<double>(child.metric->Value()));
      }
    }
    if (e.histograms) {
      std::shared_lock<std::shared_mutex> family_lock(e.histograms->mu_);
      const std::vector<double>& bounds = *e.bounds;
      for (const auto& [key, child] : e.histograms->children_) {
        const Histogram& h = *child.metric;
        const std::vector<uint64_t> cumulative = h.CumulativeCounts();
        for (size_t i = 0; i < cumulative.size(); ++i) {
          std::string le;
          if (i < bounds.size()) {
            AppendNumber(le, bounds[i]);
          } else {
            le = "+Inf";
          }
          sample("_bucket", e.histograms->labels_, child.values,
                 static_cast<double>(cumulative[i]), "le", le);
        }
        // The count is the +Inf bucket, so the two always agree.
        sample("_sum", e.histograms->labels_, child.values, h.Sum());
        sample("_count", e.histograms->labels_, child.values,
               static_cast<double>(cumulative.back()));
      }
    }
  }
  return out;
}

}  // namespace xg2g
