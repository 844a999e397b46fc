// --device and --dtype: what each spelling gives on this machine, and the errors that say what
// to pass.
#include "server/device.h"

#include <gtest/gtest.h>

#include "server/commands.h"
#include "tests/support/test_data.h"

namespace sculpt {
namespace {

TEST(DeviceTest, CpuAlwaysWorks) {
  auto backend = MakeBackend({.device = "cpu"});
  ASSERT_TRUE(backend.ok()) << backend.status();
  EXPECT_EQ((*backend)->name(), "cpu (fp32 weights)");
}

TEST(DeviceTest, AutoFallsBackToTheCpuWithoutAGpu) {
  auto backend = MakeBackend({.device = "auto"});
  ASSERT_TRUE(backend.ok()) << backend.status();
  EXPECT_FALSE((*backend)->name().empty());
}

TEST(DeviceTest, MisspelledDevicesAreUsageErrors) {
  for (const char* device : {"gpu", "cuda:", "cuda:x", "cuda:-1", "CPU", ""}) {
    auto backend = MakeBackend({.device = device});
    ASSERT_FALSE(backend.ok()) << device;
    EXPECT_EQ(backend.status().code(), absl::StatusCode::kInvalidArgument) << device;
    EXPECT_NE(backend.status().message().find("--device"), std::string::npos);
  }
}

TEST(DeviceTest, AbsentGpuIsAFailedPrecondition) {
  // No machine has device 4096: built with CUDA it is missing, built without it CUDA is.
  auto backend = MakeBackend({.device = "cuda:4096"});
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), absl::StatusCode::kFailedPrecondition) << backend.status();
  EXPECT_NE(backend.status().message().find("--device cpu"), std::string::npos);
}

TEST(DeviceTest, AutoDTypeKeepsTheCheckpointsDType) {
  const auto weight_dtype = [](const std::string& model, const std::string& dtype) {
    auto backend =
        MakeBackend({.device = "cpu", .dtype = dtype, .model_dir = testing::TestModelDir(model)});
    EXPECT_TRUE(backend.ok()) << backend.status();
    return backend.ok() ? (*backend)->weight_dtype() : DType::kF16;
  };
  EXPECT_EQ(weight_dtype("tiny-llada", "auto"), DType::kF32);
  EXPECT_EQ(weight_dtype("tiny-llada-bf16", "auto"), DType::kBF16);
  EXPECT_EQ(weight_dtype("tiny-llada-bf16", "float32"), DType::kF32);
  EXPECT_EQ(weight_dtype("tiny-llada", "bfloat16"), DType::kBF16);
}

TEST(DeviceTest, Int8WeightsAreACpuOption) {
  auto backend = MakeBackend({.device = "cpu", .weights = "int8"});
  ASSERT_TRUE(backend.ok()) << backend.status();
  EXPECT_NE((*backend)->name().find("int8"), std::string::npos) << (*backend)->name();
  for (const char* weights : {"int4", "INT8", ""}) {
    auto bad = MakeBackend({.device = "cpu", .weights = weights});
    ASSERT_FALSE(bad.ok()) << weights;
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(bad.status().message().find("--weights"), std::string::npos);
  }
}

TEST(DeviceTest, MisspelledDTypesAreUsageErrors) {
  for (const char* dtype : {"bf32", "bf16", "half", "int8", ""}) {
    auto backend = MakeBackend({.device = "cpu", .dtype = dtype});
    ASSERT_FALSE(backend.ok()) << dtype;
    EXPECT_EQ(backend.status().code(), absl::StatusCode::kInvalidArgument) << dtype;
    EXPECT_NE(backend.status().message().find("--dtype"), std::string::npos);
  }
}

// Exit codes by meaning: 2 only for what the caller must fix, 1 for a model that cannot be
// loaded whatever its status code (an invalid config.json is INVALID_ARGUMENT, no flag is wrong).
TEST(DeviceTest, ExitCodesSeparateUsageFromLoadFailures) {
  EXPECT_EQ(ExitCodeFor(absl::InvalidArgumentError("--steps must be >= 1")), 2);
  EXPECT_EQ(ExitCodeFor(NotUsage(absl::InvalidArgumentError("config.json: bad field"))), 1);
  EXPECT_EQ(ExitCodeFor(absl::NotFoundError("no config.json")), 1);
  EXPECT_EQ(ExitCodeFor(NotUsage(absl::DataLossError("truncated"))), 1);
  EXPECT_EQ(NotUsage(absl::InvalidArgumentError("x")).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sculpt
