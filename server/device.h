// Which backend a command runs on (--device): the CPU, a CUDA GPU, or whichever is there.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "model/backend.h"

namespace sculpt {

// "auto" (a GPU when this binary has CUDA and the machine has a device, else the CPU, with a log
// line), "cpu", "cuda" (= cuda:0) or "cuda:N". Errors say what to pass instead.
absl::StatusOr<std::unique_ptr<Backend>> MakeBackendForDevice(const std::string& device);

// Whether this binary was built with the CUDA backend.
bool BuiltWithCuda();

}  // namespace sculpt
