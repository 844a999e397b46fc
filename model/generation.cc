#include "model/generation.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "model/remasking/selection.h"

namespace sculpt {
namespace {

// A block of a policy with dynamic steps ends when its masks are gone; this caps it when a
// model keeps predicting the mask token (which leaves the position masked).
constexpr int kMaxDynamicStepsPerBlockLength = 4;
// Edit-only steps a block may ask for (each is a forward).
constexpr int kMaxEditSteps = 1 << 10;

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
  if (params.edit_threshold && (!std::isfinite(*params.edit_threshold) ||
                                *params.edit_threshold < 0.0 || *params.edit_threshold >= 1.0)) {
    return invalid("edit_threshold must be in [0, 1), got ", *params.edit_threshold);
  }
  if (params.max_edit_steps < 0 || params.max_edit_steps > kMaxEditSteps) {
    return invalid("max_edit_steps must be in [0, ", kMaxEditSteps, "], got ",
                   params.max_edit_steps);
  }
  if (params.remdm_remask < 0 || params.remdm_remask > params.gen_length) {
    return invalid("remdm_remask must be in [0, gen_length (", params.gen_length, ")], got ",
                   params.remdm_remask);
  }
  if (params.remdm_remask > 0) {
    if (!std::isfinite(params.remdm_start) || !std::isfinite(params.remdm_end) ||
        params.remdm_start < 0.0 || params.remdm_start >= params.remdm_end ||
        params.remdm_end > 1.0) {
      return invalid(
          "remdm_start and remdm_end must satisfy 0 <= remdm_start < remdm_end <= 1, got ",
          params.remdm_start, " and ", params.remdm_end);
    }
    if (params.remasking == Remasking::kOrigin) {
      return invalid(
          "remdm_remask needs a policy that ranks its candidates; origin commits by independent "
          "draws");
    }
    if (params.edit_threshold) {
      return invalid("edit_threshold and remdm_remask cannot be combined");
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
  if (params.remdm_remask > 0) {
    generation.commit_probability_.assign(generation.canvas_.size(), INFINITY);
  }
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

void Generation::ProtectPositions(std::span<const int32_t> canvas_positions) {
  for (int32_t position : canvas_positions) pinned_.at(position) = true;
  UpdateCandidates();
}

void Generation::StartBlock() {
  step_in_block_ = 0;
  block_steps_ = steps_per_block_;
  edit_steps_in_block_ = 0;
  last_edit_step_edits_ = 0;
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
  window_begin_ = window_end_ = 0;
  if (params_.remdm_remask > 0) {
    // Of the block's steps, or of its masks for the policies that run until they are gone.
    const int base = policy_->fixed_steps() ? block_steps_ : CountMasks(block_begin(), block_end());
    const int first = static_cast<int>(std::floor(params_.remdm_start * base + 0.5));
    const int last =
        std::min(static_cast<int>(std::floor(params_.remdm_end * base + 0.5)), base - 1);
    if (first < last) {
      window_begin_ = first;
      window_end_ = last;
    }
  }
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

std::vector<Generation::CandidateRun> Generation::RunsOf(
    const std::vector<int32_t>& positions) const {
  // Runs of positions under the same bans; without bans, one run.
  std::vector<CandidateRun> runs;
  std::vector<const Ban*> covering, previous;
  for (size_t i = 0; i < positions.size(); ++i) {
    covering.clear();
    for (const Ban& ban : bans_) {
      if (positions[i] >= ban.begin && positions[i] < ban.end) covering.push_back(&ban);
    }
    if (i > 0 && covering == previous) {
      ++runs.back().count;
      continue;
    }
    CandidateRun& run = runs.emplace_back();
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
  return runs;
}

void Generation::UpdateCandidates() {
  candidates_.clear();
  revisable_.clear();
  predicted_.clear();
  own_step_ = finish_requested_ || !OwnStepsDone();
  // A windowed step has predictions for its window only; masks an earlier block left (a model
  // that keeps predicting the mask token) wait for the next block's full forward. A finish
  // edit commits every mask of the canvas. An edit-only step commits none.
  const int32_t first = next_cache_use() == KvCacheUse::kWindow ? cache_window().first : 0;
  const int32_t last = finish_requested_ ? static_cast<int32_t>(canvas_.size()) : block_end();
  for (int32_t position = first; own_step_ && position < last; ++position) {
    if (canvas_[position] == mask_id_) candidates_.push_back(position);
  }
  candidate_runs_ = RunsOf(candidates_);
  if ((params_.edit_threshold || params_.remdm_remask > 0) && !finish_requested_) {
    for (int32_t position = block_begin(); position < block_end(); ++position) {
      if (canvas_[position] != mask_id_ && !given_[position] && !pinned_[position]) {
        revisable_.push_back(position);
      }
    }
    if (params_.edit_threshold) predicted_ = revisable_;
  }
  prediction_runs_ = RunsOf(predicted_);
}

bool Generation::OwnStepsDone() const {
  if (policy_->fixed_steps()) return step_in_block_ >= block_steps_;
  // After an edit, the block also waits for masks an edit left before it.
  const int from = edited_ ? region_start_ : block_begin();
  return CountMasks(from, block_end()) == 0 ||
         step_in_block_ >= kMaxDynamicStepsPerBlockLength *
                               std::max(block_end() - block_begin(), block_masks_at_start_);
}

bool Generation::EditStepDue() const {
  return params_.edit_threshold && step_in_block_ > 0 &&
         CountMasks(block_begin(), block_end()) == 0 &&
         edit_steps_in_block_ < params_.max_edit_steps &&
         (edit_steps_in_block_ == 0 || last_edit_step_edits_ > 0);
}

bool Generation::BlockDone() const { return OwnStepsDone() && !EditStepDue(); }

std::vector<size_t> Generation::ChooseCommits(std::span<const double> confidences,
                                              size_t remask_count) {
  const SelectionContext context{.seed = params_.seed,
                                 .step = global_step(),
                                 .step_in_block = step_in_block_,
                                 .steps_per_block = block_steps_,
                                 .block_masks_at_start = block_masks_at_start_,
                                 .alg_temp = params_.alg_temp,
                                 .confidence_threshold = params_.confidence_threshold,
                                 .factor = params_.factor};
  std::vector<double> scores(candidates_.size());
  policy_->Score(context, candidates_, confidences, scores);
  if (params_.remdm_remask <= 0) return policy_->Select(context, candidates_, scores);
  // ReMDM's loop keeps the masks constant inside the window: as many commits as remasks.
  const int step = step_in_block_;
  const bool in_window = step >= window_begin_ && step < window_end_;
  const size_t n = candidates_.size();
  if (!policy_->fixed_steps()) {
    if (!in_window) return policy_->Select(context, candidates_, scores);
    return TopK(candidates_, scores, std::min(remask_count, n));
  }
  size_t count = 0;
  if (in_window) {
    count = std::min(remask_count, n);
  } else if (policy_->style() == TokenChoiceStyle::kLLaDA) {
    // The block's masks spread over its steps left outside the window, this one included.
    const int left = block_steps_ - step - std::max(0, window_end_ - std::max(step, window_begin_));
    const int masks = CountMasks(block_begin(), block_end());
    count = static_cast<size_t>((masks + std::max(left, 1) - 1) / std::max(left, 1));
  } else {
    // Dream's schedule over the steps outside the window.
    const int window = window_end_ - window_begin_;
    const int before = std::max(0, std::min(step, window_end_) - window_begin_);
    count = static_cast<size_t>(std::max(0, DreamTransferCount(static_cast<int>(n), step - before,
                                                               block_steps_ - window, kDreamEps)));
  }
  return policy_->SelectCount(context, candidates_, scores, count);
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
  const size_t n = candidates_.size();
  const size_t rows = n + predicted_.size();
  SCULPT_CHECK(tokens.size() == rows && confidences.size() == rows);
  const int listed = std::max(params_.logprobs, 0);
  SCULPT_CHECK(!needs_token_logprobs() ||
               (logprobs != nullptr && logprobs->logprobs.size() == rows &&
                logprobs->top_ids.size() == rows * listed &&
                logprobs->top_values.size() == rows * listed));
  const auto record_of = [&](size_t row) {
    TokenLogprob record;
    record.token = tokens[row];
    record.logprob = logprobs->logprobs[row];
    record.step = global_step();
    for (int k = 0; k < listed; ++k) {
      const int32_t id = logprobs->top_ids[row * listed + k];
      if (id >= 0) record.top.emplace_back(id, logprobs->top_values[row * listed + k]);
    }
    return record;
  };
  std::vector<double> model_confidence(confidences.begin(), confidences.begin() + n);
  if (params_.confidence_eos_eot_inf) {
    for (size_t i = 0; i < n; ++i) {
      if (std::find(params_.stop_token_ids.begin(), params_.stop_token_ids.end(), tokens[i]) !=
          params_.stop_token_ids.end()) {
        model_confidence[i] = -INFINITY;
      }
    }
  }
  const bool remask_window = params_.remdm_remask > 0 && own_step_ && !finish_requested_ &&
                             step_in_block_ >= window_begin_ && step_in_block_ < window_end_;
  const size_t remask_count =
      remask_window ? std::min(static_cast<size_t>(params_.remdm_remask), revisable_.size()) : 0;
  std::vector<size_t> chosen;
  if (finish_requested_) {
    chosen.resize(n);
    std::iota(chosen.begin(), chosen.end(), size_t{0});
  } else if (own_step_) {
    chosen = ChooseCommits(model_confidence, remask_count);
    std::sort(chosen.begin(), chosen.end());
  }

  event_ = StepEvent();
  event_.step = global_step();
  event_.block = block_;
  event_.edit_only = !own_step_;
  event_.remask_window = remask_window;
  ++revision_;
  event_.revision = revision_;
  for (size_t index : chosen) {
    const int32_t position = candidates_[index];
    canvas_[position] = tokens[index];
    changed_at_[position] = revision_;
    event_.committed.emplace_back(position, tokens[index]);
    if (params_.remdm_remask > 0) {
      commit_probability_[position] = std::exp(logprobs->logprobs[index]);
    }
    if (params_.logprobs < 0) continue;
    logprobs_[position] = event_.committed_logprobs.emplace_back(record_of(index));
  }
  // edit_threshold: every replacement is decided on the step's predictions, then applied.
  for (size_t j = 0; j < predicted_.size(); ++j) {
    const int32_t position = predicted_[j];
    const int32_t token = tokens[n + j];
    if (token != canvas_[position] && token != mask_id_ &&
        confidences[n + j] > *params_.edit_threshold) {
      event_.replaced.emplace_back(position, token);
    }
  }
  for (size_t r = 0; r < event_.replaced.size(); ++r) {
    const auto [position, token] = event_.replaced[r];
    canvas_[position] = token;
    changed_at_[position] = revision_;
    if (params_.logprobs >= 0) {
      const size_t row =
          n + static_cast<size_t>(std::find(predicted_.begin(), predicted_.end(), position) -
                                  predicted_.begin());
      logprobs_[position] = record_of(row);
    }
  }
  // remdm_remask: the revisable tokens least probable when committed become masks.
  if (remask_count > 0) {
    std::vector<int32_t> order = revisable_;
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
      return commit_probability_[a] < commit_probability_[b];
    });
    order.resize(remask_count);
    std::sort(order.begin(), order.end());
    for (int32_t position : order) {
      canvas_[position] = mask_id_;
      changed_at_[position] = revision_;
      commit_probability_[position] = INFINITY;
      if (!logprobs_.empty()) logprobs_[position].reset();
    }
    event_.remasked = std::move(order);
  }
  ++steps_run_;
  ++step_in_block_;
  if (!own_step_) {
    ++edit_steps_in_block_;
    last_edit_step_edits_ = static_cast<int>(event_.replaced.size());
  }
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
