// Routes, JSON mapping and SSE plumbing of the HTTP gateway; see http_gateway.h. The HTTP
// itself (connections, limits, deadlines, chunked writes) is server/http_server.cc.
#include "server/http_gateway.h"

#include <google/protobuf/util/json_util.h>
#include <spdlog/spdlog.h>

#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status.h"
#include "server/openai_api.h"
#include "server/playground.h"
#include "server/stable_text.h"

namespace sculpt {
namespace {

using nlohmann::json;

constexpr const char* kJson = "application/json";

HttpResponse Json(int status, const json& body) {
  HttpResponse response;
  response.status = status;
  response.SetHeader("Content-Type", kJson);
  response.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return response;
}

HttpResponse Error(const absl::Status& status, const std::string& param = "") {
  HttpResponse response = Json(HttpStatusFor(status), OpenAiErrorBody(status, param));
  if (const int seconds = RetryAfterSeconds(status); seconds > 0) {
    response.SetHeader("Retry-After", absl::StrCat(seconds));
  }
  if (status.code() == absl::StatusCode::kUnauthenticated) {
    response.SetHeader("WWW-Authenticate", "Bearer");
  }
  return response;
}

// The GenerateRequest field an error is about, when its message starts with one ("gen_length
// must be ...", "messages[1].content is ...") or names one as protobuf's JSON parser does
// ("(gen_length): invalid value"); else "".
std::string FieldAtFault(const absl::Status& status) {
  const std::string message(status.message());
  const google::protobuf::Descriptor& request = *v1::GenerateRequest::descriptor();
  const auto field_named = [&](std::string_view text) -> std::string {
    const size_t end = text.find_first_of(" [.:)");
    const std::string name(text.substr(0, end));
    return request.FindFieldByName(name) != nullptr ? name : "";
  };
  if (std::string name = field_named(message); !name.empty()) return name;
  // protobuf's JSON parser on a field the message does not have: "...: NAME: Cannot find field."
  if (const size_t at = message.find(": Cannot find field"); at != std::string::npos) {
    const size_t start = message.rfind(' ', at);
    return message.substr(start == std::string::npos ? 0 : start + 1,
                          at - (start == std::string::npos ? 0 : start + 1));
  }
  if (const size_t open = message.find('('); open != std::string::npos) {
    return field_named(message.substr(open + 1));
  }
  return "";
}

// The same for the OpenAI routes, by the OpenAI name of the field.
std::string OpenAiFieldAtFault(const absl::Status& status) {
  if (absl::IsNotFound(status)) return "model";
  const std::string field = FieldAtFault(status);
  return field == "gen_length" ? "max_tokens" : field;
}

// The answers the HTTP server makes itself (limits, deadlines, refusals), in the same shape.
HttpResponse ServerError(int status, const std::string& message) {
  const absl::Status as_status = status == 503   ? absl::UnavailableError(message)
                                 : status >= 500 ? absl::InternalError(message)
                                                 : absl::InvalidArgumentError(message);
  return Json(status, OpenAiErrorBody(as_status, ""));
}

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

// Parses a JSON body into a message with the proto's field names; unknown fields are errors.
absl::Status FromJson(const std::string& text, google::protobuf::Message& message) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(text, &message, options);
  if (status.ok()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("invalid request: ", status.message().ToString()));
}

absl::StatusOr<json> ParseBody(const HttpRequest& req) {
  json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) {
    return absl::InvalidArgumentError("the request body is not valid JSON");
  }
  if (!body.is_object())
    return absl::InvalidArgumentError("the request body must be a JSON object");
  return body;
}

std::string SseEvent(const std::string& event, const std::string& data) {
  return event.empty() ? absl::StrCat("data: ", data, "\n\n")
                       : absl::StrCat("event: ", event, "\ndata: ", data, "\n\n");
}

void SetTimingHeaders(HttpResponse& res, const v1::GenerateResult& result) {
  res.SetHeader("x-queue-time", absl::StrFormat("%.3f", result.timings().queue_ms()));
  res.SetHeader("x-inference-time",
                absl::StrFormat("%.3f", result.timings().total_ms() - result.timings().queue_ms()));
  res.SetHeader("x-total-time", absl::StrFormat("%.3f", result.timings().total_ms()));
}

// A model as OpenAI's /v1/models lists it.
json ModelObject(const v1::ModelInfo& info) {
  return {{"id", info.name()},
          {"object", "model"},
          {"created", 0},
          {"owned_by", "sculpt"},
          {"max_model_len", info.context_length()},
          {"revision", info.revision()}};
}

HttpResponse StreamHead() {
  HttpResponse head;
  head.SetHeader("Content-Type", "text/event-stream");
  head.SetHeader("Cache-Control", "no-cache");
  head.SetHeader("X-Accel-Buffering", "no");
  return head;
}

int64_t UnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A submitted request whose events a reply carries. Counted while it lives, so that a drain can
// let every response finish before the server stops.
class Pending {
 public:
  Pending(Submitted submitted, std::atomic<int>& counter)
      : submitted_(std::move(submitted)), open_responses_(counter) {
    open_responses_.fetch_add(1);
  }
  ~Pending() {
    submitted_.handle->stream()->SetListener(nullptr);
    open_responses_.fetch_sub(1);
  }
  Pending(const Pending&) = delete;
  Pending& operator=(const Pending&) = delete;

