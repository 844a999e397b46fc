// Prometheus text rendering; see metrics.h.
#include "server/metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "server/api_keys.h"

namespace sculpt {
namespace {

std::vector<double> LatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
}

std::string FormatValue(double value) {
  if (std::isinf(value)) return "+Inf";
  return absl::StrFormat("%.9g", value);
}

// Label values need \, " and newline escaped.
std::string EscapeLabel(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void Header(std::string& out, const std::string& name, const char* type, const char* help) {
  absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)), counts_(upper_bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  size_t bucket = 0;
  while (bucket < upper_bounds_.size() && value > upper_bounds_[bucket]) ++bucket;
  ++counts_[bucket];
  sum_ += value;
  ++count_;
}

void Histogram::Render(const std::string& name, const std::string& labels, std::string& out) const {
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) {
    cumulative += counts_[i];
    const double bound = i < upper_bounds_.size() ? upper_bounds_[i] : INFINITY;
    absl::StrAppend(&out, name, "_bucket{", labels, ",le=\"", FormatValue(bound), "\"} ",
                    cumulative, "\n");
  }
  absl::StrAppend(&out, name, "_sum{", labels, "} ", FormatValue(sum_), "\n");
  absl::StrAppend(&out, name, "_count{", labels, "} ", count_, "\n");
}

Metrics::Metrics(std::string model_name)
    : model_label_(absl::StrCat("model=\"", EscapeLabel(model_name), "\"")),
      time_to_first_step_(LatencyBuckets()),
      step_latency_(LatencyBuckets()),
      e2e_latency_(LatencyBuckets()),
      queue_time_(LatencyBuckets()),
      tokens_committed_per_step_({1, 2, 4, 8, 16, 32, 64, 128, 256}) {}

void Metrics::OnStep(double seconds, int forwarded, std::span<const int> committed) {
  std::lock_guard lock(mutex_);
  ++steps_;
  forward_passes_ += static_cast<uint64_t>(forwarded);
  step_latency_.Observe(seconds);
  for (int count : committed) tokens_committed_per_step_.Observe(count);
}

void Metrics::OnFinished(const Request& request, const FinalEvent& event) {
  std::lock_guard lock(mutex_);
  switch (event.result.finish_reason) {
    case FinishReason::kLength:
    case FinishReason::kStop:
      ++success_by_reason_[std::string(FinishReasonName(event.result.finish_reason))];
      break;
    case FinishReason::kCancelled:
    case FinishReason::kIdle:
    case FinishReason::kDeadline:
    case FinishReason::kFailed:
      ++failure_by_reason_[std::string(FinishReasonName(event.result.finish_reason))];
      break;
  }
  prompt_tokens_ += static_cast<uint64_t>(request.prompt_tokens);
  generation_tokens_ += event.result.token_ids.size();
  queue_time_.Observe(event.queue_ms / 1000);
  if (event.result.steps > 0) time_to_first_step_.Observe(event.first_step_ms / 1000);
  e2e_latency_.Observe(event.total_ms / 1000);
}

void Metrics::RecordEdit(EditKind kind, const absl::Status& status) {
  std::string result = status.ok() ? "applied" : absl::StatusCodeToString(status.code());
  std::transform(result.begin(), result.end(), result.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::lock_guard lock(mutex_);
  ++edits_[{std::string(EditKindName(kind)), result}];
}

void Metrics::RecordRejected(const std::string& reason) {
  std::lock_guard lock(mutex_);
  ++failure_by_reason_[reason];
}

std::string RejectionReason(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      return "invalid_argument";
    case absl::StatusCode::kNotFound:
      return "not_found";
    case absl::StatusCode::kResourceExhausted:
      // A per-key limit asks the client to come back; a full queue does not.
      return RetryAfterSeconds(status) > 0 ? "key_limit" : "queue_full";
    case absl::StatusCode::kUnavailable:
      return "unavailable";
    case absl::StatusCode::kDeadlineExceeded:
      return "deadline";
    default:
      return "error";
  }
}

void Metrics::RecordHttp(const std::string& route, int status, double seconds) {
  std::lock_guard lock(mutex_);
  ++http_requests_[{route, status}];
  http_duration_.try_emplace(route, LatencyBuckets()).first->second.Observe(seconds);
}

