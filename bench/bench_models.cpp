// Timings of the model components at full SD size, on the random-weight folders that
// `sdtune dev make-model` writes. Run: SDTUNE_BENCH_MODEL=DIR build/bench/bench_models
// [--benchmark_format=json] [--benchmark_filter=...]. Counters: peak_rss (bytes, whole process so
// far), GFLOP/s and the fraction of the machine's measured fp32 GEMM peak (GemmPeak) where the work
// is known. SDTUNE_PROFILE=trace.json instead writes a Chrome trace of one UNet CFG step at 256².
#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <thread>

#include <ATen/CPUGeneratorImpl.h>

#include "core/runtime.h"
#include "io/model_files.h"
#include "lora/lora_adapters.h"
#include "models/common/conv2d.h"
#include "models/common/linear.h"
#include "pipeline/components.h"

namespace {

// Convolutions and matrix products of diffusers' SD2 UNet forward for a CFG batch of 2 (from the issue).
constexpr double kUNetCfgGflop256 = 362, kUNetCfgGflop512 = 1609;
double gemm_peak_gflops = 0;  // set by GemmPeak, which runs first

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

at::ScalarType bench_dtype() {
  const char* dtype = std::getenv("SDTUNE_BENCH_DTYPE");  // fp32 (default) or bf16
  return dtype && std::string(dtype) == "bf16" ? at::kBFloat16 : at::kFloat;
}

sdtune::pipeline::LoadOptions load_options() {
  sdtune::pipeline::LoadOptions options;
  options.dtype = bench_dtype();
  return options;
}

// Loaded outside inference mode: tensors made under it could not take part in training steps.
sdtune::models::UNet2DCondition& unet() {
  c10::InferenceMode not_inference(false);
  static auto model = sdtune::pipeline::load_unet(sdtune::io::ModelFiles(model_dir()), load_options());
  return model;
}

sdtune::models::AutoencoderKL& vae() {
  c10::InferenceMode not_inference(false);
  static auto model = sdtune::pipeline::load_vae(sdtune::io::ModelFiles(model_dir()), load_options());
  return model;
}

// The machine's fp32 matrix-product peak as sdtune reaches it: a 4096² product through the BLAS
// (aten::mm, OpenBLAS) and through oneDNN (models::linear under inference mode); the faster counts.
double gflops_of(const std::function<void()>& product, int64_t repeats) {
  product();  // warm-up
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < repeats; ++i) product();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return 2.0 * 4096 * 4096 * 4096 * double(repeats) / seconds / 1e9;
}

void GemmPeak(benchmark::State& state) {
  const auto a = torch::randn({4096, 4096}), b = torch::randn({4096, 4096});
  double blas = 0, onednn = 0;
  for (auto _ : state) {
    blas = std::max(blas, gflops_of([&] { benchmark::DoNotOptimize(torch::mm(a, b)); }, 3));
    torch::InferenceMode inference;
    onednn = std::max(onednn, gflops_of([&] { benchmark::DoNotOptimize(sdtune::models::linear(a, b, {})); }, 3));
  }
  gemm_peak_gflops = std::max(blas, onednn);
  state.counters["GFLOP/s"] = gemm_peak_gflops;
  state.counters["blas_GFLOP/s"] = blas;
  state.counters["onednn_GFLOP/s"] = onednn;
}

// Loading the UNet, text encoder and VAE (fp16 files converted to the compute dtype).
void ModelLoad(benchmark::State& state) {
  for (auto _ : state) {
    const sdtune::io::ModelFiles folder(model_dir());
    benchmark::DoNotOptimize(sdtune::pipeline::load_stable_diffusion(folder, load_options()));
  }
  state.counters["peak_rss"] = peak_rss_bytes();
}

void TextEncode(benchmark::State& state) {
  torch::InferenceMode inference;
  const sdtune::io::ModelFiles folder(model_dir());
  auto text = sdtune::pipeline::load_text_components(folder, load_options());
  const auto ids = text.tokenizer->encode_padded("(lora-misato-token) in food ad, billboard sign, 90s, anime, japanese pop");
  const auto batch = torch::tensor(ids).view({1, -1}).repeat({2, 1});
  for (auto _ : state) benchmark::DoNotOptimize(text.encoder->forward(batch));
}

