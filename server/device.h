// Which backend a command runs on (--device) and the dtype its weights are kept in (--dtype).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "model/backend.h"
#include "server/flags.h"

namespace sculpt {

struct BackendChoice {
  // "auto" (a GPU when this binary has CUDA and the machine has a device, else the CPU, with a
  // log line), "cpu", "cuda" (= cuda:0) or "cuda:N".
  std::string device = "auto";
  // "auto": on the CPU the checkpoint's own dtype (fp16 kept as bf16), on a GPU bf16;
  // "bfloat16"; "float32" (exact against fp32 references).
  std::string dtype = "auto";
  // "auto": GEMM weights in `dtype` like the others; "int8": the projections and LM head
  // quantized to int8 at load, per output channel (CPU only; docs/cpu.md).
  std::string weights = "auto";
  // The model to be loaded, whose checkpoint "auto" reads.
  std::string model_dir;
};

// Errors say what to pass instead.
absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(const BackendChoice& choice);

// The --device, --dtype and --weights flags every command that runs a model takes, and their
// reading.
void AddBackendFlags(FlagSet& flags);
BackendChoice BackendChoiceFromFlags(const FlagSet& flags, const std::string& model_dir);

// --threads, the CPU threads a command runs with, and its one reading: an integer in
// [0, 4096] (0 = all cores), applied to the process (SetCpuThreads).
void AddThreadsFlag(FlagSet& flags);
absl::Status ApplyThreadsFlag(const FlagSet& flags);

// Whether this binary was built with the CUDA backend.
bool BuiltWithCuda();

}  // namespace sculpt