  void Listen(std::function<void()> wake) {
    submitted_.handle->stream()->SetListener(std::move(wake));
  }
  std::optional<StreamEvent> Next() { return submitted_.handle->stream()->Pop(); }
  void Cancel() { submitted_.handle->Cancel(); }
  const BuiltRequest& built() const { return submitted_.built; }

 private:
  Submitted submitted_;
  std::atomic<int>& open_responses_;
};

// A reply carrying one submitted request's events.
class EventReply : public DeferredReply {
 public:
  EventReply(std::unique_ptr<Pending> pending, FrontEnd& front_end)
      : pending_(std::move(pending)), front_end_(front_end) {}
  void Start(std::function<void()> wake) override { pending_->Listen(std::move(wake)); }
  void Cancel() override { pending_->Cancel(); }

 protected:
  std::optional<StreamEvent> Next() { return pending_->Next(); }
  FrontEnd::Response ToResponse(const StreamEvent& event) const {
    return front_end_.ToResponse(pending_->built(), event);
  }

 private:
  std::unique_ptr<Pending> pending_;
  FrontEnd& front_end_;
};

// The reply to a request answered once, with its result: the final event mapped by `answer`.
class ResultReply final : public EventReply {
 public:
  using Answer = std::function<HttpResponse(const v1::GenerateResult&)>;
  ResultReply(std::unique_ptr<Pending> pending, FrontEnd& front_end, Answer answer)
      : EventReply(std::move(pending), front_end), answer_(std::move(answer)) {}

  ReplyProgress Pump() override {
    ReplyProgress progress;
    while (std::optional<StreamEvent> event = Next()) {
      // Only the result is answered: drafts are not even built.
      if (!std::holds_alternative<FinalEvent>(*event)) continue;
      FrontEnd::Response response = ToResponse(*event);
      if (response.terminal) {
        progress.whole = Error(*response.terminal);
      } else if (std::get<FinalEvent>(*event).result.finish_reason == FinishReason::kCancelled) {
        progress.whole = Error(absl::CancelledError("the request was cancelled"));
      } else {
        HttpResponse whole = answer_(response.message.final());
        SetTimingHeaders(whole, response.message.final());
        progress.whole = std::move(whole);
      }
      break;
    }
    return progress;
  }

 private:
  Answer answer_;
};

// A streamed reply: the SSE head, then every event as its subclass writes it.
class StreamReply : public EventReply {
 public:
  using EventReply::EventReply;

  ReplyProgress Pump() final {
    ReplyProgress progress;
    if (!started_) {
      progress.stream_head = StreamHead();
      started_ = true;
    }
    while (!progress.done) {
      std::optional<StreamEvent> event = Next();
      if (!event) break;
      Translate(ToResponse(*event), progress);
    }
    return progress;
  }

 protected:
  // Appends the event's SSE text; sets progress.done after the last.
  virtual void Translate(const FrontEnd::Response& response, ReplyProgress& progress) = 0;

 private:
  bool started_ = false;
};

// Native SSE: one event per GenerateResponse, named after the oneof field it carries (accepted,
// step, block, final) with that field's message as its data; an error event ends a failed one.
class NativeStreamReply final : public StreamReply {
 public:
  using StreamReply::StreamReply;

 private:
  void Translate(const FrontEnd::Response& response, ReplyProgress& progress) override {
    if (response.terminal) {
      progress.data += SseEvent("error", OpenAiErrorBody(*response.terminal, "").dump());
    } else {
      const v1::GenerateResponse& message = response.message;
      const auto* field =
          message.GetDescriptor()->FindFieldByNumber(static_cast<int>(message.event_case()));
      progress.data +=
          SseEvent(field->name(), ToJson(message.GetReflection()->GetMessage(message, field)));
    }
    progress.done = response.last;
  }
};

}  // namespace

// An HTTP refine session: its stream's reply holds it, the registry finds it by id for
// POST /v1/refine/{id}/edits.
struct HttpGateway::RefineSession {
  std::string id;
  std::string key_id;  // only the key that opened the session may edit it
  std::shared_ptr<EditInbox> edits;
  std::shared_ptr<RequestStream> stream;
  Scheduler* scheduler = nullptr;
  std::atomic<uint64_t> edits_received{0};
};

namespace {

// A refine session's SSE stream: the native events, its id in `accepted`; the session leaves
// the registry when the stream ends.
class RefineStreamReply final : public StreamReply {
 public:
  RefineStreamReply(std::unique_ptr<Pending> pending, FrontEnd& front_end, std::string session_id,
                    std::function<void()> on_end)
      : StreamReply(std::move(pending), front_end),
        session_id_(std::move(session_id)),
        on_end_(std::move(on_end)) {}
  ~RefineStreamReply() override { on_end_(); }

 private:
  void Translate(const FrontEnd::Response& response, ReplyProgress& progress) override {
    if (response.terminal) {
      progress.data += SseEvent("error", OpenAiErrorBody(*response.terminal, "").dump());
    } else {
      v1::GenerateResponse message = response.message;
      if (message.has_accepted()) message.mutable_accepted()->set_session_id(session_id_);
      const auto* field =
          message.GetDescriptor()->FindFieldByNumber(static_cast<int>(message.event_case()));
      progress.data +=
          SseEvent(field->name(), ToJson(message.GetReflection()->GetMessage(message, field)));
    }
    progress.done = response.last;
  }

