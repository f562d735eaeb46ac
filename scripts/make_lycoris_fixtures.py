#!/usr/bin/env python3
"""LyCORIS adapters (LoHa, LoKr, LoCon, DoRA) on the tiny-sd1 UNet, and the weights LyCORIS merges from them.

Writes tests/data/lycoris/:
  lycoris.safetensors     one file, kohya/LyCORIS keys (lora_unet_<module with _>.<key>), one module per target:
    loha        attn1.to_q (linear)       LohaModule(lora_dim 2, alpha 1)
    loha_tucker resnets.0.conv1 (3x3)     LohaModule(lora_dim 2, alpha 4, use_tucker): hada_t1/hada_t2
    lokr_full   attn1.to_k (linear)       LokrModule(lora_dim 16, alpha 3, factor 4): lokr_w1 and lokr_w2 full
                                          (LyCORIS, A1111 and ComfyUI all scale full matrices by 1, whatever alpha says)
    lokr        attn2.to_k (linear 32->8) LokrModule(lora_dim 1, alpha 2): lokr_w1 full, lokr_w2_a/_b
    lokr_both   up_blocks.0.resnets.0.conv1 (3x3, 32->16)  LokrModule(lora_dim 1, alpha 1, decompose_both,
                                          use_tucker): lokr_w1_a/_b, lokr_w2_a/_b, lokr_t2
    locon_cp    resnets.1.conv1 (3x3)     LoConModule(lora_dim 2, alpha 1, use_tucker): lora_down/lora_mid/lora_up
    dora        attn1.to_v (linear)       LoConModule(lora_dim 2, alpha 4, weight_decompose): dora_scale [out, 1]
  references.safetensors  per module: <name>.original, <name>.merged_1 and <name>.merged_0.5: the weight LyCORIS's
                          forward() runs with at multiplier 1 and 0.5 (W + multiplier * diff). For DoRA at 0.5,
                          ComfyUI's rule (comfy/weight_adapter/base.py weight_decompose: W + 0.5 * (dora(W + diff) - W)),
                          because LyCORIS's own keeps the whole diff at any multiplier.
LyCORIS 4.1.3's get_merged_weight() scales LoHa and LoKr twice (their get_weight() already applies self.scale
and get_diff_weight() multiplies by it again); forward() applies it once, as A1111 and ComfyUI do, so the
references take diff = get_weight() * scalar for those (and get_diff_weight() for LoCon, which scales once). For
the linear cases the script checks that forward() on an identity input gives exactly that change.
  peft.safetensors        the same kind of adapters made by peft's own LoHa / LoKr layers (peft 0.21.2), saved
                          with kohya keys and their alpha: peft_loha (attn1.to_q, r 2, alpha 3), peft_lokr (attn2.to_k,
                          r 1, alpha 2: lokr_w1 full, w2 low-rank), peft_lokr_full (attn1.to_k, r 16, alpha 3: both full)
  references.safetensors  also <name>.delta: peft's get_delta_weight(). peft scales a LoKr of two full matrices by
                          alpha / r too; A1111, ComfyUI and LyCORIS by 1, which sdtune follows (the test checks both).
Every parameter is drawn from N(0, 0.1^2) (torch seed 5) so that no factor is zero as at initialisation.

Pinned: lycoris-lora==4.1.3 peft==0.21.2 diffusers==0.40.0 torch==2.11.0 (CPU).
Run:  python scripts/make_lycoris_fixtures.py
"""
import json
import pathlib

import diffusers
import lycoris
import peft
import torch
from diffusers import UNet2DConditionModel
from lycoris.modules.locon import LoConModule
from lycoris.modules.loha import LohaModule
from lycoris.modules.lokr import LokrModule
from safetensors.torch import save_file

assert diffusers.__version__ == "0.40.0", diffusers.__version__
assert torch.__version__.startswith("2.11.0"), torch.__version__
assert peft.__version__ == "0.21.2", peft.__version__

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "lycoris"
BLOCK = "down_blocks.0.attentions.0.transformer_blocks.0."
CASES = [
    ("loha", BLOCK + "attn1.to_q", LohaModule, dict(lora_dim=2, alpha=1)),
    ("loha_tucker", "down_blocks.0.resnets.0.conv1", LohaModule, dict(lora_dim=2, alpha=4, use_tucker=True)),
    ("lokr_full", BLOCK + "attn1.to_k", LokrModule, dict(lora_dim=16, alpha=3, factor=4)),
    ("lokr", BLOCK + "attn2.to_k", LokrModule, dict(lora_dim=1, alpha=2)),
    ("lokr_both", "up_blocks.0.resnets.0.conv1", LokrModule, dict(lora_dim=1, alpha=1, decompose_both=True, use_tucker=True)),
    ("locon_cp", "down_blocks.0.resnets.1.conv1", LoConModule, dict(lora_dim=2, alpha=1, use_tucker=True)),
    ("dora", BLOCK + "attn1.to_v", LoConModule, dict(lora_dim=2, alpha=4, weight_decompose=True)),
]


def comfy_dora(original, diff, dora_scale, strength):
    """ComfyUI's weight_decompose for a per-output-row dora_scale ([out, 1, ...]), as LyCORIS stores it."""
    calc = original + diff
    norm = calc.reshape(calc.shape[0], -1).norm(dim=1).reshape(calc.shape[0], *[1] * (calc.dim() - 1))
    calc = calc * (dora_scale / norm)
    return original + strength * (calc - original)


