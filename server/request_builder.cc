// GenerateRequest → Request: the generation through BuildGeneration, as `sculpt generate` builds
// its own, so both refuse the same inputs and give the same tokens.
#include "server/request_builder.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "model/generation_request.h"
#include "model/tokenizer/utf8.h"

namespace sculpt {
namespace {

absl::Status Invalid(auto&&... parts) { return absl::InvalidArgumentError(absl::StrCat(parts...)); }

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

// The message's generation as every front end asks for one (model/generation_request.h).
GenerationRequest ReadGeneration(const v1::GenerateRequest& message) {
  GenerationRequest request;
  if (message.has_prompt()) request.prompt = message.prompt();
  if (message.prompt_ids_size() > 0) {
    request.prompt_ids.emplace(message.prompt_ids().begin(), message.prompt_ids().end());
  }
  if (message.has_infill()) request.infill = message.infill();
  if (message.has_suffix()) request.suffix = message.suffix();
  if (message.has_logprobs()) request.logprobs = message.logprobs();
  if (message.messages_size() > 0) {
    auto& messages = request.messages.emplace();
    for (const auto& message_i : message.messages()) {
      messages.push_back({message_i.role(), message_i.content()});
    }
  }
  if (message.has_gen_length()) request.gen_length = message.gen_length();
  if (message.has_steps()) request.steps = message.steps();
  if (message.has_block_length()) request.block_length = message.block_length();
  if (!message.remasking().empty()) request.remasking = message.remasking();
  if (!message.cache().empty()) request.cache = message.cache();
  if (message.has_confidence_threshold()) {
    request.confidence_threshold = message.confidence_threshold();
  }
  if (message.has_temperature()) request.temperature = message.temperature();
  if (message.has_top_p()) request.top_p = message.top_p();
  if (message.has_top_k()) request.top_k = message.top_k();
  if (message.has_cfg_scale()) request.cfg_scale = message.cfg_scale();
  if (message.has_seed()) request.seed = message.seed();
  if (message.has_alg_temp()) request.alg_temp = message.alg_temp();
  if (message.has_factor()) request.factor = message.factor();
  if (message.has_edit_threshold()) request.edit_threshold = message.edit_threshold();
  if (message.has_max_edit_steps()) request.max_edit_steps = message.max_edit_steps();
  if (message.has_remdm_remask()) request.remdm_remask = message.remdm_remask();
  if (message.has_remdm_start()) request.remdm_start = message.remdm_start();
  if (message.has_remdm_end()) request.remdm_end = message.remdm_end();
  request.early_stop = message.early_stop();
  request.logits_eos_inf = message.logits_eos_inf();
  request.confidence_eos_eot_inf = message.confidence_eos_eot_inf();
  request.stops.assign(message.stop().begin(), message.stop().end());
  return request;
}

}  // namespace

absl::StatusOr<BuildResult> BuildRequest(const v1::GenerateRequest& message,
                                         const ServedModel& model, const RequestLimits& limits) {
  if (!message.model().empty() && message.model() != model.name) {
    return absl::NotFoundError(absl::StrCat(
        "model '", message.model(), "' is not served here; this server serves '", model.name, "'"));
  }
  if (!message.model_revision().empty() && message.model_revision() != model.revision) {
    return absl::FailedPreconditionError(
        absl::StrCat("model_revision '", message.model_revision(), "' is pinned, but model '",
                     model.name, "' is served at revision '", model.revision,
                     "' (ListModels and /v1/models tell the revision served)"));
  }
  if (static_cast<int>(message.request_id().size()) > limits.max_request_id_bytes) {
    return Invalid("request_id must be at most ", limits.max_request_id_bytes, " bytes, got ",
                   message.request_id().size());
  }
  SCULPT_RETURN_IF_ERROR(ValidateUtf8(message.request_id(), "request_id"));
  SCULPT_ASSIGN_OR_RETURN(
      BuiltGeneration generation,
      BuildGeneration(ReadGeneration(message),
                      {model.config(), model.tokenizer.get(), model.chat_format, model.name},
                      limits.generation));
  BuiltRequest built;
  built.infill = generation.infill;
  built.suffix = generation.suffix;
  built.logprobs = generation.generation.params().logprobs;
  built.initial_canvas = std::move(generation.initial_canvas);
  SCULPT_ASSIGN_OR_RETURN(StreamSettings stream,
                          ReadStreamOptions(message.stream_options(), limits));
  const auto& options = message.stream_options();
  built.include_text = !options.has_include_text() || options.include_text();
  built.include_token_ids = !options.has_include_token_ids() || options.include_token_ids();
  built.prompt_tokens = generation.prompt_tokens;
  built.request_id = message.request_id();
  built.gen_length = generation.generation.params().gen_length;
  built.planned_steps = generation.generation.planned_steps();
  return BuildResult{.built = std::move(built),
                     .request = Request{.request_id = message.request_id(),
                                        .prompt_tokens = generation.prompt_tokens,
                                        .generation = std::move(generation.generation),
                                        .priority = message.priority(),
                                        .deadline = std::nullopt,
                                        .stream = stream}};
}

}  // namespace sculpt
