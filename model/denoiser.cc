#include "model/denoiser.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace sculpt {

WorkspaceLimits WorkspaceFor(std::span<Generation* const> generations) {
  WorkspaceLimits limits;
  for (const Generation* generation : generations) {
    const int copies = generation->guided() ? 2 : 1;
    const auto canvas = static_cast<int64_t>(generation->canvas().size());
    limits.tokens += copies * canvas;
    limits.sequences += copies;
  }
  // Candidates are canvas positions, so a step never needs more logit rows than tokens.
  limits.logit_rows = limits.tokens;
  return limits;
}

absl::StatusOr<int> Denoiser::Step(std::span<Generation* const> generations) {
  const bool shifted = model_.config().shifted_predictions();
  batch_.clear();
  active_.clear();
  for (Generation* generation : generations) {
    if (!generation->finished()) active_.push_back(generation);
  }
  if (slots_.size() < active_.size()) slots_.resize(active_.size());
  // Canvases and logit rows live in the slots, which outlive the forward that reads them.
  for (size_t g = 0; g < active_.size(); ++g) {
    const Generation& generation = *active_[g];
    Slot& slot = slots_[g];
    // Dream reads the prediction for position p from the logits of p - 1 (0 keeps its own).
    // The candidates' rows, then those of the positions edit_threshold predicts.
    const std::vector<int32_t>& candidates = generation.candidate_positions();
    const std::vector<int32_t>& predicted = generation.prediction_positions();
    slot.positions.assign(candidates.begin(), candidates.end());
    slot.positions.insert(slot.positions.end(), predicted.begin(), predicted.end());
    slot.logit_rows.assign(slot.positions.begin(), slot.positions.end());
    if (shifted) {
      for (int32_t& row : slot.logit_rows) row = std::max(row - 1, 0);
    }
    SequenceInput input{generation.canvas(), slot.logit_rows};
    input.cache = generation.next_cache_use();
    if (input.cache != KvCacheUse::kNone) {
      if (!generation.holds_kv_cache()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "a generation with cache ", std::string(KvCacheModeName(generation.params().cache)),
            " holds no KV cache rows"));
      }
      input.kv_rows = generation.kv_rows(0);
      const auto [first, last] = generation.cache_window();
      // Dream's prediction for the window's first position is the row before it.
      input.window_begin = shifted ? std::max(first - 1, 0) : first;
      input.window_end = last;
    }
    batch_.push_back(input);
    if (generation.guided()) {
      generation.UnconditionalCanvas(slot.unconditional);
      input.tokens = slot.unconditional;
      if (input.cache != KvCacheUse::kNone) input.kv_rows = generation.kv_rows(1);
      batch_.push_back(input);
    }
  }
  if (batch_.empty()) return 0;
  SCULPT_ASSIGN_OR_RETURN(TensorView logits, model_.Forward(batch_));

  // One token choice for every generation of the step, each with its own settings.
  groups_.clear();
  int64_t row = 0;
  for (size_t g = 0; g < active_.size(); ++g) {
    const Generation& generation = *active_[g];
    const GenerationParams& params = generation.params();
    Slot& slot = slots_[g];
    const std::span<const int32_t> positions = slot.positions;
    const auto count = static_cast<int64_t>(positions.size());
    const size_t candidates = generation.candidate_positions().size();
    slot.tokens.resize(count);
    slot.confidences.resize(count);
    TokenChoiceGroup group;
    const int64_t first_row = row;
    row += count;
    int64_t uncond_first_row = -1;
    if (generation.guided()) {
      uncond_first_row = row;
      row += count;
    }
    group.cfg_scale = params.cfg_scale;
    group.temperature = params.temperature;
    group.top_p = params.top_p;
    group.top_k = params.top_k;
    group.style = generation.policy().style();
    group.confidence = generation.policy().confidence_kind();
    group.seed = params.seed;
    group.step = generation.global_step();
    const int listed = std::max(params.logprobs, 0);
    if (generation.needs_token_logprobs()) {
      slot.logprobs.resize(count);
      slot.top_ids.resize(count * listed);
      slot.top_values.resize(count * listed);
      group.top_logprobs = listed;
    }
    // The predictions edit_threshold reads: greedy, unfiltered, with the probability as the
    // confidence.
    TokenChoiceGroup prediction = group;
    prediction.temperature = 0.0;
    prediction.top_p = 1.0;
    prediction.top_k = 0;
    prediction.style = TokenChoiceStyle::kLLaDA;
    prediction.confidence = ConfidenceKind::kProbability;
    // One group per run of positions under the same suppressed tokens (bans); a row's result
    // depends only on its own logits and settings, so the split changes no token.
    const auto add_runs = [&](const TokenChoiceGroup& settings,
                              const std::vector<Generation::CandidateRun>& runs, size_t base) {
      for (const Generation::CandidateRun& run : runs) {
        TokenChoiceGroup& part = groups_.emplace_back(settings);
        const size_t first = base + run.first;
        const auto offset = static_cast<int64_t>(first);
        part.first_row = first_row + offset;
        if (uncond_first_row >= 0) part.uncond_first_row = uncond_first_row + offset;
        part.suppressed_tokens = run.suppressed;
        part.positions = positions.subspan(first, run.count);
        part.tokens = std::span<int32_t>(slot.tokens).subspan(first, run.count);
        part.confidences = std::span<double>(slot.confidences).subspan(first, run.count);
        if (generation.needs_token_logprobs()) {
          part.logprobs = std::span<double>(slot.logprobs).subspan(first, run.count);
          part.top_ids =
              std::span<int32_t>(slot.top_ids).subspan(first * listed, run.count * listed);
          part.top_values =
              std::span<double>(slot.top_values).subspan(first * listed, run.count * listed);
        }
      }
    };
    add_runs(group, generation.candidate_runs(), 0);
    add_runs(prediction, generation.prediction_runs(), candidates);
  }
  SCULPT_RETURN_IF_ERROR(model_.backend().ChooseTokens({logits, groups_}));
  for (size_t g = 0; g < active_.size(); ++g) {
    const Slot& slot = slots_[g];
    const CandidateLogprobs logprobs{slot.logprobs, slot.top_ids, slot.top_values};
    active_[g]->Commit(slot.tokens, slot.confidences,
                       active_[g]->needs_token_logprobs() ? &logprobs : nullptr);
  }
  return static_cast<int>(batch_.size());
}

