// Interactive refinement: edits of a running generation's draft between steps (docs/refine.md).
#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "model/generation.h"

namespace sculpt {
namespace {

// Bans a generation may hold at once: each is checked at every candidate of every step.
constexpr size_t kMaxBans = 64;
// Steps a steps edit may ask for (as many as a canvas has positions, many times over).
constexpr int kMaxStepsLeft = 1 << 20;

// Where a canvas position lands after [begin, end) became `inserted` tokens: positions before
// stay, positions after move by the change in length, positions inside stay inside.
int32_t MovedPosition(int32_t position, int32_t begin, int32_t end, int32_t inserted) {
  if (position <= begin) return position;
  if (position >= end) return position + inserted - (end - begin);
  return begin + std::min(inserted, position - begin);
}

}  // namespace

std::string_view EditKindName(EditKind kind) {
  switch (kind) {
    case EditKind::kPin:
      return "pin";
    case EditKind::kRemask:
      return "remask";
    case EditKind::kReplace:
      return "replace";
    case EditKind::kBan:
      return "ban";
    case EditKind::kLiftBan:
      return "lift_ban";
    case EditKind::kSetOptions:
      return "set";
    case EditKind::kPause:
      return "pause";
    case EditKind::kResume:
      return "resume";
    case EditKind::kFinish:
      return "finish";
  }
  return "edit";
}

absl::Status Generation::CheckTokens(std::span<const int32_t> tokens, bool masks_allowed) const {
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= vocab_size_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "token ", i, " has id ", tokens[i], ", outside the vocabulary [0, ", vocab_size_, ")"));
    }
    if (!masks_allowed && tokens[i] == mask_id_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "token ", i, " is the mask token: use remask to turn positions back into masks"));
    }
  }
  return absl::OkStatus();
}

absl::Status Generation::CheckEditSpan(const DraftEdit& edit, int32_t begin, int32_t end) const {
  if (!edit.revision) return absl::OkStatus();
  const uint64_t base = *edit.revision;
  if (base > revision_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "revision ", base, " is ahead of the draft (now at revision ", revision_, ")"));
  }
  // A ban does not depend on what the span held: it applies to whatever is there now.
  if (edit.kind == EditKind::kBan) return absl::OkStatus();
  if (base < layout_revision_) {
    return absl::AbortedError(
        absl::StrCat("the draft's positions moved at revision ", layout_revision_,
                     " (a replace of another length), after revision ", base,
                     " this edit was made against; make it again against the current draft"));
  }
  for (int32_t position = begin; position < end; ++position) {
    if (changed_at_[position] > base) {
      return absl::AbortedError(
          absl::StrCat("answer position ", position - region_start_, " changed at revision ",
                       changed_at_[position], ", after revision ", base,
                       " this edit was made against; make it again against the current draft"));
    }
  }
  return absl::OkStatus();
}

void Generation::MarkChanged(int32_t begin, int32_t end) {
  for (int32_t position = begin; position < end; ++position) changed_at_[position] = revision_;
}

void Generation::Splice(int32_t begin, int32_t end, std::span<const int32_t> tokens) {
  const auto inserted = static_cast<int32_t>(tokens.size());
  const auto at = [begin](auto& values) { return values.begin() + begin; };
  const auto to = [end](auto& values) { return values.begin() + end; };
  canvas_.erase(at(canvas_), to(canvas_));
  canvas_.insert(at(canvas_), tokens.begin(), tokens.end());
  given_.erase(at(given_), to(given_));
  given_.insert(at(given_), inserted, false);
  pinned_.erase(at(pinned_), to(pinned_));
  pinned_.insert(at(pinned_), inserted, false);
  changed_at_.erase(at(changed_at_), to(changed_at_));
  changed_at_.insert(at(changed_at_), inserted, revision_);
  if (!logprobs_.empty()) {
    logprobs_.erase(at(logprobs_), to(logprobs_));
    logprobs_.insert(at(logprobs_), inserted, std::nullopt);
  }
  for (int32_t i = 0; i < inserted; ++i) pinned_[begin + i] = tokens[i] != mask_id_;
  if (inserted != end - begin) {
    for (int32_t& block_end : block_ends_) {
      block_end = MovedPosition(block_end, begin, end, inserted);
    }
    for (Ban& ban : bans_) {
      ban.begin = MovedPosition(ban.begin, begin, end, inserted);
      ban.end = MovedPosition(ban.end, begin, end, inserted);
    }
    layout_revision_ = revision_;
    answer_end_ = static_cast<int>(canvas_.size());
    params_.gen_length = static_cast<int>(canvas_.size()) - region_start_;
  }
}

