#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target, fuzz/corpus/<target>/, from the test fixtures and small
honest files of each kind (images by Pillow, as the training script reads them). Inputs that once
crashed a target are kept apart in fuzz/corpus/<target>/crash-* and are never rewritten here.

Run with Pillow pinned:  ~/.cache/sdtune/pillow-venv/bin/python fuzz/make_seeds.py [--sdtune build/sdtune]
(python -m venv v && v/bin/pip install pillow==11.3.0). With --sdtune, a one-step training run on the
SD 2 test model gives the checkpoint seeds; without it they are left as they are.
"""
import argparse
import io
import json
import pathlib
import struct
import subprocess
import tempfile

import PIL
from PIL import Image, PngImagePlugin

assert PIL.__version__ == "11.3.0", PIL.__version__
root = pathlib.Path(__file__).resolve().parent.parent
data = root / "tests" / "data"
corpus = root / "fuzz" / "corpus"
SEP = b"\x1e"  # fuzz_support.h: kPartSeparator


def write(target, name, payload):
    folder = corpus / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(payload if isinstance(payload, bytes) else payload.encode())


def safetensors_bytes(tensors, metadata=None):
    """tensors: {name: (dtype, shape, raw bytes)} -> a safetensors file, as the format defines it."""
    header, blob = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        dtype, shape, raw = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the reference writer aligns the data to 8 bytes
    return struct.pack("<Q", len(text)) + text + blob


def read_safetensors(path):
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    metadata = header.pop("__metadata__", None)
    out = {}
    for name, e in header.items():
        begin, end = e["data_offsets"]
        out[name] = (e["dtype"], e["shape"], raw[8 + n + begin:8 + n + end])
    return out, metadata


def floats(*values):
    return struct.pack(f"<{len(values)}f", *values)


def safetensors_seeds():
    t = "safetensors_fuzzer"
    write(t, "dtypes.safetensors", safetensors_bytes({
        "f32": ("F32", [2, 3], floats(0, 1, -2, 3.5, 1e-3, -1e3)),
        "f16": ("F16", [4], struct.pack("<4e", 1, -0.5, 65504, 0)),
        "bf16": ("BF16", [2, 2], bytes([0x80, 0x3f, 0, 0x40, 0, 0xc0, 0, 0])),
        "f64": ("F64", [1], struct.pack("<d", 2.5)),
        "i64": ("I64", [3], struct.pack("<3q", 1, -2, 3)),
        "i32": ("I32", [1], struct.pack("<i", 7)),
        "i16": ("I16", [1], struct.pack("<h", -7)),
        "i8": ("I8", [2], bytes([1, 255])),
        "u8": ("U8", [], bytes([9])),
        "bool": ("BOOL", [2], bytes([0, 1])),
    }, {"format": "pt", "note": "seed"}))
    write(t, "empty_tensor.safetensors", safetensors_bytes({"zero": ("F32", [0, 4], b"")}))
    write(t, "metadata_only.safetensors", safetensors_bytes({}, {"ss_network_alpha": "8"}))
    write(t, "nan.safetensors", safetensors_bytes({"w": ("F32", [2], floats(float("nan"), 1))}))


def lora_seeds():
    t = "lora_file_fuzzer"
    diffusers, meta = read_safetensors(data / "tiny-sd2" / "lora" / "pytorch_lora_weights.safetensors")
    kohya, _ = read_safetensors(data / "tiny-sd2" / "lora_kohya" / "lora_kohya_alpha8.safetensors")
    module = "down_blocks.0.attentions.0.transformer_blocks.0.attn1"
    pick = {k: v for k, v in diffusers.items() if k.startswith(f"unet.{module}.to_q") or k.startswith(f"unet.{module}.to_out")}
    write(t, "diffusers.safetensors", safetensors_bytes(pick, meta))
    peft = {k.replace(".lora.down.", ".lora_A.").replace(".lora.up.", ".lora_B."): v for k, v in pick.items()}
    write(t, "peft.safetensors", safetensors_bytes(peft))
    write(t, "peft_default.safetensors", safetensors_bytes(
        {"base_model.model." + k[len("unet."):].replace(".weight", ".default.weight"): v for k, v in peft.items()}))
    old = {k.replace(".to_q.lora.", ".processor.to_q_lora.").replace(".to_out.0.lora.", ".processor.to_out_lora."): v
           for k, v in pick.items()}
    write(t, "old_processor.safetensors", safetensors_bytes(old))
    flat = module.replace(".", "_")
    write(t, "kohya.safetensors", safetensors_bytes({k: v for k, v in kohya.items() if k.startswith(f"lora_unet_{flat}_to_q")},
                                                    {"ss_network_dim": "4", "ss_network_alpha": "8"}))
    rank, hidden = 2, 32
    te = {f"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": ("F32", [rank, hidden], floats(*[0.01] * rank * hidden)),
          f"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": ("F32", [hidden, rank], floats(*[0.02] * rank * hidden)),
          f"lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha": ("F32", [], floats(1))}
    write(t, "kohya_text_encoder.safetensors", safetensors_bytes(te))
    # LyCORIS: LoHa, LoKr (full, low-rank, CP), LoCon with lora_mid, DoRA (made for tiny-sd1: some fit tiny-sd2)
    write(t, "lycoris.safetensors", (data / "lycoris" / "lycoris.safetensors").read_bytes())
    write(t, "diffusers_text_encoder.safetensors", safetensors_bytes(
        {"text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora.down.weight": te[next(iter(te))],
         "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora.up.weight": list(te.values())[1]}))


def embedding_seeds():
    t = "embedding_file_fuzzer"
    sep = b"\x1e"
    a1111 = (data / "embeddings" / "EasyNegative.safetensors").read_bytes()
    diffusers = (data / "embeddings" / "cat-toy" / "learned_embeds.safetensors").read_bytes()
    write(t, "a1111.bin", a1111 + sep + sep + b"a castle, easynegative")
    write(t, "diffusers.bin", diffusers + sep + sep + b"a <cat-toy> on a shelf")
    write(t, "named.bin", diffusers + sep + b"Style" + sep + b"xStylex (style:1.2)")
    write(t, "sdxl.bin", safetensors_bytes({"clip_l": ("F32", [1, 768], floats(*[0.0] * 768)),
                                            "clip_g": ("F32", [1, 1280], floats(*[0.0] * 1280))}) + sep + sep + b"x")


def single_file_seeds():
    t = "single_file_fuzzer"
    sd2, _ = read_safetensors(data / "single_file" / "tiny-sd2.fp16.safetensors")
    sd1, _ = read_safetensors(data / "single_file" / "tiny-sd1.safetensors")

    def pick(tensors, *parts):
        return {k: v for k, v in tensors.items() if any(p in k for p in parts)}
    keep = ("input_blocks.0.0.", "input_blocks.1.1.transformer_blocks.0.attn2.to_k.", "resblocks.0.attn.in_proj",
            "text_model.encoder.layers.0.self_attn.q_proj", "mid.attn_1.q.", "output_blocks.2.1.conv.", "encoder.conv_in.",
            "token_embedding", "position_embedding")
    small = {"cond_stage_model.model.token_embedding.weight": ("F16", [1, 32], bytes(64))}  # presence marks OpenCLIP
    write(t, "sd2_open_clip.safetensors", safetensors_bytes({**pick(sd2, *keep[:-3]), **small}))
    write(t, "sd1_clip.safetensors", safetensors_bytes(pick(sd1, *keep[:-3])))
    vae = {k[len("first_stage_model."):]: v for k, v in pick(sd1, "first_stage_model.encoder.conv_in.", "mid.attn_1.").items()}
    write(t, "vae_ldm.safetensors", safetensors_bytes(vae))
    # A fused q/k/v tensor whose rows do not split in three, and a 1x1 weight that is not 1x1.
    write(t, "odd_shapes.safetensors", safetensors_bytes({
        "model.diffusion_model.input_blocks.0.0.weight": ("F32", [1, 4, 1, 1], floats(1, 2, 3, 4)),
        "cond_stage_model.model.token_embedding.weight": ("F32", [1, 1], floats(1)),
        "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight": ("F32", [2, 2], floats(1, 2, 3, 4)),
        "first_stage_model.encoder.mid.attn_1.q.weight": ("F32", [2, 1, 2, 1], floats(1, 2, 3, 4))}))


def hub_seeds():
    t = "hub_responses_fuzzer"
    commit = "0123456789abcdef0123456789abcdef01234567"
    headers = ("HTTP/1.1 302 Found\r\nX-Repo-Commit: " + commit + "\r\nX-Linked-Etag: \"5d1e0f3a9c\"\r\n"
               "X-Linked-Size: 3463\r\nLocation: https://cdn-lfs.hf.co/repos/ab/cd/5d1e0f3a9c\r\nETag: W/\"12\"\r\n")
    files = sorted(str(p.relative_to(data / "tiny-sd2" / "pipeline")) for p in (data / "tiny-sd2" / "pipeline").rglob("*") if p.is_file())
    files += ["unet/diffusion_pytorch_model.fp16.safetensors", "text_encoder/model.safetensors.index.json",
              "text_encoder/model-00001-of-00002.safetensors", "unet/diffusion_pytorch_model.bin", "v2-1_768-ema-pruned.ckpt"]
    info = json.dumps({"id": "org/tiny", "sha": commit, "siblings": [{"rfilename": f} for f in files]})
    write(t, "resolve_and_info.txt", headers.encode() + SEP + info.encode() + SEP + b"fp16")
    write(t, "hostile.txt", b"x-repo-commit: main\r\nETag: \"../../etc\"\r\n" + SEP +
          json.dumps({"sha": commit, "siblings": [{"rfilename": "../x"}, {"rfilename": "/abs"}]}).encode() + SEP)


def json_config_seeds():
    t = "json_config_fuzzer"
    readers = {"unet": 0, "vae": 1, "text_encoder": 2, "scheduler": 3}
    for model in ("tiny-sd1", "tiny-sd2"):
        for component, index in readers.items():
            name = "scheduler_config.json" if component == "scheduler" else "config.json"
            text = (data / model / "pipeline" / component / name).read_bytes()
            write(t, f"{model}_{component}.json", bytes([index, 20]) + text)
    scheduler = json.loads((data / "tiny-sd2" / "pipeline" / "scheduler" / "scheduler_config.json").read_text())
    for cls in ("PNDMScheduler", "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "LMSDiscreteScheduler",
                "HeunDiscreteScheduler", "DPMSolverMultistepScheduler", "UniPCMultistepScheduler"):
        write(t, f"scheduler_{cls}.json", bytes([3, 7]) + json.dumps(dict(scheduler, _class_name=cls)).encode())
    write(t, "scheduler_karras.json", bytes([3, 9]) + json.dumps(dict(
        scheduler, _class_name="DPMSolverMultistepScheduler", use_karras_sigmas=True, timestep_spacing="trailing",
        algorithm_type="sde-dpmsolver++", lambda_min_clipped=float("-inf"), _use_default_values=["beta_end"])).encode())
    write(t, "scheduler_trained_betas.json", bytes([3, 5]) + json.dumps(dict(
        scheduler, num_train_timesteps=4, trained_betas=[0.1, 0.2, 0.3, 0.4], rescale_betas_zero_snr=True)).encode())
    write(t, "model_index.json", bytes([5, 0]) + (data / "tiny-sd2" / "pipeline" / "model_index.json").read_bytes())
    write(t, "shard_index.json", bytes([6, 0]) + json.dumps({
        "metadata": {"total_size": 1024},
        "weight_map": {"conv_in.weight": "diffusion_pytorch_model-00001-of-00002.safetensors",
                       "conv_out.weight": "diffusion_pytorch_model-00002-of-00002.safetensors"}}, indent=2).encode())
    write(t, "adapter_config.json", bytes([4, 0]) + json.dumps({
        "peft_type": "LORA", "r": 4, "lora_alpha": 8, "use_rslora": False,
        "target_modules": ["to_q", "to_k", "to_v", "to_out.0"], "rank_pattern": {"to_q": 2},
        "alpha_pattern": {"to_out.0": 4.0}}, indent=2).encode())


def tokenizer_seeds():
    files = ("vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json")
    for model in ("tiny-sd1", "tiny-sd2"):
        folder = data / model / "pipeline" / "tokenizer"
        parts = [(folder / f).read_bytes() for f in files]
        write("tokenizer_files_fuzzer", f"{model}.txt", SEP.join(parts + ["a photo of (lora-misato-token)!  Ünïcödé 東京 don't".encode()]))


PROMPTS = [
    "a photo of (lora-misato-token), best quality",
    "((masterpiece)), (detailed:1.3), [blurry], (a:0.5) (b:-1) \\(escaped\\) [[low]]",
    "portrait BREAK landscape, sunset BREAK",
    "a cat <lora:misato:0.8> on a mat <lora:style> <lora:neg:-1.5e-1>",
    "東京の夜景, Ünïcödé, emoji \U0001F600, tab\tand\nnewline, don't you'll",
    "(unbalanced (open [close) ] :1.1)",
    ", ".join(f"word{i}" for i in range(120)),
]


def prompt_seeds():
    for target in ("prompt_text_fuzzer", "prompt_parser_fuzzer", "lora_tags_fuzzer"):
        for i, p in enumerate(PROMPTS):
            write(target, f"prompt{i}.txt", p)


def dataset_seeds():
    t = "dataset_fuzzer"
    jsonl = '{"file_name": "a.png", "text": "a photo of (lora-misato-token)"}\n{"file_name": "sub/c.jpg", "text": ["one", "two"]}\n'
    write(t, "jsonl.txt", b"\x00" + jsonl.encode())
    write(t, "jsonl_columns.txt", b"\x0c" + b'{"file": "b.png", "caption": "x"}\n\n{"file_name": "../escape.png", "caption": "y"}\n')
    write(t, "csv.txt", b"\x01" + b'file_name,text\na.png,"a photo, quoted ""twice"""\nsub/c.jpg,plain\n')
    write(t, "csv_multiline.txt", b"\x05" + b'file_name,caption,extra\r\nb.png,"two\r\nlines",1\r\n')
    write(t, "captions.txt", b"\x02" + b"a photo of (lora-misato-token)\n" + SEP + b"second caption \xe6\x9d\xb1\r\n")


