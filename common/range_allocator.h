// First-fit allocation of byte ranges inside one fixed arena, with neighbours merged on free: the
// CUDA backend carves every buffer out of one cudaMalloc made at load, so nothing is allocated
// from the driver while requests run. Pure bookkeeping (offsets only); not thread-safe.
#pragma once

#include <cstddef>
#include <map>
#include <optional>

namespace sculpt {

class RangeAllocator {
 public:
  // `alignment` must be a power of two; every offset handed out is a multiple of it.
  RangeAllocator(size_t capacity, size_t alignment);

  // The offset of a free range of at least `bytes` (0 bytes takes one aligned unit), or nullopt.
  std::optional<size_t> Allocate(size_t bytes);
  // Returns a range given by Allocate; anything else is a programmer error (checked).
  void Free(size_t offset);

  size_t capacity() const { return capacity_; }
  size_t bytes_in_use() const { return in_use_; }
  size_t largest_free_range() const;

 private:
  size_t capacity_;
  size_t alignment_;
  size_t in_use_ = 0;
  std::map<size_t, size_t> free_;       // offset -> size, disjoint and never adjacent
  std::map<size_t, size_t> allocated_;  // offset -> size
};

}  // namespace sculpt
