// SafetensorsFile and Checkpoint against real files written into a temporary directory: valid
// single-file and sharded checkpoints load, and every kind of corrupt file has its own error.
#include "model/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "tests/support/safetensors_writer.h"

namespace sculpt {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;
using testing::Bytes;
using testing::LittleEndian64;
using testing::SafetensorsWriter;

// As std::string, so a failing matcher prints text rather than a list of chars.
std::string Message(const absl::Status& status) { return std::string(status.message()); }

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir();
    if (pattern.empty() || pattern.back() != '/') pattern += '/';
    pattern += "safetensors_test_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  std::string WriteFile(const std::string& name, const std::string& contents) const {
    const std::string path = Path(name);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    out.close();
    EXPECT_TRUE(out.good()) << path;
    return path;
  }

  // A file whose header is exactly `header` (not necessarily JSON), followed by `data`.
  std::string WriteRawHeader(const std::string& name, const std::string& header,
                             const std::string& data = "") const {
    return WriteFile(name, LittleEndian64(header.size()) + header + data);
  }

  absl::Status OpenStatus(const std::string& path) const {
    return SafetensorsFile::Open(path).status();
  }

  std::string dir_;
};

TEST_F(SafetensorsTest, LoadsF32F16BF16WithShapesDtypesAndBytes) {
  const std::vector<float> f32 = {1.0f, -2.5f, 3.25f, 0.0f, 1e-3f, -7.0f};
  const std::vector<uint16_t> f16 = {0x3c00, 0xc000, 0x3555, 0x0001};  // 1, -2, ~1/3, 2^-24
  const std::vector<uint16_t> bf16 = {0x3f80, 0xbf80, 0x4049};         // 1, -1, ~3.14
  const std::string path =
      WriteFile("model.safetensors", SafetensorsWriter()
                                         .Metadata({{"format", "pt"}})
                                         .Add("a.f32", "F32", {2, 3}, Bytes(f32))
                                         .Add("b.f16", "F16", {4}, Bytes(f16))
                                         .Add("c.bf16", "BF16", {1, 3}, Bytes(bf16))
                                         .Serialize());

  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->path(), path);
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  ASSERT_EQ((*file)->tensors().size(), 3u);

  const TensorRef& a = (*file)->tensors().at("a.f32");
  EXPECT_EQ(a.name, "a.f32");
  EXPECT_EQ(a.dtype, DType::kF32);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.num_elements(), 6);
  ASSERT_EQ(a.byte_size, 24u);
  EXPECT_EQ(std::memcmp(a.data, f32.data(), a.byte_size), 0);

  const TensorRef& b = (*file)->tensors().at("b.f16");
  EXPECT_EQ(b.dtype, DType::kF16);
  EXPECT_EQ(b.shape, (std::vector<int64_t>{4}));
  ASSERT_EQ(b.byte_size, 8u);
  std::vector<float> b_float(4);
  ConvertToFloat(b.dtype, b.data, b_float.size(), b_float.data());
  EXPECT_EQ(b_float[0], 1.0f);
  EXPECT_EQ(b_float[1], -2.0f);
  EXPECT_EQ(b_float[3], 0x1p-24f);

  const TensorRef& c = (*file)->tensors().at("c.bf16");
  EXPECT_EQ(c.dtype, DType::kBF16);
  EXPECT_EQ(c.shape, (std::vector<int64_t>{1, 3}));
  ASSERT_EQ(c.byte_size, 6u);
  EXPECT_EQ(std::memcmp(c.data, bf16.data(), c.byte_size), 0);
}

