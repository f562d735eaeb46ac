#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/printable.h"
#include "io/atomic_file.h"
#include "io/input_file.h"
#include "io/json_file.h"

namespace sdtune::io {

namespace {

struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4}, {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
    {DType::I64, "I64", 8}, {DType::I32, "I32", 4}, {DType::I16, "I16", 2}, {DType::I8, "I8", 1},
    {DType::U8, "U8", 1},   {DType::Bool, "BOOL", 1},
};

const DTypeInfo& info(DType dtype) {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d;
  throw std::logic_error("unknown dtype enum");
}

bool parse_dtype(const std::string& name, DType* out) {
  for (const auto& d : kDTypes)
    if (name == d.name) {
      *out = d.dtype;
      return true;
    }
  return false;
}

// Reads a non-negative integer that fits in 63 bits, else throws.
uint64_t as_offset(const nlohmann::json& v, const std::string& path, const std::string& what) {
  if (!v.is_number_unsigned()) throw Error(path, what + " must be a non-negative integer, got " + json_excerpt(v));
  uint64_t x = v.get<uint64_t>();
  if (x > uint64_t(std::numeric_limits<int64_t>::max())) throw Error(path, what + " is too large");
  return x;
}

TensorEntry parse_entry(const std::string& name, const nlohmann::json& j, const std::string& path) {
  const std::string where = "tensor " + in_quotes(name);
  if (!j.is_object()) throw Error(path, where + ": header entry is not an object");
  TensorEntry e;
  e.name = name;
  auto dt = j.find("dtype");
  if (dt == j.end() || !dt->is_string()) throw Error(path, where + ": missing \"dtype\"");
  if (!parse_dtype(dt->get<std::string>(), &e.dtype))
    throw Error(path, where + ": unsupported dtype " + in_quotes(dt->get<std::string>()));
  auto shape = j.find("shape");
  if (shape == j.end() || !shape->is_array()) throw Error(path, where + ": missing \"shape\" array");
  // numel * itemsize must not overflow: track it in 128 bits' worth of care.
  uint64_t bytes = info(e.dtype).size;
  bool overflow = false;
  for (const auto& d : *shape) {
    uint64_t dim = as_offset(d, path, where + ": shape dimension");
    e.shape.push_back(int64_t(dim));
    if (dim != 0 && bytes > std::numeric_limits<uint64_t>::max() / dim) overflow = true;
    bytes *= dim;
  }
  if (overflow) throw Error(path, where + ": shape is so large that its byte size overflows");
  auto offsets = j.find("data_offsets");
  if (offsets == j.end() || !offsets->is_array() || offsets->size() != 2)
    throw Error(path, where + ": \"data_offsets\" must be [begin, end]");
  e.begin = as_offset((*offsets)[0], path, where + ": data offset");
  e.end = as_offset((*offsets)[1], path, where + ": data offset");
  if (e.end < e.begin) throw Error(path, where + ": data_offsets end before they begin");
  if (e.end - e.begin != bytes)
    throw Error(path, where + ": " + std::to_string(e.end - e.begin) + " bytes of data for dtype " +
                          dtype_name(e.dtype) + " and shape of " + std::to_string(bytes) + " bytes");
  return e;
}

}  // namespace

const char* dtype_name(DType dtype) { return info(dtype).name; }
size_t dtype_size(DType dtype) { return info(dtype).size; }

int64_t TensorEntry::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

MappedFile::MappedFile(const std::string& path) : path_(path) {
  const InputFile file(path);
  size_ = file.size();
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, file.fd(), 0);
    if (p == MAP_FAILED) throw Error(path, std::string("cannot map file: ") + std::strerror(errno));
    data_ = static_cast<uint8_t*>(p);
  }
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(data_, size_);
}

SafetensorsFile::SafetensorsFile(const std::string& path) : mapping_(std::make_shared<MappedFile>(path)) {
  const uint64_t size = mapping_->size();
  if (size < 8) throw Error(path, "file too small to be safetensors (" + std::to_string(size) + " bytes)");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | mapping_->data()[i];
  if (header_len > kMaxHeaderBytes)
    throw Error(path, "header length " + std::to_string(header_len) + " exceeds the limit of " +
                          std::to_string(kMaxHeaderBytes) + " bytes (not a safetensors file?)");
  if (header_len > size - 8)
    throw Error(path, "header length " + std::to_string(header_len) + " runs past the end of the " +
                          std::to_string(size) + "-byte file (truncated?)");
  data_start_ = 8 + header_len;
  const uint64_t data_size = size - data_start_;

  const nlohmann::json header =
      parse_json_text(std::string(reinterpret_cast<const char*>(mapping_->data()) + 8, size_t(header_len)), path + " (header)");
  if (!header.is_object()) throw Error(path, "header is not a JSON object");

  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) throw Error(path, "__metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) throw Error(path, "__metadata__ value " + in_quotes(m.key()) + " is not a string");
        metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    tensors_.push_back(parse_entry(it.key(), *it, path));
  }

  // The buffer must be covered exactly once, in order: no overlaps, gaps, or bytes past the end.
  std::vector<const TensorEntry*> by_offset;
  for (const auto& t : tensors_) by_offset.push_back(&t);
  std::stable_sort(by_offset.begin(), by_offset.end(), [](const TensorEntry* a, const TensorEntry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t expected = 0;
  for (const TensorEntry* t : by_offset) {
    if (t->end > data_size)
      throw Error(path, "tensor " + in_quotes(t->name) + ": data [" + std::to_string(t->begin) + ", " +
                            std::to_string(t->end) + ") lies outside the " + std::to_string(data_size) +
                            "-byte data buffer (truncated file?)");
    if (t->begin < expected)
      throw Error(path, "tensor " + in_quotes(t->name) + ": data overlaps the previous tensor's");
    if (t->begin > expected)
      throw Error(path, "tensor " + in_quotes(t->name) + ": gap of " + std::to_string(t->begin - expected) +
                            " bytes before its data");
    expected = t->end;
  }
  if (expected != data_size)
    throw Error(path, std::to_string(data_size - expected) + " bytes after the last tensor belong to no tensor");
  // nlohmann's object iterates in key order already; keep it explicit.
  std::sort(tensors_.begin(), tensors_.end(),
            [](const TensorEntry& a, const TensorEntry& b) { return a.name < b.name; });
}

const TensorEntry* SafetensorsFile::find(const std::string& name) const {
  auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                             [](const TensorEntry& e, const std::string& n) { return e.name < n; });
  return (it != tensors_.end() && it->name == name) ? &*it : nullptr;
}

