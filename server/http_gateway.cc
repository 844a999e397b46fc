// Routes, JSON mapping and SSE plumbing of the HTTP gateway; see http_gateway.h.
#include "server/http_gateway.h"

#include <arpa/inet.h>
#include <google/protobuf/util/json_util.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/openai_api.h"
#include "server/playground.h"
#include "server/stable_text.h"

namespace sculpt {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kJson = "application/json";

// Wakes an HTTP worker waiting for a request's next event.
class Waiter {
 public:
  void Notify() {
    {
      std::lock_guard lock(mutex_);
      signaled_ = true;
    }
    wake_.notify_all();
  }
  // False on timeout.
  bool WaitFor(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    const bool woken = wake_.wait_for(lock, timeout, [&] { return signaled_; });
    signaled_ = false;
    return woken;
  }

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  bool signaled_ = false;
};

// A submitted request with a waiter attached to its outbox.
// Lives as long as the response that carries the request's events, streamed or not; counted so
// that a drain can let every response finish before the server stops.
struct Pending {
  Pending(Submitted s, std::atomic<int>& counter)
      : submitted(std::move(s)), waiter(std::make_shared<Waiter>()), open_responses(counter) {
    open_responses.fetch_add(1);
    submitted.handle->stream()->SetListener([w = waiter] { w->Notify(); });
  }
  ~Pending() {
    submitted.handle->stream()->SetListener(nullptr);
    open_responses.fetch_sub(1);
  }

  // The next event, waiting at most `timeout`.
  std::optional<StreamEvent> Next(std::chrono::milliseconds timeout) {
    if (auto event = submitted.handle->stream()->Pop()) return event;
    waiter->WaitFor(timeout);
    return submitted.handle->stream()->Pop();
  }

  Submitted submitted;
  std::shared_ptr<Waiter> waiter;
  std::atomic<int>& open_responses;
};

void SendJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), kJson);
}

void SendError(httplib::Response& res, const absl::Status& status, const std::string& param = "") {
  SendJson(res, HttpStatusFor(status), OpenAiErrorBody(status, param));
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

absl::StatusOr<json> ParseBody(const httplib::Request& req) {
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

bool Write(httplib::DataSink& sink, const std::string& text) {
  return sink.write(text.data(), text.size());
}

void SetTimingHeaders(httplib::Response& res, const v1::GenerateResult& result) {
  res.set_header("x-queue-time", absl::StrFormat("%.3f", result.timings().queue_ms()));
  res.set_header("x-inference-time", absl::StrFormat("%.3f", result.timings().total_ms() -
                                                                 result.timings().queue_ms()));
  res.set_header("x-total-time", absl::StrFormat("%.3f", result.timings().total_ms()));
}

void SetStreamHeaders(httplib::Response& res) {
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
}

int64_t UnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The socket of the connection a request came on, or -1. cpp-httplib 0.11 does not hand it to
// handlers, but a non-streaming request must notice a client that went away; the connection is
// found by its two endpoints (it stays open, so its fd is stable, while the handler runs).
int FindConnectionFd(const httplib::Request& req) {
  std::error_code error;
  for (std::filesystem::directory_iterator it("/proc/self/fd", error), end; !error && it != end;
       it.increment(error)) {
    int fd = -1;
    const std::string name = it->path().filename().string();
    if (!absl::SimpleAtoi(name, &fd)) continue;
    sockaddr_storage peer{};
    socklen_t length = sizeof peer;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) != 0) continue;
    int peer_port = -1;
    char text[INET6_ADDRSTRLEN] = {};
    if (peer.ss_family == AF_INET) {
      const auto* in = reinterpret_cast<sockaddr_in*>(&peer);
      peer_port = ntohs(in->sin_port);
      inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    } else if (peer.ss_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<sockaddr_in6*>(&peer);
      peer_port = ntohs(in6->sin6_port);
      inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    }
    if (peer_port != req.remote_port || req.remote_addr != text) continue;
    sockaddr_storage local{};
    length = sizeof local;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) != 0) continue;
    const int local_port = local.ss_family == AF_INET
                               ? ntohs(reinterpret_cast<sockaddr_in*>(&local)->sin_port)
                               : ntohs(reinterpret_cast<sockaddr_in6*>(&local)->sin6_port);
    if (local_port == req.local_port) return fd;
  }
  return -1;
}

