// The HTTP gateway before and after the model is attached: 503 "loading" for health and the
// API while the model loads, then the real answers.
#include <gtest/gtest.h>
#include <httplib.h>

#include "server/front_end.h"
#include "server/http_gateway.h"
#include "server/served_model.h"
#include "tests/support/test_data.h"

namespace sculpt {
namespace {

TEST(HttpLoadingTest, AnswersServiceUnavailableUntilTheModelIsAttached) {
  HttpGateway gateway(HttpOptions{.server = {.port = 0}}, "test");
  ASSERT_TRUE(gateway.Start().ok());
  httplib::Client client("127.0.0.1", gateway.port());

  auto health = client.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 503);
  EXPECT_NE(health->body.find("loading"), std::string::npos);
  EXPECT_EQ(client.Get("/live")->status, 200);
  auto completion = client.Post("/v1/completions", R"({"prompt": "x"})", "application/json");
  ASSERT_TRUE(completion);
  EXPECT_EQ(completion->status, 503);
  EXPECT_NE(completion->body.find("loading"), std::string::npos);

  auto model = LoadServedModel(testing::TestModelDir("tiny-llada-text"));
  ASSERT_TRUE(model.ok()) << model.status();
  Metrics metrics((*model)->name);
  SchedulerOptions options;
  options.observer = &metrics;
  Scheduler scheduler(*(*model)->transformer, options);
  FrontEnd front_end(**model, scheduler, &metrics, {});
  gateway.Attach(front_end, metrics);

  EXPECT_EQ(client.Get("/health")->status, 200);
  completion =
      client.Post("/v1/completions", R"({"prompt": "x", "max_tokens": 4})", "application/json");
  ASSERT_TRUE(completion);
  EXPECT_EQ(completion->status, 200) << completion->body;
  gateway.Stop();
}

}  // namespace
}  // namespace sculpt