def png(image, **kw):
    out = io.BytesIO()
    image.save(out, "PNG", **kw)
    return out.getvalue()


def image_seeds():
    t = "image_fuzzer"
    for f in sorted((data / "images").glob("*")):
        write(t, f.name, f.read_bytes())
    rgb = Image.new("RGB", (8, 6))
    rgb.putdata([(x * 30, y * 40, 128) for y in range(6) for x in range(8)])
    write(t, "grey.png", png(rgb.convert("L")))
    write(t, "grey_alpha.png", png(rgb.convert("LA")))
    write(t, "palette.png", png(rgb.convert("P")))
    write(t, "rgba.png", png(rgb.convert("RGBA")))
    write(t, "grey16.png", png(rgb.convert("I;16")))
    for name, image, kw in (("grey.jpg", rgb.convert("L"), {}), ("progressive.jpg", rgb, {"progressive": True})):
        out = io.BytesIO()
        image.save(out, "JPEG", quality=90, **kw)
        write(t, name, out.getvalue())
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    out = io.BytesIO()
    rgb.save(out, "JPEG", exif=exif.tobytes())
    write(t, "exif_orientation6.jpg", out.getvalue())
    for name, image, kw in (("lossy.webp", rgb, {"quality": 80}), ("lossless_alpha.webp", rgb.convert("RGBA"), {"lossless": True})):
        out = io.BytesIO()
        image.save(out, "WEBP", **kw)
        write(t, name, out.getvalue())


