// The v1 reflection reactor: one request read, answered and written at a time, so answers come
// back in request order with at most one write in flight and no gRPC thread ever waits.
#include "server/reflection_service.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"

namespace sculpt {

namespace {

using google::protobuf::DescriptorPool;
using google::protobuf::FileDescriptor;
using grpc::reflection::v1::ServerReflectionRequest;
using grpc::reflection::v1::ServerReflectionResponse;

void SetError(grpc::StatusCode code, std::string message, ServerReflectionResponse& response) {
  response.mutable_error_response()->set_error_code(static_cast<int>(code));
  response.mutable_error_response()->set_error_message(std::move(message));
}

// `file` and then, depth first, every file it imports, each once (as upstream's reflection does).
void AddFileAndDependencies(const FileDescriptor& file, std::set<std::string>& seen,
                            ServerReflectionResponse& response) {
  if (!seen.insert(file.name()).second) return;
  google::protobuf::FileDescriptorProto proto;
  file.CopyTo(&proto);
  response.mutable_file_descriptor_response()->add_file_descriptor_proto(proto.SerializeAsString());
  for (int i = 0; i < file.dependency_count(); ++i) {
    AddFileAndDependencies(*file.dependency(i), seen, response);
  }
}

void AnswerWithFile(const FileDescriptor* file, std::string not_found,
                    ServerReflectionResponse& response) {
  if (file == nullptr) {
    SetError(grpc::StatusCode::NOT_FOUND, std::move(not_found), response);
    return;
  }
  std::set<std::string> seen;
  AddFileAndDependencies(*file, seen, response);
}

ServerReflectionResponse Answer(const ServerReflectionRequest& request,
                                const std::vector<std::string>& service_names) {
  // The generated pool loads every message compiled into the binary on first use.
  const DescriptorPool& pool = *DescriptorPool::generated_pool();
  ServerReflectionResponse response;
  response.set_valid_host(request.host());
  *response.mutable_original_request() = request;
  switch (request.message_request_case()) {
    case ServerReflectionRequest::kFileByFilename:
      AnswerWithFile(pool.FindFileByName(request.file_by_filename()),
                     absl::StrCat("file not found: ", request.file_by_filename()), response);
      break;
    case ServerReflectionRequest::kFileContainingSymbol:
      // Services, methods, messages, fields, enums, enum values and extensions, nested or not.
      AnswerWithFile(pool.FindFileContainingSymbol(request.file_containing_symbol()),
                     absl::StrCat("symbol not found: ", request.file_containing_symbol()),
                     response);
      break;
    case ServerReflectionRequest::kFileContainingExtension: {
      const auto& extension = request.file_containing_extension();
      const google::protobuf::Descriptor* type =
          pool.FindMessageTypeByName(extension.containing_type());
      if (type == nullptr) {
        SetError(grpc::StatusCode::NOT_FOUND,
                 absl::StrCat("message type not found: ", extension.containing_type()), response);
        break;
      }
      const google::protobuf::FieldDescriptor* field =
          pool.FindExtensionByNumber(type, extension.extension_number());
      AnswerWithFile(field == nullptr ? nullptr : field->file(),
                     absl::StrCat("extension ", extension.extension_number(), " of ",
                                  extension.containing_type(), " not found"),
                     response);
      break;
    }
    case ServerReflectionRequest::kAllExtensionNumbersOfType: {
      const std::string& name = request.all_extension_numbers_of_type();
      const google::protobuf::Descriptor* type = pool.FindMessageTypeByName(name);
      if (type == nullptr) {
        SetError(grpc::StatusCode::NOT_FOUND, absl::StrCat("message type not found: ", name),
                 response);
        break;
      }
      std::vector<const google::protobuf::FieldDescriptor*> extensions;
      pool.FindAllExtensions(type, &extensions);
      auto* numbers = response.mutable_all_extension_numbers_response();
      numbers->set_base_type_name(name);
      for (const google::protobuf::FieldDescriptor* field : extensions) {
        numbers->add_extension_number(field->number());
      }
      break;
    }
    case ServerReflectionRequest::kListServices:
      for (const std::string& name : service_names) {
        response.mutable_list_services_response()->add_service()->set_name(name);
      }
      break;
    case ServerReflectionRequest::MESSAGE_REQUEST_NOT_SET:
      SetError(grpc::StatusCode::INVALID_ARGUMENT,
               "the request sets none of file_by_filename, file_containing_symbol, "
               "file_containing_extension, all_extension_numbers_of_type, list_services",
               response);
      break;
  }
  return response;
}

class ReflectionReactor final
    : public grpc::ServerBidiReactor<ServerReflectionRequest, ServerReflectionResponse> {
 public:
  explicit ReflectionReactor(const std::vector<std::string>& service_names)
      : service_names_(service_names) {
    StartRead(&request_);
  }

  // Not ok: the client half-closed, or the call was cancelled (then Finish is a no-op).
  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::OK);
      return;
    }
    response_ = Answer(request_, service_names_);
    StartWrite(&response_);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client stopped reading"));
      return;
    }
    StartRead(&request_);
  }

  void OnDone() override { delete this; }

 private:
  const std::vector<std::string>& service_names_;  // the service's, which outlives its calls
  ServerReflectionRequest request_;
  ServerReflectionResponse response_;
};

}  // namespace

ReflectionService::ReflectionService(std::vector<std::string> service_names)
    : service_names_(std::move(service_names)) {}

grpc::ServerBidiReactor<ServerReflectionRequest, ServerReflectionResponse>*
ReflectionService::ServerReflectionInfo(grpc::CallbackServerContext* /*context*/) {
  return new ReflectionReactor(service_names_);
}

}  // namespace sculpt
