#include "server/api_keys.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace sculpt {
namespace {

// Key ids as Python's hashlib.sha256(key).hexdigest()[:8] gives them.
constexpr const char* kAlpha = "sk-test-alpha-0123456789";
constexpr const char* kAlphaId = "f3cc3014";
constexpr const char* kBravo = "sk-test-bravo-0123456789";
constexpr const char* kBravoId = "1df1b452";

std::string Bearer(const std::string& key) { return "Bearer " + key; }

class KeyFile {
 public:
  explicit KeyFile(const std::string& text)
      : path_(std::filesystem::temp_directory_path() /
              ("api_keys_test_" +
               std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
               ::testing::UnitTest::GetInstance()->current_test_info()->name())) {
    Write(text);
  }
  ~KeyFile() { std::filesystem::remove(path_); }
  void Write(const std::string& text) const { std::ofstream(path_, std::ios::binary) << text; }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

std::unique_ptr<Gatekeeper> MustCreate(GatekeeperOptions options) {
  auto gatekeeper = Gatekeeper::Create(std::move(options));
  EXPECT_TRUE(gatekeeper.ok()) << gatekeeper.status();
  return gatekeeper.ok() ? std::move(*gatekeeper) : nullptr;
}

TEST(ApiKeysTest, WithoutKeysEveryoneIsAnAnonymousCaller) {
  auto gatekeeper = MustCreate({});
  EXPECT_FALSE(gatekeeper->enabled());
  auto caller = gatekeeper->Authenticate("");
  ASSERT_TRUE(caller.ok());
  EXPECT_EQ(caller->key_id, "");
  auto lease = gatekeeper->Admit(*caller);
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ(*lease, nullptr);
}

TEST(ApiKeysTest, AcceptsEachKeyByItsIdAndRefusesTheRestAlike) {
  auto gatekeeper = MustCreate({.keys = {kAlpha, kBravo}});
  ASSERT_TRUE(gatekeeper->enabled());
  EXPECT_EQ(gatekeeper->Authenticate(Bearer(kAlpha))->key_id, kAlphaId);
  EXPECT_EQ(gatekeeper->Authenticate(Bearer(kBravo))->key_id, kBravoId);
  // The scheme is case-insensitive (RFC 7235); the key is not.
  EXPECT_EQ(gatekeeper->Authenticate(std::string("bearer  ") + kAlpha)->key_id, kAlphaId);
  std::string upper = kAlpha;
  upper[0] = 'S';
  const std::vector<std::string> refused = {"",
                                            "Bearer",
                                            "Bearer ",
                                            kAlpha,  // no scheme
                                            "Basic " + std::string(kAlpha),
                                            Bearer(upper),
                                            Bearer(std::string(kAlpha) + "x"),
                                            Bearer(std::string(kAlpha).substr(1))};
  std::string message;
  for (const std::string& authorization : refused) {
    auto caller = gatekeeper->Authenticate(authorization);
    ASSERT_FALSE(caller.ok()) << authorization;
    EXPECT_EQ(caller.status().code(), absl::StatusCode::kUnauthenticated);
    // Nothing in the answer tells a missing key from a wrong one.
    if (message.empty()) message = std::string(caller.status().message());
    EXPECT_EQ(caller.status().message(), message);
  }
  EXPECT_NE(message.find("Authorization: Bearer"), std::string::npos);
}

TEST(ApiKeysTest, RefusesUnusableKeysAtStartNamingTheFlag) {
  auto short_key = Gatekeeper::Create({.keys = {"tooshort"}});
  ASSERT_FALSE(short_key.ok());
  EXPECT_NE(short_key.status().message().find("--api-key #1"), std::string::npos);
  auto spaced = Gatekeeper::Create({.keys = {kAlpha, "has a space inside it!"}});
  ASSERT_FALSE(spaced.ok());
  EXPECT_NE(spaced.status().message().find("--api-key #2"), std::string::npos);
  auto missing = Gatekeeper::Create({.key_file = "/nonexistent/keys.txt"});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("--api-key-file /nonexistent/keys.txt"),
            std::string::npos);
  KeyFile empty("# only a comment\n\n   \n");
  auto no_keys = Gatekeeper::Create({.key_file = empty.path()});
  ASSERT_FALSE(no_keys.ok());
  EXPECT_NE(no_keys.status().message().find("holds no key"), std::string::npos);
  KeyFile bad(std::string(kAlpha) + "\nshort\n");
  auto bad_line = Gatekeeper::Create({.key_file = bad.path()});
  ASSERT_FALSE(bad_line.ok());
  EXPECT_NE(bad_line.status().message().find("line 2"), std::string::npos);
  // The message never repeats the key.
  EXPECT_EQ(bad_line.status().message().find("short:"), std::string::npos);
  auto limits_without_keys = Gatekeeper::Create({.max_running_per_key = 2});
  ASSERT_FALSE(limits_without_keys.ok());
  EXPECT_NE(limits_without_keys.status().message().find("--api-key"), std::string::npos);
  EXPECT_FALSE(Gatekeeper::Create({.keys = {kAlpha}, .rate_per_key = -1}).ok());
}

TEST(ApiKeysTest, ReadsTheKeyFileAndReloadsItOrKeepsTheOldKeys) {
  KeyFile file("# team A\r\n" + std::string(kAlpha) + "\r\n\n  " + kBravo + "  \n");
  auto gatekeeper = MustCreate({.key_file = file.path()});
  EXPECT_EQ(gatekeeper->key_count(), 2u);
  EXPECT_TRUE(gatekeeper->Authenticate(Bearer(kBravo)).ok());

  file.Write(std::string(kAlpha) + "\n");
  ASSERT_TRUE(gatekeeper->Reload().ok());
  EXPECT_TRUE(gatekeeper->Authenticate(Bearer(kAlpha)).ok());
  EXPECT_FALSE(gatekeeper->Authenticate(Bearer(kBravo)).ok()) << "a removed key still works";

  file.Write("");
  EXPECT_FALSE(gatekeeper->Reload().ok());
  EXPECT_TRUE(gatekeeper->Authenticate(Bearer(kAlpha)).ok()) << "a bad reload dropped the keys";
}

TEST(ApiKeysTest, LimitsRunningGenerationsPerKey) {
  auto gatekeeper = MustCreate({.keys = {kAlpha, kBravo}, .max_running_per_key = 2});
  const Caller alpha{kAlphaId}, bravo{kBravoId};
  auto first = gatekeeper->Admit(alpha);
  auto second = gatekeeper->Admit(alpha);
  ASSERT_TRUE(first.ok() && second.ok());
  auto third = gatekeeper->Admit(alpha);
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(RetryAfterSeconds(third.status()), 1);
  EXPECT_NE(third.status().message().find(kAlphaId), std::string::npos);
  // Another key has its own slots.
  EXPECT_TRUE(gatekeeper->Admit(bravo).ok());
  first->reset();
  EXPECT_TRUE(gatekeeper->Admit(alpha).ok()) << "a finished generation did not free its slot";

  std::string metrics;
  gatekeeper->RenderMetrics("model=\"m\"", metrics);
  EXPECT_NE(metrics.find("sculpt_key_requests_total{model=\"m\",key_id=\"f3cc3014\",result="
                         "\"concurrency_limited\"} 1"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("sculpt_key_requests_total{model=\"m\",key_id=\"f3cc3014\",result="
                         "\"admitted\"} 3"),
            std::string::npos)
      << metrics;
  // Two alpha leases are held: the second and the last (a discarded StatusOr releases it).
  EXPECT_NE(metrics.find("sculpt_key_requests_running{model=\"m\",key_id=\"f3cc3014\"} 1"),
            std::string::npos)
      << metrics;
}

TEST(ApiKeysTest, RateLimitsWithATokenBucketPerKey) {
  auto now = std::chrono::steady_clock::time_point(std::chrono::seconds(1000));
  auto gatekeeper =
      MustCreate({.keys = {kAlpha, kBravo}, .rate_per_key = 2, .now = [&now] { return now; }});
  const Caller alpha{kAlphaId};
  // A full bucket holds one second's worth.
  EXPECT_TRUE(gatekeeper->Admit(alpha).ok());
  EXPECT_TRUE(gatekeeper->Admit(alpha).ok());
  auto refused = gatekeeper->Admit(alpha);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(RetryAfterSeconds(refused.status()), 1);
  EXPECT_TRUE(gatekeeper->Admit({kBravoId}).ok()) << "one key's bucket drained another's";
  now += std::chrono::milliseconds(499);
  EXPECT_FALSE(gatekeeper->Admit(alpha).ok());
  now += std::chrono::milliseconds(2);
  EXPECT_TRUE(gatekeeper->Admit(alpha).ok()) << "half a second refills one token at 2/s";
  // Idle time never fills the bucket past its capacity.
  now += std::chrono::seconds(60);
  EXPECT_TRUE(gatekeeper->Admit(alpha).ok());
  EXPECT_TRUE(gatekeeper->Admit(alpha).ok());
  EXPECT_FALSE(gatekeeper->Admit(alpha).ok());

  auto slow = MustCreate({.keys = {kAlpha}, .rate_per_key = 0.25, .now = [&now] { return now; }});
  EXPECT_TRUE(slow->Admit(alpha).ok());
  auto wait = slow->Admit(alpha);
  ASSERT_FALSE(wait.ok());
  EXPECT_EQ(RetryAfterSeconds(wait.status()), 4);
}

}  // namespace
}  // namespace sculpt
