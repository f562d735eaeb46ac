#include "io/file_hash.h"

#include <openssl/evp.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/input_file.h"

namespace fs = std::filesystem;

namespace sdtune::io {

namespace {

// sha256 of the file's bytes from `offset` to the end, read in 1 MiB blocks.
std::string sha256_from(const std::string& path, uint64_t offset) {
  InputFile file(path);
  if (offset > file.size()) throw Error(path, "is shorter than its safetensors header says");
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!context || EVP_DigestInit_ex(context.get(), EVP_sha256(), nullptr) != 1) throw Error(path, "cannot start a sha256 hash (OpenSSL)");
  std::vector<unsigned char> block(1 << 20);
  for (uint64_t at = offset; at < file.size();) {
    const ssize_t n = ::pread(file.fd(), block.data(), block.size(), off_t(at));
    if (n <= 0) throw Error(path, "could not be read to the end for its hash");
    EVP_DigestUpdate(context.get(), block.data(), size_t(n));
    at += uint64_t(n);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(context.get(), digest, &length);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) out += {hex[digest[i] >> 4], hex[digest[i] & 15]};
  return out;
}

bool is_sha256_hex(const std::string& name) {
  return name.size() == 64 && name.find_first_not_of("0123456789abcdef") == std::string::npos;
}

std::string hash_cache_path() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  const fs::path base = xdg && *xdg ? fs::path(xdg) : fs::path(home && *home ? home : "/tmp") / ".cache";
  return (base / "sdtune" / "hashes.json").string();
}

// Files this small are hashed each time: the cache would cost more than it saves.
constexpr uint64_t kCachedFromBytes = 64ull << 20;

}  // namespace

std::string sha256_of_file(const std::string& path) { return sha256_from(path, 0); }

std::string addnet_hash_of_safetensors(const std::string& path) {
  InputFile file(path);
  uint64_t header = 0;
  if (file.size() < 8 || ::pread(file.fd(), &header, 8, 0) != 8) throw Error(path, "is too short for a safetensors file");
  if (header > file.size() - 8) throw Error(path, "is shorter than its safetensors header says");
  return sha256_from(path, 8 + header);
}

std::string cached_sha256_of_file(const std::string& path) {
  std::error_code ec;
  const fs::path real = fs::canonical(path, ec);
  if (!ec && real.parent_path().filename() == "blobs" && is_sha256_hex(real.filename().string())) return real.filename().string();
  const uint64_t size = fs::file_size(path, ec);
  if (ec || size < kCachedFromBytes) return sha256_of_file(path);
  const auto mtime = std::chrono::duration_cast<std::chrono::nanoseconds>(fs::last_write_time(path, ec).time_since_epoch()).count();
  const std::string key = real.string(), cache_path = hash_cache_path();
  nlohmann::json cache = nlohmann::json::object();
  try {  // a damaged or foreign cache (wrong types included) is only a slower run
    cache = nlohmann::json::parse(read_file_if_exists(cache_path, kMaxJsonFileBytes, "hash cache"));
    const auto& entry = cache.at(key);
    const std::string known = entry.at("sha256").get<std::string>();
    if (entry.at("size").get<uint64_t>() == size && entry.at("mtime").get<int64_t>() == mtime && is_sha256_hex(known)) return known;
  } catch (const std::exception&) {
  }
  if (!cache.is_object()) cache = nlohmann::json::object();
  const std::string hash = sha256_of_file(path);
  cache[key] = {{"size", size}, {"mtime", mtime}, {"sha256", hash}};
  try {  // a read-only home keeps the hash uncached; a path that is no UTF-8 never matches again
    fs::create_directories(fs::path(cache_path).parent_path());
    const std::string text = cache.dump(1, ' ', false, nlohmann::json::error_handler_t::replace);
    write_file_atomically(cache_path, [&](std::ostream& out) { out << text << "\n"; }, OntoInput::Allow);
  } catch (const std::exception&) {
  }
  return hash;
}

}  // namespace sdtune::io
