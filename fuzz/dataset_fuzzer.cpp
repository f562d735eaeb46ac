// A training folder's captions as read_dataset finds them: the first byte picks metadata.jsonl,
// metadata.csv or kohya caption files (and the caption column), the rest is that file (caption files:
// two parts, for a.txt and sub/c.txt). The images exist (empty: decoding has its own target). Every
// problem read_dataset reports must be a bounded message, like an Error's.
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "fuzz_support.h"
#include "train/dataset.h"

namespace {

namespace fs = std::filesystem;
using namespace sdtune;

const std::string& dataset_dir() {
  static const std::string dir = [] {
    const std::string root = fuzz::scratch_dir() + "/dataset";
    fuzz::make_scratch_dirs("dataset/sub");
    for (const char* image : {"a.png", "b.png", "sub/c.jpg"}) fuzz::write_scratch_file(std::string("dataset/") + image, "");
    return root;
  }();
  return dir;
}

void lay_out(uint8_t layout, const std::vector<std::string>& parts) {
  for (const char* name : {"metadata.jsonl", "metadata.csv", "a.txt", "sub/c.txt"}) fs::remove(dataset_dir() + "/" + name);
  switch (layout % 3) {
    case 0: fuzz::write_scratch_file("dataset/metadata.jsonl", parts[0]); break;
    case 1: fuzz::write_scratch_file("dataset/metadata.csv", parts[0]); break;
    default:
      fuzz::write_scratch_file("dataset/a.txt", parts[0]);
      fuzz::write_scratch_file("dataset/sub/c.txt", parts[1]);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  lay_out(data[0], fuzz::split_parts(data + 1, size - 1, 2));
  train::DatasetOptions options;
  if (data[0] & 4) options.caption_column = "caption";
  if (data[0] & 8) options.image_column = "file";
  fuzz::expect_success_or_error([&] {
    const train::Dataset dataset = train::read_dataset(dataset_dir(), options);
    for (const train::DatasetProblem& p : dataset.problems) {
      if (p.where.size() + p.problem.size() > fuzz::kMaxErrorMessageBytes) {
        std::fprintf(stderr, "dataset problem of %zu bytes: %.300s\n", p.problem.size(), p.problem.c_str());
        std::abort();
      }
    }
    train::locate_image_folder(dataset_dir());
  });
  return 0;
}