// One UNet evaluation of a classifier-free-guidance step: batch 2 (uncond + cond) at size x size pixels.
void UNetCfgStep(benchmark::State& state) {
  torch::InferenceMode inference;
  auto& model = unet();
  const int64_t latent = state.range(0) / 8;
  const auto dtype = bench_dtype();
  const auto sample = torch::randn({2, 4, latent, latent}).to(dtype);
  const auto context = torch::randn({2, 77, model->config().cross_attention_dim[0]}).to(dtype);
  const auto timestep = torch::tensor(int64_t(500));
  model->forward(sample, timestep, context);  // warm-up: allocator and oneDNN primitive caches
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) benchmark::DoNotOptimize(model->forward(sample, timestep, context));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / double(state.iterations());
  const double gflop = state.range(0) == 256 ? kUNetCfgGflop256 : kUNetCfgGflop512;
  state.counters["GFLOP/s"] = gflop / seconds;
  if (gemm_peak_gflops > 0) state.counters["of_peak"] = gflop / seconds / gemm_peak_gflops;
  state.counters["peak_rss"] = peak_rss_bytes();
  sdtune::models::release_packed_weights(*model);
}

void VaeDecode(benchmark::State& state) {
  torch::InferenceMode inference;
  auto& model = vae();
  const int64_t latent = state.range(0) / 8;
  const auto latents = torch::randn({1, 4, latent, latent}).to(bench_dtype());
  model->decode(latents);  // warm-up: oneDNN plans and packed Winograd weights
  for (auto _ : state) benchmark::DoNotOptimize(model->decode(latents));
  state.counters["peak_rss"] = peak_rss_bytes();
  sdtune::models::release_packed_weights(*model);
}

// One LoRA training step: UNet forward + backward with rank-4 side paths on the attention
// projections (the base model frozen), batch 1 at size x size pixels, then AdamW. Range 1 turns on
// gradient checkpointing.
void LoraTrainStep(benchmark::State& state) {
  auto& model = unet();
  for (auto& p : model->parameters()) p.requires_grad_(false);
  model->set_gradient_checkpointing(state.range(1) != 0);
  auto adapters = sdtune::lora::LoraAdapters::attach_new(*model, sdtune::lora::Component::UNet, {},
                                                         at::make_generator<at::CPUGeneratorImpl>(0));
  torch::optim::AdamW optimizer(adapters.parameters(), torch::optim::AdamWOptions(1e-4));
  const int64_t latent = state.range(0) / 8;
  const auto dtype = bench_dtype();
  const auto sample = torch::randn({1, 4, latent, latent}).to(dtype);
  const auto context = torch::randn({1, 77, model->config().cross_attention_dim[0]}).to(dtype);
  const auto target = torch::randn({1, 4, latent, latent});
  const auto train_step = [&] {
    optimizer.zero_grad();
    const auto loss = torch::mse_loss(model->forward(sample, torch::tensor(int64_t(500)), context).to(torch::kFloat), target);
    loss.backward();
    optimizer.step();
  };
  train_step();  // warm-up: allocator and oneDNN primitive caches, as the other benchmarks
  for (auto _ : state) train_step();
  adapters.detach();
  model->set_gradient_checkpointing(false);
  state.counters["peak_rss"] = peak_rss_bytes();
}

BENCHMARK(GemmPeak)->Unit(benchmark::kSecond)->Iterations(1);
BENCHMARK(ModelLoad)->Unit(benchmark::kSecond)->Iterations(1);
BENCHMARK(TextEncode)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(UNetCfgStep)->Arg(256)->Arg(512)->Unit(benchmark::kSecond)->Iterations(2);
BENCHMARK(VaeDecode)->Arg(256)->Arg(512)->Unit(benchmark::kSecond)->Iterations(1);
BENCHMARK(LoraTrainStep)->Args({256, 0})->Args({256, 1})->Args({512, 0})->Args({512, 1})->Unit(benchmark::kSecond)->Iterations(2);

// One UNet CFG step at 256² under LibTorch's profiler: a Chrome trace of every operator.
void write_profile(const std::string& path) {
  torch::InferenceMode inference;
  const auto context = torch::randn({2, 77, unet()->config().cross_attention_dim[0]}).to(bench_dtype());
  const auto sample = torch::randn({2, 4, 32, 32}).to(bench_dtype());
  unet()->forward(sample, torch::tensor(int64_t(500)), context);  // warm-up
  torch::autograd::profiler::RecordProfile profile(path);
  unet()->forward(sample, torch::tensor(int64_t(500)), context);
}

}  // namespace

int main(int argc, char** argv) {
  sdtune::use_passive_openmp_waiting(argv);
  // LibTorch's default is one thread per physical core; SMT siblings help the convolutions too.
  torch::set_num_threads(std::max(1, int(std::thread::hardware_concurrency())));
  if (const char* path = std::getenv("SDTUNE_PROFILE")) {
    write_profile(path);
    return 0;
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
