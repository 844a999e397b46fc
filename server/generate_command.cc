// `sculpt generate`: one masked-diffusion generation from the command line, with every
// decoding policy, infilling, a live view and per-step JSON events.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status.h"
#include "cpu/threads.h"
#include "model/chat_template.h"
#include "model/denoiser.h"
#include "model/generation_request.h"
#include "model/text_io.h"
#include "model/tokenizer.h"
#include "server/commands.h"
#include "server/device.h"
#include "server/flags.h"
#include "server/live_view.h"
#include "server/served_model.h"

namespace sculpt {
namespace {

using nlohmann::json;

FlagSet GenerateFlags() {
  FlagSet flags;
  flags.Add("model", "DIR", "",
            "model directory (config.json, model.safetensors) (default: the "
            "shipped models/sculpt-code-mini)");
  flags.Add("prompt", "TEXT", "", "prompt text, encoded with the model's tokenizer.json");
  flags.Add("prompt-ids", "IDS", "", "prompt as comma-separated token ids, e.g. 1,2,3");
  flags.Add("chat", "", "", "send --prompt as a user message through the model's chat format");
  flags.Add("infill", "TEMPLATE", "",
            "fill the masked spans of a template: <|mask:N|> is N masked tokens, the rest is kept");
  flags.Add("gen-length", "N", "128", "number of tokens to generate");
  flags.Add("steps", "N", "",
            "denoising steps in all; a multiple of the number of blocks (default: gen-length; "
            "with --infill, one per mask)");
  flags.Add("block-length", "N", "",
            "semi-autoregressive block length; divides gen-length (default: one block)");
  flags.Add("remasking", "POLICY", "low_confidence", std::string(RemaskingNames()));
  flags.Add("temperature", "T", "0", "0 = argmax; above 0, sampling at that temperature");
  flags.Add("top-p", "P", "1", "nucleus filter before choosing (1 = off)");
  flags.Add("top-k", "K", "0", "keep the K most likely tokens before choosing (0 = off)");
  flags.Add("alg-temp", "T", "0", "Dream policies: draw positions from softmax(confidence / T)");
  flags.Add("confidence-threshold", "C", "0.9", "threshold policy: commit every confidence >= C");
  flags.Add("factor", "F", "1", "factor policy: Fast-dLLM's dynamic factor");
  flags.Add("edit-threshold", "P", "",
            "LLaDA 2.1's editing: replace a committed token whose prediction differs with "
            "probability above P, in [0, 1) (default: off)");
  flags.Add("max-edit-steps", "N", "16", "edit-only steps after each block's own steps");
  flags.Add("remdm-remask", "N", "0",
            "ReMDM's loop: remask at most N committed tokens per step of the window (0 = off)");
  flags.Add("remdm-start", "F", "0.45", "ReMDM's window: its first step, as a fraction");
  flags.Add("remdm-end", "F", "0.95", "ReMDM's window: its end, as a fraction");
  flags.Add("cache", "MODE", "none",
            "approximate KV cache: none, prefix or dual (Fast-dLLM's; faster, and the answer may "
            "differ from none's)");
  flags.Add("cfg-scale", "S", "0",
            "classifier-free guidance scale (0 = off; > 0 doubles the forwards)");
  flags.Add("seed", "N", "0", "seed of the counter-based RNG");
  flags.Add("early-stop", "", "",
            "finish once EOS is committed with everything before it; trim there");
  flags.Add("stop", "TEXT", "", "end the answer at this string (repeatable)");
  flags.Add("logits-eos-inf", "", "", "never choose EOS/EoT");
  flags.Add("confidence-eos-eot-inf", "", "",
            "commit EOS/EoT predictions only when nothing else is left");
  AddBackendFlags(flags);
  AddThreadsFlag(flags);
  flags.Add("json", "", "", "print one JSON object instead of plain text");
  flags.Add("events", "", "", "with --json: also one JSON line per step before the result");
  flags.Add("live", "", "", "redraw the canvas in the terminal after every step");
  flags.Add("log-level", "LEVEL", "warn", "trace, debug, info, warn, error or off");
  flags.Add("help", "", "", "show this help");
  return flags;
}

// The flags as a GenerationRequest: only what was given, checked by BuildGeneration exactly as
// the server checks its requests.
absl::StatusOr<GenerationRequest> ReadRequest(const FlagSet& flags) {
  GenerationRequest request;
  if (flags.Has("prompt")) {
    if (flags.GetBool("chat")) {
      request.messages = std::vector<ChatMessage>{{"user", flags.GetString("prompt")}};
    } else {
      request.prompt = flags.GetString("prompt");
    }
  }
  if (flags.Has("prompt-ids")) {
    SCULPT_ASSIGN_OR_RETURN(request.prompt_ids, flags.GetIntList("prompt-ids"));
  }
  if (flags.Has("infill")) request.infill = flags.GetString("infill");
  const auto read_int = [&](const char* name, std::optional<int64_t>& field) -> absl::Status {
    if (flags.Has(name)) {
      SCULPT_ASSIGN_OR_RETURN(field, flags.GetInt(name));
    }
    return absl::OkStatus();
  };
  const auto read_double = [&](const char* name, std::optional<double>& field) -> absl::Status {
    if (flags.Has(name)) {
      SCULPT_ASSIGN_OR_RETURN(field, flags.GetDouble(name));
    }
    return absl::OkStatus();
  };
  SCULPT_RETURN_IF_ERROR(read_int("gen-length", request.gen_length));
  SCULPT_RETURN_IF_ERROR(read_int("steps", request.steps));
  SCULPT_RETURN_IF_ERROR(read_int("block-length", request.block_length));
  SCULPT_RETURN_IF_ERROR(read_int("top-k", request.top_k));
  if (flags.Has("remasking")) request.remasking = flags.GetString("remasking");
  if (flags.Has("cache")) request.cache = flags.GetString("cache");
  SCULPT_RETURN_IF_ERROR(read_double("temperature", request.temperature));
  SCULPT_RETURN_IF_ERROR(read_double("top-p", request.top_p));
  SCULPT_RETURN_IF_ERROR(read_double("alg-temp", request.alg_temp));
  SCULPT_RETURN_IF_ERROR(read_double("confidence-threshold", request.confidence_threshold));
  SCULPT_RETURN_IF_ERROR(read_double("factor", request.factor));
  SCULPT_RETURN_IF_ERROR(read_double("edit-threshold", request.edit_threshold));
  SCULPT_RETURN_IF_ERROR(read_int("max-edit-steps", request.max_edit_steps));
  SCULPT_RETURN_IF_ERROR(read_int("remdm-remask", request.remdm_remask));
  SCULPT_RETURN_IF_ERROR(read_double("remdm-start", request.remdm_start));
  SCULPT_RETURN_IF_ERROR(read_double("remdm-end", request.remdm_end));
  SCULPT_RETURN_IF_ERROR(read_double("cfg-scale", request.cfg_scale));
  if (flags.Has("seed")) {
    // The server's seed is unsigned: a negative one cannot be sent there either.
    SCULPT_ASSIGN_OR_RETURN(int64_t seed, flags.GetInt("seed"));
    if (seed < 0)
      return absl::InvalidArgumentError(absl::StrCat("--seed must be >= 0, got ", seed));
    request.seed = static_cast<uint64_t>(seed);
  }
  request.early_stop = flags.GetBool("early-stop");
  request.logits_eos_inf = flags.GetBool("logits-eos-inf");
  request.confidence_eos_eot_inf = flags.GetBool("confidence-eos-eot-inf");
  request.stops = flags.GetStrings("stop");
  return request;
}

json EventJson(const StepEvent& event) {
  json committed = json::array();
  for (const auto& [position, token] : event.committed) committed.push_back({position, token});
  return {{"event", "step"},
          {"step", event.step},
          {"block", event.block},
          {"committed", committed},
          {"masks_left", event.masks_left},
          {"finished", event.finished}};
}

absl::Status Run(const FlagSet& flags) {
  SCULPT_RETURN_IF_ERROR(SetupLogging(flags.GetString("log-level")));
  const std::string model_dir = flags.Has("model") ? flags.GetString("model") : DefaultModelDir();
  if (model_dir.empty()) {
    return absl::InvalidArgumentError("--model DIR is required (the default model was not found)");
  }
  const int inputs = flags.Has("prompt") + flags.Has("prompt-ids") + flags.Has("infill");
  if (inputs > 1) {
    return absl::InvalidArgumentError("give one of --prompt, --prompt-ids and --infill, not both");
  }
  if (flags.GetBool("chat") && !flags.Has("prompt")) {
    return absl::InvalidArgumentError("--chat needs --prompt TEXT");
  }
  if (flags.GetBool("events") && !flags.GetBool("json")) {
    return absl::InvalidArgumentError("--events needs --json");
  }
  SCULPT_ASSIGN_OR_RETURN(GenerationRequest request, ReadRequest(flags));
  // No input at all is an unconditional generation: an empty prompt.
  if (inputs == 0) request.prompt_ids.emplace();
  SCULPT_RETURN_IF_ERROR(ApplyThreadsFlag(flags));

  const auto load_start = std::chrono::steady_clock::now();
  SCULPT_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend,
                          MakeBackend(BackendChoiceFromFlags(flags, model_dir)));
  auto model_or = LoadServedModel(model_dir, std::move(backend));
  // A model that cannot be loaded is not a usage error, whatever its status code says.
  if (!model_or.ok()) return NotUsage(model_or.status());
  const ServedModel& served = **model_or;
  Transformer& model = *served.transformer;
  const Tokenizer* tokenizer = served.tokenizer.get();
  const ModelConfig& config = model.config();

