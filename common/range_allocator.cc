#include "common/range_allocator.h"

#include <algorithm>

#include "common/status.h"

namespace sculpt {

RangeAllocator::RangeAllocator(size_t capacity, size_t alignment)
    : capacity_(capacity / alignment * alignment), alignment_(alignment) {
  SCULPT_CHECK(alignment > 0 && (alignment & (alignment - 1)) == 0);
  if (capacity_ > 0) free_[0] = capacity_;
}

std::optional<size_t> RangeAllocator::Allocate(size_t bytes) {
  const size_t rounded = std::max<size_t>(1, (bytes + alignment_ - 1) / alignment_) * alignment_;
  if (rounded < bytes) return std::nullopt;  // overflow
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if (it->second < rounded) continue;
    const size_t offset = it->first;
    const size_t left = it->second - rounded;
    free_.erase(it);
    if (left > 0) free_[offset + rounded] = left;
    allocated_[offset] = rounded;
    in_use_ += rounded;
    return offset;
  }
  return std::nullopt;
}

void RangeAllocator::Free(size_t offset) {
  auto found = allocated_.find(offset);
  SCULPT_CHECK(found != allocated_.end());
  size_t begin = offset;
  size_t size = found->second;
  in_use_ -= size;
  allocated_.erase(found);
  auto next = free_.lower_bound(begin);
  if (next != free_.end() && begin + size == next->first) {
    size += next->second;
    next = free_.erase(next);
  }
  if (next != free_.begin()) {
    auto previous = std::prev(next);
    if (previous->first + previous->second == begin) {
      begin = previous->first;
      size += previous->second;
      free_.erase(previous);
    }
  }
  free_[begin] = size;
}

size_t RangeAllocator::largest_free_range() const {
  size_t largest = 0;
  for (const auto& [offset, size] : free_) largest = std::max(largest, size);
  return largest;
}

}  // namespace sculpt
