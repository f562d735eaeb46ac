// The file hashes A1111 writes into the PNG parameters and civitai looks models up by:
//   Model hash   sha256 of the whole checkpoint file, first 10 hex digits
//   Lora hashes  kohya's "addnet" hash: sha256 of a .safetensors file after its header, first 12
//   TI hashes    sha256 of the whole embedding file, first 12
// (A1111 modules/hashes.py calculate_sha256 / addnet_hash_safetensors, network.py and
// textual_inversion.py set_hash.) Hashes of large files are kept in a cache keyed by path, size and
// modification time, as A1111's cache.json; a file in the Hugging Face cache is named by its sha256.
#pragma once
#include <string>

namespace sdtune::io {

// Lower-case hex sha256 of the whole file.
std::string sha256_of_file(const std::string& path);

// Lower-case hex sha256 of a .safetensors file's bytes after the 8-byte length and the header.
std::string addnet_hash_of_safetensors(const std::string& path);

// sha256_of_file, from the Hub cache's blob name or $XDG_CACHE_HOME/sdtune/hashes.json (else
// ~/.cache/sdtune) when they know it, else computed and remembered there.
std::string cached_sha256_of_file(const std::string& path);

}  // namespace sdtune::io
