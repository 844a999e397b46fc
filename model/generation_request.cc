#include "model/generation_request.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "model/text_io.h"
#include "model/tokenizer/utf8.h"

namespace sculpt {
namespace {

absl::Status Invalid(auto&&... parts) { return absl::InvalidArgumentError(absl::StrCat(parts...)); }

// Lengths and step counts beyond this cannot be meant (a step budget this size would run for
// days), and must fit an int.
constexpr int64_t kMaxSteps = 1 << 20;

absl::StatusOr<int> Count(const std::optional<int64_t>& value, int default_value, int64_t min_value,
                          int64_t max_value, const char* field, const char* why = "") {
  if (!value) return default_value;
  if (*value < min_value || *value > max_value) {
    return Invalid(field, " must be in [", min_value, ", ", max_value, "]", why, ", got ", *value);
  }
  return static_cast<int>(*value);
}

// The parameters with GenerationParams' defaults for what the request leaves out.
absl::StatusOr<GenerationParams> ReadParams(const GenerationRequest& request,
                                            const ModelConfig& config, bool infill,
                                            KvCacheMode default_cache) {
  GenerationParams params;
  params.cache = default_cache;
  if (request.cache) {
    SCULPT_ASSIGN_OR_RETURN(params.cache, ParseKvCacheMode(*request.cache));
  }
  // Infill: the answer region is the template's canvas, whatever gen_length says.
  if (!infill) {
    SCULPT_ASSIGN_OR_RETURN(params.gen_length, Count(request.gen_length, params.gen_length, 1,
                                                     config.max_sequence_length, "gen_length",
                                                     " (the model's max_sequence_length)"));
  }
  // Infill: 0 asks Generation::CreateInfill for one step per mask and one block.
  const int default_length = infill ? 0 : params.gen_length;
  SCULPT_ASSIGN_OR_RETURN(params.steps,
                          Count(request.steps, default_length, 1, kMaxSteps, "steps"));
  SCULPT_ASSIGN_OR_RETURN(params.block_length, Count(request.block_length, default_length, 1,
                                                     kMaxSteps, "block_length"));
  if (request.remasking) {
    SCULPT_ASSIGN_OR_RETURN(params.remasking, ParseRemasking(*request.remasking));
  }
  params.temperature = request.temperature.value_or(params.temperature);
  params.top_p = request.top_p.value_or(params.top_p);
  SCULPT_ASSIGN_OR_RETURN(params.top_k,
                          Count(request.top_k, params.top_k, 0, std::numeric_limits<int32_t>::max(),
                                "top_k", " (0 = off)"));
  params.alg_temp = request.alg_temp.value_or(params.alg_temp);
  params.confidence_threshold = request.confidence_threshold.value_or(params.confidence_threshold);
  params.factor = request.factor.value_or(params.factor);
  params.cfg_scale = request.cfg_scale.value_or(params.cfg_scale);
  params.seed = request.seed.value_or(params.seed);
  params.early_stop = request.early_stop;
  params.logits_eos_inf = request.logits_eos_inf;
  params.confidence_eos_eot_inf = request.confidence_eos_eot_inf;
  if (request.logprobs) {
    SCULPT_ASSIGN_OR_RETURN(params.logprobs, Count(request.logprobs, 0, 0, kMaxTopLogprobs,
                                                   "logprobs", " (alternatives per token)"));
  }
  params.edit_threshold = request.edit_threshold;
  SCULPT_ASSIGN_OR_RETURN(
      params.max_edit_steps,
      Count(request.max_edit_steps, params.max_edit_steps, 0, 1024, "max_edit_steps"));
  SCULPT_ASSIGN_OR_RETURN(params.remdm_remask, Count(request.remdm_remask, params.remdm_remask, 0,
                                                     kMaxSteps, "remdm_remask"));
  params.remdm_start = request.remdm_start.value_or(params.remdm_start);
  params.remdm_end = request.remdm_end.value_or(params.remdm_end);
  return params;
}

}  // namespace

absl::StatusOr<BuiltGeneration> BuildGeneration(const GenerationRequest& request,
                                                const ModelText& model,
                                                const GenerationLimits& limits) {
  const int inputs = request.prompt.has_value() + request.prompt_ids.has_value() +
                     request.infill.has_value() + request.infill_ids.has_value() +
                     request.messages.has_value();
  if (inputs != 1) {
    return Invalid("give exactly one of prompt, prompt_ids, infill and messages (got ", inputs,
                   ")");
  }
  const Tokenizer* tokenizer = model.tokenizer;
  const bool needs_tokenizer =
      !(request.prompt_ids || request.infill_ids) || !request.stops.empty();
  if (needs_tokenizer && tokenizer == nullptr) {
    return Invalid("model '", model.name,
                   "' has no tokenizer (no tokenizer.json): send prompt_ids, and no stop strings "
                   "or messages");
  }
  if (static_cast<int64_t>(request.stops.size()) > limits.max_stop_strings) {
    return Invalid("stop has ", request.stops.size(), " strings; at most ", limits.max_stop_strings,
                   " are allowed");
  }
  for (size_t i = 0; i < request.stops.size(); ++i) {
    const std::string& stop = request.stops[i];
    if (stop.empty()) return Invalid("stop[", i, "] is empty");
    if (static_cast<int64_t>(stop.size()) > limits.max_stop_string_bytes) {
      return Invalid("stop[", i, "] is ", stop.size(), " bytes; at most ",
                     limits.max_stop_string_bytes, " are allowed");
    }
    SCULPT_RETURN_IF_ERROR(ValidateUtf8(stop, absl::StrCat("stop[", i, "]")));
  }

  if (request.suffix && !request.prompt) {
    return Invalid("suffix needs a text prompt (the canvas is prompt + gen_length masks + suffix)");
  }
  const bool infill =
      request.infill.has_value() || request.infill_ids.has_value() || request.suffix.has_value();
  const ModelConfig& config = model.config;
  SCULPT_ASSIGN_OR_RETURN(GenerationParams params,
                          ReadParams(request, config, infill, limits.default_cache));
  params.stop_token_ids = StopTokenIds(config, tokenizer);

  std::vector<int32_t> prompt;
  if (request.suffix) {
    // Handled as the infill it is, below.
  } else if (request.prompt) {
    SCULPT_RETURN_IF_ERROR(ValidateUtf8(*request.prompt, "prompt"));
    SCULPT_ASSIGN_OR_RETURN(prompt, tokenizer->Encode(*request.prompt));
  } else if (request.prompt_ids) {
    prompt = *request.prompt_ids;
    // Real tokens only: ids in a padded embedding's tail are no text (the mask token, which a
    // prompt may hold to be filled, is one of the model's own).
    for (size_t i = 0; i < prompt.size(); ++i) {
      if ((prompt[i] < 0 || prompt[i] >= config.vocab_size) && prompt[i] != config.mask_token_id) {
        return Invalid("prompt_ids[", i, "] = ", prompt[i], " is outside the vocabulary [0, ",
                       config.vocab_size, ")");
      }
    }
  } else if (request.messages) {
    for (size_t i = 0; i < request.messages->size(); ++i) {
      SCULPT_RETURN_IF_ERROR(
          ValidateUtf8((*request.messages)[i].content, absl::StrCat("messages[", i, "].content")));
    }
    if (!model.chat_format) {
      return Invalid("model '", model.name,
                     "' has no chat format: send prompt instead of messages");
    }
    SCULPT_ASSIGN_OR_RETURN(prompt, EncodeChatPrompt(*tokenizer, *request.messages));
  }

  std::vector<int32_t> initial_canvas;
  int prompt_tokens = 0;  // a suffix infill's given tokens
  absl::StatusOr<Generation> generation = absl::UnknownError("unset");
  if (infill) {
    if (request.infill_ids) {
      initial_canvas = *request.infill_ids;
    } else if (request.suffix) {
      SCULPT_RETURN_IF_ERROR(ValidateUtf8(*request.prompt, "prompt"));
      SCULPT_RETURN_IF_ERROR(ValidateUtf8(*request.suffix, "suffix"));
      // gen_length is the middle's length here (infill ignores it otherwise).
      SCULPT_ASSIGN_OR_RETURN(
          const int middle,
          Count(request.gen_length, GenerationParams().gen_length, 1, config.max_sequence_length,
                "gen_length", " (the model's max_sequence_length)"));
      SCULPT_ASSIGN_OR_RETURN(initial_canvas, BuildInfillCanvas(*tokenizer, config,
                                                                {{.text = *request.prompt},
                                                                 {.masks = middle},
                                                                 {.text = *request.suffix}}));
      prompt_tokens = static_cast<int>(initial_canvas.size()) - middle;
    } else {
      SCULPT_RETURN_IF_ERROR(ValidateUtf8(*request.infill, "infill"));
      SCULPT_ASSIGN_OR_RETURN(auto segments, ParseInfillTemplate(*request.infill));
      SCULPT_ASSIGN_OR_RETURN(initial_canvas, BuildInfillCanvas(*tokenizer, config, segments));
    }
    if (static_cast<int>(initial_canvas.size()) > config.max_sequence_length) {
      return Invalid("the infill template is ", initial_canvas.size(),
                     " tokens; the model's context is ", config.max_sequence_length);
    }
    generation = Generation::CreateInfill(initial_canvas, params, config);
  } else {
    generation = Generation::Create(prompt, params, config);
  }
  if (!generation.ok()) return generation.status();
  if (!request.stops.empty()) {
    SCULPT_ASSIGN_OR_RETURN(StopMatcher matcher, MakeStopStringMatcher(*tokenizer, request.stops));
    generation->set_stop_matcher(std::move(matcher));
  }
  return BuiltGeneration{
      .generation = std::move(*generation),
      .prompt_tokens = request.suffix ? prompt_tokens : static_cast<int>(prompt.size()),
      .infill = infill,
      .suffix = request.suffix.has_value(),
      .initial_canvas = std::move(initial_canvas)};
}

}  // namespace sculpt
