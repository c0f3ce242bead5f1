// The CUDA ops (kernels/cuda) against the CPU reference functions
// (kernels/cpu/ops.h, kernels/quantize.h, kernels/compress.h) on random inputs
// of several shapes, odd sizes included, and the device memory they hand out.
//
// Tolerances:
// - bitwise: embedding, residual, the elementwise helpers, every number format
//   (codes, scales, payload bytes, decoded values; a NaN only has to be a NaN),
//   Top-K selections (attention key indices, gradient entries), and Top-K
//   attention with K >= T against the GPU's own dense attention;
// - 1e-5 of (|want| + rms(want)) for the elementwise math (GELU, AdamW, softmax);
// - 1e-4 for the reductions and fp32 GEMMs (LayerNorm, matmul, attention);
// - 2e-2 for GEMMs in bf16 (inputs rounded to 8 bits of mantissa);
// - sum: 1e-6 relative to a double sum on the host.
// Each test first skips, visibly, where there is no CUDA device.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/config.h"
#include "gpu_test.h"
#include "kernels/compress.h"
#include "kernels/cpu/ops.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/quantize.h"

namespace memfront {
namespace {

constexpr float kElementwise = 1e-5f;
constexpr float kReduction = 1e-4f;
constexpr float kBf16Gemm = 2e-2f;
const float kNaN = std::numeric_limits<float>::quiet_NaN();

// ---------------------------------------------------------------------------
// The ops under test and device arrays from their memory resource
// ---------------------------------------------------------------------------

struct Gpu {
  explicit Gpu(DType compute = DType::fp32) : ops(make(compute)), memory(ops->make_memory()) {}

  static std::unique_ptr<Ops> make(DType compute) {
    Config config;
    config.backend = Backend::cuda;
    config.precision.compute = compute;
    return make_cuda_ops(config, 0);
  }

