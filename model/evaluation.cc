#include "model/evaluation.h"

#include <algorithm>
#include <numeric>
#include <optional>

#include "common/rng.h"
#include "common/status.h"
#include "model/denoiser.h"
#include "model/kv_cache.h"

namespace sculpt {
namespace {

// The RNG "step" of the window sample's draws; hidden positions use the window's index there.
constexpr uint32_t kWindowOrderStep = 0xFFFFFFFFu;

// Which positions of a window are hidden: the `count` lowest draws.
std::vector<int32_t> HiddenPositions(uint64_t seed, uint32_t window_index, int length, int count) {
  std::vector<double> draws(length);
  for (int i = 0; i < length; ++i) {
    draws[i] =
        UniformOpen01(seed, window_index, static_cast<uint32_t>(i), 0, RngStream::kRandomRemasking);
  }
  std::vector<int32_t> order(length);
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + count, order.end(),
                    [&](int32_t a, int32_t b) { return draws[a] < draws[b]; });
  order.resize(count);
  std::sort(order.begin(), order.end());
  return order;
}

}  // namespace

absl::StatusOr<std::vector<MaskedAccuracy>> EvaluateMaskedAccuracy(
    Transformer& model, const std::vector<std::vector<int32_t>>& documents,
    std::span<const double> ratios, int32_t baseline_token, int window, uint64_t seed,
    int64_t max_tokens) {
  const ModelConfig& config = model.config();
  // Every window of every document, then a seeded random sample of them up to `max_tokens`:
  // taking the first documents in order would let whichever files sort first (in the shipped
  // split, tables of character codes) decide the figure.
  std::vector<std::vector<int32_t>> all_windows;
  for (const auto& document : documents) {
    for (size_t start = 0; start < document.size(); start += window) {
      const size_t end = std::min(document.size(), start + static_cast<size_t>(window));
      all_windows.emplace_back(document.begin() + start, document.begin() + end);
    }
  }
  std::vector<double> keys(all_windows.size());
  for (size_t w = 0; w < all_windows.size(); ++w) {
    keys[w] = UniformOpen01(seed, kWindowOrderStep, static_cast<uint32_t>(w), 0,
                            RngStream::kRandomRemasking);
  }
  std::vector<size_t> order(all_windows.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return keys[a] < keys[b]; });
  std::vector<std::vector<int32_t>> windows;
  int64_t total = 0;
  for (size_t w : order) {
    if (total >= max_tokens) break;
    total += static_cast<int64_t>(all_windows[w].size());
    windows.push_back(std::move(all_windows[w]));
  }
  constexpr size_t kWindowsPerForward = 8;
  std::vector<MaskedAccuracy> results;
  for (double ratio : ratios) {
    MaskedAccuracy accuracy{.ratio = ratio};
    for (size_t first = 0; first < windows.size(); first += kWindowsPerForward) {
      const size_t last = std::min(windows.size(), first + kWindowsPerForward);
      std::vector<std::vector<int32_t>> inputs, hidden, rows;
      for (size_t w = first; w < last; ++w) {
        const int length = static_cast<int>(windows[w].size());
        const int count = std::max(1, static_cast<int>(ratio * length));
        hidden.push_back(HiddenPositions(seed, static_cast<uint32_t>(w), length, count));
        inputs.push_back(windows[w]);
        for (int32_t position : hidden.back()) inputs.back()[position] = config.mask_token_id;
        rows.push_back(hidden.back());
        if (config.shifted_predictions()) {
          for (int32_t& row : rows.back()) row = std::max(row - 1, 0);
        }
      }
      std::vector<SequenceInput> batch;
      for (size_t i = 0; i < inputs.size(); ++i) batch.push_back({inputs[i], rows[i]});
      SCULPT_ASSIGN_OR_RETURN(TensorView logits, model.Forward(batch));
      std::vector<float> host(static_cast<size_t>(logits.num_elements()));
      SCULPT_RETURN_IF_ERROR(
          model.backend().CopyToHost(host.data(), logits.data, logits.byte_size()));
      int64_t row = 0;
      for (size_t i = 0; i < inputs.size(); ++i) {
        for (int32_t position : hidden[i]) {
          const float* scores = host.data() + row * logits.cols;
          const int32_t predicted =
              static_cast<int32_t>(std::max_element(scores, scores + logits.cols) - scores);
          const int32_t truth = windows[first + i][position];
          accuracy.correct += predicted == truth;
          accuracy.baseline_correct += baseline_token == truth;
          ++accuracy.masked;
          ++row;
        }
      }
    }
    results.push_back(accuracy);
  }
  return results;
}