void RenderProcessMetrics(std::string& out) {
  // /proc/self/stat: fields after the command's closing parenthesis; utime and stime are
  // fields 14 and 15, num_threads 20, starttime 22 (in clock ticks since boot), vsize 23,
  // rss 24 (pages).
  std::ifstream stat_file("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return;
  std::vector<std::string> fields = absl::StrSplit(stat.substr(close + 2), ' ');
  const auto field = [&](int number) -> double {
    const size_t index = static_cast<size_t>(number - 3);  // field 3 is the first after ')'
    double value = 0;
    if (index < fields.size()) (void)absl::SimpleAtod(fields[index], &value);
    return value;
  };
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  double boot_time = 0;
  std::ifstream proc_stat("/proc/stat");
  for (std::string line; std::getline(proc_stat, line);) {
    if (absl::StartsWith(line, "btime ")) (void)absl::SimpleAtod(line.substr(6), &boot_time);
  }
  size_t open_fds = 0;
  std::error_code error;
  for (std::filesystem::directory_iterator it("/proc/self/fd", error), end; !error && it != end;
       it.increment(error)) {
    ++open_fds;
  }
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  const auto gauge = [&](const char* name, const char* type, const char* help, double value) {
    Header(out, name, type, help);
    absl::StrAppend(&out, name, " ", absl::StrFormat("%.17g", value), "\n");
  };
  gauge("process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.",
        (field(14) + field(15)) / ticks);
  gauge("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
        field(24) * page);
  gauge("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", field(23));
  gauge("process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch.",
        boot_time + field(22) / ticks);
  gauge("process_open_fds", "gauge", "Open file descriptors.", static_cast<double>(open_fds));
  gauge("process_max_fds", "gauge", "The most file descriptors the process may open.",
        static_cast<double>(limit.rlim_cur));
  gauge("process_threads", "gauge", "Threads of the process.", field(20));
}

std::string Metrics::Render(const SchedulerStats& stats) const {
  std::lock_guard lock(mutex_);
  std::string out;
  const std::string& m = model_label_;
  Header(out, "sculpt_num_requests_running", "gauge", "Requests in the denoising loop.");
  absl::StrAppend(&out, "sculpt_num_requests_running{", m, "} ", stats.running, "\n");
  Header(out, "sculpt_num_requests_waiting", "gauge", "Requests waiting in the admission queue.");
  absl::StrAppend(&out, "sculpt_num_requests_waiting{", m, "} ", stats.waiting, "\n");
  Header(out, "sculpt_kv_cache_bytes", "gauge", "Bytes of the KV cache arena (--kv-cache-memory).");
  absl::StrAppend(&out, "sculpt_kv_cache_bytes{", m, "} ",
                  stats.kv_cache_rows * stats.kv_cache_row_bytes, "\n");
  Header(out, "sculpt_kv_cache_bytes_used", "gauge",
         "Bytes of the KV cache arena that running requests hold.");
  absl::StrAppend(&out, "sculpt_kv_cache_bytes_used{", m, "} ",
                  stats.kv_cache_rows_used * stats.kv_cache_row_bytes, "\n");
  Header(out, "sculpt_kv_cache_usage_ratio", "gauge", "Share of the KV cache arena in use.");
  absl::StrAppend(&out, "sculpt_kv_cache_usage_ratio{", m, "} ",
                  stats.kv_cache_rows > 0 ? static_cast<double>(stats.kv_cache_rows_used) /
                                                static_cast<double>(stats.kv_cache_rows)
                                          : 0.0,
                  "\n");

  Header(out, "sculpt_request_success_total", "counter",
         "Requests that finished normally, by finish reason.");
  for (const char* reason : {"stop", "length"}) {
    auto it = success_by_reason_.find(reason);
    absl::StrAppend(&out, "sculpt_request_success_total{", m, ",finished_reason=\"", reason, "\"} ",
                    it == success_by_reason_.end() ? 0 : it->second, "\n");
  }
  Header(out, "sculpt_request_failure_total", "counter",
         "Requests that ended without a full result or were refused, by reason.");
  for (const auto& [reason, count] : failure_by_reason_) {
    absl::StrAppend(&out, "sculpt_request_failure_total{", m, ",reason=\"", EscapeLabel(reason),
                    "\"} ", count, "\n");
  }
  Header(out, "sculpt_prompt_tokens_total", "counter", "Prompt tokens of finished requests.");
  absl::StrAppend(&out, "sculpt_prompt_tokens_total{", m, "} ", prompt_tokens_, "\n");
  Header(out, "sculpt_generation_tokens_total", "counter",
         "Answer tokens of finished requests (after trimming at a stop).");
  absl::StrAppend(&out, "sculpt_generation_tokens_total{", m, "} ", generation_tokens_, "\n");
  Header(out, "sculpt_denoising_steps_total", "counter",
         "Denoising steps run (each one packed forward for all running requests).");
  absl::StrAppend(&out, "sculpt_denoising_steps_total{", m, "} ", steps_, "\n");
  Header(out, "sculpt_forward_passes_total", "counter",
         "Sequences forwarded (a guided request counts two per step).");
  absl::StrAppend(&out, "sculpt_forward_passes_total{", m, "} ", forward_passes_, "\n");

  const auto histogram = [&](const char* name, const char* help, const Histogram& h) {
    Header(out, name, "histogram", help);
    h.Render(name, m, out);
  };
  histogram("sculpt_time_to_first_step_seconds",
            "From acceptance to the end of a request's first denoising step.", time_to_first_step_);
  histogram("sculpt_step_latency_seconds", "Wall time of one denoising step.", step_latency_);
  histogram("sculpt_e2e_request_latency_seconds", "From acceptance to the final result.",
            e2e_latency_);
  histogram("sculpt_request_queue_time_seconds", "Time spent in the admission queue.", queue_time_);
  histogram("sculpt_tokens_committed_per_step", "Tokens one request committed in one step.",
            tokens_committed_per_step_);

  Header(out, "sculpt_refine_edits_total", "counter",
         "Refine sessions' edits, by kind and result (applied, or the status of a refusal).");
  for (const auto& [key, count] : edits_) {
    absl::StrAppend(&out, "sculpt_refine_edits_total{", m, ",kind=\"", key.first, "\",result=\"",
                    key.second, "\"} ", count, "\n");
  }
  Header(out, "sculpt_http_requests_total", "counter",
         "HTTP requests answered, by route and status (0: the client left before an answer).");
  for (const auto& [key, count] : http_requests_) {
    absl::StrAppend(&out, "sculpt_http_requests_total{", m, ",route=\"", EscapeLabel(key.first),
                    "\",status=\"", key.second, "\"} ", count, "\n");
  }
  Header(out, "sculpt_http_request_duration_seconds", "histogram",
         "From a request's header to the end of its answer, by route.");
  for (const auto& [route, histogram_of_route] : http_duration_) {
    histogram_of_route.Render("sculpt_http_request_duration_seconds",
                              absl::StrCat(m, ",route=\"", EscapeLabel(route), "\""), out);
  }
  RenderProcessMetrics(out);
  return out;
}

}  // namespace sculpt
