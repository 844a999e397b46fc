// The gRPC reactors. A reactor's Relay passes outbox events to gRPC: one write in flight at a
// time, no lock of ours held while calling into gRPC (which may run reactions inline).
#include "server/grpc_service.h"

#include <google/protobuf/unknown_field_set.h>
#include <grpcpp/support/server_interceptor.h>

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "model/tokenizer/utf8.h"

namespace sculpt {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

namespace {

constexpr const char* kRequestIdKey = "x-request-id";
constexpr const char* kAuthorizationKey = "authorization";

std::string_view ClientMetadata(const grpc::ServerContextBase& context, std::string_view key) {
  const auto& metadata = context.client_metadata();
  const auto found = metadata.find(grpc::string_ref(key.data(), key.size()));
  if (found == metadata.end()) return {};
  return std::string_view(found->second.data(), found->second.size());
}

// The caller of a call by its `authorization` metadata (UNAUTHENTICATED when keys are on and it
// has none that is valid).
absl::StatusOr<Caller> Authenticate(const FrontEnd& front_end,
                                    const grpc::ServerContextBase& context) {
  return front_end.Authenticate(ClientMetadata(context, kAuthorizationKey), "grpc");
}

// A refusal's status; one that asks the client to wait says for how long in the trailers
// (`retry-after` in seconds, as HTTP says it, and gRPC's own `grpc-retry-pushback-ms`).
grpc::Status Refusal(grpc::CallbackServerContext* context, const absl::Status& status) {
  if (const int seconds = RetryAfterSeconds(status); seconds > 0) {
    context->AddTrailingMetadata("retry-after", absl::StrCat(seconds));
    context->AddTrailingMetadata("grpc-retry-pushback-ms", absl::StrCat(seconds * 1000));
  }
  return ToGrpcStatus(status);
}

std::optional<std::chrono::steady_clock::time_point> DeadlineOf(
    grpc::CallbackServerContext* context) {
  const auto deadline = context->deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return std::nullopt;
  return std::chrono::steady_clock::now() +
         std::chrono::duration_cast<std::chrono::steady_clock::duration>(
             deadline - std::chrono::system_clock::now());
}

template <typename Message>
grpc::ServerUnaryReactor* FinishWith(grpc::CallbackServerContext* context,
                                     absl::StatusOr<Message> result, Message* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (result.ok()) {
    *response = std::move(*result);
    reactor->Finish(grpc::Status::OK);
  } else {
    reactor->Finish(ToGrpcStatus(result.status()));
  }
  return reactor;
}

std::string Bytes(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (!buffer.Dump(&slices).ok()) return bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return bytes;
}

grpc::ByteBuffer Serialized(const google::protobuf::Message& message) {
  grpc::Slice slice(message.SerializeAsString());
  return grpc::ByteBuffer(&slice, 1);
}

// Every string field of `fields` (read as `descriptor`), nested messages included, is UTF-8.
absl::Status CheckTextFields(const google::protobuf::UnknownFieldSet& fields,
                             const google::protobuf::Descriptor& descriptor,
                             const std::string& path) {
  std::map<int, int> seen;  // field number -> occurrences so far (the index of a repeated one)
  for (int i = 0; i < fields.field_count(); ++i) {
    const google::protobuf::UnknownField& field = fields.field(i);
    const int index = seen[field.number()]++;
    if (field.type() != google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) continue;
    const google::protobuf::FieldDescriptor* known = descriptor.FindFieldByNumber(field.number());
    if (known == nullptr) continue;
    std::string name = path.empty() ? known->name() : absl::StrCat(path, ".", known->name());
    if (known->is_repeated()) absl::StrAppend(&name, "[", index, "]");
    if (known->type() == google::protobuf::FieldDescriptor::TYPE_STRING) {
      if (absl::Status valid = ValidateUtf8(field.length_delimited(), name); !valid.ok()) {
        return valid;
      }
    } else if (known->type() == google::protobuf::FieldDescriptor::TYPE_MESSAGE) {
      google::protobuf::UnknownFieldSet inner;
      if (inner.ParseFromString(field.length_delimited())) {
        SCULPT_RETURN_IF_ERROR(CheckTextFields(inner, *known->message_type(), name));
      }
    }
  }
  return absl::OkStatus();
}

// Serialises gRPC operations of one reactor: Pump may be called from the engine thread (a new
// event) and from gRPC threads (a write finished) at the same time.
template <typename Reactor>
class Relay {
 public:
  explicit Relay(Reactor* reactor) : reactor_(reactor) {}

