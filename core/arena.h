#pragma once
// Arena: the one allocator for every tensor. Each allocation carries a memory
// category; the arena keeps live and peak bytes per category and in total,
// enforces an optional capacity (an emulated device size: a breach throws
// OutOfMemory, which a trial records as status "oom"), and tells subscribers of
// every allocation and release, for the memory timeline.
//
// Peak memory is measured here, never computed: callers must not allocate
// tensors any other way.
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace memfront {

enum class MemCategory : int { params, grads, optimizer, activations, recompute, comm, workspace };
inline constexpr int kMemCategoryCount = 7;
inline constexpr std::array<MemCategory, kMemCategoryCount> kAllMemCategories = {
    MemCategory::params,      MemCategory::grads, MemCategory::optimizer, MemCategory::activations,
    MemCategory::recompute,   MemCategory::comm,  MemCategory::workspace};

std::string_view to_string(MemCategory category);
std::optional<MemCategory> parse_mem_category(std::string_view name);

// Bytes by category, indexed by static_cast<int>(MemCategory).
using BytesByCategory = std::array<uint64_t, kMemCategoryCount>;

class OutOfMemory : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Where the bytes come from: host memory by default; the CUDA backend plugs in
// device memory.
class MemoryResource {
 public:
  virtual ~MemoryResource() = default;
  virtual void* allocate(uint64_t bytes) = 0;
  virtual void deallocate(void* pointer, uint64_t bytes) = 0;
  // The most bytes the resource held at once, in use and kept for reuse
  // together, where it keeps freed memory itself; nullopt where it does not
  // (the CUDA pool reports its own reservation).
  virtual std::optional<uint64_t> reserved_high_bytes() const { return std::nullopt; }
};

// 64-byte aligned host memory that keeps what is freed for the next request
// of the same size (sizes rounded up to 64 bytes) instead of returning it to
// the C library, which would give large blocks back to the OS. A training step
// allocates the same sizes in the same order every step, so from the second
// step on every request is served from kept blocks, already faulted in: no
// page faults, no system calls. The Arena's accounting is logical and does
// not see the pool: it counts the bytes asked for, in use.
class HostMemory final : public MemoryResource {
 public:
  HostMemory() = default;
  ~HostMemory() override;
  HostMemory(const HostMemory&) = delete;
  HostMemory& operator=(const HostMemory&) = delete;

  void* allocate(uint64_t bytes) override;
  void deallocate(void* pointer, uint64_t bytes) override;
  std::optional<uint64_t> reserved_high_bytes() const override { return reserved_high_; }
  uint64_t reserved_bytes() const { return reserved_; }

 private:
  std::unordered_multimap<uint64_t, void*> kept_;  // freed blocks by rounded size
  uint64_t reserved_ = 0;       // bytes taken from the C library and not given back
  uint64_t reserved_high_ = 0;
};

struct MemEvent {
  int64_t time_ns;     // annotate::now_ns() clock
  MemCategory category;
  int64_t delta_bytes;  // > 0 allocation, < 0 release
  uint64_t live_category;
  uint64_t live_total;
  std::string_view name;  // what the tensor is ("l3.qkv", "wte", ...)
};

class Arena;

// Move-only owner of one allocation; releases it on destruction.
class Buffer {
 public:
  Buffer() = default;
  ~Buffer() { reset(); }
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() const { return data_; }
  template <class T>
  T* as() const { return static_cast<T*>(data_); }
  uint64_t bytes() const { return bytes_; }
  MemCategory category() const { return category_; }
  explicit operator bool() const { return data_ != nullptr; }
  void reset();  // releases now

 private:
  friend class Arena;
  Arena* arena_ = nullptr;
  void* data_ = nullptr;
  uint64_t bytes_ = 0;
  MemCategory category_ = MemCategory::workspace;
  std::string name_;
};

class Arena {
 public:
  // capacity_bytes == 0: unlimited.
  explicit Arena(uint64_t capacity_bytes = 0,
                 std::unique_ptr<MemoryResource> memory = std::make_unique<HostMemory>());
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  // Uninitialized bytes. Throws OutOfMemory if live + bytes would pass the capacity.
  Buffer allocate(uint64_t bytes, MemCategory category, std::string_view name);
  template <class T>
  Buffer allocate_array(uint64_t count, MemCategory category, std::string_view name) {
    return allocate(count * sizeof(T), category, name);
  }

  uint64_t live(MemCategory category) const { return live_[static_cast<int>(category)]; }
  uint64_t peak(MemCategory category) const { return peak_[static_cast<int>(category)]; }
  uint64_t live_total() const { return live_total_; }
  uint64_t peak_total() const { return peak_total_; }
  const BytesByCategory& live_by_category() const { return live_; }
  const BytesByCategory& peak_by_category() const { return peak_; }
  uint64_t capacity() const { return capacity_; }
  uint64_t allocation_count() const { return allocation_count_; }
  // Where the bytes come from, for its own view of them (reserved_high_bytes).
  const MemoryResource& memory() const { return *memory_; }

  using Listener = std::function<void(const MemEvent&)>;
  int subscribe(Listener listener);  // returns a handle for unsubscribe
  void unsubscribe(int handle);

 private:
  friend class Buffer;
  void release(Buffer& buffer);
  void notify(const MemEvent& event);

  uint64_t capacity_;
  std::unique_ptr<MemoryResource> memory_;
  BytesByCategory live_{};
  BytesByCategory peak_{};
  uint64_t live_total_ = 0;
  uint64_t peak_total_ = 0;
  uint64_t allocation_count_ = 0;
  std::vector<std::pair<int, Listener>> listeners_;
  int next_listener_ = 0;
};

// "12.0 MiB", "1.50 GiB": for human summaries and errors.
std::string format_bytes(uint64_t bytes);
// "1048576", "512MiB", "1.5 GiB", "16GB" (binary KiB/MiB/GiB/TiB, decimal KB/MB/GB/TB);
// nullopt for anything else, and for sizes of 2^64 bytes or more.
std::optional<uint64_t> parse_bytes(std::string_view text);
// The bytes in one of parse_bytes's units ("" and "B": 1, "KiB": 1024, ...);
// nullopt for any other text.
std::optional<double> byte_unit_scale(std::string_view unit);

}  // namespace memfront
