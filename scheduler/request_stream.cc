// Outbox with draft coalescing; see request_stream.h.
#include "scheduler/request_stream.h"

namespace sculpt {
namespace {

void MergeDraft(DraftEvent& into, DraftEvent&& newer) {
  into.step = newer.step;
  into.revision = newer.revision;
  into.block = newer.block;
  into.masks_left = newer.masks_left;
  into.planned_steps = newer.planned_steps;
  into.committed.merge(newer.committed);
  // merge() leaves keys already present in `into` behind in `newer`; the newer token wins
  // (a position is committed once, but be exact anyway).
  for (auto& [position, token] : newer.committed) into.committed[position] = token;
  for (auto& [position, record] : newer.logprobs) into.logprobs[position] = std::move(record);
}

}  // namespace

void RequestStream::Enqueue(StreamEvent event) {
  if (auto* draft = std::get_if<DraftEvent>(&event);
      draft != nullptr && !outbox_.empty() && std::holds_alternative<DraftEvent>(outbox_.back())) {
    MergeDraft(std::get<DraftEvent>(outbox_.back()), std::move(*draft));
    return;
  }
  outbox_.push_back(std::move(event));
}

void RequestStream::FlushHeldDraft() {
  if (!held_) return;
  Enqueue(std::move(*held_));
  held_.reset();
}

void RequestStream::PushAccepted(AcceptedEvent event) {
  {
    std::lock_guard lock(mutex_);
    outbox_.push_back(event);
  }
  Notify();
}

void RequestStream::PushDraft(DraftEvent event, bool last_step) {
  if (settings_.mode != StreamMode::kSteps) return;
  {
    std::lock_guard lock(mutex_);
    if (held_) {
      MergeDraft(*held_, std::move(event));
    } else {
      held_ = std::move(event);
    }
    const auto now = std::chrono::steady_clock::now();
    const bool nth = settings_.every_n_steps <= 1 || held_->step % settings_.every_n_steps == 0;
    const bool interval_passed =
        settings_.min_interval.count() == 0 || now - last_draft_time_ >= settings_.min_interval;
    if (!last_step && !(nth && interval_passed)) return;
    last_draft_time_ = now;
    FlushHeldDraft();
  }
  Notify();
}

void RequestStream::PushBlock(BlockEvent event) {
  if (settings_.mode == StreamMode::kFinalOnly) return;
  {
    std::lock_guard lock(mutex_);
    // A held-back draft stays held: every_n_steps and min_interval_ms are kept exactly, and
    // the block's own event carries its tokens.
    outbox_.push_back(std::move(event));
  }
  Notify();
}

void RequestStream::PushEdit(EditEvent event) {
  {
    std::lock_guard lock(mutex_);
    FlushHeldDraft();
    outbox_.push_back(std::move(event));
  }
  Notify();
}

void RequestStream::PushFinal(FinalEvent event) {
  {
    std::lock_guard lock(mutex_);
    FlushHeldDraft();
    outbox_.push_back(std::move(event));
  }
  Notify();
}

std::optional<StreamEvent> RequestStream::Pop() {
  std::lock_guard lock(mutex_);
  if (outbox_.empty()) return std::nullopt;
  StreamEvent event = std::move(outbox_.front());
  outbox_.pop_front();
  if (std::holds_alternative<FinalEvent>(event)) final_popped_ = true;
  return event;
}

bool RequestStream::done() const {
  std::lock_guard lock(mutex_);
  return final_popped_;
}

size_t RequestStream::pending() const {
  std::lock_guard lock(mutex_);
  return outbox_.size();
}

void RequestStream::SetListener(std::function<void()> listener) {
  std::lock_guard lock(listener_mutex_);
  listener_ = std::move(listener);
}

void RequestStream::Notify() {
  std::lock_guard lock(listener_mutex_);
  if (listener_) listener_();
}

}  // namespace sculpt
