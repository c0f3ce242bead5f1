// Training data: determinism, the synthetic stream's known entropy, token files.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include <gtest/gtest.h>

#include "core/error.h"
#include "kernels/data.h"

using namespace memfront;

TEST(SyntheticTokens, SameSeedSameSamplesWhateverTheBatching) {
  SyntheticTokens a(64, 16, 7, 0.2), b(64, 16, 7, 0.2), other(64, 16, 8, 0.2);
  std::vector<int32_t> in4(4 * 16), tg4(4 * 16), in2(2 * 16), tg2(2 * 16);
  fill_batch(a, 100, 4, 16, in4.data(), tg4.data());
  // Samples 102 and 103 through a batch of two starting there.
  fill_batch(b, 102, 2, 16, in2.data(), tg2.data());
  EXPECT_TRUE(std::equal(in2.begin(), in2.end(), in4.begin() + 2 * 16));
  EXPECT_TRUE(std::equal(tg2.begin(), tg2.end(), tg4.begin() + 2 * 16));
  // Targets are the inputs shifted by one.
  EXPECT_EQ(tg4[0], in4[1]);
  std::vector<int32_t> in_other(4 * 16), tg_other(4 * 16);
  fill_batch(other, 100, 4, 16, in_other.data(), tg_other.data());
  EXPECT_NE(in4, in_other);
}

TEST(SyntheticTokens, EntropyRateMatchesTheEmpiricalConditionalEntropy) {
  const int V = 32, T = 64;
  const double noise = 0.3;
  SyntheticTokens source(V, T, 3, noise);
  // Count, per (rule input, position parity), how often each next token occurs;
  // the empirical conditional entropy must approach the closed form.
  std::map<std::tuple<int, int, int>, std::map<int, int>> counts;
  std::vector<int32_t> tokens(T + 1);
  for (uint64_t i = 0; i < 3000; ++i) {
    source.sample(i, tokens.data());
    for (int t = 2; t <= T; ++t) {
      const bool bigram = t % 2 == 0;
      counts[{bigram, bigram ? tokens[t - 1] : tokens[t - 2], 0}][tokens[t]]++;
    }
  }
  double total = 0, entropy = 0;
  for (const auto& [context, next] : counts) {
    double n = 0;
    for (const auto& [token, count] : next) n += count;
    for (const auto& [token, count] : next) entropy -= count * std::log(count / n);
    total += n;
  }
  entropy /= total;
  const double expected = *source.entropy_rate();
  EXPECT_NEAR(entropy, expected, 0.05 * expected);
  // And it is well below a uniform stream's, so there is something to learn.
  EXPECT_LT(expected, 0.7 * std::log(V));
}

TEST(TokenFile, ReadsWindowsOfAFlatUint16File) {
  const auto path = std::filesystem::path(testing::TempDir()) / "tokens.bin";
  std::vector<uint16_t> tokens(100);
  for (int i = 0; i < 100; ++i) tokens[i] = static_cast<uint16_t>(i % 50);
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(tokens.data()), 200);
  TokenFile file(path, 50, 8, 1);
  EXPECT_EQ(file.token_count(), 100u);
  std::vector<int32_t> sample(9);
  file.sample(5, sample.data());
  for (int t = 1; t < 9; ++t) EXPECT_EQ(sample[t], (sample[t - 1] + 1) % 50);  // a contiguous window
  EXPECT_FALSE(file.entropy_rate());
}

TEST(TokenFile, RejectsTokensOutsideTheVocabularyNamingTheOffset) {
  const auto path = std::filesystem::path(testing::TempDir()) / "bad_tokens.bin";
  std::vector<uint16_t> tokens(20, 3);
  tokens[13] = 999;
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(tokens.data()), 40);
  try {
    TokenFile file(path, 256, 8, 1);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), path.string() + ": token 13 is 999, expected < model.vocab=256");
  }
}

TEST(TokenFile, RejectsOddSizesAndShortFiles) {
  const auto odd = std::filesystem::path(testing::TempDir()) / "odd.bin";
  std::ofstream(odd, std::ios::binary) << "abc";
  EXPECT_THROW(TokenFile(odd, 256, 1, 1), InputError);
  const auto short_file = std::filesystem::path(testing::TempDir()) / "short.bin";
  std::ofstream(short_file, std::ios::binary) << "abcd";
  EXPECT_THROW(TokenFile(short_file, 256000, 8, 1), InputError);
  EXPECT_THROW(TokenFile("/nonexistent.bin", 256, 8, 1), InputError);
}
