#include "runtime/external/external_spec.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace chartflow::runtime::external {
namespace {

const std::filesystem::path kDir = std::string(CHARTFLOW_SOURCE_DIR) + "/tests/data/handlers";

std::string rejection(const Json& config) {
  try {
    (void)parse_external_spec(config, kDir, PythonRuntime{"python3", "adapter"});
    return "";
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
}

TEST(ExternalSpec, SizesAcceptDecimalAndBinaryUnits) {
  EXPECT_EQ(parse_size("128Mi"), 128ULL << 20);
  EXPECT_EQ(parse_size("1G"), 1'000'000'000ULL);
  EXPECT_EQ(parse_size("4096"), 4096ULL);
  EXPECT_EQ(parse_size("10Ki"), 10240ULL);
  EXPECT_FALSE(parse_size("12 MB"));
  EXPECT_FALSE(parse_size("Mi"));
  EXPECT_FALSE(parse_size("5Xi"));
}

TEST(ExternalSpec, ExecMappingBecomesLimitsAndACleanEnvironment) {
  const auto spec = parse_external_spec({{"exec", {"python3", "misbehave.py"}},
                                         {"timeout", "3s"},
                                         {"memory", "128Mi"},
                                         {"concurrency", 10},
                                         {"env", {{"MODE", "strict"}}}},
                                        kDir, {});
  EXPECT_EQ(spec.argv, (std::vector<std::string>{"python3", "misbehave.py"}));
  EXPECT_EQ(spec.name, "misbehave.py");
  EXPECT_EQ(spec.timeout, Millis(3000));
  EXPECT_EQ(spec.memory_bytes, 128ULL << 20);
  EXPECT_EQ(spec.concurrency, 10);
  EXPECT_EQ(spec.min_warm, 1);
  EXPECT_EQ(spec.cwd, kDir);
  const auto has = [&](const std::string& e) {
    return std::find(spec.env.begin(), spec.env.end(), e) != spec.env.end();
  };
  EXPECT_TRUE(has("MODE=strict"));
  EXPECT_TRUE(has("CHARTFLOW_MEMORY_LIMIT_MB=128"));
  for (const auto& e : spec.env) EXPECT_NE(e.rfind("CHARTFLOW_DATABASE_URL=", 0), 0u) << e;
}

TEST(ExternalSpec, PythonRuntimeRunsTheEmbeddedAdapterOnTheEntry) {
  const auto spec =
      parse_external_spec({{"runtime", "python3"}, {"entry", "lambda_fixture.lambda_handler"}},
                          kDir, PythonRuntime{"/usr/bin/python3", "print('adapter')"});
  EXPECT_EQ(spec.argv, (std::vector<std::string>{"/usr/bin/python3", "-c", "print('adapter')",
                                                 "lambda_fixture.lambda_handler"}));
  EXPECT_EQ(spec.name, "lambda_fixture.lambda_handler");
}

TEST(ExternalSpec, BadSettingsNameTheProblem) {
  EXPECT_NE(rejection({{"exec", Json::array()}}).find("non-empty list"), std::string::npos);
  EXPECT_NE(rejection({{"exec", {"x"}}, {"memory", "lots"}}).find("memory: \"lots\" is not a size"),
            std::string::npos);
  EXPECT_NE(rejection({{"exec", {"x"}}, {"timeout", "soon"}}).find("timeout must be a duration"),
            std::string::npos);
  EXPECT_NE(rejection({{"exec", {"x"}}, {"concurrency", 0}}).find("concurrency must be"),
            std::string::npos);
  EXPECT_NE(rejection({{"runtime", "python3"}}).find("needs entry"), std::string::npos);
  EXPECT_NE(rejection({{"runtime", "python3"}, {"entry", "a..b"}}).find("module.function"),
            std::string::npos);
  EXPECT_NE(rejection({{"exec", {"x"}}, {"entry", "a.b"}}).find("entry belongs to"),
            std::string::npos);
}

}  // namespace
}  // namespace chartflow::runtime::external
