// See openai_api.h.
#include "server/openai_api.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "model/token_choice.h"
#include "server/api_keys.h"

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
                                              "top_k", "priority", "cache", "model_revision"};
  static const std::set<std::string> kReadByCompletions = {"prompt", "logprobs", "echo", "best_of",
                                                           "suffix"};
  static const std::set<std::string> kReadByChat = {"messages", "max_completion_tokens", "logprobs",
                                                    "top_logprobs"};
  // OpenAI's fields Sculpt does not implement, with the value that means "off".
  static const std::map<std::string, json> kNeutral = {{"presence_penalty", 0},
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
                     (value.is_number() && value.get<double>() == 0.0);
    if (!off) {
      return Invalid(error_param, field,
                     "is not supported by this server; leave it out (or at its default)");
    }
  }
  return absl::OkStatus();
}

// logprobs, top_logprobs, echo, suffix and best_of, as each endpoint spells them.
absl::Status ReadSampling(OpenAiEndpoint endpoint, const Reader& read, OpenAiRequest& out,
                          std::string* error_param) {
  v1::GenerateRequest& request = out.generate;
  if (endpoint == OpenAiEndpoint::kCompletions) {
    // Completions: logprobs is the number of alternatives (0: the chosen token's only).
    int64_t alternatives = -1;
    SCULPT_OPENAI_RETURN_IF_ERROR(read.Int("logprobs", 0, kMaxTopLogprobs, &alternatives));
    if (alternatives >= 0) {
      out.logprobs = true;
      out.top_logprobs = static_cast<int>(alternatives);
    }
    SCULPT_OPENAI_RETURN_IF_ERROR(read.Bool("echo", &out.echo));
    std::string suffix;
    bool present = false;
    SCULPT_OPENAI_RETURN_IF_ERROR(read.String("suffix", &suffix, &present));
    if (present) {
      if (!request.has_prompt()) {
        return Invalid(error_param, "suffix", "needs a text prompt (infill between the two)");
      }
      if (out.echo) return Invalid(error_param, "echo", "cannot be combined with suffix");
      request.set_suffix(suffix);
    }
    int64_t best_of = out.n;
    SCULPT_OPENAI_RETURN_IF_ERROR(read.Int("best_of", 1, kMaxOpenAiSamples, &best_of));
    if (best_of < out.n) {
      return Invalid(error_param, "best_of",
                     absl::StrCat("must be at least n (", out.n, "), got ", best_of));
    }
    if (best_of > out.n && out.stream) {
      return Invalid(error_param, "best_of", "cannot be used with stream");
    }
    out.best_of = static_cast<int>(best_of);
  } else {
    SCULPT_OPENAI_RETURN_IF_ERROR(read.Bool("logprobs", &out.logprobs));
    int64_t top = -1;
    SCULPT_OPENAI_RETURN_IF_ERROR(read.Int("top_logprobs", 0, kMaxTopLogprobs, &top));
    if (top >= 0) {
      if (!out.logprobs) {
        return Invalid(error_param, "top_logprobs", "needs logprobs set to true");
      }
      out.top_logprobs = static_cast<int>(top);
    }
  }
  out.best_of = std::max(out.best_of, out.n);
  if (out.logprobs) request.set_logprobs(out.top_logprobs);
  return absl::OkStatus();
}

// -inf (a token without mass) as OpenAI writes it: JSON has no infinities.
json Logprob(double value) { return std::isfinite(value) ? json(value) : json(-9999.0); }

}  // namespace

v1::GenerateRequest SampleRequest(const OpenAiRequest& request, int index) {
  v1::GenerateRequest sample = request.generate;
  if (index > 0) {
    // SplitMix64 of (seed, index): well-spread seeds that the same request always derives.
    uint64_t z = request.generate.seed() + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(index);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    sample.set_seed(z ^ (z >> 31));
    if (!sample.request_id().empty()) {
      sample.set_request_id(absl::StrCat(sample.request_id(), "-", index));
    }
  }
  // best_of ranks by mean log-probability, so every sample records them.
  if (request.best_of > request.n && !sample.has_logprobs()) sample.set_logprobs(0);
  return sample;
}

double MeanCommittedLogprob(const v1::GenerateResult& result) {
  double sum = 0.0;
  int count = 0;
  for (const v1::TokenLogprob& token : result.logprobs()) {
    if (!token.has_logprob()) continue;
    sum += token.logprob();
    ++count;
  }
  return count == 0 ? -INFINITY : sum / count;
}

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
  SCULPT_OPENAI_RETURN_IF_ERROR(read.Int("n", 1, kMaxOpenAiSamples, &n));
  out.n = static_cast<int>(n);
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
  SCULPT_OPENAI_RETURN_IF_ERROR(read.String("cache", &text, &present));
  if (present) request.set_cache(text);
  SCULPT_OPENAI_RETURN_IF_ERROR(read.String("model_revision", &text, &present));
  if (present) request.set_model_revision(text);
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
  SCULPT_OPENAI_RETURN_IF_ERROR(ReadSampling(endpoint, read, out, error_param));
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
    case absl::StatusCode::kOutOfRange:
      return 400;
    // The request is fine, the server's state is not what it needs (a pinned model revision,
    // a model without a tokenizer), or it conflicts with a concurrent change (a stale edit).
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kAlreadyExists:
      return 409;
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
      // A per-key limit asks the client to come back later (Retry-After); a full queue does not.
      code = RetryAfterSeconds(status) > 0 ? "rate_limit_exceeded" : "queue_full";
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

