// Reading safetensors checkpoints. The header is untrusted input: every field is checked
// against the file before a pointer into the mapping is formed.
#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "common/status.h"

namespace sculpt {
namespace {

using Json = nlohmann::json;

constexpr char kSingleFileName[] = "model.safetensors";
constexpr char kIndexFileName[] = "model.safetensors.index.json";
constexpr char kMetadataKey[] = "__metadata__";
constexpr size_t kHeaderLengthBytes = 8;

// Closes a file descriptor on every path out of the scope that opened it.
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string JoinPath(const std::string& dir, absl::string_view name) {
  if (dir.empty()) return std::string(name);
  if (dir.back() == '/') return absl::StrCat(dir, name);
  return absl::StrCat(dir, "/", name);
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// Parser messages may quote raw header bytes; keep the status message printable ASCII.
std::string Printable(absl::string_view text) {
  std::string out(text);
  for (char& c : out) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) c = '?';
  }
  return out;
}

absl::Status FileError(const std::string& path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("safetensors file ", path, ": ", what));
}

absl::Status TensorError(const std::string& path, const std::string& name, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("safetensors file ", path, ": tensor '", name, "': ", what));
}

// Keeps the code of `status` and puts `context` in front of its message.
absl::Status WithContext(const absl::Status& status, absl::string_view context) {
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

std::optional<DType> ParseDType(absl::string_view name) {
  if (name == "F32") return DType::kF32;
  if (name == "F16") return DType::kF16;
  if (name == "BF16") return DType::kBF16;
  return std::nullopt;
}

// A non-negative integer that fits in `max`; JSON parses non-negative literals as unsigned,
// negative ones as signed and anything with a fraction or exponent as a float.
std::optional<uint64_t> AsUnsigned(const Json& value, uint64_t max) {
  if (!value.is_number_unsigned()) return std::nullopt;
  const uint64_t n = value.get<uint64_t>();
  if (n > max) return std::nullopt;
  return n;
}

// A JSON value for messages: scalars as written, containers by kind only (they may be huge).
std::string Describe(const Json& value) {
  if (value.is_string()) return "a string";
  if (value.is_array()) return "an array";
  if (value.is_object()) return "an object";
  if (value.is_discarded() || value.is_binary()) return value.type_name();
  return value.dump();  // number, boolean or null
}

struct ParsedTensor {
  TensorRef ref;
  uint64_t begin = 0;  // byte range [begin, end) within the data section
  uint64_t end = 0;
};

absl::StatusOr<ParsedTensor> ParseTensorEntry(const std::string& path, const std::string& name,
                                              const Json& entry, const char* data_section,
                                              uint64_t data_size) {
  if (!entry.is_object()) {
    return TensorError(path, name,
                       absl::StrCat("expected an object with dtype, shape and data_offsets, got ",
                                    Describe(entry)));
  }
  ParsedTensor tensor;
  tensor.ref.name = name;

  const auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end() || !dtype_it->is_string()) {
    return TensorError(path, name, "expected 'dtype': a string, one of F32, F16, BF16");
  }
  const std::string& dtype_name = dtype_it->get_ref<const std::string&>();
  const std::optional<DType> dtype = ParseDType(dtype_name);
  if (!dtype) {
    return TensorError(path, name,
                       absl::StrCat("unsupported dtype '", Printable(dtype_name),
                                    "' (supported: F32, F16, BF16)"));
  }
  tensor.ref.dtype = *dtype;

  const auto shape_it = entry.find("shape");
  if (shape_it == entry.end() || !shape_it->is_array()) {
    return TensorError(path, name, "expected 'shape': a list of non-negative integers");
  }
  // The element count is kept below 2^63 so num_elements() and byte sizes cannot overflow.
  constexpr uint64_t kMaxCount = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t num_elements = 1;
  for (size_t i = 0; i < shape_it->size(); ++i) {
    const Json& dim_json = (*shape_it)[i];
    const std::optional<uint64_t> dim = AsUnsigned(dim_json, kMaxCount);
    if (!dim) {
      return TensorError(path, name,
                         absl::StrCat("shape[", i, "] is ", Describe(dim_json),
                                      "; expected a non-negative integer below 2^63"));
    }
    tensor.ref.shape.push_back(static_cast<int64_t>(*dim));
    if (__builtin_mul_overflow(num_elements, *dim, &num_elements) || num_elements > kMaxCount) {
      return TensorError(path, name, "shape has more than 2^63 elements");
    }
  }
  uint64_t expected_bytes = 0;
  if (__builtin_mul_overflow(num_elements, DTypeSize(*dtype), &expected_bytes)) {
    return TensorError(path, name, "shape x dtype size overflows 64 bits");
  }

  const auto offsets_it = entry.find("data_offsets");
  if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2) {
    return TensorError(path, name, "expected 'data_offsets': a list [begin, end] of two integers");
  }
  const std::optional<uint64_t> begin = AsUnsigned((*offsets_it)[0], data_size);
  const std::optional<uint64_t> end = AsUnsigned((*offsets_it)[1], data_size);
  if (!begin || !end || *begin > *end) {
    return TensorError(
        path, name,
        absl::StrCat("data_offsets [", Describe((*offsets_it)[0]), ", ", Describe((*offsets_it)[1]),
                     "] are out of range; expected integers 0 <= begin <= end <= ", data_size,
                     " (the size of the data section)"));
  }
  if (*end - *begin != expected_bytes) {
    return TensorError(
        path, name,
        absl::StrCat("data_offsets [", *begin, ", ", *end, "] hold ", *end - *begin,
                     " bytes but dtype ", std::string(DTypeName(*dtype)), " x shape ",
                     ShapeString(tensor.ref.shape), " needs ", expected_bytes, " bytes"));
  }
  tensor.begin = *begin;
  tensor.end = *end;
  // Non-null even when empty, so memcpy(dst, data, 0) stays defined.
  tensor.ref.data = data_section + *begin;
  tensor.ref.byte_size = static_cast<size_t>(expected_bytes);
  return tensor;
}

