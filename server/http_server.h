// An asynchronous HTTP/1.1 server on Boost.Beast (Asio): a few I/O threads serve every
// connection, each with its own state; no thread per request or per stream. Limits are enforced
// while reading, before anything is buffered: the request line (414), the header's size and
// field count (431), the body for every transfer encoding (413 as soon as it is passed),
// deadlines for a request's header and body and for an idle keep-alive connection (the
// connection is closed), and a connection cap (503 beyond it). Answers that wait on the engine
// (DeferredReply) are pumped as their events arrive and only as fast as the client reads them, and
// a client that hangs up cancels them.
//
// It knows nothing of the routes: a Handler maps an HttpRequest to a reply
// (server/http_gateway.cc).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "server/tls.h"

namespace sculpt {

template <typename Stream>
class HttpConnectionOn;

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as sent: path and query
  std::string path;    // target up to '?'
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string remote_address;
  int remote_port = 0;
  // The client's X-Request-Id when it sent a usable one, else one made by the server; echoed in
  // the response's X-Request-Id.
  std::string request_id;
  // The API key's id the handler found valid (for the access log), or "".
  std::string key_id;

  // The first value of a header (names compare case-insensitively), or "".
  std::string Header(std::string_view name) const;
  bool HasHeader(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;  // Content-Type among them
  std::string body;

  void SetHeader(std::string name, std::string value);
};

// What a DeferredReply has ready when pumped.
struct ReplyProgress {
  // The whole answer: the reply is over.
  std::optional<HttpResponse> whole;
  // The head of a streamed answer (its body is sent chunked): given once, before any data.
  std::optional<HttpResponse> stream_head;
  std::string data;   // stream data ready now
  bool done = false;  // the stream ended (after `data`)
};

// An answer made of the engine's events: a stream, or a result still being computed.
class DeferredReply {
 public:
  virtual ~DeferredReply() = default;
  // Called once, on the connection's strand: `wake` may then be called from any thread whenever
  // Pump could produce more.
  virtual void Start(std::function<void()> wake) = 0;
  // On the connection's strand, never while a write is in flight: what is ready now.
  virtual ReplyProgress Pump() = 0;
  // The client went away (or stopped reading): stop the work behind the reply.
  virtual void Cancel() = 0;
};

using HttpReply = std::variant<HttpResponse, std::unique_ptr<DeferredReply>>;

// What the access log records of one request, once its answer is written (or abandoned).
struct HttpAccess {
  std::string method;
  std::string path;
  std::string remote_address;
  int remote_port = 0;
  std::string request_id;
  std::string key_id;        // the API key's id, when the request had a valid one
  int status = 0;            // 0: no answer was sent (the client left first)
  uint64_t bytes_sent = 0;   // the answer's body, chunk framing excluded
  double duration_ms = 0.0;  // from the request's header to the end of its answer
  bool completed = true;     // false when the connection ended before the answer did
};
using HttpHandler = std::function<HttpReply(HttpRequest&)>;
// The body of an error answer the server makes itself (limits, timeouts, refusals).
using HttpErrorBody = std::function<HttpResponse(int status, const std::string& message)>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port
  int io_threads = 2;
  int max_connections = 512;
  size_t max_body_bytes = 1 << 20;
  size_t max_header_bytes = 16 << 10;  // request line and header fields together
  size_t max_target_bytes = 8 << 10;
  int max_header_fields = 100;
  std::chrono::milliseconds header_timeout{10000};  // from a request's first byte to its header
  std::chrono::milliseconds body_timeout{30000};    // to read the body after the header
  std::chrono::milliseconds idle_timeout{60000};    // keep-alive connection waiting for a request
  std::chrono::milliseconds write_timeout{30000};   // for each write to a client
  // A streamed answer with nothing new for this long gets an SSE comment, so that proxies and
  // clients see the connection alive.
  std::chrono::milliseconds keepalive_interval{5000};
  // Makes a request id for a request without a usable X-Request-Id.
  std::function<std::string()> new_request_id;
  // HTTPS with these certificates (and client certificates verified against the CA when it
  // is set); plain HTTP when empty.
  std::optional<TlsFiles> tls;
  // Called (on an I/O thread) once per request when its answer is done; may be empty.
  std::function<void(const HttpAccess&)> on_access;
};

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, HttpHandler handler, HttpErrorBody error_body);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts the I/O threads; UNAVAILABLE when the address cannot be bound.
  absl::Status Start();
  // Stops accepting and closes every connection, streams included; joins the I/O threads.
  void Stop();
  int port() const { return bound_port_; }

 private:
  template <typename Stream>
  friend class HttpConnectionOn;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int bound_port_ = 0;
};

}  // namespace sculpt
