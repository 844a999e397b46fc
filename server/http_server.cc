// The HTTP/1.1 server of http_server.h: Beast parses (with its header and body limits, which it
// also applies to chunked bodies as they arrive), our code owns each connection's state machine:
// wait for a request (idle deadline) → header (header deadline, size, count, target length) →
// body (body deadline) → the handler's reply, written whole or pumped as a chunked stream → the
// next request, or close.
#include "server/http_server.h"

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace sculpt {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

std::string HttpRequest::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (beast::iequals(key, name)) return value;
  }
  return "";
}

bool HttpRequest::HasHeader(std::string_view name) const {
  for (const auto& header : headers) {
    if (beast::iequals(header.first, name)) return true;
  }
  return false;
}

void HttpResponse::SetHeader(std::string name, std::string value) {
  for (auto& header : headers) {
    if (beast::iequals(header.first, name)) {
      header.second = std::move(value);
      return;
    }
  }
  headers.emplace_back(std::move(name), std::move(value));
}

namespace {

constexpr std::string_view kRequestIdHeader = "X-Request-Id";

// Header values come from our code, some echo a client's (X-Request-Id): never a line break.
std::string HeaderValue(std::string value) {
  for (char& c : value) {
    if (c == '\r' || c == '\n') c = ' ';
  }
  return value;
}

std::string StatusLine(int status) {
  return absl::StrCat("HTTP/1.1 ", status, " ",
                      std::string(http::obsolete_reason(static_cast<http::status>(status))),
                      "\r\n");
}

// The response head; `content_length` < 0 for a chunked body.
std::string SerializeHead(const HttpResponse& response, int64_t content_length, bool keep_alive) {
  std::string head = StatusLine(response.status);
  for (const auto& [name, value] : response.headers) {
    absl::StrAppend(&head, name, ": ", HeaderValue(value), "\r\n");
  }
  if (content_length >= 0) {
    absl::StrAppend(&head, "Content-Length: ", content_length, "\r\n");
  } else {
    absl::StrAppend(&head, "Transfer-Encoding: chunked\r\n");
  }
  absl::StrAppend(&head, "Connection: ", keep_alive ? "keep-alive" : "close", "\r\n\r\n");
  return head;
}

// A client's request id is used when it is short and plain (it goes into logs and headers).
bool UsableRequestId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) { return c > ' ' && c < 127; });
}

void AppendChunk(std::string& out, std::string_view data) {
  if (data.empty()) return;
  absl::StrAppend(&out, absl::Hex(data.size()), "\r\n");
  out.append(data);
  out += "\r\n";
}

}  // namespace

// What Stop() needs of a connection, whatever its transport.
class HttpConnection {
 public:
  virtual ~HttpConnection() = default;
  // From Stop(): ends whatever the connection was doing.
  virtual void Close() = 0;
};

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

struct HttpServer::Impl {
  Impl(HttpServerOptions server_options, HttpHandler request_handler, HttpErrorBody errors)
      : options(std::move(server_options)),
        handler(std::move(request_handler)),
        error_body(std::move(errors)),
        io(std::max(1, options.io_threads)),
        acceptor(io) {}

  void Accept();
  void Register(const std::shared_ptr<HttpConnection>& connection);

  const HttpServerOptions options;
  const HttpHandler handler;
  const HttpErrorBody error_body;
  net::io_context io;
  tcp::acceptor acceptor;
  std::optional<net::ssl::context> tls;  // set when the server speaks HTTPS
  std::vector<std::thread> threads;
  std::atomic<int> connections{0};
  std::mutex live_mutex;
  std::vector<std::weak_ptr<HttpConnection>> live;
};

