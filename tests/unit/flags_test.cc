#include "server/flags.h"

#include <gtest/gtest.h>

namespace sculpt {
namespace {

FlagSet MakeFlags() {
  FlagSet flags;
  flags.Add("steps", "N", "128", "steps");
  flags.Add("temperature", "T", "0", "temperature");
  flags.Add("prompt-ids", "IDS", "", "ids");
  flags.Add("json", "", "", "json");
  return flags;
}

TEST(FlagsTest, ParsesValuesDefaultsAndBooleans) {
  FlagSet flags = MakeFlags();
  ASSERT_TRUE(
      flags.Parse({"--steps", "64", "--temperature=0.5", "--json", "--prompt-ids", "1, 2,3"}).ok());
  EXPECT_EQ(*flags.GetInt("steps"), 64);
  EXPECT_DOUBLE_EQ(*flags.GetDouble("temperature"), 0.5);
  EXPECT_TRUE(flags.GetBool("json"));
  EXPECT_EQ(*flags.GetIntList("prompt-ids"), (std::vector<int32_t>{1, 2, 3}));
  FlagSet defaults = MakeFlags();
  ASSERT_TRUE(defaults.Parse({}).ok());
  EXPECT_EQ(*defaults.GetInt("steps"), 128);
  EXPECT_FALSE(defaults.GetBool("json"));
  EXPECT_TRUE(defaults.GetIntList("prompt-ids")->empty());
}

TEST(FlagsTest, ErrorsNameTheFlag) {
  FlagSet unknown = MakeFlags();
  EXPECT_NE(unknown.Parse({"--stepz", "3"}).message().find("--stepz"), std::string::npos);
  FlagSet missing = MakeFlags();
  EXPECT_NE(missing.Parse({"--steps"}).message().find("needs a value"), std::string::npos);
  FlagSet boolean = MakeFlags();
  EXPECT_NE(boolean.Parse({"--json=yes"}).message().find("takes no value"), std::string::npos);
  FlagSet bad = MakeFlags();
  ASSERT_TRUE(bad.Parse({"--steps", "ten", "--temperature", "inf", "--prompt-ids", "1,x"}).ok());
  EXPECT_NE(bad.GetInt("steps").status().message().find("--steps"), std::string::npos);
  EXPECT_NE(bad.GetDouble("temperature").status().message().find("--temperature"),
            std::string::npos);
  EXPECT_NE(bad.GetIntList("prompt-ids").status().message().find("'x'"), std::string::npos);
  FlagSet positional = MakeFlags();
  EXPECT_FALSE(positional.Parse({"stray"}).ok());
}

TEST(FlagsTest, IntInRangeNamesFlagAndRange) {
  FlagSet flags;
  flags.Add("seqs", "N", "16", "sequences");
  ASSERT_TRUE(flags.Parse({"--seqs", "0"}).ok());
  const auto value = flags.GetIntInRange("seqs", 1, 64);
  ASSERT_FALSE(value.ok());
  EXPECT_EQ(value.status().message(), "--seqs must be in [1, 64], got 0");
  FlagSet ok;
  ok.Add("seqs", "N", "16", "sequences");
  EXPECT_EQ(*ok.GetIntInRange("seqs", 1, 64), 16);
}

}  // namespace
}  // namespace sculpt
