// One masked-diffusion generation as a step-by-step state machine, so a scheduler can advance
// many of them through shared forwards. Semantics: LLaDA's generate(), Dream's _sample and
// Fast-dLLM's threshold decoding, chosen by the remasking policy (docs/generation.md).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "model/remasking/remasking.h"
#include "model/token_choice.h"
#include "model/transformer.h"

namespace sculpt {

struct GenerationParams {
  int gen_length = 128;
  int steps = 128;
  int block_length = 128;
  Remasking remasking = Remasking::kLowConfidence;
  double temperature = 0.0;
  double top_p = 1.0;  // 1 = off
  int top_k = 0;       // 0 = off
  double alg_temp = 0.0;
  double confidence_threshold = 0.9;
  double factor = 1.0;
  double cfg_scale = 0.0;
  uint64_t seed = 0;
  // Finish once a stop token is committed with everything before it committed; trim there.
  bool early_stop = false;
  // Never choose a stop token (their logits become -inf).
  bool logits_eos_inf = false;
  // A prediction of a stop token ranks last, so end-of-text is committed only when nothing
  // else is left (the intent of LLaDA's Appendix B.4).
  bool confidence_eos_eot_inf = false;
  // EOS/EoT ids; empty means the model's eos_token_id.
  std::vector<int32_t> stop_token_ids;
  // -1: off; k >= 0: record every committed token's log-probability with the k most likely
  // alternatives at the step that committed it (at most kMaxTopLogprobs).
  int logprobs = -1;
  // Fast-dLLM's approximate KV cache (KvCacheMode): the first step of every block forwards the
  // whole canvas and caches its keys and values; the block's later steps forward a window.
  KvCacheMode cache = KvCacheMode::kNone;
  // Policies that revise committed tokens (docs/generation.md, "Policies that revise committed
  // tokens"). LLaDA 2.1's editing: a committed token of the current block whose prediction
  // differs with probability above edit_threshold is replaced, and up to max_edit_steps
  // edit-only steps follow a block's own steps; unset: off.
  std::optional<double> edit_threshold;
  int max_edit_steps = 16;
  // ReMDM-loop: in the steps [remdm_start, remdm_end) of each block (fractions of its steps), at
  // most remdm_remask committed tokens, the least probable when committed, become masks again;
  // 0: off.
  int remdm_remask = 0;
  double remdm_start = 0.45;
  double remdm_end = 0.95;
};

// A committed token's log-probability under the model's distribution at the step that committed
// it (TokenChoiceGroup::top_logprobs says which distribution), and the most likely alternatives
// at that step. -inf where the model gave a token no mass.
struct TokenLogprob {
  int32_t token = 0;
  double logprob = 0.0;
  uint32_t step = 0;
  std::vector<std::pair<int32_t, double>> top;  // (token, log-probability), most likely first
};

// A step's token-choice outputs for log-probabilities, one entry (or k) per candidate.
struct CandidateLogprobs {
  std::span<const double> logprobs;    // [n]
  std::span<const int32_t> top_ids;    // [n * k], -1 past a vocabulary smaller than k
  std::span<const double> top_values;  // [n * k]
};

// INVALID_ARGUMENT naming the parameter for any combination the references reject or the model
// cannot hold; checked before anything is allocated.
absl::Status ValidateGenerationParams(const GenerationParams& params, const ModelConfig& config,
                                      std::span<const int32_t> prompt);

// Why a generation ended: by itself (its length, or a stop), or from outside (the client
// cancelled, its deadline passed, the step failed). One enum for the engine and the API.
enum class FinishReason { kLength, kStop, kCancelled, kDeadline, kFailed, kIdle };
// The API's name: "length", "stop", "cancelled", "deadline", "error", "idle" (a paused refine
// session that outlived --refine-idle-timeout).
std::string_view FinishReasonName(FinishReason reason);

// What a generation produced, assembled in one place (Generation::Result) for every caller.
struct GenerationResult {
  std::vector<int32_t> token_ids;  // the answer (trimmed at an early stop or stop string)
  std::vector<int32_t> canvas;     // the whole final canvas (prompt or template included)
  FinishReason finish_reason = FinishReason::kLength;
  std::optional<std::string> stop_text;  // the answer's text, cut at the stop string
  int steps = 0;
  int forward_passes = 0;  // sequences forwarded; a guided step counts two
  // With GenerationParams::logprobs >= 0: one per answer token (token_ids), empty where the
  // token was given (an infill template's kept text).
  std::vector<std::optional<TokenLogprob>> logprobs;
};

// What one step did, for streaming drafts.
// A semi-autoregressive block the step finished: its tokens will not change any more.
struct CompletedBlock {
  int block = 0;
  int start = 0;  // answer position of its first token
  std::vector<int32_t> tokens;
};

struct StepEvent {
  uint32_t step = 0;      // global step index, from 0
  uint64_t revision = 0;  // the draft's revision after the step (Generation::revision)
  int block = 0;
  std::vector<std::pair<int32_t, int32_t>> committed;  // (canvas position, token)
  // The revising policies: committed tokens replaced (edit_threshold) and turned back into
  // masks (remdm_remask) by the step, and whether it was an edit-only step or in the window.
  std::vector<std::pair<int32_t, int32_t>> replaced;
  std::vector<int32_t> remasked;
  bool edit_only = false;
  bool remask_window = false;
  // With GenerationParams::logprobs >= 0: each committed token's, in the order of `committed`.
  std::vector<TokenLogprob> committed_logprobs;
  // Blocks finished by this step, in order (blocks a stop ended early are not finished).
  std::vector<CompletedBlock> completed_blocks;
  int masks_left = 0;  // in the whole canvas
  bool finished = false;
};

// An edit of a running generation's draft (interactive refinement, docs/refine.md). Positions
// are answer positions, as drafts report them; spans are [position, position + length).
enum class EditKind {
  kPin,         // tokens at [position, position + tokens.size()) committed now, never changed
  kRemask,      // [position, position + length) back to masks, denoised again
  kReplace,     // [position, position + length) replaced by tokens (any count; masks allowed)
  kBan,         // tokens never chosen in [position, position + length) from now on (id: ban id)
  kLiftBan,     // the ban named ban_id lifted
  kSetOptions,  // steps left, confidence_threshold, temperature for the rest of the generation
  kPause,       // the scheduler's: no steps until resumed (keeps its slot)
  kResume,
  kFinish,  // the next step commits every remaining mask
};
std::string_view EditKindName(EditKind kind);

struct DraftEdit {
  std::string id;
  EditKind kind = EditKind::kRemask;
  // The draft revision the edit was made against; unset: whatever the draft holds when it is
  // applied. A positional edit is refused (ABORTED) when a position it touches changed after
  // it, or a replace moved positions after it.
  std::optional<uint64_t> revision;
  // Applied at the step boundary after exactly this many steps (scripted, deterministic
  // edits); unset: at the next boundary.
  std::optional<uint32_t> at_step;
  int32_t position = 0;
  int32_t length = 0;
  std::vector<int32_t> tokens;  // pin, replace: the new tokens; ban: the banned ids
  std::string ban_id;           // lift
  std::optional<int> steps;     // set: steps left (fixed-step policies)
  std::optional<double> confidence_threshold;
  std::optional<double> temperature;
};

// What an applied edit did: the answer's [position, position + removed) now holds `inserted`
// (a positional edit; otherwise removed = 0 and inserted empty).
struct EditOutcome {
  uint32_t step = 0;      // steps run when it applied: it is in effect from the next one
  uint64_t revision = 0;  // the draft's revision after it
  int32_t position = 0;
  int32_t removed = 0;
  std::vector<int32_t> inserted;
  int32_t gen_length = 0;  // the answer region's length after it
};

// Where a stop string ended the answer: the tokens kept, and the text up to the stop string.
struct StopMatch {
  size_t tokens_kept = 0;
  std::string text;
};
// Looks for a stop string in the committed prefix of the answer (called after every step).
using StopMatcher = std::function<std::optional<StopMatch>(std::span<const int32_t> prefix)>;

class Generation {
 public:
  // canvas = prompt + gen_length masks.
  static absl::StatusOr<Generation> Create(std::span<const int32_t> prompt,
                                           const GenerationParams& params,
                                           const ModelConfig& config);
  // Infilling: the canvas is given, with masks anywhere; everything else is kept as is. The
  // whole canvas is the answer region (gen_length = its length; block_length 0 means one block;
  // steps 0 means one per mask).
  static absl::StatusOr<Generation> CreateInfill(std::span<const int32_t> canvas,
                                                 GenerationParams params,
                                                 const ModelConfig& config);

