// grpc.reflection.v1.ServerReflection over gRPC's callback API, answered from protobuf's
// generated pool. Debian's grpc 1.51 serves only v1alpha (its plugin stays registered beside
// this); newer clients (grpcurl, ghz, grpcio-reflection, Postman) ask for v1 first.
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>
#include <vector>

#include "grpc/reflection/v1/reflection.grpc.pb.h"

namespace sculpt {

class ReflectionService final : public grpc::reflection::v1::ServerReflection::CallbackService {
 public:
  // `service_names`: the full names of every service the server registers (this one included),
  // in the order list_services reports them.
  explicit ReflectionService(std::vector<std::string> service_names);

  grpc::ServerBidiReactor<grpc::reflection::v1::ServerReflectionRequest,
                          grpc::reflection::v1::ServerReflectionResponse>*
  ServerReflectionInfo(grpc::CallbackServerContext* context) override;

 private:
  const std::vector<std::string> service_names_;
};

}  // namespace sculpt
