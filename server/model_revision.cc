#include "server/model_revision.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace sculpt {
namespace {

bool DecidesAnswers(const std::string& name) {
  static const std::set<std::string> kNamed = {
      "config.json",           "generation_config.json",  "tokenizer.json",
      "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"};
  return kNamed.count(name) > 0 || absl::EndsWith(name, ".safetensors") ||
         absl::EndsWith(name, ".safetensors.index.json");
}

}  // namespace

absl::StatusOr<std::string> ContentRevision(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    if (entry.is_regular_file() && DecidesAnswers(entry.path().filename().string())) {
      names.push_back(entry.path().filename().string());
    }
  }
  if (error) {
    return absl::NotFoundError(
        absl::StrCat("cannot list the model directory ", dir, ": ", error.message()));
  }
  std::sort(names.begin(), names.end());
  const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(),
                                                                        EVP_MD_CTX_free);
  if (!context || EVP_DigestInit_ex(context.get(), EVP_sha256(), nullptr) != 1) {
    return absl::InternalError("SHA-256 is not available from OpenSSL");
  }
  std::vector<char> buffer(1 << 20);
  for (const std::string& name : names) {
    const std::string path = (std::filesystem::path(dir) / name).string();
    std::ifstream file(path, std::ios::binary);
    const uint64_t size = std::filesystem::file_size(path, error);
    if (!file || error) return absl::NotFoundError(absl::StrCat("cannot read ", path));
    std::array<unsigned char, 8> size_bytes;
    for (int i = 0; i < 8; ++i) size_bytes[i] = static_cast<unsigned char>(size >> (8 * i));
    EVP_DigestUpdate(context.get(), name.data(), name.size());
    EVP_DigestUpdate(context.get(), "", 1);
    EVP_DigestUpdate(context.get(), size_bytes.data(), size_bytes.size());
    uint64_t hashed = 0;
    while (file) {
      file.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
      const auto got = static_cast<size_t>(file.gcount());
      EVP_DigestUpdate(context.get(), buffer.data(), got);
      hashed += got;
    }
    if (hashed != size) return absl::DataLossError(absl::StrCat("cannot read all of ", path));
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest;
  unsigned int length = 0;
  EVP_DigestFinal_ex(context.get(), digest.data(), &length);
  std::string hex;
  for (unsigned int i = 0; i < 8 && i < length; ++i) {
    absl::StrAppend(&hex, absl::Hex(digest[i], absl::kZeroPad2));
  }
  return hex;
}

std::string CardRevision(const std::string& dir) {
  std::ifstream card((std::filesystem::path(dir) / "README.md").string());
  std::string line;
  if (!std::getline(card, line) || absl::StripAsciiWhitespace(line) != "---") return "";
  while (std::getline(card, line)) {
    const absl::string_view trimmed = absl::StripAsciiWhitespace(line);
    if (trimmed == "---") break;
    absl::string_view value = trimmed;
    if (absl::ConsumePrefix(&value, "revision:")) {
      value = absl::StripAsciiWhitespace(value);
      if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
          value.back() == value.front()) {
        value = value.substr(1, value.size() - 2);
      }
      return std::string(value.substr(0, 128));
    }
  }
  return "";
}

}  // namespace sculpt
