#include "model/generation.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace sculpt {

absl::Status ValidateGenerationParams(const GenerationParams& params, const ModelConfig& config,
                                      std::span<const int32_t> prompt) {
  const auto invalid = [](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat(parts...));
  };
  if (params.gen_length < 1) return invalid("gen_length must be >= 1, got ", params.gen_length);
  if (params.steps < 1) return invalid("steps must be >= 1, got ", params.steps);
  if (params.block_length < 1) {
    return invalid("block_length must be >= 1, got ", params.block_length);
  }
  if (params.gen_length % params.block_length != 0) {
    return invalid("block_length (", params.block_length, ") must divide gen_length (",
                   params.gen_length, ")");
  }
  const int num_blocks = params.gen_length / params.block_length;
  if (params.steps % num_blocks != 0) {
    return invalid("steps (", params.steps, ") must be a multiple of the number of blocks (",
                   num_blocks, " = gen_length / block_length)");
  }
  if (!std::isfinite(params.temperature) || params.temperature < 0.0) {
    return invalid("temperature must be a finite number >= 0, got ", params.temperature);
  }
  if (!std::isfinite(params.cfg_scale) || params.cfg_scale < 0.0) {
    return invalid("cfg_scale must be a finite number >= 0, got ", params.cfg_scale);
  }
  const int64_t total = static_cast<int64_t>(prompt.size()) + params.gen_length;
  if (total > config.max_sequence_length) {
    return invalid("prompt length (", prompt.size(), ") + gen_length (", params.gen_length,
                   ") exceeds the model's max_sequence_length (", config.max_sequence_length, ")");
  }
  for (size_t i = 0; i < prompt.size(); ++i) {
    if (prompt[i] < 0 || prompt[i] >= config.embedding_size) {
      return invalid("prompt token ", i, " has id ", prompt[i], ", outside the vocabulary [0, ",
                     config.embedding_size, ")");
    }
  }
  return absl::OkStatus();
}

std::vector<int> NumTransferTokens(int masked, int steps) {
  std::vector<int> counts(steps, masked / steps);
  for (int i = 0; i < masked % steps; ++i) ++counts[i];
  return counts;
}

absl::StatusOr<Generation> Generation::Create(std::span<const int32_t> prompt,
                                              const GenerationParams& params,
                                              const ModelConfig& config) {
  SCULPT_RETURN_IF_ERROR(ValidateGenerationParams(params, config, prompt));
  Generation generation;
  generation.params_ = params;
  generation.mask_id_ = config.mask_token_id;
  generation.prompt_length_ = static_cast<int>(prompt.size());
  generation.canvas_.assign(prompt.begin(), prompt.end());
  generation.canvas_.resize(prompt.size() + params.gen_length, config.mask_token_id);
  generation.prompt_mask_.resize(generation.canvas_.size());
  for (size_t i = 0; i < generation.canvas_.size(); ++i) {
    generation.prompt_mask_[i] = generation.canvas_[i] != config.mask_token_id;
  }
  generation.num_blocks_ = params.gen_length / params.block_length;
  generation.steps_per_block_ = params.steps / generation.num_blocks_;
  generation.StartBlock();
  return generation;
}

std::vector<int32_t> Generation::UnconditionalCanvas() const {
  std::vector<int32_t> unconditional = canvas_;
  for (size_t i = 0; i < unconditional.size(); ++i) {
    if (prompt_mask_[i]) unconditional[i] = mask_id_;
  }
  return unconditional;
}

void Generation::StartBlock() {
  step_in_block_ = 0;
  if (finished()) {
    candidates_.clear();
    return;
  }
  const int begin = prompt_length_ + block_ * params_.block_length;
  const int masked = static_cast<int>(std::count(
      canvas_.begin() + begin, canvas_.begin() + begin + params_.block_length, mask_id_));
  transfer_counts_ = NumTransferTokens(masked, steps_per_block_);
  UpdateCandidates();
}

void Generation::UpdateCandidates() {
  candidates_.clear();
  const int block_end = prompt_length_ + (block_ + 1) * params_.block_length;
  for (int32_t position = 0; position < block_end; ++position) {
    if (canvas_[position] == mask_id_) candidates_.push_back(position);
  }
}

void Generation::Commit(std::span<const int32_t> tokens, std::span<const double> confidences) {
  SCULPT_CHECK(!finished());
  SCULPT_CHECK(tokens.size() == candidates_.size() && confidences.size() == candidates_.size());
  std::vector<double> scores(candidates_.size());
  GetRemaskingPolicy(params_.remasking)
      .Score({params_.seed, global_step()}, candidates_, confidences, scores);

  // Highest score first; equal scores commit the earlier position first.
  std::vector<size_t> order(candidates_.size());
  std::iota(order.begin(), order.end(), 0);
  const auto count = static_cast<size_t>(
      std::min<int>(transfer_counts_[step_in_block_], static_cast<int>(order.size())));
  std::partial_sort(order.begin(), order.begin() + count, order.end(), [&](size_t a, size_t b) {
    if (scores[a] != scores[b]) return scores[a] > scores[b];
    return candidates_[a] < candidates_[b];
  });
  for (size_t i = 0; i < count; ++i) canvas_[candidates_[order[i]]] = tokens[order[i]];

  ++steps_run_;
  if (++step_in_block_ == steps_per_block_) {
    ++block_;
    StartBlock();
  } else {
    UpdateCandidates();
  }
}

}  // namespace sculpt
