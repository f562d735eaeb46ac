#include "train/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <regex>
#include <sstream>

#include "core/error.h"
#include "core/printable.h"
#include "io/atomic_file.h"
#include "io/json_file.h"
#include "io/tensor_io.h"
#include "lora/lora_file.h"

namespace fs = std::filesystem;

namespace sdtune::train {

namespace {

const char* const kWeights = "pytorch_lora_weights.safetensors";
const char* const kTrainingWeights = "training_lora_weights.safetensors";
const char* const kOptimizer = "optimizer.pt";
const char* const kRandom = "random_states.safetensors";
const char* const kState = "state.json";

// checkpoint-<N> -> N, or -1 for any other name (temporary folders start with a dot).
int64_t checkpoint_step(const fs::path& path) {
  static const std::regex name("checkpoint-([0-9]{1,18})");
  std::smatch m;
  const std::string base = path.filename().string();
  return std::regex_match(base, m, name) ? std::stoll(m[1]) : -1;
}

nlohmann::json position_json(const TrainingPosition& p) {
  return {{"step", p.step},       {"epoch", p.epoch},           {"next_batch", p.next_batch},
          {"seconds", p.seconds}, {"loss_scale", p.loss_scale}, {"scale_growth_tracker", p.scale_growth_tracker}};
}

}  // namespace

std::string save_checkpoint(const std::string& output_dir, const CheckpointState& state, const lora::LoraFile& weights,
                            const torch::optim::Optimizer& optimizer) {
  const fs::path final_dir = fs::path(output_dir) / ("checkpoint-" + std::to_string(state.position.step));
  const fs::path tmp = fs::path(output_dir) / (".checkpoint-" + std::to_string(state.position.step) + ".partial-" + std::to_string(::getpid()));
  try {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    fs::create_directories(tmp);
    lora::write_lora(weights, (tmp / kWeights).string(), lora::LoraFormat::Diffusers);
    lora::write_lora(weights, (tmp / kTrainingWeights).string(), lora::LoraFormat::Diffusers, lora::AlphaForm::AsTrained);
    // Serialized in memory, then written like every other file: LibTorch's file writer finishes the
    // file in a destructor, and a full disk there would throw from it and abort the process.
    std::ostringstream optimizer_bytes;
    torch::serialize::OutputArchive archive;
    optimizer.save(archive);
    archive.save_to(optimizer_bytes);
    io::write_file_atomically((tmp / kOptimizer).string(), [&](std::ostream& out) { out << optimizer_bytes.str(); });
    io::save_tensors((tmp / kRandom).string(), {{"generator_state", state.generator_state}, {"epoch_order", state.epoch_order}});
    const nlohmann::json json{{"format", "sdtune-checkpoint-1"}, {"position", position_json(state.position)}, {"arguments", state.arguments}};
    io::write_file_atomically((tmp / kState).string(), [&](std::ostream& out) { out << json.dump(2) << "\n"; });
    io::sync_to_disk(tmp.string());
    // A checkpoint of the same step (a resumed run saving again) is moved aside, not deleted, until
    // the new one is in place.
    const fs::path old = fs::path(output_dir) / (".checkpoint-" + std::to_string(state.position.step) + ".old-" + std::to_string(::getpid()));
    if (fs::exists(final_dir)) fs::rename(final_dir, old);
    fs::rename(tmp, final_dir);
    io::sync_to_disk(output_dir);
    fs::remove_all(old);
  } catch (...) {
    io::discard_partial_write(tmp.string(), final_dir.string(), "the checkpoint", "; earlier checkpoints are untouched");
  }
  // Folders left by a run killed while writing one.
  for (const auto& entry : fs::directory_iterator(output_dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(".checkpoint-", 0) == 0 && name.find(".partial-") != std::string::npos) fs::remove_all(entry.path());
  }
  return final_dir.string();
}

CheckpointState load_checkpoint(const std::string& path, torch::optim::Optimizer& optimizer) {
  for (const char* name : {kWeights, kOptimizer, kRandom, kState})
    if (!fs::exists(fs::path(path) / name)) throw Error(path, std::string("is not a whole checkpoint: ") + name + " is missing");
  CheckpointState state;
  const std::string state_path = (fs::path(path) / kState).string();
  const auto json = io::read_json_file(state_path);
  const io::Json position = json.is_object() ? json.value("position", io::Json()) : io::Json();
  if (!position.is_object() || !json.contains("arguments") || !json["arguments"].is_object())
    throw Error(state_path, "needs a \"position\" and an \"arguments\" object");
  state.position.step = io::config_required<int64_t>(position, "step", state_path);
  state.position.epoch = io::config_required<int64_t>(position, "epoch", state_path);
  state.position.next_batch = io::config_required<int64_t>(position, "next_batch", state_path);
  state.position.seconds = io::config_required<double>(position, "seconds", state_path);
  state.position.loss_scale = io::config_required<double>(position, "loss_scale", state_path);
  state.position.scale_growth_tracker = io::config_required<int64_t>(position, "scale_growth_tracker", state_path);
  state.arguments = json["arguments"];
  state.lora_path = (fs::path(path) / (fs::exists(fs::path(path) / kTrainingWeights) ? kTrainingWeights : kWeights)).string();
  const std::string random_path = (fs::path(path) / kRandom).string();
  const auto random = io::read_all_tensors(random_path);
  for (const char* name : {"generator_state", "epoch_order"})
    if (!random.count(name)) throw Error(random_path, std::string("has no tensor ") + name);
  state.generator_state = random.at("generator_state").clone();
  if (state.generator_state.scalar_type() != torch::kByte) throw Error(random_path, "generator_state must be uint8");
  try {  // LibTorch checks the state's size and layout; its message would not name the file
    at::make_generator<at::CPUGeneratorImpl>().set_state(state.generator_state);
  } catch (const c10::Error& e) {
    throw Error(random_path, "generator_state is not a CPU generator's state: " + printable(e.what_without_backtrace()));
  }
  if (at::isFloatingType(random.at("epoch_order").scalar_type())) throw Error(random_path, "epoch_order must hold integers");
  state.epoch_order = random.at("epoch_order").to(torch::kLong).clone();
  try {
    torch::serialize::InputArchive archive;
    archive.load_from((fs::path(path) / kOptimizer).string());
    optimizer.load(archive);
  } catch (const c10::Error& e) {
    throw Error((fs::path(path) / kOptimizer).string(), std::string("cannot read the optimizer state: ") + e.what_without_backtrace());
  }
  return state;
}

void check_checkpoint_fits(const CheckpointState& state, int64_t examples, int64_t batches_per_epoch,
                           const std::string& path) {
  const TrainingPosition& p = state.position;
  if (p.step < 0 || p.epoch < 0 || p.next_batch < 0 || p.next_batch > batches_per_epoch || !std::isfinite(p.seconds) ||
      !std::isfinite(p.loss_scale) || p.loss_scale < 0)
    throw Error(path + "/state.json", "position (step, epoch, next_batch, seconds, loss_scale) is out of range for this run");
  const at::Tensor order = state.epoch_order;
  const bool permutation = order.dim() == 1 && order.numel() == examples &&
                           (examples == 0 || torch::equal(std::get<0>(order.sort()), torch::arange(examples, torch::kLong)));
  if (!permutation)
    throw Error(path + "/random_states.safetensors", "epoch_order is not an order of this run's " + std::to_string(examples) + " examples");
}

std::vector<std::string> list_checkpoints(const std::string& output_dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  if (fs::is_directory(output_dir))
    for (const auto& entry : fs::directory_iterator(output_dir))
      if (entry.is_directory() && checkpoint_step(entry.path()) >= 0) found.emplace_back(checkpoint_step(entry.path()), entry.path().string());
  std::sort(found.begin(), found.end());
  std::vector<std::string> paths;
  for (auto& f : found) paths.push_back(f.second);
  return paths;
}

std::string find_checkpoint(const std::string& output_dir, const std::string& spec) {
  if (spec == "latest") {
    const auto all = list_checkpoints(output_dir);
    return all.empty() ? "" : all.back();
  }
  for (const auto& candidate : {fs::path(spec), fs::path(output_dir) / spec})
    if (fs::is_directory(candidate)) return candidate.string();
  throw Error("--resume_from_checkpoint", "no checkpoint folder " + in_quotes(spec) + " (looked as given and in " + output_dir + ")");
}

std::vector<std::string> prune_checkpoints(const std::string& output_dir, int64_t limit) {
  std::vector<std::string> removed;
  if (limit <= 0) return removed;
  auto all = list_checkpoints(output_dir);
  for (size_t i = 0; i + size_t(limit) < all.size(); ++i) {
    fs::remove_all(all[i]);
    removed.push_back(all[i]);
  }
  return removed;
}

}  // namespace sdtune::train
