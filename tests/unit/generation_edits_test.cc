// Edits of a running generation without a model (model/generation_edits.cc): what each edit
// does to the canvas, the plan and the candidates, revisions and what is refused.
#include <gtest/gtest.h>

#include <vector>

#include "model/generation.h"
#include "tests/support/small_config.h"

namespace sculpt {
namespace {

constexpr int32_t kMask = 9;

std::vector<int32_t> ToVector(std::span<const int32_t> values) {
  return std::vector<int32_t>(values.begin(), values.end());
}

// Commits `token` at every candidate with confidences that rank lower positions first.
const StepEvent& CommitAll(Generation& generation, int32_t token) {
  const size_t n =
      generation.candidate_positions().size() + generation.prediction_positions().size();
  std::vector<double> confidences(n);
  for (size_t i = 0; i < n; ++i) confidences[i] = 1.0 - 0.01 * static_cast<double>(i);
  return generation.Commit(std::vector<int32_t>(n, token), confidences);
}

DraftEdit Edit(EditKind kind, int32_t position, int32_t length, std::vector<int32_t> tokens = {}) {
  DraftEdit edit;
  edit.kind = kind;
  edit.position = position;
  edit.length = length;
  edit.tokens = std::move(tokens);
  return edit;
}

absl::StatusOr<Generation> Start(GenerationParams params) {
  return Generation::Create(std::vector<int32_t>{1, 2}, params, testing::SmallConfig());
}

TEST(GenerationEditsTest, PinCommitsNowAndNoStepTouchesIt) {
  auto generation = Start({.gen_length = 4, .steps = 4, .block_length = 4});
  ASSERT_TRUE(generation.ok());
  auto pinned = generation->ApplyEdit(Edit(EditKind::kPin, 1, 0, {5, 6}));
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  EXPECT_EQ(pinned->revision, 1u);
  EXPECT_EQ(pinned->inserted, (std::vector<int32_t>{5, 6}));
  EXPECT_EQ(ToVector(generation->canvas()), (std::vector<int32_t>{1, 2, kMask, 5, 6, kMask}));
  EXPECT_EQ(generation->candidate_positions(), (std::vector<int32_t>{2, 5}));
  // The 3 steps left spread over the 2 masks: [1, 1, 0].
  EXPECT_EQ(CommitAll(*generation, 7).committed.size(), 1u);
  EXPECT_EQ(CommitAll(*generation, 7).committed.size(), 1u);
  EXPECT_EQ(ToVector(generation->canvas()), (std::vector<int32_t>{1, 2, 7, 5, 6, 7}));
}

TEST(GenerationEditsTest, RemaskReplansTheStepsLeftOverTheMasks) {
  auto generation = Start({.gen_length = 4, .steps = 4, .block_length = 4});
  ASSERT_TRUE(generation.ok());
  CommitAll(*generation, 3);
  CommitAll(*generation, 4);  // answer [3 4 _ _]
  ASSERT_TRUE(generation->ApplyEdit(Edit(EditKind::kRemask, 0, 1)).ok());
  EXPECT_EQ(generation->candidate_positions(), (std::vector<int32_t>{2, 4, 5}));
  // 2 steps left for 3 masks: 2 now, 1 then, and the generation ends on schedule.
  EXPECT_EQ(CommitAll(*generation, 5).committed.size(), 2u);
  const StepEvent& last = CommitAll(*generation, 6);
  EXPECT_EQ(last.committed.size(), 1u);
  EXPECT_TRUE(last.finished);
  EXPECT_EQ(generation->steps_run(), 4);
}

TEST(GenerationEditsTest, ReplaceMovesPositionsAndBlockEnds) {
  // Two blocks of 4: block 0 is answer [0, 4).
  auto generation = Start({.gen_length = 8, .steps = 8, .block_length = 4});
  ASSERT_TRUE(generation.ok());
  auto grown = generation->ApplyEdit(Edit(EditKind::kReplace, 1, 1, {5, kMask, 6}));
  ASSERT_TRUE(grown.ok()) << grown.status();
  EXPECT_EQ(grown->gen_length, 10);
  EXPECT_EQ(generation->params().gen_length, 10);
  // Block 0 is answer [0, 6) now: its masks are 0, 2 (the new one), 4, 5.
  EXPECT_EQ(generation->candidate_positions(), (std::vector<int32_t>{2, 4, 6, 7}));
  std::vector<CompletedBlock> blocks;
  while (!generation->finished()) {
    const StepEvent& event = CommitAll(*generation, 7);
    blocks.insert(blocks.end(), event.completed_blocks.begin(), event.completed_blocks.end());
  }
  ASSERT_EQ(blocks.size(), 2u);
  EXPECT_EQ(blocks[0].start, 0);
  EXPECT_EQ(blocks[0].tokens.size(), 6u);
  EXPECT_EQ(blocks[1].start, 6);
  EXPECT_EQ(ToVector(generation->answer()), (std::vector<int32_t>{7, 5, 7, 6, 7, 7, 7, 7, 7, 7}));
  // A pinned replacement stays.
  EXPECT_TRUE(generation->pinned(3));
}

TEST(GenerationEditsTest, StaleRevisionsAreAbortedAndFutureOnesInvalid) {
  auto generation = Start({.gen_length = 4, .steps = 4, .block_length = 4});
  ASSERT_TRUE(generation.ok());
  CommitAll(*generation, 3);  // revision 1 committed answer position 0
  DraftEdit stale = Edit(EditKind::kRemask, 0, 1);
  stale.revision = 0;
  EXPECT_TRUE(absl::IsAborted(generation->ApplyEdit(stale).status()));
  DraftEdit fresh = Edit(EditKind::kPin, 3, 0, {4});
  fresh.revision = 0;  // position 3 has not changed since
  EXPECT_TRUE(generation->ApplyEdit(fresh).ok());
  DraftEdit ban = Edit(EditKind::kBan, 0, 4, {3});
  ban.id = "b";
  ban.revision = 0;  // a ban applies to whatever the span holds now
  EXPECT_TRUE(generation->ApplyEdit(ban).ok());
  DraftEdit ahead = Edit(EditKind::kRemask, 1, 1);
  ahead.revision = 99;
  EXPECT_TRUE(absl::IsInvalidArgument(generation->ApplyEdit(ahead).status()));
  ASSERT_TRUE(generation->ApplyEdit(Edit(EditKind::kReplace, 1, 0, {6})).ok());  // moves
  DraftEdit moved = Edit(EditKind::kRemask, 3, 1);
  moved.revision = 3;
  const absl::Status status = generation->ApplyEdit(moved).status();
  EXPECT_TRUE(absl::IsAborted(status));
  EXPECT_NE(status.message().find("positions moved"), std::string_view::npos) << status;
}

TEST(GenerationEditsTest, BansSplitTheCandidatesIntoRunsAndRemaskWhatTheyBan) {
  auto generation = Start({.gen_length = 6, .steps = 6, .block_length = 6});
  ASSERT_TRUE(generation.ok());
  CommitAll(*generation, 4);  // answer [4 _ _ _ _ _]
  DraftEdit ban = Edit(EditKind::kBan, 0, 3, {4, 5});
  ban.id = "b";
  auto banned = generation->ApplyEdit(ban);
  ASSERT_TRUE(banned.ok()) << banned.status();
  EXPECT_EQ(banned->inserted, (std::vector<int32_t>{kMask, kMask, kMask}));
  const auto& runs = generation->candidate_runs();
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].count, 3u);
  EXPECT_EQ(runs[0].suppressed, (std::vector<int32_t>{4, 5}));
  EXPECT_TRUE(runs[1].suppressed.empty());
  ban.id = "b";
  EXPECT_TRUE(absl::IsAlreadyExists(generation->ApplyEdit(ban).status()));
  DraftEdit lift;
  lift.kind = EditKind::kLiftBan;
  lift.ban_id = "b";
  ASSERT_TRUE(generation->ApplyEdit(lift).ok());
  EXPECT_EQ(generation->candidate_runs().size(), 1u);
  EXPECT_TRUE(absl::IsNotFound(generation->ApplyEdit(lift).status()));
}

