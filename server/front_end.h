// What the gRPC service and the HTTP gateway share: validation and submission of generations,
// the other requests of the API, and engine events turned into API messages. Both front ends
// speak the proto's messages, so they cannot drift apart.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "scheduler/scheduler.h"
#include "sculpt/v1/text_diffusion.pb.h"
#include "server/api_keys.h"
#include "server/metrics.h"
#include "server/request_builder.h"
#include "server/served_model.h"

namespace sculpt {

struct FrontEndOptions {
  RequestLimits limits;
  uint64_t max_request_bytes = 4 << 20;
  std::string version;
  // API keys and per-key limits; null: every request is admitted without a key.
  Gatekeeper* gatekeeper = nullptr;
};

// A process-unique id for a request whose client gave none.
std::string NewRequestId();

struct Submitted {
  BuiltRequest built;  // what the request was, for describing its events
  std::unique_ptr<RequestHandle> handle;
  std::shared_ptr<EditInbox> edits;  // a refine session's; null otherwise
};

// The engine's kind of an API edit (remask when it names none, for refusing it).
EditKind EditKindOf(const v1::Edit& edit);

class FrontEnd {
 public:
  FrontEnd(const ServedModel& model, Scheduler& scheduler, Metrics* metrics,
           FrontEndOptions options);

  // Validates and queues a generation of `caller` (admitted under its key's limits: refused with
  // RESOURCE_EXHAUSTED and a retry-after payload beyond them). Refusals are counted in the
  // metrics. With `refine`, the request opens a refine session: its handle takes edits (edits),
  // and with `start_paused` no step runs before a resume.
  absl::StatusOr<Submitted> Submit(const v1::GenerateRequest& request,
                                   std::optional<std::chrono::steady_clock::time_point> deadline,
                                   const Caller& caller, bool refine = false,
                                   bool start_paused = false);

  // The caller of an API request by its Authorization value (UNAUTHENTICATED when keys are on
  // and it presents none that is valid, counted by `protocol`).
  absl::StatusOr<Caller> Authenticate(std::string_view authorization,
                                      const std::string& protocol) const;

  // An API edit as the engine's: text encoded, ban strings turned into the tokens that contain
  // them, sizes checked before anything is allocated. INVALID_ARGUMENT naming the field. An
  // empty edit_id becomes `default_id`.
  absl::StatusOr<DraftEdit> BuildEdit(const v1::Edit& edit, const std::string& default_id) const;

  absl::StatusOr<v1::TokenizeResponse> Tokenize(const v1::TokenizeRequest& request) const;
  absl::StatusOr<v1::DetokenizeResponse> Detokenize(const v1::DetokenizeRequest& request) const;
  v1::ListModelsResponse ListModels() const;
  v1::ServerInfo ServerInfo() const;

  // An engine event as the API's message, built here only: gRPC writes it, the native HTTP
  // API serialises it, the OpenAI layer translates it. `terminal` instead of a message when the
  // request ended without a result worth sending (a failure, or a deadline that passed while
  // queued).
  struct Response {
    v1::GenerateResponse message;  // one of accepted, step, block, final
    std::optional<absl::Status> terminal;
    bool last = false;  // the request's final event: nothing follows
  };
  Response ToResponse(const BuiltRequest& built, const StreamEvent& event) const;

  // A token's text for log-probabilities: its bytes, or "bytes:\xNN..." when they are not
  // complete UTF-8 on their own (OpenAI's spelling).
  std::string TokenText(int32_t id) const;

  const ServedModel& model() const { return model_; }
  Scheduler& scheduler() { return scheduler_; }
  const FrontEndOptions& options() const { return options_; }

 private:
  absl::Status CheckModel(const std::string& name) const;
  void FillModelInfo(v1::ModelInfo& info) const;
  void FillSpan(const BuiltRequest& built, int32_t position, std::vector<int32_t> tokens,
                v1::Span& span) const;
  void FillAccepted(const BuiltRequest& built, const AcceptedEvent& event,
                    v1::Accepted& accepted) const;
  void FillDraft(const BuiltRequest& built, const DraftEvent& event, v1::StepDraft& draft) const;
  void FillTokenLogprob(const BuiltRequest& built, const TokenLogprob& record,
                        v1::TokenLogprob& out) const;
  void FillBlock(const BuiltRequest& built, const BlockEvent& event,
                 v1::BlockCommitted& block) const;
  void FillFinal(const BuiltRequest& built, const FinalEvent& event,
                 v1::GenerateResult& result) const;
  absl::StatusOr<DraftEdit> ReadEdit(const v1::Edit& edit, const std::string& default_id) const;
  void FillEdit(const BuiltRequest& built, const EditEvent& event, v1::EditResult& result) const;
  // Token ids from an edit's ids or text (`<|mask:N|>` in it gives N masks).
  absl::StatusOr<std::vector<int32_t>> EditTokens(
      const google::protobuf::RepeatedField<int32_t>& ids, const std::string* text,
      const std::string& field) const;
  // Every vocabulary token's decoded text, for bans by string (made on first use).
  const std::vector<std::string>& TokenTexts() const;
  static std::optional<absl::Status> TerminalStatus(const FinalEvent& event);

  const ServedModel& model_;
  Scheduler& scheduler_;
  Metrics* metrics_;
  const FrontEndOptions options_;
  mutable std::once_flag token_texts_once_;
  mutable std::vector<std::string> token_texts_;
};

}  // namespace sculpt