const TensorEntry& SafetensorsFile::at(const std::string& name) const {
  const TensorEntry* e = find(name);
  if (!e) throw Error(path(), "no tensor named " + in_quotes(name));
  return *e;
}

SafetensorsSet::SafetensorsSet(const std::vector<std::string>& paths) {
  for (const auto& path : paths) files_.emplace_back(path);
}

SafetensorsSet::SafetensorsSet(const SafetensorsFile& file, NameMap names) : files_{file}, names_(std::move(names)) {}

// The bytes of `stored` inside `entry` as a tensor entry of its own.
static TensorEntry view_of(const TensorEntry& entry, const StoredTensor& stored, const std::string& path) {
  TensorEntry view = entry;
  if (stored.parts > 1) {
    if (entry.shape.empty() || entry.shape[0] % stored.parts != 0)
      throw Error(path, "tensor " + in_quotes(entry.name) + " of shape " + shape_text(entry.shape) + " cannot be split into " +
                            std::to_string(stored.parts) + " equal parts (q, k, v)");
    view.shape[0] /= stored.parts;
    const uint64_t bytes = entry.nbytes() / uint64_t(stored.parts);
    view.begin = entry.begin + uint64_t(stored.part) * bytes;
    view.end = view.begin + bytes;
  }
  if (stored.conv1x1 && view.shape.size() == 4 && view.shape[2] == 1 && view.shape[3] == 1) view.shape.resize(2);
  return view;
}

SafetensorsSet::Found SafetensorsSet::find(const std::string& name) const {
  if (names_) {
    const SafetensorsFile& file = files_.front();
    if (auto cached = views_.find(name); cached != views_.end()) return {&file, &cached->second};
    const StoredTensor stored = names_(name);
    const TensorEntry* entry = stored.name.empty() ? nullptr : file.find(stored.name);
    if (!entry) return {nullptr, nullptr};
    return {&file, &views_.emplace(name, view_of(*entry, stored, file.path())).first->second};
  }
  for (const auto& file : files_)
    if (const TensorEntry* entry = file.find(name)) return {&file, entry};
  return {nullptr, nullptr};
}

std::string SafetensorsSet::shown_name(const std::string& name) const {
  const std::string stored = names_ ? names_(name).name : name;
  if (stored == name || stored.empty()) return in_quotes(name);
  return in_quotes(stored) + " (diffusers " + in_quotes(name) + ")";
}

std::string SafetensorsSet::describe() const {
  if (files_.size() == 1) return files_[0].path();
  return std::to_string(files_.size()) + " shards starting with " + (files_.empty() ? "?" : files_[0].path());
}

void write_safetensors(const std::string& path, std::vector<TensorBytes> tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::sort(tensors.begin(), tensors.end(), [](const TensorBytes& a, const TensorBytes& b) { return a.name < b.name; });
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    if (t.name == "__metadata__") throw Error(path, "a tensor cannot be named __metadata__");
    if (i > 0 && tensors[i - 1].name == t.name) throw Error(path, "tensor " + in_quotes(t.name) + " given twice");
    uint64_t expected = dtype_size(t.dtype);
    for (int64_t d : t.shape) expected *= uint64_t(d);
    if (expected != t.nbytes)
      throw Error(path, "tensor " + in_quotes(t.name) + ": " + std::to_string(t.nbytes) + " bytes do not match its shape");
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.nbytes}}};
    offset += t.nbytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data 8-byte aligned, as the reference writer does
  write_file_atomically(path, [&](std::ostream& out) {
    uint64_t n = text.size();
    char len[8];
    for (int i = 0; i < 8; ++i) len[i] = char((n >> (8 * i)) & 0xff);
    out.write(len, 8);
    out.write(text.data(), std::streamsize(text.size()));
    for (const auto& t : tensors) out.write(static_cast<const char*>(t.data), std::streamsize(t.nbytes));
  });
}

}  // namespace sdtune::io
