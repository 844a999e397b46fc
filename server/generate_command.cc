// `sculpt generate`: one masked-diffusion generation from the command line.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status.h"
#include "cpu/cpu_backend.h"
#include "cpu/threads.h"
#include "model/chat_template.h"
#include "model/denoiser.h"
#include "model/tokenizer.h"
#include "server/commands.h"
#include "server/flags.h"

namespace sculpt {
namespace {

FlagSet GenerateFlags() {
  FlagSet flags;
  flags.Add("model", "DIR", "", "model directory (config.json, model.safetensors); required");
  flags.Add("prompt", "TEXT", "", "prompt text, encoded with the model's tokenizer.json");
  flags.Add("prompt-ids", "IDS", "", "prompt as comma-separated token ids, e.g. 1,2,3");
  flags.Add("chat", "", "", "send --prompt as a user message through the model's chat format");
  flags.Add("gen-length", "N", "128", "number of tokens to generate");
  flags.Add("steps", "N", "",
            "denoising steps in all; a multiple of the number of blocks "
            "(default: gen-length)");
  flags.Add("block-length", "N", "",
            "semi-autoregressive block length; divides gen-length "
            "(default: gen-length, one block)");
  flags.Add("remasking", "POLICY", "low_confidence", "low_confidence or random");
  flags.Add("temperature", "T", "0",
            "0 = argmax; above 0, Gumbel-max sampling at that temperature");
  flags.Add("cfg-scale", "S", "0",
            "classifier-free guidance scale (0 = off; > 0 doubles the forwards)");
  flags.Add("seed", "N", "0", "seed of the counter-based RNG (sampling and random remasking)");
  flags.Add("threads", "N", "0", "CPU threads (0 = all cores)");
  flags.Add("json", "", "", "print one JSON object instead of plain text");
  flags.Add("log-level", "LEVEL", "warn", "trace, debug, info, warn, error or off");
  flags.Add("help", "", "", "show this help");
  return flags;
}

absl::StatusOr<GenerationParams> ReadParams(const FlagSet& flags) {
  GenerationParams params;
  SCULPT_ASSIGN_OR_RETURN(int64_t gen_length, flags.GetInt("gen-length"));
  if (gen_length < 1 || gen_length > (1 << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--gen-length must be in [1, 1048576], got ", gen_length));
  }
  params.gen_length = static_cast<int>(gen_length);
  params.steps = params.gen_length;
  params.block_length = params.gen_length;
  if (flags.Has("steps")) {
    SCULPT_ASSIGN_OR_RETURN(int64_t steps, flags.GetInt("steps"));
    if (steps < 1 || steps > (1 << 20)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--steps must be in [1, 1048576], got ", steps));
    }
    params.steps = static_cast<int>(steps);
  }
  if (flags.Has("block-length")) {
    SCULPT_ASSIGN_OR_RETURN(int64_t block_length, flags.GetInt("block-length"));
    if (block_length < 1 || block_length > gen_length) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--block-length must be in [1, gen-length = ", gen_length, "], got ", block_length));
    }
    params.block_length = static_cast<int>(block_length);
  }
  SCULPT_ASSIGN_OR_RETURN(params.remasking, ParseRemasking(flags.GetString("remasking")));
  SCULPT_ASSIGN_OR_RETURN(params.temperature, flags.GetDouble("temperature"));
  SCULPT_ASSIGN_OR_RETURN(params.cfg_scale, flags.GetDouble("cfg-scale"));
  SCULPT_ASSIGN_OR_RETURN(int64_t seed, flags.GetInt("seed"));
  if (seed < 0) return absl::InvalidArgumentError(absl::StrCat("--seed must be >= 0, got ", seed));
  params.seed = static_cast<uint64_t>(seed);
  return params;
}

absl::Status Run(const FlagSet& flags) {
  SCULPT_RETURN_IF_ERROR(SetupLogging(flags.GetString("log-level")));
  const std::string model_dir = flags.GetString("model");
  if (model_dir.empty()) return absl::InvalidArgumentError("--model DIR is required");
  if (flags.Has("prompt") && flags.Has("prompt-ids")) {
    return absl::InvalidArgumentError("give --prompt TEXT or --prompt-ids IDS, not both");
  }
  SCULPT_ASSIGN_OR_RETURN(std::vector<int32_t> prompt, flags.GetIntList("prompt-ids"));
  SCULPT_ASSIGN_OR_RETURN(GenerationParams params, ReadParams(flags));
  // The tokenizer is optional for id prompts (test models have none) and required for text.
  std::unique_ptr<Tokenizer> tokenizer;
  if (flags.Has("prompt") || FileExists(model_dir + "/tokenizer.json")) {
    auto loaded = Tokenizer::Load(model_dir);
    if (!loaded.ok()) return absl::DataLossError(loaded.status().message());
    tokenizer = std::move(*loaded);
  }
  if (flags.GetBool("chat") && !flags.Has("prompt")) {
    return absl::InvalidArgumentError("--chat needs --prompt TEXT");
  }
  if (flags.GetBool("chat")) {
    SCULPT_ASSIGN_OR_RETURN(ChatFormat format, DetectChatFormat(tokenizer->chat_template()));
    const int32_t bos = tokenizer->special_ids().bos;
    const ChatMessage message{"user", flags.GetString("prompt")};
    SCULPT_ASSIGN_OR_RETURN(std::string text,
                            ApplyChatFormat(format, {&message, 1}, /*add_generation_prompt=*/true,
                                            bos >= 0 ? *tokenizer->IdToToken(bos) : ""));
    // The chat text carries its own special tokens, as transformers' apply_chat_template.
    SCULPT_ASSIGN_OR_RETURN(prompt, tokenizer->Encode(text, /*add_special_tokens=*/false));
  } else if (flags.Has("prompt")) {
    SCULPT_ASSIGN_OR_RETURN(prompt, tokenizer->Encode(flags.GetString("prompt")));
  }
  SCULPT_ASSIGN_OR_RETURN(int64_t threads, flags.GetInt("threads"));
  if (threads < 0) return absl::InvalidArgumentError("--threads must be >= 0");
  SetCpuThreads(static_cast<int>(threads));

  const auto load_start = std::chrono::steady_clock::now();
  auto backend = MakeCpuBackend();
  auto model_or = LoadTransformer(model_dir, *backend);
  // A model that cannot be loaded is not a usage error, whatever its status code says.
  if (!model_or.ok()) return absl::DataLossError(model_or.status().message());
  std::unique_ptr<Transformer> model = std::move(*model_or);
  // Validate before the (possibly long) run so a bad flag fails at once.
  SCULPT_RETURN_IF_ERROR(ValidateGenerationParams(params, model->config(), prompt));
  const auto start = std::chrono::steady_clock::now();
  spdlog::info("loaded {} in {:.1f} ms on {} with {} threads", model_dir,
               std::chrono::duration<double, std::milli>(start - load_start).count(),
               backend->name(), CpuThreads());
  SCULPT_ASSIGN_OR_RETURN(GenerationResult result, Generate(*model, prompt, params));
  const double elapsed_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

  std::optional<std::string> text;
  if (tokenizer) {
    // Special tokens (EOS padding, end-of-turn) are not part of the answer's text.
    SCULPT_ASSIGN_OR_RETURN(text,
                            tokenizer->Decode(result.token_ids, /*skip_special_tokens=*/true));
  }
  if (flags.GetBool("json")) {
    nlohmann::json out = {
        {"model", model_dir},
        {"token_ids", result.token_ids},
        {"prompt_tokens", prompt.size()},
        {"steps", result.steps},
        {"forward_passes", result.forward_passes},
        {"elapsed_ms", elapsed_ms},
    };
    if (text) out["text"] = *text;
    std::cout << out.dump() << std::endl;
  } else if (text) {
    std::cout << *text << std::endl;
  } else {
    std::cout << absl::StrJoin(result.token_ids, ",") << std::endl;
    std::cerr << absl::StrCat(result.token_ids.size(), " tokens, ", result.steps, " steps, ",
                              result.forward_passes, " forward passes, ", elapsed_ms, " ms\n");
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
    std::cout
        << "Usage: sculpt generate --model DIR [flags]\n\n"
           "Runs one masked-diffusion generation (LLaDA semantics) and prints the answer: its "
           "text when the model has a tokenizer.json, else its token ids.\n\nFlags:\n"
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