bool PeerClosed(int fd) {
  if (fd < 0) return false;
  pollfd entry{.fd = fd, .events = POLLRDHUP, .revents = 0};
  return poll(&entry, 1, 0) > 0 && (entry.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

// A draft's changed spans as answer position → token, what the OpenAI stream's text follows.
std::map<int32_t, int32_t> CommittedTokens(const v1::StepDraft& draft) {
  std::map<int32_t, int32_t> committed;
  for (const v1::Span& span : draft.changed()) {
    for (int i = 0; i < span.token_ids_size(); ++i) {
      committed[static_cast<int32_t>(span.position()) + i] = span.token_ids(i);
    }
  }
  return committed;
}

// Waits for a request's final event; the result, or the status it ended with. A client that
// hangs up meanwhile cancels the request.
absl::StatusOr<v1::GenerateResult> AwaitResult(FrontEnd& front_end, Pending& pending,
                                               const httplib::Request& req) {
  const int fd = FindConnectionFd(req);
  bool cancelled = false;
  while (true) {
    std::optional<StreamEvent> event = pending.Next(std::chrono::milliseconds(100));
    if (!event) {
      if (!cancelled && PeerClosed(fd)) {
        pending.submitted.handle->Cancel();
        cancelled = true;
      }
      continue;
    }
    // Only the result is answered: drafts are not even built.
    if (!std::holds_alternative<FinalEvent>(*event)) continue;
    FrontEnd::Response response = front_end.ToResponse(pending.submitted.built, *event);
    if (response.terminal) return *response.terminal;
    if (std::get<FinalEvent>(*event).result.finish_reason == FinishReason::kCancelled) {
      return absl::CancelledError("the request was cancelled");
    }
    return std::move(*response.message.mutable_final());
  }
}

// cpp-httplib 0.11 listens with a backlog of 5, so a burst of clients connecting at once
// overflows the accept queue and some connections are reset. Listening again on the same socket
// raises the backlog (Linux applies the new value); the socket is found by its port.
void RaiseListenBacklog(int port) {
  for (int fd = 0; fd < 4096; ++fd) {
    int accepting = 0;
    socklen_t length = sizeof accepting;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length) != 0 || !accepting) {
      continue;
    }
    sockaddr_storage address{};
    socklen_t address_length = sizeof address;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&address), &address_length) != 0) continue;
    int bound = -1;
    if (address.ss_family == AF_INET) {
      bound = ntohs(reinterpret_cast<sockaddr_in*>(&address)->sin_port);
    } else if (address.ss_family == AF_INET6) {
      bound = ntohs(reinterpret_cast<sockaddr_in6*>(&address)->sin6_port);
    }
    if (bound == port) ::listen(fd, SOMAXCONN);
  }
}

}  // namespace

HttpGateway::HttpGateway(HttpOptions options, std::string version)
    : options_(std::move(options)),
      version_(std::move(version)),
      server_(std::make_unique<httplib::Server>()) {}

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
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

absl::Status HttpGateway::Start() {
  const int workers = options_.max_connections;
  server_->new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
  server_->set_payload_max_length(options_.payload_limit);
  server_->set_keep_alive_max_count(1000);
  server_->set_read_timeout(std::chrono::seconds(30));
  server_->set_write_timeout(std::chrono::seconds(30));
  Routes();
  bound_port_ = options_.port == 0
                    ? server_->bind_to_any_port(options_.host)
                    : (server_->bind_to_port(options_.host, options_.port) ? options_.port : -1);
  if (bound_port_ <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen for HTTP on ", options_.host, ":",
                                               options_.port, " (in use?)"));
  }
  RaiseListenBacklog(bound_port_);
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // stop() only takes effect once the accept loop runs; wait for it so that an early Stop()
  // (a model that fails to load) cannot leave the loop running forever.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!server_->is_running() && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!server_->is_running()) {
    return absl::UnavailableError("the HTTP server did not start");
  }
  return absl::OkStatus();
}