TEST(GenerationEditsTest, FinishCommitsEveryMaskInOneStep) {
  auto generation = Start({.gen_length = 8, .steps = 8, .block_length = 2});
  ASSERT_TRUE(generation.ok());
  DraftEdit finish;
  finish.kind = EditKind::kFinish;
  ASSERT_TRUE(generation->ApplyEdit(finish).ok());
  EXPECT_EQ(generation->candidate_positions().size(), 8u);
  const StepEvent& event = CommitAll(*generation, 3);
  EXPECT_TRUE(event.finished);
  EXPECT_EQ(event.committed.size(), 8u);
  EXPECT_EQ(event.completed_blocks.size(), 4u);
}

TEST(GenerationEditsTest, SetStepsReplansFixedPoliciesOnly) {
  auto generation = Start({.gen_length = 8, .steps = 8, .block_length = 4});
  ASSERT_TRUE(generation.ok());
  DraftEdit set;
  set.kind = EditKind::kSetOptions;
  set.steps = 3;  // 2 for this block, 1 for the next
  ASSERT_TRUE(generation->ApplyEdit(set).ok());
  EXPECT_EQ(generation->planned_steps(), 3);
  while (!generation->finished()) CommitAll(*generation, 3);
  EXPECT_EQ(generation->steps_run(), 3);
  set.steps = 1;
  auto again = Start({.gen_length = 8, .steps = 8, .block_length = 4});
  EXPECT_TRUE(absl::IsInvalidArgument(again->ApplyEdit(set).status()));  // 2 blocks left
  auto dynamic =
      Start({.gen_length = 4, .steps = 4, .block_length = 4, .remasking = Remasking::kThreshold});
  set.steps = 4;
  EXPECT_TRUE(absl::IsFailedPrecondition(dynamic->ApplyEdit(set).status()));
}