TEST_F(SafetensorsTest, LoadsScalarEmptyTensorAndPaddedHeader) {
  const std::vector<float> scalar = {42.0f};
  const std::string path =
      WriteFile("model.safetensors", SafetensorsWriter()
                                         .Add("scalar", "F32", {}, Bytes(scalar))
                                         .Add("empty", "BF16", {0, 5}, "")
                                         .Serialize(/*header_padding=*/5));

  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  const TensorRef& s = (*file)->tensors().at("scalar");
  EXPECT_TRUE(s.shape.empty());
  EXPECT_EQ(s.num_elements(), 1);
  float value;
  std::memcpy(&value, s.data, sizeof(value));
  EXPECT_EQ(value, 42.0f);
  const TensorRef& e = (*file)->tensors().at("empty");
  EXPECT_EQ(e.num_elements(), 0);
  EXPECT_EQ(e.byte_size, 0u);
  EXPECT_NE(e.data, nullptr);
}

TEST_F(SafetensorsTest, HeaderOnlyFileHasNoTensors) {
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
      SafetensorsFile::Open(WriteRawHeader("model.safetensors", "{}"));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE((*file)->tensors().empty());
  EXPECT_TRUE((*file)->metadata().empty());
}

TEST_F(SafetensorsTest, EmptyTensorInsideAnotherRangeIsNotAnOverlap) {
  const std::string path =
      WriteFile("model.safetensors",
                SafetensorsWriter()
                    .Add("w", "F32", {2}, Bytes(std::vector<float>{1, 2}))
                    .AddRaw("e", {{"dtype", "F32"}, {"shape", {0}}, {"data_offsets", {4, 4}}})
                    .Serialize());
  EXPECT_TRUE(OpenStatus(path).ok()) << OpenStatus(path);
}

TEST_F(SafetensorsTest, EmptyFileIsTruncatedHeader) {
  const std::string path = WriteFile("model.safetensors", "");
  const absl::Status status = OpenStatus(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("truncated header"));
  EXPECT_THAT(Message(status), HasSubstr(path));
}

TEST_F(SafetensorsTest, FileShorterThanEightBytesIsTruncatedHeader) {
  const absl::Status status =
      OpenStatus(WriteFile("model.safetensors", std::string("\x05\0\0\0", 4)));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("truncated header: the file is 4 bytes"));
}

TEST_F(SafetensorsTest, HeaderLengthBeyondFile) {
  const std::string path = WriteFile("model.safetensors", LittleEndian64(100) + "{}");
  const absl::Status status = OpenStatus(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("header length 100 runs past the end of the file"));
  EXPECT_THAT(Message(status), HasSubstr("at most 2 bytes"));
}