// One connection over plain TCP (Stream = beast::tcp_stream) or TLS (TlsStream): the same state
// machine; TLS adds the handshake first, and every read and write passes through its stream.
template <typename Stream>
class HttpConnectionOn final : public HttpConnection,
                               public std::enable_shared_from_this<HttpConnectionOn<Stream>> {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

 public:
  HttpConnectionOn(tcp::socket socket, HttpServer::Impl& server)
      : stream_(MakeStream(std::move(socket), server)),
        server_(server),
        keepalive_timer_(stream_.get_executor()) {
    server_.connections.fetch_add(1);
    beast::error_code error;
    const tcp::endpoint peer = Lowest().socket().remote_endpoint(error);
    if (!error) {
      remote_address_ = peer.address().to_string();
      remote_port_ = peer.port();
    }
  }
  ~HttpConnectionOn() override {
    reply_.reset();  // before the count drops: Stop() waits on it
    server_.connections.fetch_sub(1);
  }

  void Run() {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (kTls) {
        self->Handshake();
      } else {
        self->AwaitRequest();
      }
    });
  }

  void Close() override {
    net::post(stream_.get_executor(), [self = this->shared_from_this()] { self->Shutdown(); });
  }

 private:
  static Stream MakeStream(tcp::socket socket, HttpServer::Impl& server) {
    if constexpr (kTls) {
      return Stream(std::move(socket), *server.tls);
    } else {
      return Stream(std::move(socket));
    }
  }
  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(stream_); }
  const HttpServerOptions& options() const { return server_.options; }

  // A client that does not finish its handshake within the header deadline is dropped; one that
  // fails it (no client certificate under mTLS, a protocol it does not share) learns why from
  // its TLS library, and the server logs it at debug level.
  void Handshake() {
    Lowest().expires_after(options().header_timeout);
    stream_.async_handshake(
        net::ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code error) {
          if (error) {
            spdlog::debug("https: handshake with {}:{} failed: {}", self->remote_address_,
                          self->remote_port_, error.message());
            return self->Shutdown();
          }
          self->Lowest().expires_never();
          self->AwaitRequest();
        });
  }

  // A keep-alive connection waits at most idle_timeout for a request's first byte; from then on
  // the header has header_timeout.
  void AwaitRequest() {
    if (closed_) return;
    if (buffer_.size() > 0) return ReadHeader();
    Lowest().expires_after(options().idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096),
                            [self = this->shared_from_this()](beast::error_code error, size_t n) {
                              self->buffer_.commit(n);
                              if (error) return self->Shutdown();
                              self->ReadHeader();
                            });
  }

  void ReadHeader() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(options().max_header_bytes));
    parser_->body_limit(options().max_body_bytes);
    Lowest().expires_after(options().header_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = this->shared_from_this()](beast::error_code error, size_t) {
                              self->OnHeader(error);
                            });
  }

  void OnHeader(beast::error_code error) {
    started_ = std::chrono::steady_clock::now();
    access_ = HttpAccess{};
    access_.remote_address = remote_address_;
    access_.remote_port = remote_port_;
    if (!error || error == http::error::body_limit) {
      access_.method = std::string(parser_->get().method_string());
      const std::string_view target = parser_->get().target();
      access_.path = std::string(target.substr(0, target.find('?')));
      const std::string_view id = parser_->get()[kRequestIdHeader];
      if (UsableRequestId(id)) access_.request_id = std::string(id);
    }
    if (access_.request_id.empty() && options().new_request_id) {
      access_.request_id = options().new_request_id();
    }
    access_pending_ = true;
    // A deadline passed: Beast has closed the socket already, so no 408 can be sent.
    if (error == beast::error::timeout) return Shutdown();
    if (error == http::error::header_limit) {
      // Past the limit before the request line was whole: it is the line that is too long.
      if (parser_->get().target().empty()) {
        return Refuse(414, absl::StrCat("the request line is longer than ",
                                        options().max_header_bytes, " bytes"));
      }
      return Refuse(431, absl::StrCat("the request header is larger than ",
                                      options().max_header_bytes, " bytes"));
    }
    if (error == http::error::body_limit) return RefuseTooLarge();
    if (error == http::error::end_of_stream || error == net::error::eof ||
        error == net::error::connection_reset || error == net::error::operation_aborted) {
      access_pending_ = false;  // no request, only a connection ending
      return Shutdown();
    }
    if (error) return Refuse(400, absl::StrCat("malformed HTTP request: ", error.message()));

    const auto& header = parser_->get();
    if (header.target().size() > options().max_target_bytes) {
      return Refuse(414, absl::StrCat("the request target is longer than ",
                                      options().max_target_bytes, " bytes"));
    }
    if (std::distance(header.begin(), header.end()) > options().max_header_fields) {
      return Refuse(431, absl::StrCat("the request has more than ", options().max_header_fields,
                                      " header fields"));
    }
    if (parser_->is_done()) return Dispatch();
    const auto expect = header[http::field::expect];
    if (beast::iequals(expect, "100-continue")) {
      // The client waits for this before it sends the body.
      out_ = "HTTP/1.1 100 Continue\r\n\r\n";
      Lowest().expires_after(options().write_timeout);
      net::async_write(stream_, net::buffer(out_),
                       [self = this->shared_from_this()](beast::error_code write_error, size_t) {
                         if (write_error) return self->Shutdown();
                         self->ReadBody();
                       });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    Lowest().expires_after(options().body_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code error, size_t) {
                       if (error == http::error::body_limit) return self->RefuseTooLarge();
                       if (error) return self->Shutdown();
                       self->Dispatch();
                     });
  }

  void RefuseTooLarge() {
    Refuse(413, absl::StrCat("the request body is larger than the server's limit of ",
                             options().max_body_bytes, " bytes"));
  }

  // An answer of the server's own; the rest of the request is not read, so the connection ends.
  void Refuse(int status, const std::string& message) {
    keep_alive_ = false;
    refused_ = true;
    WriteWhole(server_.error_body(status, message));
  }

  // After a refusal the client may still be sending what was not read; closing on unread bytes
  // resets the connection and can destroy the answer before the client reads it. So: stop
  // sending, then read and discard for a moment before closing.
  void DrainThenClose() {
    beast::error_code ignored;
    Lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    Lowest().expires_after(std::chrono::seconds(2));
    DiscardInput(size_t{4} << 20);
  }
  void DiscardInput(size_t budget) {
    buffer_.clear();
    stream_.async_read_some(buffer_.prepare(64 << 10), [self = this->shared_from_this(), budget](
                                                           beast::error_code error, size_t n) {
      if (error || n >= budget) return self->Shutdown();
      self->DiscardInput(budget - n);
    });
  }

  void Dispatch() {
    Lowest().expires_never();
    auto message = parser_->release();
    keep_alive_ = message.keep_alive();
    HttpRequest request;
    request.method = std::string(message.method_string());
    request.target = std::string(message.target());
    request.path = request.target.substr(0, request.target.find('?'));
    for (const auto& field : message) {
      request.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    request.body = std::move(message.body());
    request.remote_address = remote_address_;
    request.remote_port = remote_port_;
    request.request_id = access_.request_id;
    HttpReply reply;
    try {
      reply = server_.handler(request);
    } catch (const std::exception& exception) {
      spdlog::error("http: {} {} threw: {}", request.method, request.path, exception.what());
      reply = server_.error_body(500, "the server failed to handle the request");
    }
    access_.key_id = request.key_id;
    if (auto* response = std::get_if<HttpResponse>(&reply)) return WriteWhole(std::move(*response));
    reply_ = std::move(std::get<std::unique_ptr<DeferredReply>>(reply));
    std::weak_ptr<HttpConnectionOn> weak = this->weak_from_this();
    reply_->Start([weak, executor = stream_.get_executor(), posted = wake_posted_] {
      if (posted->exchange(true)) return;  // one wake in flight is enough
      net::post(executor, [weak, posted] {
        posted->store(false);
        if (auto self = weak.lock()) self->PumpReply();
      });
    });
    WatchForHangup();
    PumpReply();
  }

  // While a reply waits on the engine, a client that closes its end is noticed and its
  // request cancelled: a read stays posted on the socket (Asio reports a hang-up to a read, not
  // reliably to a wait). Bytes it gets are the client's next request (pipelined), kept for when
  // this reply is written.
  void WatchForHangup() {
    watching_ = true;
    auto on_read = [self = this->shared_from_this()](beast::error_code error, size_t n) {
      self->watching_ = false;
      if (n > 0) {
        net::buffer_copy(self->buffer_.prepare(n), net::buffer(self->watch_bytes_, n));
        self->buffer_.commit(n);
      }
      const bool gone = error && error != net::error::operation_aborted;
      if (gone && !self->closed_) {
        if (self->reply_) self->reply_->Cancel();
        return self->Shutdown();
      }
      if (self->resume_after_watch_) {
        self->resume_after_watch_ = false;
        self->AwaitRequest();
      }
    };
    // Plain TCP watches the socket itself; TLS must read through its stream (a close_notify or
    // a renegotiation is TLS data, not a hang-up).
    if constexpr (kTls) {
      stream_.async_read_some(net::buffer(watch_bytes_), std::move(on_read));
    } else {
      Lowest().socket().async_read_some(net::buffer(watch_bytes_), std::move(on_read));
    }
  }

  void PumpReply() {
    if (!reply_ || writing_ || closed_) return;
    ReplyProgress progress = reply_->Pump();
    if (progress.whole) {
      reply_.reset();
      return WriteWhole(std::move(*progress.whole));
    }
    out_.clear();
    if (progress.stream_head) {
      Identify(*progress.stream_head);
      access_.status = progress.stream_head->status;
      out_ = SerializeHead(*progress.stream_head, -1, keep_alive_);
      streaming_ = true;
    }
    access_.bytes_sent += progress.data.size();
    AppendChunk(out_, progress.data);
    if (progress.done) {
      out_ += "0\r\n\r\n";
      reply_.reset();
    }
    if (out_.empty()) return ArmKeepalive();
    Write([self = this->shared_from_this(), done = progress.done] {
      if (done) return self->Finished();
      self->PumpReply();
    });
  }

  void ArmKeepalive() {
    if (!streaming_) return;
    keepalive_timer_.expires_after(options().keepalive_interval);
    keepalive_timer_.async_wait([self = this->shared_from_this()](beast::error_code error) {
      if (error || !self->reply_ || self->writing_ || self->closed_) return;
      self->out_.clear();
      AppendChunk(self->out_, ": keep-alive\n\n");
      self->Write([self] { self->PumpReply(); });
    });
  }

  void Identify(HttpResponse& response) const {
    if (!access_.request_id.empty())
      response.SetHeader(std::string(kRequestIdHeader), access_.request_id);
  }

  // Once per request: what the access log records.
  void LogAccess(bool completed) {
    if (!access_pending_) return;
    access_pending_ = false;
    access_.completed = completed;
    access_.duration_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started_)
            .count();
    if (options().on_access) options().on_access(access_);
  }

  void WriteWhole(HttpResponse response) {
    Identify(response);
    access_.status = response.status;
    access_.bytes_sent = response.body.size();
    out_ = SerializeHead(response, static_cast<int64_t>(response.body.size()), keep_alive_);
    out_ += response.body;
    Write([self = this->shared_from_this()] { self->Finished(); });
  }

  template <typename Next>
  void Write(Next next) {
    writing_ = true;
    keepalive_timer_.cancel();
    Lowest().expires_after(options().write_timeout);
    net::async_write(stream_, net::buffer(out_),
                     [self = this->shared_from_this(), next](beast::error_code error, size_t) {
                       self->writing_ = false;
                       self->Lowest().expires_never();
                       if (error) {
                         // The client is gone or stopped reading: its request ends here.
                         if (self->reply_) self->reply_->Cancel();
                         return self->Shutdown();
                       }
                       next();
                     });
  }

  // The answer is out: the next request, or the end.
  void Finished() {
    streaming_ = false;
    LogAccess(/*completed=*/true);
    if (refused_) return DrainThenClose();
    if (!keep_alive_) return Shutdown();
    if (watching_) {
      // The next request is read once the watch has let go of the socket (and of any bytes of
      // that request it already took).
      resume_after_watch_ = true;
      beast::error_code ignored;
      Lowest().socket().cancel(ignored);
      return;
    }
    AwaitRequest();
  }

  void Shutdown() {
    if (closed_) return;
    closed_ = true;
    LogAccess(/*completed=*/false);
    reply_.reset();
    keepalive_timer_.cancel();
    beast::error_code ignored;
    Lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    Lowest().close();
  }

  Stream stream_;
  HttpServer::Impl& server_;
  net::steady_timer keepalive_timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::unique_ptr<DeferredReply> reply_;
  std::shared_ptr<std::atomic<bool>> wake_posted_ = std::make_shared<std::atomic<bool>>(false);
  std::string out_;
  std::string remote_address_;
  int remote_port_ = 0;
  bool keep_alive_ = true;
  bool writing_ = false;
  bool streaming_ = false;
  bool closed_ = false;
  bool refused_ = false;
  bool watching_ = false;
  bool resume_after_watch_ = false;
  std::array<char, 4096> watch_bytes_;
  HttpAccess access_;
  bool access_pending_ = false;
  std::chrono::steady_clock::time_point started_;
};

