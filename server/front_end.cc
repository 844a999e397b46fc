// Validation, submission and message building shared by the front ends; see front_end.h.
#include "server/front_end.h"

#include <algorithm>
#include <atomic>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status.h"
#include "model/text_io.h"
#include "model/tokenizer/utf8.h"

namespace sculpt {
std::string NewRequestId() {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t process_tag = std::random_device{}();
  return absl::StrFormat("req-%06x-%d", process_tag & 0xffffff, counter.fetch_add(1));
}

EditKind EditKindOf(const v1::Edit& edit) {
  switch (edit.kind_case()) {
    case v1::Edit::kPin:
      return EditKind::kPin;
    case v1::Edit::kReplace:
      return EditKind::kReplace;
    case v1::Edit::kBan:
      return EditKind::kBan;
    case v1::Edit::kLiftBan:
      return EditKind::kLiftBan;
    case v1::Edit::kSet:
      return EditKind::kSetOptions;
    case v1::Edit::kPause:
      return EditKind::kPause;
    case v1::Edit::kResume:
      return EditKind::kResume;
    case v1::Edit::kFinish:
      return EditKind::kFinish;
    case v1::Edit::kRemask:
    case v1::Edit::KIND_NOT_SET:
      break;
  }
  return EditKind::kRemask;
}

FrontEnd::FrontEnd(const ServedModel& model, Scheduler& scheduler, Metrics* metrics,
                   FrontEndOptions options)
    : model_(model), scheduler_(scheduler), metrics_(metrics), options_(std::move(options)) {}

std::optional<absl::Status> FrontEnd::TerminalStatus(const FinalEvent& event) {
  if (!event.status.ok()) return event.status;
  if (event.result.finish_reason == FinishReason::kDeadline && event.result.steps == 0) {
    return absl::DeadlineExceededError("the deadline passed while the request was queued");
  }
  return std::nullopt;
}

absl::Status FrontEnd::CheckModel(const std::string& name) const {
  if (!name.empty() && name != model_.name) {
    return absl::NotFoundError(absl::StrCat(
        "model '", name, "' is not served here; this server serves '", model_.name, "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Caller> FrontEnd::Authenticate(std::string_view authorization,
                                              const std::string& protocol) const {
  if (options_.gatekeeper == nullptr) return Caller{};
  absl::StatusOr<Caller> caller = options_.gatekeeper->Authenticate(authorization);
  if (!caller.ok()) options_.gatekeeper->RecordUnauthenticated(protocol);
  return caller;
}

absl::StatusOr<Submitted> FrontEnd::Submit(
    const v1::GenerateRequest& request,
    std::optional<std::chrono::steady_clock::time_point> deadline, const Caller& caller,
    bool refine, bool start_paused) {
  auto submitted = [&]() -> absl::StatusOr<Submitted> {
    if (scheduler_.draining()) {
      return absl::UnavailableError("the server is shutting down and accepts no new requests");
    }
    if (refine && request.has_suffix()) {
      return absl::InvalidArgumentError(
          "suffix cannot open a refine session (edits may move the middle): use an infill "
          "template with <|mask:N|>");
    }
    SCULPT_ASSIGN_OR_RETURN(BuildResult result, BuildRequest(request, model_, options_.limits));
    if (result.built.request_id.empty()) result.built.request_id = NewRequestId();
    result.request.request_id = result.built.request_id;
    result.request.model_revision = model_.revision;
    result.request.deadline = deadline;
    result.request.key_id = caller.key_id;
    // Last before queueing: a request refused for what it asks takes no slot of its key.
    if (options_.gatekeeper != nullptr) {
      SCULPT_ASSIGN_OR_RETURN(result.request.admission, options_.gatekeeper->Admit(caller));
    }
    std::shared_ptr<EditInbox> edits;
    if (refine) {
      // Room for a few boundaries' worth: beyond it the client is held back, not refused.
      edits = std::make_shared<EditInbox>(
          static_cast<size_t>(4 * std::max(1, scheduler_.options().max_edits_per_step)));
      result.request.edits = edits;
      result.request.start_paused = start_paused;
    }
    SCULPT_ASSIGN_OR_RETURN(std::unique_ptr<RequestHandle> handle,
                            scheduler_.Submit(std::move(result.request)));
    return Submitted{std::move(result.built), std::move(handle), std::move(edits)};
  }();
  if (!submitted.ok() && metrics_ != nullptr) {
    metrics_->RecordRejected(RejectionReason(submitted.status()));
  }
  return submitted;
}

const std::vector<std::string>& FrontEnd::TokenTexts() const {
  std::call_once(token_texts_once_, [&] {
    if (!model_.tokenizer) return;
    token_texts_.resize(static_cast<size_t>(model_.config().embedding_size));
    for (size_t id = 0; id < token_texts_.size(); ++id) {
      auto bytes = model_.tokenizer->TokenBytes(static_cast<int32_t>(id));
      if (bytes.ok()) token_texts_[id] = std::move(*bytes);
    }
  });
  return token_texts_;
}

absl::StatusOr<std::vector<int32_t>> FrontEnd::EditTokens(
    const google::protobuf::RepeatedField<int32_t>& ids, const std::string* text,
    const std::string& field) const {
  const int max_tokens = model_.config().max_sequence_length;
  const auto invalid = [&](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", parts...));
  };
  if (text != nullptr && !ids.empty()) return invalid("give token_ids or text, not both");
  if (text == nullptr) {
    if (ids.size() > max_tokens) {
      return invalid(ids.size(), " tokens exceed the model's context of ", max_tokens);
    }
    return std::vector<int32_t>(ids.begin(), ids.end());
  }
  if (!model_.tokenizer) {
    return absl::FailedPreconditionError(
        absl::StrCat(field, ".text: model '", model_.name, "' has no tokenizer; use token_ids"));
  }
  if (static_cast<int64_t>(text->size()) > 16 * int64_t{max_tokens}) {
    return invalid("text of ", text->size(), " bytes is longer than any canvas of the model");
  }
  SCULPT_RETURN_IF_ERROR(ValidateUtf8(*text, field + ".text"));
  auto segments = ParseInfillTemplate(*text);
  if (!segments.ok()) return invalid(segments.status().message());
  std::vector<int32_t> tokens;
  for (const InfillSegment& segment : *segments) {
    if (segment.masks > 0) {
      if (segment.masks > max_tokens - static_cast<int>(tokens.size())) {
        return invalid("more masks than the model's context of ", max_tokens);
      }
      tokens.insert(tokens.end(), segment.masks, model_.config().mask_token_id);
      continue;
    }
    auto encoded = model_.tokenizer->Encode(segment.text, /*add_special_tokens=*/false);
    if (!encoded.ok()) return invalid(encoded.status().message());
    tokens.insert(tokens.end(), encoded->begin(), encoded->end());
  }
  if (static_cast<int>(tokens.size()) > max_tokens) {
    return invalid(tokens.size(), " tokens exceed the model's context of ", max_tokens);
  }
  return tokens;
}

absl::StatusOr<DraftEdit> FrontEnd::BuildEdit(const v1::Edit& message,
                                              const std::string& default_id) const {
  absl::StatusOr<DraftEdit> edit = ReadEdit(message, default_id);
  if (!edit.ok() && metrics_ != nullptr) metrics_->RecordEdit(EditKindOf(message), edit.status());
  return edit;
}

absl::StatusOr<DraftEdit> FrontEnd::ReadEdit(const v1::Edit& message,
                                             const std::string& default_id) const {
  constexpr size_t kMaxBanStrings = 16;
  constexpr size_t kMaxBanStringBytes = 64;
  const auto invalid = [](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat(parts...));
  };
  DraftEdit edit;
  if (static_cast<int>(message.edit_id().size()) > options_.limits.max_request_id_bytes) {
    return invalid("edit_id must be at most ", options_.limits.max_request_id_bytes, " bytes");
  }
  SCULPT_RETURN_IF_ERROR(ValidateUtf8(message.edit_id(), "edit_id"));
  edit.id = message.edit_id().empty() ? default_id : message.edit_id();
  if (message.has_revision()) edit.revision = message.revision();
  if (message.has_at_step()) edit.at_step = message.at_step();
  // Positions past any canvas are refused before they are narrowed to the engine's type.
  const uint32_t context = static_cast<uint32_t>(model_.config().max_sequence_length);
  const auto span = [&](const char* kind, uint32_t position, uint32_t length) -> absl::Status {
    if (position > context || length > context) {
      return invalid(kind, ".position and .length must be within the model's context of ", context,
                     ", got ", position, " and ", length);
    }
    edit.position = static_cast<int32_t>(position);
    edit.length = static_cast<int32_t>(length);
    return absl::OkStatus();
  };
  switch (message.kind_case()) {
    case v1::Edit::kPin: {
      edit.kind = EditKind::kPin;
      const v1::Pin& pin = message.pin();
      SCULPT_RETURN_IF_ERROR(span("pin", pin.position(), 0));
      SCULPT_ASSIGN_OR_RETURN(
          edit.tokens, EditTokens(pin.token_ids(), pin.has_text() ? &pin.text() : nullptr, "pin"));
      if (std::find(edit.tokens.begin(), edit.tokens.end(), model_.config().mask_token_id) !=
          edit.tokens.end()) {
        return invalid("pin: a pinned span cannot hold masks (use remask or replace)");
      }
      break;
    }
    case v1::Edit::kRemask:
      edit.kind = EditKind::kRemask;
      SCULPT_RETURN_IF_ERROR(
          span("remask", message.remask().position(), message.remask().length()));
      break;
    case v1::Edit::kReplace: {
      edit.kind = EditKind::kReplace;
      const v1::Replace& replace = message.replace();
      SCULPT_RETURN_IF_ERROR(span("replace", replace.position(), replace.length()));
      SCULPT_ASSIGN_OR_RETURN(
          edit.tokens, EditTokens(replace.token_ids(),
                                  replace.has_text() ? &replace.text() : nullptr, "replace"));
      break;
    }
    case v1::Edit::kBan: {
      edit.kind = EditKind::kBan;
      const v1::Ban& ban = message.ban();
      SCULPT_RETURN_IF_ERROR(span("ban", ban.position(), ban.length()));
      if (ban.token_ids().size() > model_.config().embedding_size) {
        return invalid("ban.token_ids: more ids than the vocabulary has");
      }
      edit.tokens.assign(ban.token_ids().begin(), ban.token_ids().end());
      if (static_cast<size_t>(ban.strings().size()) > kMaxBanStrings) {
        return invalid("ban.strings: at most ", kMaxBanStrings, " strings, got ",
                       ban.strings().size());
      }
      if (!ban.strings().empty() && !model_.tokenizer) {
        return absl::FailedPreconditionError(
            absl::StrCat("ban.strings: model '", model_.name, "' has no tokenizer; use token_ids"));
      }
      for (int i = 0; i < ban.strings().size(); ++i) {
        const std::string& text = ban.strings(i);
        const std::string field = absl::StrCat("ban.strings[", i, "]");
        if (text.empty() || text.size() > kMaxBanStringBytes) {
          return invalid(field, " must be 1 to ", kMaxBanStringBytes, " bytes, got ", text.size());
        }
        SCULPT_RETURN_IF_ERROR(ValidateUtf8(text, field));
        const std::vector<std::string>& texts = TokenTexts();
        for (size_t id = 0; id < texts.size(); ++id) {
          if (texts[id].find(text) != std::string::npos &&
              static_cast<int32_t>(id) != model_.config().mask_token_id) {
            edit.tokens.push_back(static_cast<int32_t>(id));
          }
        }
      }
      if (edit.tokens.empty()) {
        return invalid("ban: no token to ban (give token_ids, or strings some token contains)");
      }
      break;
    }
    case v1::Edit::kLiftBan:
      edit.kind = EditKind::kLiftBan;
      edit.ban_id = message.lift_ban().ban_id();
      break;
    case v1::Edit::kSet: {
      edit.kind = EditKind::kSetOptions;
      const v1::SetOptions& set = message.set();
      if (set.has_steps()) {
        if (set.steps() > (1u << 20)) return invalid("set.steps must be at most ", 1 << 20);
        edit.steps = static_cast<int>(set.steps());
      }
      if (set.has_confidence_threshold()) edit.confidence_threshold = set.confidence_threshold();
      if (set.has_temperature()) edit.temperature = set.temperature();
      break;
    }
    case v1::Edit::kPause:
      edit.kind = EditKind::kPause;
      break;
    case v1::Edit::kResume:
      edit.kind = EditKind::kResume;
      break;
    case v1::Edit::kFinish:
      edit.kind = EditKind::kFinish;
      break;
    case v1::Edit::KIND_NOT_SET:
      return invalid(
          "the edit has no kind: set one of pin, remask, replace, ban, lift_ban, set, pause, "
          "resume, finish");
  }
  return edit;
}

absl::StatusOr<v1::TokenizeResponse> FrontEnd::Tokenize(const v1::TokenizeRequest& request) const {
  SCULPT_RETURN_IF_ERROR(CheckModel(request.model()));
  if (!model_.tokenizer) {
    return absl::FailedPreconditionError(
        absl::StrCat("model '", model_.name, "' has no tokenizer"));
  }
  auto ids = model_.tokenizer->Encode(request.text(), request.add_special_tokens());
  if (!ids.ok()) return absl::InvalidArgumentError(absl::StrCat("text: ", ids.status().message()));
  v1::TokenizeResponse response;
  for (int32_t id : *ids) {
    response.add_token_ids(id);
    response.add_tokens(model_.tokenizer->IdToToken(id).value_or(""));
  }
  return response;
}

absl::StatusOr<v1::DetokenizeResponse> FrontEnd::Detokenize(
    const v1::DetokenizeRequest& request) const {
  SCULPT_RETURN_IF_ERROR(CheckModel(request.model()));
  if (!model_.tokenizer) {
    return absl::FailedPreconditionError(
        absl::StrCat("model '", model_.name, "' has no tokenizer"));
  }
  const std::vector<int32_t> ids(request.token_ids().begin(), request.token_ids().end());
  auto text = model_.tokenizer->Decode(ids, request.skip_special_tokens());
  if (!text.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("token_ids: ", text.status().message()));
  }
  v1::DetokenizeResponse response;
  response.set_text(*text);
  return response;
}

v1::ListModelsResponse FrontEnd::ListModels() const {
  v1::ListModelsResponse response;
  FillModelInfo(*response.add_models());
  return response;
}

v1::ServerInfo FrontEnd::ServerInfo() const {
  const SchedulerStats stats = scheduler_.stats();
  v1::ServerInfo response;
  response.set_version(options_.version);
  FillModelInfo(*response.mutable_model());
  response.set_running(static_cast<uint32_t>(stats.running));
  response.set_waiting(static_cast<uint32_t>(stats.waiting));
  response.set_free_slots(static_cast<uint32_t>(stats.free_slots));
  response.set_draining(scheduler_.draining());
  response.set_steps_total(stats.steps_total);
  response.set_recent_step_ms(stats.recent_step_ms);
  response.set_device(model_.device);
  response.set_kv_cache_bytes(
      static_cast<uint64_t>(stats.kv_cache_rows * stats.kv_cache_row_bytes));
  response.set_kv_cache_bytes_used(
      static_cast<uint64_t>(stats.kv_cache_rows_used * stats.kv_cache_row_bytes));
  response.set_default_cache(
      std::string(KvCacheModeName(options_.limits.generation.default_cache)));
  v1::Limits& limits = *response.mutable_limits();
  const SchedulerOptions& options = scheduler_.options();
  limits.set_max_num_seqs(static_cast<uint32_t>(options.budgets.max_num_seqs));
  limits.set_max_num_batched_tokens(static_cast<uint32_t>(options.budgets.max_num_batched_tokens));
  limits.set_max_queued_requests(static_cast<uint32_t>(options.max_queued_requests));
  limits.set_max_request_bytes(options_.max_request_bytes);
  limits.set_max_stop_strings(static_cast<uint32_t>(options_.limits.generation.max_stop_strings));
  limits.set_max_stop_string_bytes(
      static_cast<uint32_t>(options_.limits.generation.max_stop_string_bytes));
  return response;
}

void FrontEnd::FillAccepted(const BuiltRequest& built, const AcceptedEvent& event,
                            v1::Accepted& accepted) const {
  accepted.set_mask_token_id(model_.config().mask_token_id);
  accepted.set_request_id(built.request_id);
  accepted.set_queue_position(static_cast<uint32_t>(event.queue_position));
  accepted.set_prompt_tokens(static_cast<uint32_t>(built.prompt_tokens));
  accepted.set_gen_length(static_cast<uint32_t>(built.gen_length));
  accepted.set_total_steps(static_cast<uint32_t>(built.planned_steps));
  // Runs of the infill canvas that are not masks.
  const std::vector<int32_t>& canvas = built.initial_canvas;
  const int32_t mask = model_.config().mask_token_id;
  for (size_t start = 0; start < canvas.size();) {
    if (canvas[start] == mask) {
      ++start;
      continue;
    }
    size_t end = start;
    while (end < canvas.size() && canvas[end] != mask) ++end;
    FillSpan(built, static_cast<int32_t>(start),
             std::vector<int32_t>(canvas.begin() + static_cast<std::ptrdiff_t>(start),
                                  canvas.begin() + static_cast<std::ptrdiff_t>(end)),
             *accepted.add_fixed());
    start = end;
  }
}

void FrontEnd::FillSpan(const BuiltRequest& built, int32_t position, std::vector<int32_t> tokens,
                        v1::Span& span) const {
  span.set_position(static_cast<uint32_t>(position));
  if (built.include_text && model_.tokenizer) {
    auto text = model_.tokenizer->Decode(tokens);
    if (text.ok()) span.set_text(*text);
  }
  if (built.include_token_ids) span.mutable_token_ids()->Add(tokens.begin(), tokens.end());
}

void FrontEnd::FillDraft(const BuiltRequest& built, const DraftEvent& event,
                         v1::StepDraft& draft) const {
  draft.set_step(event.step);
  draft.set_total_steps(
      static_cast<uint32_t>(event.planned_steps > 0 ? event.planned_steps : built.planned_steps));
  draft.set_block(event.block);
  draft.set_masks_left(static_cast<uint32_t>(event.masks_left));
  draft.set_revision(event.revision);
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
    v1::Span& span = *draft.add_changed();
    if (built.logprobs >= 0) {
      for (int32_t position = start; position < next; ++position) {
        const auto record = event.logprobs.find(position);
        if (record != event.logprobs.end()) {
          FillTokenLogprob(built, record->second, *span.add_logprobs());
        }
      }
    }
    FillSpan(built, start, std::move(tokens), span);
  }
}

std::string FrontEnd::TokenText(int32_t id) const {
  if (!model_.tokenizer) return "";
  auto bytes = model_.tokenizer->TokenBytes(id);
  if (!bytes.ok()) return "";
  if (ValidateUtf8(*bytes, "token").ok()) return *bytes;
  std::string escaped = "bytes:";
  for (unsigned char byte : *bytes) absl::StrAppendFormat(&escaped, "\\x%02x", byte);
  return escaped;
}

void FrontEnd::FillTokenLogprob(const BuiltRequest& built, const TokenLogprob& record,
                                v1::TokenLogprob& out) const {
  out.set_token_id(record.token);
  out.set_logprob(record.logprob);
  out.set_step(record.step + 1);
  if (built.include_text) out.set_text(TokenText(record.token));
  for (const auto& [id, value] : record.top) {
    v1::TopLogprob& top = *out.add_top();
    top.set_token_id(id);
    top.set_logprob(value);
    if (built.include_text) top.set_text(TokenText(id));
  }
}

void FrontEnd::FillBlock(const BuiltRequest& built, const BlockEvent& event,
                         v1::BlockCommitted& block) const {
  block.set_block(event.block);
  block.set_step(event.step);
  FillSpan(built, event.start, event.tokens, *block.mutable_tokens());
}

void FrontEnd::FillFinal(const BuiltRequest& built, const FinalEvent& event,
                         v1::GenerateResult& result) const {
  result.set_request_id(built.request_id);
  result.set_model(model_.name);
  result.set_model_revision(model_.revision);
  result.set_finish_reason(std::string(FinishReasonName(event.result.finish_reason)));
  std::vector<FilledSpan> filled;
  if (built.infill && built.initial_canvas.size() == event.result.canvas.size()) {
    auto spans = FilledSpans(model_.tokenizer.get(), model_.config().mask_token_id,
                             built.initial_canvas, event.result.canvas);
    if (spans.ok()) filled = std::move(*spans);
  }
  // The answer: the generated region, or a suffix infill's middle (answer positions from
  // `first`).
  std::span<const int32_t> answer = event.result.token_ids;
  size_t first = 0;
  if (built.suffix) {
    first = filled.empty() ? answer.size() : static_cast<size_t>(filled.front().start);
    answer = filled.empty() ? std::span<const int32_t>() : std::span(filled.front().tokens);
  }
  if (built.include_text && model_.tokenizer) {
    if (event.result.stop_text && !built.suffix) {
      result.set_text(*event.result.stop_text);
    } else if (auto text = model_.tokenizer->Decode(answer, /*skip_special_tokens=*/true);
               text.ok()) {
      result.set_text(*text);
    }
  }
  if (built.include_token_ids) result.mutable_token_ids()->Add(answer.begin(), answer.end());
  if (built.logprobs >= 0) {
    for (size_t i = 0; i < answer.size(); ++i) {
      const size_t position = first + i;
      v1::TokenLogprob& out = *result.add_logprobs();
      if (position < event.result.logprobs.size() && event.result.logprobs[position]) {
        FillTokenLogprob(built, *event.result.logprobs[position], out);
      } else {  // given by the request
        out.set_token_id(answer[i]);
        if (built.include_text) out.set_text(TokenText(answer[i]));
      }
    }
  }
  for (FilledSpan& span_filled : filled) {
    v1::Span& span = *result.add_filled();
    span.set_position(static_cast<uint32_t>(span_filled.start));
    if (built.include_text) span.set_text(span_filled.text);
    if (built.include_token_ids) {
      span.mutable_token_ids()->Add(span_filled.tokens.begin(), span_filled.tokens.end());
    }
  }
  v1::Usage& usage = *result.mutable_usage();
  usage.set_prompt_tokens(static_cast<uint32_t>(built.prompt_tokens));
  usage.set_generated_tokens(static_cast<uint32_t>(answer.size()));
  usage.set_steps(static_cast<uint32_t>(event.result.steps));
  usage.set_forward_passes(static_cast<uint32_t>(event.result.forward_passes));
  v1::Timings& timings = *result.mutable_timings();
  timings.set_queue_ms(event.queue_ms);
  timings.set_first_step_ms(event.first_step_ms);
  timings.set_total_ms(event.total_ms);
}

FrontEnd::Response FrontEnd::ToResponse(const BuiltRequest& built, const StreamEvent& event) const {
  Response response;
  if (const auto* accepted = std::get_if<AcceptedEvent>(&event)) {
    FillAccepted(built, *accepted, *response.message.mutable_accepted());
  } else if (const auto* draft = std::get_if<DraftEvent>(&event)) {
    FillDraft(built, *draft, *response.message.mutable_step());
  } else if (const auto* block = std::get_if<BlockEvent>(&event)) {
    FillBlock(built, *block, *response.message.mutable_block());
  } else if (const auto* edit = std::get_if<EditEvent>(&event)) {
    FillEdit(built, *edit, *response.message.mutable_edit());
  } else {
    const auto& final_event = std::get<FinalEvent>(event);
    response.last = true;
    response.terminal = TerminalStatus(final_event);
    if (!response.terminal) FillFinal(built, final_event, *response.message.mutable_final());
  }
  return response;
}

void FrontEnd::FillEdit(const BuiltRequest& built, const EditEvent& event,
                        v1::EditResult& result) const {
  result.set_edit_id(event.edit_id);
  result.set_kind(std::string(EditKindName(event.kind)));
  result.set_code(static_cast<int32_t>(event.status.code()));
  if (!event.status.ok()) {
    result.set_message(std::string(event.status.message()));
    return;
  }
  const EditOutcome& outcome = event.outcome;
  result.set_step(outcome.step);
  result.set_revision(outcome.revision);
  result.set_gen_length(static_cast<uint32_t>(outcome.gen_length));
  const bool positional = event.kind == EditKind::kPin || event.kind == EditKind::kRemask ||
                          event.kind == EditKind::kReplace || event.kind == EditKind::kBan;
  if (positional) {
    FillSpan(built, outcome.position, outcome.inserted, *result.mutable_changed());
    result.set_removed(static_cast<uint32_t>(outcome.removed));
  }
}

void FrontEnd::FillModelInfo(v1::ModelInfo& info) const {
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
  info.set_revision(model_.revision);
  info.set_card_revision(model_.card_revision);
}

}  // namespace sculpt
