// safetensors files: a memory-mapped, validated reader and an atomic writer. No LibTorch here;
// io/tensor_io.h turns entries into tensors.
//
// Layout: 8-byte little-endian header length N, N bytes of JSON header
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data buffer that the offsets index.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace sdtune::io {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, Bool };

const char* dtype_name(DType dtype);
size_t dtype_size(DType dtype);

struct TensorEntry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // offsets into the data buffer
  uint64_t end = 0;
  int64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

// A read-only view of a file mapped copy-on-write: writes through `data` would change only this
// process's pages, so zero-copy tensors over it can be modified in place without touching the file.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

class SafetensorsFile {
 public:
  // Largest header accepted (the reference implementation uses the same limit).
  static constexpr uint64_t kMaxHeaderBytes = 100u * 1024 * 1024;

  // Maps and validates the whole header; tensor data is only touched when read.
  explicit SafetensorsFile(const std::string& path);

  const std::string& path() const { return mapping_->path(); }
  const std::vector<TensorEntry>& tensors() const { return tensors_; }  // sorted by name
  const TensorEntry* find(const std::string& name) const;
  const TensorEntry& at(const std::string& name) const;  // throws Error naming the file and tensor
  bool contains(const std::string& name) const { return find(name) != nullptr; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // Raw bytes of one tensor inside the mapping (valid while the mapping lives).
  uint8_t* data(const TensorEntry& entry) const { return mapping_->data() + data_start_ + entry.begin; }
  std::shared_ptr<MappedFile> mapping() const { return mapping_; }

 private:
  std::shared_ptr<MappedFile> mapping_;
  uint64_t data_start_ = 0;
  std::vector<TensorEntry> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Where a tensor that a model asks for by its diffusers name is stored in a file that names tensors
// otherwise (a single-file checkpoint; see checkpoint_keys.h).
struct StoredTensor {
  std::string name;          // "" when the name has no place in the file
  int part = 0, parts = 1;   // rows part/parts of the stored tensor
  bool conv1x1 = false;      // a [C, C, 1, 1] convolution weight read as the linear weight [C, C]
};
using NameMap = std::function<StoredTensor(const std::string& name)>;

// The tensors of one model component, searched by name: the shards of a diffusers folder, or one
// file whose tensors are found through a NameMap (parts and reshapes are views of the same bytes).
class SafetensorsSet {
 public:
  explicit SafetensorsSet(const std::vector<std::string>& paths);
  SafetensorsSet(const SafetensorsFile& file, NameMap names);
  struct Found {
    const SafetensorsFile* file;
    const TensorEntry* entry;
  };
  // {nullptr, nullptr} when no shard has `name`.
  Found find(const std::string& name) const;
  std::string describe() const;  // the file name, or "N shards in DIR"
  // How messages name `name`: the file's own name for it too where that differs.
  std::string shown_name(const std::string& name) const;

 private:
  std::vector<SafetensorsFile> files_;
  NameMap names_;
  mutable std::map<std::string, TensorEntry> views_;  // entries made through names_, by requested name
};

// One tensor to write: raw little-endian bytes in row-major order.
struct TensorBytes {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
  uint64_t nbytes;
};

// Writes `tensors` (sorted by name) and `metadata` atomically to `path`.
void write_safetensors(const std::string& path, std::vector<TensorBytes> tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace sdtune::io