  void set_stop_matcher(StopMatcher matcher) { stop_matcher_ = std::move(matcher); }

  bool finished() const { return finished_; }
  bool guided() const { return params_.cfg_scale > 0.0; }
  const GenerationParams& params() const { return params_; }
  const RemaskingPolicy& policy() const { return *policy_; }
  // Tokens whose logits are set to -inf before token choice, everywhere.
  std::span<const int32_t> suppressed_tokens() const;
  // Consecutive candidates (indices into candidate_positions) that share their suppressed
  // tokens: the stop tokens with logits_eos_inf and the bans covering them. One token choice
  // group each, so a ban costs nothing where it does not apply.
  struct CandidateRun {
    size_t first = 0;
    size_t count = 0;
    std::vector<int32_t> suppressed;  // sorted
  };
  const std::vector<CandidateRun>& candidate_runs() const { return candidate_runs_; }
  // edit_threshold: the committed positions whose predictions the step also needs (the block's
  // revisable tokens), after the candidates' rows, in runs as the candidates'. Their token
  // choice is greedy and unfiltered: the prediction and its probability.
  const std::vector<int32_t>& prediction_positions() const { return predicted_; }
  const std::vector<CandidateRun>& prediction_runs() const { return prediction_runs_; }
  // Whether Commit needs the chosen tokens' log-probabilities (asked for, or remdm_remask's
  // commit probabilities).
  bool needs_token_logprobs() const { return params_.logprobs >= 0 || params_.remdm_remask > 0; }
  // Canvas positions that no revising policy changes once committed (the reference's `pinned`);
  // an edit's pins are such positions too.
  void ProtectPositions(std::span<const int32_t> canvas_positions);