  // Validated before the (possibly long) run so a bad flag fails at once.
  SCULPT_ASSIGN_OR_RETURN(
      BuiltGeneration built,
      BuildGeneration(request, {config, tokenizer, served.chat_format, served.name}));
  Generation& generation = built.generation;

  const auto start = std::chrono::steady_clock::now();
  spdlog::info("loaded {} in {:.1f} ms on {} with {} threads", model_dir,
               std::chrono::duration<double, std::milli>(start - load_start).count(), served.device,
               CpuThreads());
  std::optional<LiveView> live;
  if (flags.GetBool("live")) {
    live.emplace(std::cout, tokenizer, config.mask_token_id, generation.region_start());
  }
  const bool events = flags.GetBool("events");
  const int total_steps = generation.policy().fixed_steps() ? generation.params().steps : 0;
  const StepObserver observer = [&](const StepEvent& event, std::span<const int32_t> canvas) {
    if (live) live->Draw(event, canvas, total_steps);
    if (events) std::cout << EventJson(event).dump() << "\n" << std::flush;
  };
  SCULPT_ASSIGN_OR_RETURN(GenerationResult result, RunToCompletion(model, generation, observer));
  const double elapsed_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

  std::optional<std::string> text;
  if (tokenizer) {
    // Special tokens (EOS padding, end-of-turn) are not part of the answer's text.
    if (result.stop_text) {
      text = result.stop_text;
    } else {
      SCULPT_ASSIGN_OR_RETURN(text,
                              tokenizer->Decode(result.token_ids, /*skip_special_tokens=*/true));
    }
  }
  const bool stopped = result.finish_reason == FinishReason::kStop;
  if (flags.GetBool("json")) {
    json out = {
        {"model", model_dir},
        {"token_ids", result.token_ids},
        {"prompt_tokens", built.prompt_tokens},
        {"steps", result.steps},
        {"forward_passes", result.forward_passes},
        {"finish_reason", stopped ? "stop" : "length"},
        {"elapsed_ms", elapsed_ms},
    };
    if (text) out["text"] = *text;
    if (flags.Has("infill")) {
      SCULPT_ASSIGN_OR_RETURN(auto spans, FilledSpans(tokenizer, config.mask_token_id,
                                                      built.initial_canvas, result.canvas));
      json filled = json::array();
      for (const FilledSpan& span : spans) {
        filled.push_back({{"start", span.start}, {"token_ids", span.tokens}, {"text", span.text}});
      }
      out["spans"] = filled;
    }
    std::cout << out.dump(-1, ' ', false, json::error_handler_t::replace) << std::endl;
  } else if (text) {
    std::cout << *text << std::endl;
  } else {
    std::cout << absl::StrJoin(result.token_ids, ",") << std::endl;
  }
  if (!flags.GetBool("json")) {
    std::cerr << absl::StrCat(result.token_ids.size(), " tokens, ", result.steps, " steps, ",
                              result.forward_passes, " forward passes, ", elapsed_ms, " ms",
                              stopped ? ", stopped" : "", "\n");
  }
  return absl::OkStatus();
}

}  // namespace

int RunGenerateCommand(const std::vector<std::string>& args) {
  FlagSet flags = GenerateFlags();
  return RunCommand(
      "generate",
      "Usage: sculpt generate --model DIR (--prompt TEXT | --prompt-ids IDS | --infill "
      "TEMPLATE) [flags]\n\n"
      "Runs one masked-diffusion generation and prints the answer: its text when the "
      "model has a tokenizer.json, else its token ids.",
      std::move(flags), args, Run);
}

}  // namespace sculpt
