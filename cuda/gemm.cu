#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "cuda/convert.cuh"
#include "cuda/cuda_check.cuh"
#include "cuda/gemm.cuh"

namespace sculpt::cuda {

absl::Status LaunchGemm(const GemmKernelParams& params, cublasHandle_t cublas,
                        cudaStream_t stream) {
  if (params.m == 0 || params.n == 0) return absl::OkStatus();
  constexpr int64_t kMax = std::numeric_limits<int>::max();
  if (params.m > kMax || params.n > kMax || params.k > kMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("gemm: ", params.m, "x", params.n, "x", params.k, " exceeds cuBLAS's int"));
  }
  const int m = static_cast<int>(params.m);
  const int n = static_cast<int>(params.n);
  const int k = static_cast<int>(params.k);
  const float alpha = 1.0f;
  const float beta = 0.0f;
  // Row-major out[m, n] is column-major out^T[n, m] = weight[n, k] * x^T[k, m]: the weight,
  // column-major [k, n], is transposed; x, column-major [k, m], is not.
  switch (params.weight_dtype) {
    case DType::kF32:
      SCULPT_CUBLAS_RETURN_IF_ERROR(cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha,
                                                 params.weight, CUDA_R_32F, k, params.x, CUDA_R_32F,
                                                 k, &beta, params.out, CUDA_R_32F, n,
                                                 CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_GEMM_DEFAULT));
      return absl::OkStatus();
    case DType::kBF16: {
      if (params.x_scratch == nullptr) {
        return absl::InvalidArgumentError("gemm: bf16 weights need a bf16 scratch for x");
      }
      const absl::Status converted = LaunchConvert(
          {params.x, DType::kF32, params.x_scratch, DType::kBF16, params.m * params.k}, stream);
      if (!converted.ok()) return converted;
      SCULPT_CUBLAS_RETURN_IF_ERROR(cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha,
                                                 params.weight, CUDA_R_16BF, k, params.x_scratch,
                                                 CUDA_R_16BF, k, &beta, params.out, CUDA_R_32F, n,
                                                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      return absl::OkStatus();
    }
    case DType::kF16:
      break;
  }
  return absl::InvalidArgumentError(absl::StrCat("gemm: weights must be F32 or BF16, got ",
                                                 std::string(DTypeName(params.weight_dtype))));
}

}  // namespace sculpt::cuda
