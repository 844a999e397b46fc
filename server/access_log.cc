#include "server/access_log.h"

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace sculpt {

absl::StatusOr<std::unique_ptr<AccessLog>> AccessLog::Open(const std::string& destination) {
  if (destination == "off") return std::unique_ptr<AccessLog>();
  if (destination == "stdout") return std::unique_ptr<AccessLog>(new AccessLog(stdout, false));
  std::FILE* file = std::fopen(destination.c_str(), "a");
  if (file == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("--access-log: cannot open ", destination,
                                                   " for appending: ", std::strerror(errno)));
  }
  return std::unique_ptr<AccessLog>(new AccessLog(file, true));
}

AccessLog::~AccessLog() {
  if (owned_) std::fclose(file_);
}

void AccessLog::Write(const AccessEntry& entry) {
  nlohmann::json line = {
      {"time", absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone())},
      {"protocol", entry.protocol},
      {"client", entry.client},
      {"method", entry.method},
      {"status", entry.status},
      {"bytes", entry.bytes_sent},
      {"duration_ms", std::round(entry.duration_ms * 1000.0) / 1000.0},
      {"request_id", entry.request_id},
  };
  if (!entry.path.empty()) line["path"] = entry.path;
  if (!entry.key_id.empty()) line["key_id"] = entry.key_id;
  if (!entry.completed) line["completed"] = false;
  const std::string text =
      line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  std::lock_guard lock(mutex_);
  std::fwrite(text.data(), 1, text.size(), file_);
  std::fflush(file_);
}

}  // namespace sculpt
