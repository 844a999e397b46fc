#include "model/kv_cache.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>
#include <utility>

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

absl::StatusOr<int64_t> KvCacheRowsFor(std::string_view budget, int64_t row_bytes,
                                       uint64_t available_bytes, int64_t useful_rows) {
  const auto invalid = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        "--kv-cache-memory must be auto, a fraction of the available memory in (0, 1) such as "
        "0.3, or bytes such as 0, 1073741824, 512MiB or 4GiB; got \"",
        std::string(budget), "\""));
  };
  if (row_bytes <= 0 || useful_rows < 0) return absl::InvalidArgumentError("no KV cache rows");
  const auto rows_in = [&](double bytes) {
    return std::min<int64_t>(useful_rows,
                             static_cast<int64_t>(bytes / static_cast<double>(row_bytes)));
  };
  if (budget == "auto") return rows_in(0.5 * static_cast<double>(available_bytes));
  size_t digits = 0;
  while (digits < budget.size() &&
         (std::isdigit(static_cast<unsigned char>(budget[digits])) || budget[digits] == '.')) {
    ++digits;
  }
  if (digits == 0) return invalid();
  double number = 0;
  try {
    size_t parsed = 0;
    number = std::stod(std::string(budget.substr(0, digits)), &parsed);
    if (parsed != digits) return invalid();
  } catch (...) {
    return invalid();
  }
  const std::string_view unit = budget.substr(digits);
  const bool has_point = budget.substr(0, digits).find('.') != std::string_view::npos;
  if (unit.empty() && has_point) {
    if (!(number > 0 && number < 1)) return invalid();
    return rows_in(number * static_cast<double>(available_bytes));
  }
  static constexpr std::pair<std::string_view, double> kUnits[] = {
      {"", 1},         {"B", 1},    {"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
      {"TiB", 0x1p40}, {"KB", 1e3}, {"MB", 1e6},      {"GB", 1e9},      {"TB", 1e12}};
  for (const auto& [name, scale] : kUnits) {
    if (unit == name) return rows_in(number * scale);
  }
  return invalid();
}

KvRowAllocator::KvRowAllocator(int64_t capacity)
    : rows_(static_cast<size_t>(std::clamp<int64_t>(capacity, 0, INT32_MAX)), 1) {}

std::optional<RowRange> KvRowAllocator::Allocate(int32_t count) {
  if (count < 1) return std::nullopt;
  const std::optional<size_t> first = rows_.Allocate(static_cast<size_t>(count));
  if (!first) return std::nullopt;
  return RowRange{static_cast<int32_t>(*first), count};
}

void KvRowAllocator::Free(RowRange range) {
  if (range.count > 0) rows_.Free(static_cast<size_t>(range.first));
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