  // The current canvas, masks where nothing is committed yet.
  std::span<const int32_t> canvas() const { return canvas_; }
  int32_t mask_id() const { return mask_id_; }
  // The canvas with the given (prompt) tokens masked: classifier-free guidance's input.
  // Writes into `out` (reused storage).
  void UnconditionalCanvas(std::vector<int32_t>& out) const;
  // Canvas positions this step may commit: masked and before the current block's end (and, in
  // a step that forwards a window, inside it).
  const std::vector<int32_t>& candidate_positions() const { return candidates_; }

  // The approximate KV cache. Rows the generation needs in the model's arena: one per canvas
  // position and sequence (two sequences when guided), 0 with cache none.
  int32_t kv_cache_rows_needed() const;
  // The rows it holds, until it finishes or is destroyed; needed before stepping with a cache.
  void AttachKvCache(KvCacheLease lease) { kv_cache_ = std::move(lease); }
  void ReleaseKvCache() { kv_cache_.reset(); }
  bool holds_kv_cache() const { return kv_cache_.held(); }
  // Sequence `copy`'s rows (0: the canvas, 1: the unconditional canvas).
  RowRange kv_rows(int copy) const;
  // How the next step uses the cache, and with KvCacheUse::kWindow the canvas positions
  // [first, second) whose predictions it computes.
  KvCacheUse next_cache_use() const;
  std::pair<int32_t, int32_t> cache_window() const;
  uint32_t global_step() const { return static_cast<uint32_t>(steps_run_); }

  // Interactive refinement. The revision counts changes of the draft: every step and every
  // applied edit. ApplyEdit applies one edit between steps (pause and resume are the
  // scheduler's): INVALID_ARGUMENT for positions or tokens that do not fit, ABORTED for a stale
  // revision, FAILED_PRECONDITION for what this generation cannot do; nothing changes then.
  uint64_t revision() const { return revision_; }
  absl::StatusOr<EditOutcome> ApplyEdit(const DraftEdit& edit);
  bool pinned(int32_t canvas_position) const { return pinned_[canvas_position]; }

  // Takes the chosen token and model confidence of every candidate, then every prediction
  // position (their rows in that order), ranks the candidates with the policy and commits this
  // step's share, then revises (edit_threshold, remdm_remask). `logprobs` (all rows, as many
  // alternatives as params().logprobs asks, at least 0) is required when needs_token_logprobs().
  const StepEvent& Commit(std::span<const int32_t> tokens, std::span<const double> confidences,
                          const CandidateLogprobs* logprobs = nullptr);

  // The answer: the generated region, trimmed at an early stop or stop string.
  std::span<const int32_t> answer() const;
  int region_start() const { return region_start_; }
  FinishReason finish_reason() const { return finish_reason_; }
  // The result as it stands: the answer (trimmed at an early stop or stop string), the whole
  // canvas, why it finished, its steps and forwards.
  GenerationResult Result() const;
  const std::optional<StopMatch>& stop_match() const { return stop_match_; }
  int steps_run() const { return steps_run_; }
  // The block the next step works on (num_blocks() once finished).
  int current_block() const { return block_; }
  int num_blocks() const { return num_blocks_; }
  // Steps the generation plans: `steps` for fixed-step policies; for the threshold and factor
  // policies, the masks it starts with (each step commits at least one).
  int planned_steps() const { return planned_steps_; }
  const StepEvent& last_event() const { return event_; }

