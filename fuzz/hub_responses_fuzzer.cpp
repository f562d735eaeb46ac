// What the Hub answers a download: the resolve endpoint's header lines (commit, ETag, size, redirect),
// the model-info JSON (commit and file list), and the choice of files a command needs from that list
// (the third part is the weight variant), as hub_download uses them.
#include <sstream>

#include "fuzz_support.h"
#include "hub/hub_responses.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sdtune;
  const auto parts = fuzz::split_parts(data, size, 3);
  hub::Headers headers;
  std::istringstream lines(parts[0]);
  for (std::string line; std::getline(lines, line);) hub::add_header_line(headers, line);
  for (const bool redirected : {false, true}) fuzz::expect_success_or_error([&] { hub::parse_file_metadata(headers, "url", redirected); });
  for (const long status : {401L, 404L, 503L}) hub::describe_http_error(status, headers, "repo");
  fuzz::expect_success_or_error([&] {
    const hub::RepoInfo info = hub::parse_model_info(parts[1], "model info");
    const std::string variant = parts[2].substr(0, 64);
    fuzz::expect_success_or_error([&] {
      hub::select_files(info.files, {"unet", "vae", "text_encoder", "tokenizer", "scheduler"}, variant, "repo");
    });
    fuzz::expect_success_or_error([&] { hub::select_files(info.files, {""}, variant, "repo", false); });
  });
  return 0;
}
