#include "model/denoiser.h"

#include "common/status.h"

namespace sculpt {

absl::StatusOr<int> RunDenoisingStep(Transformer& model, std::span<Generation* const> generations) {
  // Unconditional canvases must outlive the forward that reads them.
  std::vector<std::vector<int32_t>> unconditional;
  unconditional.reserve(generations.size());
  std::vector<SequenceInput> batch;
  std::vector<Generation*> active;
  for (Generation* generation : generations) {
    if (generation->finished()) continue;
    active.push_back(generation);
    batch.push_back({generation->canvas(), generation->candidate_positions()});
    if (generation->guided()) {
      unconditional.push_back(generation->UnconditionalCanvas());
      batch.push_back({unconditional.back(), generation->candidate_positions()});
    }
  }
  if (batch.empty()) return 0;
  SCULPT_ASSIGN_OR_RETURN(TensorView logits, model.Forward(batch));

  const int64_t vocab = logits.cols;
  const auto rows = [&](int64_t first_row, int64_t count) {
    TensorView view = logits;
    view.data = logits.f32() + first_row * vocab;
    view.rows = count;
    return view;
  };
  int64_t row = 0;
  std::vector<int32_t> tokens;
  std::vector<double> confidences;
  for (Generation* generation : active) {
    const auto& positions = generation->candidate_positions();
    const auto count = static_cast<int64_t>(positions.size());
    ChooseTokensParams choose;
    choose.logits = rows(row, count);
    row += count;
    if (generation->guided()) {
      choose.uncond_logits = rows(row, count);
      row += count;
    }
    choose.cfg_scale = generation->params().cfg_scale;
    choose.temperature = generation->params().temperature;
    choose.seed = generation->params().seed;
    choose.step = generation->global_step();
    choose.positions = positions;
    tokens.resize(count);
    confidences.resize(count);
    choose.tokens = tokens;
    choose.confidences = confidences;
    SCULPT_RETURN_IF_ERROR(model.backend().ChooseTokens(choose));
    generation->Commit(tokens, confidences);
  }
  return static_cast<int>(batch.size());
}

absl::StatusOr<GenerationResult> Generate(Transformer& model, std::span<const int32_t> prompt,
                                          const GenerationParams& params) {
  SCULPT_ASSIGN_OR_RETURN(Generation generation,
                          Generation::Create(prompt, params, model.config()));
  GenerationResult result;
  Generation* const batch[] = {&generation};
  while (!generation.finished()) {
    SCULPT_ASSIGN_OR_RETURN(int forwarded, RunDenoisingStep(model, batch));
    result.forward_passes += forwarded;
  }
  result.token_ids.assign(generation.generated().begin(), generation.generated().end());
  result.steps = generation.steps_run();
  return result;
}

}  // namespace sculpt