absl::Status ParseMetadata(const std::string& path, const Json& value,
                           std::map<std::string, std::string>* metadata) {
  if (!value.is_object()) {
    return FileError(
        path, absl::StrCat("'__metadata__' must be an object of strings, got ", Describe(value)));
  }
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string()) {
      return FileError(path, absl::StrCat("'__metadata__' entry '", key, "' must be a string, got ",
                                          Describe(item)));
    }
    (*metadata)[key] = item.get<std::string>();
  }
  return absl::OkStatus();
}

// Empty tensors own no bytes; every other pair of tensors must not share a byte.
absl::Status CheckNoOverlap(const std::string& path, const std::vector<ParsedTensor>& tensors) {
  std::vector<const ParsedTensor*> by_begin;
  for (const ParsedTensor& t : tensors) {
    if (t.end > t.begin) by_begin.push_back(&t);
  }
  std::sort(by_begin.begin(), by_begin.end(), [](const ParsedTensor* a, const ParsedTensor* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  const ParsedTensor* furthest = nullptr;  // the tensor seen so far that ends last
  for (const ParsedTensor* t : by_begin) {
    if (furthest != nullptr && t->begin < furthest->end) {
      return FileError(
          path, absl::StrCat("tensors '", furthest->ref.name, "' (bytes [", furthest->begin, ", ",
                             furthest->end, ")) and '", t->ref.name, "' (bytes [", t->begin, ", ",
                             t->end, ")) overlap; each tensor must own its own byte range"));
    }
    if (furthest == nullptr || t->end > furthest->end) furthest = t;
  }
  return absl::OkStatus();
}

// Reads a small whole file, or nullopt when it does not exist.
absl::StatusOr<std::optional<std::string>> ReadFileIfExists(const std::string& path,
                                                            uint64_t max_bytes) {
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return std::optional<std::string>();
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot open ", path));
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot stat ", path));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a regular file"));
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is ", st.st_size, " bytes, more than the limit of ", max_bytes));
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::read(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::ErrnoToStatus(errno, absl::StrCat("cannot read ", path));
    if (n == 0) break;  // the file shrank while we read it
    done += static_cast<size_t>(n);
  }
  text.resize(done);
  return std::optional<std::string>(std::move(text));
}

// Exists as far as stat can tell; permission problems surface later when the file is opened.
bool PathMissing(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) != 0 && (errno == ENOENT || errno == ENOTDIR);
}

// A shard must live in the model directory itself.
bool IsPlainFileName(const std::string& name) {
  return !name.empty() && name.find('/') == std::string::npos &&
         name.find("..") == std::string::npos && name.find('\0') == std::string::npos &&
         name != ".";
}

}  // namespace

