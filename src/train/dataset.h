// A training image folder as diffusers' "imagefolder" datasets and kohya's scripts lay it out:
//   metadata.jsonl ({"file_name": "a.png", "text": "caption"} per line) or metadata.csv, or
//   images with a same-named .txt caption file beside them (kohya).
// Reading collects every problem with the file and line instead of stopping at the first.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sdtune::text {
class ClipTokenizer;
}

namespace sdtune::train {

struct DatasetOptions {
  std::string caption_column = "text";
  std::string image_column = "image";  // like HF imagefolder: "file_name" also names the image
};

struct DatasetItem {
  std::string image_path;
  std::vector<std::string> captions;  // one is picked at random per step when there are several
  std::string origin;                 // "metadata.jsonl line 3", "a.txt", ...
};

struct DatasetProblem {
  std::string where;
  std::string problem;
  bool error = true;  // false: a warning (training goes on)
};

struct Dataset {
  std::string root;
  std::string layout;  // "metadata.jsonl", "metadata.csv" or "caption files"
  std::vector<DatasetItem> items;
  std::vector<DatasetProblem> problems;
  bool has_errors() const;
};

Dataset read_dataset(const std::string& root, const DatasetOptions& options);

// The image folder inside a dataset repository (--dataset_name): the root, or the "train" split
// folder (train/, data/train/) as datasets' imagefolder loader finds it. A Parquet/Arrow dataset is
// refused with how to export it.
std::string locate_image_folder(const std::string& root);

struct CheckOptions {
  int64_t resolution = 512;
  std::string trigger_word;                           // counted when set
  const text::ClipTokenizer* tokenizer = nullptr;     // counts caption tokens when set
};

struct CheckSummary {
  int64_t images = 0, captions = 0, errors = 0, warnings = 0;
  int64_t with_trigger = 0;
};

// Decodes every image and checks sizes, captions and token counts; adds problems to `dataset`.
CheckSummary check_dataset(Dataset& dataset, const CheckOptions& options);

}  // namespace sdtune::train
