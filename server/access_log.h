// The access log: one JSON object per line for every HTTP request and gRPC call (time, client,
// route or method, status, bytes, duration, request id), to stdout or a file (--access-log).
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"

namespace sculpt {

struct AccessEntry {
  std::string protocol;  // "http" or "grpc"
  std::string client;    // address:port
  std::string method;    // HTTP method, or the gRPC method's full name
  std::string path;      // HTTP path; empty for gRPC
  int status = 0;        // HTTP status, or the gRPC status code
  uint64_t bytes_sent = 0;
  double duration_ms = 0.0;
  std::string request_id;
  std::string key_id;     // the API key's id (docs/security.md), when the request had a valid one
  bool completed = true;  // false when the client left before the answer was done
};

class AccessLog {
 public:
  // "off" (nullptr), "stdout", or a file path (appended to); INVALID_ARGUMENT naming the flag
  // when the file cannot be opened.
  static absl::StatusOr<std::unique_ptr<AccessLog>> Open(const std::string& destination);
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // Thread-safe; one line, flushed.
  void Write(const AccessEntry& entry);

 private:
  AccessLog(std::FILE* file, bool owned) : file_(file), owned_(owned) {}
  std::mutex mutex_;
  std::FILE* file_;
  bool owned_;
};

}  // namespace sculpt