  void Pump() {
    std::unique_lock lock(mutex_);
    if (reactor_ == nullptr || busy_ || finished_) return;
    Reactor* reactor = reactor_;
    while (true) {
      std::optional<StreamEvent> event = reactor->stream().Pop();
      if (!event) return;
      typename Reactor::Action action = reactor->Prepare(std::move(*event));
      if (action == Reactor::Action::kNone) continue;
      busy_ = true;
      if (action != Reactor::Action::kWrite) finished_ = true;
      lock.unlock();
      reactor->Execute(action);
      return;
    }
  }

  // A write completed.
  void Done() {
    {
      std::lock_guard lock(mutex_);
      busy_ = false;
    }
    Pump();
  }

  // A write failed: the client is gone. True when the caller must finish the RPC.
  bool Abandon() {
    std::lock_guard lock(mutex_);
    busy_ = false;
    if (finished_) return false;
    finished_ = true;
    return true;
  }

  void Detach() {
    std::lock_guard lock(mutex_);
    reactor_ = nullptr;
  }

 private:
  std::mutex mutex_;
  Reactor* reactor_;
  bool busy_ = false;
  bool finished_ = false;
};

// One generation's side of a reactor: the built request, its handle in the engine and the relay
// that carries its events to the reactor (Reactor::Prepare, then Execute).
template <typename Reactor>
class GenerationCall {
 public:
  GenerationCall(FrontEnd* front_end, grpc::CallbackServerContext* context)
      : front_end_(front_end), caller_(Authenticate(*front_end, *context)) {}

  // The caller's key was checked when the call arrived: the status to finish with at once when
  // it is not valid.
  std::optional<grpc::Status> Unauthenticated() const {
    if (caller_.ok()) return std::nullopt;
    return ToGrpcStatus(caller_.status());
  }

  // Submits the request and starts relaying its events to `reactor`; on refusal, the status the
  // reactor must finish with.
  std::optional<grpc::Status> Start(Reactor* reactor, grpc::CallbackServerContext* context,
                                    const v1::GenerateRequest& request, bool refine = false,
                                    bool start_paused = false) {
    if (auto refused = Unauthenticated()) return refused;
    absl::StatusOr<Submitted> submitted = absl::UnknownError("");
    const auto id = context->client_metadata().find(kRequestIdKey);
    if (request.request_id().empty() && id != context->client_metadata().end()) {
      // The client's x-request-id names the request when its message does not.
      v1::GenerateRequest named = request;
      named.set_request_id(std::string(id->second.data(), id->second.size()));
      submitted = front_end_->Submit(named, DeadlineOf(context), *caller_, refine, start_paused);
    } else {
      submitted = front_end_->Submit(request, DeadlineOf(context), *caller_, refine, start_paused);
    }
    if (!submitted.ok()) return Refusal(context, submitted.status());
    context->AddInitialMetadata(kRequestIdKey, submitted->built.request_id);
    built_ = std::move(submitted->built);
    handle_ = std::move(submitted->handle);
    edits_ = std::move(submitted->edits);
    relay_ = std::make_shared<Relay<Reactor>>(reactor);
    handle_->stream()->SetListener([relay = relay_] { relay->Pump(); });
    relay_->Pump();
    return std::nullopt;
  }

