#include "core/arena.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <utility>

#include "core/annotate.h"

namespace memfront {

std::string_view to_string(MemCategory category) {
  switch (category) {
    case MemCategory::params: return "params";
    case MemCategory::grads: return "grads";
    case MemCategory::optimizer: return "optimizer";
    case MemCategory::activations: return "activations";
    case MemCategory::recompute: return "recompute";
    case MemCategory::comm: return "comm";
    case MemCategory::workspace: return "workspace";
  }
  return "?";
}

std::optional<MemCategory> parse_mem_category(std::string_view name) {
  for (MemCategory c : kAllMemCategories) {
    if (to_string(c) == name) return c;
  }
  return std::nullopt;
}

namespace {
// 64-byte alignment: a cache line, and enough for any SIMD load. The size
// class of a request, too: aligned_alloc needs a multiple of the alignment.
uint64_t host_block_bytes(uint64_t bytes) { return bytes == 0 ? 64 : (bytes + 63) / 64 * 64; }
}  // namespace

HostMemory::~HostMemory() {
  for (const auto& [bytes, pointer] : kept_) std::free(pointer);
}

void* HostMemory::allocate(uint64_t bytes) {
  const uint64_t block = host_block_bytes(bytes);
  if (const auto kept = kept_.find(block); kept != kept_.end()) {
    void* p = kept->second;
    kept_.erase(kept);
    return p;
  }
  void* p = std::aligned_alloc(64, block);
  if (!p) throw std::bad_alloc();
  reserved_ += block;
  reserved_high_ = std::max(reserved_high_, reserved_);
  return p;
}

void HostMemory::deallocate(void* pointer, uint64_t bytes) { kept_.emplace(host_block_bytes(bytes), pointer); }

Buffer::Buffer(Buffer&& other) noexcept
    : arena_(std::exchange(other.arena_, nullptr)),
      data_(std::exchange(other.data_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)),
      category_(other.category_),
      name_(std::move(other.name_)) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    reset();
    arena_ = std::exchange(other.arena_, nullptr);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
    category_ = other.category_;
    name_ = std::move(other.name_);
  }
  return *this;
}

void Buffer::reset() {
  if (arena_ && data_) arena_->release(*this);
  arena_ = nullptr;
  data_ = nullptr;
  bytes_ = 0;
}

Arena::Arena(uint64_t capacity_bytes, std::unique_ptr<MemoryResource> memory)
    : capacity_(capacity_bytes), memory_(std::move(memory)) {}

Arena::~Arena() {
  // Buffers must not outlive their arena: that would be a use-after-free later.
  if (live_total_ != 0) {
    std::fprintf(stderr, "memfront: arena destroyed with %llu bytes still allocated\n",
                 static_cast<unsigned long long>(live_total_));
  }
}

Buffer Arena::allocate(uint64_t bytes, MemCategory category, std::string_view name) {
  if (capacity_ != 0 && live_total_ + bytes > capacity_) {
    throw OutOfMemory("out of memory: allocating " + format_bytes(bytes) + " of " +
                      std::string(to_string(category)) + " for '" + std::string(name) +
                      "' with " + format_bytes(live_total_) + " live of a " +
                      format_bytes(capacity_) + " capacity");
  }
  Buffer buffer;
  buffer.data_ = memory_->allocate(bytes);
  buffer.arena_ = this;
  buffer.bytes_ = bytes;
  buffer.category_ = category;
  buffer.name_ = name;

  int c = static_cast<int>(category);
  live_[c] += bytes;
  live_total_ += bytes;
  if (live_[c] > peak_[c]) peak_[c] = live_[c];
  if (live_total_ > peak_total_) peak_total_ = live_total_;
  ++allocation_count_;
  if (!listeners_.empty()) {
    notify({annotate::now_ns(), category, static_cast<int64_t>(bytes), live_[c], live_total_,
            buffer.name_});
  }
  return buffer;
}

void Arena::release(Buffer& buffer) {
  int c = static_cast<int>(buffer.category_);
  live_[c] -= buffer.bytes_;
  live_total_ -= buffer.bytes_;
  if (!listeners_.empty()) {
    notify({annotate::now_ns(), buffer.category_, -static_cast<int64_t>(buffer.bytes_), live_[c],
            live_total_, buffer.name_});
  }
  memory_->deallocate(buffer.data_, buffer.bytes_);
}

int Arena::subscribe(Listener listener) {
  listeners_.emplace_back(next_listener_, std::move(listener));
  return next_listener_++;
}

void Arena::unsubscribe(int handle) {
  std::erase_if(listeners_, [handle](const auto& entry) { return entry.first == handle; });
}

void Arena::notify(const MemEvent& event) {
  for (const auto& [handle, listener] : listeners_) listener(event);
}

std::string format_bytes(uint64_t bytes) {
  char text[32];
  const double b = static_cast<double>(bytes);
  if (bytes < 1024) {
    std::snprintf(text, sizeof text, "%llu B", static_cast<unsigned long long>(bytes));
  } else if (b < 1024.0 * 1024) {
    std::snprintf(text, sizeof text, "%.1f KiB", b / 1024);
  } else if (b < 1024.0 * 1024 * 1024) {
    std::snprintf(text, sizeof text, "%.1f MiB", b / (1024.0 * 1024));
  } else {
    std::snprintf(text, sizeof text, "%.2f GiB", b / (1024.0 * 1024 * 1024));
  }
  return text;
}

std::optional<double> byte_unit_scale(std::string_view unit) {
  static const std::pair<std::string_view, double> units[] = {
      {"", 1.0},         {"B", 1.0},         {"KiB", 0x1p10},  {"MiB", 0x1p20}, {"GiB", 0x1p30},
      {"TiB", 0x1p40},   {"KB", 1e3},        {"MB", 1e6},      {"GB", 1e9},     {"TB", 1e12}};
  for (const auto& [name, scale] : units) {
    if (unit == name) return scale;
  }
  return std::nullopt;
}

std::optional<uint64_t> parse_bytes(std::string_view text) {
  // from_chars, not strtod: the viewer runs under the user's locale, where
  // strtod would read "1.5GiB" as 1 wherever the decimal mark is ','.
  const size_t first = text.find_first_not_of(' ');
  if (first == std::string_view::npos) return std::nullopt;
  const char* const digits = text.data() + first;
  double value = 0;
  const auto [end, error] = std::from_chars(digits, text.data() + text.size(), value);
  if (error != std::errc() || !std::isfinite(value) || !(value >= 0)) return std::nullopt;
  std::string unit(end, text.data() + text.size());
  std::erase(unit, ' ');
  const std::optional<double> scale = byte_unit_scale(unit);
  if (!scale) return std::nullopt;
  const double bytes = value * *scale + 0.5;
  // Beyond uint64_t the conversion is undefined; no memory is that large.
  if (!(bytes < 0x1p64)) return std::nullopt;
  return static_cast<uint64_t>(bytes);
}

}  // namespace memfront
