// See openai_api.h.
#include "server/openai_api.h"

#include <cmath>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"

namespace sculpt {
namespace {

using nlohmann::json;

absl::Status Invalid(std::string* param, const std::string& field, const std::string& message) {
  *param = field;
  return absl::InvalidArgumentError(absl::StrCat("'", field, "' ", message));
}

// Reads optional typed fields; null counts as absent, like OpenAI's own API.
class Reader {
 public:
  Reader(const json& body, std::string* param) : body_(body), param_(param) {}

  const json* Get(const std::string& field) const {
    auto it = body_.find(field);
    if (it == body_.end() || it->is_null()) return nullptr;
    return &*it;
  }
  absl::Status Int(const std::string& field, int64_t min, int64_t max, int64_t* out) const {
    const json* value = Get(field);
    if (value == nullptr) return absl::OkStatus();
    if (!value->is_number_integer()) return Invalid(param_, field, "must be an integer");
    const int64_t v = value->get<int64_t>();
    if (v < min || v > max) {
      return Invalid(param_, field, absl::StrCat("must be in [", min, ", ", max, "], got ", v));
    }
    *out = v;
    return absl::OkStatus();
  }
  absl::Status Number(const std::string& field, double* out, bool* present) const {
    const json* value = Get(field);
    *present = value != nullptr;
    if (value == nullptr) return absl::OkStatus();
    if (!value->is_number()) return Invalid(param_, field, "must be a number");
    *out = value->get<double>();
    if (!std::isfinite(*out)) return Invalid(param_, field, "must be finite");
    return absl::OkStatus();
  }
  absl::Status Bool(const std::string& field, bool* out) const {
    const json* value = Get(field);
    if (value == nullptr) return absl::OkStatus();
    if (!value->is_boolean()) return Invalid(param_, field, "must be true or false");
    *out = value->get<bool>();
    return absl::OkStatus();
  }
  absl::Status String(const std::string& field, std::string* out, bool* present) const {
    const json* value = Get(field);
    *present = value != nullptr;
    if (value == nullptr) return absl::OkStatus();
    if (!value->is_string()) return Invalid(param_, field, "must be a string");
    *out = value->get<std::string>();
    return absl::OkStatus();
  }