def png_text_seeds():
    t = "png_text_fuzzer"
    image = Image.new("RGB", (2, 2))
    parameters = ("a photo of (lora-misato-token)\nNegative prompt: blurry\nSteps: 50, Sampler: Euler a, "
                  "CFG scale: 6, Seed: 42, Size: 512x512")
    for name, add in (("text.png", lambda i: i.add_text("parameters", parameters)),
                      ("ztxt.png", lambda i: i.add_text("parameters", parameters, zip=True)),
                      ("itxt.png", lambda i: i.add_itxt("parameters", parameters + " 東京", lang="en", tkey="parameters")),
                      ("itxt_zip.png", lambda i: i.add_itxt("Comment", "ünï", zip=True))):
        info = PngImagePlugin.PngInfo()
        add(info)
        write(t, name, png(image, pnginfo=info))


def checkpoint_seeds(sdtune):
    t = "checkpoint_fuzzer"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        (tmp / "data").mkdir()
        rows = []
        for i in range(8):
            Image.new("RGB", (32, 32), (i * 30, 100, 200)).save(tmp / "data" / f"{i}.png")
            rows.append(json.dumps({"file_name": f"{i}.png", "text": f"(lora-misato-token) picture {i}"}))
        (tmp / "data" / "metadata.jsonl").write_text("\n".join(rows) + "\n")
        subprocess.run([sdtune, "train", f"--pretrained_model_name_or_path={data / 'tiny-sd2' / 'pipeline'}",
                        f"--train_data_dir={tmp / 'data'}", "--resolution=32", "--train_batch_size=1", "--max_train_steps=1",
                        "--checkpointing_steps=1", "--seed=1", f"--output_dir={tmp / 'out'}"], check=True, capture_output=True)
        checkpoint = tmp / "out" / "checkpoint-1"
        state = (checkpoint / "state.json").read_bytes()
        random = (checkpoint / "random_states.safetensors").read_bytes()
    write(t, "after_one_step.txt", state + SEP + random)
    fp16 = json.loads(state)
    fp16["position"].update(loss_scale=65536.0, scale_growth_tracker=3)
    write(t, "fp16_scaler.txt", json.dumps(fp16).encode() + SEP + random)


def model_card_seeds():
    t = "model_card_fuzzer"
    write(t, "card.md", """---
base_model: stabilityai/stable-diffusion-2
license: openrail++
library_name: diffusers
pipeline_tag: text-to-image
tags:
- stable-diffusion
- text-to-image
- diffusers
- lora
instance_prompt: (lora-misato-token)
widget:
- text: a picture of (lora-misato-token)
  output:
    url: samples/0.png
---

# LoRA text-to-image fine-tune
""")
    write(t, "flow_style.md", "---\n{library_name: diffusers, tags: [lora, text-to-image], base_model: x, license: mit, "
                              "widget: [{output: {url: ../../etc/passwd}}], anchors: &a [*a]}\n---\n")


parser = argparse.ArgumentParser()
parser.add_argument("--sdtune", help="the sdtune binary, to make the checkpoint seeds")
args = parser.parse_args()
if args.sdtune:
    checkpoint_seeds(args.sdtune)
model_card_seeds()
safetensors_seeds()
lora_seeds()
embedding_seeds()
single_file_seeds()
hub_seeds()
json_config_seeds()
tokenizer_seeds()
prompt_seeds()
dataset_seeds()
image_seeds()
png_text_seeds()
