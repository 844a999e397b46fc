// The engine loop: admit at step boundaries, one packed forward per iteration, events out.
#include "scheduler/scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "model/denoiser.h"

namespace sculpt {

using Clock = std::chrono::steady_clock;

namespace {

constexpr size_t kRecentSteps = 32;

double MillisecondsBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

int TokensPerStep(const Generation& generation) {
  const int canvas = static_cast<int>(generation.canvas().size());
  return generation.guided() ? 2 * canvas : canvas;
}

}  // namespace

struct Scheduler::Entry {
  explicit Entry(Request r) : request(std::move(r)) {}
  Request request;
  uint64_t arrival = 0;
  RequestState state = RequestState::kQueued;
  std::shared_ptr<std::atomic<bool>> cancelled;
  std::shared_ptr<RequestStream> stream;
  Clock::time_point submitted;
  Clock::time_point admitted;
  std::optional<Clock::time_point> first_step_done;
  bool paused = false;  // a refine session's: no steps, slot kept
  Clock::time_point paused_since;
};

bool EditInbox::Push(DraftEdit edit) {
  std::lock_guard lock(mutex_);
  edits_.push_back(std::move(edit));
  full_ = edits_.size() >= capacity_;
  return !full_;
}

bool EditInbox::TryPush(DraftEdit& edit) {
  std::lock_guard lock(mutex_);
  if (edits_.size() >= capacity_) return false;
  edits_.push_back(std::move(edit));
  return true;
}

void EditInbox::SetOnRoom(std::function<void()> on_room) {
  std::lock_guard lock(mutex_);
  on_room_ = std::move(on_room);
}

void EditInbox::AfterTake(std::unique_lock<std::mutex>& lock) {
  if (!full_ || edits_.size() >= capacity_) return;
  full_ = false;
  std::function<void()> on_room = on_room_;
  lock.unlock();
  if (on_room) on_room();
}

std::vector<DraftEdit> EditInbox::TakeReady(uint32_t steps_run, size_t max) {
  std::unique_lock lock(mutex_);
  std::vector<DraftEdit> ready;
  for (auto it = edits_.begin(); it != edits_.end() && ready.size() < max;) {
    if (it->at_step && *it->at_step > steps_run) {
      ++it;
      continue;
    }
    ready.push_back(std::move(*it));
    it = edits_.erase(it);
  }
  AfterTake(lock);
  return ready;
}

bool EditInbox::HasReady(uint32_t steps_run) const {
  std::lock_guard lock(mutex_);
  return std::any_of(edits_.begin(), edits_.end(), [&](const DraftEdit& edit) {
    return !edit.at_step || *edit.at_step <= steps_run;
  });
}

std::vector<DraftEdit> EditInbox::TakeAll() {
  std::unique_lock lock(mutex_);
  std::vector<DraftEdit> all(std::make_move_iterator(edits_.begin()),
                             std::make_move_iterator(edits_.end()));
  edits_.clear();
  AfterTake(lock);
  return all;
}

RequestHandle::~RequestHandle() { Cancel(); }

void RequestHandle::EditsArrived() { scheduler_->Wake(); }

void RequestHandle::Cancel() {
  if (stream_->done()) return;
  cancelled_->store(true);
  scheduler_->Wake();
}

WorkspaceLimits WorkspaceFor(const Budgets& budgets) {
  return {.tokens = budgets.max_num_batched_tokens,
          .sequences = 2 * static_cast<int64_t>(budgets.max_num_seqs),
          .logit_rows = budgets.max_num_batched_tokens};
}

Scheduler::Scheduler(Transformer& model, SchedulerOptions options)
    : model_(model), options_(options), denoiser_(model), kv_cache_(model.kv_cache_rows()) {
  engine_ = std::thread([this] { EngineLoop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  engine_.join();
}

void Scheduler::Wake() {
  // Taking the lock orders the caller's flag store before the engine's next wait predicate.
  { std::lock_guard lock(mutex_); }
  wake_.notify_all();
}

absl::StatusOr<std::unique_ptr<RequestHandle>> Scheduler::Submit(Request request) {
  const Clock::time_point now = Clock::now();
  if (draining_.load()) {
    return absl::UnavailableError("the server is shutting down and accepts no new requests");
  }
  const int tokens = TokensPerStep(request.generation);
  if (tokens > options_.budgets.max_num_batched_tokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the request needs ", tokens, " tokens per step (canvas",
        request.generation.guided() ? " x2 for cfg_scale" : "",
        ") but the server's max_num_batched_tokens is ", options_.budgets.max_num_batched_tokens));
  }
  const int cache_rows = request.generation.kv_cache_rows_needed();
  if (cache_rows > kv_cache_.capacity()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cache ", std::string(KvCacheModeName(request.generation.params().cache)), " needs ",
        cache_rows, " KV cache rows (one per canvas token",
        request.generation.guided() ? ", x2 for cfg_scale" : "", ", ",
        cache_rows * model_.kv_cache_row_bytes(), " bytes) but the server's KV cache holds ",
        kv_cache_.capacity(), " (--kv-cache-memory); use cache none or a shorter request"));
  }
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  auto stream = std::make_shared<RequestStream>(request.stream);
  auto handle = std::unique_ptr<RequestHandle>(new RequestHandle(this, cancelled, stream));
  {
    std::lock_guard lock(mutex_);
    if (static_cast<int>(queue_.size()) >= options_.max_queued_requests) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the request queue is full (", options_.max_queued_requests, " waiting); retry later"));
    }
    if (request.deadline) {
      // The steps this request needs at the recent step rate: a lower bound, since waiting in
      // the queue comes on top.
      const double step_ms =
          recent_step_ms_.empty()
              ? 0.0
              : std::accumulate(recent_step_ms_.begin(), recent_step_ms_.end(), 0.0) /
                    static_cast<double>(recent_step_ms_.size());
      const double needed_ms = step_ms * request.generation.planned_steps();
      if (*request.deadline <= now || MillisecondsBetween(now, *request.deadline) < needed_ms) {
        return absl::DeadlineExceededError(
            absl::StrCat("the deadline cannot be met: the request needs about ",
                         static_cast<int>(needed_ms), " ms of denoising at the current step rate"));
      }
    }
    auto entry = std::make_unique<Entry>(std::move(request));
    entry->cancelled = std::move(cancelled);
    entry->stream = std::move(stream);
    entry->submitted = now;
    entry->arrival = next_arrival_++;
    entry->stream->PushAccepted({.queue_position = static_cast<int>(queue_.size())});
    queue_.push_back(std::move(entry));
  }
  wake_.notify_all();
  return handle;
}

