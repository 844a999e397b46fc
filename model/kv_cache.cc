#include "model/kv_cache.h"

#include <algorithm>
#include <iterator>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace sculpt {

std::string_view KvCacheModeName(KvCacheMode mode) {
  switch (mode) {
    case KvCacheMode::kNone:
      return "none";
    case KvCacheMode::kPrefix:
      return "prefix";
    case KvCacheMode::kDual:
      return "dual";
  }
  return "none";
}

absl::StatusOr<KvCacheMode> ParseKvCacheMode(std::string_view name) {
  for (KvCacheMode mode : {KvCacheMode::kNone, KvCacheMode::kPrefix, KvCacheMode::kDual}) {
    if (name == KvCacheModeName(mode)) return mode;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("cache must be none, prefix or dual, got \"", std::string(name), "\""));
}

KvRowAllocator::KvRowAllocator(int64_t capacity) : capacity_(std::max<int64_t>(capacity, 0)) {
  if (capacity_ > 0) free_.emplace(0, capacity_);
}

std::optional<RowRange> KvRowAllocator::Allocate(int32_t count) {
  if (count < 1) return std::nullopt;
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    const auto [first, rows] = *it;
    if (rows < count) continue;
    free_.erase(it);
    if (rows > count) free_.emplace(first + count, rows - count);
    used_ += count;
    return RowRange{static_cast<int32_t>(first), count};
  }
  return std::nullopt;
}

void KvRowAllocator::Free(RowRange range) {
  if (range.count <= 0) return;
  SCULPT_CHECK(range.first >= 0 && int64_t{range.first} + range.count <= capacity_);
  int64_t first = range.first;
  int64_t rows = range.count;
  auto next = free_.lower_bound(first);
  SCULPT_CHECK(next == free_.end() || next->first >= first + rows);  // not freed twice
  if (next != free_.end() && next->first == first + rows) {
    rows += next->second;
    next = free_.erase(next);
  }
  if (next != free_.begin()) {
    const auto previous = std::prev(next);
    SCULPT_CHECK(previous->first + previous->second <= first);
    if (previous->first + previous->second == first) {
      first = previous->first;
      rows += previous->second;
      free_.erase(previous);
    }
  }
  free_.emplace(first, rows);
  used_ -= range.count;
}

KvCacheLease& KvCacheLease::operator=(KvCacheLease&& other) noexcept {
  if (this != &other) {
    reset();
    allocator_ = other.allocator_;
    rows_ = other.rows_;
    other.allocator_ = nullptr;
    other.rows_ = {};
  }
  return *this;
}

void KvCacheLease::reset() {
  if (allocator_ != nullptr && rows_.count > 0) allocator_->Free(rows_);
  allocator_ = nullptr;
  rows_ = {};
}

}  // namespace sculpt
