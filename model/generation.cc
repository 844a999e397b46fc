#include "model/generation.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace sculpt {
namespace {

// A block of a policy with dynamic steps ends when its masks are gone; this caps it when a
// model keeps predicting the mask token (which leaves the position masked).
constexpr int kMaxDynamicStepsPerBlockLength = 4;

absl::Status CheckFinite(double value, double min_value, const char* name, bool inclusive = true) {
  if (!std::isfinite(value) || (inclusive ? value < min_value : value <= min_value)) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " must be a finite number ", inclusive ? ">= " : "> ", min_value, ", got ", value));
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength:
      return "length";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kDeadline:
      return "deadline";
    case FinishReason::kFailed:
      return "error";
    case FinishReason::kIdle:
      return "idle";
  }
  return "error";
}

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
  SCULPT_RETURN_IF_ERROR(CheckFinite(params.temperature, 0.0, "temperature"));
  SCULPT_RETURN_IF_ERROR(CheckFinite(params.cfg_scale, 0.0, "cfg_scale"));
  SCULPT_RETURN_IF_ERROR(CheckFinite(params.alg_temp, 0.0, "alg_temp"));
  SCULPT_RETURN_IF_ERROR(CheckFinite(params.factor, 0.0, "factor", /*inclusive=*/false));
  if (!std::isfinite(params.top_p) || params.top_p <= 0.0 || params.top_p > 1.0) {
    return invalid("top_p must be in (0, 1], got ", params.top_p);
  }
  if (params.top_k < 0) return invalid("top_k must be >= 0 (0 = off), got ", params.top_k);
  if (!std::isfinite(params.confidence_threshold) || params.confidence_threshold < 0.0 ||
      params.confidence_threshold > 1.0) {
    return invalid("confidence_threshold must be in [0, 1], got ", params.confidence_threshold);
  }
  if (params.logprobs < -1 || params.logprobs > kMaxTopLogprobs) {
    return invalid("logprobs must be in [0, ", kMaxTopLogprobs, "] alternatives (or off), got ",
                   params.logprobs);
  }
  for (int32_t id : params.stop_token_ids) {
    if (id < 0 || id >= config.embedding_size) {
      return invalid("stop token id ", id, " is outside the vocabulary [0, ", config.embedding_size,
                     ")");
    }
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

absl::StatusOr<Generation> Generation::Create(std::span<const int32_t> prompt,
                                              const GenerationParams& params,
                                              const ModelConfig& config) {
  SCULPT_RETURN_IF_ERROR(ValidateGenerationParams(params, config, prompt));
  std::vector<int32_t> canvas(prompt.begin(), prompt.end());
  canvas.resize(prompt.size() + params.gen_length, config.mask_token_id);
  return Start(std::move(canvas), static_cast<int>(prompt.size()), params, config);
}

absl::StatusOr<Generation> Generation::CreateInfill(std::span<const int32_t> canvas,
                                                    GenerationParams params,
                                                    const ModelConfig& config) {
  const auto masks = std::count(canvas.begin(), canvas.end(), config.mask_token_id);
  if (masks == 0) {
    return absl::InvalidArgumentError(
        "the infill template has no masked span to fill (use <|mask:N|> or the mask token)");
  }
  if (params.early_stop) {
    return absl::InvalidArgumentError("early_stop cannot be combined with infilling");
  }
  params.gen_length = static_cast<int>(canvas.size());
  if (params.block_length == 0) params.block_length = params.gen_length;
  if (params.steps == 0) params.steps = static_cast<int>(masks);
  // Validated as a generation with an empty prompt whose region is the canvas.
  SCULPT_RETURN_IF_ERROR(ValidateGenerationParams(params, config, {}));
  for (size_t i = 0; i < canvas.size(); ++i) {
    if (canvas[i] < 0 || canvas[i] >= config.embedding_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("template token ", i, " has id ", canvas[i], ", outside the vocabulary"));
    }
  }
  return Start(std::vector<int32_t>(canvas.begin(), canvas.end()), 0, params, config);
}