  RequestStream& stream() { return *handle_->stream(); }
  FrontEnd::Response ToResponse(const StreamEvent& event) const {
    return front_end_->ToResponse(built_, event);
  }
  bool started() const { return handle_ != nullptr; }
  FrontEnd& front_end() { return *front_end_; }
  RequestHandle& handle() { return *handle_; }
  EditInbox& edits() { return *edits_; }
  Relay<Reactor>& relay() { return *relay_; }
  void Cancel() {
    if (handle_) handle_->Cancel();
  }
  // The reactor is done: no more events reach it.
  void Detach() {
    if (relay_) relay_->Detach();
  }

 private:
  FrontEnd* front_end_;
  absl::StatusOr<Caller> caller_;
  BuiltRequest built_;
  std::unique_ptr<RequestHandle> handle_;
  std::shared_ptr<EditInbox> edits_;
  std::shared_ptr<Relay<Reactor>> relay_;
};

// The writes of a streaming reactor (Generate, Refine): each event becomes a message written,
// the last one written with the status, or a status alone. `Reactor` is the gRPC reactor
// (StartWrite, StartWriteAndFinish, Finish) and has ToResponse(event) and BeforeFinish().
template <typename Reactor>
class EventWriter {
 public:
  enum class Action { kNone, kWrite, kWriteAndFinish, kFinishWithStatus };

  Action Prepare(StreamEvent event) {
    FrontEnd::Response response = self().ToResponse(event);
    if (response.terminal) {
      status_ = ToGrpcStatus(*response.terminal);
      return Action::kFinishWithStatus;
    }
    response_ = Serialized(response.message);
    return response.last ? Action::kWriteAndFinish : Action::kWrite;
  }

  void Execute(Action action) {
    switch (action) {
      case Action::kNone:
        break;
      case Action::kWrite:
        self().StartWrite(&response_);
        break;
      case Action::kWriteAndFinish:
        self().BeforeFinish();
        self().StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
        break;
      case Action::kFinishWithStatus:
        self().BeforeFinish();
        self().Finish(status_);
        break;
    }
  }

 private:
  Reactor& self() { return static_cast<Reactor&>(*this); }

  grpc::ByteBuffer response_;
  grpc::Status status_;
};

class GenerateReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer>,
                              public EventWriter<GenerateReactor> {
 public:
  GenerateReactor(FrontEnd* front_end, grpc::CallbackServerContext* context,
                  const grpc::ByteBuffer* bytes)
      : call_(front_end, context) {
    if (auto refused = call_.Unauthenticated()) {
      Finish(*refused);
      return;
    }
    absl::StatusOr<v1::GenerateRequest> request = ParseRequest<v1::GenerateRequest>(*bytes);
    if (!request.ok()) {
      Finish(ToGrpcStatus(request.status()));
      return;
    }
    if (auto refused = call_.Start(this, context, *request)) Finish(*refused);
  }

  RequestStream& stream() { return call_.stream(); }
  FrontEnd::Response ToResponse(const StreamEvent& event) const { return call_.ToResponse(event); }
  void BeforeFinish() {}

  void OnWriteDone(bool ok) override {
    if (ok) {
      call_.relay().Done();
    } else if (call_.relay().Abandon()) {
      call_.Cancel();
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client stopped reading"));
    }
  }

  void OnCancel() override { call_.Cancel(); }

  void OnDone() override {
    call_.Detach();
    delete this;
  }

 private:
  GenerationCall<GenerateReactor> call_;
};

// Refine: reads the open message, then edits one at a time. A read is started again only when
// the session's edit inbox has room, so a client that sends edits faster than the engine takes
// them is held back by gRPC's flow control rather than buffered without bound.
class RefineReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                            public EventWriter<RefineReactor> {
 public:
  RefineReactor(FrontEnd* front_end, grpc::CallbackServerContext* context)
      : call_(front_end, context), context_(context), gate_(std::make_shared<ReadGate>(this)) {
    // Nothing of an unauthenticated session is read.
    if (auto refused = call_.Unauthenticated()) {
      gate_->Close();
      Finish(*refused);
      return;
    }
    StartRead(&read_);
  }

