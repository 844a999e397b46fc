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
  flags.Add("threads", "N", "0", "CPU threads (0 = all cores)");
  flags.Add("json", "", "", "print one JSON object instead of plain text");
  flags.Add("events", "", "", "with --json: also one JSON line per step before the result");
  flags.Add("live", "", "", "redraw the canvas in the terminal after every step");
  flags.Add("log-level", "LEVEL", "warn", "trace, debug, info, warn, error or off");
  flags.Add("help", "", "", "show this help");
  return flags;
}

absl::StatusOr<GenerationParams> ReadParams(const FlagSet& flags) {
  GenerationParams params;
  constexpr int64_t kMaxLength = 1 << 20;
  SCULPT_ASSIGN_OR_RETURN(params.gen_length, flags.GetIntInRange("gen-length", 1, kMaxLength));
  const bool infill = flags.Has("infill");
  params.steps = infill ? 0 : params.gen_length;
  params.block_length = infill ? 0 : params.gen_length;
  if (flags.Has("steps")) {
    SCULPT_ASSIGN_OR_RETURN(params.steps, flags.GetIntInRange("steps", 1, kMaxLength));
  }
  if (flags.Has("block-length")) {
    SCULPT_ASSIGN_OR_RETURN(params.block_length,
                            flags.GetIntInRange("block-length", 1, kMaxLength));
  }
  SCULPT_ASSIGN_OR_RETURN(params.remasking, ParseRemasking(flags.GetString("remasking")));
  SCULPT_ASSIGN_OR_RETURN(params.temperature, flags.GetDouble("temperature"));
  SCULPT_ASSIGN_OR_RETURN(params.top_p, flags.GetDouble("top-p"));
  SCULPT_ASSIGN_OR_RETURN(params.top_k, flags.GetIntInRange("top-k", 0, 1 << 30));
  SCULPT_ASSIGN_OR_RETURN(params.alg_temp, flags.GetDouble("alg-temp"));
  SCULPT_ASSIGN_OR_RETURN(params.confidence_threshold, flags.GetDouble("confidence-threshold"));
  SCULPT_ASSIGN_OR_RETURN(params.factor, flags.GetDouble("factor"));
  SCULPT_ASSIGN_OR_RETURN(params.cfg_scale, flags.GetDouble("cfg-scale"));
  SCULPT_ASSIGN_OR_RETURN(int64_t seed, flags.GetInt("seed"));
  if (seed < 0) return absl::InvalidArgumentError(absl::StrCat("--seed must be >= 0, got ", seed));
  params.seed = static_cast<uint64_t>(seed);
  params.early_stop = flags.GetBool("early-stop");
  params.logits_eos_inf = flags.GetBool("logits-eos-inf");
  params.confidence_eos_eot_inf = flags.GetBool("confidence-eos-eot-inf");
  return params;
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
  SCULPT_ASSIGN_OR_RETURN(std::vector<int32_t> prompt, flags.GetIntList("prompt-ids"));
  SCULPT_ASSIGN_OR_RETURN(GenerationParams params, ReadParams(flags));
  SCULPT_ASSIGN_OR_RETURN(int64_t threads, flags.GetInt("threads"));
  if (threads < 0) return absl::InvalidArgumentError("--threads must be >= 0");
  SetCpuThreads(static_cast<int>(threads));

  const auto load_start = std::chrono::steady_clock::now();
  SCULPT_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend,
                          MakeBackend(BackendChoiceFromFlags(flags, model_dir)));
  auto model_or = LoadTransformer(model_dir, *backend);
  // A model that cannot be loaded is not a usage error, whatever its status code says.
  if (!model_or.ok()) return absl::DataLossError(model_or.status().message());
  std::unique_ptr<Transformer> model = std::move(*model_or);
  const ModelConfig& config = model->config();
  // The tokenizer is optional for id prompts (test models have none) and required for text.
  std::unique_ptr<Tokenizer> tokenizer;
  const bool needs_text = flags.Has("prompt") || flags.Has("infill") || flags.Has("stop");
  if (needs_text || FileExists(model_dir + "/tokenizer.json")) {
    auto loaded = Tokenizer::Load(model_dir);
    if (!loaded.ok()) return absl::DataLossError(loaded.status().message());
    tokenizer = std::move(*loaded);
  }
  params.stop_token_ids = StopTokenIds(config, tokenizer.get());

  std::vector<int32_t> infill_canvas;
  if (flags.Has("infill")) {
    SCULPT_ASSIGN_OR_RETURN(auto segments, ParseInfillTemplate(flags.GetString("infill")));
    SCULPT_ASSIGN_OR_RETURN(infill_canvas, BuildInfillCanvas(*tokenizer, config, segments));
  } else if (flags.GetBool("chat")) {
    const ChatMessage message{"user", flags.GetString("prompt")};
    SCULPT_ASSIGN_OR_RETURN(prompt, EncodeChatPrompt(*tokenizer, {&message, 1}));
  } else if (flags.Has("prompt")) {
    SCULPT_ASSIGN_OR_RETURN(prompt, tokenizer->Encode(flags.GetString("prompt")));
  }

  // Validated before the (possibly long) run so a bad flag fails at once.
  auto generation_or = flags.Has("infill") ? Generation::CreateInfill(infill_canvas, params, config)
                                           : Generation::Create(prompt, params, config);
  if (!generation_or.ok()) return generation_or.status();
  Generation& generation = *generation_or;
  if (flags.Has("stop")) {
    SCULPT_ASSIGN_OR_RETURN(StopMatcher matcher,
                            MakeStopStringMatcher(*tokenizer, flags.GetStrings("stop")));
    generation.set_stop_matcher(std::move(matcher));
  }
  const std::vector<int32_t> initial_canvas(generation.canvas().begin(), generation.canvas().end());

  const auto start = std::chrono::steady_clock::now();
  spdlog::info("loaded {} in {:.1f} ms on {} with {} threads", model_dir,
               std::chrono::duration<double, std::milli>(start - load_start).count(),
               backend->name(), CpuThreads());
  std::optional<LiveView> live;
  if (flags.GetBool("live")) {
    live.emplace(std::cout, tokenizer.get(), config.mask_token_id, generation.region_start());
  }
  const bool events = flags.GetBool("events");
  const int total_steps = generation.policy().fixed_steps() ? generation.params().steps : 0;
  const StepObserver observer = [&](const StepEvent& event, std::span<const int32_t> canvas) {
    if (live) live->Draw(event, canvas, total_steps);
    if (events) std::cout << EventJson(event).dump() << "\n" << std::flush;
  };
  SCULPT_ASSIGN_OR_RETURN(GenerationResult result, RunToCompletion(*model, generation, observer));
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
        {"prompt_tokens", flags.Has("infill") ? 0 : prompt.size()},
        {"steps", result.steps},
        {"forward_passes", result.forward_passes},
        {"finish_reason", stopped ? "stop" : "length"},
        {"elapsed_ms", elapsed_ms},
    };
    if (text) out["text"] = *text;
    if (flags.Has("infill")) {
      SCULPT_ASSIGN_OR_RETURN(auto spans, FilledSpans(tokenizer.get(), config.mask_token_id,
                                                      initial_canvas, result.canvas));
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
  if (absl::Status status = flags.Parse(args); !status.ok()) {
    std::cerr << "sculpt generate: " << status.message() << "\n";
    return 2;
  }
  if (flags.GetBool("help")) {
    std::cout << "Usage: sculpt generate --model DIR (--prompt TEXT | --prompt-ids IDS | --infill "
                 "TEMPLATE) [flags]\n\n"
                 "Runs one masked-diffusion generation and prints the answer: its text when the "
                 "model has a tokenizer.json, else its token ids.\n\nFlags:\n"
              << flags.Usage();
    return 0;
  }
  if (absl::Status status = Run(flags); !status.ok()) {
    std::cerr << "sculpt generate: " << status.message() << "\n";
    return absl::IsInvalidArgument(status) ? 2 : 1;
  }
  return 0;
}

}  // namespace sculpt
