#include "model/denoiser.h"

#include <algorithm>

#include "common/status.h"

namespace sculpt {

absl::StatusOr<int> RunDenoisingStep(Transformer& model, std::span<Generation* const> generations) {
  const bool shifted = model.config().shifted_predictions();
  // Canvases and logit rows must outlive the forward that reads them.
  std::vector<std::vector<int32_t>> unconditional;
  std::vector<std::vector<int32_t>> logit_rows;
  unconditional.reserve(generations.size());
  logit_rows.reserve(generations.size());
  std::vector<SequenceInput> batch;
  std::vector<Generation*> active;
  for (Generation* generation : generations) {
    if (generation->finished()) continue;
    active.push_back(generation);
    // Dream reads the prediction for position p from the logits of p - 1 (0 keeps its own).
    std::vector<int32_t> rows = generation->candidate_positions();
    if (shifted) {
      for (int32_t& row : rows) row = std::max(row - 1, 0);
    }
    logit_rows.push_back(std::move(rows));
    batch.push_back({generation->canvas(), logit_rows.back()});
    if (generation->guided()) {
      unconditional.push_back(generation->UnconditionalCanvas());
      batch.push_back({unconditional.back(), logit_rows.back()});
    }
  }
  if (batch.empty()) return 0;
  SCULPT_ASSIGN_OR_RETURN(TensorView logits, model.Forward(batch));

  // One token choice for every generation of the step, each with its own settings.
  std::vector<TokenChoiceGroup> groups;
  std::vector<std::vector<int32_t>> tokens(active.size());
  std::vector<std::vector<double>> confidences(active.size());
  int64_t row = 0;
  for (size_t g = 0; g < active.size(); ++g) {
    const Generation& generation = *active[g];
    const GenerationParams& params = generation.params();
    const auto& positions = generation.candidate_positions();
    const auto count = static_cast<int64_t>(positions.size());
    tokens[g].resize(count);
    confidences[g].resize(count);
    TokenChoiceGroup& group = groups.emplace_back();
    group.first_row = row;
    row += count;
    if (generation.guided()) {
      group.uncond_first_row = row;
      row += count;
    }
    group.cfg_scale = params.cfg_scale;
    group.temperature = params.temperature;
    group.top_p = params.top_p;
    group.top_k = params.top_k;
    group.style = generation.policy().style();
    group.confidence = generation.policy().confidence_kind();
    group.suppressed_tokens = generation.suppressed_tokens();
    group.seed = params.seed;
    group.step = generation.global_step();
    group.positions = positions;
    group.tokens = tokens[g];
    group.confidences = confidences[g];
  }
  SCULPT_RETURN_IF_ERROR(model.backend().ChooseTokens({logits, groups}));
  for (size_t g = 0; g < active.size(); ++g) active[g]->Commit(tokens[g], confidences[g]);
  return static_cast<int>(batch.size());
}

absl::StatusOr<GenerationResult> RunToCompletion(Transformer& model, Generation& generation,
                                                 const StepObserver& observer) {
  GenerationResult result;
  Generation* const batch[] = {&generation};
  while (!generation.finished()) {
    SCULPT_ASSIGN_OR_RETURN(int forwarded, RunDenoisingStep(model, batch));
    result.forward_passes += forwarded;
    if (observer) observer(generation.last_event(), generation.canvas());
  }
  result.token_ids.assign(generation.answer().begin(), generation.answer().end());
  result.canvas.assign(generation.full_canvas().begin(), generation.full_canvas().end());
  result.finish_reason = generation.finish_reason();
  if (generation.stop_match()) result.stop_text = generation.stop_match()->text;
  result.steps = generation.steps_run();
  return result;
}

absl::StatusOr<GenerationResult> Generate(Transformer& model, std::span<const int32_t> prompt,
                                          const GenerationParams& params,
                                          const StepObserver& observer) {
  SCULPT_ASSIGN_OR_RETURN(Generation generation,
                          Generation::Create(prompt, params, model.config()));
  return RunToCompletion(model, generation, observer);
}

}  // namespace sculpt