  RequestStream& stream() { return call_.stream(); }
  FrontEnd::Response ToResponse(const StreamEvent& event) const { return call_.ToResponse(event); }
  // No read starts once the RPC is finishing.
  void BeforeFinish() { gate_->Close(); }

  void OnReadDone(bool ok) override {
    if (!call_.started()) {
      Open(ok);
      return;
    }
    // The client closed its side (or went away): the generation goes on without more edits.
    if (!ok) return;
    absl::StatusOr<v1::RefineRequest> message = ParseRequest<v1::RefineRequest>(read_);
    const std::string default_id = absl::StrCat("edit-", ++edits_read_);
    absl::StatusOr<DraftEdit> edit = !message.ok() ? absl::StatusOr<DraftEdit>(message.status())
                                     : !message->has_edit()
                                         ? absl::InvalidArgumentError(
                                               "the session is open: every message after the first "
                                               "must be an edit")
                                         : call_.front_end().BuildEdit(message->edit(), default_id);
    if (!edit.ok()) {
      EditEvent refused{
          .edit_id = message.ok() && message->has_edit() && !message->edit().edit_id().empty()
                         ? message->edit().edit_id()
                         : default_id,
          .status = edit.status()};
      if (message.ok() && message->has_edit()) {
        refused.kind = EditKindOf(message->edit());
      }
      call_.stream().PushEdit(std::move(refused));
      StartRead(&read_);
      return;
    }
    const bool room = call_.edits().Push(std::move(*edit));
    call_.handle().EditsArrived();
    // A full inbox calls the gate when it has room again; until then, no read.
    if (room) StartRead(&read_);
  }

  void OnWriteDone(bool ok) override {
    if (ok) {
      call_.relay().Done();
    } else if (call_.relay().Abandon()) {
      call_.Cancel();
      gate_->Close();
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client stopped reading"));
    }
  }

  void OnCancel() override { call_.Cancel(); }

  void OnDone() override {
    gate_->Close();
    call_.Detach();
    delete this;
  }

 private:
  // Lets the engine thread start the next read once the inbox has room, as long as the RPC
  // is still going.
  class ReadGate {
   public:
    explicit ReadGate(RefineReactor* reactor) : reactor_(reactor) {}
    void Open() {
      std::lock_guard lock(mutex_);
      if (reactor_ != nullptr) reactor_->StartRead(&reactor_->read_);
    }
    void Close() {
      std::lock_guard lock(mutex_);
      reactor_ = nullptr;
    }

   private:
    std::mutex mutex_;
    RefineReactor* reactor_;
  };

  void Open(bool ok) {
    if (!ok) {
      gate_->Close();
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "the stream closed before its first message (open)"));
      return;
    }
    absl::StatusOr<v1::RefineRequest> message = ParseRequest<v1::RefineRequest>(read_);
    if (message.ok() && !message->has_open()) {
      message = absl::InvalidArgumentError(
          "the first message of a refine session must be open (a GenerateRequest)");
    }
    if (!message.ok()) {
      gate_->Close();
      Finish(ToGrpcStatus(message.status()));
      return;
    }
    if (auto refused = call_.Start(this, context_, message->open(), /*refine=*/true,
                                   message->start_paused())) {
      gate_->Close();
      Finish(*refused);
      return;
    }
    call_.edits().SetOnRoom([gate = gate_] { gate->Open(); });
    StartRead(&read_);
  }

  GenerationCall<RefineReactor> call_;
  grpc::CallbackServerContext* context_;
  std::shared_ptr<ReadGate> gate_;
  grpc::ByteBuffer read_;
  uint64_t edits_read_ = 0;
};

class CompleteReactor final : public grpc::ServerUnaryReactor {
 public:
  enum class Action { kNone, kWrite, kFinish };

