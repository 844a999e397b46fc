// From a GenerateRequest message to a validated, tokenized scheduler Request: every check runs
// here, before anything is allocated for the generation, and every error names the field.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/generation_request.h"
#include "scheduler/scheduler.h"
#include "sculpt/v1/text_diffusion.pb.h"
#include "server/served_model.h"

namespace sculpt {

struct RequestLimits {
  GenerationLimits generation;
  int max_request_id_bytes = 128;
  int max_min_interval_ms = 60'000;
};

// What the front end keeps about a request once the scheduler has it.
struct BuiltRequest {
  std::string request_id;
  int gen_length = 0;     // the answer region (infill: the canvas)
  int planned_steps = 0;  // Generation::planned_steps()
  int prompt_tokens = 0;
  bool infill = false;
  bool suffix = false;                  // prompt + suffix: the answer is the filled middle
  int logprobs = -1;                    // GenerationParams::logprobs
  std::vector<int32_t> initial_canvas;  // infill: the template's canvas, for the filled spans
  bool include_text = true;
  bool include_token_ids = true;
};

// The scheduler's request and the front end's summary of it.
struct BuildResult {
  BuiltRequest built;
  Request request;
};

// NOT_FOUND for another model's name; INVALID_ARGUMENT naming the field for everything else.
absl::StatusOr<BuildResult> BuildRequest(const v1::GenerateRequest& message,
                                         const ServedModel& model, const RequestLimits& limits);

}  // namespace sculpt