void HttpServer::Impl::Register(const std::shared_ptr<HttpConnection>& connection) {
  std::lock_guard lock(live_mutex);
  std::erase_if(live, [](const std::weak_ptr<HttpConnection>& weak) { return weak.expired(); });
  live.push_back(connection);
}

void HttpServer::Impl::Accept() {
  acceptor.async_accept(net::make_strand(io), [this](beast::error_code error, tcp::socket socket) {
    if (error == net::error::operation_aborted || !acceptor.is_open()) return;
    if (!error) {
      if (connections.load() >= options.max_connections) {
        // A clean refusal, not a reset: the client learns why.
        const HttpResponse refusal = error_body(
            503, absl::StrCat("the server has ", options.max_connections,
                              " connections open (--http-max-connections); retry shortly"));
        auto text = std::make_shared<std::string>(
            SerializeHead(refusal, static_cast<int64_t>(refusal.body.size()), false) +
            refusal.body);
        auto refused = std::make_shared<tcp::socket>(std::move(socket));
        if (tls) {
          // No plain-text answer on a TLS port: the connection is closed.
          beast::error_code ignored;
          refused->close(ignored);
          return Accept();
        }
        net::async_write(*refused, net::buffer(*text), [refused, text](beast::error_code, size_t) {
          beast::error_code ignored;
          refused->shutdown(tcp::socket::shutdown_both, ignored);
        });
      } else {
        if (tls) {
          auto connection = std::make_shared<HttpConnectionOn<TlsStream>>(std::move(socket), *this);
          Register(connection);
          connection->Run();
        } else {
          auto connection =
              std::make_shared<HttpConnectionOn<beast::tcp_stream>>(std::move(socket), *this);
          Register(connection);
          connection->Run();
        }
      }
    }
    Accept();
  });
}

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler, HttpErrorBody error_body)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler), std::move(error_body))) {
}