json OpenAiLogprobs(const OpenAiReplyContext& context, std::span<const v1::TokenLogprob> tokens,
                    int top_logprobs, size_t text_offset) {
  if (context.endpoint == OpenAiEndpoint::kCompletions) {
    json texts = json::array(), values = json::array(), tops = json::array(),
         offsets = json::array();
    for (const v1::TokenLogprob& token : tokens) {
      texts.push_back(token.text());
      values.push_back(token.has_logprob() ? Logprob(token.logprob()) : json());
      if (!token.has_logprob()) {
        tops.push_back(nullptr);
      } else {
        json top = json::object();
        for (int i = 0; i < std::min(top_logprobs, token.top_size()); ++i) {
          // Two alternatives that print alike keep the likelier (listed first).
          if (!top.contains(token.top(i).text())) {
            top[token.top(i).text()] = Logprob(token.top(i).logprob());
          }
        }
        tops.push_back(top);
      }
      offsets.push_back(text_offset);
      text_offset +=
          context.text_bytes ? context.text_bytes(token.token_id()) : token.text().size();
    }
    return {{"tokens", texts},
            {"token_logprobs", values},
            {"top_logprobs", tops},
            {"text_offset", offsets}};
  }
  const auto bytes = [&](int32_t id) {
    json list = json::array();
    if (context.token_bytes) {
      for (unsigned char byte : context.token_bytes(id)) list.push_back(byte);
    }
    return list;
  };
  json content = json::array();
  for (const v1::TokenLogprob& token : tokens) {
    json top = json::array();
    for (int i = 0; i < std::min(top_logprobs, token.top_size()); ++i) {
      top.push_back({{"token", token.top(i).text()},
                     {"logprob", Logprob(token.top(i).logprob())},
                     {"bytes", bytes(token.top(i).token_id())}});
    }
    content.push_back({{"token", token.text()},
                       {"logprob", token.has_logprob() ? Logprob(token.logprob()) : json()},
                       {"bytes", bytes(token.token_id())},
                       {"top_logprobs", top}});
  }
  return {{"content", content}};
}

json OpenAiResponse(const OpenAiReplyContext& context, const OpenAiRequest& request,
                    std::span<const v1::GenerateResult* const> results, const OpenAiEcho& echo,
                    uint32_t generated_tokens) {
  const bool completions = context.endpoint == OpenAiEndpoint::kCompletions;
  json choices = json::array();
  uint32_t prompt_tokens = 0;
  for (size_t index = 0; index < results.size(); ++index) {
    const v1::GenerateResult& result = *results[index];
    prompt_tokens = result.usage().prompt_tokens();
    json choice = {{"index", index}, {"finish_reason", result.finish_reason()}};
    json logprobs;
    if (request.logprobs) {
      std::vector<v1::TokenLogprob> tokens = echo.tokens;
      tokens.insert(tokens.end(), result.logprobs().begin(), result.logprobs().end());
      logprobs = OpenAiLogprobs(context, tokens, request.top_logprobs, 0);
    }
    if (completions) {
      choice["text"] = echo.text + result.text();
    } else {
      choice["message"] = {{"role", "assistant"}, {"content", result.text()}};
    }
    choice["logprobs"] = logprobs;
    choices.push_back(std::move(choice));
  }
  return {{"id", context.id},
          {"object", completions ? "text_completion" : "chat.completion"},
          {"created", context.created},
          {"model", context.model},
          {"choices", choices},
          {"usage",
           {{"prompt_tokens", prompt_tokens},
            {"completion_tokens", generated_tokens},
            {"total_tokens", prompt_tokens + generated_tokens}}}};
}

json OpenAiChunk(const OpenAiReplyContext& context, int index, const std::string& delta,
                 const json& logprobs, const std::string& finish_reason, bool first) {
  const bool completions = context.endpoint == OpenAiEndpoint::kCompletions;
  json choice = {{"index", index},
                 {"finish_reason", finish_reason.empty() ? json() : json(finish_reason)},
                 {"logprobs", logprobs}};
  if (completions) {
    choice["text"] = delta;
  } else {
    json message_delta = json::object();
    if (first) message_delta["role"] = "assistant";
    if (!delta.empty() || finish_reason.empty()) message_delta["content"] = delta;
    choice["delta"] = message_delta;
  }
  return {{"id", context.id},
          {"object", completions ? "text_completion" : "chat.completion.chunk"},
          {"created", context.created},
          {"model", context.model},
          {"choices", json::array({choice})}};
}

json OpenAiUsageChunk(const OpenAiReplyContext& context, uint32_t prompt_tokens,
                      uint32_t generated_tokens) {
  return {{"id", context.id},
          {"object", context.endpoint == OpenAiEndpoint::kCompletions ? "text_completion"
                                                                      : "chat.completion.chunk"},
          {"created", context.created},
          {"model", context.model},
          {"choices", json::array()},
          {"usage",
           {{"prompt_tokens", prompt_tokens},
            {"completion_tokens", generated_tokens},
            {"total_tokens", prompt_tokens + generated_tokens}}}};
}

}  // namespace sculpt
