// The step-level batch scheduler: one engine thread per model owns every request's state,
// admits queued requests at step boundaries within the budgets, runs ONE forward for all
// running requests per iteration, and streams each request's events to its outbox.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "model/denoiser.h"
#include "model/generation.h"
#include "model/transformer.h"
#include "scheduler/admission.h"
#include "scheduler/request_stream.h"

namespace sculpt {

struct Request;

// Sees what the engine does, for metrics. Called on the engine thread: must be quick and must
// not call back into the scheduler.
class SchedulerObserver {
 public:
  virtual ~SchedulerObserver() = default;
  // One denoising step: its wall time, the sequences it forwarded, and how many tokens each
  // running request committed in it.
  virtual void OnStep(double seconds, int forwarded, std::span<const int> committed) = 0;
  // A request ended (any cause), with its final event.
  virtual void OnFinished(const Request& request, const FinalEvent& event) = 0;
  // A refine session's edit was applied (OK) or refused.
  virtual void OnEdit(EditKind /*kind*/, const absl::Status& /*status*/) {}
};

// The largest step the budgets allow (every sequence guided), for Transformer::Reserve.
WorkspaceLimits WorkspaceFor(const Budgets& budgets);

struct SchedulerOptions {
  Budgets budgets;
  int max_queued_requests = 256;
  // Refine sessions: edits applied per session at one step boundary (the rest wait for the
  // next), and how long a paused session keeps its slot before it ends with reason "idle".
  int max_edits_per_step = 16;
  std::chrono::milliseconds refine_idle_timeout{std::chrono::minutes(5)};
  SchedulerObserver* observer = nullptr;  // not owned; outlives the scheduler
};

// A refine session's edits on their way to the engine. The front end pushes; the engine takes
// them in order at step boundaries. Bounded: once full, the front end stops reading its
// client's edits (gRPC's flow control then holds the client back) until the engine has taken
// some and calls on_room.
class EditInbox {
 public:
  explicit EditInbox(size_t capacity) : capacity_(capacity) {}
  // Keeps the edit; false when the inbox is full now: push again only after on_room.
  bool Push(DraftEdit edit);
  // Keeps the edit only if there is room (front ends that cannot hold their client back).
  bool TryPush(DraftEdit& edit);
  // Called (from the engine thread, outside the inbox's lock) when a full inbox has room.
  void SetOnRoom(std::function<void()> on_room);
  // Engine side: up to `max` edits in the order pushed, leaving those scripted for a later
  // step (at_step > steps_run) where they are.
  std::vector<DraftEdit> TakeReady(uint32_t steps_run, size_t max);
  bool HasReady(uint32_t steps_run) const;
  std::vector<DraftEdit> TakeAll();
  size_t capacity() const { return capacity_; }

 private:
  void AfterTake(std::unique_lock<std::mutex>& lock);

  const size_t capacity_;
  mutable std::mutex mutex_;
  std::deque<DraftEdit> edits_;
  bool full_ = false;  // a Push found it full and waits for on_room
  std::function<void()> on_room_;
};

// What the front end hands the scheduler: a validated generation, ready to run.
struct Request {
  std::string request_id;
  std::string model_revision;  // for the request log
  std::string key_id;          // the API key's id that sent it, for the request log; or ""
  // Held while the request lives (a per-key limit's slot); released as its final event is sent.
  std::shared_ptr<void> admission;
  int prompt_tokens = 0;
  Generation generation;
  int priority = 0;
  std::optional<std::chrono::steady_clock::time_point> deadline;
  StreamSettings stream;
  std::shared_ptr<EditInbox> edits;  // a refine session's; null for a plain generation
  bool start_paused = false;         // a refine session's: no step before a resume
};

// Request state, in chronological order.
enum class RequestState { kQueued, kDenoising, kFinished, kCancelled, kFailed };

struct SchedulerStats {
  int running = 0;
  int waiting = 0;
  int free_slots = 0;
  uint64_t steps_total = 0;
  uint64_t forward_passes_total = 0;
  double recent_step_ms = 0;  // mean of the last steps
  int64_t kv_cache_rows = 0;  // the model's KV cache arena
  int64_t kv_cache_rows_used = 0;
  int64_t kv_cache_row_bytes = 0;
};

class Scheduler;

// The front end's hold on a submitted request. Destroying it cancels the request (if it has
// not finished): the engine drops it at the next step boundary.
class RequestHandle {
 public:
  ~RequestHandle();
  RequestHandle(const RequestHandle&) = delete;
  RequestHandle& operator=(const RequestHandle&) = delete;

