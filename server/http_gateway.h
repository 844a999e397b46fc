// The HTTP/JSON gateway of `sculpt serve`: OpenAI-compatible completions and chat, the native
// JSON mapping of the gRPC API (with SSE streams of the same events), tokenization, health,
// version and Prometheus metrics, on cpp-httplib. Same FrontEnd, same engine as gRPC.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "server/front_end.h"
#include "server/metrics.h"

namespace httplib {
class Server;
}

namespace sculpt {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port
  size_t payload_limit = 1 << 20;
  std::vector<std::string> allowed_origins;  // CORS; empty = off, "*" = any
  int max_connections = 512;                 // worker threads: one per open connection
  std::chrono::milliseconds keepalive_interval{5000};
};

class HttpGateway {
 public:
  HttpGateway(FrontEnd& front_end, Metrics& metrics, HttpOptions options);
  ~HttpGateway();
  HttpGateway(const HttpGateway&) = delete;
  HttpGateway& operator=(const HttpGateway&) = delete;

  // Binds and serves on a thread of its own.
  absl::Status Start();
  // Stops accepting; open connections end.
  void Stop();
  int port() const { return bound_port_; }

 private:
  void Routes();

  FrontEnd& front_end_;
  Metrics& metrics_;
  const HttpOptions options_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int bound_port_ = 0;
};

}  // namespace sculpt