TEST(GenerationEditsTest, RefusesWhatCannotWork) {
  auto generation = Start({.gen_length = 4, .steps = 4, .block_length = 4});
  ASSERT_TRUE(generation.ok());
  EXPECT_TRUE(
      absl::IsInvalidArgument(generation->ApplyEdit(Edit(EditKind::kRemask, 4, 1)).status()));
  EXPECT_TRUE(
      absl::IsInvalidArgument(generation->ApplyEdit(Edit(EditKind::kRemask, 2, 3)).status()));
  EXPECT_TRUE(
      absl::IsInvalidArgument(generation->ApplyEdit(Edit(EditKind::kPin, 0, 0, {kMask})).status()));
  EXPECT_TRUE(
      absl::IsInvalidArgument(generation->ApplyEdit(Edit(EditKind::kPin, 0, 0, {10})).status()));
  // Past the model's context of 32.
  EXPECT_TRUE(absl::IsInvalidArgument(
      generation->ApplyEdit(Edit(EditKind::kReplace, 0, 1, std::vector<int32_t>(40, 3))).status()));
  EXPECT_TRUE(
      absl::IsInvalidArgument(generation->ApplyEdit(Edit(EditKind::kReplace, 0, 4)).status()));
  // A KV cache's rows are reserved for the canvas's length.
  auto cached =
      Start({.gen_length = 4, .steps = 4, .block_length = 4, .cache = KvCacheMode::kDual});
  ASSERT_TRUE(cached.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(
      cached->ApplyEdit(Edit(EditKind::kReplace, 0, 1, {3, 4})).status()));
  EXPECT_TRUE(cached->ApplyEdit(Edit(EditKind::kReplace, 0, 2, {3})).ok());
  // Nothing changed by a refusal: the revision counts the one edit that applied.
  EXPECT_EQ(cached->revision(), 1u);
}

TEST(GenerationEditsTest, AnEditThatCommitsTheLastMaskFinishes) {
  auto generation = Start({.gen_length = 2, .steps = 2, .block_length = 2});
  ASSERT_TRUE(generation.ok());
  ASSERT_TRUE(generation->ApplyEdit(Edit(EditKind::kPin, 0, 0, {3, 4})).ok());
  EXPECT_TRUE(generation->finished());
  EXPECT_EQ(generation->Result().token_ids, (std::vector<int32_t>{3, 4}));
  EXPECT_TRUE(
      absl::IsFailedPrecondition(generation->ApplyEdit(Edit(EditKind::kRemask, 0, 1)).status()));
}

}  // namespace
}  // namespace sculpt
