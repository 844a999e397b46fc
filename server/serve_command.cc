// `sculpt serve`: loads one model and serves sculpt.v1.TextDiffusion over gRPC (with health and
// reflection) until SIGTERM/SIGINT, then drains.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <condition_variable>
#include <csignal>
#include <iostream>
#include <mutex>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status.h"
#include "cpu/threads.h"
#include "model/kv_cache.h"
#include "model/tokenizer/utf8.h"
#include "scheduler/scheduler.h"
#include "server/access_log.h"
#include "server/api_keys.h"
#include "server/commands.h"
#include "server/device.h"
#include "server/flags.h"
#include "server/grpc_service.h"
#include "server/http_gateway.h"
#include "server/reflection_service.h"
#include "server/served_model.h"
#include "server/tls.h"

namespace sculpt {
namespace {

constexpr const char* kServiceName = "sculpt.v1.TextDiffusion";

FlagSet ServeFlags() {
  FlagSet flags;
  flags.Add("model", "DIR", "", "model directory (default: the shipped models/sculpt-code-mini)");
  flags.Add("served-model-name", "NAME", "",
            "the name requests use in `model` (default: the model directory's last component)");
  flags.Add("host", "ADDR", "127.0.0.1", "address to listen on (0.0.0.0 for every interface)");
  flags.Add("grpc-port", "N", "50051", "gRPC port (0 = any free port, logged at start)");
  flags.Add("http-port", "N", "8080",
            "HTTP port for the OpenAI-compatible and native JSON API (0 = any free port, -1 = "
            "no HTTP)");
  flags.Add("payload-limit", "BYTES", "1048576", "largest HTTP request body; beyond, 413");
  flags.Add("allowed-origins", "LIST", "",
            "comma-separated origins allowed by CORS, or * (default: CORS off)");
  flags.Add("http-max-connections", "N", "4096",
            "HTTP connections open at once (each open stream holds one); beyond, 503");
  flags.Add("http-threads", "N", "2", "threads serving every HTTP connection");
  flags.Add("http-header-timeout", "S", "10",
            "seconds a request has from its first byte to the end of its header; then closed");
  flags.Add("http-idle-timeout", "S", "60",
            "seconds a keep-alive connection may wait for its next request; then closed");
  flags.Add("max-num-seqs", "N", "16", "sequences denoised together in one step at most");
  flags.Add("max-num-batched-tokens", "N", "8192",
            "tokens one step may forward, summed over its sequences (cfg counts twice)");
  flags.Add("cache", "MODE", "none",
            "KV cache of requests that do not choose one: none (exactly the reference decoders' "
            "answers), prefix or dual (Fast-dLLM's approximate caches: faster, and answers may "
            "differ from none's; docs/generation.md, \"Choosing a cache\")");
  flags.Add("kv-cache-memory", "SIZE", "auto",
            "memory of the KV cache arena: auto (what max-num-batched-tokens can use, within half "
            "of the free memory), a fraction of the free memory (0.3) or bytes (0 = no cache, "
            "512MiB, 4GiB); a request whose cache does not fit waits");
  flags.Add("max-queued-requests", "N", "256",
            "requests waiting for a slot at most; beyond, RESOURCE_EXHAUSTED");
  flags.Add("max-request-bytes", "N", "4194304",
            "largest request message; beyond, RESOURCE_EXHAUSTED");
  flags.Add("max-stop-strings", "N", "16", "stop strings one request may give");
  flags.Add("priority-aging-s", "S", "10",
            "seconds of waiting that raise a queued request's priority by one (0 = never)");
  flags.Add("max-edits-per-step", "N", "16",
            "refine sessions: edits applied per session at one step boundary; the rest wait for "
            "the next (and a client that sends faster is held back)");
  flags.Add("refine-idle-timeout", "S", "300",
            "refine sessions: seconds a paused session keeps its slot before it ends with "
            "finish_reason \"idle\"");
  flags.Add("api-key", "KEY", "",
            "a key clients must present (HTTP 'Authorization: Bearer KEY', gRPC metadata "
            "'authorization'); repeatable; 16 to 512 visible ASCII characters (docs/security.md)");
  flags.Add("api-key-file", "FILE", "",
            "keys, one per line (# comments), with --api-key's; re-read on SIGHUP");
  flags.Add("protect-metrics", "", "", "with keys on, /metrics needs a key too");
  flags.Add("max-requests-per-key", "N", "0",
            "generations one key may have running or queued at once (0 = no limit); beyond, "
            "429 / RESOURCE_EXHAUSTED with retry-after");
  flags.Add("rate-limit-per-key", "RPS", "0",
            "generations one key may start per second, as a token bucket holding one second's "
            "worth (0 = no limit); beyond, 429 / RESOURCE_EXHAUSTED with retry-after");
  flags.Add("tls-cert", "FILE", "",
            "PEM certificate chain: gRPC and HTTP then speak TLS only (with --tls-key)");
  flags.Add("tls-key", "FILE", "", "PEM private key of --tls-cert (unencrypted)");
  flags.Add("tls-client-ca", "FILE", "",
            "PEM CA certificates: clients must present a certificate they signed (mTLS)");
  flags.Add("shutdown-timeout", "S", "30",
            "on SIGTERM/SIGINT, seconds running requests get to finish before they are cancelled");
  AddBackendFlags(flags);
  AddThreadsFlag(flags);
  flags.Add("access-log", "WHERE", "stdout",
            "one JSON line per HTTP request and gRPC call: off, stdout or a file (appended)");
  flags.Add("log-level", "LEVEL", "info", "trace, debug, info, warn, error or off");
  flags.Add("log-format", "FORMAT", "text", "text or json (one object per line)");
  flags.Add("config", "FILE", "",
            "JSON object of settings by flag name; flags and SCULPT_* environment variables win");
  flags.Add("help", "", "", "show this help");
  return flags;
}

// Every HTTP connection holds a file descriptor: the soft limit is raised to what
// --http-max-connections needs (plus room for the model, gRPC and logs) where the hard limit
// allows, else the flag is refused with what to do.
absl::Status AllowOpenFiles(int max_connections) {
  constexpr rlim_t kReserve = 256;
  const rlim_t needed = static_cast<rlim_t>(max_connections) + kReserve;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return absl::OkStatus();
  if (limit.rlim_cur >= needed) return absl::OkStatus();
  if (limit.rlim_max == RLIM_INFINITY || limit.rlim_max >= needed) {
    limit.rlim_cur = needed;
    if (setrlimit(RLIMIT_NOFILE, &limit) == 0) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--http-max-connections ", max_connections, " needs ", needed,
                   " open files, but this process may open at most ", limit.rlim_max,
                   " (ulimit -Hn); lower --http-max-connections or raise the limit"));
}

absl::StatusOr<double> SecondsFlag(const FlagSet& flags, const char* name) {
  SCULPT_ASSIGN_OR_RETURN(double value, flags.GetDouble(name));
  if (value < 0 || value > 86'400) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " must be in [0, 86400] seconds, got ", value));
  }
  return value;
}

absl::Status Serve(const FlagSet& flags, sigset_t signals) {
  SCULPT_RETURN_IF_ERROR(SetupLogging(flags.GetString("log-level"), flags.GetString("log-format")));
  // Keys and TLS files first: a server that would run open or in plain text by mistake must not
  // start at all.
  GatekeeperOptions gate_options;
  gate_options.keys = flags.GetStrings("api-key");
  gate_options.key_file = flags.GetString("api-key-file");
  SCULPT_ASSIGN_OR_RETURN(gate_options.max_running_per_key,
                          flags.GetIntInRange("max-requests-per-key", 0, 1 << 20));
  SCULPT_ASSIGN_OR_RETURN(gate_options.rate_per_key, flags.GetDouble("rate-limit-per-key"));
  SCULPT_ASSIGN_OR_RETURN(std::unique_ptr<Gatekeeper> gatekeeper,
                          Gatekeeper::Create(std::move(gate_options)));
  if (!gatekeeper->enabled() && flags.GetBool("protect-metrics")) {
    return absl::InvalidArgumentError(
        "--protect-metrics needs API keys: give --api-key or --api-key-file too");
  }
  SCULPT_ASSIGN_OR_RETURN(std::optional<TlsFiles> tls,
                          LoadTlsFiles(flags.GetString("tls-cert"), flags.GetString("tls-key"),
                                       flags.GetString("tls-client-ca")));
  SchedulerOptions scheduler_options;
  SCULPT_ASSIGN_OR_RETURN(scheduler_options.budgets.max_num_seqs,
                          flags.GetIntInRange("max-num-seqs", 1, 4096));
  SCULPT_ASSIGN_OR_RETURN(scheduler_options.budgets.max_num_batched_tokens,
                          flags.GetIntInRange("max-num-batched-tokens", 1, 1 << 24));
  SCULPT_ASSIGN_OR_RETURN(scheduler_options.budgets.priority_aging_s,
                          SecondsFlag(flags, "priority-aging-s"));
  SCULPT_ASSIGN_OR_RETURN(scheduler_options.max_queued_requests,
                          flags.GetIntInRange("max-queued-requests", 1, 1 << 20));
  SCULPT_ASSIGN_OR_RETURN(scheduler_options.max_edits_per_step,
                          flags.GetIntInRange("max-edits-per-step", 1, 4096));
  {
    SCULPT_ASSIGN_OR_RETURN(double idle_s, SecondsFlag(flags, "refine-idle-timeout"));
    scheduler_options.refine_idle_timeout =
        std::chrono::milliseconds(static_cast<int64_t>(idle_s * 1000.0));
  }
  FrontEndOptions service_options;
  SCULPT_ASSIGN_OR_RETURN(int max_request_bytes,
                          flags.GetIntInRange("max-request-bytes", 1024, 1 << 30));
  service_options.max_request_bytes = static_cast<uint64_t>(max_request_bytes);
  SCULPT_ASSIGN_OR_RETURN(service_options.limits.generation.max_stop_strings,
                          flags.GetIntInRange("max-stop-strings", 0, 1024));
  {
    auto cache = ParseKvCacheMode(flags.GetString("cache"));
    if (!cache.ok())
      return absl::InvalidArgumentError(absl::StrCat("--", cache.status().message()));
    service_options.limits.generation.default_cache = *cache;
  }
  service_options.version = SCULPT_VERSION;
  service_options.gatekeeper = gatekeeper->enabled() ? gatekeeper.get() : nullptr;
  SCULPT_ASSIGN_OR_RETURN(int port, flags.GetIntInRange("grpc-port", 0, 65535));
  HttpOptions http_options;
  http_options.server.host = flags.GetString("host");
  http_options.server.tls = tls;
  http_options.protect_metrics = flags.GetBool("protect-metrics");
  SCULPT_ASSIGN_OR_RETURN(http_options.server.port, flags.GetIntInRange("http-port", -1, 65535));
  SCULPT_ASSIGN_OR_RETURN(int payload_limit, flags.GetIntInRange("payload-limit", 1024, 1 << 30));
  http_options.server.max_body_bytes = static_cast<size_t>(payload_limit);
  SCULPT_ASSIGN_OR_RETURN(http_options.server.max_connections,
                          flags.GetIntInRange("http-max-connections", 4, 1 << 20));
  SCULPT_RETURN_IF_ERROR(AllowOpenFiles(http_options.server.max_connections));
  SCULPT_ASSIGN_OR_RETURN(http_options.server.io_threads,
                          flags.GetIntInRange("http-threads", 1, 256));
  SCULPT_ASSIGN_OR_RETURN(double header_timeout_s, SecondsFlag(flags, "http-header-timeout"));
  SCULPT_ASSIGN_OR_RETURN(double idle_timeout_s, SecondsFlag(flags, "http-idle-timeout"));
  if (header_timeout_s < 0.1 || idle_timeout_s < 0.1) {
    return absl::InvalidArgumentError(
        "--http-header-timeout and --http-idle-timeout must be at least 0.1 seconds");
  }
  http_options.server.header_timeout =
      std::chrono::milliseconds(static_cast<int64_t>(header_timeout_s * 1000));
  http_options.server.idle_timeout =
      std::chrono::milliseconds(static_cast<int64_t>(idle_timeout_s * 1000));
  for (absl::string_view origin :
       absl::StrSplit(flags.GetString("allowed-origins"), ',', absl::SkipWhitespace())) {
    http_options.allowed_origins.emplace_back(absl::StripAsciiWhitespace(origin));
  }
  SCULPT_ASSIGN_OR_RETURN(double shutdown_timeout_s, SecondsFlag(flags, "shutdown-timeout"));
  SCULPT_RETURN_IF_ERROR(ApplyThreadsFlag(flags));

  const std::string model_dir = flags.Has("model") ? flags.GetString("model") : DefaultModelDir();
  if (model_dir.empty()) {
    return absl::InvalidArgumentError("--model DIR is required (the default model was not found)");
  }
  SCULPT_ASSIGN_OR_RETURN(std::unique_ptr<AccessLog> access_log,
                          AccessLog::Open(flags.GetString("access-log")));
  http_options.server.new_request_id = NewRequestId;
  if (access_log != nullptr) {
    http_options.server.on_access = [log = access_log.get()](const HttpAccess& access) {
      log->Write({.protocol = "http",
                  .client = absl::StrCat(access.remote_address, ":", access.remote_port),
                  .method = access.method,
                  .path = access.path,
                  .status = access.status,
                  .bytes_sent = access.bytes_sent,
                  .duration_ms = access.duration_ms,
                  .request_id = access.request_id,
                  .key_id = access.key_id,
                  .completed = access.completed});
    };
  }
  const std::string served_name = flags.GetString("served-model-name");
  if (served_name.size() > 128 || served_name.find('/') != std::string::npos ||
      std::any_of(served_name.begin(), served_name.end(),
                  [](unsigned char c) { return c < 0x20 || c == 0x7f; }) ||
      !ValidateUtf8(served_name, "--served-model-name").ok()) {
    return absl::InvalidArgumentError(
        "--served-model-name must be at most 128 bytes of UTF-8 text without '/' or control "
        "characters");
  }
  // HTTP first, so /health answers 503 while the model loads.
  std::unique_ptr<HttpGateway> http;
  if (http_options.server.port >= 0) {
    http = std::make_unique<HttpGateway>(http_options, SCULPT_VERSION);
    SCULPT_RETURN_IF_ERROR(http->Start());
  }
  const auto load_start = std::chrono::steady_clock::now();
  SCULPT_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend,
                          MakeBackend(BackendChoiceFromFlags(flags, model_dir)));
  auto model_or = LoadServedModel(model_dir, std::move(backend));
  if (!model_or.ok()) return NotUsage(model_or.status());
  std::unique_ptr<ServedModel> model = std::move(*model_or);
  if (!served_name.empty()) model->name = served_name;
  spdlog::info(
      "loaded {} (revision {}, {}, {} parameters) from {} in {:.0f} ms on {} with {} threads",
      model->name, model->revision, model->config().model_type, model->parameters, model_dir,
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - load_start)
          .count(),
      model->device, CpuThreads());

  // Activations and scratch for the largest step the budgets allow, so that serving allocates
  // nothing per step (and a budget the device cannot hold fails here, not under load).
  if (absl::Status reserved = model->transformer->Reserve(WorkspaceFor(scheduler_options.budgets));
      !reserved.ok()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot reserve the workspace for --max-num-batched-tokens ",
        scheduler_options.budgets.max_num_batched_tokens, " and --max-num-seqs ",
        scheduler_options.budgets.max_num_seqs, ": ", reserved.message(), "; lower them"));
  }

  // The KV cache never needs more rows than one step forwards tokens.
  Transformer& transformer = *model->transformer;
  SCULPT_ASSIGN_OR_RETURN(
      const int64_t kv_cache_rows,
      KvCacheRowsFor(flags.GetString("kv-cache-memory"), transformer.kv_cache_row_bytes(),
                     transformer.backend().AvailableMemory(),
                     scheduler_options.budgets.max_num_batched_tokens));
  if (absl::Status reserved = transformer.ReserveKvCache(kv_cache_rows); !reserved.ok()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate the KV cache (--kv-cache-memory ",
                     flags.GetString("kv-cache-memory"), ", ", kv_cache_rows, " rows of ",
                     transformer.kv_cache_row_bytes(), " bytes): ", reserved.message()));
  }
  spdlog::info("KV cache: {} rows of {} bytes ({:.1f} MiB); requests without a cache field use {}",
               kv_cache_rows, transformer.kv_cache_row_bytes(),
               static_cast<double>(kv_cache_rows * transformer.kv_cache_row_bytes()) / (1 << 20),
               KvCacheModeName(service_options.limits.generation.default_cache));

  Metrics metrics(model->name);
  scheduler_options.observer = &metrics;
  Scheduler scheduler(*model->transformer, scheduler_options);
  FrontEnd front_end(*model, scheduler, &metrics, service_options);
  TextDiffusionService service(front_end);
  // v1 is ours (server/reflection_service.h); the plugin below adds v1alpha.
  ReflectionService reflection({kServiceName, "grpc.health.v1.Health",
                                "grpc.reflection.v1alpha.ServerReflection",
                                grpc::reflection::v1::ServerReflection::service_full_name()});
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  const std::string address = absl::StrCat(flags.GetString("host"), ":", port);
  int bound_port = 0;
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (tls) {
    grpc::SslServerCredentialsOptions ssl(
        tls->client_ca_pem.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                   : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    ssl.pem_root_certs = tls->client_ca_pem;
    ssl.pem_key_cert_pairs.push_back({tls->private_key_pem, tls->cert_chain_pem});
    credentials = grpc::SslServerCredentials(ssl);
  }
  builder.AddListeningPort(address, credentials, &bound_port);
  builder.SetMaxReceiveMessageSize(max_request_bytes);
  builder.RegisterService(&service);
  builder.RegisterService(&reflection);
  if (access_log != nullptr) {
    AddGrpcAccessLog(builder, *access_log, service_options.gatekeeper);
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || bound_port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address, " (in use, or not an address of this host?)"));
  }
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  health->SetServingStatus(true);
  health->SetServingStatus(kServiceName, true);
  if (http) {
    http->Attach(front_end, metrics);
    spdlog::info("serving {} over {} on {}:{}", model->name, tls ? "HTTPS" : "HTTP",
                 http_options.server.host, http->port());
  }
  spdlog::info("serving {} over gRPC{} on {}:{} (max_num_seqs {}, max_num_batched_tokens {})",
               model->name, tls ? (tls->client_ca_pem.empty() ? " with TLS" : " with mTLS") : "",
               flags.GetString("host"), bound_port, scheduler_options.budgets.max_num_seqs,
               scheduler_options.budgets.max_num_batched_tokens);

  // A failed device (a CUDA error) cannot serve again: the gRPC health service says NOT_SERVING,
  // as /health says 503, so load balancers and orchestrators move traffic away.
  std::mutex watch_mutex;
  std::condition_variable watch_wakeup;
  bool watch_stop = false;
  std::thread device_watch([&] {
    std::unique_lock<std::mutex> lock(watch_mutex);
    while (
        !watch_wakeup.wait_for(lock, std::chrono::milliseconds(500), [&] { return watch_stop; })) {
      if (absl::Status device = model->backend->health(); !device.ok()) {
        spdlog::error("{}; reporting NOT_SERVING", std::string(device.message()));
        health->SetServingStatus(false);
        health->SetServingStatus(kServiceName, false);
        return;
      }
    }
  });

  if (gatekeeper->enabled()) {
    spdlog::info(
        "API keys: {} accepted{}", gatekeeper->key_count(),
        gatekeeper->key_file().empty() ? "" : " (SIGHUP re-reads " + gatekeeper->key_file() + ")");
  } else {
    spdlog::warn("no API keys: anyone who can reach the ports can generate (docs/security.md)");
  }

  int signal_number = 0;
  while (true) {
    sigwait(&signals, &signal_number);
    if (signal_number != SIGHUP) break;
    if (gatekeeper->key_file().empty()) {
      spdlog::info("SIGHUP: no --api-key-file to re-read");
    } else if (absl::Status reloaded = gatekeeper->Reload(); reloaded.ok()) {
      spdlog::info("SIGHUP: {} API keys accepted now", gatekeeper->key_count());
    } else {
      spdlog::error("SIGHUP: {}; the previous keys stay", std::string(reloaded.message()));
    }
  }
  {
    std::lock_guard<std::mutex> lock(watch_mutex);
    watch_stop = true;
  }
  watch_wakeup.notify_all();
  device_watch.join();
  spdlog::info("{}: draining (up to {} s for running requests)", strsignal(signal_number),
               shutdown_timeout_s);
  health->SetServingStatus(false);
  health->SetServingStatus(kServiceName, false);
  scheduler.StartDraining();
  const auto drain_deadline = std::chrono::steady_clock::now() +
                              std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                  std::chrono::duration<double>(shutdown_timeout_s));
  if (!scheduler.WaitIdle(drain_deadline)) {
    const SchedulerStats stats = scheduler.stats();
    spdlog::warn("shutdown timeout: cancelling {} running and {} queued requests", stats.running,
                 stats.waiting);
    scheduler.CancelAll();
    scheduler.WaitIdle(std::chrono::steady_clock::now() + std::chrono::seconds(10));
  }
  // In-flight RPCs and HTTP responses get a moment to deliver their final messages (a client
  // that reads slowly still has them queued when the engine is done).
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (http) {
    if (!http->WaitForOpenResponses(std::chrono::steady_clock::now() + std::chrono::seconds(5))) {
      spdlog::warn("shutdown: HTTP responses still unread after 5 s are cut");
    }
    http->Stop();
  }
  spdlog::info("stopped");
  return absl::OkStatus();
}

}  // namespace

