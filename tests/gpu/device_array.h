// Test support for the gpu tests: a device copy of a host vector (RAII), and the visible skip on
// machines without a GPU.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <vector>

#include "cuda/device_probe.cuh"

#define SCULPT_SKIP_WITHOUT_GPU()                                                             \
  do {                                                                                        \
    if (::sculpt::cuda::DeviceCount() == 0) GTEST_SKIP() << "no CUDA device on this machine"; \
  } while (false)

namespace sculpt::testing {

// Device memory holding `size` elements of T; aborts the test on a CUDA error.
template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(size_t size) : size_(size) {
    const cudaError_t error =
        cudaMalloc(reinterpret_cast<void**>(&data_), std::max<size_t>(1, size) * sizeof(T));
    EXPECT_EQ(error, cudaSuccess) << cudaGetErrorString(error);
  }
  explicit DeviceArray(const std::vector<T>& host) : DeviceArray(host.size()) {
    const cudaError_t error =
        cudaMemcpy(data_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice);
    EXPECT_EQ(error, cudaSuccess) << cudaGetErrorString(error);
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() { cudaFree(data_); }

  T* data() const { return data_; }
  size_t size() const { return size_; }

  // Waits for the device, then copies back.
  std::vector<T> ToHost() const {
    std::vector<T> host(size_);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const cudaError_t error =
        cudaMemcpy(host.data(), data_, size_ * sizeof(T), cudaMemcpyDeviceToHost);
    EXPECT_EQ(error, cudaSuccess) << cudaGetErrorString(error);
    return host;
  }

 private:
  T* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace sculpt::testing
