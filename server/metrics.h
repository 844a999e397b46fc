// Prometheus metrics of one served model, shared by the gRPC and HTTP front ends: fed by the
// scheduler (steps, finished requests) and by the front ends (requests refused before they
// reached the scheduler). Rendered in the Prometheus text exposition format, prefix `sculpt_`,
// label `model`.
#pragma once

#include <array>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "scheduler/scheduler.h"

namespace sculpt {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void Observe(double value);
  // Appends NAME_bucket{...,le=...}, NAME_sum and NAME_count lines.
  void Render(const std::string& name, const std::string& labels, std::string& out) const;

 private:
  std::vector<double> upper_bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; last = +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

class Metrics final : public SchedulerObserver {
 public:
  explicit Metrics(std::string model_name);

  void OnStep(double seconds, int forwarded, std::span<const int> committed) override;
  void OnFinished(const Request& request, const FinalEvent& event) override;
  // Edits the engine applied or refused, and (RecordEdit) those a front end refused first.
  void OnEdit(EditKind kind, const absl::Status& status) override { RecordEdit(kind, status); }
  void RecordEdit(EditKind kind, const absl::Status& status);

  // A request refused before it was queued; `reason` is a label value such as
  // "invalid_argument", "queue_full", "unavailable", "not_found", "deadline".
  void RecordRejected(const std::string& reason);

  // One HTTP request answered (or abandoned: status 0), by route pattern ("/v1/completions",
  // "/v1/models/*", "other" for paths that are no route, so the labels stay few).
  void RecordHttp(const std::string& route, int status, double seconds);

  // The exposition text, with the scheduler's gauges and the process's figures as of now.
  std::string Render(const SchedulerStats& stats) const;
  // The rendered model label pair, model="NAME", for figures other parts add.
  const std::string& model_label() const { return model_label_; }

 private:
  const std::string model_label_;
  mutable std::mutex mutex_;
  std::map<std::string, uint64_t> success_by_reason_;
  std::map<std::string, uint64_t> failure_by_reason_;
  uint64_t prompt_tokens_ = 0;
  uint64_t generation_tokens_ = 0;
  uint64_t steps_ = 0;
  uint64_t forward_passes_ = 0;
  Histogram time_to_first_step_;
  Histogram step_latency_;
  Histogram e2e_latency_;
  Histogram queue_time_;
  Histogram tokens_committed_per_step_;
  std::map<std::pair<std::string, int>, uint64_t> http_requests_;  // (route, status)
  std::map<std::pair<std::string, std::string>, uint64_t> edits_;  // (kind, result)
  std::map<std::string, Histogram> http_duration_;                 // by route
};

// Prometheus' standard process_* metrics for this process (Linux: /proc/self): resident and
// virtual memory, CPU seconds, open file descriptors and their limit, threads, start time.
void RenderProcessMetrics(std::string& out);

// Maps a refusal status to the label RecordRejected takes.
std::string RejectionReason(const absl::Status& status);

}  // namespace sculpt
