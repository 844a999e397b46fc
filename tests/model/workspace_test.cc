// The step loop allocates nothing once the workspace is reserved: every heap allocation of the
// process (any thread) is counted while forwards and token choices within the reserved limits
// run, from the very first one. Allocations made by oneDNN itself are counted apart: its
// dnnl_primitive_execute builds a small argument map per call (a few nodes per tile), which its
// 2.x API gives a caller no way to avoid.
#include <gtest/gtest.h>
#include <link.h>
#include <oneapi/dnnl/dnnl.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <numeric>
#include <vector>

#include "cpu/gemm.h"
#include "model/denoiser.h"
#include "tests/support/test_data.h"

namespace {

std::atomic<bool> counting{false};
std::atomic<int64_t> allocations{0};
std::atomic<int64_t> onednn_allocations{0};

// The address ranges of libdnnl's loaded segments.
struct CodeRange {
  uintptr_t begin = 0, end = 0;
};
// The loaded segments of the shared object that holds dnnl_primitive_execute.
const std::vector<CodeRange>& OneDnnCode() {
  static const std::vector<CodeRange> ranges = [] {
    struct Search {
      uintptr_t probe;
      std::vector<CodeRange> ranges;
    } probe{reinterpret_cast<uintptr_t>(&dnnl_primitive_execute), {}};
    dl_iterate_phdr(
        [](dl_phdr_info* object, size_t, void* data) {
          auto* search = static_cast<Search*>(data);
          std::vector<CodeRange> segments;
          bool holds_probe = false;
          for (int i = 0; i < object->dlpi_phnum; ++i) {
            const ElfW(Phdr)& segment = object->dlpi_phdr[i];
            if (segment.p_type != PT_LOAD) continue;
            const uintptr_t begin = object->dlpi_addr + segment.p_vaddr;
            segments.push_back({begin, begin + segment.p_memsz});
            holds_probe |= search->probe >= begin && search->probe < begin + segment.p_memsz;
          }
          if (holds_probe) search->ranges = segments;
          return holds_probe ? 1 : 0;
        },
        &probe);
    return probe.ranges;
  }();
  return ranges;
}

bool CalledFromOneDnn(const void* caller) {
  const auto address = reinterpret_cast<uintptr_t>(caller);
  for (const CodeRange& range : OneDnnCode()) {
    if (address >= range.begin && address < range.end) return true;
  }
  return false;
}

[[gnu::noinline]] void* CountedAllocate(std::size_t bytes, std::size_t alignment,
                                        const void* caller) {
  if (counting.load(std::memory_order_relaxed)) {
    (CalledFromOneDnn(caller) ? onednn_allocations : allocations).fetch_add(1);
  }
  const std::size_t rounded =
      (std::max<std::size_t>(bytes, 1) + alignment - 1) / alignment * alignment;
  void* data = alignment <= alignof(std::max_align_t) ? std::malloc(rounded)
                                                      : std::aligned_alloc(alignment, rounded);
  if (data == nullptr) throw std::bad_alloc();
  return data;
}

}  // namespace

void* operator new(std::size_t bytes) {
  return CountedAllocate(bytes, alignof(std::max_align_t), __builtin_return_address(0));
}
void* operator new[](std::size_t bytes) {
  return CountedAllocate(bytes, alignof(std::max_align_t), __builtin_return_address(0));
}
void* operator new(std::size_t bytes, std::align_val_t alignment) {
  return CountedAllocate(bytes, static_cast<std::size_t>(alignment), __builtin_return_address(0));
}
void* operator new[](std::size_t bytes, std::align_val_t alignment) {
  return CountedAllocate(bytes, static_cast<std::size_t>(alignment), __builtin_return_address(0));
}
void operator delete(void* data) noexcept { std::free(data); }
void operator delete[](void* data) noexcept { std::free(data); }
void operator delete(void* data, std::size_t) noexcept { std::free(data); }
void operator delete[](void* data, std::size_t) noexcept { std::free(data); }
void operator delete(void* data, std::align_val_t) noexcept { std::free(data); }
void operator delete[](void* data, std::align_val_t) noexcept { std::free(data); }
void operator delete(void* data, std::size_t, std::align_val_t) noexcept { std::free(data); }
void operator delete[](void* data, std::size_t, std::align_val_t) noexcept { std::free(data); }

