#!/usr/bin/env python3
"""Single-file (LDM layout) checkpoints of the tiny fixture models, checked and referenced by diffusers.

Writes tests/data/single_file/:
  tiny-sd1.safetensors              tiny-sd1 in fp32, CLIP text encoder (cond_stage_model.transformer.*)
  tiny-sd2.fp16.safetensors         tiny-sd2 in fp16, OpenCLIP text encoder (cond_stage_model.model.*, fused q/k/v)
  tiny-sd1-inpainting.bf16.safetensors   tiny-sd1 with a random 9-channel (inpainting) UNet, in bf16
  tiny-sd1-inpainting-config/       the diffusers configs and tokenizer of that model (no weights: what
                                    --config and diffusers' config= need)
  references.safetensors            what diffusers computed from each file (below)

The files are written by `sdtune convert` (diffusers -> single file), then read back by diffusers'
`from_single_file(..., config=<the tiny folder>, local_files_only=True)`: offline, the configs come from the
folder (without config= diffusers would fetch them from the Hub). Every tensor diffusers reads must equal the
folder's (cast to the file's dtype and back): so the files are what diffusers itself understands as these models.
References (float32, CPU):
  <name>.latents_seed / .image_seed   pipe(PROMPTS[0], negative_prompt=PROMPTS[5], 10 steps, guidance 6,
                                      generator=manual_seed(1234), the folder's default scheduler)
  inpainting.unet_input, .unet_timestep, .unet_context, .unet_output   one UNet call of the 9-channel model

Pinned: diffusers==0.40.0 transformers==5.24.0 torch==2.11.0 (CPU).
Run:  python scripts/make_single_file_fixtures.py --sdtune build/sdtune
"""
import argparse
import json
import pathlib
import shutil
import subprocess
import tempfile

import diffusers
import torch
import transformers
from diffusers import StableDiffusionPipeline, UNet2DConditionModel
from safetensors.torch import save_file

assert diffusers.__version__ == "0.40.0", diffusers.__version__
assert transformers.__version__ == "5.24.0", transformers.__version__
assert torch.__version__.startswith("2.11.0"), torch.__version__

root = pathlib.Path(__file__).resolve().parent.parent
data = root / "tests" / "data"
out = data / "single_file"
parser = argparse.ArgumentParser()
parser.add_argument("--sdtune", required=True)
args = parser.parse_args()
torch.set_num_threads(1)


def convert(model, output, dtype):
    if output.exists():
        output.unlink()
    subprocess.run([args.sdtune, "convert", "--model", str(model), "--output", str(output), "--dtype", dtype], check=True)


def expect_same_weights(single, folder, dtype):
    for name in ("unet", "vae", "text_encoder"):
        ours, theirs = getattr(single, name).state_dict(), getattr(folder, name).state_dict()
        assert ours.keys() == theirs.keys(), (name, sorted(set(ours) ^ set(theirs))[:5])
        for key, value in theirs.items():
            expected = value.to(dtype).float() if value.is_floating_point() else value
            assert torch.equal(ours[key], expected), (name, key)
    print("diffusers reads every tensor of the single file as the folder's:", dtype)


def pipeline_references(pipe, manifest, name, refs):
    c = manifest["constants"]
    call = dict(prompt=c["PROMPTS"][0], negative_prompt=c["PROMPTS"][5], num_inference_steps=c["NUM_INFERENCE_STEPS"],
                guidance_scale=c["GUIDANCE_SCALE"], height=c["image_hw"][0], width=c["image_hw"][1])
    refs[name + ".latents_seed"] = pipe(**call, generator=torch.Generator().manual_seed(c["SEED"]), output_type="latent").images
    refs[name + ".image_seed"] = pipe(**call, generator=torch.Generator().manual_seed(c["SEED"]), output_type="pt").images


def single_and_folder(path, config, folder):
    single = StableDiffusionPipeline.from_single_file(str(path), config=str(config), local_files_only=True,
                                                      torch_dtype=torch.float32, safety_checker=None)
    reference = StableDiffusionPipeline.from_pretrained(str(folder), torch_dtype=torch.float32, safety_checker=None)
    for pipe in (single, reference):
        pipe.set_progress_bar_config(disable=True)
    return single, reference


out.mkdir(parents=True, exist_ok=True)
refs = {}
for variant, file_name, dtype in (("tiny-sd1", "tiny-sd1.safetensors", torch.float32),
                                  ("tiny-sd2", "tiny-sd2.fp16.safetensors", torch.float16)):
    folder = data / variant / "pipeline"
    path = out / file_name
    convert(folder, path, {torch.float32: "fp32", torch.float16: "fp16"}[dtype])
    single, reference = single_and_folder(path, folder, folder)
    expect_same_weights(single, reference, dtype)
    manifest = json.loads((data / variant / "ref" / "manifest.json").read_text())
    pipeline_references(single, manifest, variant, refs)

# A 9-channel UNet beside tiny-sd1's other components: an inpainting model's layout.
with tempfile.TemporaryDirectory() as tmp:
    source = pathlib.Path(tmp) / "pipeline"
    shutil.copytree(data / "tiny-sd1" / "pipeline", source)
    config = json.loads((source / "unet" / "config.json").read_text())
    config["in_channels"] = 9
    torch.manual_seed(9)
    unet = UNet2DConditionModel.from_config(config)
    with torch.no_grad():
        for p in unet.parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)  # as the fixtures: norms and biases off their defaults
    (source / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    unet.save_pretrained(source / "unet", safe_serialization=True)
    path = out / "tiny-sd1-inpainting.bf16.safetensors"
    convert(source, path, "bf16")
    config_dir = out / "tiny-sd1-inpainting-config"
    shutil.rmtree(config_dir, ignore_errors=True)
    shutil.copytree(source, config_dir, ignore=shutil.ignore_patterns("*.safetensors"))
    single, reference = single_and_folder(path, config_dir, source)
    expect_same_weights(single, reference, torch.bfloat16)
    generator = torch.Generator().manual_seed(5)
    sample = torch.randn((1, 9, 8, 8), generator=generator)
    context = torch.randn((1, 77, 32), generator=generator)
    refs["inpainting.unet_input"], refs["inpainting.unet_context"] = sample, context
    refs["inpainting.unet_timestep"] = torch.tensor([500], dtype=torch.int64)
    with torch.no_grad():
        refs["inpainting.unet_output"] = single.unet(sample, 500, encoder_hidden_states=context).sample

save_file({k: v.contiguous() for k, v in refs.items()}, str(out / "references.safetensors"),
          metadata={"diffusers": diffusers.__version__, "transformers": transformers.__version__, "torch": torch.__version__})
print("wrote", sorted(p.name for p in out.iterdir()))