TEST_F(SafetensorsTest, HeaderLengthOverLimit) {
  const absl::Status status = OpenStatus(
      WriteFile("model.safetensors", LittleEndian64(kMaxSafetensorsHeaderBytes + 1) + "{}"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("exceeds the limit of 100000000 bytes"));
}

TEST_F(SafetensorsTest, HeaderLengthNearUint64MaxDoesNotWrap) {
  const absl::Status status =
      OpenStatus(WriteFile("model.safetensors", LittleEndian64(~uint64_t{0}) + "{}"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("exceeds the limit"));
}

TEST_F(SafetensorsTest, NonJsonHeader) {
  const absl::Status status = OpenStatus(WriteRawHeader("model.safetensors", "{not json\x01"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("header is not valid JSON"));
}

TEST_F(SafetensorsTest, HeaderThatIsJsonButNotAnObject) {
  const absl::Status status = OpenStatus(WriteRawHeader("model.safetensors", "[1, 2, 3]"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("header must be a JSON object"));
  EXPECT_THAT(Message(status), HasSubstr("got an array"));
}

TEST_F(SafetensorsTest, DeeplyNestedHeaderIsRejectedWithoutCrashing) {
  const size_t depth = 200000;
  const std::string header = std::string(depth, '[') + std::string(depth, ']');
  const absl::Status status = OpenStatus(WriteRawHeader("model.safetensors", header));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("header must be a JSON object"));
}

TEST_F(SafetensorsTest, UnsupportedDtype) {
  const std::string path =
      WriteFile("model.safetensors",
                SafetensorsWriter().Add("ids", "I64", {2}, std::string(16, '\0')).Serialize());
  const absl::Status status = OpenStatus(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("tensor 'ids': unsupported dtype 'I64'"));
  EXPECT_THAT(Message(status), HasSubstr("supported: F32, F16, BF16"));
}

TEST_F(SafetensorsTest, OffsetsOutOfRange) {
  const std::string path =
      WriteFile("model.safetensors",
                SafetensorsWriter()
                    .AddRaw("w", {{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {0, 16}}})
                    .Data(std::string(8, '\0'))
                    .Serialize());
  const absl::Status status = OpenStatus(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("tensor 'w': data_offsets"));
  EXPECT_THAT(Message(status), HasSubstr("out of range; expected integers 0 <= begin <= end <= 8"));
}

TEST_F(SafetensorsTest, OffsetsBeginAfterEnd) {
  const std::string path =
      WriteFile("model.safetensors",
                SafetensorsWriter()
                    .AddRaw("w", {{"dtype", "F32"}, {"shape", {0}}, {"data_offsets", {8, 4}}})
                    .Data(std::string(8, '\0'))
                    .Serialize());
  const absl::Status status = OpenStatus(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("begin <= end"));
}

TEST_F(SafetensorsTest, NegativeOffsetIsRejected) {
  const std::string path =
      WriteFile("model.safetensors",
                SafetensorsWriter()
                    .AddRaw("w", {{"dtype", "F32"}, {"shape", {1}}, {"data_offsets", {-4, 0}}})
                    .Data(std::string(8, '\0'))
                    .Serialize());
  const absl::Status status = OpenStatus(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("tensor 'w': data_offsets [-4, 0]"));
}

TEST_F(SafetensorsTest, OverlappingOffsets) {
  const std::string path =
      WriteFile("model.safetensors",
                SafetensorsWriter()
                    .AddRaw("a", {{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {0, 16}}})
                    .AddRaw("b", {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {12, 20}}})
                    .Data(std::string(20, '\0'))
                    .Serialize());
  const absl::Status status = OpenStatus(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status),
              HasSubstr("tensors 'a' (bytes [0, 16)) and 'b' (bytes [12, 20)) overlap"));
}

TEST_F(SafetensorsTest, OverlapWithAnEarlierLongTensorIsFound) {
  // 'c' starts after 'b' ends but inside 'a', which started first.
  const std::string path =
      WriteFile("model.safetensors",
                SafetensorsWriter()
                    .AddRaw("a", {{"dtype", "F32"}, {"shape", {8}}, {"data_offsets", {0, 32}}})
                    .AddRaw("b", {{"dtype", "F32"}, {"shape", {1}}, {"data_offsets", {4, 8}}})
                    .AddRaw("c", {{"dtype", "F32"}, {"shape", {1}}, {"data_offsets", {16, 20}}})
                    .Data(std::string(32, '\0'))
                    .Serialize());
  const absl::Status status = OpenStatus(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("overlap"));
}

TEST_F(SafetensorsTest, ByteLengthNotMatchingDtypeTimesShape) {
  const std::string path =
      WriteFile("model.safetensors",
                SafetensorsWriter().Add("w", "BF16", {2, 3}, std::string(24, '\0')).Serialize());
  const absl::Status status = OpenStatus(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("tensor 'w': data_offsets [0, 24] hold 24 bytes but "
                                         "dtype BF16 x shape [2, 3] needs 12 bytes"));
}

TEST_F(SafetensorsTest, NegativeDimension) {
  const std::string path =
      WriteFile("model.safetensors",
                SafetensorsWriter()
                    .AddRaw("w", {{"dtype", "F32"}, {"shape", {2, -1}}, {"data_offsets", {0, 0}}})
                    .Serialize());
  const absl::Status status = OpenStatus(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("shape[1] is -1; expected a non-negative"));
}

TEST_F(SafetensorsTest, ShapeWhoseElementCountOverflows) {
  const int64_t big = int64_t{1} << 40;
  const std::string path = WriteFile(
      "model.safetensors",
      SafetensorsWriter()
          .AddRaw("w", {{"dtype", "F32"}, {"shape", {big, big}}, {"data_offsets", {0, 0}}})
          .Serialize());
  const absl::Status status = OpenStatus(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("more than 2^63 elements"));
}

TEST_F(SafetensorsTest, ShapeWhoseByteCountOverflows) {
  const int64_t elements = int64_t{1} << 62;  // fits as a count, not as F32 bytes
  const std::string path = WriteFile(
      "model.safetensors",
      SafetensorsWriter()
          .AddRaw("w", {{"dtype", "F32"}, {"shape", {elements}}, {"data_offsets", {0, 0}}})
          .Serialize());
  const absl::Status status = OpenStatus(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("overflows 64 bits"));
}

TEST_F(SafetensorsTest, MissingFieldsAndWrongTypes) {
  const std::string path = WriteFile(
      "model.safetensors",
      SafetensorsWriter().AddRaw("w", {{"shape", {1}}, {"data_offsets", {0, 4}}}).Serialize());
  EXPECT_THAT(Message(OpenStatus(path)), HasSubstr("tensor 'w': expected 'dtype': a string"));

  const std::string not_object =
      WriteFile("other.safetensors", SafetensorsWriter().AddRaw("w", 3).Serialize());
  EXPECT_THAT(Message(OpenStatus(not_object)),
              HasSubstr("tensor 'w': expected an object with dtype, shape and data_offsets"));
}

TEST_F(SafetensorsTest, MetadataMustMapStringsToStrings) {
  const std::string path =
      WriteFile("model.safetensors", SafetensorsWriter().Metadata({{"step", 3}}).Serialize());
  const absl::Status status = OpenStatus(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("'__metadata__' entry 'step' must be a string"));
}

TEST_F(SafetensorsTest, MissingFileIsNotFound) {
  const absl::Status status = OpenStatus(Path("absent.safetensors"));
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(status), HasSubstr("absent.safetensors"));
}

