// Timings of the model components at full SD size, on the random-weight folders that
// `sdtune dev make-model` writes. Run: SDTUNE_BENCH_MODEL=DIR build/bench/bench_models
// [--benchmark_format=json]. Peak RSS is reported as a counter (bytes, whole process so far).
#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <torch/torch.h>

#include <cstdlib>
#include <iostream>

#include <ATen/CPUGeneratorImpl.h>

#include "io/model_folder.h"
#include "lora/lora_adapters.h"
#include "pipeline/components.h"

namespace {

std::string model_dir() {
  const char* dir = std::getenv("SDTUNE_BENCH_MODEL");
  if (!dir) {
    std::cerr << "set SDTUNE_BENCH_MODEL to a folder made by `sdtune dev make-model --preset sd2`\n";
    std::exit(2);
  }
  return dir;
}

double peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_maxrss) * 1024.0;
}

sdtune::models::UNet2DCondition& unet() {
  static auto model = sdtune::pipeline::load_unet(sdtune::io::ModelFolder(model_dir()), {});
  return model;
}

sdtune::models::AutoencoderKL& vae() {
  static auto model = sdtune::pipeline::load_vae(sdtune::io::ModelFolder(model_dir()), {});
  return model;
}

// One UNet evaluation of a classifier-free-guidance step: batch 2 (uncond + cond) at size x size pixels.
void UNetCfgStep(benchmark::State& state) {
  torch::InferenceMode inference;
  auto& model = unet();
  const int64_t latent = state.range(0) / 8;
  const int64_t context_dim = model->config().cross_attention_dim[0];
  const auto sample = torch::randn({2, 4, latent, latent});
  const auto context = torch::randn({2, 77, context_dim});
  const auto timestep = torch::tensor(int64_t(500));
  for (auto _ : state) benchmark::DoNotOptimize(model->forward(sample, timestep, context));
  state.counters["peak_rss"] = peak_rss_bytes();
}

void VaeDecode(benchmark::State& state) {
  torch::InferenceMode inference;
  auto& model = vae();
  const int64_t latent = state.range(0) / 8;
  const auto latents = torch::randn({1, 4, latent, latent});
  for (auto _ : state) benchmark::DoNotOptimize(model->decode(latents));
  state.counters["peak_rss"] = peak_rss_bytes();
}

// One LoRA training step: UNet forward + backward with rank-4 side paths on the attention
// projections (the base model frozen), batch 1 at size x size pixels, then AdamW.
void LoraTrainStep(benchmark::State& state) {
  auto& model = unet();
  for (auto& p : model->parameters()) p.requires_grad_(false);
  auto adapters = sdtune::lora::LoraAdapters::attach_new(*model, sdtune::lora::Component::UNet, {},
                                                         at::make_generator<at::CPUGeneratorImpl>(0));
  torch::optim::AdamW optimizer(adapters.parameters(), torch::optim::AdamWOptions(1e-4));
  const int64_t latent = state.range(0) / 8;
  const auto sample = torch::randn({1, 4, latent, latent});
  const auto context = torch::randn({1, 77, model->config().cross_attention_dim[0]});
  const auto target = torch::randn({1, 4, latent, latent});
  for (auto _ : state) {
    optimizer.zero_grad();
    const auto loss = torch::mse_loss(model->forward(sample, torch::tensor(int64_t(500)), context), target);
    loss.backward();
    optimizer.step();
  }
  adapters.detach();
  state.counters["peak_rss"] = peak_rss_bytes();
}

BENCHMARK(UNetCfgStep)->Arg(256)->Arg(512)->Unit(benchmark::kSecond)->Iterations(2);
BENCHMARK(VaeDecode)->Arg(256)->Arg(512)->Unit(benchmark::kSecond)->Iterations(1);
BENCHMARK(LoraTrainStep)->Arg(256)->Unit(benchmark::kSecond)->Iterations(2);

}  // namespace

int main(int argc, char** argv) {
  torch::set_num_threads(std::max(1, int(std::thread::hardware_concurrency())));
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
