// Reading safetensors checkpoints: mmap'd, every header field bounds-checked before use;
// single files and sharded checkpoints (model.safetensors.index.json).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/dtype.h"

namespace sculpt {

// A tensor inside a mapped file; `data` stays valid while its file object lives.
struct TensorRef {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t byte_size = 0;

  int64_t num_elements() const;
};

// Headers larger than this are rejected before they are read (they would be a corrupt file).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100ull * 1000 * 1000;

class SafetensorsFile {
 public:
  // Maps `path` read-only and validates the header: 8-byte little-endian length within
  // kMaxSafetensorsHeaderBytes and the file, a JSON object, known dtypes (F32, F16, BF16),
  // offsets inside the data section, non-overlapping, byte length == dtype size x shape.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorRef>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Whether [data, data + bytes) lies in this file's mapping.
  bool Contains(const void* data, size_t bytes) const;
  // Drops the resident pages that lie wholly inside [data, data + bytes) (they are read from the
  // file again if touched): for tensors copied elsewhere, so they stop counting in memory.
  void ReleasePages(const void* data, size_t bytes) const;

 private:
  SafetensorsFile() = default;

  std::string path_;
  void* mapping_ = nullptr;
  size_t mapping_size_ = 0;
  std::map<std::string, TensorRef> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a model directory: `model.safetensors`, or the shards listed by
// `model.safetensors.index.json` (its weight_map names the shard of every tensor).
class Checkpoint {
 public:
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Open(const std::string& model_dir);

  // NOT_FOUND naming the tensor when it is absent.
  absl::StatusOr<const TensorRef*> Find(const std::string& name) const;
  // Find + a shape check; INVALID_ARGUMENT naming the tensor and both shapes on mismatch.
  absl::StatusOr<const TensorRef*> FindWithShape(const std::string& name,
                                                 const std::vector<int64_t>& shape) const;
  bool Contains(const std::string& name) const { return tensors_.count(name) != 0; }
  // SafetensorsFile::ReleasePages for a tensor that has been copied into a backend buffer.
  void ReleasePages(const TensorRef& tensor) const;
  size_t num_tensors() const { return tensors_.size(); }
  // The dtype holding most of the checkpoint's bytes: what "the checkpoint's dtype" means.
  DType dominant_dtype() const;

 private:
  std::string model_dir_;  // named in error messages
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorRef*> tensors_;
};

}  // namespace sculpt