absl::StatusOr<Generation> Generation::Start(std::vector<int32_t> canvas, int region_start,
                                             const GenerationParams& params,
                                             const ModelConfig& config) {
  Generation generation;
  generation.params_ = params;
  if (generation.params_.stop_token_ids.empty()) {
    generation.params_.stop_token_ids = {config.eos_token_id};
  }
  generation.policy_ = &GetRemaskingPolicy(params.remasking);
  generation.mask_id_ = config.mask_token_id;
  generation.region_start_ = region_start;
  generation.canvas_ = std::move(canvas);
  generation.max_sequence_length_ = config.max_sequence_length;
  generation.vocab_size_ = config.embedding_size;
  generation.given_.resize(generation.canvas_.size());
  generation.pinned_.resize(generation.canvas_.size());
  generation.changed_at_.resize(generation.canvas_.size());
  for (size_t i = 0; i < generation.canvas_.size(); ++i) {
    generation.given_[i] = generation.canvas_[i] != config.mask_token_id;
  }
  if (params.logprobs >= 0) generation.logprobs_.resize(generation.canvas_.size());
  generation.answer_end_ = static_cast<int>(generation.canvas_.size());
  generation.num_blocks_ = params.gen_length / params.block_length;
  for (int block = 1; block <= generation.num_blocks_; ++block) {
    generation.block_ends_.push_back(region_start + block * params.block_length);
  }
  generation.steps_per_block_ = params.steps / generation.num_blocks_;
  generation.planned_steps_ =
      generation.policy_->fixed_steps()
          ? params.steps
          : static_cast<int>(std::count(generation.canvas_.begin(), generation.canvas_.end(),
                                        config.mask_token_id));
  generation.StartBlock();
  return generation;
}

std::span<const int32_t> Generation::suppressed_tokens() const {
  if (!params_.logits_eos_inf) return {};
  return params_.stop_token_ids;
}

void Generation::UnconditionalCanvas(std::vector<int32_t>& out) const {
  out.assign(canvas_.begin(), canvas_.end());
  for (size_t i = 0; i < out.size(); ++i) {
    if (given_[i]) out[i] = mask_id_;
  }
}

int Generation::CountMasks(int begin, int end) const {
  return static_cast<int>(std::count(canvas_.begin() + begin, canvas_.begin() + end, mask_id_));
}

void Generation::StartBlock() {
  step_in_block_ = 0;
  block_steps_ = steps_per_block_;
  // Blocks without masks (possible when infilling) need no steps at all; after an edit, a
  // block also runs for the masks an edit left in the blocks before it.
  while (block_ < num_blocks_ && CountMasks(block_begin(), block_end()) == 0 &&
         (!edited_ || CountMasks(region_start_, block_begin()) == 0)) {
    ++block_;
  }
  if (block_ >= num_blocks_) {
    finished_ = true;
    candidates_.clear();
    candidate_runs_.clear();
    return;
  }
  block_masks_at_start_ = CountMasks(edited_ ? region_start_ : block_begin(), block_end());
  UpdateCandidates();
}

int32_t Generation::kv_cache_rows_needed() const {
  if (params_.cache == KvCacheMode::kNone) return 0;
  return static_cast<int32_t>(canvas_.size()) * (guided() ? 2 : 1);
}

RowRange Generation::kv_rows(int copy) const {
  const auto length = static_cast<int32_t>(canvas_.size());
  return {kv_cache_.rows().first + copy * length, length};
}

KvCacheUse Generation::next_cache_use() const {
  if (params_.cache == KvCacheMode::kNone) return KvCacheUse::kNone;
  return step_in_block_ == 0 || finish_requested_ ? KvCacheUse::kFill : KvCacheUse::kWindow;
}

std::pair<int32_t, int32_t> Generation::cache_window() const {
  return {block_begin(), params_.cache == KvCacheMode::kPrefix
                             ? static_cast<int32_t>(canvas_.size())
                             : block_end()};
}