 private:
  Generation() = default;
  static absl::StatusOr<Generation> Start(std::vector<int32_t> canvas, int region_start,
                                          const GenerationParams& params,
                                          const ModelConfig& config);
  void StartBlock();
  void UpdateCandidates();
  bool BlockDone() const;
  void CheckStops();
  // The current block's own steps are done (its policy's steps, or its masks are gone).
  bool OwnStepsDone() const;
  // edit_threshold: an edit-only step follows the own steps.
  bool EditStepDue() const;
  std::vector<CandidateRun> RunsOf(const std::vector<int32_t>& positions) const;
  // The indices of the candidates this step commits.
  std::vector<size_t> ChooseCommits(std::span<const double> confidences, size_t remask_count);
  int block_begin(int block) const { return block == 0 ? region_start_ : block_ends_[block - 1]; }
  int block_end(int block) const { return block_ends_[block]; }
  int block_begin() const { return block_begin(block_); }
  int block_end() const { return block_end(block_); }
  int CountMasks(int begin, int end) const;
  // Edits (generation_edits.cc).
  absl::Status CheckEditSpan(const DraftEdit& edit, int32_t begin, int32_t end) const;
  absl::Status CheckTokens(std::span<const int32_t> tokens, bool masks_allowed) const;
  absl::Status ApplySetOptions(const DraftEdit& edit);
  void Splice(int32_t begin, int32_t end, std::span<const int32_t> tokens);
  void MarkChanged(int32_t begin, int32_t end);
  // After an edit changed the canvas: the current block's plan restarts with the steps it had
  // left, over the masks it now has; blocks without masks are skipped.
  void Replan();

  GenerationParams params_;
  const RemaskingPolicy* policy_ = nullptr;
  int32_t mask_id_ = 0;
  int region_start_ = 0;
  std::vector<int32_t> canvas_;
  std::vector<bool> given_;   // true where the initial canvas held a real token
  std::vector<bool> pinned_;  // pinned or replaced by an edit: no step changes it
  std::vector<std::optional<TokenLogprob>> logprobs_;  // per canvas position, when recorded
  int num_blocks_ = 0;
  std::vector<int32_t> block_ends_;  // canvas position past each block (replace moves them)
  int steps_per_block_ = 0;
  int block_steps_ = 0;  // the current block's, re-planned by edits
  int block_ = 0;
  int step_in_block_ = 0;
  int block_masks_at_start_ = 0;
  int steps_run_ = 0;
  int planned_steps_ = 0;
  std::vector<int32_t> candidates_;
  std::vector<CandidateRun> candidate_runs_;
  // The revising policies.
  std::vector<int32_t> revisable_;  // the block's committed, not given, not pinned positions
  std::vector<int32_t> predicted_;  // revisable_ with edit_threshold, else empty
  std::vector<CandidateRun> prediction_runs_;
  std::vector<double> commit_probability_;  // remdm_remask: per canvas position
  bool own_step_ = true;                    // the next step is one of the block's own
  int edit_steps_in_block_ = 0;
  int last_edit_step_edits_ = 0;
  int window_begin_ = 0, window_end_ = 0;  // remdm_remask: the block's steps that remask
  bool finished_ = false;
  FinishReason finish_reason_ = FinishReason::kLength;
  int answer_end_ = 0;
  std::optional<StopMatch> stop_match_;
  StopMatcher stop_matcher_;
  StepEvent event_;
  KvCacheLease kv_cache_;

  // Interactive refinement.
  struct Ban {
    std::string id;
    int32_t begin = 0, end = 0;   // canvas positions
    std::vector<int32_t> tokens;  // sorted
  };
  int32_t max_sequence_length_ = 0;
  int32_t vocab_size_ = 0;
  uint64_t revision_ = 0;
  std::vector<uint64_t> changed_at_;  // per canvas position: the revision that last changed it
  uint64_t layout_revision_ = 0;      // the last replace that moved positions
  std::vector<Ban> bans_;
  bool edited_ = false;
  bool finish_requested_ = false;
};

}  // namespace sculpt