  CompleteReactor(FrontEnd* front_end, grpc::CallbackServerContext* context,
                  const grpc::ByteBuffer* bytes, grpc::ByteBuffer* result)
      : call_(front_end, context), result_(result) {
    if (auto refused = call_.Unauthenticated()) {
      Finish(*refused);
      return;
    }
    absl::StatusOr<v1::GenerateRequest> request = ParseRequest<v1::GenerateRequest>(*bytes);
    if (!request.ok()) {
      Finish(ToGrpcStatus(request.status()));
      return;
    }
    request->mutable_stream_options()->set_mode(v1::StreamOptions::FINAL_ONLY);
    if (auto refused = call_.Start(this, context, *request)) Finish(*refused);
  }

  RequestStream& stream() { return call_.stream(); }

  Action Prepare(StreamEvent event) {
    // A unary call answers with the result only: drafts are not even built.
    if (!std::holds_alternative<FinalEvent>(event)) return Action::kNone;
    FrontEnd::Response response = call_.ToResponse(event);
    if (response.terminal) {
      status_ = ToGrpcStatus(*response.terminal);
    } else {
      *result_ = Serialized(response.message.final());
      status_ = grpc::Status::OK;
    }
    return Action::kFinish;
  }

  void Execute(Action action) {
    if (action == Action::kFinish) Finish(status_);
  }

  void OnCancel() override { call_.Cancel(); }

  void OnDone() override {
    call_.Detach();
    delete this;
  }

 private:
  GenerationCall<CompleteReactor> call_;
  grpc::ByteBuffer* result_;
  grpc::Status status_;
};

// One access-log line per call, written when its status is sent.
class AccessLogInterceptor final : public grpc::experimental::Interceptor {
 public:
  AccessLogInterceptor(grpc::experimental::ServerRpcInfo* info, AccessLog& log,
                       const Gatekeeper* gatekeeper)
      : info_(info), log_(log), gatekeeper_(gatekeeper), start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      const auto* metadata = methods->GetSendInitialMetadata();
      if (const auto id = metadata->find(kRequestIdKey); id != metadata->end()) {
        request_id_ = id->second;
      }
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) {
      if (const grpc::ByteBuffer* message = methods->GetSerializedSendMessage()) {
        bytes_ += message->Length();
      }
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      if (request_id_.empty()) {
        const auto& client = info_->server_context()->client_metadata();
        if (const auto id = client.find(kRequestIdKey); id != client.end()) {
          request_id_ = std::string(id->second.data(), id->second.size());
        }
      }
      std::string key_id;
      if (gatekeeper_ != nullptr) {
        const auto caller =
            gatekeeper_->Authenticate(ClientMetadata(*info_->server_context(), kAuthorizationKey));
        if (caller.ok()) key_id = caller->key_id;
      }
      log_.Write({.protocol = "grpc",
                  .client = info_->server_context()->peer(),
                  .method = info_->method(),
                  .status = static_cast<int>(status.error_code()),
                  .bytes_sent = bytes_,
                  .duration_ms = std::chrono::duration<double, std::milli>(
                                     std::chrono::steady_clock::now() - start_)
                                     .count(),
                  .request_id = request_id_,
                  .key_id = std::move(key_id)});
    }
    methods->Proceed();
  }

 private:
  grpc::experimental::ServerRpcInfo* info_;
  AccessLog& log_;
  const Gatekeeper* gatekeeper_;
  const std::chrono::steady_clock::time_point start_;
  std::string request_id_;
  uint64_t bytes_ = 0;
};

class AccessLogInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  AccessLogInterceptorFactory(AccessLog& log, const Gatekeeper* gatekeeper)
      : log_(log), gatekeeper_(gatekeeper) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new AccessLogInterceptor(info, log_, gatekeeper_);
  }

 private:
  AccessLog& log_;
  const Gatekeeper* gatekeeper_;
};

}  // namespace

template <typename Message>
absl::StatusOr<Message> ParseRequest(const grpc::ByteBuffer& buffer) {
  const std::string bytes = Bytes(buffer);
  google::protobuf::UnknownFieldSet fields;
  Message message;
  if (fields.ParseFromString(bytes)) {
    SCULPT_RETURN_IF_ERROR(CheckTextFields(fields, *Message::descriptor(), ""));
    if (message.ParseFromString(bytes)) return message;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("the request is not a valid ", Message::descriptor()->full_name(), " message"));
}