  std::string session_id_;
  std::function<void()> on_end_;
};

// An unguessable id: whoever holds it may edit the session.
std::string NewSessionId() {
  static std::mutex mutex;
  static std::mt19937_64 generator{std::random_device{}()};
  std::lock_guard lock(mutex);
  return absl::StrFormat("rs-%016x%016x", generator(), generator());
}

// One OpenAI request's samples (n, best_of): each a request of its own in the same steps.
class OpenAiReply : public DeferredReply {
 public:
  OpenAiReply(std::vector<std::unique_ptr<Pending>> samples, FrontEnd& front_end,
              OpenAiReplyContext context, OpenAiRequest request, OpenAiEcho echo)
      : samples_(std::move(samples)),
        front_end_(front_end),
        context_(std::move(context)),
        request_(std::move(request)),
        echo_(std::move(echo)) {}
  void Start(std::function<void()> wake) override {
    for (auto& sample : samples_) sample->Listen(wake);
  }
  void Cancel() override {
    for (auto& sample : samples_) sample->Cancel();
  }

 protected:
  std::vector<std::unique_ptr<Pending>> samples_;
  FrontEnd& front_end_;
  const OpenAiReplyContext context_;
  const OpenAiRequest request_;
  const OpenAiEcho echo_;
};

// Answered once every sample has its result: the n of them (best_of: of highest mean
// log-probability) as choices.
class OpenAiResultReply final : public OpenAiReply {
 public:
  using OpenAiReply::OpenAiReply;

  ReplyProgress Pump() override {
    ReplyProgress progress;
    results_.resize(samples_.size());
    for (size_t i = 0; i < samples_.size(); ++i) {
      while (!results_[i]) {
        std::optional<StreamEvent> event = samples_[i]->Next();
        if (!event) break;
        if (!std::holds_alternative<FinalEvent>(*event)) continue;
        FrontEnd::Response response = front_end_.ToResponse(samples_[i]->built(), *event);
        if (response.terminal) {
          progress.whole = Error(*response.terminal);
          return progress;
        }
        if (std::get<FinalEvent>(*event).result.finish_reason == FinishReason::kCancelled) {
          progress.whole = Error(absl::CancelledError("the request was cancelled"));
          return progress;
        }
        results_[i] = response.message.final();
      }
    }
    if (!std::all_of(results_.begin(), results_.end(),
                     [](const auto& r) { return r.has_value(); })) {
      return progress;
    }
    std::vector<const v1::GenerateResult*> chosen;
    uint32_t generated = 0;
    for (const auto& result : results_) {
      chosen.push_back(&*result);
      generated += result->usage().generated_tokens();
    }
    if (request_.best_of > request_.n) {
      // Highest mean log-probability first; ties keep sample order.
      std::stable_sort(chosen.begin(), chosen.end(), [](const auto* a, const auto* b) {
        return MeanCommittedLogprob(*a) > MeanCommittedLogprob(*b);
      });
      chosen.resize(static_cast<size_t>(request_.n));
    }
    HttpResponse whole = Json(200, OpenAiResponse(context_, request_, chosen, echo_, generated));
    SetTimingHeaders(whole, *chosen.front());
    progress.whole = std::move(whole);
    return progress;
  }

 private:
  std::vector<std::optional<v1::GenerateResult>> results_;
};

// OpenAI SSE: per choice, text deltas as they become stable (with their tokens'
// log-probabilities when asked), its finish reason; usage when asked, then [DONE].
class OpenAiStreamReply final : public OpenAiReply {
 public:
  OpenAiStreamReply(std::vector<std::unique_ptr<Pending>> samples, FrontEnd& front_end,
                    OpenAiReplyContext context, OpenAiRequest request, OpenAiEcho echo)
      : OpenAiReply(std::move(samples), front_end, std::move(context), std::move(request),
                    std::move(echo)) {
    const Tokenizer* tokenizer = front_end_.model().tokenizer.get();
    const std::vector<std::string> stops(request_.generate.stop().begin(),
                                         request_.generate.stop().end());
    for (const auto& sample : samples_) {
      Choice& choice = choices_.emplace_back();
      const BuiltRequest& built = sample->built();
      choice.answer_length = built.gen_length;
      if (built.suffix) {
        // The middle of prompt + masks + suffix is the answer that streams.
        const auto& canvas = built.initial_canvas;
        const int32_t mask = front_end_.model().config().mask_token_id;
        const auto first = std::find(canvas.begin(), canvas.end(), mask);
        choice.answer_offset = static_cast<int32_t>(first - canvas.begin());
        choice.answer_length = static_cast<int>(std::count(canvas.begin(), canvas.end(), mask));
      }
      if (tokenizer) {
        choice.stable = std::make_unique<StableTextStream>(*tokenizer, stops, choice.answer_length);
      }
    }
  }

