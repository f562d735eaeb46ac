#include "train/validation.h"

#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "models/common/conv2d.h"
#include "pipeline/image_output.h"

namespace fs = std::filesystem;

namespace sdtune::train {

std::vector<std::string> write_validation_images(pipeline::StableDiffusion& model, const nlohmann::json& scheduler_config,
                                                 const ValidationOptions& o, int64_t step, int64_t epoch, const std::string& output_dir) {
  auto scheduler = schedulers::make_scheduler("", scheduler_config, {}, "scheduler/scheduler_config.json");
  pipeline::GenerationRequest request;
  request.prompt = o.prompt;
  request.negative_prompt = o.negative_prompt;
  request.steps = o.steps;
  request.guidance_scale = o.guidance_scale;
  request.width = request.height = o.size;
  request.num_images = o.num_images;
  request.batch_size = 1;  // one image through the UNet at a time: training memory is already in use
  request.seed = o.seed;

  const bool was_training = model.unet->is_training();
  model.unet->eval();
  pipeline::GenerationResult result;
  {
    torch::NoGradGuard no_grad;
    result = pipeline::generate(model, *scheduler, request);
  }
  // Winograd weights packed for these images would otherwise stay allocated through training.
  models::release_packed_weights(*model.unet);
  models::release_packed_weights(*model.vae);
  model.unet->train(was_training);

  const fs::path dir = fs::path(output_dir) / "samples";
  fs::create_directories(dir);
  pipeline::Infotext info = pipeline::describe_generation(request, result, scheduler->name(), o.model_name);
  if (!o.lora_name.empty()) info.prompt += " " + pipeline::lora_tag(o.lora_name, 1.0);  // the LoRA being trained, at 1
  std::ofstream log(dir / "samples.jsonl", std::ios::app);
  std::vector<std::string> paths;
  const auto images = pipeline::to_rgb8(result.images);
  for (size_t k = 0; k < images.size(); ++k) {
    info.batch_pos = int64_t(k);
    const std::string name = "step-" + std::to_string(step) + "-" + std::to_string(k) + ".png";
    io::write_png((dir / name).string(), images[k], {{"parameters", info.format()}});
    log << nlohmann::json{{"step", step},          {"epoch", epoch},        {"file", name},
                          {"prompt", o.prompt},    {"negative_prompt", o.negative_prompt},
                          {"seed", o.seed},        {"index", k},            {"steps", o.steps},
                          {"guidance_scale", o.guidance_scale}, {"scheduler", scheduler->name()},
                          {"width", o.size},       {"height", o.size}}
               .dump()
        << "\n";
    paths.push_back((dir / name).string());
  }
  if (!log) throw Error((dir / "samples.jsonl").string(), "cannot append to the samples log");
  return paths;
}

}  // namespace sdtune::train
