// Writes safetensors files for tests: valid ones from tensors, and corrupt ones on purpose.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace sculpt::testing {

inline std::string LittleEndian64(uint64_t value) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((value >> (8 * i)) & 0xff);
  return out;
}

template <typename T>
std::string Bytes(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

// Builds a safetensors file tensor by tensor, laying the data out back to back.
class SafetensorsWriter {
 public:
  SafetensorsWriter& Add(const std::string& name, const std::string& dtype,
                         const std::vector<int64_t>& shape, const std::string& bytes) {
    header_[name] = {{"dtype", dtype},
                     {"shape", shape},
                     {"data_offsets", {data_.size(), data_.size() + bytes.size()}}};
    data_ += bytes;
    return *this;
  }
  // For corrupt files: an entry with any offsets; `data` is not touched.
  SafetensorsWriter& AddRaw(const std::string& name, const nlohmann::json& entry) {
    header_[name] = entry;
    return *this;
  }
  SafetensorsWriter& Metadata(const nlohmann::json& metadata) {
    header_["__metadata__"] = metadata;
    return *this;
  }
  SafetensorsWriter& Data(const std::string& bytes) {
    data_ += bytes;
    return *this;
  }
  // Writers pad the header with spaces so the data section starts aligned.
  std::string Serialize(size_t header_padding = 0) const {
    const std::string header =
        (header_.is_null() ? std::string("{}") : header_.dump()) + std::string(header_padding, ' ');
    return LittleEndian64(header.size()) + header + data_;
  }

 private:
  nlohmann::json header_;
  std::string data_;
};

}  // namespace sculpt::testing