absl::StatusOr<InfillCase> MakeInfillCase(const Tokenizer& tokenizer, const std::string& text,
                                          size_t hidden_begin, size_t hidden_end, int32_t bos) {
  SCULPT_ASSIGN_OR_RETURN(auto ids, tokenizer.Encode(text, false));
  InfillCase infill;
  if (bos >= 0) infill.prefix.push_back(bos);
  size_t offset = 0;
  for (int32_t id : ids) {
    SCULPT_ASSIGN_OR_RETURN(std::string bytes, tokenizer.TokenBytes(id));
    const size_t token_end = offset + bytes.size();
    if (token_end <= hidden_begin) {
      infill.prefix.push_back(id);
    } else if (offset >= hidden_end) {
      infill.suffix.push_back(id);
    } else {
      infill.middle.push_back(id);
    }
    offset = token_end;
  }
  if (offset != text.size()) {
    return absl::InternalError("the tokenizer's tokens do not spell the text's bytes");
  }
  return infill;
}

absl::StatusOr<InfillScore> EvaluateInfill(Transformer& model, std::span<const InfillCase> cases,
                                           const GenerationRequest& settings, int batch_size) {
  const ModelConfig& config = model.config();
  InfillScore score;
  Denoiser denoiser(model);
  for (size_t first = 0; first < cases.size(); first += batch_size) {
    const size_t last = std::min(cases.size(), first + static_cast<size_t>(batch_size));
    std::vector<Generation> generations;
    for (size_t i = first; i < last; ++i) {
      const InfillCase& infill = cases[i];
      GenerationRequest request = settings;
      std::vector<int32_t>& canvas = request.infill_ids.emplace(infill.prefix);
      canvas.insert(canvas.end(), infill.middle.size(), config.mask_token_id);
      canvas.insert(canvas.end(), infill.suffix.begin(), infill.suffix.end());
      if (request.block_length && !request.steps) {
        // As many steps in every block as the block with the most masks has masks.
        const auto block = static_cast<size_t>(*request.block_length);
        int64_t most_masks = 0;
        for (size_t begin = 0; begin < canvas.size(); begin += block) {
          const size_t end = std::min(canvas.size(), begin + block);
          most_masks = std::max<int64_t>(
              most_masks,
              std::count(canvas.begin() + static_cast<std::ptrdiff_t>(begin),
                         canvas.begin() + static_cast<std::ptrdiff_t>(end), config.mask_token_id));
        }
        request.steps = most_masks * static_cast<int64_t>((canvas.size() + block - 1) / block);
      }
      SCULPT_ASSIGN_OR_RETURN(BuiltGeneration built,
                              BuildGeneration(request, {config, nullptr, std::nullopt, "eval"}));
      generations.push_back(std::move(built.generation));
    }
    std::vector<Generation*> batch;
    for (Generation& generation : generations) batch.push_back(&generation);
    SCULPT_RETURN_IF_ERROR(model.Reserve(WorkspaceFor(batch)));
    // With a cache, the batch shares the whole arena, grown to its needs.
    int64_t cache_rows = 0;
    for (const Generation& generation : generations) {
      cache_rows += generation.kv_cache_rows_needed();
    }
    std::optional<KvRowAllocator> arena;
    if (cache_rows > 0) {
      if (model.kv_cache_rows() < cache_rows) {
        SCULPT_RETURN_IF_ERROR(model.ReserveKvCache(cache_rows));
      }
      arena.emplace(model.kv_cache_rows());
      for (Generation& generation : generations) {
        const int32_t rows = generation.kv_cache_rows_needed();
        if (rows > 0) generation.AttachKvCache(KvCacheLease(&*arena, *arena->Allocate(rows)));
      }
    }
    const absl::Status status = [&]() -> absl::Status {
      while (std::any_of(generations.begin(), generations.end(),
                         [](const Generation& g) { return !g.finished(); })) {
        SCULPT_RETURN_IF_ERROR(denoiser.Step(batch).status());
      }
      return absl::OkStatus();
    }();
    // Before the allocator the leases come from goes.
    for (Generation& generation : generations) generation.ReleaseKvCache();
    SCULPT_RETURN_IF_ERROR(status);
    for (size_t i = 0; i < generations.size(); ++i) {
      const InfillCase& infill = cases[first + i];
      const auto canvas = generations[i].canvas();
      int correct = 0;
      for (size_t j = 0; j < infill.middle.size(); ++j) {
        correct += canvas[infill.prefix.size() + j] == infill.middle[j];
      }
      ++score.cases;
      score.exact += correct == static_cast<int>(infill.middle.size());
      score.tokens += static_cast<int64_t>(infill.middle.size());
      score.correct_tokens += correct;
      score.steps += generations[i].steps_run();
    }
  }
  return score;
}

}  // namespace sculpt