void Generation::Replan() {
  edited_ = true;
  CheckStops();
  const auto size = static_cast<int>(canvas_.size());
  if (!finished_ && CountMasks(region_start_, size) == 0) finished_ = true;
  if (finished_) {
    candidates_.clear();
    candidate_runs_.clear();
    block_ = num_blocks_;
    kv_cache_.reset();
    return;
  }
  if (!policy_->fixed_steps()) planned_steps_ = steps_run_ + CountMasks(region_start_, size);
  if (CountMasks(region_start_, block_end()) == 0) {
    // The current block (and everything before it) is committed: on to the next with masks.
    ++block_;
    StartBlock();
    return;
  }
  block_steps_ = std::max(1, block_steps_ - step_in_block_);
  step_in_block_ = 0;  // the next step forwards the whole canvas (and refills a KV cache)
  block_masks_at_start_ = CountMasks(region_start_, block_end());
  UpdateCandidates();
}

absl::Status Generation::ApplySetOptions(const DraftEdit& edit) {
  const auto invalid = [](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat(parts...));
  };
  if (!edit.steps && !edit.confidence_threshold && !edit.temperature) {
    return invalid("set changes nothing: give steps, confidence_threshold or temperature");
  }
  const int blocks_left = num_blocks_ - block_;
  if (edit.steps) {
    if (!policy_->fixed_steps()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the ", std::string(RemaskingName(params_.remasking)),
                       " policy decides how many steps it takes; steps cannot be set"));
    }
    if (*edit.steps < blocks_left || *edit.steps > kMaxStepsLeft) {
      return invalid("steps (", *edit.steps, ") must be in [", blocks_left, " (the blocks left), ",
                     kMaxStepsLeft, "]");
    }
  }
  if (edit.confidence_threshold &&
      (!std::isfinite(*edit.confidence_threshold) || *edit.confidence_threshold < 0.0 ||
       *edit.confidence_threshold > 1.0)) {
    return invalid("confidence_threshold must be in [0, 1], got ", *edit.confidence_threshold);
  }
  if (edit.temperature && (!std::isfinite(*edit.temperature) || *edit.temperature < 0.0)) {
    return invalid("temperature must be a finite number >= 0, got ", *edit.temperature);
  }
  if (edit.confidence_threshold) params_.confidence_threshold = *edit.confidence_threshold;
  if (edit.temperature) params_.temperature = *edit.temperature;
  if (edit.steps) {
    // Spread over the blocks left, the current one taking the remainder.
    steps_per_block_ = *edit.steps / blocks_left;
    block_steps_ = steps_per_block_ + *edit.steps % blocks_left;
    step_in_block_ = 0;
    block_masks_at_start_ = CountMasks(edited_ ? region_start_ : block_begin(), block_end());
    planned_steps_ = steps_run_ + *edit.steps;
    UpdateCandidates();
  }
  return absl::OkStatus();
}

