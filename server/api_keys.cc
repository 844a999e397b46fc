#include "server/api_keys.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"

namespace sculpt {
namespace {

constexpr size_t kMinKeyBytes = 16;
constexpr size_t kMaxKeyBytes = 512;

constexpr const char* kUnauthenticated =
    "a valid API key is required: send it as 'Authorization: Bearer KEY' (gRPC: metadata "
    "'authorization: Bearer KEY')";

std::array<uint8_t, 32> Sha256(std::string_view text) {
  std::array<uint8_t, 32> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest.data());
  return digest;
}

std::string KeyId(const std::array<uint8_t, 32>& digest) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (int i = 0; i < 4; ++i) {
    id += kHex[digest[i] >> 4];
    id += kHex[digest[i] & 15];
  }
  return id;
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view Trim(std::string_view text) {
  while (!text.empty() && IsSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && IsSpace(text.back())) text.remove_suffix(1);
  return text;
}

// Keys are what a header can carry unquoted: visible ASCII, no spaces.
absl::Status CheckKey(std::string_view key, const std::string& where) {
  if (key.size() < kMinKeyBytes || key.size() > kMaxKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": an API key must be ", kMinKeyBytes,
                                                   " to ", kMaxKeyBytes, " characters, got ",
                                                   key.size()));
  }
  for (unsigned char c : key) {
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": an API key may hold only visible ASCII characters (no spaces or controls)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

int RetryAfterSeconds(const absl::Status& status) {
  const auto payload = status.GetPayload(kRetryAfterPayload);
  int seconds = 0;
  if (!payload || !absl::SimpleAtoi(std::string(*payload), &seconds)) return 0;
  return std::max(0, seconds);
}

absl::StatusOr<std::unique_ptr<Gatekeeper>> Gatekeeper::Create(GatekeeperOptions options) {
  for (size_t i = 0; i < options.keys.size(); ++i) {
    if (absl::Status valid = CheckKey(options.keys[i], absl::StrCat("--api-key #", i + 1));
        !valid.ok()) {
      return valid;
    }
  }
  if (options.max_running_per_key < 0) {
    return absl::InvalidArgumentError("--max-requests-per-key must be 0 (no limit) or more");
  }
  if (!(options.rate_per_key >= 0) || !std::isfinite(options.rate_per_key)) {
    return absl::InvalidArgumentError(
        "--rate-limit-per-key must be 0 (no limit) or a positive number of requests per second");
  }
  const bool keys = !options.keys.empty() || !options.key_file.empty();
  if (!keys && (options.max_running_per_key > 0 || options.rate_per_key > 0)) {
    return absl::InvalidArgumentError(
        "--max-requests-per-key and --rate-limit-per-key apply to API keys: give --api-key or "
        "--api-key-file too");
  }
  std::unique_ptr<Gatekeeper> gatekeeper(new Gatekeeper(std::move(options)));
  absl::StatusOr<std::vector<Digest>> digests = gatekeeper->ReadKeys();
  if (!digests.ok()) return digests.status();
  gatekeeper->digests_ = std::move(*digests);
  return gatekeeper;
}

absl::StatusOr<std::vector<Gatekeeper::Digest>> Gatekeeper::ReadKeys() const {
  std::vector<Digest> digests;
  for (const std::string& key : options_.keys) digests.push_back(Sha256(key));
  if (options_.key_file.empty()) return digests;
  absl::StatusOr<std::string> text = ReadFileToString(options_.key_file);
  if (!text.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--api-key-file ", options_.key_file, ": ", text.status().message()));
  }
  int line_number = 0;
  size_t from_file = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    ++line_number;
    const std::string_view key = Trim(std::string_view(line.data(), line.size()));
    if (key.empty() || key.front() == '#') continue;
    if (absl::Status valid = CheckKey(
            key, absl::StrCat("--api-key-file ", options_.key_file, " line ", line_number));
        !valid.ok()) {
      return valid;
    }
    digests.push_back(Sha256(key));
    ++from_file;
  }
  if (from_file == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--api-key-file ", options_.key_file,
                     " holds no key (one per line; blank lines and lines starting with # are "
                     "skipped)"));
  }
  return digests;
}

bool Gatekeeper::enabled() const {
  std::lock_guard lock(mutex_);
  return !digests_.empty();
}

size_t Gatekeeper::key_count() const {
  std::lock_guard lock(mutex_);
  return digests_.size();
}

absl::StatusOr<Caller> Gatekeeper::Authenticate(std::string_view authorization) const {
  std::lock_guard lock(mutex_);
  if (digests_.empty()) return Caller{};
  constexpr std::string_view kScheme = "bearer ";
  std::string_view key = Trim(authorization);
  if (key.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(std::string(key.substr(0, kScheme.size())), kScheme.data())) {
    return absl::UnauthenticatedError(kUnauthenticated);
  }
  key = Trim(key.substr(kScheme.size()));
  // Every digest is compared, so the time taken says nothing of which key (if any) matched.
  const Digest presented = Sha256(key);
  const Digest* match = nullptr;
  for (const Digest& digest : digests_) {
    if (CRYPTO_memcmp(digest.data(), presented.data(), digest.size()) == 0) match = &digest;
  }
  if (match == nullptr) return absl::UnauthenticatedError(kUnauthenticated);
  return Caller{KeyId(*match)};
}