HttpServer::~HttpServer() { Stop(); }

absl::Status HttpServer::Start() {
  Impl& impl = *impl_;
  beast::error_code error;
  if (impl.options.tls) {
    const TlsFiles& files = *impl.options.tls;
    net::ssl::context& context = impl.tls.emplace(net::ssl::context::tls_server);
    context.set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                        net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                        net::ssl::context::no_tlsv1_1 | net::ssl::context::single_dh_use);
    context.use_certificate_chain(net::buffer(files.cert_chain_pem), error);
    if (!error) {
      context.use_private_key(net::buffer(files.private_key_pem), net::ssl::context::pem, error);
    }
    if (!error && !files.client_ca_pem.empty()) {
      context.add_certificate_authority(net::buffer(files.client_ca_pem), error);
      context.set_verify_mode(net::ssl::verify_peer | net::ssl::verify_fail_if_no_peer_cert);
    }
    if (error) {
      return absl::InvalidArgumentError(
          absl::StrCat("the TLS files cannot serve HTTPS: ", error.message()));
    }
  }
  const net::ip::address address = net::ip::make_address(impl.options.host, error);
  if (error) {
    return absl::InvalidArgumentError(
        absl::StrCat("--host ", impl.options.host, " is not an IP address"));
  }
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(impl.options.port));
  impl.acceptor.open(endpoint.protocol(), error);
  if (!error) impl.acceptor.set_option(net::socket_base::reuse_address(true), error);
  if (!error) impl.acceptor.bind(endpoint, error);
  if (!error) impl.acceptor.listen(net::socket_base::max_listen_connections, error);
  if (error) {
    return absl::UnavailableError(absl::StrCat("cannot listen for HTTP on ", impl.options.host, ":",
                                               impl.options.port, ": ", error.message()));
  }
  bound_port_ = impl.acceptor.local_endpoint().port();
  impl.Accept();
  for (int i = 0; i < std::max(1, impl.options.io_threads); ++i) {
    impl.threads.emplace_back([&impl] { impl.io.run(); });
  }
  return absl::OkStatus();
}

void HttpServer::Stop() {
  Impl& impl = *impl_;
  if (impl.threads.empty()) return;
  net::post(impl.io, [&impl] {
    beast::error_code ignored;
    impl.acceptor.close(ignored);
  });
  {
    std::lock_guard lock(impl.live_mutex);
    for (const auto& weak : impl.live) {
      if (auto connection = weak.lock()) connection->Close();
    }
    impl.live.clear();
  }
  // Each connection lets go of its reply (and so of the engine's outbox) on its own strand.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (impl.connections.load() > 0 && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  impl.io.stop();
  for (std::thread& thread : impl.threads) thread.join();
  impl.threads.clear();
}

}  // namespace sculpt