  ReplyProgress Pump() override {
    ReplyProgress progress;
    if (!started_) {
      progress.stream_head = StreamHead();
      started_ = true;
    }
    for (size_t i = 0; i < samples_.size(); ++i) {
      while (!choices_[i].done) {
        std::optional<StreamEvent> event = samples_[i]->Next();
        if (!event) break;
        if (!Translate(static_cast<int>(i), front_end_.ToResponse(samples_[i]->built(), *event),
                       progress)) {
          progress.data += "data: [DONE]\n\n";
          progress.done = true;
          return progress;
        }
      }
    }
    if (std::all_of(choices_.begin(), choices_.end(), [](const Choice& c) { return c.done; })) {
      if (request_.include_usage) {
        progress.data +=
            SseEvent("", OpenAiUsageChunk(context_, prompt_tokens_, generated_).dump());
      }
      progress.data += "data: [DONE]\n\n";
      progress.done = true;
    }
    return progress;
  }

 private:
  struct Choice {
    std::unique_ptr<StableTextStream> stable;
    int32_t answer_offset = 0;  // canvas position of the answer's first token (suffix infill)
    int answer_length = 0;
    bool first = true;
    bool done = false;
    std::map<int32_t, v1::TokenLogprob> logprobs;  // answer position → committed token's
    size_t released = 0;                           // tokens whose log-probabilities were sent
    size_t released_bytes = 0;                     // their text's bytes
    size_t text_offset = 0;                        // completions' text_offset of the next token
  };

  void Chunk(int index, ReplyProgress& progress, const std::string& delta, const json& logprobs,
             const std::string& reason) {
    Choice& choice = choices_[index];
    const json chunk = OpenAiChunk(context_, index, delta, logprobs, reason, choice.first);
    choice.first = false;
    progress.data += SseEvent("", chunk.dump(-1, ' ', false, json::error_handler_t::replace));
  }

  // The log-probabilities of the answer's next tokens whose text has been sent; all that are
  // left with the final result.
  json Release(Choice& choice, const v1::GenerateResult* result) {
    if (!request_.logprobs) return json();
    std::vector<v1::TokenLogprob> tokens;
    if (result != nullptr) {
      for (int i = static_cast<int>(choice.released); i < result->logprobs_size(); ++i) {
        tokens.push_back(result->logprobs(i));
      }
      choice.released = static_cast<size_t>(result->logprobs_size());
    } else {
      const size_t sent = choice.stable ? choice.stable->sent().size() : 0;
      const Tokenizer* tokenizer = front_end_.model().tokenizer.get();
      while (true) {
        const auto it = choice.logprobs.find(static_cast<int32_t>(choice.released));
        if (it == choice.logprobs.end() || tokenizer == nullptr) break;
        auto bytes = tokenizer->TokenBytes(it->second.token_id(), /*skip_special_tokens=*/true);
        const size_t size = bytes.ok() ? bytes->size() : 0;
        if (choice.released_bytes + size > sent) break;
        choice.released_bytes += size;
        tokens.push_back(it->second);
        ++choice.released;
      }
    }
    if (tokens.empty()) return json();
    json logprobs = OpenAiLogprobs(context_, tokens, request_.top_logprobs, choice.text_offset);
    for (const auto& token : tokens) choice.text_offset += context_.text_bytes(token.token_id());
    return logprobs;
  }

  // False when the stream must end now (a failure).
  bool Translate(int index, const FrontEnd::Response& response, ReplyProgress& progress) {
    Choice& choice = choices_[index];
    const v1::GenerateResponse& message = response.message;
    if (response.terminal) {
      progress.data += SseEvent("", OpenAiErrorBody(*response.terminal, "").dump());
      return false;
    }
    if (message.has_accepted()) {
      prompt_tokens_ = message.accepted().prompt_tokens();
      // The role (chat) or the echoed prompt (completions) comes first, as OpenAI sends it.
      if (context_.endpoint == OpenAiEndpoint::kChatCompletions) {
        Chunk(index, progress, "", json(), "");
      } else if (request_.echo) {
        json logprobs;
        if (request_.logprobs) {
          logprobs = OpenAiLogprobs(context_, echo_.tokens, request_.top_logprobs, 0);
        }
        Chunk(index, progress, echo_.text, logprobs, "");
        choice.text_offset = echo_.text.size();
      }
      return true;
    }
    if (message.has_step()) {
      std::map<int32_t, int32_t> committed;
      for (const v1::Span& span : message.step().changed()) {
        for (int i = 0; i < span.token_ids_size(); ++i) {
          const int32_t position = static_cast<int32_t>(span.position()) + i - choice.answer_offset;
          if (position < 0 || position >= choice.answer_length) continue;
          committed[position] = span.token_ids(i);
          if (i < span.logprobs_size()) choice.logprobs[position] = span.logprobs(i);
        }
      }
      const std::string delta = choice.stable ? choice.stable->Apply(committed) : "";
      if (!delta.empty()) Chunk(index, progress, delta, Release(choice, nullptr), "");
      return true;
    }
    if (message.has_block()) return true;
    const v1::GenerateResult& result = message.final();
    const std::string rest = choice.stable ? choice.stable->Finish(result.text()) : result.text();
    const json logprobs = Release(choice, &result);
    if (!rest.empty() || !logprobs.is_null()) Chunk(index, progress, rest, logprobs, "");
    Chunk(index, progress, "", json(), result.finish_reason());
    generated_ += result.usage().generated_tokens();
    choice.done = true;
    return true;
  }

