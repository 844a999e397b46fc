// Paths and loaders for the committed test models and golden fixtures.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "cpu/cpu_backend.h"
#include "model/transformer.h"

namespace sculpt::testing {

// The checkout the tests were built from; SCULPT_SOURCE_DIR in the environment overrides it, for
// test binaries packed and run in another copy of the repository (bench/device/run.sh).
inline std::string SourcePath(const std::string& relative) {
  const char* moved = std::getenv("SCULPT_SOURCE_DIR");
  return std::string(moved != nullptr && *moved != '\0' ? moved : SCULPT_SOURCE_DIR) + "/" +
         relative;
}

inline std::string TestModelDir(const std::string& name) {
  return SourcePath("tests/models/" + name);
}

inline nlohmann::json LoadJsonFixture(const std::string& relative) {
  auto text = ReadFileToString(SourcePath(relative));
  EXPECT_TRUE(text.ok()) << text.status();
  if (!text.ok()) return nlohmann::json();
  return nlohmann::json::parse(*text);
}

// A CPU backend and a loaded model, kept alive together.
struct LoadedModel {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Transformer> model;
};

// fp32 weights by default; `options` picks bf16 or int8 GEMM weights (docs/cpu.md).
inline LoadedModel LoadTestModel(const std::string& name, const CpuBackendOptions& options = {}) {
  LoadedModel loaded;
  auto backend = MakeCpuBackend(options);
  EXPECT_TRUE(backend.ok()) << backend.status();
  if (!backend.ok()) return loaded;
  loaded.backend = std::move(*backend);
  auto model = LoadTransformer(TestModelDir(name), *loaded.backend);
  EXPECT_TRUE(model.ok()) << model.status();
  if (model.ok()) loaded.model = std::move(*model);
  return loaded;
}

// The test models a fixture names, each loaded once (fp32 weights).
class TestModels {
 public:
  Transformer* Get(const std::string& name) {
    if (!models_.count(name)) models_[name] = LoadTestModel(name);
    return models_[name].model.get();
  }

 private:
  std::map<std::string, LoadedModel> models_;
};

}  // namespace sculpt::testing
