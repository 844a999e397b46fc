// --device: what each spelling gives on this machine, and the errors that say what to pass.
#include "server/device.h"

#include <gtest/gtest.h>

namespace sculpt {
namespace {

TEST(DeviceTest, CpuAlwaysWorks) {
  auto backend = MakeBackendForDevice("cpu");
  ASSERT_TRUE(backend.ok()) << backend.status();
  EXPECT_EQ((*backend)->name(), "cpu");
}

TEST(DeviceTest, AutoFallsBackToTheCpuWithoutAGpu) {
  auto backend = MakeBackendForDevice("auto");
  ASSERT_TRUE(backend.ok()) << backend.status();
  EXPECT_FALSE((*backend)->name().empty());
}

TEST(DeviceTest, MisspelledDevicesAreUsageErrors) {
  for (const char* device : {"gpu", "cuda:", "cuda:x", "cuda:-1", "CPU", ""}) {
    auto backend = MakeBackendForDevice(device);
    ASSERT_FALSE(backend.ok()) << device;
    EXPECT_EQ(backend.status().code(), absl::StatusCode::kInvalidArgument) << device;
    EXPECT_NE(backend.status().message().find("--device"), std::string::npos);
  }
}

TEST(DeviceTest, AbsentGpuIsAFailedPrecondition) {
  // No machine has device 4096: built with CUDA it is missing, built without it CUDA is.
  auto backend = MakeBackendForDevice("cuda:4096");
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), absl::StatusCode::kFailedPrecondition) << backend.status();
  EXPECT_NE(backend.status().message().find("--device cpu"), std::string::npos);
}

}  // namespace
}  // namespace sculpt