  std::vector<Choice> choices_;
  bool started_ = false;
  uint32_t prompt_tokens_ = 0;
  uint32_t generated_ = 0;
};

// Adds headers (CORS) to whatever a reply answers.
class WithHeaders final : public DeferredReply {
 public:
  WithHeaders(std::unique_ptr<DeferredReply> inner,
              std::vector<std::pair<std::string, std::string>> headers)
      : inner_(std::move(inner)), headers_(std::move(headers)) {}
  void Start(std::function<void()> wake) override { inner_->Start(std::move(wake)); }
  void Cancel() override { inner_->Cancel(); }
  ReplyProgress Pump() override {
    ReplyProgress progress = inner_->Pump();
    for (auto* response : {progress.whole ? &*progress.whole : nullptr,
                           progress.stream_head ? &*progress.stream_head : nullptr}) {
      if (response == nullptr) continue;
      for (const auto& [name, value] : headers_) response->SetHeader(name, value);
    }
    return progress;
  }

 private:
  std::unique_ptr<DeferredReply> inner_;
  std::vector<std::pair<std::string, std::string>> headers_;
};

}  // namespace

HttpGateway::HttpGateway(HttpOptions options, std::string version)
    : options_(std::move(options)), version_(std::move(version)) {
  Routes();
  // Every answered request counts in the metrics by its route pattern, then goes to the
  // access log (when there is one).
  options_.server.on_access =
      [this, log = std::move(options_.server.on_access)](const HttpAccess& access) {
        if (Metrics* metrics = metrics_.load()) {
          metrics->RecordHttp(RouteLabel(access.path), access.status, access.duration_ms / 1000.0);
        }
        if (log) log(access);
      };
  server_ = std::make_unique<HttpServer>(
      options_.server, [this](HttpRequest& request) { return Handle(request); }, ServerError);
}

HttpGateway::~HttpGateway() { Stop(); }

void HttpGateway::Attach(FrontEnd& front_end, Metrics& metrics) {
  metrics_.store(&metrics);
  front_end_.store(&front_end);
}