void Scheduler::StartDraining() { draining_.store(true); }

void Scheduler::CancelAll() {
  cancel_all_.store(true);
  Wake();
}

bool Scheduler::WaitIdle(Clock::time_point until) {
  std::unique_lock lock(mutex_);
  return idle_.wait_until(lock, until, [&] { return queue_.empty() && running_count_ == 0; });
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard lock(mutex_);
  SchedulerStats stats;
  stats.running = running_count_;
  stats.waiting = static_cast<int>(queue_.size());
  stats.free_slots = std::max(0, options_.budgets.max_num_seqs - running_count_);
  stats.steps_total = steps_total_;
  stats.forward_passes_total = forward_passes_total_;
  stats.kv_cache_rows = kv_cache_.capacity();
  stats.kv_cache_rows_used = kv_cache_rows_used_;
  stats.kv_cache_row_bytes = model_.kv_cache_row_bytes();
  if (!recent_step_ms_.empty()) {
    stats.recent_step_ms = std::accumulate(recent_step_ms_.begin(), recent_step_ms_.end(), 0.0) /
                           static_cast<double>(recent_step_ms_.size());
  }
  return stats;
}

void Scheduler::Finish(Entry& entry, FinishReason cause, absl::Status status) {
  const Clock::time_point now = Clock::now();
  const Generation& generation = entry.request.generation;
  FinalEvent final_event{.result = generation.Result(), .status = std::move(status)};
  final_event.result.finish_reason = cause;
  const bool ran = entry.state != RequestState::kQueued;
  final_event.queue_ms = MillisecondsBetween(entry.submitted, ran ? entry.admitted : now);
  if (entry.first_step_done) {
    final_event.first_step_ms = MillisecondsBetween(entry.submitted, *entry.first_step_done);
  }
  final_event.total_ms = MillisecondsBetween(entry.submitted, now);
  switch (cause) {
    case FinishReason::kLength:
    case FinishReason::kStop:
      entry.state = RequestState::kFinished;
      break;
    case FinishReason::kCancelled:
    case FinishReason::kDeadline:
    case FinishReason::kIdle:
      entry.state = RequestState::kCancelled;
      break;
    case FinishReason::kFailed:
      entry.state = RequestState::kFailed;
      break;
  }
  spdlog::info(
      "request finished: request_id={} finish_reason={} status={} generated_tokens={} steps={} "
      "forward_passes={} queue_ms={:.1f} first_step_ms={:.1f} total_ms={:.1f} model_revision={} "
      "key_id={}",
      entry.request.request_id, FinishReasonName(cause),
      absl::StatusCodeToString(final_event.status.code()), final_event.result.token_ids.size(),
      final_event.result.steps, final_event.result.forward_passes, final_event.queue_ms,
      final_event.first_step_ms, final_event.total_ms, entry.request.model_revision,
      entry.request.key_id.empty() ? "-" : entry.request.key_id);
  if (options_.observer != nullptr) options_.observer->OnFinished(entry.request, final_event);
  if (entry.request.edits) {
    // Every edit the session sent is answered before its final event.
    for (DraftEdit& edit : entry.request.edits->TakeAll()) {
      EditEvent refused{.edit_id = std::move(edit.id),
                        .kind = edit.kind,
                        .status = absl::FailedPreconditionError(absl::StrCat(
                            "the generation ended (", std::string(FinishReasonName(cause)),
                            ") at step ", generation.steps_run(), " before this edit applied"))};
      if (options_.observer != nullptr) options_.observer->OnEdit(refused.kind, refused.status);
      entry.stream->PushEdit(std::move(refused));
    }
  }
  // Before the final event: a client that starts its next request on reading it finds the slot.
  entry.request.admission.reset();
  entry.stream->PushFinal(std::move(final_event));
}