PEFT_CASES = [
    ("peft_loha", BLOCK + "attn1.to_q", "loha", dict(r=2, alpha=3)),
    ("peft_lokr", BLOCK + "attn2.to_k", "lokr", dict(r=1, alpha=2)),
    ("peft_lokr_full", BLOCK + "attn1.to_k", "lokr", dict(r=16, alpha=3)),
]


def peft_adapters(refs):
    """Each case on a fresh copy of the UNet, through peft's inject_adapter_in_model."""
    from peft import LoHaConfig, LoKrConfig, inject_adapter_in_model
    tensors = {}
    for name, target, kind, options in PEFT_CASES:
        unet = UNet2DConditionModel.from_pretrained(str(ROOT / "tests" / "data" / "tiny-sd1" / "pipeline" / "unet"))
        config = (LoHaConfig if kind == "loha" else LoKrConfig)(target_modules=[target], init_weights=False, **options)
        inject_adapter_in_model(config, unet)
        layer = dict(unet.named_modules())[target]
        stem = "lora_unet_" + target.replace(".", "_")
        with torch.no_grad():
            for key, params in layer.named_parameters():
                if key.startswith(("hada_", "lokr_")):
                    params.copy_(torch.randn_like(params) * 0.1)
            for key in ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "lokr_w1", "lokr_w1_a", "lokr_w1_b",
                        "lokr_w2", "lokr_w2_a", "lokr_w2_b"):
                if hasattr(layer, key) and "default" in getattr(layer, key):
                    tensors[f"{stem}.{key}"] = getattr(layer, key)["default"].detach().clone().contiguous()
            tensors[f"{stem}.alpha"] = torch.tensor(float(options["alpha"]))
            refs[f"{name}.original"] = layer.get_base_layer().weight.detach().clone().contiguous()
            refs[f"{name}.delta"] = layer.get_delta_weight("default").detach().clone().contiguous()
        print(name, target, sorted(k.split(".")[-1] for k in tensors if k.startswith(stem)))
    save_file(tensors, str(OUT / "peft.safetensors"))


def main():
    torch.manual_seed(5)
    OUT.mkdir(parents=True, exist_ok=True)
    unet = UNet2DConditionModel.from_pretrained(str(ROOT / "tests" / "data" / "tiny-sd1" / "pipeline" / "unet"))
    modules = dict(unet.named_modules())
    tensors, refs, kinds = {}, {}, {}
    for name, target, cls, options in CASES:
        layer = modules[target]
        lora_name = "lora_unet_" + target.replace(".", "_")
        adapter = cls(lora_name, layer, multiplier=1.0, **options)
        with torch.no_grad():
            for p in adapter.parameters():
                p.copy_(torch.randn_like(p) * 0.1)
            if options.get("weight_decompose"):  # a magnitude near the weight's own, as training leaves it
                adapter.dora_scale.copy_(layer.weight.reshape(layer.weight.shape[0], -1).norm(dim=1).reshape(adapter.dora_scale.shape) * 1.1)
        state = adapter.custom_state_dict()
        for key, value in state.items():
            tensors[f"{lora_name}.{key}"] = value.detach().clone().contiguous()
        kinds[name] = sorted(state.keys())
        original = layer.weight.detach().clone()
        with torch.no_grad():
            if cls is LoConModule:
                diff = adapter.get_diff_weight(multiplier=1)[0]
            else:
                diff = adapter.get_weight(adapter.shape) * adapter.scalar
            diff = diff.reshape(original.shape)
            if isinstance(layer, torch.nn.Linear) and not options.get("weight_decompose"):
                adapter.apply_to()
                eye = torch.eye(original.shape[1])
                change = adapter.forward(eye) - adapter.org_forward(eye)
                assert torch.allclose(change.T, diff, atol=1e-6), name
                adapter.restore()
            refs[f"{name}.original"] = original.contiguous()
            if options.get("weight_decompose"):
                refs[f"{name}.merged_1"] = comfy_dora(original, diff, adapter.dora_scale, 1.0).contiguous()
                assert torch.allclose(adapter.get_merged_weight(multiplier=1)[0], refs[f"{name}.merged_1"], atol=1e-6)
                refs[f"{name}.merged_0.5"] = comfy_dora(original, diff, adapter.dora_scale, 0.5).contiguous()
            else:
                refs[f"{name}.merged_1"] = (original + diff).contiguous()
                refs[f"{name}.merged_0.5"] = (original + 0.5 * diff).contiguous()
        print(name, target, tuple(original.shape), kinds[name])
    save_file(tensors, str(OUT / "lycoris.safetensors"), metadata={"ss_network_module": "lycoris.kohya"})
    peft_adapters(refs)
    save_file(refs, str(OUT / "references.safetensors"),
              metadata={"cases": json.dumps([(n, t) for n, t, _, _ in CASES]), "keys": json.dumps(kinds),
                        "peft_cases": json.dumps([(n, t) for n, t, _, _ in PEFT_CASES]),
                        "versions": json.dumps({"lycoris-lora": lycoris.__version__ if hasattr(lycoris, "__version__") else "4.1.3",
                                                "peft": peft.__version__, "diffusers": diffusers.__version__, "torch": torch.__version__})})


if __name__ == "__main__":
    main()
