// The gRPC reactors. A reactor's Pump relays outbox events to gRPC: one write in flight at a
// time, no lock of ours held while calling into gRPC (which may run reactions inline).
#include "server/grpc_service.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status.h"
#include "model/text_io.h"

namespace sculpt {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

namespace {

std::string NewRequestId() {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t process_tag = std::random_device{}();
  return absl::StrFormat("req-%06x-%d", process_tag & 0xffffff, counter.fetch_add(1));
}

// The status a client sees for a request that ended without a result worth sending.
std::optional<absl::Status> TerminalStatus(const FinalEvent& event) {
  if (!event.status.ok()) return event.status;
  if (event.cause == FinishCause::kDeadline && event.steps == 0) {
    return absl::DeadlineExceededError("the deadline passed while the request was queued");
  }
  return std::nullopt;
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

class GenerateReactor final : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  enum class Action { kNone, kWrite, kWriteAndFinish, kFinishWithStatus };

  GenerateReactor(TextDiffusionService* service, grpc::CallbackServerContext* context,
                  const v1::GenerateRequest* request)
      : service_(service) {
    auto submitted = service->Submit(context, *request);
    if (!submitted.ok()) {
      Finish(ToGrpcStatus(submitted.status()));
      return;
    }
    built_ = std::move(submitted->first);
    handle_ = std::move(submitted->second);
    request_id_ = built_.request_id;
    relay_ = std::make_shared<Relay<GenerateReactor>>(this);
    handle_->stream()->SetListener([relay = relay_] { relay->Pump(); });
    relay_->Pump();
  }

  RequestStream& stream() { return *handle_->stream(); }

  Action Prepare(StreamEvent event) {
    response_.Clear();
    if (auto* accepted = std::get_if<AcceptedEvent>(&event)) {
      v1::Accepted& message = *response_.mutable_accepted();
      message.set_request_id(request_id_);
      message.set_queue_position(static_cast<uint32_t>(accepted->queue_position));
      message.set_prompt_tokens(static_cast<uint32_t>(built_.prompt_tokens));
      message.set_gen_length(static_cast<uint32_t>(built_.gen_length));
      message.set_total_steps(static_cast<uint32_t>(built_.planned_steps));
      return Action::kWrite;
    }
    if (auto* draft = std::get_if<DraftEvent>(&event)) {
      service_->FillDraft(built_, *draft, *response_.mutable_step());
      return Action::kWrite;
    }
    if (auto* block = std::get_if<BlockEvent>(&event)) {
      service_->FillBlock(built_, *block, *response_.mutable_block());
      return Action::kWrite;
    }
    auto& final_event = std::get<FinalEvent>(event);
    if (auto status = TerminalStatus(final_event)) {
      status_ = ToGrpcStatus(*status);
      return Action::kFinishWithStatus;
    }
    service_->FillFinal(built_, request_id_, final_event, *response_.mutable_final());
    return Action::kWriteAndFinish;
  }

  void Execute(Action action) {
    switch (action) {
      case Action::kNone:
        break;
      case Action::kWrite:
        StartWrite(&response_);
        break;
      case Action::kWriteAndFinish:
        StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
        break;
      case Action::kFinishWithStatus:
        Finish(status_);
        break;
    }
  }

  void OnWriteDone(bool ok) override {
    if (ok) {
      relay_->Done();
    } else if (relay_->Abandon()) {
      handle_->Cancel();
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client stopped reading"));
    }
  }

  void OnCancel() override {
    if (handle_) handle_->Cancel();
  }

  void OnDone() override {
    if (relay_) relay_->Detach();
    delete this;
  }

 private:
  TextDiffusionService* service_;
  BuiltRequest built_;
  std::unique_ptr<RequestHandle> handle_;
  std::shared_ptr<Relay<GenerateReactor>> relay_;
  std::string request_id_;
  v1::GenerateResponse response_;
  grpc::Status status_;
};

class CompleteReactor final : public grpc::ServerUnaryReactor {
 public:
  enum class Action { kNone, kWrite, kFinish };

  CompleteReactor(TextDiffusionService* service, grpc::CallbackServerContext* context,
                  const v1::GenerateRequest* request, v1::GenerateResult* result)
      : service_(service), result_(result) {
    v1::GenerateRequest final_only = *request;
    final_only.mutable_stream_options()->set_mode(v1::StreamOptions::FINAL_ONLY);
    auto submitted = service->Submit(context, final_only);
    if (!submitted.ok()) {
      Finish(ToGrpcStatus(submitted.status()));
      return;
    }
    built_ = std::move(submitted->first);
    handle_ = std::move(submitted->second);
    request_id_ = built_.request_id;
    relay_ = std::make_shared<Relay<CompleteReactor>>(this);
    handle_->stream()->SetListener([relay = relay_] { relay->Pump(); });
    relay_->Pump();
  }

  RequestStream& stream() { return *handle_->stream(); }

  Action Prepare(StreamEvent event) {
    auto* final_event = std::get_if<FinalEvent>(&event);
    if (final_event == nullptr) return Action::kNone;
    if (auto status = TerminalStatus(*final_event)) {
      status_ = ToGrpcStatus(*status);
    } else {
      service_->FillFinal(built_, request_id_, *final_event, *result_);
      status_ = grpc::Status::OK;
    }
    return Action::kFinish;
  }

