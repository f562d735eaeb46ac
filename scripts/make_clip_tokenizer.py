#!/usr/bin/env python3
"""The CLIP tokenizer files that sdtune compiles in for single-file checkpoints (data/clip-tokenizer/).

A single-file SD 1.x/2.x checkpoint carries no tokenizer. SD 1.x uses openai/clip-vit-large-patch14's and
SD 2.x stabilityai/stable-diffusion-2's tokenizer/: both are the same BPE (vocab.json of 49408 tokens and
merges.txt), differing only in the pad token. Their source is OpenAI's bpe_simple_vocab_16e6.txt.gz, which
open_clip_torch ships (PyPI, pinned below); vocab.json is built from it exactly as CLIP's SimpleTokenizer
builds its encoder: the 256 byte symbols, the same with </w>, the first 48894 merges joined, BOS, EOS.

Checked with transformers' CLIPTokenizer reading the written files (ids CLIP is known to give).

Run:  python -m venv v && v/bin/pip download --no-deps open_clip_torch==3.3.0 -d wheels &&
      v/bin/pip install transformers==5.24.0 && v/bin/python scripts/make_clip_tokenizer.py wheels/open_clip_torch-3.3.0-py3-none-any.whl
"""
import gzip
import json
import pathlib
import sys
import zipfile

wheel = sys.argv[1]
assert pathlib.Path(wheel).name == "open_clip_torch-3.3.0-py3-none-any.whl", wheel
out = pathlib.Path(__file__).resolve().parent.parent / "data" / "clip-tokenizer"
out.mkdir(parents=True, exist_ok=True)


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


with zipfile.ZipFile(wheel) as z:
    lines = gzip.decompress(z.read("open_clip/bpe_simple_vocab_16e6.txt.gz")).decode("utf-8").split("\n")
merges = lines[1 : 49152 - 256 - 2 + 1]
symbols = bytes_to_unicode()
vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
assert len(vocab) == 49408 and len(set(vocab)) == 49408
(out / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False), encoding="utf-8")
(out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")

from transformers import CLIPTokenizer  # noqa: E402

tokenizer = CLIPTokenizer(str(out / "vocab.json"), str(out / "merges.txt"))
ids = tokenizer("a photo of a cat").input_ids
assert ids == [49406, 320, 1125, 539, 320, 2368, 49407], ids
print("wrote", out, "- 'a photo of a cat' ->", ids)
