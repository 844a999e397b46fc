// GenerateRequest → Request; the defaults are `sculpt generate`'s, so both give the same tokens.
#include "server/request_builder.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "model/text_io.h"
#include "model/tokenizer/utf8.h"

namespace sculpt {
namespace {

absl::Status Invalid(auto&&... parts) { return absl::InvalidArgumentError(absl::StrCat(parts...)); }

absl::Status CheckUtf8(const std::string& text, std::string_view field) {
  return ValidateUtf8(text, field);
}

absl::StatusOr<StreamSettings> ReadStreamOptions(const v1::StreamOptions& options,
                                                 const RequestLimits& limits) {
  StreamSettings settings;
  switch (options.mode()) {
    case v1::StreamOptions::MODE_UNSPECIFIED:
    case v1::StreamOptions::STEPS:
      settings.mode = StreamMode::kSteps;
      break;
    case v1::StreamOptions::BLOCKS:
      settings.mode = StreamMode::kBlocks;
      break;
    case v1::StreamOptions::FINAL_ONLY:
      settings.mode = StreamMode::kFinalOnly;
      break;
    default:
      return Invalid("stream_options.mode ", static_cast<int>(options.mode()),
                     " is not FINAL_ONLY, BLOCKS or STEPS");
  }
  if (options.every_n_steps() > 1'000'000) {
    return Invalid("stream_options.every_n_steps must be <= 1000000, got ",
                   options.every_n_steps());
  }
  settings.every_n_steps = static_cast<int>(options.every_n_steps());
  if (options.min_interval_ms() > static_cast<uint32_t>(limits.max_min_interval_ms)) {
    return Invalid("stream_options.min_interval_ms must be <= ", limits.max_min_interval_ms,
                   ", got ", options.min_interval_ms());
  }
  settings.min_interval = std::chrono::milliseconds(options.min_interval_ms());
  return settings;
}

// The parameters with `sculpt generate`'s defaults for what the message leaves out.
absl::StatusOr<GenerationParams> ReadParams(const v1::GenerateRequest& message, bool infill) {
  GenerationParams params;
  if (message.has_gen_length()) params.gen_length = message.gen_length();
  params.steps = infill ? 0 : params.gen_length;
  params.block_length = infill ? 0 : params.gen_length;
  if (message.has_steps()) {
    if (message.steps() < 1) return Invalid("steps must be >= 1, got ", message.steps());
    params.steps = message.steps();
  }
  if (message.has_block_length()) {
    if (message.block_length() < 1) {
      return Invalid("block_length must be >= 1, got ", message.block_length());
    }
    params.block_length = message.block_length();
  }
  if (!message.remasking().empty()) {
    auto remasking = ParseRemasking(message.remasking());
    if (!remasking.ok()) {
      return Invalid("remasking '", message.remasking(), "' is not one of ",
                     std::string(RemaskingNames()));
    }
    params.remasking = *remasking;
  }
  if (message.has_confidence_threshold()) {
    params.confidence_threshold = message.confidence_threshold();
  }
  if (message.has_temperature()) params.temperature = message.temperature();
  if (message.has_top_p()) params.top_p = message.top_p();
  if (message.has_top_k()) params.top_k = message.top_k();
  if (message.has_cfg_scale()) params.cfg_scale = message.cfg_scale();
  if (message.has_seed()) params.seed = message.seed();
  if (message.has_alg_temp()) params.alg_temp = message.alg_temp();
  if (message.has_factor()) params.factor = message.factor();
  params.early_stop = message.early_stop();
  params.logits_eos_inf = message.logits_eos_inf();
  params.confidence_eos_eot_inf = message.confidence_eos_eot_inf();
  return params;
}

}  // namespace

absl::StatusOr<BuildResult> BuildRequest(const v1::GenerateRequest& message,
                                         const ServedModel& model, const RequestLimits& limits) {
  if (!message.model().empty() && message.model() != model.name) {
    return absl::NotFoundError(absl::StrCat(
        "model '", message.model(), "' is not served here; this server serves '", model.name, "'"));
  }
  if (static_cast<int>(message.request_id().size()) > limits.max_request_id_bytes) {
    return Invalid("request_id must be at most ", limits.max_request_id_bytes, " bytes, got ",
                   message.request_id().size());
  }
  SCULPT_RETURN_IF_ERROR(CheckUtf8(message.request_id(), "request_id"));
  const int inputs = message.has_prompt() + (message.prompt_ids_size() > 0) + message.has_infill() +
                     (message.messages_size() > 0);
  if (inputs != 1) {
    return Invalid("give exactly one of prompt, prompt_ids, infill and messages (got ", inputs,
                   ")");
  }
  const Tokenizer* tokenizer = model.tokenizer.get();
  const bool needs_tokenizer = message.has_prompt() || message.has_infill() ||
                               message.messages_size() > 0 || message.stop_size() > 0;
  if (needs_tokenizer && tokenizer == nullptr) {
    return Invalid("model '", model.name,
                   "' has no tokenizer: send prompt_ids, and no stop strings or messages");
  }
  if (message.stop_size() > limits.max_stop_strings) {
    return Invalid("stop has ", message.stop_size(), " strings; at most ", limits.max_stop_strings,
                   " are allowed");
  }
  for (int i = 0; i < message.stop_size(); ++i) {
    const std::string& stop = message.stop(i);
    if (stop.empty()) return Invalid("stop[", i, "] is empty");
    if (static_cast<int>(stop.size()) > limits.max_stop_string_bytes) {
      return Invalid("stop[", i, "] is ", stop.size(), " bytes; at most ",
                     limits.max_stop_string_bytes, " are allowed");
    }
    SCULPT_RETURN_IF_ERROR(CheckUtf8(stop, absl::StrCat("stop[", i, "]")));
  }

  BuiltRequest built;
  built.infill = message.has_infill();
  SCULPT_ASSIGN_OR_RETURN(GenerationParams params, ReadParams(message, built.infill));
  const ModelConfig& config = model.config();
  params.stop_token_ids = StopTokenIds(config, tokenizer);
  // The context bounds every length before anything is tokenized or allocated.
  if (!built.infill && (params.gen_length < 1 || params.gen_length > config.max_sequence_length)) {
    return Invalid("gen_length must be in [1, ", config.max_sequence_length,
                   "] (the model's context), got ", params.gen_length);
  }
  std::vector<int32_t> prompt;
  if (message.has_prompt()) {
    SCULPT_RETURN_IF_ERROR(CheckUtf8(message.prompt(), "prompt"));
    SCULPT_ASSIGN_OR_RETURN(prompt, tokenizer->Encode(message.prompt()));
  } else if (message.prompt_ids_size() > 0) {
    prompt.assign(message.prompt_ids().begin(), message.prompt_ids().end());
    for (size_t i = 0; i < prompt.size(); ++i) {
      if (prompt[i] < 0 || prompt[i] >= config.vocab_size) {
        return Invalid("prompt_ids[", i, "] = ", prompt[i], " is outside the vocabulary [0, ",
                       config.vocab_size, ")");
      }
    }
  } else if (message.messages_size() > 0) {
    std::vector<ChatMessage> messages;
    for (int i = 0; i < message.messages_size(); ++i) {
      SCULPT_RETURN_IF_ERROR(
          CheckUtf8(message.messages(i).content(), absl::StrCat("messages[", i, "].content")));
      messages.push_back({message.messages(i).role(), message.messages(i).content()});
    }
    if (!model.chat_format) {
      return Invalid("model '", model.name,
                     "' has no chat format: send prompt instead of messages");
    }
    SCULPT_ASSIGN_OR_RETURN(prompt, EncodeChatPrompt(*tokenizer, messages));
  }

  absl::StatusOr<Generation> generation = absl::UnknownError("unset");
  if (built.infill) {
    SCULPT_RETURN_IF_ERROR(CheckUtf8(message.infill(), "infill"));
    SCULPT_ASSIGN_OR_RETURN(auto segments, ParseInfillTemplate(message.infill()));
    SCULPT_ASSIGN_OR_RETURN(built.initial_canvas, BuildInfillCanvas(*tokenizer, config, segments));
    if (static_cast<int>(built.initial_canvas.size()) > config.max_sequence_length) {
      return Invalid("the infill template is ", built.initial_canvas.size(),
                     " tokens; the model's context is ", config.max_sequence_length);
    }
    generation = Generation::CreateInfill(built.initial_canvas, params, config);
  } else {
    generation = Generation::Create(prompt, params, config);
  }
  if (!generation.ok()) return generation.status();
  if (message.stop_size() > 0) {
    std::vector<std::string> stops(message.stop().begin(), message.stop().end());
    SCULPT_ASSIGN_OR_RETURN(StopMatcher matcher, MakeStopStringMatcher(*tokenizer, stops));
    generation->set_stop_matcher(std::move(matcher));
  }
  SCULPT_ASSIGN_OR_RETURN(StreamSettings stream,
                          ReadStreamOptions(message.stream_options(), limits));
  const auto& options = message.stream_options();
  built.include_text = !options.has_include_text() || options.include_text();
  built.include_token_ids = !options.has_include_token_ids() || options.include_token_ids();
  built.prompt_tokens = static_cast<int>(prompt.size());
  built.request_id = message.request_id();
  built.gen_length = generation->params().gen_length;
  built.planned_steps = generation->planned_steps();
  return BuildResult{.built = std::move(built),
                     .request = Request{.request_id = message.request_id(),
                                        .prompt_tokens = static_cast<int>(prompt.size()),
                                        .generation = std::move(*generation),
                                        .priority = message.priority(),
                                        .deadline = std::nullopt,
                                        .stream = stream}};
}

}  // namespace sculpt