absl::StatusOr<GenerationResult> RunToCompletion(Transformer& model, Generation& generation,
                                                 const StepObserver& observer) {
  Generation* const batch[] = {&generation};
  SCULPT_RETURN_IF_ERROR(model.Reserve(WorkspaceFor(batch)));
  // Alone on the model, the generation may have the whole arena (grown to its needs).
  const int32_t cache_rows = generation.kv_cache_rows_needed();
  std::optional<KvRowAllocator> arena;
  if (cache_rows > 0 && !generation.holds_kv_cache()) {
    if (model.kv_cache_rows() < cache_rows) {
      SCULPT_RETURN_IF_ERROR(model.ReserveKvCache(cache_rows));
    }
    arena.emplace(model.kv_cache_rows());
    generation.AttachKvCache(KvCacheLease(&*arena, *arena->Allocate(cache_rows)));
  }
  const absl::Status status = [&]() -> absl::Status {
    Denoiser denoiser(model);
    while (!generation.finished()) {
      SCULPT_RETURN_IF_ERROR(denoiser.Step(batch).status());
      if (observer) observer(generation.last_event(), generation.canvas());
    }
    return absl::OkStatus();
  }();
  if (arena) generation.ReleaseKvCache();  // before the allocator it leases from goes
  SCULPT_RETURN_IF_ERROR(status);
  return generation.Result();
}

absl::StatusOr<GenerationResult> Generate(Transformer& model, std::span<const int32_t> prompt,
                                          const GenerationParams& params,
                                          const StepObserver& observer) {
  SCULPT_ASSIGN_OR_RETURN(Generation generation,
                          Generation::Create(prompt, params, model.config()));
  return RunToCompletion(model, generation, observer);
}

}  // namespace sculpt
