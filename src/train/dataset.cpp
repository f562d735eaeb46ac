#include "train/dataset.h"

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/printable.h"
#include "io/image_limits.h"
#include "io/input_file.h"
#include "io/json_file.h"
#include "text/unicode_text.h"
#include "io/image_file.h"
#include "text/clip_tokenizer.h"

namespace fs = std::filesystem;

namespace sdtune::train {

namespace {

bool is_image_name(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".webp";
}

// RFC 4180 fields of one CSV record (quotes, doubled quotes, commas and newlines inside quotes).
// A quote left open at the end of the file sets *unterminated.
bool next_csv_record(std::istream& in, std::vector<std::string>* fields, int* line, bool* unterminated) {
  fields->clear();
  std::string field;
  bool quoted = false, any = false;
  char c;
  while (in.get(c)) {
    any = true;
    if (quoted) {
      if (c == '"') {
        if (in.peek() == '"') field += char(in.get());
        else quoted = false;
      } else {
        if (c == '\n') ++*line;
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields->push_back(field);
      field.clear();
    } else if (c == '\n') {
      ++*line;
      break;
    } else if (c != '\r') {
      field += c;
    }
  }
  if (!any) return false;
  *unterminated = quoted;
  fields->push_back(field);
  return true;
}

std::string read_metadata(const fs::path& path) { return io::read_file(path.string(), io::kMaxTextFileBytes, "metadata file"); }

std::vector<std::string> captions_of(const nlohmann::json& value) {
  if (value.is_string()) return {value.get<std::string>()};
  std::vector<std::string> out;
  if (value.is_array())
    for (const auto& v : value)
      if (v.is_string()) out.push_back(v.get<std::string>());
  return out;
}

void add_item(Dataset& d, const std::string& file_name, std::vector<std::string> captions, const std::string& origin,
              std::map<std::string, std::string>* seen) {
  if (file_name.empty() || fs::path(file_name).is_absolute() || file_name.find("..") != std::string::npos) {
    d.problems.push_back({origin, "file_name " + in_quotes(file_name) + " must be a path inside the dataset folder"});
    return;
  }
  if (auto it = seen->find(file_name); it != seen->end()) {
    d.problems.push_back({origin, "duplicate file name " + in_quotes(file_name) + " (also at " + it->second + ")"});
    return;
  }
  (*seen)[file_name] = origin;
  const fs::path image = fs::path(d.root) / file_name;
  std::error_code ec;
  if (!fs::is_regular_file(image, ec)) {
    d.problems.push_back({origin, "missing image " + image.string()});
    return;
  }
  if (captions.empty()) {
    d.problems.push_back({origin, "missing caption for " + file_name});
    return;
  }
  d.items.push_back({image.string(), std::move(captions), origin});
}

void read_jsonl(Dataset& d, const fs::path& path, const DatasetOptions& o) {
  std::istringstream in(read_metadata(path));
  std::string line;
  std::map<std::string, std::string> seen;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path.filename().string() + " line " + std::to_string(n);
    nlohmann::json row;
    try {
      row = io::parse_json_text(line, where);
    } catch (const Error& e) {
      d.problems.push_back({where, "broken JSON line: " + e.problem()});
      continue;
    }
    if (!row.is_object()) {
      d.problems.push_back({where, "not a JSON object"});
      continue;
    }
    const std::string image_key = row.contains(o.image_column) ? o.image_column : "file_name";
    if (!row.contains(image_key) || !row[image_key].is_string()) {
      d.problems.push_back({where, "no \"file_name\" (or " + in_quotes(o.image_column) + ") string"});
      continue;
    }
    add_item(d, row[image_key].get<std::string>(), row.contains(o.caption_column) ? captions_of(row[o.caption_column]) : std::vector<std::string>{},
             where, &seen);
  }
}

void read_csv(Dataset& d, const fs::path& path, const DatasetOptions& o) {
  const std::string text = read_metadata(path);
  try {
    text::check_utf8(text, path.filename().string());
  } catch (const Error& e) {
    d.problems.push_back({path.filename().string(), e.problem()});
    return;
  }
  std::istringstream in(text);
  std::vector<std::string> header, fields;
  int line = 1;
  bool unterminated = false;
  if (!next_csv_record(in, &header, &line, &unterminated)) {
    d.problems.push_back({path.filename().string(), "empty file"});
    return;
  }
  auto column = [&](const std::string& name) { return std::find(header.begin(), header.end(), name) - header.begin(); };
  const size_t image_col = size_t(column("file_name") < int64_t(header.size()) ? column("file_name") : column(o.image_column));
  const size_t caption_col = size_t(column(o.caption_column));
  if (image_col >= header.size()) {
    d.problems.push_back({path.filename().string() + " line 1", "no file_name column"});
    return;
  }
  std::map<std::string, std::string> seen;
  while (true) {
    const int start = line;
    if (!next_csv_record(in, &fields, &line, &unterminated)) break;
    if (fields.size() == 1 && fields[0].empty()) continue;
    const std::string where = path.filename().string() + " line " + std::to_string(start);
    if (unterminated) {
      d.problems.push_back({where, "a quoted field opened here is never closed (a missing \")"});
      break;
    }
    if (fields.size() != header.size()) {
      d.problems.push_back({where, std::to_string(fields.size()) + " fields for " + std::to_string(header.size()) + " columns"});
      continue;
    }
    std::vector<std::string> captions;
    if (caption_col < header.size() && !fields[caption_col].empty()) captions.push_back(fields[caption_col]);
    add_item(d, fields[image_col], captions, where, &seen);
  }
}

void read_caption_files(Dataset& d) {
  std::vector<fs::path> images;
  for (const auto& entry : fs::recursive_directory_iterator(d.root))
    if (entry.is_regular_file() && is_image_name(entry.path())) images.push_back(entry.path());
  std::sort(images.begin(), images.end());
  for (const auto& image : images) {
    const std::string name = fs::relative(image, d.root).string();
    fs::path caption = image;
    caption.replace_extension(".txt");
    std::error_code ec;
    if (!fs::exists(caption, ec)) {
      d.problems.push_back({name, "missing caption file " + caption.filename().string()});
      continue;
    }
    std::string text;
    try {
      text = io::read_file(caption.string(), io::kMaxCaptionFileBytes, "caption file");
      text::check_utf8(text, caption.filename().string());
    } catch (const Error& e) {
      d.problems.push_back({caption.filename().string(), e.problem()});
      continue;
    }
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.pop_back();
    if (text.empty()) {
      d.problems.push_back({caption.filename().string(), "empty caption"});
      continue;
    }
    d.items.push_back({image.string(), {text}, caption.filename().string()});
  }
}

}  // namespace

bool Dataset::has_errors() const {
  return std::any_of(problems.begin(), problems.end(), [](const DatasetProblem& p) { return p.error; });
}

Dataset read_dataset(const std::string& root, const DatasetOptions& options) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) throw Error(root, "dataset folder does not exist");
  Dataset d;
  d.root = root;
  const fs::path jsonl = fs::path(root) / "metadata.jsonl", csv = fs::path(root) / "metadata.csv";
  if (fs::exists(jsonl, ec) && fs::exists(csv, ec))
    throw Error(root, "has both metadata.jsonl and metadata.csv; keep one (which one to read would be a guess)");
  if (fs::exists(jsonl)) {
    d.layout = "metadata.jsonl";
    read_jsonl(d, jsonl, options);
  } else if (fs::exists(csv)) {
    d.layout = "metadata.csv";
    read_csv(d, csv, options);
  } else {
    d.layout = "caption files";
    read_caption_files(d);
  }
  if (d.items.empty() && !d.has_errors()) d.problems.push_back({root, "no images with captions found"});
  return d;
}

