#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cmath>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cuda/device_probe.cuh"

namespace sculpt::cuda {
namespace {

absl::Status CudaStatus(cudaError_t error, const char* what) {
  if (error == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": ", cudaGetErrorString(error)));
}

absl::Status CublasStatus(cublasStatus_t status, const char* what) {
  if (status == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": cuBLAS status ", static_cast<int>(status)));
}

struct DeviceFree {
  void operator()(void* pointer) const { cudaFree(pointer); }
};
using DevicePointer = std::unique_ptr<float, DeviceFree>;

struct CublasDestroy {
  void operator()(cublasHandle_t handle) const { cublasDestroy(handle); }
};
using CublasHandle = std::unique_ptr<std::remove_pointer_t<cublasHandle_t>, CublasDestroy>;

absl::StatusOr<DevicePointer> AllocateFloats(size_t count) {
  void* pointer = nullptr;
  const cudaError_t error = cudaMalloc(&pointer, count * sizeof(float));
  if (error != cudaSuccess) return CudaStatus(error, "cudaMalloc");
  return DevicePointer(static_cast<float*>(pointer));
}

__global__ void AffineKernel(const float* x, float* y, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = 2.0f * x[i] + 1.0f;
}

}  // namespace

int DeviceCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return count;
}

absl::StatusOr<std::string> DescribeDevice(int index) {
  cudaDeviceProp properties;
  if (auto status =
          CudaStatus(cudaGetDeviceProperties(&properties, index), "cudaGetDeviceProperties");
      !status.ok()) {
    return status;
  }
  return absl::StrCat(properties.name, ", sm_", properties.major, properties.minor, ", ",
                      properties.totalGlobalMem >> 30, " GiB");
}

absl::Status SelfTest(int index) {
  if (auto status = CudaStatus(cudaSetDevice(index), "cudaSetDevice"); !status.ok()) return status;
  constexpr int kN = 1000;
  std::vector<float> x(kN);
  for (int i = 0; i < kN; ++i) x[i] = 0.5f * static_cast<float>(i) - 7.0f;
  auto device_x = AllocateFloats(kN);
  if (!device_x.ok()) return device_x.status();
  auto device_y = AllocateFloats(kN);
  if (!device_y.ok()) return device_y.status();
  if (auto status = CudaStatus(
          cudaMemcpy(device_x->get(), x.data(), kN * sizeof(float), cudaMemcpyHostToDevice),
          "cudaMemcpy");
      !status.ok()) {
    return status;
  }
  AffineKernel<<<(kN + 255) / 256, 256>>>(device_x->get(), device_y->get(), kN);
  if (auto status = CudaStatus(cudaGetLastError(), "AffineKernel launch"); !status.ok())
    return status;
  std::vector<float> y(kN);
  if (auto status = CudaStatus(
          cudaMemcpy(y.data(), device_y->get(), kN * sizeof(float), cudaMemcpyDeviceToHost),
          "cudaMemcpy");
      !status.ok()) {
    return status;
  }
  for (int i = 0; i < kN; ++i) {
    if (y[i] != 2.0f * x[i] + 1.0f) return absl::InternalError("AffineKernel gave a wrong value");
  }

  // Column-major C[m, n] = A[m, k] * B[k, n] with cuBLAS, checked against a host loop.
  constexpr int kM = 3, kK = 5, kNCols = 7;
  std::vector<float> a(kM * kK), b(kK * kNCols), c(kM * kNCols);
  for (int i = 0; i < kM * kK; ++i) a[i] = static_cast<float>(i % 7) - 3.0f;
  for (int i = 0; i < kK * kNCols; ++i) b[i] = static_cast<float>(i % 5) * 0.5f;
  auto device_a = AllocateFloats(a.size());
  auto device_b = AllocateFloats(b.size());
  auto device_c = AllocateFloats(c.size());
  if (!device_a.ok() || !device_b.ok() || !device_c.ok()) {
    return absl::InternalError("cudaMalloc failed for the cuBLAS self-test");
  }
  cudaMemcpy(device_a->get(), a.data(), a.size() * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpy(device_b->get(), b.data(), b.size() * sizeof(float), cudaMemcpyHostToDevice);
  cublasHandle_t raw_handle = nullptr;
  if (auto status = CublasStatus(cublasCreate(&raw_handle), "cublasCreate"); !status.ok()) {
    return status;
  }
  CublasHandle handle(raw_handle);
  const float alpha = 1.0f, beta = 0.0f;
  if (auto status = CublasStatus(
          cublasSgemm(handle.get(), CUBLAS_OP_N, CUBLAS_OP_N, kM, kNCols, kK, &alpha,
                      device_a->get(), kM, device_b->get(), kK, &beta, device_c->get(), kM),
          "cublasSgemm");
      !status.ok()) {
    return status;
  }
  if (auto status = CudaStatus(
          cudaMemcpy(c.data(), device_c->get(), c.size() * sizeof(float), cudaMemcpyDeviceToHost),
          "cudaMemcpy");
      !status.ok()) {
    return status;
  }
  for (int col = 0; col < kNCols; ++col) {
    for (int row = 0; row < kM; ++row) {
      float expected = 0.0f;
      for (int i = 0; i < kK; ++i) expected += a[i * kM + row] * b[col * kK + i];
      if (std::fabs(c[col * kM + row] - expected) > 1e-4f) {
        return absl::InternalError("cublasSgemm gave a wrong value");
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace sculpt::cuda