void Generation::UpdateCandidates() {
  candidates_.clear();
  candidate_runs_.clear();
  // A windowed step has predictions for its window only; masks an earlier block left (a model
  // that keeps predicting the mask token) wait for the next block's full forward. A finish
  // edit commits every mask of the canvas.
  const int32_t first = next_cache_use() == KvCacheUse::kWindow ? cache_window().first : 0;
  const int32_t last = finish_requested_ ? static_cast<int32_t>(canvas_.size()) : block_end();
  for (int32_t position = first; position < last; ++position) {
    if (canvas_[position] == mask_id_) candidates_.push_back(position);
  }
  // Runs of candidates under the same bans; without bans, one run.
  std::vector<const Ban*> covering, previous;
  for (size_t i = 0; i < candidates_.size(); ++i) {
    covering.clear();
    for (const Ban& ban : bans_) {
      if (candidates_[i] >= ban.begin && candidates_[i] < ban.end) covering.push_back(&ban);
    }
    if (i > 0 && covering == previous) {
      ++candidate_runs_.back().count;
      continue;
    }
    CandidateRun& run = candidate_runs_.emplace_back();
    run.first = i;
    run.count = 1;
    const std::span<const int32_t> always = suppressed_tokens();
    run.suppressed.assign(always.begin(), always.end());
    for (const Ban* ban : covering) {
      run.suppressed.insert(run.suppressed.end(), ban->tokens.begin(), ban->tokens.end());
    }
    std::sort(run.suppressed.begin(), run.suppressed.end());
    run.suppressed.erase(std::unique(run.suppressed.begin(), run.suppressed.end()),
                         run.suppressed.end());
    previous = covering;
  }
}

bool Generation::BlockDone() const {
  if (policy_->fixed_steps()) return step_in_block_ >= block_steps_;
  // After an edit, the block also waits for masks an edit left before it.
  const int from = edited_ ? region_start_ : block_begin();
  return CountMasks(from, block_end()) == 0 ||
         step_in_block_ >= kMaxDynamicStepsPerBlockLength *
                               std::max(block_end() - block_begin(), block_masks_at_start_);
}

void Generation::CheckStops() {
  const auto is_stop = [&](int32_t token) {
    return std::find(params_.stop_token_ids.begin(), params_.stop_token_ids.end(), token) !=
           params_.stop_token_ids.end();
  };
  // The committed prefix of the answer: up to the first mask.
  int prefix_end = region_start_;
  while (prefix_end < static_cast<int>(canvas_.size()) && canvas_[prefix_end] != mask_id_) {
    if (params_.early_stop && is_stop(canvas_[prefix_end])) {
      finished_ = true;
      finish_reason_ = FinishReason::kStop;
      answer_end_ = prefix_end;
      break;
    }
    ++prefix_end;
  }
  if (stop_matcher_) {
    auto match = stop_matcher_(std::span<const int32_t>(canvas_).subspan(
        region_start_, std::min(prefix_end, answer_end_) - region_start_));
    if (match) {
      finished_ = true;
      finish_reason_ = FinishReason::kStop;
      answer_end_ = region_start_ + static_cast<int>(match->tokens_kept);
      stop_match_ = std::move(match);
    }
  }
}

