// The approximate KV cache's bookkeeping (Fast-dLLM's prefix and dual caches,
// docs/generation.md): which rows of a model's cache arena each generation holds. The arena
// itself lives in the model (Transformer::ReserveKvCache); this is host-side and pure, so the
// scheduler's admission can plan on a copy.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/range_allocator.h"
#include "model/backend.h"

namespace sculpt {

// none: every step forwards the whole canvas. prefix: a block's first step forwards the whole
// canvas and caches every position's keys and values; its later steps forward the block and
// everything after it against the cached prefix. dual: the later steps forward the block alone
// against the cached prefix and suffix.
enum class KvCacheMode { kNone, kPrefix, kDual };
std::string_view KvCacheModeName(KvCacheMode mode);
// "none", "prefix" or "dual"; INVALID_ARGUMENT naming them otherwise.
absl::StatusOr<KvCacheMode> ParseKvCacheMode(std::string_view name);

// The KV cache arena's rows for a memory budget (`--kv-cache-memory`): "auto" (as many rows as
// `useful_rows`, the most a step can use, within half of `available_bytes`), a fraction in
// (0, 1) of `available_bytes` ("0.3"), or bytes ("0" = no cache, "1073741824", "512MiB",
// "4GiB", "2GB"). Never more than `useful_rows`. INVALID_ARGUMENT saying what is accepted.
absl::StatusOr<int64_t> KvCacheRowsFor(std::string_view budget, int64_t row_bytes,
                                       uint64_t available_bytes, int64_t useful_rows);

// First-fit allocation of contiguous row ranges in [0, capacity) (RangeAllocator counting
// rows): each sequence's cached rows are one range, which the attention op reads as that
// sequence's keys (AttentionParams::kv_rows). Deterministic, so a copy that plans admissions
// allocates exactly what the original then does.
class KvRowAllocator {
 public:
  explicit KvRowAllocator(int64_t capacity = 0);

  int64_t capacity() const { return static_cast<int64_t>(rows_.capacity()); }
  int64_t used() const { return static_cast<int64_t>(rows_.bytes_in_use()); }
  // The lowest free range of `count` rows (count >= 1), or nullopt when none is that long.
  std::optional<RowRange> Allocate(int32_t count);
  // Returns a range Allocate gave out; neighbouring free ranges merge.
  void Free(RowRange range);

 private:
  RangeAllocator rows_;
};

// Rows of an allocator held by one generation, returned when the lease is destroyed or reset.
// The allocator must outlive its leases.
class KvCacheLease {
 public:
  KvCacheLease() = default;
  KvCacheLease(KvRowAllocator* allocator, RowRange rows) : allocator_(allocator), rows_(rows) {}
  KvCacheLease(KvCacheLease&& other) noexcept { *this = std::move(other); }
  KvCacheLease& operator=(KvCacheLease&& other) noexcept;
  KvCacheLease(const KvCacheLease&) = delete;
  KvCacheLease& operator=(const KvCacheLease&) = delete;
  ~KvCacheLease() { reset(); }

  void reset();
  bool held() const { return rows_.count > 0; }
  RowRange rows() const { return rows_; }

 private:
  KvRowAllocator* allocator_ = nullptr;
  RowRange rows_;
};

}  // namespace sculpt