 private:
  const json& body_;
  std::string* param_;
};

#define SCULPT_OPENAI_RETURN_IF_ERROR(expr) \
  do {                                      \
    absl::Status status_ = (expr);          \
    if (!status_.ok()) return status_;      \
  } while (false)

// Every field of the body is one this server reads, or an OpenAI field it does not implement
// given its neutral value (what a client library may send by default): anything else is a 400
// that names the field, never silently ignored.
absl::Status RefuseUnsupportedFields(OpenAiEndpoint endpoint, const json& body,
                                     std::string* error_param) {
  static const std::set<std::string> kRead = {"model", "n", "max_tokens", "temperature", "top_p",
                                              "seed", "stop", "stream", "stream_options", "user",
                                              // the diffusion parameters, as extra fields
                                              "steps", "block_length", "remasking",
                                              "confidence_threshold", "cfg_scale", "early_stop",
                                              "top_k", "priority"};
  static const std::set<std::string> kReadByCompletions = {"prompt"};
  static const std::set<std::string> kReadByChat = {"messages", "max_completion_tokens"};
  // OpenAI's fields Sculpt does not implement, with the value that means "off".
  static const std::map<std::string, json> kNeutral = {{"logprobs", json()},
                                                       {"top_logprobs", 0},
                                                       {"echo", false},
                                                       {"best_of", 1},
                                                       {"suffix", json()},
                                                       {"presence_penalty", 0},
                                                       {"frequency_penalty", 0},
                                                       {"logit_bias", json::object()},
                                                       {"tools", json::array()},
                                                       {"tool_choice", "none"},
                                                       {"parallel_tool_calls", json()},
                                                       {"response_format", json()},
                                                       {"functions", json::array()},
                                                       {"function_call", "none"},
                                                       {"store", false},
                                                       {"metadata", json()},
                                                       {"service_tier", json()},
                                                       {"modalities", json()},
                                                       {"prediction", json()},
                                                       {"audio", json()},
                                                       {"reasoning_effort", json()}};
  for (const auto& [field, value] : body.items()) {
    if (kRead.count(field)) continue;
    if ((endpoint == OpenAiEndpoint::kCompletions ? kReadByCompletions : kReadByChat)
            .count(field)) {
      continue;
    }
    const auto neutral = kNeutral.find(field);
    if (neutral == kNeutral.end()) {
      return Invalid(error_param, field,
                     "is not a field of this endpoint (see docs/serving.md for the ones it reads)");
    }
    const bool off = value.is_null() || value == neutral->second ||
                     (value.is_boolean() && !value.get<bool>()) ||
                     (value.is_number() && value.get<double>() == 0.0 && field != "best_of" &&
                      field != "logprobs");
    if (!off) {
      return Invalid(error_param, field,
                     "is not supported by this server; leave it out (or at its default)");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<OpenAiRequest> ParseOpenAiRequest(OpenAiEndpoint endpoint, const json& body,
                                                 std::string* error_param) {
  error_param->clear();
  if (!body.is_object()) {
    return absl::InvalidArgumentError("the request body must be a JSON object");
  }
  Reader read(body, error_param);
  OpenAiRequest out;
  v1::GenerateRequest& request = out.generate;
  bool present = false;
  SCULPT_OPENAI_RETURN_IF_ERROR(read.String("model", &out.model, &present));
  request.set_model(out.model);

  int64_t n = 1;
  SCULPT_OPENAI_RETURN_IF_ERROR(read.Int("n", 1, 1 << 20, &n));
  if (n != 1) {
    return Invalid(error_param, "n",
                   "must be 1: each request makes one generation (send several requests)");
  }
  if (endpoint == OpenAiEndpoint::kCompletions) {
    const json* prompt = read.Get("prompt");
    if (prompt == nullptr) return Invalid(error_param, "prompt", "is required");
    if (prompt->is_string()) {
      request.set_prompt(prompt->get<std::string>());
    } else if (prompt->is_array() && prompt->size() == 1 && (*prompt)[0].is_string()) {
      request.set_prompt((*prompt)[0].get<std::string>());
    } else if (prompt->is_array() && !prompt->empty() &&
               std::all_of(prompt->begin(), prompt->end(),
                           [](const json& v) { return v.is_number_integer(); })) {
      for (const json& id : *prompt) {
        const int64_t value = id.get<int64_t>();
        if (value < 0 || value > INT32_MAX) {
          return Invalid(error_param, "prompt", "token ids must be non-negative 32-bit integers");
        }
        request.add_prompt_ids(static_cast<int32_t>(value));
      }
    } else {
      return Invalid(error_param, "prompt",
                     "must be a string, a list of one string, or a list of token ids");
    }
  } else {
    const json* messages = read.Get("messages");
    if (messages == nullptr || !messages->is_array() || messages->empty()) {
      return Invalid(error_param, "messages", "must be a non-empty list of messages");
    }
    for (size_t i = 0; i < messages->size(); ++i) {
      const json& message = (*messages)[i];
      const std::string field = absl::StrCat("messages[", i, "]");
      if (!message.is_object() || !message.contains("role") || !message["role"].is_string()) {
        return Invalid(error_param, field, "must be an object with a string 'role'");
      }
      v1::ChatMessage& out_message = *request.add_messages();
      out_message.set_role(message["role"].get<std::string>());
      const json& content = message.contains("content") ? message["content"] : json();
      if (content.is_string()) {
        out_message.set_content(content.get<std::string>());
      } else if (content.is_array()) {
        // Content parts: only text parts exist for a text model.
        std::string text;
        for (const json& part : content) {
          if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
              !part["text"].is_string()) {
            return Invalid(error_param, field + ".content", "parts must be {type: text, text}");
          }
          text += part["text"].get<std::string>();
        }
        out_message.set_content(text);
      } else if (!content.is_null()) {
        return Invalid(error_param, field + ".content", "must be a string or a list of parts");
      }
    }
  }

  // Completions default to OpenAI's 16 tokens; chat answers to 128 (a diffusion model's canvas
  // has a fixed length, so "until done" does not exist).
  int64_t max_tokens = endpoint == OpenAiEndpoint::kCompletions ? 16 : 128;
  SCULPT_OPENAI_RETURN_IF_ERROR(read.Int("max_tokens", 1, 1 << 20, &max_tokens));
  if (endpoint == OpenAiEndpoint::kChatCompletions) {
    SCULPT_OPENAI_RETURN_IF_ERROR(read.Int("max_completion_tokens", 1, 1 << 20, &max_tokens));
  }
  request.set_gen_length(static_cast<int32_t>(max_tokens));

  double number = 0;
  SCULPT_OPENAI_RETURN_IF_ERROR(read.Number("temperature", &number, &present));
  if (present) request.set_temperature(number);
  SCULPT_OPENAI_RETURN_IF_ERROR(read.Number("top_p", &number, &present));
  if (present) request.set_top_p(number);
  SCULPT_OPENAI_RETURN_IF_ERROR(read.Number("confidence_threshold", &number, &present));
  if (present) request.set_confidence_threshold(number);
  SCULPT_OPENAI_RETURN_IF_ERROR(read.Number("cfg_scale", &number, &present));
  if (present) request.set_cfg_scale(number);
  int64_t integer = -1;
  SCULPT_OPENAI_RETURN_IF_ERROR(read.Int("seed", 0, INT64_MAX, &integer));
  if (integer >= 0) request.set_seed(static_cast<uint64_t>(integer));
  integer = -1;
  SCULPT_OPENAI_RETURN_IF_ERROR(read.Int("steps", 1, 1 << 20, &integer));
  if (integer >= 0) request.set_steps(static_cast<int32_t>(integer));
  integer = -1;
  SCULPT_OPENAI_RETURN_IF_ERROR(read.Int("block_length", 1, 1 << 20, &integer));
  if (integer >= 0) request.set_block_length(static_cast<int32_t>(integer));
  integer = -1;
  SCULPT_OPENAI_RETURN_IF_ERROR(read.Int("top_k", 0, 1 << 30, &integer));
  if (integer >= 0) request.set_top_k(static_cast<int32_t>(integer));
  integer = 0;
  SCULPT_OPENAI_RETURN_IF_ERROR(read.Int("priority", INT32_MIN, INT32_MAX, &integer));
  request.set_priority(static_cast<int32_t>(integer));
  std::string text;
  SCULPT_OPENAI_RETURN_IF_ERROR(read.String("remasking", &text, &present));
  if (present) request.set_remasking(text);
  bool flag = false;
  SCULPT_OPENAI_RETURN_IF_ERROR(read.Bool("early_stop", &flag));
  request.set_early_stop(flag);
  SCULPT_OPENAI_RETURN_IF_ERROR(read.Bool("stream", &out.stream));
  if (const json* options = read.Get("stream_options")) {
    if (!options->is_object()) return Invalid(error_param, "stream_options", "must be an object");
    Reader options_reader(*options, error_param);
    SCULPT_OPENAI_RETURN_IF_ERROR(options_reader.Bool("include_usage", &out.include_usage));
  }
  SCULPT_OPENAI_RETURN_IF_ERROR(read.String("user", &text, &present));
  if (const json* stop = read.Get("stop")) {
    if (stop->is_string()) {
      request.add_stop(stop->get<std::string>());
    } else if (stop->is_array() && std::all_of(stop->begin(), stop->end(),
                                               [](const json& v) { return v.is_string(); })) {
      for (const json& s : *stop) request.add_stop(s.get<std::string>());
    } else {
      return Invalid(error_param, "stop", "must be a string or a list of strings");
    }
  }
  SCULPT_OPENAI_RETURN_IF_ERROR(RefuseUnsupportedFields(endpoint, body, error_param));
  // Drafts feed the stream's stable prefix; a non-streaming request needs only the result.
  request.mutable_stream_options()->set_mode(out.stream ? v1::StreamOptions::STEPS
                                                        : v1::StreamOptions::FINAL_ONLY);
  return out;
}

int HttpStatusFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

json OpenAiErrorBody(const absl::Status& status, const std::string& param) {
  std::string type = "invalid_request_error";
  std::string code;
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      code = "model_not_found";
      break;
    case absl::StatusCode::kResourceExhausted:
      type = "rate_limit_error";
      code = "queue_full";
      break;
    case absl::StatusCode::kUnavailable:
      type = "service_unavailable_error";
      break;
    case absl::StatusCode::kDeadlineExceeded:
      type = "timeout_error";
      break;
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
      type = "server_error";
      break;
    default:
      break;
  }
  // An internal error's message may describe internals; the log has it.
  const std::string message = HttpStatusFor(status) == 500
                                  ? std::string("the server failed to process the request")
                                  : std::string(status.message());
  return {{"error",
           {{"message", message},
            {"type", type},
            {"param", param.empty() ? json() : json(param)},
            {"code", code.empty() ? json() : json(code)}}}};
}

json OpenAiResponse(OpenAiEndpoint endpoint, const std::string& id, int64_t created,
                    const std::string& model, const v1::GenerateResult& result) {
  const v1::Usage& usage = result.usage();
  json choice = {{"index", 0}, {"finish_reason", result.finish_reason()}};
  if (endpoint == OpenAiEndpoint::kCompletions) {
    choice["text"] = result.text();
    choice["logprobs"] = nullptr;
  } else {
    choice["message"] = {{"role", "assistant"}, {"content", result.text()}};
    choice["logprobs"] = nullptr;
  }
  return {
      {"id", id},
      {"object", endpoint == OpenAiEndpoint::kCompletions ? "text_completion" : "chat.completion"},
      {"created", created},
      {"model", model},
      {"choices", json::array({choice})},
      {"usage",
       {{"prompt_tokens", usage.prompt_tokens()},
        {"completion_tokens", usage.generated_tokens()},
        {"total_tokens", usage.prompt_tokens() + usage.generated_tokens()}}}};
}

json OpenAiChunk(OpenAiEndpoint endpoint, const std::string& id, int64_t created,
                 const std::string& model, const std::string& delta,
                 const std::string& finish_reason, bool first) {
  json choice = {{"index", 0},
                 {"finish_reason", finish_reason.empty() ? json() : json(finish_reason)}};
  if (endpoint == OpenAiEndpoint::kCompletions) {
    choice["text"] = delta;
    choice["logprobs"] = nullptr;
  } else {
    json message_delta = json::object();
    if (first) message_delta["role"] = "assistant";
    if (!delta.empty() || finish_reason.empty()) message_delta["content"] = delta;
    choice["delta"] = message_delta;
  }
  return {{"id", id},
          {"object",
           endpoint == OpenAiEndpoint::kCompletions ? "text_completion" : "chat.completion.chunk"},
          {"created", created},
          {"model", model},
          {"choices", json::array({choice})}};
}

json OpenAiUsageChunk(OpenAiEndpoint endpoint, const std::string& id, int64_t created,
                      const std::string& model, const v1::Usage& usage) {
  return {{"id", id},
          {"object",
           endpoint == OpenAiEndpoint::kCompletions ? "text_completion" : "chat.completion.chunk"},
          {"created", created},
          {"model", model},
          {"choices", json::array()},
          {"usage",
           {{"prompt_tokens", usage.prompt_tokens()},
            {"completion_tokens", usage.generated_tokens()},
            {"total_tokens", usage.prompt_tokens() + usage.generated_tokens()}}}};
}

}  // namespace sculpt
