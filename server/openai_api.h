// The OpenAI-compatible shapes: /v1/completions and /v1/chat/completions bodies to a
// GenerateRequest (diffusion parameters accepted as extra fields), and results back to
// OpenAI's response and streaming-chunk objects.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

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
  v1::GenerateRequest generate;
  bool stream = false;
  bool include_usage = false;
  std::string model;  // as given (echoed back)
};

// INVALID_ARGUMENT with the field named, for wrong types, out-of-range values and n > 1.
absl::StatusOr<OpenAiRequest> ParseOpenAiRequest(OpenAiEndpoint endpoint,
                                                 const nlohmann::json& body,
                                                 std::string* error_param);

// {"error": {"message", "type", "param", "code"}} for a status.
nlohmann::json OpenAiErrorBody(const absl::Status& status, const std::string& param);
// The HTTP status for a gRPC-style status (DESIGN §5).
int HttpStatusFor(const absl::Status& status);

// The non-streaming response object.
nlohmann::json OpenAiResponse(OpenAiEndpoint endpoint, const std::string& id, int64_t created,
                              const std::string& model, const v1::GenerateResult& result);
// One streaming chunk: `delta` text, or the finish reason on the last one.
nlohmann::json OpenAiChunk(OpenAiEndpoint endpoint, const std::string& id, int64_t created,
                           const std::string& model, const std::string& delta,
                           const std::string& finish_reason, bool first);
// The usage-only chunk sent last when stream_options.include_usage is set.
nlohmann::json OpenAiUsageChunk(OpenAiEndpoint endpoint, const std::string& id, int64_t created,
                                const std::string& model, const v1::Usage& usage);

}  // namespace sculpt
