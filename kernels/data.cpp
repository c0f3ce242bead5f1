#include "kernels/data.h"

#include <cmath>
#include <fstream>
#include <numeric>

#include "core/error.h"

namespace memfront {

namespace {

// Fisher-Yates with a seeded generator.
std::vector<int32_t> seeded_permutation(int n, uint64_t seed) {
  std::vector<int32_t> p(n);
  std::iota(p.begin(), p.end(), 0);
  uint64_t state = seed;
  for (int i = n - 1; i > 0; --i) {
    int j = static_cast<int>(splitmix64(state) % static_cast<uint64_t>(i + 1));
    std::swap(p[i], p[j]);
  }
  return p;
}

// One generator state per sample, from (seed, index).
uint64_t sample_state(uint64_t seed, uint64_t index) {
  uint64_t state = seed ^ 0x6a09e667f3bcc909ull;
  splitmix64(state);
  state ^= index * 0xd1b54a32d192ed03ull;
  splitmix64(state);
  return state;
}

}  // namespace

SyntheticTokens::SyntheticTokens(int vocab, int seq, uint64_t seed, double noise)
    : vocab_(vocab),
      seq_(seq),
      seed_(seed),
      noise_(noise),
      perm1_(seeded_permutation(vocab, seed * 2 + 1)),
      perm2_(seeded_permutation(vocab, seed * 2 + 2)) {}

void SyntheticTokens::sample(uint64_t index, int32_t* tokens) const {
  uint64_t state = sample_state(seed_, index);
  const uint64_t V = static_cast<uint64_t>(vocab_);
  tokens[0] = static_cast<int32_t>(splitmix64(state) % V);
  for (int t = 1; t <= seq_; ++t) {
    const bool noise = uniform01(state) < noise_;
    const uint64_t uniform = splitmix64(state) % V;  // drawn always, so the stream stays aligned
    if (noise) {
      tokens[t] = static_cast<int32_t>(uniform);
    } else if (t == 1 || t % 2 == 0) {
      tokens[t] = perm1_[tokens[t - 1]];
    } else {
      tokens[t] = perm2_[tokens[t - 2]];
    }
  }
}

std::optional<double> SyntheticTokens::entropy_rate() const {
  const double V = vocab_;
  const double p_rare = noise_ / V;
  const double p_likely = 1.0 - noise_ + p_rare;
  return -p_likely * std::log(p_likely) - (V - 1.0) * p_rare * std::log(p_rare);
}

TokenFile::TokenFile(const std::filesystem::path& path, int vocab, int seq, uint64_t seed)
    : seq_(seq), seed_(seed) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path.string() + ": cannot open token file");
  in.seekg(0, std::ios::end);
  const auto bytes = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  if (bytes % 2 != 0) {
    throw InputError(path.string() + ": token file has " + std::to_string(bytes) +
                     " bytes, expected a whole number of uint16 tokens");
  }
  tokens_.resize(bytes / 2);
  in.read(reinterpret_cast<char*>(tokens_.data()), static_cast<std::streamsize>(bytes));
  if (tokens_.size() < static_cast<uint64_t>(seq) + 1) {
    throw InputError(path.string() + ": token file holds " + std::to_string(tokens_.size()) +
                     " tokens, expected at least model.seq+1=" + std::to_string(seq + 1));
  }
  for (uint64_t i = 0; i < tokens_.size(); ++i) {
    if (tokens_[i] >= vocab) {
      throw InputError(path.string() + ": token " + std::to_string(i) + " is " + std::to_string(tokens_[i]) +
                       ", expected < model.vocab=" + std::to_string(vocab));
    }
  }
}

void TokenFile::sample(uint64_t index, int32_t* tokens) const {
  uint64_t state = sample_state(seed_, index);
  const uint64_t windows = tokens_.size() - static_cast<uint64_t>(seq_);
  const uint64_t offset = splitmix64(state) % windows;
  for (int t = 0; t <= seq_; ++t) tokens[t] = tokens_[offset + t];
}

std::unique_ptr<TokenSource> make_token_source(const Config& config) {
  if (config.data.source == DataSource::file) {
    return std::make_unique<TokenFile>(config.data.path, config.model.vocab, config.model.seq, config.data.seed);
  }
  return std::make_unique<SyntheticTokens>(config.model.vocab, config.model.seq, config.data.seed, config.data.noise);
}

void fill_batch(const TokenSource& source, uint64_t first_index, int B, int T, int32_t* inputs,
                int32_t* targets) {
  std::vector<int32_t> sequence(T + 1);
  for (int b = 0; b < B; ++b) {
    source.sample(first_index + b, sequence.data());
    for (int t = 0; t < T; ++t) {
      inputs[b * T + t] = sequence[t];
      targets[b * T + t] = sequence[t + 1];
    }
  }
}

}  // namespace memfront
