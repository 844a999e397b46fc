// The HTTP/JSON gateway of `sculpt serve`: OpenAI-compatible completions and chat, the native
// JSON mapping of the gRPC API (with SSE streams of the same events), tokenization, health,
// version and Prometheus metrics, on the asynchronous HttpServer (server/http_server.h). Same
// FrontEnd, same engine as gRPC.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "server/front_end.h"
#include "server/http_server.h"
#include "server/metrics.h"

namespace sculpt {

struct HttpOptions {
  HttpServerOptions server;                  // address, threads, limits, deadlines
  std::vector<std::string> allowed_origins;  // CORS; empty = off, "*" = any
  // With API keys on, /metrics needs a key too (health, liveness and the version never do).
  bool protect_metrics = false;
};

// Starts before the model is loaded, so /health can say 503 while it loads; Attach() then
// connects the engine.
class HttpGateway {
 public:
  HttpGateway(HttpOptions options, std::string version);
  ~HttpGateway();
  HttpGateway(const HttpGateway&) = delete;
  HttpGateway& operator=(const HttpGateway&) = delete;

  // Binds and serves on a thread of its own. Until Attach(), /health answers 503 "loading" and
  // every API endpoint 503.
  absl::Status Start();
  void Attach(FrontEnd& front_end, Metrics& metrics);
  // Waits until every response that carries a request's events (a stream, or a result still
  // being awaited) has been written; false if `deadline` came first. Stop() cuts chunked streams
  // short, so a drain calls this first.
  bool WaitForOpenResponses(std::chrono::steady_clock::time_point deadline);
  // Stops accepting; open connections end, streams included.
  void Stop();
  int port() const { return bound_port_; }

 private:
  struct Route {
    std::string method;
    std::function<HttpReply(HttpRequest&)> handle;
  };
  void Routes();
  HttpReply Handle(HttpRequest& request);
  HttpReply Dispatch(HttpRequest& request);
  // The route a path is served by, as a metrics label ("other" when none).
  std::string RouteLabel(const std::string& path) const;
  FrontEnd& front_end() { return *front_end_.load(); }
  Metrics& metrics() { return *metrics_.load(); }

  std::atomic<FrontEnd*> front_end_{nullptr};
  std::atomic<Metrics*> metrics_{nullptr};
  std::atomic<int> open_responses_{0};
  HttpOptions options_;  // its on_access also feeds the metrics
  const std::string version_;
  std::multimap<std::string, Route> routes_;  // by path
  // The route pattern serving `path` ("/v1/models/*", "/v1/refine/*/edits"), or "".
  std::string RoutePattern(const std::string& path) const;

  // HTTP refine sessions by id, while their event stream is open.
  struct RefineSession;
  std::mutex refine_mutex_;
  std::map<std::string, std::weak_ptr<RefineSession>> refine_sessions_;
  HttpReply PostEdits(HttpRequest& request);
  std::unique_ptr<HttpServer> server_;
  int bound_port_ = 0;
};

}  // namespace sculpt