  const std::shared_ptr<RequestStream>& stream() const { return stream_; }
  void Cancel();
  // A refine session's edit was pushed to its inbox: the engine looks at the next boundary.
  void EditsArrived();

 private:
  friend class Scheduler;
  RequestHandle(Scheduler* scheduler, std::shared_ptr<std::atomic<bool>> cancelled,
                std::shared_ptr<RequestStream> stream)
      : scheduler_(scheduler), cancelled_(std::move(cancelled)), stream_(std::move(stream)) {}

  Scheduler* scheduler_;
  std::shared_ptr<std::atomic<bool>> cancelled_;
  std::shared_ptr<RequestStream> stream_;
};

class Scheduler {
 public:
  // Starts the engine thread. `model` must outlive the scheduler.
  Scheduler(Transformer& model, SchedulerOptions options);
  // Cancels everything left and joins the engine thread.
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request. RESOURCE_EXHAUSTED when the queue is full, UNAVAILABLE while draining,
  // INVALID_ARGUMENT when one step of it alone exceeds max_num_batched_tokens or its KV cache
  // the whole arena (Transformer::ReserveKvCache, sized before the scheduler starts),
  // DEADLINE_EXCEEDED when its deadline has passed or cannot be met at the recent step rate.
  absl::StatusOr<std::unique_ptr<RequestHandle>> Submit(Request request);

  // Refuses new requests from now on; queued and running ones go on.
  void StartDraining();
  bool draining() const { return draining_.load(); }
  // Cancels every queued and running request (each ends with finish reason "cancelled").
  void CancelAll();
  // Waits until nothing is queued or running, or the time is up; true when idle.
  bool WaitIdle(std::chrono::steady_clock::time_point until);

  // A refine session's edits arrived (its inbox): the engine looks at the next boundary.
  void EditsArrived() { Wake(); }

  SchedulerStats stats() const;
  const SchedulerOptions& options() const { return options_; }
  const ModelConfig& config() const { return model_.config(); }

 private:
  friend class RequestHandle;
  struct Entry;

  void EngineLoop();
  void Wake();
  // Ends queued requests that were cancelled or cannot meet their deadline.
  void DropQueued(std::vector<std::unique_ptr<Entry>>& finished,
                  std::chrono::steady_clock::time_point now);
  void Admit(std::chrono::steady_clock::time_point now);
  // Applies the edits due at this boundary; ends the sessions an edit finished.
  void ApplyEdits(std::chrono::steady_clock::time_point now);
  // Whether the engine has anything to do now (a step, an edit, a cancellation).
  bool HasWork() const;
  void RunStep();
  void Finish(Entry& entry, FinishReason cause, absl::Status status = absl::OkStatus());

  Transformer& model_;
  const SchedulerOptions options_;
  Denoiser denoiser_;  // engine thread
  // The arena's rows; the engine thread allocates and frees them (running requests' leases).
  KvRowAllocator kv_cache_;

  mutable std::mutex mutex_;  // guards queue_, stop_, and the stats below
  std::condition_variable wake_;
  std::condition_variable idle_;
  std::deque<std::unique_ptr<Entry>> queue_;
  std::vector<std::unique_ptr<Entry>> running_;  // engine thread; size mirrored in running_count_
  int running_count_ = 0;
  uint64_t next_arrival_ = 0;
  uint64_t steps_total_ = 0;
  uint64_t forward_passes_total_ = 0;
  int64_t kv_cache_rows_used_ = 0;  // kv_cache_.used(), mirrored for stats()
  std::deque<double> recent_step_ms_;
  bool stop_ = false;
  std::atomic<bool> draining_{false};
  std::atomic<bool> cancel_all_{false};
  std::thread engine_;
};

}  // namespace sculpt
