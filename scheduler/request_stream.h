// The outbox between the engine thread and one request's client: the engine pushes events and
// never blocks; the front end pops them as fast as its client reads. Drafts that pile up
// behind a slow reader are merged (the newest state wins, no commit is lost); Accepted,
// BlockCommitted and Final are never dropped.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "model/generation.h"

namespace sculpt {

enum class StreamMode { kFinalOnly, kBlocks, kSteps };

struct StreamSettings {
  StreamMode mode = StreamMode::kSteps;
  int every_n_steps = 1;  // drafts after every n-th step only (the last step always)
  std::chrono::milliseconds min_interval{0};
};

struct AcceptedEvent {
  int queue_position = 0;
};

// Commits since the previous draft delivered, positions relative to the answer region.
struct DraftEvent {
  uint32_t step = 0;      // steps run, counting this one
  uint64_t revision = 0;  // the draft's revision after it (Generation::revision)
  uint32_t block = 0;
  int masks_left = 0;
  int planned_steps = 0;  // Generation::planned_steps (edits and dynamic policies change it)
  // answer position → token (the mask token where a position went back to a mask)
  std::map<int32_t, int32_t> committed;
  // With GenerationParams::logprobs >= 0: answer position → the committed token's record.
  std::map<int32_t, TokenLogprob> logprobs;
};

struct BlockEvent {
  uint32_t block = 0;
  uint32_t step = 0;
  int32_t start = 0;  // answer position of the block's first token
  std::vector<int32_t> tokens;
};

struct FinalEvent {
  // The generation's result (Generation::Result), its finish reason set by the scheduler when
  // the request ended from outside (cancelled, deadline, failed).
  GenerationResult result;
  absl::Status status;  // not OK only with kFailed or a refused request
  double queue_ms = 0;
  double first_step_ms = 0;
  double total_ms = 0;
};

// A refine session's edit, applied (outcome) or refused (status).
struct EditEvent {
  std::string edit_id;
  EditKind kind = EditKind::kRemask;
  absl::Status status;
  EditOutcome outcome;  // when status is OK
};

using StreamEvent = std::variant<AcceptedEvent, DraftEvent, BlockEvent, FinalEvent, EditEvent>;

class RequestStream {
 public:
  explicit RequestStream(StreamSettings settings) : settings_(settings) {}

  // Engine side. Drafts are filtered by the settings (skipped ones are carried by the next
  // draft sent) and merged into a draft still waiting in the outbox.
  void PushAccepted(AcceptedEvent event);
  void PushDraft(DraftEvent event, bool last_step);
  void PushBlock(BlockEvent event);
  // Any thread. Commits held back by every_n_steps go out first, so a client applies them in
  // the positions they were made in before an edit that moves positions.
  void PushEdit(EditEvent event);
  void PushFinal(FinalEvent event);

  // Front-end side: the next event, if any.
  std::optional<StreamEvent> Pop();
  // True once the Final event has been popped.
  bool done() const;

  // Called after every push, outside the outbox lock, from the engine thread; must not block.
  // SetListener(nullptr) returns only when no call is in progress, so the listener's owner may
  // go away after it.
  void SetListener(std::function<void()> listener);

  // Events now waiting (tests and metrics).
  size_t pending() const;

 private:
  void Enqueue(StreamEvent event);
  void Notify();
  // Moves the held-back draft (commits of filtered steps) into the outbox.
  void FlushHeldDraft();

  const StreamSettings settings_;
  mutable std::mutex mutex_;
  std::deque<StreamEvent> outbox_;
  std::optional<DraftEvent> held_;  // commits not yet sent because of every_n / interval
  std::chrono::steady_clock::time_point last_draft_time_{};
  bool final_popped_ = false;

  std::mutex listener_mutex_;
  std::function<void()> listener_;
};

}  // namespace sculpt