std::string locate_image_folder(const std::string& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) throw Error(root, "dataset folder does not exist");
  auto has_metadata = [](const fs::path& dir) { return fs::exists(dir / "metadata.jsonl") || fs::exists(dir / "metadata.csv"); };
  for (const auto& dir : {fs::path(root), fs::path(root) / "train", fs::path(root) / "data" / "train", fs::path(root) / "data"})
    if (fs::is_directory(dir, ec) && has_metadata(dir)) return dir.string();
  // Datasets pushed with datasets' push_to_hub are Parquet shards: readable only with Arrow.
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string ext = it->path().extension().string();
    if (ext == ".parquet" || ext == ".arrow")
      throw Error(it->path().string(),
                  "is a Parquet/Arrow dataset file; sdtune reads image folders only (no Arrow library is available here). "
                  "Export it once with Python, e.g. `for i, row in enumerate(load_dataset(...)[\"train\"]): "
                  "row[\"image\"].save(f\"{i}.png\")` plus a metadata.jsonl line per image, and pass that folder");
    if (it.depth() >= 3) it.disable_recursion_pending();
  }
  for (const auto& dir : {fs::path(root) / "train", fs::path(root) / "data" / "train"})
    if (fs::is_directory(dir, ec)) return dir.string();
  return root;
}

CheckSummary check_dataset(Dataset& d, const CheckOptions& o) {
  CheckSummary s;
  for (const auto& item : d.items) {
    const std::string name = fs::relative(item.image_path, d.root).string();
    try {
      const auto image = io::read_image(item.image_path);
      const int64_t shorter = std::min(image.width, image.height);
      if (image.width * image.height > io::max_image_pixels())
        d.problems.push_back({name, std::to_string(image.width) + "x" + std::to_string(image.height) + " pixels is over --max_image_pixels " +
                                        std::to_string(io::max_image_pixels()) + " (PIL warns of a decompression bomb); it is used", false});
      // Much smaller than the training size: upscaling 4x and more gives mush, so it is an error.
      if (shorter < std::max<int64_t>(8, o.resolution / 4))
        d.problems.push_back({name, "tiny image (" + std::to_string(image.width) + "x" + std::to_string(image.height) + ")"});
      else if (shorter < o.resolution)
        d.problems.push_back({name, "shorter side " + std::to_string(shorter) + " < resolution " + std::to_string(o.resolution) +
                                        ": it will be upscaled", false});
      ++s.images;
    } catch (const Error& e) {
      d.problems.push_back({name, std::string("unreadable image: ") + e.problem()});
    }
    for (const auto& caption : item.captions) {
      ++s.captions;
      if (!o.trigger_word.empty() && caption.find(o.trigger_word) != std::string::npos) ++s.with_trigger;
      if (o.tokenizer) {
        try {
          const size_t tokens = o.tokenizer->tokenize(caption).size();
          if (int64_t(tokens) > o.tokenizer->max_length() - 2)
            d.problems.push_back({item.origin, "caption has " + std::to_string(tokens) + " tokens; the text encoder sees the first " +
                                                   std::to_string(o.tokenizer->max_length() - 2), false});
        } catch (const Error& e) {
          d.problems.push_back({item.origin, "caption: " + e.problem()});
        }
      }
    }
  }
  for (const auto& p : d.problems) ++(p.error ? s.errors : s.warnings);
  return s;
}

}  // namespace sdtune::train
