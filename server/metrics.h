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

  // A request refused before it was queued; `reason` is a label value such as
  // "invalid_argument", "queue_full", "unavailable", "not_found", "deadline".
  void RecordRejected(const std::string& reason);

  // The exposition text, with the scheduler's gauges as of now.
  std::string Render(const SchedulerStats& stats) const;

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
};

// Maps a refusal status to the label RecordRejected takes.
std::string RejectionReason(const absl::Status& status);

}  // namespace sculpt