int64_t TensorRef::num_elements() const {
  int64_t n = 1;
  for (int64_t dim : shape) n *= dim;
  return n;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_size_);
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot open safetensors file ", path));
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot stat safetensors file ", path));
  }
  if (!S_ISREG(st.st_mode)) return FileError(path, "not a regular file");
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  // Also keeps mmap away from empty files, where a zero-length mapping is invalid.
  if (file_size < kHeaderLengthBytes) {
    return FileError(path, absl::StrCat("truncated header: the file is ", file_size,
                                        " bytes, shorter than the 8-byte header length"));
  }
  if (file_size > std::numeric_limits<size_t>::max()) {
    return FileError(path, "too large to map in this address space");
  }

  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  void* mapping =
      ::mmap(nullptr, static_cast<size_t>(file_size), PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (mapping == MAP_FAILED) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot mmap safetensors file ", path));
  }
  // From here the destructor unmaps on every error path.
  file->mapping_ = mapping;
  file->mapping_size_ = static_cast<size_t>(file_size);
  const auto* bytes = static_cast<const unsigned char*>(mapping);

  uint64_t header_size = 0;
  for (int i = static_cast<int>(kHeaderLengthBytes) - 1; i >= 0; --i) {
    header_size = (header_size << 8) | bytes[i];
  }
  if (header_size > kMaxSafetensorsHeaderBytes) {
    return FileError(path, absl::StrCat("header length ", header_size, " exceeds the limit of ",
                                        kMaxSafetensorsHeaderBytes,
                                        " bytes (the file is corrupt or not safetensors)"));
  }
  if (header_size > file_size - kHeaderLengthBytes) {
    return FileError(
        path, absl::StrCat("header length ", header_size,
                           " runs past the end of the file (expected at most ",
                           file_size - kHeaderLengthBytes, " bytes after the 8-byte length)"));
  }
  const char* header_begin = reinterpret_cast<const char*>(bytes + kHeaderLengthBytes);
  const char* data_section = header_begin + header_size;
  const uint64_t data_size = file_size - kHeaderLengthBytes - header_size;

  Json header;
  try {
    header = Json::parse(header_begin, data_section);
  } catch (const std::exception& e) {
    return FileError(path, absl::StrCat("header is not valid JSON: ", Printable(e.what())));
  }
  if (!header.is_object()) {
    return FileError(path, absl::StrCat("header must be a JSON object mapping tensor names to "
                                        "entries, got ",
                                        Describe(header)));
  }

  std::vector<ParsedTensor> parsed;
  for (const auto& [name, entry] : header.items()) {
    if (name == kMetadataKey) {
      SCULPT_RETURN_IF_ERROR(ParseMetadata(path, entry, &file->metadata_));
      continue;
    }
    SCULPT_ASSIGN_OR_RETURN(ParsedTensor tensor,
                            ParseTensorEntry(path, name, entry, data_section, data_size));
    parsed.push_back(std::move(tensor));
  }
  SCULPT_RETURN_IF_ERROR(CheckNoOverlap(path, parsed));
  for (ParsedTensor& tensor : parsed) {
    std::string name = tensor.ref.name;
    file->tensors_.emplace(std::move(name), std::move(tensor.ref));
  }
  return file;
}

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(const std::string& model_dir) {
  auto checkpoint = std::make_unique<Checkpoint>();
  checkpoint->model_dir_ = model_dir;
  const std::string index_path = JoinPath(model_dir, kIndexFileName);
  SCULPT_ASSIGN_OR_RETURN(std::optional<std::string> index_text,
                          ReadFileIfExists(index_path, kMaxSafetensorsHeaderBytes));

  if (!index_text) {
    const std::string single_path = JoinPath(model_dir, kSingleFileName);
    if (PathMissing(single_path)) {
      return absl::NotFoundError(absl::StrCat("no checkpoint in ", model_dir, ": neither ",
                                              kIndexFileName, " nor ", kSingleFileName,
                                              " exists there"));
    }
    SCULPT_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file,
                            SafetensorsFile::Open(single_path));
    for (const auto& [name, ref] : file->tensors()) checkpoint->tensors_[name] = &ref;
    checkpoint->files_.push_back(std::move(file));
    return checkpoint;
  }

  // weight_map: tensor name -> shard file name in model_dir.
  std::map<std::string, std::string> weight_map;
  try {
    const Json index = Json::parse(*index_text);
    const Json* map_json = nullptr;
    if (index.is_object()) {
      const auto it = index.find("weight_map");
      if (it != index.end()) map_json = &*it;
    }
    if (map_json == nullptr || !map_json->is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(
          index_path, ": expected a JSON object with a 'weight_map' object (tensor -> shard)"));
    }
    for (const auto& [tensor, shard] : map_json->items()) {
      if (!shard.is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat(index_path, ": weight_map entry for tensor '", tensor,
                         "' must be a shard file name string, got ", Describe(shard)));
      }
      weight_map[tensor] = shard.get<std::string>();
    }
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(index_path, ": not valid JSON: ", Printable(e.what())));
  }
  if (weight_map.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(index_path, ": weight_map is empty"));
  }

  std::set<std::string> shard_names;
  for (const auto& [tensor, shard] : weight_map) {
    if (!IsPlainFileName(shard)) {
      return absl::InvalidArgumentError(
          absl::StrCat(index_path, ": shard '", Printable(shard), "' of tensor '", tensor,
                       "' must be a plain file name in the model directory (no '/' or '..')"));
    }
    shard_names.insert(shard);
  }

  std::map<std::string, const SafetensorsFile*> shards;
  std::map<std::string, std::string> shard_of_tensor;  // as found in the files
  for (const std::string& shard : shard_names) {
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
        SafetensorsFile::Open(JoinPath(model_dir, shard));
    if (!file.ok()) {
      return WithContext(file.status(), absl::StrCat("shard '", shard, "' listed in ", index_path));
    }
    for (const auto& [name, ref] : (*file)->tensors()) {
      const auto [it, inserted] = shard_of_tensor.emplace(name, shard);
      if (!inserted) {
        return absl::InvalidArgumentError(absl::StrCat("checkpoint ", model_dir, ": tensor '", name,
                                                       "' is in two shards, '", it->second,
                                                       "' and '", shard, "'"));
      }
      checkpoint->tensors_[name] = &ref;
    }
    shards[shard] = file->get();
    checkpoint->files_.push_back(std::move(*file));
  }

  for (const auto& [tensor, shard] : weight_map) {
    const auto file = shards.find(shard);
    SCULPT_CHECK(file != shards.end());  // every named shard was opened above
    if (file->second->tensors().count(tensor) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(index_path, " places tensor '", tensor, "' in shard '", shard,
                       "', but that shard has no tensor of that name"));
    }
  }
  return checkpoint;
}

