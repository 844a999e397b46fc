#include "cpu/host_memory.h"

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <optional>
#include <string>

namespace sculpt {
namespace {

// The first number in `path` (after `key` when given), or nullopt ("max", no file).
std::optional<uint64_t> ReadNumber(const char* path, const std::string& key = "") {
  std::ifstream file(path);
  std::string word;
  while (file >> word) {
    if (!key.empty() && word != key) continue;
    if (!key.empty() && !(file >> word)) return std::nullopt;
    try {
      return std::stoull(word);
    } catch (...) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

}  // namespace

size_t HostAvailableMemory() {
  uint64_t available = 0;
  if (const auto kib = ReadNumber("/proc/meminfo", "MemAvailable:")) {
    available = *kib * 1024;
  } else {
    available = static_cast<uint64_t>(sysconf(_SC_AVPHYS_PAGES)) *
                static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  }
  const auto limit = ReadNumber("/sys/fs/cgroup/memory.max");
  const auto current = ReadNumber("/sys/fs/cgroup/memory.current");
  if (limit && current) available = std::min(available, *limit > *current ? *limit - *current : 0);
  return static_cast<size_t>(available);
}

}  // namespace sculpt
