// API keys and per-key limits (docs/security.md). Keys come from --api-key and --api-key-file
// (re-read on SIGHUP); only their SHA-256 digests are kept, and a presented key is compared with
// every digest in constant time. A key is named in logs and metrics by its id: the first 8 hex
// digits of its digest, which identify it without revealing it.
//
// Per key, generations may be limited in number at once (a lease held until the generation
// ends) and in rate (a token bucket refilled at --rate-limit-per-key per second, holding up to
// one second's worth, at least 1).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sculpt {

struct GatekeeperOptions {
  std::vector<std::string> keys;  // --api-key, each
  std::string key_file;           // --api-key-file; "" for none
  int max_running_per_key = 0;    // generations at once per key; 0: no limit
  double rate_per_key = 0;        // generations started per second per key; 0: no limit
  // For tests: the clock the token buckets read.
  std::function<std::chrono::steady_clock::time_point()> now = std::chrono::steady_clock::now;
};

// The status payload that carries how many seconds a client should wait before retrying.
inline constexpr char kRetryAfterPayload[] = "sculpt/retry-after-seconds";
// The seconds a refusal asks the client to wait, or 0 when it asks nothing.
int RetryAfterSeconds(const absl::Status& status);

// Who sent a request: the id of the key it presented, or "" when the server has no keys.
struct Caller {
  std::string key_id;
};

class Gatekeeper {
 public:
  // INVALID_ARGUMENT naming the flag (and the key file's line) when a key or the file is unusable,
  // or when limits are asked for without keys to apply them to.
  static absl::StatusOr<std::unique_ptr<Gatekeeper>> Create(GatekeeperOptions options);

  // Keys are configured: every API request must present one.
  bool enabled() const;
  size_t key_count() const;

  // The caller of an `Authorization` value ("Bearer KEY"; gRPC metadata carries the same):
  // UNAUTHENTICATED, with the same message whether the key is missing, malformed or wrong.
  absl::StatusOr<Caller> Authenticate(std::string_view authorization) const;

  // Admits a generation of `caller` under its limits: a lease to hold until the generation ends,
  // or RESOURCE_EXHAUSTED with a retry-after payload. Null lease when the server has no keys.
  absl::StatusOr<std::shared_ptr<void>> Admit(const Caller& caller);

  // Re-reads --api-key-file: on success the file's keys (and --api-key's) replace the old set;
  // on failure the old set stays and the error says why.
  absl::Status Reload();
  const std::string& key_file() const { return options_.key_file; }

  // Counts a request refused for its key (by protocol: "http" or "grpc").
  void RecordUnauthenticated(const std::string& protocol);

  // sculpt_unauthenticated_requests_total, sculpt_key_requests_total{key_id,result} and
  // sculpt_key_requests_running{key_id}, in the Prometheus text format; `model_label` is the
  // rendered label pair (model="...").
  void RenderMetrics(const std::string& model_label, std::string& out) const;

 private:
  using Digest = std::array<uint8_t, 32>;
  struct KeyState {
    int running = 0;
    double tokens = 0;
    std::chrono::steady_clock::time_point refilled{};
    uint64_t admitted = 0;
    uint64_t concurrency_limited = 0;
    uint64_t rate_limited = 0;
  };

  explicit Gatekeeper(GatekeeperOptions options) : options_(std::move(options)) {}
  absl::StatusOr<std::vector<Digest>> ReadKeys() const;
  void Release(const std::string& key_id);

  const GatekeeperOptions options_;
  mutable std::mutex mutex_;
  std::vector<Digest> digests_;
  std::map<std::string, KeyState> state_;  // by key id
  std::map<std::string, uint64_t> unauthenticated_;
};

}  // namespace sculpt