namespace sculpt {
namespace {

// Counts the heap allocations made by `work` on every thread.
template <typename Work>
int64_t AllocationsOf(Work&& work) {
  OneDnnCode();  // found before counting starts
  allocations.store(0);
  onednn_allocations.store(0);
  counting.store(true);
  work();
  counting.store(false);
  return allocations.load();
}

std::vector<int32_t> Canvas(int64_t length, int32_t mask, uint32_t salt) {
  std::vector<int32_t> canvas(length);
  for (int64_t i = 0; i < length; ++i) {
    canvas[i] = i % 3 == 0 ? mask : static_cast<int32_t>((i * 31 + salt) % 90 + 3);
  }
  return canvas;
}

std::vector<int32_t> Range(int64_t length) {
  std::vector<int32_t> positions(length);
  std::iota(positions.begin(), positions.end(), 0);
  return positions;
}

struct WorkspaceCase {
  const char* model;
  CpuBackendOptions options;
  const char* name;
};

class WorkspaceTest : public ::testing::TestWithParam<WorkspaceCase> {
 protected:
  void SetUp() override {
    if (GetParam().options.int8_gemm_weights && !cpu::GemmRunner().HasExactInt8()) {
      GTEST_SKIP() << "int8 GEMM weights are refused on this CPU (no exact int8 kernel)";
    }
    loaded_ = testing::LoadTestModel(GetParam().model, GetParam().options);
    ASSERT_NE(loaded_.model, nullptr);
  }
  testing::LoadedModel loaded_;
};

constexpr WorkspaceLimits kLimits{.tokens = 320, .sequences = 6, .logit_rows = 320};

TEST_P(WorkspaceTest, ForwardsAndTokenChoiceWithinTheReserveAllocateNothing) {
  Transformer& model = *loaded_.model;
  const int32_t mask = model.config().mask_token_id;
  ASSERT_TRUE(model.Reserve(kLimits).ok());

  // Batches of every kind the limits allow, the largest first and last: one long sequence, a
  // full set of short ones, and few logit rows.
  const std::vector<std::vector<int64_t>> shapes = {
      {320}, {5, 17, 60, 1, 100, 137}, {250, 3}, {64, 64, 64, 64, 64}};
  std::vector<std::vector<std::vector<int32_t>>> canvases, positions;
  std::vector<std::vector<SequenceInput>> batches;
  for (const auto& lengths : shapes) {
    auto& shape_canvases = canvases.emplace_back();
    auto& shape_positions = positions.emplace_back();
    for (size_t s = 0; s < lengths.size(); ++s) {
      shape_canvases.push_back(Canvas(lengths[s], mask, static_cast<uint32_t>(s)));
      shape_positions.push_back(s % 2 == 0 ? Range(lengths[s]) : std::vector<int32_t>{0});
    }
    auto& batch = batches.emplace_back();
    for (size_t s = 0; s < lengths.size(); ++s) {
      batch.push_back({shape_canvases[s], shape_positions[s]});
    }
  }
  // A token choice per shape: LLaDA's and Dream's (with top_p and top_k) side by side.
  std::vector<int32_t> tokens(kLimits.logit_rows);
  std::vector<double> confidences(kLimits.logit_rows);
  const std::vector<int32_t> all_positions = Range(kLimits.logit_rows);

  for (int pass = 0; pass < 2; ++pass) {
    for (size_t b = 0; b < batches.size(); ++b) {
      absl::Status status;
      const int64_t count = AllocationsOf([&] {
        absl::StatusOr<TensorView> logits = model.Forward(batches[b]);
        if (!logits.ok()) {
          status = logits.status();
          return;
        }
        const int64_t rows = logits->rows;
        const int64_t half = rows / 2;
        TokenChoiceGroup groups[2];
        groups[0].temperature = 0.7;
        groups[0].positions = std::span(all_positions).first(half);
        groups[0].tokens = std::span(tokens).first(half);
        groups[0].confidences = std::span(confidences).first(half);
        groups[1].first_row = half;
        groups[1].style = TokenChoiceStyle::kDream;
        groups[1].temperature = 0.5;
        groups[1].top_p = 0.9;
        groups[1].top_k = 5;
        groups[1].positions = std::span(all_positions).subspan(half, rows - half);
        groups[1].tokens = std::span(tokens).subspan(half, rows - half);
        groups[1].confidences = std::span(confidences).subspan(half, rows - half);
        status = model.backend().ChooseTokens({*logits, groups});
      });
      ASSERT_TRUE(status.ok()) << status;
      EXPECT_EQ(count, 0) << "pass " << pass << ", batch " << b << " (" << shapes[b].size()
                          << " sequences) allocated";
    }
  }
}

// The negative control: without a reserve, the same counter sees the workspace grow.
TEST_P(WorkspaceTest, AForwardBeyondTheReserveGrowsTheWorkspace) {
  Transformer& model = *loaded_.model;
  const int32_t mask = model.config().mask_token_id;
  ASSERT_TRUE(model.Reserve({.tokens = 8, .sequences = 1, .logit_rows = 8}).ok());
  const std::vector<int32_t> canvas = Canvas(kLimits.tokens, mask, 0);
  const std::vector<int32_t> rows = Range(kLimits.tokens);
  const SequenceInput sequence{canvas, rows};
  absl::Status status;
  const int64_t count = AllocationsOf([&] { status = model.Forward({&sequence, 1}).status(); });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_GT(count, 0);
}

// Once reserved for its generations, the denoiser's steps allocate only what Generation::Commit
// records (the policy's selection, the step event, the stop check): a few per generation and
// step, never per layer, row or token as a forward did before it had a workspace.
TEST_P(WorkspaceTest, DenoisingStepsReuseTheirStorage) {
  Transformer& model = *loaded_.model;
  const std::vector<int32_t> prompt = {5, 9, 14, 3, 7, 22, 40, 11};
  std::vector<Generation> generations;
  for (double cfg_scale : {0.0, 1.5}) {
    auto generation = Generation::Create(
        prompt, {.gen_length = 32, .steps = 8, .block_length = 16, .cfg_scale = cfg_scale},
        model.config());
    ASSERT_TRUE(generation.ok()) << generation.status();
    generations.push_back(std::move(*generation));
  }
  std::vector<Generation*> batch;
  for (Generation& generation : generations) batch.push_back(&generation);
  const WorkspaceLimits limits = WorkspaceFor(batch);
  EXPECT_EQ(limits.tokens, 3 * 40);  // the guided one twice
  EXPECT_EQ(limits.sequences, 3);
  ASSERT_TRUE(model.Reserve(limits).ok());
  Denoiser denoiser(model);
  int64_t step_allocations = 0;
  while (!generations[0].finished() || !generations[1].finished()) {
    absl::Status status;
    const int64_t count = AllocationsOf([&] { status = denoiser.Step(batch).status(); });
    ASSERT_TRUE(status.ok()) << status;
    step_allocations += count;
  }
  const int steps = generations[1].steps_run();
  std::printf("allocations over %d steps of two generations: %lld\n", steps,
              static_cast<long long>(step_allocations));
  EXPECT_LE(step_allocations, 12 * 2 * steps);
}

INSTANTIATE_TEST_SUITE_P(
    ModelsAndWeights, WorkspaceTest,
    ::testing::Values(WorkspaceCase{"tiny-llada", {}, "LLaDAFp32"},
                      WorkspaceCase{"tiny-dream", {}, "DreamFp32"},
                      WorkspaceCase{"tiny-llada-gqa", {.weight_dtype = DType::kBF16}, "GqaBf16"},
                      WorkspaceCase{"tiny-llada-bf16",
                                    {.weight_dtype = DType::kBF16, .int8_gemm_weights = true},
                                    "Bf16Int8"}),
    [](const ::testing::TestParamInfo<WorkspaceCase>& param) { return param.param.name; });

}  // namespace
}  // namespace sculpt
