// One way to turn what a caller asks for into a validated Generation, for every front end: the
// gRPC and HTTP server, `sculpt generate` and `sculpt eval`. Every check runs here, before
// anything is allocated for the generation, and every error names the request field.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/chat_template.h"
#include "model/config.h"
#include "model/generation.h"
#include "model/tokenizer.h"

namespace sculpt {

// A generation as requested: exactly one input (an infill template as text or as ids), the decoding
// parameters (each one left unset takes GenerationParams' default, which is `sculpt generate`'s)
// and stop strings.
struct GenerationRequest {
  // The input: one of these.
  std::optional<std::string> prompt;               // text, encoded with the tokenizer
  std::optional<std::vector<int32_t>> prompt_ids;  // token ids
  std::optional<std::string> infill;               // a template: <|mask:N|> marks N masks
  std::optional<std::vector<int32_t>> infill_ids;  // a template as ids, masks to be filled
  std::optional<std::vector<ChatMessage>> messages;
  // With a text prompt: infilling between it and this text (prompt + gen_length masks +
  // suffix); the answer is the filled middle.
  std::optional<std::string> suffix;

  std::optional<int64_t> gen_length;
  std::optional<int64_t> steps;         // default gen_length; infill: one per mask
  std::optional<int64_t> block_length;  // default gen_length; infill: the whole canvas
  std::optional<std::string> remasking;
  std::optional<double> temperature, top_p, alg_temp, confidence_threshold, factor, cfg_scale;
  std::optional<int64_t> top_k;
  std::optional<uint64_t> seed;
  std::optional<int64_t> logprobs;   // alternatives per committed token; unset: none
  std::optional<std::string> cache;  // none, prefix or dual; unset: GenerationLimits' default
  std::optional<double> edit_threshold, remdm_start, remdm_end;
  std::optional<int64_t> max_edit_steps, remdm_remask;
  bool early_stop = false;
  bool logits_eos_inf = false;
  bool confidence_eos_eot_inf = false;
  std::vector<std::string> stops;
};

struct GenerationLimits {
  int max_stop_strings = 16;
  int max_stop_string_bytes = 256;
  // What a request that does not say gets (the server's --cache).
  KvCacheMode default_cache = KvCacheMode::kNone;
};

// What a request is built against: the model's shape and its text side.
struct ModelText {
  const ModelConfig& config;
  const Tokenizer* tokenizer = nullptr;  // null: the model has no tokenizer.json
  std::optional<ChatFormat> chat_format;
  std::string name;  // for messages
};

struct BuiltGeneration {
  Generation generation;
  int prompt_tokens = 0;  // infill: 0
  bool infill = false;
  bool suffix = false;                  // a prompt + suffix infill: the answer is the middle
  std::vector<int32_t> initial_canvas;  // infill: the template's canvas, for the filled spans
};

// INVALID_ARGUMENT naming the field for anything the model cannot run.
absl::StatusOr<BuiltGeneration> BuildGeneration(const GenerationRequest& request,
                                                const ModelText& model,
                                                const GenerationLimits& limits = {});

}  // namespace sculpt