absl::StatusOr<std::shared_ptr<void>> Gatekeeper::Admit(const Caller& caller) {
  if (caller.key_id.empty()) return std::shared_ptr<void>();
  std::lock_guard lock(mutex_);
  KeyState& key = state_[caller.key_id];
  const auto now = options_.now();
  const double capacity = std::max(1.0, options_.rate_per_key);
  if (options_.rate_per_key > 0) {
    if (key.refilled == std::chrono::steady_clock::time_point{}) {
      key.tokens = capacity;
    } else {
      const double elapsed = std::chrono::duration<double>(now - key.refilled).count();
      key.tokens = std::min(capacity, key.tokens + elapsed * options_.rate_per_key);
    }
    key.refilled = now;
  }
  if (options_.max_running_per_key > 0 && key.running >= options_.max_running_per_key) {
    ++key.concurrency_limited;
    absl::Status refused = absl::ResourceExhaustedError(absl::StrCat(
        "API key ", caller.key_id, " has ", key.running,
        " generations running, its limit (--max-requests-per-key); retry when one finishes"));
    refused.SetPayload(kRetryAfterPayload, absl::Cord("1"));
    return refused;
  }
  if (options_.rate_per_key > 0 && key.tokens < 1.0) {
    ++key.rate_limited;
    const int wait =
        std::max(1, static_cast<int>(std::ceil((1.0 - key.tokens) / options_.rate_per_key)));
    absl::Status refused = absl::ResourceExhaustedError(
        absl::StrCat("API key ", caller.key_id, " started more than ", options_.rate_per_key,
                     " generations per second (--rate-limit-per-key); retry in ", wait, " s"));
    refused.SetPayload(kRetryAfterPayload, absl::Cord(absl::StrCat(wait)));
    return refused;
  }
  if (options_.rate_per_key > 0) key.tokens -= 1.0;
  ++key.admitted;
  ++key.running;
  return std::shared_ptr<void>(nullptr, [this, id = caller.key_id](void*) { Release(id); });
}

void Gatekeeper::Release(const std::string& key_id) {
  std::lock_guard lock(mutex_);
  if (auto found = state_.find(key_id); found != state_.end() && found->second.running > 0) {
    --found->second.running;
  }
}

absl::Status Gatekeeper::Reload() {
  if (options_.key_file.empty()) {
    return absl::FailedPreconditionError("no --api-key-file to reload");
  }
  absl::StatusOr<std::vector<Digest>> digests = ReadKeys();
  if (!digests.ok()) return digests.status();
  std::lock_guard lock(mutex_);
  digests_ = std::move(*digests);
  return absl::OkStatus();
}

void Gatekeeper::RecordUnauthenticated(const std::string& protocol) {
  std::lock_guard lock(mutex_);
  ++unauthenticated_[protocol];
}

void Gatekeeper::RenderMetrics(const std::string& model, std::string& out) const {
  std::lock_guard lock(mutex_);
  absl::StrAppend(&out,
                  "# HELP sculpt_unauthenticated_requests_total Requests refused for a missing or "
                  "wrong API key.\n# TYPE sculpt_unauthenticated_requests_total counter\n");
  for (const char* protocol : {"grpc", "http"}) {
    const auto found = unauthenticated_.find(protocol);
    absl::StrAppend(&out, "sculpt_unauthenticated_requests_total{", model, ",protocol=\"", protocol,
                    "\"} ", found == unauthenticated_.end() ? 0 : found->second, "\n");
  }
  absl::StrAppend(&out,
                  "# HELP sculpt_key_requests_total Generations per API key id, admitted or "
                  "refused by its limits.\n# TYPE sculpt_key_requests_total counter\n");
  for (const auto& [id, key] : state_) {
    const std::pair<const char*, uint64_t> results[] = {
        {"admitted", key.admitted},
        {"concurrency_limited", key.concurrency_limited},
        {"rate_limited", key.rate_limited}};
    for (const auto& [result, count] : results) {
      absl::StrAppend(&out, "sculpt_key_requests_total{", model, ",key_id=\"", id, "\",result=\"",
                      result, "\"} ", count, "\n");
    }
  }
  absl::StrAppend(&out,
                  "# HELP sculpt_key_requests_running Generations running per API key id.\n"
                  "# TYPE sculpt_key_requests_running gauge\n");
  for (const auto& [id, key] : state_) {
    absl::StrAppend(&out, "sculpt_key_requests_running{", model, ",key_id=\"", id, "\"} ",
                    key.running, "\n");
  }
}

}  // namespace sculpt