int RunServeCommand(const std::vector<std::string>& args) {
  // Signals are taken by sigwait in this thread; every thread started later inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);  // re-reads --api-key-file
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  return RunCommand(
      "serve",
      "Usage: sculpt serve [--model DIR] [--host ADDR] [--grpc-port N] [flags]\n\n"
      "Serves one model over gRPC (sculpt.v1.TextDiffusion, grpc.health.v1.Health, server "
      "reflection). Every flag can also come from an environment variable SCULPT_<FLAG> (e.g. "
      "SCULPT_MAX_NUM_SEQS=32) or from --config FILE; flags win, then the environment, then the "
      "file.",
      ServeFlags(), args, [&signals](const FlagSet& parsed) -> absl::Status {
        FlagSet flags = parsed;
        const std::string config_path =
            flags.Has("config")
                ? flags.GetString("config")
                : (std::getenv("SCULPT_CONFIG") ? std::getenv("SCULPT_CONFIG") : "");
        std::string config_text;
        if (!config_path.empty()) {
          auto text = ReadFileToString(config_path);
          if (!text.ok()) {
            return absl::InvalidArgumentError(absl::StrCat("--config: ", text.status().message()));
          }
          config_text = *text;
        }
        SCULPT_RETURN_IF_ERROR(
            flags.ApplyFallbacks("SCULPT_", config_text, config_path, {"config", "help"}));
        return Serve(flags, signals);
      });
}

}  // namespace sculpt
