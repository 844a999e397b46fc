// GenerationParams from a golden fixture case (tests/golden/data/*.json); fields a fixture
// omits keep their defaults.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/generation.h"

namespace sculpt::testing {

inline GenerationParams ParamsFromFixture(const nlohmann::json& c) {
  GenerationParams params;
  params.gen_length = c.at("gen_length");
  params.steps = c.at("steps");
  params.block_length = c.at("block_length");
  params.remasking = *ParseRemasking(c.at("remasking").get<std::string>());
  params.temperature = c.at("temperature");
  params.cfg_scale = c.at("cfg_scale");
  params.seed = c.at("seed");
  params.top_p = c.value("top_p", params.top_p);
  params.top_k = c.value("top_k", params.top_k);
  params.alg_temp = c.value("alg_temp", params.alg_temp);
  params.confidence_threshold = c.value("confidence_threshold", params.confidence_threshold);
  params.factor = c.value("factor", params.factor);
  params.early_stop = c.value("early_stop", false);
  params.logits_eos_inf = c.value("logits_eos_inf", false);
  params.confidence_eos_eot_inf = c.value("confidence_eos_eot_inf", false);
  params.stop_token_ids = c.value("stop_ids", std::vector<int32_t>());
  params.cache = *ParseKvCacheMode(c.value("cache", std::string("none")));
  if (c.contains("edit_threshold") && !c["edit_threshold"].is_null()) {
    params.edit_threshold = c["edit_threshold"].get<double>();
  }
  params.max_edit_steps = c.value("max_edit_steps", params.max_edit_steps);
  params.remdm_remask = c.value("remdm_remask", params.remdm_remask);
  params.remdm_start = c.value("remdm_start", params.remdm_start);
  params.remdm_end = c.value("remdm_end", params.remdm_end);
  return params;
}

}  // namespace sculpt::testing