const StepEvent& Generation::Commit(std::span<const int32_t> tokens,
                                    std::span<const double> confidences,
                                    const CandidateLogprobs* logprobs) {
  SCULPT_CHECK(!finished_);
  SCULPT_CHECK(tokens.size() == candidates_.size() && confidences.size() == candidates_.size());
  const int listed = params_.logprobs;
  SCULPT_CHECK(listed < 0 || (logprobs != nullptr && logprobs->logprobs.size() == tokens.size() &&
                              logprobs->top_ids.size() == tokens.size() * listed &&
                              logprobs->top_values.size() == tokens.size() * listed));
  std::vector<double> model_confidence(confidences.begin(), confidences.end());
  if (params_.confidence_eos_eot_inf) {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (std::find(params_.stop_token_ids.begin(), params_.stop_token_ids.end(), tokens[i]) !=
          params_.stop_token_ids.end()) {
        model_confidence[i] = -INFINITY;
      }
    }
  }
  const SelectionContext context{.seed = params_.seed,
                                 .step = global_step(),
                                 .step_in_block = step_in_block_,
                                 .steps_per_block = block_steps_,
                                 .block_masks_at_start = block_masks_at_start_,
                                 .alg_temp = params_.alg_temp,
                                 .confidence_threshold = params_.confidence_threshold,
                                 .factor = params_.factor};
  std::vector<size_t> chosen;
  if (finish_requested_) {
    chosen.resize(candidates_.size());
    std::iota(chosen.begin(), chosen.end(), size_t{0});
  } else {
    std::vector<double> scores(candidates_.size());
    policy_->Score(context, candidates_, model_confidence, scores);
    chosen = policy_->Select(context, candidates_, scores);
    std::sort(chosen.begin(), chosen.end());
  }

  event_ = StepEvent();
  event_.step = global_step();
  event_.block = block_;
  ++revision_;
  event_.revision = revision_;
  for (size_t index : chosen) {
    canvas_[candidates_[index]] = tokens[index];
    changed_at_[candidates_[index]] = revision_;
    event_.committed.emplace_back(candidates_[index], tokens[index]);
    if (listed < 0) continue;
    TokenLogprob& record = event_.committed_logprobs.emplace_back();
    record.token = tokens[index];
    record.logprob = logprobs->logprobs[index];
    record.step = global_step();
    for (int k = 0; k < listed; ++k) {
      const int32_t id = logprobs->top_ids[index * listed + k];
      if (id >= 0) record.top.emplace_back(id, logprobs->top_values[index * listed + k]);
    }
    logprobs_[candidates_[index]] = record;
  }
  ++steps_run_;
  ++step_in_block_;
  CheckStops();
  if (finish_requested_ && !finished_) {
    // Whatever a finish step could not commit (a model predicting the mask token) stays.
    finished_ = true;
    for (int block = block_; block < num_blocks_; ++block) {
      const auto begin = canvas_.begin() + block_begin(block);
      event_.completed_blocks.push_back({.block = block,
                                         .start = block_begin(block) - region_start_,
                                         .tokens = {begin, canvas_.begin() + block_end(block)}});
    }
    block_ = num_blocks_;
  }
  if (!finished_) {
    if (BlockDone()) {
      const int done = block_;
      ++block_;
      StartBlock();
      // The block, and any the next start skipped for having no masks (infilling).
      for (int block = done; block < block_; ++block) {
        const auto begin = canvas_.begin() + block_begin(block);
        event_.completed_blocks.push_back({.block = block,
                                           .start = block_begin(block) - region_start_,
                                           .tokens = {begin, canvas_.begin() + block_end(block)}});
      }
    } else {
      UpdateCandidates();
    }
  }
  event_.masks_left = static_cast<int>(std::count(canvas_.begin(), canvas_.end(), mask_id_));
  event_.finished = finished_;
  if (finished_) kv_cache_.reset();  // a finished generation's rows go back at once
  return event_;
}

GenerationResult Generation::Result() const {
  GenerationResult result;
  result.token_ids.assign(answer().begin(), answer().end());
  result.canvas = canvas_;
  result.finish_reason = finish_reason_;
  if (stop_match_) result.stop_text = stop_match_->text;
  result.steps = steps_run_;
  result.forward_passes = steps_run_ * (guided() ? 2 : 1);
  if (params_.logprobs >= 0) {
    result.logprobs.assign(logprobs_.begin() + region_start_, logprobs_.begin() + answer_end_);
  }
  return result;
}

std::span<const int32_t> Generation::answer() const {
  return std::span<const int32_t>(canvas_).subspan(region_start_, answer_end_ - region_start_);
}

}  // namespace sculpt