TEST_F(SafetensorsTest, DirectoryIsNotARegularFile) {
  const absl::Status status = OpenStatus(dir_);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("not a regular file"));
}

// Lines of /proc/self/maps naming `path`, or -1 where /proc is not available.
int CountMappingsOf(const std::string& path) {
  std::ifstream maps("/proc/self/maps");
  if (!maps) return -1;
  int count = 0;
  for (std::string line; std::getline(maps, line);) count += line.find(path) != std::string::npos;
  return count;
}

int CountOpenFds() {
  std::error_code error;
  std::filesystem::directory_iterator it("/proc/self/fd", error);
  if (error) return -1;
  int count = 0;
  for (; it != std::filesystem::directory_iterator(); it.increment(error)) ++count;
  return count;
}

TEST_F(SafetensorsTest, ErrorAfterMappingReleasesMappingAndDescriptor) {
  const std::string path = WriteRawHeader("model.safetensors", "{not json");
  const int fds_before = CountOpenFds();
  if (fds_before < 0 || CountMappingsOf(path) < 0) GTEST_SKIP() << "no /proc/self";
  EXPECT_FALSE(OpenStatus(path).ok());
  EXPECT_FALSE(OpenStatus(WriteFile("short.safetensors", "abc")).ok());
  EXPECT_FALSE(OpenStatus(dir_).ok());
  EXPECT_EQ(CountMappingsOf(path), 0);
  EXPECT_EQ(CountOpenFds(), fds_before);

  const std::string good = WriteRawHeader("good.safetensors", "{}");
  {
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(good);
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_EQ(CountMappingsOf(good), 1);
    EXPECT_EQ(CountOpenFds(), fds_before);  // the mapping outlives the descriptor
  }
  EXPECT_EQ(CountMappingsOf(good), 0);
}

// --- Checkpoint ---

