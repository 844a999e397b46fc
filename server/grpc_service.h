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
// reflection services included); a generation's line carries its request id, and a call with a
// valid API key (checked by `gatekeeper`, when not null) the key's id.
void AddGrpcAccessLog(grpc::ServerBuilder& builder, AccessLog& log, const Gatekeeper* gatekeeper);

// Generate, Complete, Refine and Tokenize receive their requests as bytes (gRPC's raw callback
// methods) and parse them in ParseRequest: their text fields are checked for UTF-8 first, by name,
// because protobuf refuses a whole message over one invalid string without saying which, and
// gRPC then answers UNIMPLEMENTED with no message. Their answers are the proto messages,
// serialised.
using TextDiffusionBase = v1::TextDiffusion::WithRawCallbackMethod_Generate<
    v1::TextDiffusion::WithRawCallbackMethod_Complete<
        v1::TextDiffusion::WithRawCallbackMethod_Refine<
            v1::TextDiffusion::WithRawCallbackMethod_Tokenize<
                v1::TextDiffusion::WithCallbackMethod_Detokenize<
                    v1::TextDiffusion::WithCallbackMethod_ListModels<
                        v1::TextDiffusion::WithCallbackMethod_GetServerInfo<
                            v1::TextDiffusion::Service>>>>>>>;

// A request message from its bytes: INVALID_ARGUMENT naming the field ("messages[1].content")
// whose text is not UTF-8, or saying that the bytes are not a `Message` at all.
template <typename Message>
absl::StatusOr<Message> ParseRequest(const grpc::ByteBuffer& bytes);

class TextDiffusionService final : public TextDiffusionBase {
 public:
  explicit TextDiffusionService(FrontEnd& front_end);

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Generate(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Refine(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* Complete(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* result) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;
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
