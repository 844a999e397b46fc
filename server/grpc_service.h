// sculpt.v1.TextDiffusion over gRPC's callback API: one reactor per generation RPC. Reactors
// submit requests through the shared FrontEnd and relay each request's events to its client as
// fast as the client reads; the engine never waits for them.
#pragma once

#include <grpcpp/grpcpp.h>

#include "sculpt/v1/text_diffusion.grpc.pb.h"
#include "server/access_log.h"
#include "server/front_end.h"

namespace sculpt {

// absl and gRPC share the status codes; messages pass through unchanged.
grpc::Status ToGrpcStatus(const absl::Status& status);

// Writes one access-log line for every call the server built by `builder` answers (the health and
// reflection services included); a generation's line carries its request id.
void AddGrpcAccessLog(grpc::ServerBuilder& builder, AccessLog& log);

class TextDiffusionService final : public v1::TextDiffusion::CallbackService {
 public:
  explicit TextDiffusionService(FrontEnd& front_end);

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

 private:
  FrontEnd& front_end_;
};

}  // namespace sculpt
