// Quality measurements through the engine itself: masked-token accuracy and infilling, the
// speed/quality trade-off later optimisations are judged by (sculpt eval).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/generation.h"
#include "model/generation_request.h"
#include "model/tokenizer.h"
#include "model/transformer.h"

namespace sculpt {

struct MaskedAccuracy {
  double ratio = 0.0;
  int64_t masked = 0;
  int64_t correct = 0;           // the model's argmax equals the hidden token
  int64_t baseline_correct = 0;  // the most frequent training token equals the hidden token
};

// Cuts `documents` into windows of `window` tokens and takes a random sample of them (seeded by
// `seed`) of about `max_tokens` tokens; in each, hides a fraction `ratio` of the positions (at
// least one, chosen with the counter-based RNG from `seed`) and asks for all of them in one
// forward.
absl::StatusOr<std::vector<MaskedAccuracy>> EvaluateMaskedAccuracy(
    Transformer& model, const std::vector<std::vector<int32_t>>& documents,
    std::span<const double> ratios, int32_t baseline_token, int window, uint64_t seed,
    int64_t max_tokens);

// One infilling task: given tokens around a hidden middle.
struct InfillCase {
  std::vector<int32_t> prefix;
  std::vector<int32_t> middle;  // the truth, hidden as as many masks
  std::vector<int32_t> suffix;
};

// The case of `text` with bytes [hidden_begin, hidden_end) hidden. The text is tokenized whole,
// as the model saw text in training, and every token that touches the hidden bytes is hidden:
// tokenizing the pieces apart would split "\n" from the next line's indentation, a split the
// model never saw, and score it for writing the natural tokens. `bos` < 0: none.
absl::StatusOr<InfillCase> MakeInfillCase(const Tokenizer& tokenizer, const std::string& text,
                                          size_t hidden_begin, size_t hidden_end, int32_t bos);

struct InfillScore {
  int cases = 0;
  int exact = 0;  // every hidden token recovered
  int64_t tokens = 0;
  int64_t correct_tokens = 0;
  int64_t steps = 0;
  double tokens_per_step() const { return steps == 0 ? 0.0 : double(tokens) / double(steps); }
};

// Fills every case with the decoding settings of `settings` (remasking, threshold, cache,
// block_length, ...; its input is each case's canvas; block_length unset = the whole canvas in
// one block; steps unset = one per mask, or with block_length as many in every block as the
// fullest block has masks), `batch_size` cases sharing each forward. With a cache, the batch's
// generations lease the model's whole arena, grown to their needs.
absl::StatusOr<InfillScore> EvaluateInfill(Transformer& model, std::span<const InfillCase> cases,
                                           const GenerationRequest& settings, int batch_size);

}  // namespace sculpt