absl::StatusOr<EditOutcome> Generation::ApplyEdit(const DraftEdit& edit) {
  if (finished_) {
    return absl::FailedPreconditionError(
        absl::StrCat("the generation finished at step ", steps_run_, " before this edit applied"));
  }
  const auto region_length = static_cast<int32_t>(canvas_.size()) - region_start_;
  EditOutcome outcome;
  const auto done = [&]() {
    outcome.step = global_step();
    outcome.revision = revision_;
    outcome.gen_length = static_cast<int32_t>(canvas_.size()) - region_start_;
    return outcome;
  };
  switch (edit.kind) {
    case EditKind::kPause:
    case EditKind::kResume:
      return absl::InternalError("pause and resume are applied by the scheduler");
    case EditKind::kSetOptions:
      SCULPT_RETURN_IF_ERROR(ApplySetOptions(edit));
      return done();
    case EditKind::kFinish:
      finish_requested_ = true;
      UpdateCandidates();
      return done();
    case EditKind::kLiftBan: {
      const auto ban = std::find_if(bans_.begin(), bans_.end(),
                                    [&](const Ban& held) { return held.id == edit.ban_id; });
      if (ban == bans_.end()) {
        std::vector<std::string> ids;
        for (const Ban& held : bans_) ids.push_back(held.id);
        return absl::NotFoundError(
            absl::StrCat("no ban is named \"", edit.ban_id,
                         "\" (bans: ", ids.empty() ? "none" : absl::StrJoin(ids, ", "), ")"));
      }
      bans_.erase(ban);
      UpdateCandidates();
      return done();
    }
    case EditKind::kPin:
    case EditKind::kRemask:
    case EditKind::kReplace:
    case EditKind::kBan:
      break;
  }

  // A span of the answer.
  const int32_t length =
      edit.kind == EditKind::kPin ? static_cast<int32_t>(edit.tokens.size()) : edit.length;
  if (edit.position < 0 || edit.position > region_length ||
      (edit.position == region_length && edit.kind != EditKind::kReplace)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "position ", edit.position, " is outside the answer [0, ", region_length, ")"));
  }
  if (length < 0 || length > region_length - edit.position) {
    return absl::InvalidArgumentError(
        absl::StrCat("the span [", edit.position, ", ", int64_t{edit.position} + length,
                     ") ends past the answer's ", region_length, " tokens"));
  }
  const int32_t begin = region_start_ + edit.position;
  const int32_t end = begin + length;
  switch (edit.kind) {
    case EditKind::kPin:
      if (edit.tokens.empty()) return absl::InvalidArgumentError("pin needs at least one token");
      SCULPT_RETURN_IF_ERROR(CheckTokens(edit.tokens, /*masks_allowed=*/false));
      break;
    case EditKind::kRemask:
      if (length < 1) return absl::InvalidArgumentError("remask needs a length of at least 1");
      break;
    case EditKind::kReplace: {
      if (length == 0 && edit.tokens.empty()) {
        return absl::InvalidArgumentError("replace needs a length or tokens (it changes nothing)");
      }
      SCULPT_RETURN_IF_ERROR(CheckTokens(edit.tokens, /*masks_allowed=*/true));
      const int64_t new_size =
          static_cast<int64_t>(canvas_.size()) - length + static_cast<int64_t>(edit.tokens.size());
      if (new_size - region_start_ < 1) {
        return absl::InvalidArgumentError("replace would leave the answer empty");
      }
      if (new_size > max_sequence_length_) {
        return absl::InvalidArgumentError(absl::StrCat("replace would make the canvas ", new_size,
                                                       " tokens, past the model's context of ",
                                                       max_sequence_length_));
      }
      if (params_.cache != KvCacheMode::kNone && new_size > static_cast<int64_t>(canvas_.size())) {
        return absl::FailedPreconditionError(
            absl::StrCat("replace cannot grow the canvas of a generation with cache ",
                         std::string(KvCacheModeName(params_.cache)),
                         " (its KV cache rows were reserved for its length): replace by at most ",
                         length, " tokens, or use cache none"));
      }
      break;
    }
    case EditKind::kBan: {
      if (length < 1) return absl::InvalidArgumentError("ban needs a length of at least 1");
      if (edit.tokens.empty()) return absl::InvalidArgumentError("ban needs tokens to ban");
      SCULPT_RETURN_IF_ERROR(CheckTokens(edit.tokens, /*masks_allowed=*/false));
      if (edit.id.empty()) return absl::InvalidArgumentError("a ban needs an id to lift it by");
      if (std::any_of(bans_.begin(), bans_.end(), [&](const Ban& b) { return b.id == edit.id; })) {
        return absl::AlreadyExistsError(
            absl::StrCat("a ban named \"", edit.id, "\" is already in force"));
      }
      if (bans_.size() >= kMaxBans) {
        return absl::ResourceExhaustedError(
            absl::StrCat("a generation holds at most ", kMaxBans, " bans at once; lift one first"));
      }
      for (int32_t position = begin; position < end; ++position) {
        if (pinned_[position] && std::find(edit.tokens.begin(), edit.tokens.end(),
                                           canvas_[position]) != edit.tokens.end()) {
          return absl::FailedPreconditionError(absl::StrCat(
              "answer position ", position - region_start_, " is pinned to banned token ",
              canvas_[position], ": remask or replace it first"));
        }
      }
      break;
    }
    default:
      break;
  }
  SCULPT_RETURN_IF_ERROR(CheckEditSpan(edit, begin, end));

  ++revision_;
  int32_t changed_end = end;
  switch (edit.kind) {
    case EditKind::kPin:
      for (int32_t i = 0; i < length; ++i) {
        canvas_[begin + i] = edit.tokens[i];
        pinned_[begin + i] = true;
        if (!logprobs_.empty()) logprobs_[begin + i].reset();
      }
      MarkChanged(begin, end);
      break;
    case EditKind::kRemask:
      for (int32_t position = begin; position < end; ++position) {
        canvas_[position] = mask_id_;
        pinned_[position] = false;
        given_[position] = false;
        if (!logprobs_.empty()) logprobs_[position].reset();
      }
      MarkChanged(begin, end);
      break;
    case EditKind::kReplace:
      Splice(begin, end, edit.tokens);
      changed_end = begin + static_cast<int32_t>(edit.tokens.size());
      break;
    case EditKind::kBan: {
      Ban& ban = bans_.emplace_back();
      ban.id = edit.id;
      ban.begin = begin;
      ban.end = end;
      ban.tokens = edit.tokens;
      std::sort(ban.tokens.begin(), ban.tokens.end());
      ban.tokens.erase(std::unique(ban.tokens.begin(), ban.tokens.end()), ban.tokens.end());
      // What the span holds of the banned tokens now goes back to masks.
      for (int32_t position = begin; position < end; ++position) {
        if (std::binary_search(ban.tokens.begin(), ban.tokens.end(), canvas_[position])) {
          canvas_[position] = mask_id_;
          given_[position] = false;
          if (!logprobs_.empty()) logprobs_[position].reset();
          changed_at_[position] = revision_;
        }
      }
      break;
    }
    default:
      break;
  }
  outcome.position = edit.position;
  outcome.removed = length;
  outcome.inserted.assign(canvas_.begin() + begin, canvas_.begin() + changed_end);
  Replan();
  return done();
}

}  // namespace sculpt