void HttpGateway::Routes() {
  httplib::Server& server = *server_;
  static const std::set<std::string> kGetPaths = {"/",        "/health",  "/live",
                                                  "/version", "/metrics", "/v1/models"};
  static const std::set<std::string> kPostPaths = {
      "/v1/completions", "/v1/chat/completions", "/v1/generate", "/v1/tokenize", "/v1/detokenize"};

  // CORS is off unless origins are allowed; then the Origin is echoed when it is one of them.
  server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    static const std::set<std::string> kWhileLoading = {"/health", "/live", "/version", "/"};
    if (front_end_.load() == nullptr && !kWhileLoading.count(req.path)) {
      SendError(res, absl::UnavailableError("the model is still loading; retry shortly"));
      return httplib::Server::HandlerResponse::Handled;
    }
    if (options_.allowed_origins.empty() || !req.has_header("Origin")) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    const std::string origin = req.get_header_value("Origin");
    const bool any = std::find(options_.allowed_origins.begin(), options_.allowed_origins.end(),
                               "*") != options_.allowed_origins.end();
    if (any || std::find(options_.allowed_origins.begin(), options_.allowed_origins.end(),
                         origin) != options_.allowed_origins.end()) {
      res.set_header("Access-Control-Allow-Origin", any ? "*" : origin);
      res.set_header("Vary", "Origin");
      if (req.method == "OPTIONS") {
        res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        res.set_header("Access-Control-Allow-Headers", "Content-Type, Authorization");
        res.status = 204;
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404 && (kGetPaths.count(req.path) || kPostPaths.count(req.path))) {
      res.set_header("Allow", kGetPaths.count(req.path) ? "GET" : "POST");
      SendError(res, absl::InvalidArgumentError(
                         absl::StrCat("method ", req.method, " is not allowed on ", req.path)));
      res.status = 405;
      return;
    }
    if (res.status == 404) {
      SendError(res,
                absl::NotFoundError(absl::StrCat("no such endpoint: ", req.method, " ", req.path)));
      return;
    }
    if (res.status == 413) {
      SendJson(res, 413,
               OpenAiErrorBody(absl::InvalidArgumentError("the request body is too large"), ""));
      res.status = 413;
      return;
    }
    SendJson(res, res.status,
             OpenAiErrorBody(absl::UnknownError(absl::StrCat("HTTP ", res.status)), ""));
  });
  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        SendError(res, absl::InternalError("unexpected exception"));
      });

  server.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(PlaygroundHtml(), "text/html; charset=utf-8");
  });
  server.Get("/live", [](const httplib::Request&, httplib::Response& res) {
    SendJson(res, 200, {{"status", "alive"}});
  });
  server.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (front_end_.load() == nullptr) {
      SendJson(res, 503, {{"status", "loading"}});
    } else if (front_end().scheduler().draining()) {
      SendJson(res, 503, {{"status", "draining"}});
    } else if (absl::Status device = front_end().model().backend->health(); !device.ok()) {
      SendJson(res, 503, {{"status", "device_failed"}, {"message", std::string(device.message())}});
    } else {
      SendJson(res, 200, {{"status", "ok"}, {"model", front_end().model().name}});
    }
  });
  server.Get("/version", [this](const httplib::Request&, httplib::Response& res) {
    SendJson(res, 200, {{"version", version_}});
  });
  server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics().Render(front_end().scheduler().stats()),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
  server.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    json data = json::array();
    const v1::ListModelsResponse models = front_end().ListModels();
    for (const v1::ModelInfo& info : models.models()) {
      data.push_back({{"id", info.name()},
                      {"object", "model"},
                      {"created", 0},
                      {"owned_by", "sculpt"},
                      {"max_model_len", info.context_length()}});
    }
    SendJson(res, 200, {{"object", "list"}, {"data", data}});
  });

  server.Post("/v1/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    v1::TokenizeRequest request;
    if (auto status = FromJson(req.body, request); !status.ok()) return SendError(res, status);
    auto response = front_end().Tokenize(request);
    if (!response.ok()) return SendError(res, response.status());
    res.set_content(ToJson(*response), kJson);
  });
  server.Post("/v1/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
    v1::DetokenizeRequest request;
    if (auto status = FromJson(req.body, request); !status.ok()) return SendError(res, status);
    auto response = front_end().Detokenize(request);
    if (!response.ok()) return SendError(res, response.status());
    res.set_content(ToJson(*response), kJson);
  });

  // Native JSON: the GenerateRequest mapping plus "stream"; the events are the gRPC messages.
  server.Post("/v1/generate", [this](const httplib::Request& req, httplib::Response& res) {
    auto body = ParseBody(req);
    if (!body.ok()) return SendError(res, body.status());
    bool stream = false;
    if (body->contains("stream")) {
      if (!(*body)["stream"].is_boolean()) {
        return SendError(res, absl::InvalidArgumentError("'stream' must be true or false"),
                         "stream");
      }
      stream = (*body)["stream"].get<bool>();
      body->erase("stream");
    }
    v1::GenerateRequest request;
    if (auto status = FromJson(body->dump(), request); !status.ok()) {
      return SendError(res, status);
    }
    if (!stream) request.mutable_stream_options()->set_mode(v1::StreamOptions::FINAL_ONLY);
    auto submitted = front_end().Submit(request, std::nullopt);
    if (!submitted.ok()) return SendError(res, submitted.status());
    auto pending = std::make_shared<Pending>(std::move(*submitted), open_responses_);
    if (!stream) {
      auto result = AwaitResult(front_end(), *pending, req);
      if (!result.ok()) return SendError(res, result.status());
      SetTimingHeaders(res, *result);
      res.set_content(ToJson(*result), kJson);
      return;
    }
    SetStreamHeaders(res);
    const auto keepalive = options_.keepalive_interval;
    FrontEnd* front_end = &this->front_end();
    res.set_chunked_content_provider("text/event-stream", [pending, keepalive, front_end](
                                                              size_t, httplib::DataSink& sink) {
      std::optional<StreamEvent> event = pending->Next(keepalive);
      if (!event) return Write(sink, ": keep-alive\n\n");
      const FrontEnd::Response response = front_end->ToResponse(pending->submitted.built, *event);
      bool ok = true;
      if (response.terminal) {
        ok = Write(sink, SseEvent("error", OpenAiErrorBody(*response.terminal, "").dump()));
      } else {
        // The SSE event is named after the oneof field it carries (accepted, step, block,
        // final), its data that field's message.
        const v1::GenerateResponse& message = response.message;
        const auto* field =
            message.GetDescriptor()->FindFieldByNumber(static_cast<int>(message.event_case()));
        ok = Write(sink, SseEvent(field->name(),
                                  ToJson(message.GetReflection()->GetMessage(message, field))));
      }
      if (response.last) sink.done();
      return ok;
    });
  });

  const auto openai = [this](OpenAiEndpoint endpoint) {
    return [this, endpoint](const httplib::Request& req, httplib::Response& res) {
      auto body = ParseBody(req);
      if (!body.ok()) return SendError(res, body.status());
      std::string param;
      auto parsed = ParseOpenAiRequest(endpoint, *body, &param);
      if (!parsed.ok()) return SendError(res, parsed.status(), param);
      auto submitted = front_end().Submit(parsed->generate, std::nullopt);
      if (!submitted.ok()) {
        return SendError(res, submitted.status(),
                         absl::IsNotFound(submitted.status()) ? "model" : "");
      }
      const std::string id =
          absl::StrCat(endpoint == OpenAiEndpoint::kCompletions ? "cmpl-" : "chatcmpl-",
                       submitted->built.request_id);
      const std::string model = parsed->model.empty() ? front_end().model().name : parsed->model;
      const int64_t created = UnixSeconds();
      auto pending = std::make_shared<Pending>(std::move(*submitted), open_responses_);
      if (!parsed->stream) {
        auto result = AwaitResult(front_end(), *pending, req);
        if (!result.ok()) return SendError(res, result.status());
        SetTimingHeaders(res, *result);
        SendJson(res, 200, OpenAiResponse(endpoint, id, created, model, *result));
        return;
      }
      SetStreamHeaders(res);
      const Tokenizer* tokenizer = front_end().model().tokenizer.get();
      std::vector<std::string> stops(parsed->generate.stop().begin(),
                                     parsed->generate.stop().end());
      auto stable = tokenizer ? std::make_shared<StableTextStream>(
                                    *tokenizer, stops, pending->submitted.built.gen_length)
                              : nullptr;
      auto first = std::make_shared<bool>(true);
      const bool include_usage = parsed->include_usage;
      const auto keepalive = options_.keepalive_interval;
      FrontEnd* front_end = &this->front_end();
      res.set_chunked_content_provider("text/event-stream", [=](size_t, httplib::DataSink& sink) {
        const auto chunk = [&](const std::string& delta, const std::string& reason) {
          const json chunk_json = OpenAiChunk(endpoint, id, created, model, delta, reason, *first);
          *first = false;
          return Write(
              sink, SseEvent("", chunk_json.dump(-1, ' ', false, json::error_handler_t::replace)));
        };
        std::optional<StreamEvent> event = pending->Next(keepalive);
        if (!event) return Write(sink, ": keep-alive\n\n");
        const FrontEnd::Response response = front_end->ToResponse(pending->submitted.built, *event);
        const v1::GenerateResponse& message = response.message;
        if (message.has_accepted()) {
          // The role comes first in chat streams, as OpenAI sends it.
          return endpoint == OpenAiEndpoint::kChatCompletions ? chunk("", "") : true;
        }
        if (message.has_step()) {
          const std::string delta = stable ? stable->Apply(CommittedTokens(message.step())) : "";
          return delta.empty() ? true : chunk(delta, "");
        }
        if (message.has_block()) return true;
        bool ok = true;
        if (response.terminal) {
          ok = Write(sink, SseEvent("", OpenAiErrorBody(*response.terminal, "").dump()));
        } else {
          const v1::GenerateResult& result = message.final();
          const std::string rest = stable ? stable->Finish(result.text()) : result.text();
          if (!rest.empty()) ok = chunk(rest, "");
          ok = ok && chunk("", result.finish_reason());
          if (ok && include_usage) {
            ok = Write(
                sink,
                SseEvent("",
                         OpenAiUsageChunk(endpoint, id, created, model, result.usage()).dump()));
          }
        }
        ok = ok && Write(sink, "data: [DONE]\n\n");
        sink.done();
        return ok;
      });
    };
  };
  server.Post("/v1/completions", openai(OpenAiEndpoint::kCompletions));
  server.Post("/v1/chat/completions", openai(OpenAiEndpoint::kChatCompletions));
}

}  // namespace sculpt
