#pragma once
// Training data: token sequences of T+1 tokens (inputs are the first T, targets
// the last T). Sample i is a pure function of (seed, i), so the same seed gives
// the same batches on every config, whatever its batch shape or rank count.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "core/config.h"

namespace memfront {

class TokenSource {
 public:
  virtual ~TokenSource() = default;
  // Writes the T+1 tokens of sample `index`.
  virtual void sample(uint64_t index, int32_t* tokens) const = 0;
  // Entropy rate of the stream in nats per token: the loss no model can beat.
  virtual std::optional<double> entropy_rate() const = 0;
};

// A seeded synthetic stream with learnable structure and an exactly known
// entropy rate. Token 0 is uniform; each later token t is, with probability
// 1 - noise, a deterministic function of the history:
//   perm1[x(t-1)]   when t is 1 or even  (a bigram: embeddings learn it)
//   perm2[x(t-2)]   when t is odd > 1    (a skip-gram: needs attention to t-2)
// and otherwise uniform over the vocabulary. Given the history, the next token
// therefore always has one likely value of probability 1 - noise + noise/V and
// V - 1 values of noise/V each, so the entropy rate is that distribution's
// entropy, the same for every target position.
class SyntheticTokens final : public TokenSource {
 public:
  SyntheticTokens(int vocab, int seq, uint64_t seed, double noise);
  void sample(uint64_t index, int32_t* tokens) const override;
  std::optional<double> entropy_rate() const override;

 private:
  int vocab_, seq_;
  uint64_t seed_;
  double noise_;
  std::vector<int32_t> perm1_, perm2_;
};

// A flat little-endian uint16 token file (the format of llm.c's .bin payloads
// without a header). Sample i is the window at a seeded pseudo-random offset.
// Every token is checked against the vocabulary when the file is opened.
class TokenFile final : public TokenSource {
 public:
  TokenFile(const std::filesystem::path& path, int vocab, int seq, uint64_t seed);
  void sample(uint64_t index, int32_t* tokens) const override;
  std::optional<double> entropy_rate() const override { return std::nullopt; }
  uint64_t token_count() const { return tokens_.size(); }

 private:
  int seq_;
  uint64_t seed_;
  std::vector<uint16_t> tokens_;
};

std::unique_ptr<TokenSource> make_token_source(const Config& config);

// Fills inputs and targets (B,T) with samples first_index .. first_index+B-1.
void fill_batch(const TokenSource& source, uint64_t first_index, int B, int T, int32_t* inputs,
                int32_t* targets);

// Held-out samples come from a disjoint index range.
inline constexpr uint64_t kEvalSampleBase = uint64_t{1} << 62;

// splitmix64: a tiny, well-mixed, seedable generator (data order, init).
inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
// Uniform in [0, 1).
inline double uniform01(uint64_t& state) { return (splitmix64(state) >> 11) * 0x1.0p-53; }

}  // namespace memfront