  std::unique_ptr<Ops> ops;
  std::unique_ptr<MemoryResource> memory;
};

// A device copy of a host vector; read() brings it back.
template <class T>
class DeviceArray {
 public:
  DeviceArray(Gpu& gpu, const std::vector<T>& host)
      : ops_(*gpu.ops), memory_(*gpu.memory), count_(host.size()), data_(static_cast<T*>(memory_.allocate(bytes()))) {
    ops_.upload(data_, host.data(), bytes());
  }
  ~DeviceArray() { memory_.deallocate(data_, bytes()); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  T* get() const { return data_; }
  uint64_t bytes() const { return count_ * sizeof(T); }
  std::vector<T> read() const {
    std::vector<T> host(count_);
    ops_.download(host.data(), data_, bytes());
    return host;
  }

 private:
  Ops& ops_;
  MemoryResource& memory_;
  size_t count_;
  T* data_;
};

// ---------------------------------------------------------------------------
// Inputs and comparisons
// ---------------------------------------------------------------------------

std::vector<float> random_normal(size_t n, std::mt19937& rng, float stddev = 1.0f) {
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

std::vector<int32_t> random_tokens(size_t n, int V, std::mt19937& rng) {
  std::uniform_int_distribution<int32_t> dist(0, V - 1);
  std::vector<int32_t> v(n);
  for (int32_t& x : v) x = dist(rng);
  return v;
}

// Outputs start as NaN on both sides, so that an element an op fails to write shows.
std::vector<float> poison(size_t n) { return std::vector<float>(n, kNaN); }

bool same_float(float got, float want) {
  return (std::isnan(got) && std::isnan(want)) || std::bit_cast<uint32_t>(got) == std::bit_cast<uint32_t>(want);
}

// Reports the first few differences and their count.
constexpr int kReported = 5;

// Bit for bit; a NaN matches any NaN (the GPU writes the canonical NaN where the
// host keeps its operand's bits).
void expect_same_floats(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  size_t differences = 0;
  for (size_t i = 0; i < got.size(); i++) {
    if (same_float(got[i], want[i])) continue;
    if (++differences <= kReported) {
      ADD_FAILURE() << what << "[" << i << "]: got " << std::hexfloat << got[i] << ", want " << want[i];
    }
  }
  EXPECT_EQ(differences, 0u) << what << ": elements that differ";
}

template <class T>
void expect_same(const std::vector<T>& got, const std::vector<T>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  size_t differences = 0;
  for (size_t i = 0; i < got.size(); i++) {
    if (got[i] == want[i]) continue;
    if (++differences <= kReported) {
      ADD_FAILURE() << what << "[" << i << "]: got " << +got[i] << ", want " << +want[i];
    }
  }
  EXPECT_EQ(differences, 0u) << what << ": elements that differ";
}

// |got - want| <= tolerance * (|want| + rms(want)) per element: relative for large
// values, and relative to the array's scale for those that cancel to near zero.
void expect_close(const std::vector<float>& got, const std::vector<float>& want, float tolerance,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double square_sum = 0.0;
  for (float w : want) square_sum += static_cast<double>(w) * w;
  const double rms = want.empty() ? 0.0 : std::sqrt(square_sum / want.size());
  size_t differences = 0;
  for (size_t i = 0; i < got.size(); i++) {
    const double allowed = tolerance * (std::fabs(want[i]) + rms);
    if (std::fabs(static_cast<double>(got[i]) - want[i]) <= allowed) continue;
    if (++differences <= kReported) {
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", want " << want[i] << " (allowed " << allowed
                    << ")";
    }
  }
  EXPECT_EQ(differences, 0u) << what << ": elements outside the tolerance";
}

// ---------------------------------------------------------------------------
// Device, memory and the helpers of the training state
// ---------------------------------------------------------------------------

TEST(CudaOps, DescribesItsDevice) {
  MEMFRONT_REQUIRE_GPU();
  Gpu gpu;
  EXPECT_EQ(gpu.ops->backend(), Backend::cuda);
  const std::string name = gpu.ops->device_name();
  EXPECT_NE(name.find(" (sm_"), std::string::npos) << name;
  EXPECT_NE(name.find(", CUDA "), std::string::npos) << name;
  EXPECT_NE(gpu.ops->native_stream(), nullptr);
}

TEST(CudaOps, RejectsAComputePrecisionItHasNoGemmFor) {
  MEMFRONT_REQUIRE_GPU();
  EXPECT_THROW(Gpu{DType::int8}, std::invalid_argument);
}

TEST(CudaOps, ArenaMemoryIsDevicePoolMemory) {
  MEMFRONT_REQUIRE_GPU();
  Gpu gpu;
  reset_device_pool_high(*gpu.ops);
  const DevicePoolUsage before = device_pool_usage(*gpu.ops);
  EXPECT_EQ(before.ops_held_bytes, kCudaOpsHeldBytes);
  EXPECT_GT(before.device_total_bytes, 0u);
  EXPECT_LE(before.device_free_bytes, before.device_total_bytes);

  const std::vector<uint64_t> sizes = {uint64_t{1} << 20, (uint64_t{3} << 20) + 17, uint64_t{64} << 20};
  uint64_t total = 0;
  for (uint64_t size : sizes) total += size;
  // The pool rounds each allocation up to its granularity (at most 2 MiB).
  const uint64_t rounding_slack = sizes.size() * (uint64_t{2} << 20);
  {
    Arena arena(0, gpu.ops->make_memory());
    std::vector<Buffer> buffers;
    for (uint64_t size : sizes) buffers.push_back(arena.allocate(size, MemCategory::workspace, "test"));
    for (const Buffer& buffer : buffers) {
      cudaPointerAttributes attributes{};
      ASSERT_EQ(cudaPointerGetAttributes(&attributes, buffer.data()), cudaSuccess);
      EXPECT_EQ(attributes.type, cudaMemoryTypeDevice);
      EXPECT_EQ(attributes.device, before.device);
    }
    EXPECT_EQ(arena.peak_total(), total);

    const DevicePoolUsage live = device_pool_usage(*gpu.ops);
    EXPECT_GE(live.used_bytes - before.used_bytes, total);
    EXPECT_LE(live.used_bytes - before.used_bytes, total + rounding_slack);
    EXPECT_GE(live.used_high_bytes, before.used_bytes + total);
    EXPECT_LE(live.used_high_bytes, before.used_bytes + total + rounding_slack);
    EXPECT_GE(live.reserved_bytes, live.used_bytes);
  }
  const DevicePoolUsage after = device_pool_usage(*gpu.ops);
  EXPECT_EQ(after.used_bytes, before.used_bytes);
  EXPECT_GE(after.used_high_bytes, before.used_bytes + total);  // the high-water mark stays
  EXPECT_GE(after.reserved_bytes, before.used_bytes + total);   // the pool keeps what it reserved

  reset_device_pool_high(*gpu.ops);
  EXPECT_EQ(device_pool_usage(*gpu.ops).used_high_bytes, after.used_bytes);
}

TEST(CudaOps, PoolUsageNeedsTheCudaOps) {
  MEMFRONT_REQUIRE_GPU();
  const std::unique_ptr<Ops> cpu = make_cpu_ops();
  EXPECT_THROW(device_pool_usage(*cpu), std::invalid_argument);
  EXPECT_THROW(reset_device_pool_high(*cpu), std::invalid_argument);
}

TEST(CudaOps, CopyFillAddScale) {
  MEMFRONT_REQUIRE_GPU();
  Gpu gpu;
  std::mt19937 rng(1);
  const size_t n = 100003;
  const std::vector<float> x = random_normal(n, rng);
  const std::vector<float> y = random_normal(n, rng);
  DeviceArray<float> dx(gpu, x);
  DeviceArray<float> dy(gpu, y);
  expect_same_floats(dx.read(), x, "upload and download");

  DeviceArray<float> copied(gpu, poison(n));
  gpu.ops->copy(copied.get(), dx.get(), n * sizeof(float));
  expect_same_floats(copied.read(), x, "copy");

  gpu.ops->add(dy.get(), dx.get(), n);
  std::vector<float> want(n);
  for (size_t i = 0; i < n; i++) want[i] = y[i] + x[i];
  expect_same_floats(dy.read(), want, "add");

  gpu.ops->scale(dx.get(), n, -0.375f);
  for (size_t i = 0; i < n; i++) want[i] = x[i] * -0.375f;
  expect_same_floats(dx.read(), want, "scale");

  gpu.ops->fill(copied.get(), n, 2.5f);
  expect_same_floats(copied.read(), std::vector<float>(n, 2.5f), "fill");
}

TEST(CudaOps, SumIsDeterministicAndAccurate) {
  MEMFRONT_REQUIRE_GPU();
  Gpu gpu;
  std::mt19937 rng(2);
  for (size_t n : {size_t{1}, size_t{255}, size_t{1000003}}) {
    std::vector<float> x = random_normal(n, rng);
    for (float& v : x) v += 0.25f;  // a mean away from 0, so the relative check is meaningful
    double want = 0.0;
    for (float v : x) want += v;
    DeviceArray<float> dx(gpu, x);
    const double got = gpu.ops->sum(dx.get(), n);
    EXPECT_NEAR(got, want, 1e-6 * std::fabs(want)) << "n = " << n;
    EXPECT_EQ(std::bit_cast<uint64_t>(gpu.ops->sum(dx.get(), n)), std::bit_cast<uint64_t>(got)) << "n = " << n;
  }
  DeviceArray<float> one(gpu, std::vector<float>{1.0f});
  EXPECT_EQ(gpu.ops->sum(one.get(), 0), 0.0);
}

// ---------------------------------------------------------------------------
// Model ops
// ---------------------------------------------------------------------------

TEST(CudaOps, EmbeddingMatchesTheCpuBitForBit) {
  MEMFRONT_REQUIRE_GPU();
  Gpu gpu;
  std::mt19937 rng(3);
  const int B = 3, T = 7, C = 37, V = 5;  // 21 positions over 5 tokens: every token repeats
  const std::vector<int32_t> tokens = random_tokens(static_cast<size_t>(B) * T, V, rng);
  const std::vector<float> wte = random_normal(static_cast<size_t>(V) * C, rng);
  const std::vector<float> wpe = random_normal(static_cast<size_t>(T) * C, rng);
  std::vector<float> out = poison(static_cast<size_t>(B) * T * C);
  cpu::embedding_forward(out.data(), tokens.data(), wte.data(), wpe.data(), B, T, C);

  DeviceArray<int32_t> d_tokens(gpu, tokens);
  DeviceArray<float> d_wte(gpu, wte);
  DeviceArray<float> d_wpe(gpu, wpe);
  DeviceArray<float> d_out(gpu, poison(out.size()));
  gpu.ops->embedding_forward(d_out.get(), d_tokens.get(), d_wte.get(), d_wpe.get(), B, T, C);
  expect_same_floats(d_out.read(), out, "out");

  // Backward adds into gradients that already hold values.
  const std::vector<float> dout = random_normal(out.size(), rng);
  std::vector<float> dwte = random_normal(wte.size(), rng);
  std::vector<float> dwpe = random_normal(wpe.size(), rng);
  DeviceArray<float> d_dout(gpu, dout);
  DeviceArray<float> d_dwte(gpu, dwte);
  DeviceArray<float> d_dwpe(gpu, dwpe);
  cpu::embedding_backward(dwte.data(), dwpe.data(), dout.data(), tokens.data(), B, T, C);
  gpu.ops->embedding_backward(d_dwte.get(), d_dwpe.get(), d_dout.get(), d_tokens.get(), B, T, C);
  expect_same_floats(d_dwte.read(), dwte, "dwte");
  expect_same_floats(d_dwpe.read(), dwpe, "dwpe");
}

TEST(CudaOps, LayerNormMatchesTheCpu) {
  MEMFRONT_REQUIRE_GPU();
  Gpu gpu;
  std::mt19937 rng(4);
  for (const auto& [N, C] : std::vector<std::pair<int, int>>{{37, 129}, {64, 768}, {5, 7}}) {
    const std::string shape = " N=" + std::to_string(N) + " C=" + std::to_string(C);
    const size_t NC = static_cast<size_t>(N) * C;
    std::vector<float> inp = random_normal(NC, rng, 2.0f);
    for (float& v : inp) v += 1.5f;
    const std::vector<float> weight = random_normal(C, rng);
    const std::vector<float> bias = random_normal(C, rng);
    std::vector<float> out = poison(NC), mean = poison(N), rstd = poison(N);
    cpu::layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), weight.data(), bias.data(), N, C);

    DeviceArray<float> d_inp(gpu, inp), d_weight(gpu, weight), d_bias(gpu, bias);
    DeviceArray<float> d_out(gpu, poison(NC)), d_mean(gpu, poison(N)), d_rstd(gpu, poison(N));
    gpu.ops->layernorm_forward(d_out.get(), d_mean.get(), d_rstd.get(), d_inp.get(), d_weight.get(), d_bias.get(), N,
                               C);
    expect_close(d_out.read(), out, kElementwise * 10, "out" + shape);
    expect_close(d_mean.read(), mean, kElementwise, "mean" + shape);
    expect_close(d_rstd.read(), rstd, kElementwise, "rstd" + shape);

    const std::vector<float> dout = random_normal(NC, rng);
    std::vector<float> dinp = random_normal(NC, rng), dweight = random_normal(C, rng), dbias = random_normal(C, rng);
    DeviceArray<float> d_dout(gpu, dout), d_dinp(gpu, dinp), d_dweight(gpu, dweight), d_dbias(gpu, dbias);
    cpu::layernorm_backward(dinp.data(), dweight.data(), dbias.data(), dout.data(), inp.data(), weight.data(),
                            mean.data(), rstd.data(), N, C);
    gpu.ops->layernorm_backward(d_dinp.get(), d_dweight.get(), d_dbias.get(), d_dout.get(), d_inp.get(),
                                d_weight.get(), d_mean.get(), d_rstd.get(), N, C);
    expect_close(d_dinp.read(), dinp, kReduction, "dinp" + shape);
    expect_close(d_dweight.read(), dweight, kReduction, "dweight" + shape);
    expect_close(d_dbias.read(), dbias, kReduction, "dbias" + shape);
  }
}

void check_matmul(DType compute, float tolerance) {
  Gpu gpu(compute);
  std::mt19937 rng(5);
  struct Shape {
    int N, C, OC;
    bool bias;
  };
  for (const Shape& s : {Shape{37, 61, 129, true}, Shape{64, 128, 96, false}, Shape{1, 3, 5, true}}) {
    const std::string shape = std::string(" ") + std::string(to_string(compute)) + " N=" + std::to_string(s.N) +
                              " C=" + std::to_string(s.C) + " OC=" + std::to_string(s.OC);
    const size_t NC = static_cast<size_t>(s.N) * s.C, OCC = static_cast<size_t>(s.OC) * s.C;
    const size_t NOC = static_cast<size_t>(s.N) * s.OC;
    const std::vector<float> inp = random_normal(NC, rng), weight = random_normal(OCC, rng);
    const std::vector<float> bias = random_normal(s.OC, rng);
    std::vector<float> out = poison(NOC);
    cpu::matmul_forward(out.data(), inp.data(), weight.data(), s.bias ? bias.data() : nullptr, s.N, s.C, s.OC);
    DeviceArray<float> d_inp(gpu, inp), d_weight(gpu, weight), d_bias(gpu, bias), d_out(gpu, poison(NOC));
    gpu.ops->matmul_forward(d_out.get(), d_inp.get(), d_weight.get(), s.bias ? d_bias.get() : nullptr, s.N, s.C,
                            s.OC);
    expect_close(d_out.read(), out, tolerance, "out" + shape);

    const std::vector<float> dout = random_normal(NOC, rng);
    std::vector<float> dinp = random_normal(NC, rng), dweight = random_normal(OCC, rng);
    std::vector<float> dbias = random_normal(s.OC, rng);
    DeviceArray<float> d_dout(gpu, dout), d_dinp(gpu, dinp), d_dweight(gpu, dweight), d_dbias(gpu, dbias);
    cpu::matmul_backward(dinp.data(), dweight.data(), s.bias ? dbias.data() : nullptr, dout.data(), inp.data(),
                         weight.data(), s.N, s.C, s.OC);
    gpu.ops->matmul_backward(d_dinp.get(), d_dweight.get(), s.bias ? d_dbias.get() : nullptr, d_dout.get(),
                             d_inp.get(), d_weight.get(), s.N, s.C, s.OC);
    expect_close(d_dinp.read(), dinp, tolerance, "dinp" + shape);
    expect_close(d_dweight.read(), dweight, tolerance, "dweight" + shape);
    expect_close(d_dbias.read(), dbias, kReduction, "dbias" + shape);  // not a GEMM: fp32 either way
  }
}

TEST(CudaOps, MatmulInFp32MatchesTheCpu) {
  MEMFRONT_REQUIRE_GPU();
  check_matmul(DType::fp32, kReduction);
}

TEST(CudaOps, MatmulInBf16StaysNearTheCpu) {
  MEMFRONT_REQUIRE_GPU();
  check_matmul(DType::bf16, kBf16Gemm);
}

// ---------------------------------------------------------------------------
// Attention
// ---------------------------------------------------------------------------

struct AttentionShape {
  int B, T, C, NH;
  std::string name() const {
    return " B=" + std::to_string(B) + " T=" + std::to_string(T) + " C=" + std::to_string(C) +
           " NH=" + std::to_string(NH);
  }
  size_t qkv() const { return static_cast<size_t>(B) * T * 3 * C; }
  size_t out() const { return static_cast<size_t>(B) * T * C; }
  size_t rows() const { return static_cast<size_t>(B) * NH * T; }
};

// hs = 12 (a dot product with a tail after its 8 lanes), 32, and 96 (more than a
// warp's worth of dimensions); T not a multiple of 32 but for one.
const std::vector<AttentionShape> kAttentionShapes = {{2, 37, 48, 4}, {1, 64, 64, 2}, {2, 70, 96, 1}};

// qkv whose key slices repeat with period 3 (key t2 is key t2 % 3), so that every
// query's scores tie exactly in groups and the tie rule decides what Top-K keeps.
std::vector<float> qkv_with_tied_keys(const AttentionShape& s, std::mt19937& rng) {
  std::vector<float> qkv = random_normal(s.qkv(), rng);
  const size_t C3 = static_cast<size_t>(3) * s.C;
  for (int b = 0; b < s.B; b++) {
    for (int t = 3; t < s.T; t++) {
      float* key = qkv.data() + (static_cast<size_t>(b) * s.T + t) * C3 + s.C;
      const float* source = qkv.data() + (static_cast<size_t>(b) * s.T + t % 3) * C3 + s.C;
      std::copy(source, source + s.C, key);
    }
  }
  return qkv;
}

TEST(CudaOps, DenseAttentionMatchesTheCpu) {
  MEMFRONT_REQUIRE_GPU();
  Gpu gpu;
  std::mt19937 rng(6);
  for (const AttentionShape& s : kAttentionShapes) {
    const std::vector<float> qkv = random_normal(s.qkv(), rng);
    std::vector<float> out = poison(s.out()), probs = poison(s.rows() * s.T);
    cpu::attention_forward(out.data(), probs.data(), qkv.data(), s.B, s.T, s.C, s.NH);
    DeviceArray<float> d_qkv(gpu, qkv), d_out(gpu, poison(out.size())), d_probs(gpu, poison(probs.size()));
    DeviceArray<float> d_scratch(gpu, poison(gpu.ops->attention_scratch_floats(s.B, s.T, s.NH, 0)));
    gpu.ops->attention_forward(d_out.get(), d_probs.get(), d_qkv.get(), d_scratch.get(), s.B, s.T, s.C, s.NH);
    expect_close(d_out.read(), out, kReduction, "out" + s.name());
    expect_close(d_probs.read(), probs, kReduction, "probs" + s.name());

    const std::vector<float> dout = random_normal(s.out(), rng);
    std::vector<float> dqkv = random_normal(s.qkv(), rng), cpu_scratch(cpu::attention_scratch_floats(s.T));
    DeviceArray<float> d_dout(gpu, dout), d_dqkv(gpu, dqkv);
    cpu::attention_backward(dqkv.data(), dout.data(), qkv.data(), probs.data(), cpu_scratch.data(), s.B, s.T, s.C,
                            s.NH);
    gpu.ops->attention_backward(d_dqkv.get(), d_dout.get(), d_qkv.get(), d_probs.get(), d_scratch.get(), s.B, s.T, s.C,
                                s.NH);
    expect_close(d_dqkv.read(), dqkv, kReduction, "dqkv" + s.name());
  }
}

// Top-K of one shape and K against the CPU: the same keys, bit for bit, and the
// same numbers within the tolerance.
void check_topk_attention(Gpu& gpu, const AttentionShape& s, int K, const std::vector<float>& qkv,
                          std::mt19937& rng) {
  const std::string what = s.name() + " K=" + std::to_string(K);
  const size_t slots = s.rows() * K;
  std::vector<float> out = poison(s.out()), vals = poison(slots);
  std::vector<uint16_t> idx(slots, 0xFFFF);
  std::vector<float> cpu_scratch(cpu::attention_topk_scratch_floats(s.T));
  cpu::attention_topk_forward(out.data(), vals.data(), idx.data(), qkv.data(), cpu_scratch.data(), s.B, s.T, s.C, s.NH,
                              K);
  DeviceArray<float> d_qkv(gpu, qkv), d_out(gpu, poison(out.size())), d_vals(gpu, poison(slots));
  DeviceArray<uint16_t> d_idx(gpu, std::vector<uint16_t>(slots, 0xFFFF));
  DeviceArray<float> d_scratch(gpu, poison(gpu.ops->attention_scratch_floats(s.B, s.T, s.NH, K)));
  gpu.ops->attention_topk_forward(d_out.get(), d_vals.get(), d_idx.get(), d_qkv.get(), d_scratch.get(), s.B, s.T, s.C,
                                  s.NH, K);
  expect_same(d_idx.read(), idx, "idx" + what);
  expect_close(d_vals.read(), vals, kReduction, "vals" + what);
  expect_close(d_out.read(), out, kReduction, "out" + what);

  const std::vector<float> dout = random_normal(s.out(), rng);
  std::vector<float> dqkv = random_normal(s.qkv(), rng);
  DeviceArray<float> d_dout(gpu, dout), d_dqkv(gpu, dqkv);
  cpu::attention_topk_backward(dqkv.data(), dout.data(), qkv.data(), vals.data(), idx.data(), cpu_scratch.data(), s.B,
                               s.T, s.C, s.NH, K);
  gpu.ops->attention_topk_backward(d_dqkv.get(), d_dout.get(), d_qkv.get(), d_vals.get(), d_idx.get(),
                                   d_scratch.get(), s.B, s.T, s.C, s.NH, K);
  expect_close(d_dqkv.read(), dqkv, kReduction, "dqkv" + what);
}

TEST(CudaOps, TopkAttentionSelectsTheCpusKeys) {
  MEMFRONT_REQUIRE_GPU();
  Gpu gpu;
  std::mt19937 rng(7);
  for (const AttentionShape& s : kAttentionShapes) {
    const std::vector<float> qkv = random_normal(s.qkv(), rng);
    for (int K : {1, 5, s.T - 1, s.T, s.T + 3}) check_topk_attention(gpu, s, K, qkv, rng);
  }
}

TEST(CudaOps, TopkAttentionBreaksTiesLikeTheCpu) {
  MEMFRONT_REQUIRE_GPU();
  Gpu gpu;
  std::mt19937 rng(8);
  for (const AttentionShape& s : kAttentionShapes) {
    const std::vector<float> qkv = qkv_with_tied_keys(s, rng);
    for (int K : {1, 2, 4, 7, 33}) check_topk_attention(gpu, s, K, qkv, rng);
  }
}

// With K >= T Top-K keeps every causal key and does the dense arithmetic: its
// results are the GPU's dense results, bit for bit.
TEST(CudaOps, TopkAttentionWithAllKeysIsDenseAttention) {
  MEMFRONT_REQUIRE_GPU();
  Gpu gpu;
  std::mt19937 rng(9);
  for (const AttentionShape& s : kAttentionShapes) {
    const std::vector<float> qkv = random_normal(s.qkv(), rng);
    const std::vector<float> dout = random_normal(s.out(), rng);
    const std::vector<float> dqkv_start = random_normal(s.qkv(), rng);
    DeviceArray<float> d_qkv(gpu, qkv), d_dout(gpu, dout);
    DeviceArray<float> d_scratch(gpu, poison(gpu.ops->attention_scratch_floats(s.B, s.T, s.NH, s.T)));

    DeviceArray<float> dense_out(gpu, poison(s.out())), dense_probs(gpu, poison(s.rows() * s.T));
    DeviceArray<float> dense_dqkv(gpu, dqkv_start);
    gpu.ops->attention_forward(dense_out.get(), dense_probs.get(), d_qkv.get(), d_scratch.get(), s.B, s.T, s.C, s.NH);
    gpu.ops->attention_backward(dense_dqkv.get(), d_dout.get(), d_qkv.get(), dense_probs.get(), d_scratch.get(), s.B,
                                s.T, s.C, s.NH);
    const std::vector<float> probs = dense_probs.read();

    for (int K : {s.T, s.T + 3}) {
      const std::string what = s.name() + " K=" + std::to_string(K);
      const size_t slots = s.rows() * K;
      DeviceArray<float> out(gpu, poison(s.out())), vals(gpu, poison(slots)), dqkv(gpu, dqkv_start);
      DeviceArray<uint16_t> idx(gpu, std::vector<uint16_t>(slots, 0xFFFF));
      gpu.ops->attention_topk_forward(out.get(), vals.get(), idx.get(), d_qkv.get(), d_scratch.get(), s.B, s.T, s.C,
                                      s.NH, K);
      gpu.ops->attention_topk_backward(dqkv.get(), d_dout.get(), d_qkv.get(), vals.get(), idx.get(), d_scratch.get(),
                                       s.B, s.T, s.C, s.NH, K);
      expect_same_floats(out.read(), dense_out.read(), "out" + what);
      expect_same_floats(dqkv.read(), dense_dqkv.read(), "dqkv" + what);
      // Row r keeps keys 0..t with the dense weights, then empty slots (0, 0).
      std::vector<float> want_vals(slots);
      std::vector<uint16_t> want_idx(slots);
      for (size_t r = 0; r < s.rows(); r++) {
        const int t = static_cast<int>(r % s.T);
        for (int j = 0; j < K; j++) {
          want_idx[r * K + j] = j <= t ? static_cast<uint16_t>(j) : 0;
          want_vals[r * K + j] = j <= t ? probs[r * s.T + j] : 0.0f;
        }
      }
      expect_same(idx.read(), want_idx, "idx" + what);
      expect_same_floats(vals.read(), want_vals, "vals" + what);
    }
  }
}

// ---------------------------------------------------------------------------
// GELU, residual, loss, optimizer
// ---------------------------------------------------------------------------

TEST(CudaOps, GeluAndResidualMatchTheCpu) {
  MEMFRONT_REQUIRE_GPU();
  Gpu gpu;
  std::mt19937 rng(10);
  const size_t n = 10007;
  const std::vector<float> inp = random_normal(n, rng, 3.0f), other = random_normal(n, rng);
  const std::vector<float> dout = random_normal(n, rng);
  DeviceArray<float> d_inp(gpu, inp), d_other(gpu, other), d_dout(gpu, dout);

  std::vector<float> out = poison(n);
  cpu::gelu_forward(out.data(), inp.data(), n);
  DeviceArray<float> d_out(gpu, poison(n));
  gpu.ops->gelu_forward(d_out.get(), d_inp.get(), n);
  expect_close(d_out.read(), out, kElementwise, "gelu out");

  std::vector<float> dinp = random_normal(n, rng);
  DeviceArray<float> d_dinp(gpu, dinp);
  cpu::gelu_backward(dinp.data(), inp.data(), dout.data(), n);
  gpu.ops->gelu_backward(d_dinp.get(), d_inp.get(), d_dout.get(), n);
  expect_close(d_dinp.read(), dinp, kElementwise, "gelu dinp");

  cpu::residual_forward(out.data(), inp.data(), other.data(), n);
  gpu.ops->residual_forward(d_out.get(), d_inp.get(), d_other.get(), n);
  expect_same_floats(d_out.read(), out, "residual out");

  std::vector<float> da = random_normal(n, rng), db = random_normal(n, rng);
  DeviceArray<float> d_da(gpu, da), d_db(gpu, db);
  cpu::residual_backward(da.data(), db.data(), dout.data(), n);
  gpu.ops->residual_backward(d_da.get(), d_db.get(), d_dout.get(), n);
  expect_same_floats(d_da.read(), da, "residual da");
  expect_same_floats(d_db.read(), db, "residual db");
}

TEST(CudaOps, SoftmaxCrossEntropyMatchesTheCpuInPlace) {
  MEMFRONT_REQUIRE_GPU();
  Gpu gpu;
  std::mt19937 rng(11);
  for (const auto& [N, V] : std::vector<std::pair<int, int>>{{13, 1001}, {40, 37}, {2, 50304}}) {
    const std::string shape = " N=" + std::to_string(N) + " V=" + std::to_string(V);
    const size_t NV = static_cast<size_t>(N) * V;
    const std::vector<float> logits = random_normal(NV, rng, 4.0f);
    const std::vector<int32_t> targets = random_tokens(N, V, rng);
    std::vector<float> losses = poison(N), probs = poison(NV), dlogits = poison(NV);
    cpu::softmax_crossentropy_forward(losses.data(), probs.data(), logits.data(), targets.data(), N, V);
    const float dloss = 1.0f / N;
    cpu::softmax_crossentropy_backward(dlogits.data(), probs.data(), targets.data(), dloss, N, V);

    // On the GPU all three share one buffer: probs over logits, then dlogits over probs.
    DeviceArray<float> d_buffer(gpu, logits), d_losses(gpu, poison(N));
    DeviceArray<int32_t> d_targets(gpu, targets);
    gpu.ops->softmax_crossentropy_forward(d_losses.get(), d_buffer.get(), d_buffer.get(), d_targets.get(), N, V);
    expect_close(d_losses.read(), losses, kElementwise, "losses" + shape);
    expect_close(d_buffer.read(), probs, kElementwise, "probs" + shape);
    gpu.ops->softmax_crossentropy_backward(d_buffer.get(), d_buffer.get(), d_targets.get(), dloss, N, V);
    expect_close(d_buffer.read(), dlogits, kElementwise, "dlogits" + shape);
  }
}

TEST(CudaOps, AdamwMatchesTheCpu) {
  MEMFRONT_REQUIRE_GPU();
  Gpu gpu;
  std::mt19937 rng(12);
  const size_t n = 1001;
  std::vector<float> params = random_normal(n, rng), m = random_normal(n, rng, 0.1f), v = random_normal(n, rng, 0.1f);
  for (float& x : v) x = x * x;
  const std::vector<float> grads = random_normal(n, rng);
  DeviceArray<float> d_params(gpu, params), d_m(gpu, m), d_v(gpu, v), d_grads(gpu, grads);
  for (int t = 1; t <= 3; t++) {
    cpu::adamw_update(params.data(), grads.data(), m.data(), v.data(), n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, t);
    gpu.ops->adamw_update(d_params.get(), d_grads.get(), d_m.get(), d_v.get(), n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, t);
  }
  expect_close(d_params.read(), params, kElementwise, "params");
  expect_close(d_m.read(), m, kElementwise, "m");
  expect_close(d_v.read(), v, kElementwise, "v");
}

// ---------------------------------------------------------------------------
// Number formats: bit for bit
// ---------------------------------------------------------------------------

// Random rows, and rows that probe the rounding: zeros, a NaN and an infinity,
// subnormals, exact halfway cases of the int8 grid (scale 1) and of the fp8 grid
// (scale 1: 1.0625 between 1 and 1.125, 17 between 16 and 18, 2^-10 and 3 * 2^-10
// halfway between subnormal steps), negative zero.
std::vector<float> rows_to_quantize(uint64_t rows, uint64_t cols, std::mt19937& rng) {
  std::vector<float> x = random_normal(rows * cols, rng, 3.0f);
  auto row = [&](uint64_t r) { return x.begin() + static_cast<std::ptrdiff_t>(r * cols); };
  std::fill(row(0), row(1), 0.0f);
  x[1 * cols + 3] = kNaN;
  x[2 * cols + 5] = std::numeric_limits<float>::infinity();
  for (uint64_t c = 0; c < cols; c++) x[3 * cols + c] = std::ldexp(static_cast<float>(c % 5) - 2.0f, -140);
  const std::vector<float> int8_ties = {127.0f, 0.5f, 1.5f, 2.5f, -0.5f, -2.5f, 126.5f, -0.0f};
  const std::vector<float> fp8_ties = {448.0f, 1.0625f, 17.0f, -17.0f, 0x1p-10f, 0x3p-10f, -448.0f, -0.0f};
  for (uint64_t c = 0; c < cols; c++) {
    x[4 * cols + c] = int8_ties[c % int8_ties.size()];
    x[5 * cols + c] = fp8_ties[c % fp8_ties.size()];
  }
  return x;
}

TEST(CudaOps, RowQuantizationMatchesTheCpuBitForBit) {
  MEMFRONT_REQUIRE_GPU();
  Gpu gpu;
  std::mt19937 rng(13);
  const uint64_t rows = 9, cols = 133;
  const std::vector<float> src = rows_to_quantize(rows, cols, rng);
  DeviceArray<float> d_src(gpu, src);
  for (DType format : {DType::fp32, DType::bf16, DType::fp8e4m3, DType::int8}) {
    const std::string name(to_string(format));
    const uint64_t code_bytes = row_quantized_data_bytes(format, rows, cols);
    std::vector<unsigned char> codes(code_bytes, 0xA5);
    std::vector<float> scales = poison(rows);
    quantize_rows(codes.data(), scales.data(), src.data(), rows, cols, format);
    std::vector<float> decoded = poison(rows * cols);
    dequantize_rows(decoded.data(), codes.data(), scales.data(), rows, cols, format);

    DeviceArray<unsigned char> d_codes(gpu, std::vector<unsigned char>(code_bytes, 0x5A));
    DeviceArray<float> d_scales(gpu, poison(rows)), d_decoded(gpu, poison(rows * cols));
    gpu.ops->quantize_rows(d_codes.get(), d_scales.get(), d_src.get(), rows, cols, format);
    gpu.ops->dequantize_rows(d_decoded.get(), d_codes.get(), d_scales.get(), rows, cols, format);
    expect_same(d_codes.read(), codes, name + " codes");
    if (dtype_is_scaled(format)) expect_same_floats(d_scales.read(), scales, name + " scales");
    expect_same_floats(d_decoded.read(), decoded, name + " decoded");
  }
  EXPECT_THROW(gpu.ops->quantize_rows(nullptr, nullptr, d_src.get(), rows, cols, DType::int4), std::invalid_argument);
  EXPECT_THROW(gpu.ops->dequantize_rows(d_src.get(), nullptr, nullptr, rows, cols, DType::int4),
               std::invalid_argument);
}

// Values with specials sprinkled in: zeros, a NaN, an infinity, negative zero.
std::vector<float> values_to_encode(uint64_t n, std::mt19937& rng) {
  std::vector<float> x = random_normal(n, rng, 2.0f);
  for (uint64_t i = 0; i < n; i += 97) x[i] = 0.0f;
  if (n > 10) {
    x[5] = kNaN;
    x[7] = -0.0f;
  }
  if (n > 500) x[400] = std::numeric_limits<float>::infinity();
  return x;
}

TEST(CudaOps, BlockwiseFormatsMatchTheCpuBitForBit) {
  MEMFRONT_REQUIRE_GPU();
  Gpu gpu;
  std::mt19937 rng(14);
  // The payload starts at odd byte offsets inside its buffer: encoders may write
  // into the middle of a send buffer.
  constexpr uint64_t kOffset = 3;
  for (uint64_t n : {uint64_t{1}, uint64_t{2}, uint64_t{1001}, uint64_t{70001}}) {
    const std::vector<float> x = values_to_encode(n, rng);
    const std::vector<float> base = random_normal(n, rng);
    for (DType format : {DType::fp32, DType::bf16, DType::int8, DType::int4}) {
      for (int block : {1, 7, 64, 256, 5000}) {
        const std::string what =
            std::string(to_string(format)) + " n=" + std::to_string(n) + " block=" + std::to_string(block);
        const uint64_t bytes = blockwise_bytes(n, format, block);
        std::vector<unsigned char> payload(bytes + kOffset, 0);
        encode_blockwise(payload.data() + kOffset, x.data(), n, format, block);
        std::vector<float> decoded = poison(n), summed = base;
        decode_blockwise(decoded.data(), payload.data() + kOffset, n, format, block);
        add_decoded_blockwise(summed.data(), payload.data() + kOffset, n, format, block);

        DeviceArray<float> d_x(gpu, x), d_decoded(gpu, poison(n)), d_summed(gpu, base);
        DeviceArray<unsigned char> d_payload(gpu, std::vector<unsigned char>(bytes + kOffset, 0));
        unsigned char* at = d_payload.get() + kOffset;
        gpu.ops->encode_blockwise(at, d_x.get(), n, format, block);
        gpu.ops->decode_blockwise(d_decoded.get(), at, n, format, block);
        gpu.ops->add_decoded_blockwise(d_summed.get(), at, n, format, block);
        expect_same(d_payload.read(), payload, "payload " + what);
        expect_same_floats(d_decoded.read(), decoded, "decoded " + what);
        expect_same_floats(d_summed.read(), summed, "summed " + what);

        // With error feedback: x and the residual change too.
        std::vector<float> fx = x, residual = random_normal(n, rng, 0.1f);
        DeviceArray<float> d_fx(gpu, fx), d_residual(gpu, residual);
        encode_blockwise_with_feedback(payload.data() + kOffset, fx.data(), residual.data(), n, format, block);
        gpu.ops->encode_blockwise_with_feedback(at, d_fx.get(), d_residual.get(), n, format, block);
        expect_same(d_payload.read(), payload, "feedback payload " + what);
        expect_same_floats(d_fx.read(), fx, "feedback x " + what);
        expect_same_floats(d_residual.read(), residual, "feedback residual " + what);
      }
    }
  }
  DeviceArray<float> d_x(gpu, std::vector<float>(8, 1.0f));
  EXPECT_THROW(gpu.ops->encode_blockwise(nullptr, d_x.get(), 8, DType::fp8e4m3, 4), std::invalid_argument);
  EXPECT_THROW(gpu.ops->encode_blockwise(nullptr, d_x.get(), 8, DType::int8, 0), std::invalid_argument);
}

// ---------------------------------------------------------------------------
// Gradient Top-K: the CPU's entries, bit for bit
// ---------------------------------------------------------------------------

// Magnitudes from a small set, so that many entries tie, with a NaN and both zeros.
std::vector<float> values_with_ties(uint64_t n, std::mt19937& rng) {
  std::uniform_int_distribution<int> dist(-6, 6);
  std::vector<float> x(n);
  for (float& v : x) v = 0.5f * static_cast<float>(dist(rng));
  if (n > 10) {
    x[3] = kNaN;
    x[4] = -0.0f;
  }
  return x;
}

TEST(CudaOps, GradientTopkMatchesTheCpuBitForBit) {
  MEMFRONT_REQUIRE_GPU();
  Gpu gpu;
  std::mt19937 rng(15);
  for (uint64_t n : {uint64_t{1}, uint64_t{10}, uint64_t{1000}, uint64_t{100003}}) {
    for (bool ties : {false, true}) {
      const std::vector<float> x = ties ? values_with_ties(n, rng) : random_normal(n, rng);
      for (uint64_t k : {uint64_t{1}, (n + 9) / 10, n}) {
        for (bool feedback : {false, true}) {
          const std::string what = "n=" + std::to_string(n) + " k=" + std::to_string(k) + (ties ? " ties" : "") +
                                   (feedback ? " feedback" : "");
          std::vector<float> cx = x, residual = random_normal(n, rng, 0.25f), cpu_scratch(n);
          std::vector<unsigned char> payload(topk_bytes(k), 0);
          DeviceArray<float> d_x(gpu, cx), d_residual(gpu, residual);
          DeviceArray<unsigned char> d_payload(gpu, std::vector<unsigned char>(topk_bytes(k), 0xEE));
          DeviceArray<unsigned char> d_scratch(gpu, std::vector<unsigned char>(gpu.ops->topk_scratch_bytes(n), 0));
          encode_topk_with_feedback(payload.data(), cx.data(), feedback ? residual.data() : nullptr, n, k,
                                    cpu_scratch.data());
          gpu.ops->encode_topk_with_feedback(d_payload.get(), d_x.get(), feedback ? d_residual.get() : nullptr, n, k,
                                             d_scratch.get());
          expect_same(d_payload.read(), payload, "payload " + what);
          expect_same_floats(d_x.read(), cx, "x " + what);
          expect_same_floats(d_residual.read(), residual, "residual " + what);

          std::vector<float> dense = random_normal(n, rng);
          DeviceArray<float> d_dense(gpu, dense);
          add_topk(dense.data(), payload.data(), k, n);
          gpu.ops->add_topk(d_dense.get(), d_payload.get(), k, n);
          expect_same_floats(d_dense.read(), dense, "add_topk " + what);
        }
      }
    }
  }
}

TEST(CudaOps, GradientTopkRejectsWhatTheCpuRejects) {
  MEMFRONT_REQUIRE_GPU();
  Gpu gpu;
  const uint64_t n = 16;
  DeviceArray<float> d_x(gpu, std::vector<float>(n, 1.0f));
  DeviceArray<unsigned char> d_scratch(gpu, std::vector<unsigned char>(gpu.ops->topk_scratch_bytes(n), 0));
  DeviceArray<unsigned char> d_payload(gpu, std::vector<unsigned char>(topk_bytes(n + 1), 0));
  EXPECT_THROW(gpu.ops->encode_topk_with_feedback(d_payload.get(), d_x.get(), nullptr, n, n + 1, d_scratch.get()),
               std::invalid_argument);

  // Entry 2 points past the end: nothing is added, and the error names it.
  std::vector<unsigned char> payload(topk_bytes(4));
  for (uint32_t j = 0; j < 4; j++) {
    const uint32_t index = j == 2 ? static_cast<uint32_t>(n) : j;
    const float value = 1.0f;
    std::memcpy(payload.data() + 8 * j, &index, 4);
    std::memcpy(payload.data() + 8 * j + 4, &value, 4);
  }
  DeviceArray<unsigned char> d_bad(gpu, payload);
  DeviceArray<float> d_dense(gpu, std::vector<float>(n, 0.5f));
  try {
    gpu.ops->add_topk(d_dense.get(), d_bad.get(), 4, n);
    ADD_FAILURE() << "add_topk accepted an index past the end";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("entry 2 has index 16"), std::string::npos) << error.what();
  }
  expect_same_floats(d_dense.read(), std::vector<float>(n, 0.5f), "dense after a rejected payload");
}

}  // namespace
}  // namespace memfront