bool SafetensorsFile::Contains(const void* data, size_t bytes) const {
  const auto* begin = static_cast<const char*>(mapping_);
  const auto* first = static_cast<const char*>(data);
  return first >= begin && first + bytes <= begin + mapping_size_;
}

void SafetensorsFile::ReleasePages(const void* data, size_t bytes) const {
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto first = reinterpret_cast<uintptr_t>(data);
  const uintptr_t begin = (first + page - 1) / page * page;
  const uintptr_t end = (first + bytes) / page * page;
  // Advice only: a failure leaves the pages resident, which is correct, just larger.
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

void Checkpoint::ReleasePages(const TensorRef& tensor) const {
  for (const auto& file : files_) {
    if (file->Contains(tensor.data, tensor.byte_size)) {
      file->ReleasePages(tensor.data, tensor.byte_size);
      return;
    }
  }
}

DType Checkpoint::dominant_dtype() const {
  std::map<DType, size_t> bytes;
  for (const auto& [name, tensor] : tensors_) bytes[tensor->dtype] += tensor->byte_size;
  DType dominant = DType::kF32;
  size_t most = 0;
  for (const auto& [dtype, total] : bytes) {
    if (total > most) {
      most = total;
      dominant = dtype;
    }
  }
  return dominant;
}

absl::StatusOr<const TensorRef*> Checkpoint::Find(const std::string& name) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(
        absl::StrCat("tensor '", name, "' not found in checkpoint ", model_dir_));
  }
  return it->second;
}

absl::StatusOr<const TensorRef*> Checkpoint::FindWithShape(
    const std::string& name, const std::vector<int64_t>& shape) const {
  SCULPT_ASSIGN_OR_RETURN(const TensorRef* tensor, Find(name));
  if (tensor->shape != shape) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' in checkpoint ", model_dir_,
                                                   " has shape ", ShapeString(tensor->shape),
                                                   ", expected ", ShapeString(shape)));
  }
  return tensor;
}

}  // namespace sculpt
