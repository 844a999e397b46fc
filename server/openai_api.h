// The OpenAI-compatible shapes: /v1/completions and /v1/chat/completions bodies to a
// GenerateRequest (diffusion parameters accepted as extra fields), and results back to
// OpenAI's response and streaming-chunk objects.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sculpt/v1/text_diffusion.pb.h"

namespace sculpt {

enum class OpenAiEndpoint { kCompletions, kChatCompletions };

// A request error in OpenAI's shape needs the offending parameter.
struct OpenAiError {
  absl::Status status;
  std::string param;  // empty when no single field is at fault
};

struct OpenAiRequest {
  v1::GenerateRequest generate;  // the first sample's; SampleRequest gives each sample's
  bool stream = false;
  bool include_usage = false;
  std::string model;      // as given (echoed back)
  int n = 1;              // choices returned
  int best_of = 1;        // samples generated (>= n): the n of highest mean log-probability return
  bool logprobs = false;  // choices carry log-probabilities
  int top_logprobs = 0;   // alternatives per token
  bool echo = false;      // completions: the prompt comes back before the answer
};

// At most this many samples (n, best_of) per request: each is a sequence of its own.
inline constexpr int kMaxOpenAiSamples = 16;

// Sample `index`'s request: separate sequences with derived seeds (sample 0 keeps the seed, so
// n = 1 is the plain request), their log-probabilities on when best_of ranks them.
v1::GenerateRequest SampleRequest(const OpenAiRequest& request, int index);

// Mean log-probability of a result's committed tokens (best_of's ranking); -inf for none.
double MeanCommittedLogprob(const v1::GenerateResult& result);

// INVALID_ARGUMENT with the field named, for wrong types, out-of-range values and fields this
// server does not implement.
absl::StatusOr<OpenAiRequest> ParseOpenAiRequest(OpenAiEndpoint endpoint,
                                                 const nlohmann::json& body,
                                                 std::string* error_param);

// {"error": {"message", "type", "param", "code"}} for a status.
nlohmann::json OpenAiErrorBody(const absl::Status& status, const std::string& param);
// The HTTP status for a gRPC-style status (DESIGN §5).
int HttpStatusFor(const absl::Status& status);

// What every response and chunk of one request shares.
struct OpenAiReplyContext {
  OpenAiEndpoint endpoint = OpenAiEndpoint::kCompletions;
  std::string id;
  int64_t created = 0;
  std::string model;
  // The raw bytes of a token (chat logprobs' `bytes`).
  std::function<std::string(int32_t)> token_bytes;
  // How many bytes a token adds to the returned text (0 for special tokens, which it skips):
  // completions' text_offset.
  std::function<size_t(int32_t)> text_bytes;
};

// A prompt given back by echo: its text and, for logprobs, its tokens (log-probability null:
// a diffusion model commits no prompt token).
struct OpenAiEcho {
  std::string text;
  std::vector<v1::TokenLogprob> tokens;
};

// Log-probabilities in the endpoint's shape: completions' {tokens, token_logprobs,
// top_logprobs, text_offset} (offsets from `text_offset`), chat's {content: [...]}.
nlohmann::json OpenAiLogprobs(const OpenAiReplyContext& context,
                              std::span<const v1::TokenLogprob> tokens, int top_logprobs,
                              size_t text_offset);

// The non-streaming response object: one choice per result, in order; usage counts the prompt
// once and every sample generated (`generated_tokens`, best_of's discarded ones included).
nlohmann::json OpenAiResponse(const OpenAiReplyContext& context, const OpenAiRequest& request,
                              std::span<const v1::GenerateResult* const> results,
                              const OpenAiEcho& echo, uint32_t generated_tokens);
// One streaming chunk of choice `index`: `delta` text (with its tokens' log-probabilities, or
// null), or the finish reason on the last one.
nlohmann::json OpenAiChunk(const OpenAiReplyContext& context, int index, const std::string& delta,
                           const nlohmann::json& logprobs, const std::string& finish_reason,
                           bool first);
// The usage-only chunk sent last when stream_options.include_usage is set.
nlohmann::json OpenAiUsageChunk(const OpenAiReplyContext& context, uint32_t prompt_tokens,
                                uint32_t generated_tokens);

}  // namespace sculpt
