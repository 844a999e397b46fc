// sculpt.v1.TextDiffusion over gRPC's callback API: one reactor per RPC. Reactors validate and
// submit requests to the scheduler and relay each request's events to its client as fast as
// the client reads; the engine never waits for them.
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>

#include "scheduler/scheduler.h"
#include "sculpt/v1/text_diffusion.grpc.pb.h"
#include "server/request_builder.h"
#include "server/served_model.h"

namespace sculpt {

struct ServiceOptions {
  RequestLimits limits;
  uint64_t max_request_bytes = 4 << 20;
  std::string version;
};

// absl and gRPC share the status codes; messages pass through unchanged.
grpc::Status ToGrpcStatus(const absl::Status& status);

class TextDiffusionService final : public v1::TextDiffusion::CallbackService {
 public:
  TextDiffusionService(const ServedModel& model, Scheduler& scheduler, ServiceOptions options);

  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* context, const v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* Complete(grpc::CallbackServerContext* context,
                                     const v1::GenerateRequest* request,
                                     v1::GenerateResult* result) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const v1::TokenizeRequest* request,
                                     v1::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* Detokenize(grpc::CallbackServerContext* context,
                                       const v1::DetokenizeRequest* request,
                                       v1::DetokenizeResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* GetServerInfo(grpc::CallbackServerContext* context,
                                          const v1::GetServerInfoRequest* request,
                                          v1::ServerInfo* response) override;

  // Validates and queues a generation; the deadline is the RPC's.
  absl::StatusOr<std::pair<BuiltRequest, std::unique_ptr<RequestHandle>>> Submit(
      grpc::CallbackServerContext* context, const v1::GenerateRequest& request);

  const ServedModel& model() const { return model_; }
  // Engine events to their messages.
  void FillFinal(const BuiltRequest& built, const std::string& request_id, FinalEvent& event,
                 v1::GenerateResult& result) const;
  void FillDraft(const BuiltRequest& built, const DraftEvent& event, v1::StepDraft& draft) const;
  void FillBlock(const BuiltRequest& built, const BlockEvent& event,
                 v1::BlockCommitted& block) const;

 private:
  void FillModelInfo(v1::ModelInfo& info) const;
  void FillSpan(const BuiltRequest& built, int32_t position, std::vector<int32_t> tokens,
                v1::Span& span) const;

  const ServedModel& model_;
  Scheduler& scheduler_;
  const ServiceOptions options_;
};

}  // namespace sculpt
