#!/usr/bin/env python3
"""Textual-inversion embeddings for the tiny fixture models, and what diffusers' load_textual_inversion makes of them.

Writes tests/data/embeddings/:
  EasyNegative.safetensors          A1111 / kohya form: one tensor "emb_params" [3, 32] (three vectors); the file
                                    name is the token (diffusers needs token="EasyNegative" for it)
  cat-toy/learned_embeds.safetensors  diffusers' textual_inversion.py form: {"<cat-toy>": [32]} (one vector)
  references.safetensors            per model (tiny-sd1, tiny-sd2), after
                                    pipe.load_textual_inversion(EasyNegative.safetensors, token="EasyNegative") and
                                    pipe.load_textual_inversion(cat-toy/):
    <model>.ids_<i>                 int64 [77]: tokenizer(multi_vector(PROMPTS[i]), max_length, truncated)
    <model>.prompt_embeds_<i>       [1, 77, 32]: pipe.encode_prompt(multi_vector(PROMPTS[i]), negative_prompt=...)[0]
    <model>.negative_embeds         [1, 77, 32]: its negative_prompt_embeds
    <model>.negative_ids            int64 [77]
PROMPTS and NEGATIVE are below (also in the file's metadata).

multi_vector() is what diffusers' _maybe_convert_prompt means to do ("EasyNegative" -> "EasyNegative
EasyNegative_1 EasyNegative_2"), done here because it does not happen with transformers 5: its CLIP tokenizer
matches added tokens in the lower-cased text, tokenize() returns "easynegative", which is not the added token's
name, and the prompt is left with the first vector only. The tokenizer matches the name in any case and inside
words, so multi_vector() replaces it in any case too; A1111 also uses every vector of an embedding.

Pinned: diffusers==0.40.0 transformers==5.24.0 torch==2.11.0 (CPU).
Run:  python scripts/make_embedding_fixtures.py
"""
import json
import pathlib
import re

import diffusers
import torch
import transformers
from diffusers import StableDiffusionPipeline
from safetensors.torch import save_file

assert diffusers.__version__ == "0.40.0", diffusers.__version__
assert transformers.__version__ == "5.24.0", transformers.__version__
assert torch.__version__.startswith("2.11.0"), torch.__version__

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
OUT = DATA / "embeddings"
PROMPTS = [
    "photo of <cat-toy> in EasyNegative style",
    "EasyNegative,<cat-toy>!EasyNegative",
    "EASYNEGATIVE portrait, xEasyNegativey",
]
NEGATIVE = "EasyNegative, blurry"


def main():
    torch.manual_seed(77)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "cat-toy").mkdir(exist_ok=True)
    save_file({"emb_params": torch.randn(3, 32)}, str(OUT / "EasyNegative.safetensors"))
    save_file({"<cat-toy>": torch.randn(32)}, str(OUT / "cat-toy" / "learned_embeds.safetensors"))
    refs = {}
    for model in ["tiny-sd1", "tiny-sd2"]:
        pipe = StableDiffusionPipeline.from_pretrained(str(DATA / model / "pipeline"), torch_dtype=torch.float32,
                                                       safety_checker=None, local_files_only=True)
        pipe.load_textual_inversion(str(OUT / "EasyNegative.safetensors"), token="EasyNegative")
        pipe.load_textual_inversion(str(OUT / "cat-toy"))
        tok = pipe.tokenizer

        def multi_vector(text):
            return re.sub("EasyNegative", "EasyNegative EasyNegative_1 EasyNegative_2", text, flags=re.IGNORECASE)

        def ids(text):
            return tok(multi_vector(text), padding="max_length", max_length=tok.model_max_length, truncation=True,
                       return_tensors="pt").input_ids[0].to(torch.int64)

        negative = None
        for i, prompt in enumerate(PROMPTS):
            refs[f"{model}.ids_{i}"] = ids(prompt)
            with torch.no_grad():
                positive, negative = pipe.encode_prompt(multi_vector(prompt), "cpu", 1, True, negative_prompt=multi_vector(NEGATIVE))
            refs[f"{model}.prompt_embeds_{i}"] = positive.contiguous()
            print(model, i, refs[f"{model}.ids_{i}"][:16].tolist())
        refs[f"{model}.negative_embeds"] = negative.contiguous()
        refs[f"{model}.negative_ids"] = ids(NEGATIVE)
    save_file(refs, str(OUT / "references.safetensors"),
              metadata={"prompts": json.dumps(PROMPTS), "negative": NEGATIVE,
                        "versions": json.dumps({"diffusers": diffusers.__version__, "transformers": transformers.__version__,
                                                "torch": torch.__version__})})


if __name__ == "__main__":
    main()