bool HttpGateway::WaitForOpenResponses(std::chrono::steady_clock::time_point deadline) {
  while (open_responses_.load() > 0) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

void HttpGateway::Stop() {
  if (server_) server_->Stop();
}

absl::Status HttpGateway::Start() {
  SCULPT_RETURN_IF_ERROR(server_->Start());
  bound_port_ = server_->port();
  return absl::OkStatus();
}

HttpReply HttpGateway::Handle(HttpRequest& req) {
  // CORS is off unless origins are allowed; then the Origin is echoed when it is one of them.
  std::vector<std::pair<std::string, std::string>> cors;
  if (!options_.allowed_origins.empty() && req.HasHeader("Origin")) {
    const std::string origin = req.Header("Origin");
    const auto& allowed = options_.allowed_origins;
    const bool any = std::find(allowed.begin(), allowed.end(), "*") != allowed.end();
    if (any || std::find(allowed.begin(), allowed.end(), origin) != allowed.end()) {
      cors = {{"Access-Control-Allow-Origin", any ? "*" : origin}, {"Vary", "Origin"}};
      if (req.method == "OPTIONS") {
        HttpResponse preflight;
        preflight.status = 204;
        preflight.headers = cors;
        preflight.SetHeader("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        preflight.SetHeader("Access-Control-Allow-Headers", "Content-Type, Authorization");
        return preflight;
      }
    }
  }
  HttpReply reply = Dispatch(req);
  if (cors.empty()) return reply;
  if (auto* response = std::get_if<HttpResponse>(&reply)) {
    for (const auto& [name, value] : cors) response->SetHeader(name, value);
    return reply;
  }
  return std::make_unique<WithHeaders>(std::move(std::get<std::unique_ptr<DeferredReply>>(reply)),
                                       std::move(cors));
}

std::string HttpGateway::RoutePattern(const std::string& path) const {
  if (routes_.count(path)) return path;
  // A route whose last segment is a parameter ("/v1/models/*").
  const size_t last = path.rfind('/');
  if (last == std::string::npos) return "";
  if (std::string pattern = path.substr(0, last + 1) + "*"; routes_.count(pattern)) {
    return pattern;
  }
  // One whose next-to-last segment is ("/v1/refine/*/edits").
  const size_t before = last == 0 ? std::string::npos : path.rfind('/', last - 1);
  if (before == std::string::npos) return "";
  if (std::string pattern = path.substr(0, before + 1) + "*" + path.substr(last);
      routes_.count(pattern)) {
    return pattern;
  }
  return "";
}

std::string HttpGateway::RouteLabel(const std::string& path) const {
  const std::string pattern = RoutePattern(path);
  return pattern.empty() ? "other" : pattern;
}

HttpReply HttpGateway::Dispatch(HttpRequest& req) {
  // What orchestrators, probes and browsers reach without a key, and what answers while the
  // model loads.
  static const std::set<std::string> kOpen = {"/health", "/live",           "/version",
                                              "/",       "/v2/health/live", "/v2/health/ready"};
  auto routes = routes_.equal_range(RoutePattern(req.path));
  if (routes.first == routes.second) {
    // Not a model that is missing: OpenAI's shape with its not-found type.
    return Json(404, {{"error",
                       {{"message", absl::StrCat("no such endpoint: ", req.method, " ", req.path)},
                        {"type", "not_found_error"},
                        {"param", nullptr},
                        {"code", nullptr}}}});
  }
  for (auto it = routes.first; it != routes.second; ++it) {
    if (it->second.method != req.method) continue;
    if (kOpen.count(req.path)) return it->second.handle(req);
    if (front_end_.load() == nullptr) {
      return Error(absl::UnavailableError("the model is still loading; retry shortly"));
    }
    if (req.path == "/metrics" && !options_.protect_metrics) return it->second.handle(req);
    absl::StatusOr<Caller> caller = front_end().Authenticate(req.Header("Authorization"), "http");
    if (!caller.ok()) return Error(caller.status());
    req.key_id = caller->key_id;
    return it->second.handle(req);
  }
  HttpResponse refused = Error(absl::InvalidArgumentError(
      absl::StrCat("method ", req.method, " is not allowed on ", req.path)));
  refused.status = 405;
  refused.SetHeader("Allow", routes.first->second.method);
  return refused;
}

void HttpGateway::Routes() {
  const auto add = [this](std::string method, std::string path,
                          std::function<HttpReply(HttpRequest&)> handle) {
    routes_.emplace(std::move(path), Route{std::move(method), std::move(handle)});
  };
  add("GET", "/", [](HttpRequest&) -> HttpReply {
    HttpResponse page;
    page.SetHeader("Content-Type", "text/html; charset=utf-8");
    page.body = PlaygroundHtml();
    return page;
  });
  // Alive while loading and draining; not after a device failure, which only a restart repairs
  // (a failed CUDA context cannot serve again), so liveness probes restart such a process.
  const auto live = [this](HttpRequest&) -> HttpReply {
    if (front_end_.load() != nullptr) {
      if (absl::Status device = front_end().model().backend->health(); !device.ok()) {
        return Json(503, {{"status", "device_failed"}, {"message", std::string(device.message())}});
      }
    }
    return Json(200, {{"status", "alive"}});
  };
  const auto health = [this](HttpRequest&) -> HttpReply {
    if (front_end_.load() == nullptr) return Json(503, {{"status", "loading"}});
    if (front_end().scheduler().draining()) return Json(503, {{"status", "draining"}});
    if (absl::Status device = front_end().model().backend->health(); !device.ok()) {
      return Json(503, {{"status", "device_failed"}, {"message", std::string(device.message())}});
    }
    return Json(200, {{"status", "ok"}, {"model", front_end().model().name}});
  };
  add("GET", "/live", live);
  add("GET", "/health", health);
  // The KServe / Triton inference protocol's health routes, which probes and gateways built for
  // those servers ask for (docs/deploy.md).
  add("GET", "/v2/health/live", live);
  add("GET", "/v2/health/ready", health);
  add("GET", "/version", [this](HttpRequest&) -> HttpReply {
    return Json(200, {{"version", version_}});
  });
  add("GET", "/metrics", [this](HttpRequest&) -> HttpReply {
    HttpResponse text;
    text.SetHeader("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    text.body = metrics().Render(front_end().scheduler().stats());
    if (front_end().options().gatekeeper != nullptr) {
      front_end().options().gatekeeper->RenderMetrics(metrics().model_label(), text.body);
    }
    return text;
  });
  add("GET", "/v1/models", [this](HttpRequest&) -> HttpReply {
    json data = json::array();
    const v1::ListModelsResponse models = front_end().ListModels();
    for (const v1::ModelInfo& info : models.models()) data.push_back(ModelObject(info));
    return Json(200, {{"object", "list"}, {"data", data}});
  });
  // One model, as OpenAI's models.retrieve(id) reads it; 404 model_not_found for another id.
  add("GET", "/v1/models/*", [this](HttpRequest& req) -> HttpReply {
    const std::string id = req.path.substr(std::string_view("/v1/models/").size());
    const v1::ListModelsResponse models = front_end().ListModels();
    for (const v1::ModelInfo& info : models.models()) {
      if (info.name() == id) return Json(200, ModelObject(info));
    }
    return Error(absl::NotFoundError(absl::StrCat("the model '", id, "' is not served here")),
                 "model");
  });

  add("POST", "/v1/tokenize", [this](HttpRequest& req) -> HttpReply {
    v1::TokenizeRequest request;
    if (auto status = FromJson(req.body, request); !status.ok()) return Error(status);
    auto response = front_end().Tokenize(request);
    if (!response.ok()) return Error(response.status());
    HttpResponse ok;
    ok.SetHeader("Content-Type", kJson);
    ok.body = ToJson(*response);
    return ok;
  });
  add("POST", "/v1/detokenize", [this](HttpRequest& req) -> HttpReply {
    v1::DetokenizeRequest request;
    if (auto status = FromJson(req.body, request); !status.ok()) return Error(status);
    auto response = front_end().Detokenize(request);
    if (!response.ok()) return Error(response.status());
    HttpResponse ok;
    ok.SetHeader("Content-Type", kJson);
    ok.body = ToJson(*response);
    return ok;
  });

  // Native JSON: the GenerateRequest mapping plus "stream"; the events are the gRPC messages.
  add("POST", "/v1/generate", [this](HttpRequest& req) -> HttpReply {
    auto body = ParseBody(req);
    if (!body.ok()) return Error(body.status());
    bool stream = false;
    if (body->contains("stream")) {
      if (!(*body)["stream"].is_boolean()) {
        return Error(absl::InvalidArgumentError("'stream' must be true or false"), "stream");
      }
      stream = (*body)["stream"].get<bool>();
      body->erase("stream");
    }
    v1::GenerateRequest request;
    if (auto status = FromJson(body->dump(), request); !status.ok()) {
      return Error(status, FieldAtFault(status));
    }
    if (request.request_id().empty()) request.set_request_id(req.request_id);
    if (!stream) request.mutable_stream_options()->set_mode(v1::StreamOptions::FINAL_ONLY);
    auto submitted = front_end().Submit(request, std::nullopt, Caller{req.key_id});
    if (!submitted.ok()) return Error(submitted.status(), FieldAtFault(submitted.status()));
    auto pending = std::make_unique<Pending>(std::move(*submitted), open_responses_);
    if (stream) return std::make_unique<NativeStreamReply>(std::move(pending), front_end());
    return std::make_unique<ResultReply>(std::move(pending), front_end(),
                                         [](const v1::GenerateResult& result) {
                                           HttpResponse ok;
                                           ok.SetHeader("Content-Type", kJson);
                                           ok.body = ToJson(result);
                                           return ok;
                                         });
  });

  // Refine sessions (docs/refine.md): the body opens the generation as /v1/generate's does; the
  // answer is its SSE stream, whose `accepted` event carries the session id that edits are
  // posted to. Closing the stream cancels the session.
  add("POST", "/v1/refine", [this](HttpRequest& req) -> HttpReply {
    auto body = ParseBody(req);
    if (!body.ok()) return Error(body.status());
    bool start_paused = false;
    if (body->contains("start_paused")) {
      if (!(*body)["start_paused"].is_boolean()) {
        return Error(absl::InvalidArgumentError("'start_paused' must be true or false"),
                     "start_paused");
      }
      start_paused = (*body)["start_paused"].get<bool>();
      body->erase("start_paused");
    }
    v1::GenerateRequest request;
    if (auto status = FromJson(body->dump(), request); !status.ok()) {
      return Error(status, FieldAtFault(status));
    }
    if (request.request_id().empty()) request.set_request_id(req.request_id);
    auto submitted = front_end().Submit(request, std::nullopt, Caller{req.key_id},
                                        /*refine=*/true, start_paused);
    if (!submitted.ok()) return Error(submitted.status(), FieldAtFault(submitted.status()));
    auto session = std::make_shared<RefineSession>();
    session->id = NewSessionId();
    session->key_id = req.key_id;
    session->edits = submitted->edits;
    session->stream = submitted->handle->stream();
    session->scheduler = &front_end().scheduler();
    {
      std::lock_guard lock(refine_mutex_);
      refine_sessions_[session->id] = session;
    }
    auto pending = std::make_unique<Pending>(std::move(*submitted), open_responses_);
    return std::make_unique<RefineStreamReply>(std::move(pending), front_end(), session->id,
                                               [this, session] {
                                                 std::lock_guard lock(refine_mutex_);
                                                 refine_sessions_.erase(session->id);
                                               });
  });
  add("POST", "/v1/refine/*/edits",
      [this](HttpRequest& req) -> HttpReply { return PostEdits(req); });

  const auto openai = [this](OpenAiEndpoint endpoint) {
    return [this, endpoint](HttpRequest& req) -> HttpReply {
      auto body = ParseBody(req);
      if (!body.ok()) return Error(body.status());
      std::string param;
      auto parsed = ParseOpenAiRequest(endpoint, *body, &param);
      if (!parsed.ok()) return Error(parsed.status(), param);
      if (parsed->generate.request_id().empty()) parsed->generate.set_request_id(req.request_id);
      // Every sample is submitted before the next step boundary can pass, so they share steps;
      // a refusal of any refuses the request (the others are cancelled with their handles).
      std::vector<std::unique_ptr<Pending>> samples;
      for (int i = 0; i < parsed->best_of; ++i) {
        auto submitted =
            front_end().Submit(SampleRequest(*parsed, i), std::nullopt, Caller{req.key_id});
        if (!submitted.ok()) {
          return Error(submitted.status(), OpenAiFieldAtFault(submitted.status()));
        }
        samples.push_back(std::make_unique<Pending>(std::move(*submitted), open_responses_));
      }
      const Tokenizer* tokenizer = front_end().model().tokenizer.get();
      OpenAiReplyContext context;
      context.endpoint = endpoint;
      context.id = absl::StrCat(endpoint == OpenAiEndpoint::kCompletions ? "cmpl-" : "chatcmpl-",
                                samples.front()->built().request_id);
      context.model = parsed->model.empty() ? front_end().model().name : parsed->model;
      context.created = UnixSeconds();
      context.token_bytes = [tokenizer](int32_t id) {
        if (tokenizer == nullptr) return std::string();
        auto bytes = tokenizer->TokenBytes(id);
        return bytes.ok() ? *bytes : std::string();
      };
      context.text_bytes = [tokenizer](int32_t id) -> size_t {
        if (tokenizer == nullptr) return 0;
        auto bytes = tokenizer->TokenBytes(id, /*skip_special_tokens=*/true);
        return bytes.ok() ? bytes->size() : 0;
      };
      OpenAiEcho echo;
      if (parsed->echo) {
        const v1::GenerateRequest& generate = parsed->generate;
        std::vector<int32_t> ids(generate.prompt_ids().begin(), generate.prompt_ids().end());
        if (generate.has_prompt()) {
          echo.text = generate.prompt();
          if (tokenizer != nullptr) {
            auto encoded = tokenizer->Encode(generate.prompt());
            if (encoded.ok()) ids = std::move(*encoded);
          }
        } else if (tokenizer != nullptr) {
          auto decoded = tokenizer->Decode(ids, /*skip_special_tokens=*/true);
          if (decoded.ok()) echo.text = std::move(*decoded);
        }
        if (parsed->logprobs) {
          for (int32_t id : ids) {
            v1::TokenLogprob& token = echo.tokens.emplace_back();
            token.set_token_id(id);
            token.set_text(front_end().TokenText(id));
          }
        }
      }
      if (!parsed->stream) {
        return std::make_unique<OpenAiResultReply>(std::move(samples), front_end(),
                                                   std::move(context), std::move(*parsed),
                                                   std::move(echo));
      }
      return std::make_unique<OpenAiStreamReply>(
          std::move(samples), front_end(), std::move(context), std::move(*parsed), std::move(echo));
    };
  };
  add("POST", "/v1/completions", openai(OpenAiEndpoint::kCompletions));
  add("POST", "/v1/chat/completions", openai(OpenAiEndpoint::kChatCompletions));
}

}  // namespace sculpt

namespace sculpt {

// {"edits": [Edit, ...]} (or one Edit object): each is checked and queued for the session's next
// step boundaries; every edit gets one `edit` event on the session's stream, and this answer says
// which were queued. 404 for a session that is not open; 429 (with Retry-After) for edits that
// find the session's inbox full.
HttpReply HttpGateway::PostEdits(HttpRequest& req) {
  constexpr size_t kMaxEditsPerPost = 256;
  const std::string prefix = "/v1/refine/";
  const std::string id = req.path.substr(prefix.size(), req.path.rfind('/') - prefix.size());
  std::shared_ptr<RefineSession> session;
  {
    std::lock_guard lock(refine_mutex_);
    if (auto found = refine_sessions_.find(id); found != refine_sessions_.end()) {
      session = found->second.lock();
    }
  }
  // Another key's session is answered as one that does not exist.
  if (session && session->key_id != req.key_id) session.reset();
  if (!session) {
    return Json(404, {{"error",
                       {{"message", absl::StrCat("no refine session '", id,
                                                 "' is open (it ended, or its stream was closed)")},
                        {"type", "not_found_error"},
                        {"param", nullptr},
                        {"code", "session_not_found"}}}});
  }
  auto body = ParseBody(req);
  if (!body.ok()) return Error(body.status());
  json edits = body->contains("edits") ? (*body)["edits"] : json::array({*body});
  if (!edits.is_array() || edits.empty() || edits.size() > kMaxEditsPerPost) {
    return Error(absl::InvalidArgumentError(
                     absl::StrCat("'edits' must be an array of 1 to ", kMaxEditsPerPost, " edits")),
                 "edits");
  }
  json answers = json::array();
  bool full = false;  // once full, the rest are refused too, keeping the edits' order
  for (size_t i = 0; i < edits.size(); ++i) {
    const std::string default_id = absl::StrCat("edit-", ++session->edits_received);
    v1::Edit message;
    const absl::Status parsed = FromJson(edits[i].dump(), message);
    absl::StatusOr<DraftEdit> edit =
        parsed.ok() ? front_end().BuildEdit(message, default_id) : parsed;
    std::string edit_id = message.edit_id().empty() ? default_id : message.edit_id();
    if (!parsed.ok() && edits[i].is_object() && edits[i].contains("edit_id") &&
        edits[i]["edit_id"].is_string() && edits[i]["edit_id"].get<std::string>().size() <= 128) {
      // An edit that does not parse is still answered by the id it gave.
      edit_id = edits[i]["edit_id"].get<std::string>();
    }
    if (edit.ok() && (full || !session->edits->TryPush(*edit))) {
      full = true;
      edit = absl::ResourceExhaustedError(absl::StrCat(
          "the session has ", session->edits->capacity(),
          " edits waiting for step boundaries; send this one again after the next step"));
    }
    json answer = {{"edit_id", edit_id}, {"queued", edit.ok()}};
    if (!edit.ok()) {
      answer["code"] = static_cast<int>(edit.status().code());
      answer["message"] = std::string(edit.status().message());
      session->stream->PushEdit(
          {.edit_id = edit_id, .kind = EditKindOf(message), .status = edit.status()});
    }
    answers.push_back(std::move(answer));
  }
  session->scheduler->EditsArrived();
  HttpResponse response = Json(full ? 429 : 202, {{"session_id", id}, {"edits", answers}});
  if (full) response.SetHeader("Retry-After", "1");
  return response;
}

}  // namespace sculpt