template absl::StatusOr<v1::GenerateRequest> ParseRequest(const grpc::ByteBuffer&);
template absl::StatusOr<v1::TokenizeRequest> ParseRequest(const grpc::ByteBuffer&);
template absl::StatusOr<v1::RefineRequest> ParseRequest(const grpc::ByteBuffer&);

void AddGrpcAccessLog(grpc::ServerBuilder& builder, AccessLog& log, const Gatekeeper* gatekeeper) {
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> factories;
  factories.push_back(std::make_unique<AccessLogInterceptorFactory>(log, gatekeeper));
  builder.experimental().SetInterceptorCreators(std::move(factories));
}

TextDiffusionService::TextDiffusionService(FrontEnd& front_end) : front_end_(front_end) {}

grpc::ServerWriteReactor<grpc::ByteBuffer>* TextDiffusionService::Generate(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) {
  return new GenerateReactor(&front_end_, context, request);
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* TextDiffusionService::Refine(
    grpc::CallbackServerContext* context) {
  return new RefineReactor(&front_end_, context);
}

grpc::ServerUnaryReactor* TextDiffusionService::Complete(grpc::CallbackServerContext* context,
                                                         const grpc::ByteBuffer* request,
                                                         grpc::ByteBuffer* result) {
  return new CompleteReactor(&front_end_, context, request, result);
}

grpc::ServerUnaryReactor* TextDiffusionService::Tokenize(grpc::CallbackServerContext* context,
                                                         const grpc::ByteBuffer* request,
                                                         grpc::ByteBuffer* response) {
  absl::StatusOr<Caller> caller = Authenticate(front_end_, *context);
  absl::StatusOr<v1::TokenizeRequest> parsed =
      caller.ok() ? ParseRequest<v1::TokenizeRequest>(*request) : caller.status();
  absl::StatusOr<v1::TokenizeResponse> answer =
      parsed.ok() ? front_end_.Tokenize(*parsed) : parsed.status();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (answer.ok()) *response = Serialized(*answer);
  reactor->Finish(answer.ok() ? grpc::Status::OK : ToGrpcStatus(answer.status()));
  return reactor;
}

grpc::ServerUnaryReactor* TextDiffusionService::Detokenize(grpc::CallbackServerContext* context,
                                                           const v1::DetokenizeRequest* request,
                                                           v1::DetokenizeResponse* response) {
  if (absl::StatusOr<Caller> caller = Authenticate(front_end_, *context); !caller.ok()) {
    return FinishWith(context, absl::StatusOr<v1::DetokenizeResponse>(caller.status()), response);
  }
  return FinishWith(context, front_end_.Detokenize(*request), response);
}

grpc::ServerUnaryReactor* TextDiffusionService::ListModels(grpc::CallbackServerContext* context,
                                                           const v1::ListModelsRequest*,
                                                           v1::ListModelsResponse* response) {
  if (absl::StatusOr<Caller> caller = Authenticate(front_end_, *context); !caller.ok()) {
    return FinishWith(context, absl::StatusOr<v1::ListModelsResponse>(caller.status()), response);
  }
  return FinishWith(context, absl::StatusOr<v1::ListModelsResponse>(front_end_.ListModels()),
                    response);
}

grpc::ServerUnaryReactor* TextDiffusionService::GetServerInfo(grpc::CallbackServerContext* context,
                                                              const v1::GetServerInfoRequest*,
                                                              v1::ServerInfo* response) {
  if (absl::StatusOr<Caller> caller = Authenticate(front_end_, *context); !caller.ok()) {
    return FinishWith(context, absl::StatusOr<v1::ServerInfo>(caller.status()), response);
  }
  return FinishWith(context, absl::StatusOr<v1::ServerInfo>(front_end_.ServerInfo()), response);
}

}  // namespace sculpt