  void Execute(Action action) {
    if (action == Action::kFinish) Finish(status_);
  }

  void OnCancel() override {
    if (handle_) handle_->Cancel();
  }

  void OnDone() override {
    if (relay_) relay_->Detach();
    delete this;
  }

 private:
  TextDiffusionService* service_;
  v1::GenerateResult* result_;
  BuiltRequest built_;
  std::unique_ptr<RequestHandle> handle_;
  std::shared_ptr<Relay<CompleteReactor>> relay_;
  std::string request_id_;
  grpc::Status status_;
};

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace

TextDiffusionService::TextDiffusionService(const ServedModel& model, Scheduler& scheduler,
                                           ServiceOptions options)
    : model_(model), scheduler_(scheduler), options_(std::move(options)) {}

absl::StatusOr<std::pair<BuiltRequest, std::unique_ptr<RequestHandle>>>
TextDiffusionService::Submit(grpc::CallbackServerContext* context,
                             const v1::GenerateRequest& request) {
  if (scheduler_.draining()) {
    return absl::UnavailableError("the server is shutting down and accepts no new requests");
  }
  SCULPT_ASSIGN_OR_RETURN(BuiltRequest built, BuildRequest(request, model_, options_.limits));
  if (built.request_id.empty()) built.request_id = NewRequestId();
  built.request->request_id = built.request_id;
  const auto deadline = context->deadline();
  if (deadline != std::chrono::system_clock::time_point::max()) {
    built.request->deadline = std::chrono::steady_clock::now() +
                              std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                  deadline - std::chrono::system_clock::now());
  }
  SCULPT_ASSIGN_OR_RETURN(std::unique_ptr<RequestHandle> handle,
                          scheduler_.Submit(std::move(*built.request)));
  built.request.reset();
  return std::make_pair(std::move(built), std::move(handle));
}

void TextDiffusionService::FillSpan(const BuiltRequest& built, int32_t position,
                                    std::vector<int32_t> tokens, v1::Span& span) const {
  span.set_position(static_cast<uint32_t>(position));
  if (built.include_text && model_.tokenizer) {
    auto text = model_.tokenizer->Decode(tokens);
    if (text.ok()) span.set_text(*text);
  }
  if (built.include_token_ids) span.mutable_token_ids()->Add(tokens.begin(), tokens.end());
}

void TextDiffusionService::FillDraft(const BuiltRequest& built, const DraftEvent& event,
                                     v1::StepDraft& draft) const {
  draft.set_step(event.step);
  draft.set_total_steps(static_cast<uint32_t>(built.planned_steps));
  draft.set_block(event.block);
  draft.set_masks_left(static_cast<uint32_t>(event.masks_left));
  // Runs of consecutive positions become one span each.
  auto it = event.committed.begin();
  while (it != event.committed.end()) {
    const int32_t start = it->first;
    std::vector<int32_t> tokens;
    int32_t next = start;
    while (it != event.committed.end() && it->first == next) {
      tokens.push_back(it->second);
      ++next;
      ++it;
    }
    FillSpan(built, start, std::move(tokens), *draft.add_changed());
  }
}

void TextDiffusionService::FillBlock(const BuiltRequest& built, const BlockEvent& event,
                                     v1::BlockCommitted& block) const {
  block.set_block(event.block);
  block.set_step(event.step);
  FillSpan(built, event.start, event.tokens, *block.mutable_tokens());
}

void TextDiffusionService::FillFinal(const BuiltRequest& built, const std::string& request_id,
                                     FinalEvent& event, v1::GenerateResult& result) const {
  result.set_request_id(request_id);
  result.set_model(model_.name);
  result.set_finish_reason(std::string(FinishCauseName(event.cause)));
  if (built.include_text && model_.tokenizer) {
    if (event.stop_text) {
      result.set_text(*event.stop_text);
    } else if (auto text = model_.tokenizer->Decode(event.token_ids, /*skip_special_tokens=*/true);
               text.ok()) {
      result.set_text(*text);
    }
  }
  if (built.include_token_ids) {
    result.mutable_token_ids()->Add(event.token_ids.begin(), event.token_ids.end());
  }
  if (built.infill) {
    auto spans = FilledSpans(model_.tokenizer.get(), model_.config().mask_token_id,
                             built.initial_canvas, event.canvas);
    if (spans.ok()) {
      for (FilledSpan& filled : *spans) {
        v1::Span& span = *result.add_filled();
        span.set_position(static_cast<uint32_t>(filled.start));
        if (built.include_text) span.set_text(filled.text);
        if (built.include_token_ids) {
          span.mutable_token_ids()->Add(filled.tokens.begin(), filled.tokens.end());
        }
      }
    }
  }
  v1::Usage& usage = *result.mutable_usage();
  usage.set_prompt_tokens(static_cast<uint32_t>(built.prompt_tokens));
  usage.set_generated_tokens(static_cast<uint32_t>(event.token_ids.size()));
  usage.set_steps(static_cast<uint32_t>(event.steps));
  usage.set_forward_passes(static_cast<uint32_t>(event.forward_passes));
  v1::Timings& timings = *result.mutable_timings();
  timings.set_queue_ms(event.queue_ms);
  timings.set_first_step_ms(event.first_step_ms);
  timings.set_total_ms(event.total_ms);
}

void TextDiffusionService::FillModelInfo(v1::ModelInfo& info) const {
  const ModelConfig& config = model_.config();
  info.set_name(model_.name);
  info.set_family(config.model_type);
  info.set_vocab_size(static_cast<uint32_t>(config.vocab_size));
  info.set_context_length(static_cast<uint32_t>(config.max_sequence_length));
  info.set_parameters(model_.parameters);
  info.set_mask_token_id(config.mask_token_id);
  info.set_eos_token_id(config.eos_token_id);
  info.set_has_tokenizer(model_.tokenizer != nullptr);
  info.set_has_chat_format(model_.chat_format.has_value());
}

grpc::ServerWriteReactor<v1::GenerateResponse>* TextDiffusionService::Generate(
    grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  return new GenerateReactor(this, context, request);
}

grpc::ServerUnaryReactor* TextDiffusionService::Complete(grpc::CallbackServerContext* context,
                                                         const v1::GenerateRequest* request,
                                                         v1::GenerateResult* result) {
  return new CompleteReactor(this, context, request, result);
}

grpc::ServerUnaryReactor* TextDiffusionService::Tokenize(grpc::CallbackServerContext* context,
                                                         const v1::TokenizeRequest* request,
                                                         v1::TokenizeResponse* response) {
  if (!request->model().empty() && request->model() != model_.name) {
    return FinishNow(context, absl::NotFoundError(absl::StrCat("model '", request->model(),
                                                               "' is not served here")));
  }
  if (!model_.tokenizer) {
    return FinishNow(context, absl::FailedPreconditionError(
                                  absl::StrCat("model '", model_.name, "' has no tokenizer")));
  }
  auto ids = model_.tokenizer->Encode(request->text(), request->add_special_tokens());
  if (!ids.ok()) {
    return FinishNow(context,
                     absl::InvalidArgumentError(absl::StrCat("text: ", ids.status().message())));
  }
  for (int32_t id : *ids) {
    response->add_token_ids(id);
    response->add_tokens(model_.tokenizer->IdToToken(id).value_or(""));
  }
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* TextDiffusionService::Detokenize(grpc::CallbackServerContext* context,
                                                           const v1::DetokenizeRequest* request,
                                                           v1::DetokenizeResponse* response) {
  if (!request->model().empty() && request->model() != model_.name) {
    return FinishNow(context, absl::NotFoundError(absl::StrCat("model '", request->model(),
                                                               "' is not served here")));
  }
  if (!model_.tokenizer) {
    return FinishNow(context, absl::FailedPreconditionError(
                                  absl::StrCat("model '", model_.name, "' has no tokenizer")));
  }
  const std::vector<int32_t> ids(request->token_ids().begin(), request->token_ids().end());
  auto text = model_.tokenizer->Decode(ids, request->skip_special_tokens());
  if (!text.ok()) {
    return FinishNow(
        context, absl::InvalidArgumentError(absl::StrCat("token_ids: ", text.status().message())));
  }
  response->set_text(*text);
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* TextDiffusionService::ListModels(grpc::CallbackServerContext* context,
                                                           const v1::ListModelsRequest*,
                                                           v1::ListModelsResponse* response) {
  FillModelInfo(*response->add_models());
  return FinishNow(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* TextDiffusionService::GetServerInfo(grpc::CallbackServerContext* context,
                                                              const v1::GetServerInfoRequest*,
                                                              v1::ServerInfo* response) {
  const SchedulerStats stats = scheduler_.stats();
  response->set_version(options_.version);
  FillModelInfo(*response->mutable_model());
  response->set_running(static_cast<uint32_t>(stats.running));
  response->set_waiting(static_cast<uint32_t>(stats.waiting));
  response->set_free_slots(static_cast<uint32_t>(stats.free_slots));
  response->set_draining(scheduler_.draining());
  response->set_steps_total(stats.steps_total);
  response->set_recent_step_ms(stats.recent_step_ms);
  response->set_device(model_.device);
  v1::Limits& limits = *response->mutable_limits();
  const SchedulerOptions& options = scheduler_.options();
  limits.set_max_num_seqs(static_cast<uint32_t>(options.budgets.max_num_seqs));
  limits.set_max_num_batched_tokens(static_cast<uint32_t>(options.budgets.max_num_batched_tokens));
  limits.set_max_queued_requests(static_cast<uint32_t>(options.max_queued_requests));
  limits.set_max_request_bytes(options_.max_request_bytes);
  limits.set_max_stop_strings(static_cast<uint32_t>(options_.limits.max_stop_strings));
  limits.set_max_stop_string_bytes(static_cast<uint32_t>(options_.limits.max_stop_string_bytes));
  return FinishNow(context, absl::OkStatus());
}

}  // namespace sculpt