void Scheduler::DropQueued(std::vector<std::unique_ptr<Entry>>& finished, Clock::time_point now) {
  const bool cancel_all = cancel_all_.load();
  for (auto it = queue_.begin(); it != queue_.end();) {
    Entry& entry = **it;
    const bool expired = entry.request.deadline && *entry.request.deadline <= now;
    if (cancel_all || entry.cancelled->load() || expired) {
      finished.push_back(std::move(*it));
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
}

void Scheduler::Admit(Clock::time_point now) {
  std::vector<RunningRequest> running;
  running.reserve(running_.size());
  for (const auto& entry : running_) {
    running.push_back({.tokens_per_step = TokensPerStep(entry->request.generation)});
  }
  std::vector<WaitingRequest> waiting;
  waiting.reserve(queue_.size());
  for (const auto& entry : queue_) {
    waiting.push_back({.priority = entry->request.priority,
                       .arrival = entry->arrival,
                       .waited_s = std::chrono::duration<double>(now - entry->submitted).count(),
                       .tokens_per_step = TokensPerStep(entry->request.generation),
                       .kv_cache_rows = entry->request.generation.kv_cache_rows_needed()});
  }
  const std::vector<size_t> admitted = PlanAdmission(running, waiting, options_.budgets, kv_cache_);
  if (admitted.empty()) return;
  for (size_t index : admitted) {
    Generation& generation = queue_[index]->request.generation;
    if (const int rows = generation.kv_cache_rows_needed(); rows > 0) {
      const std::optional<RowRange> range = kv_cache_.Allocate(rows);
      SCULPT_CHECK(range.has_value());  // planned on a copy of this allocator
      generation.AttachKvCache(KvCacheLease(&kv_cache_, *range));
    }
    queue_[index]->state = RequestState::kDenoising;
    queue_[index]->admitted = now;
    queue_[index]->paused = queue_[index]->request.start_paused;
    queue_[index]->paused_since = now;
    running_.push_back(std::move(queue_[index]));
  }
  std::erase(queue_, nullptr);
}

void Scheduler::EngineLoop() {
  while (true) {
    std::vector<std::unique_ptr<Entry>> finished, idle_sessions;
    {
      std::unique_lock lock(mutex_);
      // Paused sessions alone give no work, only their idle timeouts and deadlines.
      std::optional<Clock::time_point> wake_at;
      for (const auto& entry : running_) {
        if (!entry->paused) continue;
        const Clock::time_point idle_at = entry->paused_since + options_.refine_idle_timeout;
        wake_at = wake_at ? std::min(*wake_at, idle_at) : idle_at;
        if (entry->request.deadline) wake_at = std::min(*wake_at, *entry->request.deadline);
      }
      const auto ready = [&] { return stop_ || !queue_.empty() || HasWork(); };
      if (wake_at) {
        wake_.wait_until(lock, *wake_at, ready);
      } else {
        wake_.wait(lock, ready);
      }
      if (stop_) {
        for (auto& entry : queue_) finished.push_back(std::move(entry));
        queue_.clear();
        for (auto& entry : running_) finished.push_back(std::move(entry));
        running_.clear();
        running_count_ = 0;
        lock.unlock();
        for (auto& entry : finished) Finish(*entry, FinishReason::kCancelled);
        idle_.notify_all();
        return;
      }
      const Clock::time_point now = Clock::now();
      DropQueued(finished, now);
      // Cancelled and expired running requests leave before the step: their slots are free now.
      const bool cancel_all = cancel_all_.load();
      for (auto& entry : running_) {
        const bool expired = entry->request.deadline && *entry->request.deadline <= now;
        const bool idle =
            entry->paused && now - entry->paused_since >= options_.refine_idle_timeout;
        if (cancel_all || entry->cancelled->load() || expired || idle) {
          entry->request.generation.ReleaseKvCache();  // its rows serve the admissions below
          if (idle && !cancel_all && !entry->cancelled->load() && !expired) {
            idle_sessions.push_back(std::move(entry));
          } else {
            finished.push_back(std::move(entry));
          }
        }
      }
      std::erase(running_, nullptr);
      Admit(now);
      running_count_ = static_cast<int>(running_.size());
      kv_cache_rows_used_ = kv_cache_.used();
      if (cancel_all && queue_.empty()) cancel_all_.store(false);
    }
    for (auto& entry : finished) {
      // Past its deadline it ended by the deadline, even when the client's side cancelled it
      // first (gRPC cancels a call whose deadline passed).
      const bool expired = entry->request.deadline && *entry->request.deadline <= Clock::now();
      Finish(*entry, expired ? FinishReason::kDeadline : FinishReason::kCancelled);
    }
    for (auto& entry : idle_sessions) Finish(*entry, FinishReason::kIdle);
    ApplyEdits(Clock::now());
    if (std::any_of(running_.begin(), running_.end(), [](const auto& e) { return !e->paused; })) {
      RunStep();
    }
    bool idle = false;
    {
      std::lock_guard lock(mutex_);
      running_count_ = static_cast<int>(running_.size());
      kv_cache_rows_used_ = kv_cache_.used();
      idle = queue_.empty() && running_.empty();
    }
    if (idle) idle_.notify_all();
  }
}

bool Scheduler::HasWork() const {
  if (cancel_all_.load()) return !running_.empty();
  for (const auto& entry : running_) {
    if (!entry->paused || entry->cancelled->load()) return true;
    const bool expired = entry->request.deadline && *entry->request.deadline <= Clock::now();
    if (expired || (entry->request.edits &&
                    entry->request.edits->HasReady(entry->request.generation.global_step()))) {
      return true;
    }
  }
  return false;
}

void Scheduler::ApplyEdits(Clock::time_point now) {
  int64_t tokens_per_step = 0;
  for (const auto& entry : running_) tokens_per_step += TokensPerStep(entry->request.generation);
  for (auto& entry : running_) {
    if (!entry->request.edits) continue;
    Generation& generation = entry->request.generation;
    const uint32_t steps = generation.global_step();
    for (DraftEdit& edit :
         entry->request.edits->TakeReady(steps, static_cast<size_t>(options_.max_edits_per_step))) {
      EditEvent event{.edit_id = edit.id, .kind = edit.kind};
      const auto outcome_now = [&] {
        return EditOutcome{.step = generation.global_step(),
                           .revision = generation.revision(),
                           .gen_length = static_cast<int32_t>(generation.canvas().size()) -
                                         generation.region_start()};
      };
      if (edit.at_step && *edit.at_step < steps) {
        event.status = absl::AbortedError(
            absl::StrCat("the edit was scripted for after step ", *edit.at_step,
                         " but arrived when the generation had run ", steps, " steps"));
      } else if (generation.finished()) {
        event.status = absl::FailedPreconditionError(
            absl::StrCat("the generation finished at step ", steps, " before this edit applied"));
      } else if (edit.kind == EditKind::kPause || edit.kind == EditKind::kResume) {
        const bool pause = edit.kind == EditKind::kPause;
        if (pause && !entry->paused) entry->paused_since = now;
        entry->paused = pause;
        event.outcome = outcome_now();
      } else {
        const int copies = generation.guided() ? 2 : 1;
        const int64_t growth =
            edit.kind == EditKind::kReplace
                ? copies * (static_cast<int64_t>(edit.tokens.size()) - edit.length)
                : 0;
        if (growth > 0 && tokens_per_step + growth > options_.budgets.max_num_batched_tokens) {
          event.status = absl::ResourceExhaustedError(
              absl::StrCat("the replacement would grow this step's tokens to ",
                           tokens_per_step + growth, ", past the server's max_num_batched_tokens (",
                           options_.budgets.max_num_batched_tokens, "); replace by fewer tokens"));
        } else {
          const int64_t before = TokensPerStep(generation);
          absl::StatusOr<EditOutcome> outcome = generation.ApplyEdit(edit);
          if (outcome.ok()) {
            event.outcome = std::move(*outcome);
            tokens_per_step += TokensPerStep(generation) - before;
          } else {
            event.status = outcome.status();
          }
        }
      }
      if (options_.observer != nullptr) options_.observer->OnEdit(event.kind, event.status);
      entry->stream->PushEdit(std::move(event));
    }
    if (generation.finished()) {
      // An edit committed the last masks (or a stop): the session ends without another step.
      entry->stream->PushDraft({.step = generation.global_step(),
                                .revision = generation.revision(),
                                .block = static_cast<uint32_t>(generation.num_blocks()),
                                .masks_left = 0,
                                .planned_steps = generation.planned_steps()},
                               /*last_step=*/true);
      Finish(*entry, generation.finish_reason());
    }
  }
  std::erase_if(running_, [](const std::unique_ptr<Entry>& entry) {
    return entry->state != RequestState::kDenoising;
  });
}

void Scheduler::RunStep() {
  std::vector<Generation*> generations;
  std::vector<Entry*> stepping;
  generations.reserve(running_.size());
  for (auto& entry : running_) {
    if (entry->paused) continue;
    stepping.push_back(entry.get());
    generations.push_back(&entry->request.generation);
  }
  const Clock::time_point start = Clock::now();
  absl::StatusOr<int> forwarded = denoiser_.Step(generations);
  const Clock::time_point end = Clock::now();
  if (!forwarded.ok()) {
    spdlog::error("denoising step failed: {}", forwarded.status().ToString());
    // The backend's message may describe internals; the clients get a generic one.
    for (Entry* entry : stepping) {
      Finish(*entry, FinishReason::kFailed,
             absl::InternalError("the denoising step failed on the server"));
    }
    std::erase_if(running_, [](const std::unique_ptr<Entry>& entry) {
      return entry->state != RequestState::kDenoising;
    });
    return;
  }
  {
    std::lock_guard lock(mutex_);
    ++steps_total_;
    forward_passes_total_ += static_cast<uint64_t>(*forwarded);
    recent_step_ms_.push_back(MillisecondsBetween(start, end));
    if (recent_step_ms_.size() > kRecentSteps) recent_step_ms_.pop_front();
  }
  if (options_.observer != nullptr) {
    std::vector<int> committed;
    committed.reserve(stepping.size());
    for (const Entry* entry : stepping) {
      committed.push_back(
          static_cast<int>(entry->request.generation.last_event().committed.size()));
    }
    options_.observer->OnStep(std::chrono::duration<double>(end - start).count(), *forwarded,
                              committed);
  }
  for (Entry* stepped : stepping) {
    Entry& entry = *stepped;
    const Generation& generation = entry.request.generation;
    if (!entry.first_step_done) entry.first_step_done = end;
    const StepEvent& event = generation.last_event();
    const int region = generation.region_start();
    DraftEvent draft{.step = event.step + 1,
                     .revision = event.revision,
                     .block = static_cast<uint32_t>(event.block),
                     .masks_left = event.masks_left,
                     .planned_steps = generation.planned_steps()};
    for (size_t c = 0; c < event.committed.size(); ++c) {
      const auto [position, token] = event.committed[c];
      draft.committed.emplace(position - region, token);
      if (c < event.committed_logprobs.size()) {
        draft.logprobs.emplace(position - region, event.committed_logprobs[c]);
      }
    }
    // The revising policies change committed positions: a replacement, or a mask again.
    for (const auto& [position, token] : event.replaced) {
      draft.committed[position - region] = token;
      draft.logprobs.erase(position - region);
    }
    for (const int32_t position : event.remasked) {
      draft.committed[position - region] = generation.mask_id();
      draft.logprobs.erase(position - region);
    }
    entry.stream->PushDraft(std::move(draft), generation.finished());
    for (const CompletedBlock& block : event.completed_blocks) {
      entry.stream->PushBlock({.block = static_cast<uint32_t>(block.block),
                               .step = event.step + 1,
                               .start = block.start,
                               .tokens = block.tokens});
    }
    if (generation.finished()) {
      Finish(entry, generation.finish_reason());
    }
  }
  std::erase_if(running_, [](const std::unique_ptr<Entry>& entry) {
    return entry->state != RequestState::kDenoising;
  });
}

}  // namespace sculpt