TEST_F(SafetensorsTest, CheckpointFromSingleFile) {
  const std::vector<float> w = {1, 2, 3, 4, 5, 6};
  WriteFile("model.safetensors", SafetensorsWriter().Add("w", "F32", {2, 3}, Bytes(w)).Serialize());
  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(dir_);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ((*checkpoint)->num_tensors(), 1u);
  EXPECT_TRUE((*checkpoint)->Contains("w"));
  absl::StatusOr<const TensorRef*> found = (*checkpoint)->FindWithShape("w", {2, 3});
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(std::memcmp((*found)->data, w.data(), (*found)->byte_size), 0);
}

TEST_F(SafetensorsTest, FindMissingTensorIsNotFound) {
  WriteFile("model.safetensors",
            SafetensorsWriter().Add("w", "F32", {1}, std::string(4, '\0')).Serialize());
  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(dir_);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  const absl::Status status = (*checkpoint)->Find("lm_head.weight").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(status),
              HasSubstr("tensor 'lm_head.weight' not found in checkpoint " + dir_));
}

TEST_F(SafetensorsTest, FindWithShapeMismatch) {
  WriteFile(
      "model.safetensors",
      SafetensorsWriter().Add("w", "BF16", {96, 997}, std::string(96 * 997 * 2, '\0')).Serialize());
  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(dir_);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  const absl::Status status = (*checkpoint)->FindWithShape("w", {997, 96}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("tensor 'w'"));
  EXPECT_THAT(Message(status), HasSubstr("has shape [96, 997], expected [997, 96]"));
  EXPECT_EQ((*checkpoint)->FindWithShape("absent", {1}).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(SafetensorsTest, MissingModelFileIsNotFound) {
  const absl::Status status = Checkpoint::Open(dir_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(status), HasSubstr(dir_));
  EXPECT_THAT(Message(status), HasSubstr("model.safetensors.index.json"));
  EXPECT_THAT(Message(status), HasSubstr("nor model.safetensors"));
}

TEST_F(SafetensorsTest, MissingModelDirectoryIsNotFound) {
  EXPECT_EQ(Checkpoint::Open(Path("no_such_dir")).status().code(), absl::StatusCode::kNotFound);
}

class ShardedCheckpointTest : public SafetensorsTest {
 protected:
  void WriteIndex(const Json& weight_map) {
    WriteFile("model.safetensors.index.json",
              Json{{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}.dump());
  }
  void WriteTwoShards() {
    WriteFile("model-00001-of-00002.safetensors",
              SafetensorsWriter()
                  .Add("embed", "BF16", {4, 2}, Bytes(std::vector<uint16_t>(8, 0x3f80)))
                  .Add("norm", "F32", {2}, Bytes(std::vector<float>{0.5f, 2.0f}))
                  .Serialize());
    WriteFile("model-00002-of-00002.safetensors",
              SafetensorsWriter()
                  .Add("lm_head", "F16", {2, 4}, Bytes(std::vector<uint16_t>(8, 0x4000)))
                  .Serialize());
  }
};

TEST_F(ShardedCheckpointTest, LoadsThroughIndex) {
  WriteTwoShards();
  WriteIndex({{"embed", "model-00001-of-00002.safetensors"},
              {"norm", "model-00001-of-00002.safetensors"},
              {"lm_head", "model-00002-of-00002.safetensors"}});
  // The index wins over a stale single file next to it.
  WriteFile("model.safetensors", "garbage");

  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(dir_ + "/");
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ((*checkpoint)->num_tensors(), 3u);

  absl::StatusOr<const TensorRef*> norm = (*checkpoint)->FindWithShape("norm", {2});
  ASSERT_TRUE(norm.ok()) << norm.status();
  std::vector<float> norm_values(2);
  ConvertToFloat((*norm)->dtype, (*norm)->data, 2, norm_values.data());
  EXPECT_EQ(norm_values, (std::vector<float>{0.5f, 2.0f}));

  absl::StatusOr<const TensorRef*> lm_head = (*checkpoint)->FindWithShape("lm_head", {2, 4});
  ASSERT_TRUE(lm_head.ok()) << lm_head.status();
  EXPECT_EQ((*lm_head)->dtype, DType::kF16);
  std::vector<float> head_values(8);
  ConvertToFloat((*lm_head)->dtype, (*lm_head)->data, 8, head_values.data());
  EXPECT_EQ(head_values, std::vector<float>(8, 2.0f));

  absl::StatusOr<const TensorRef*> embed = (*checkpoint)->Find("embed");
  ASSERT_TRUE(embed.ok()) << embed.status();
  EXPECT_EQ((*embed)->dtype, DType::kBF16);
}

TEST_F(ShardedCheckpointTest, MissingShard) {
  WriteTwoShards();
  WriteIndex({{"embed", "model-00001-of-00002.safetensors"},
              {"extra", "model-00003-of-00003.safetensors"}});
  const absl::Status status = Checkpoint::Open(dir_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(status), HasSubstr("shard 'model-00003-of-00003.safetensors' listed in"));
}

TEST_F(ShardedCheckpointTest, TensorAbsentFromItsShard) {
  WriteTwoShards();
  WriteIndex({{"embed", "model-00001-of-00002.safetensors"},
              {"lm_head", "model-00001-of-00002.safetensors"}});
  const absl::Status status = Checkpoint::Open(dir_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status),
              HasSubstr("places tensor 'lm_head' in shard 'model-00001-of-00002.safetensors', "
                        "but that shard has no tensor of that name"));
}

TEST_F(ShardedCheckpointTest, ShardNameWithDotDot) {
  WriteTwoShards();
  WriteIndex({{"embed", "../model-00001-of-00002.safetensors"}});
  const absl::Status status = Checkpoint::Open(dir_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status),
              HasSubstr("shard '../model-00001-of-00002.safetensors' of tensor 'embed' must be a "
                        "plain file name"));

  WriteIndex({{"embed", ".."}});
  EXPECT_THAT(Message(Checkpoint::Open(dir_).status()), HasSubstr("plain file name"));
  WriteIndex({{"embed", "sub/shard.safetensors"}});
  EXPECT_THAT(Message(Checkpoint::Open(dir_).status()), HasSubstr("plain file name"));
}

TEST_F(ShardedCheckpointTest, TensorInTwoShards) {
  WriteTwoShards();
  WriteFile("model-00002-of-00002.safetensors",
            SafetensorsWriter().Add("norm", "F32", {1}, std::string(4, '\0')).Serialize());
  WriteIndex({{"embed", "model-00001-of-00002.safetensors"},
              {"norm", "model-00002-of-00002.safetensors"}});
  const absl::Status status = Checkpoint::Open(dir_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("tensor 'norm' is in two shards"));
}

TEST_F(ShardedCheckpointTest, CorruptShardNamesTheShard) {
  WriteTwoShards();
  WriteFile("model-00002-of-00002.safetensors", "abc");
  WriteIndex({{"embed", "model-00001-of-00002.safetensors"},
              {"lm_head", "model-00002-of-00002.safetensors"}});
  const absl::Status status = Checkpoint::Open(dir_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("shard 'model-00002-of-00002.safetensors'"));
  EXPECT_THAT(Message(status), HasSubstr("truncated header"));
}

TEST_F(ShardedCheckpointTest, IndexWithoutWeightMapOrNotJson) {
  WriteFile("model.safetensors.index.json", R"({"metadata": {}})");
  absl::Status status = Checkpoint::Open(dir_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("'weight_map' object"));

  WriteFile("model.safetensors.index.json", "{\"weight_map\": ");
  status = Checkpoint::Open(dir_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr("not valid JSON"));

  WriteIndex(Json::object());
  EXPECT_THAT(Message(Checkpoint::Open(dir_).status()), HasSubstr("weight_map is empty"));

  WriteIndex({{"embed", 7}});
  EXPECT_THAT(Message(Checkpoint::Open(dir_).status()),
              HasSubstr("weight_map entry for tensor 'embed' must be a shard file name"));
}

}  // namespace
}  // namespace sculpt
