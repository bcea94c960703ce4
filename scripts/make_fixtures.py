#!/usr/bin/env python3
"""Writes clipserve's golden test fixtures (Tests/Fixtures) from open_clip and transformers themselves.

What it writes (the fixture contract of HELPERS.md):
  Tests/Fixtures/images/<stem>.<ext>          synthetic images, one per decoder / PIL-mode path
  Tests/Fixtures/models/<model>/               small random-weight models (open_clip hub layout, one HF layout)
  Tests/Fixtures/expected/<model>.safetensors  pixels / input / per-layer outputs / embedding per image
  Tests/Fixtures/manifest.json                 what everything is, and the package versions used

Everything is deterministic: fixed seeds, one torch thread, sorted JSON. Re-running gives identical files
(on the same package versions; the manifest records them).

Environment (Python 3.11, what /work/pyenv has; pins in scripts/requirements-fixtures.txt):
    python3.11 -m venv pyenv && . pyenv/bin/activate
    # torch and torchvision MUST be the matching PyPI pair. A CPU-only torch (e.g. 2.13.0+cpu from
    # download.pytorch.org) next to PyPI's torchvision 0.28.0 (a CUDA 13 build) breaks `import torchvision`:
    # its _C.so needs libtorch_cuda.so / libc10_cuda.so / libcudart.so.13, fails to load (silently), and then
    # torchvision/_meta_registrations.py raises "operator torchvision::nms does not exist".
    # PyPI only publishes CUDA builds of torchvision for linux x86_64, so install torch from PyPI too
    # (it runs fine on a machine without a GPU). If a pip config adds a find-links folder holding
    # torch+cpu, bypass it, or pip prefers 2.13.0+cpu (a local version sorts higher):
    env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null pip install -r scripts/requirements-fixtures.txt
    pip install --no-deps /work/shared/wheels/open_clip_torch-3.3.0-py3-none-any.whl \
        /work/shared/wheels/ftfy-6.3.1-py3-none-any.whl /work/shared/wheels/wcwidth-0.9.4-*.whl
    python scripts/make_fixtures.py            # writes Tests/Fixtures, then verifies it
    python scripts/make_fixtures.py --verify   # only re-checks the committed files
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import PIL
import PIL.features
import safetensors
import safetensors.torch
import torch
import torchvision
import transformers
from PIL import Image, ImageDraw

import open_clip
from open_clip.push_to_hf_hub import save_config_for_hf

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "Tests" / "Fixtures"

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)

# A tiny text tower: only there so the checkpoint is a whole CLIP state dict, as real pushes are.
TINY_TEXT_CFG = {"context_length": 16, "vocab_size": 512, "width": 32, "heads": 2, "layers": 1}


# --------------------------------------------------------------------------------------------- images


def scene(width: int, height: int, seed: int) -> np.ndarray:
    """A natural-looking RGB uint8 [H, W, 3] picture: smooth gradients, shapes with hard edges, a patch of
    near-Nyquist stripes and a checkerboard (resampling errors show there), and sensor-like noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = xx / max(width - 1, 1), yy / max(height - 1, 1)
    img = np.zeros((height, width, 3))
    for c in range(3):
        a, b, ph = rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0, 2 * np.pi)
        img[..., c] = 128 + 70 * (a * u + b * v) + 35 * np.sin(2 * np.pi * (u * rng.uniform(0.5, 2)) + ph)
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(pil)
    for _ in range(4):
        x0, y0 = rng.integers(0, width), rng.integers(0, height)
        rw, rh = rng.integers(2, max(3, width // 2)), rng.integers(2, max(3, height // 2))
        color = tuple(int(t) for t in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse([x0 - rw // 2, y0 - rh // 2, x0 + rw // 2, y0 + rh // 2], fill=color)
        else:
            pts = [(int(x0 + rng.integers(-rw, rw + 1)), int(y0 + rng.integers(-rh, rh + 1))) for _ in range(4)]
            draw.polygon(pts, fill=color)
    for _ in range(3):
        p = [int(t) for t in (rng.integers(0, width), rng.integers(0, height), rng.integers(0, width),
                              rng.integers(0, height))]
        draw.line(p, fill=tuple(int(t) for t in rng.integers(0, 256, 3)), width=1)
    out = np.asarray(pil).astype(np.float64)
    # High-frequency texture: stripes with a period of ~2.3 px in one quadrant, a 1-px checkerboard in another.
    qh, qw = max(1, height // 3), max(1, width // 3)
    stripes = 60 * np.sin(2 * np.pi * xx[:qh, :qw] / 2.3 + yy[:qh, :qw] / 3.0)
    out[:qh, :qw] += stripes[..., None]
    checker = ((xx[-qh:, -qw:].astype(int) + yy[-qh:, -qw:].astype(int)) % 2) * 80 - 40
    out[-qh:, -qw:] += checker[..., None]
    out += rng.normal(0, 5, out.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def write_png_rgb16(path: Path, rgb16: np.ndarray) -> None:
    """A 16-bit-per-channel RGB PNG (colour type 2, depth 16), written by hand: PIL cannot create one."""
    h, w, _ = rgb16.shape
    raw = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9))
                     + chunk(b"IEND", b""))


def make_images(out: Path) -> list[dict]:
    """Writes the images and returns their manifest entries (file, stem, what it exercises)."""
    out.mkdir(parents=True, exist_ok=True)
    entries = []

    def add(stem: str, ext: str, exercises: str, save) -> None:
        path = out / f"{stem}.{ext}"
        save(path)
        entries.append({"stem": stem, "file": f"images/{stem}.{ext}", "exercises": exercises})

    a = scene(251, 189, 1)
    add("rgb_baseline", "jpg", "baseline (sequential) RGB JPEG, 4:2:0 chroma subsampling, landscape, odd size",
        lambda p: Image.fromarray(a).save(p, "JPEG", quality=90, subsampling=2, optimize=False))
    b = scene(203, 277, 2)
    add("rgb_progressive", "jpg", "progressive RGB JPEG, 4:4:4, portrait, odd size",
        lambda p: Image.fromarray(b).save(p, "JPEG", quality=88, progressive=True, subsampling=0))
    g = np.asarray(Image.fromarray(scene(161, 123, 3)).convert("L"))
    add("gray", "jpg", "single-component (grayscale) JPEG: PIL mode L, converted to RGB after resize+crop",
        lambda p: Image.fromarray(g, "L").save(p, "JPEG", quality=90))
    c = Image.fromarray(scene(141, 187, 4)).convert("CMYK")
    add("cmyk", "jpg", "4-component CMYK JPEG with an Adobe APP14 marker (transform 0); Pillow writes and reads "
        "CMYK JPEG samples inverted (rawmode CMYK;I, always); resized in CMYK, then PIL's CMYK->RGB without ICC: "
        "R = round((255-C)(255-K)/255) etc.",
        lambda p: c.save(p, "JPEG", quality=92))
    pal = Image.fromarray(scene(199, 143, 5)).quantize(colors=48, method=Image.Quantize.MEDIANCUT,
                                                       dither=Image.Dither.NONE)
    add("palette", "png", "8-bit palette PNG (mode P, 48 colours, no transparency): Pillow resizes P images "
        "with NEAREST whatever filter is asked, then the palette is expanded to RGB",
        lambda p: pal.save(p, "PNG", optimize=False))
    rgb = scene(217, 163, 6)
    yy, xx = np.mgrid[0:163, 0:217]
    alpha = np.clip(255 * (1.25 - np.hypot((xx - 108) / 108.0, (yy - 81) / 81.0)), 0, 255)
    alpha[:, 96:121] = 0  # fully transparent central band whose colour is NOT black (survives every crop)
    alpha = alpha.astype(np.uint8)
    rgba = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    add("rgba", "png", "RGBA PNG with varying alpha (0 on a left band with non-black colour): Pillow resizes "
        "RGBA premultiplied (RGBa), so colour under alpha 0 becomes black; alpha is then dropped (no compositing). "
        "transformers instead composites it onto white before resizing",
        lambda p: rgba.save(p, "PNG"))
    lum = np.asarray(Image.fromarray(scene(131, 97, 7)).convert("L")).astype(np.float64)
    g16 = np.clip(np.rint(lum * 1.4 + np.mgrid[0:97, 0:131][1] * 0.6), 0, 1023).astype(np.uint16)
    add("gray16", "png", "16-bit grayscale PNG holding small values (0..~430, like 10-bit sensor data): PIL mode "
        "I;16; resized as I;16 (16-bit samples), then convert('RGB') CLAMPS to 0..255 (no >>8 scaling), so the "
        "bright part saturates and the dark part keeps its values",
        lambda p: Image.fromarray(g16).save(p, "PNG"))
    r16 = scene(109, 83, 8).astype(np.uint16) * 257 + np.random.default_rng(80).integers(0, 257, (83, 109, 3)).astype(np.uint16)
    add("rgb16", "png", "16-bit-per-channel RGB PNG: Pillow opens it as mode RGB keeping the most significant "
        "byte of each sample (truncation, not rounding)", lambda p: write_png_rgb16(p, r16))
    la_l = np.asarray(Image.fromarray(scene(113, 151, 9)).convert("L"))
    la_a = np.clip(np.abs(np.mgrid[0:151, 0:113][1] - 56.0) * 9.0 - 40 + np.mgrid[0:151, 0:113][0] * 0.5,
                   0, 255).astype(np.uint8)
    la = Image.merge("LA", [Image.fromarray(la_l, "L"), Image.fromarray(la_a, "L")])
    add("gray_alpha", "png", "grayscale+alpha PNG (mode LA; alpha 0 in a central vertical band, "
        "ramping up sideways): resized premultiplied (La), alpha dropped by convert('RGB'); transformers "
        "composites it onto white first", lambda p: la.save(p, "PNG"))
    w = scene(187, 135, 10)
    add("lossy", "webp", "lossy WebP (VP8, YUV 4:2:0), RGB",
        lambda p: Image.fromarray(w).save(p, "WEBP", quality=80, method=4, exact=False))
    wl = scene(145, 109, 11)
    add("lossless", "webp", "lossless WebP (VP8L), RGB",
        lambda p: Image.fromarray(wl).save(p, "WEBP", lossless=True, quality=100, method=4))
    wide = scene(517, 93, 12)
    add("wide", "png", "very wide RGB PNG (517x93, aspect 5.6): strong horizontal downscale, big crop",
        lambda p: Image.fromarray(wide).save(p, "PNG"))
    tall = scene(71, 403, 13)
    add("tall", "jpg", "very tall RGB JPEG (71x403): upscale in x for shortest, padding for longest",
        lambda p: Image.fromarray(tall).save(p, "JPEG", quality=90))
    tiny = scene(7, 5, 14)
    add("tiny", "png", "tiny RGB PNG (7x5), smaller than every model input: pure upsampling",
        lambda p: Image.fromarray(tiny).save(p, "PNG"))

    for e in entries:
        im = Image.open(out / Path(e["file"]).name)
        e.update({"pil_mode": im.mode, "width": im.size[0], "height": im.size[1], "format": im.format})
        if im.format == "JPEG":
            e["progressive"] = bool(im.info.get("progressive", 0) or im.info.get("progression", 0))
    return entries


# --------------------------------------------------------------------------------------------- models


def perturb_(named_params, norm_types, gen: torch.Generator, scale_bias: float = 0.05) -> None:
    """Makes nothing the identity: every norm weight ~ 1 + 0.25 N, every norm bias ~ 0.1 N, every other bias
    gets + 0.05 N, and the class / positional embeddings get + 0.1 N. In place."""
    with torch.no_grad():
        for name, module_type, p in named_params:
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if issubclass(module_type, norm_types):
                if name.endswith("weight"):
                    p.copy_(1.0 + 0.25 * noise)
                else:
                    p.copy_(0.1 * noise)
            elif "class_embedding" in name or "positional_embedding" in name or "position_embedding" in name:
                p.add_(0.1 * noise)
            elif name.endswith("bias"):
                p.add_(scale_bias * noise)


def named_params_with_module(model: torch.nn.Module):
    for mod_name, mod in model.named_modules():
        for pname, p in mod.named_parameters(recurse=False):
            yield (f"{mod_name}.{pname}" if mod_name else pname), type(mod), p


OC_NOTES = [
    "Resize / crop / pad run on the image in its decoded PIL mode; convert('RGB') comes after them.",
    "Pillow resizes mode P (and 1) with NEAREST whatever filter is asked.",
    "Pillow resizes RGBA / LA premultiplied (RGBa / La) and un-premultiplies after: colour under alpha 0 "
    "comes back black; convert('RGB') then drops alpha without compositing.",
    "I;16 is resized as 16-bit samples; convert('RGB') clamps them to 0..255 (no scaling).",
    "CMYK is resized in CMYK; CMYK->RGB is round((255-C)(255-K)/255) per channel.",
    "Padding (longest) fills with fill_color in the image's own mode: for P that is palette index fill_color, "
    "for CMYK (f,f,f,f), for RGBA (f,f,f,f).",
    "Shortest: new_short = side, new_long = int(side * long / short); crop offsets round((size - side) / 2), "
    "half to even. Longest: size = round(x / max(h/side, w/side)) per axis.",
]
HF_NOTES = [
    "CLIPImageProcessorPil converts to RGB FIRST: images with alpha (A band or a transparency entry) are "
    "composited onto WHITE with PIL alpha_composite; others use convert('RGB') (P expanded, I;16 clamped, "
    "CMYK->RGB) before the resize, so a P image is resized bicubic in RGB, not NEAREST.",
    "Resize: new_short = shortest_edge, new_long = int(shortest_edge * long / short), PIL bicubic on uint8 RGB.",
    "Center crop offsets (size - crop) // 2 (floor); rescale x * (1/255) in float, then (x - mean) / std.",
]

OC_MODELS = {
    "oc-tiny": {
        "model_cfg": {"embed_dim": 32,
                      "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "head_width": 32,
                                     "patch_size": 32},
                      "text_cfg": TINY_TEXT_CFG},
        "force_preprocess": {},
        "store_dtype": torch.float32, "seed": 101,
    },
    "oc-tiny-quickgelu": {
        "model_cfg": {"embed_dim": 48, "quick_gelu": True,
                      "vision_cfg": {"image_size": 96, "layers": 2, "width": 64, "head_width": 16,
                                     "patch_size": 16},
                      "text_cfg": TINY_TEXT_CFG},
        "force_preprocess": {"mean": INCEPTION_MEAN, "std": INCEPTION_STD, "resize_mode": "squash"},
        "store_dtype": torch.float16, "seed": 202,
    },
    "oc-tiny-odd": {
        "model_cfg": {"embed_dim": 24,
                      "vision_cfg": {"image_size": 75, "layers": 1, "width": 48, "head_width": 16,
                                     "mlp_ratio": 2.0, "patch_size": 15},
                      "text_cfg": TINY_TEXT_CFG},
        "force_preprocess": {"resize_mode": "longest", "fill_color": 77},
        "store_dtype": torch.bfloat16, "seed": 303,
    },
}


def make_oc_model(name: str, spec: dict, out_dir: Path, cfg_dir: Path) -> None:
    """Builds the model with open_clip from a registered config, random init, perturbs it, and saves it the way
    push_to_hf_hub.save_for_hf does (state_dict -> open_clip_model.safetensors, save_config_for_hf)."""
    (cfg_dir / f"{name}.json").write_text(json.dumps(spec["model_cfg"], indent=2))
    open_clip.add_model_config(cfg_dir / f"{name}.json")
    torch.manual_seed(spec["seed"])
    model = open_clip.create_model(name, pretrained=None, force_preprocess_cfg=spec["force_preprocess"] or None)
    model.eval()
    gen = torch.Generator().manual_seed(spec["seed"] + 1)
    perturb_(list(named_params_with_module(model)), (torch.nn.LayerNorm,), gen)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(spec["store_dtype"]).contiguous() for k, v in model.state_dict().items()}
    safetensors.torch.save_file(state, out_dir / "open_clip_model.safetensors")
    save_config_for_hf(model, out_dir / "open_clip_config.json", model_config=spec["model_cfg"])
    # save_config_for_hf writes only mean/std/interpolation/resize_mode; fill_color is a PreprocessCfg key
    # that the local-dir / hf-hub loader merges too, so keep it when it is not the default.
    fill = model.visual.preprocess_cfg.get("fill_color", 0)
    if fill != 0:
        cfg = json.loads((out_dir / "open_clip_config.json").read_text())
        cfg["preprocess_cfg"]["fill_color"] = fill
        (out_dir / "open_clip_config.json").write_text(json.dumps(cfg, indent=2))


HF_VISION = {"hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
             "image_size": 64, "patch_size": 16, "hidden_act": "quick_gelu", "num_channels": 3,
             "layer_norm_eps": 1e-5, "projection_dim": 32}
HF_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
           "vocab_size": 512, "max_position_embeddings": 16, "hidden_act": "quick_gelu", "projection_dim": 32}


def make_hf_model(out_dir: Path, seed: int = 404) -> None:
    cfg = transformers.CLIPConfig(text_config=HF_TEXT, vision_config=HF_VISION, projection_dim=32)
    torch.manual_seed(seed)
    model = transformers.CLIPModel(cfg).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    perturb_(list(named_params_with_module(model)), (torch.nn.LayerNorm,), gen)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    proc = transformers.CLIPImageProcessorPil(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64})
    proc.save_pretrained(out_dir)
    for extra in ("generation_config.json",):
        (out_dir / extra).unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------- expected


def to_tw(x: torch.Tensor, batch_first: bool) -> torch.Tensor:
    """A block output of one image as [T, W]."""
    if isinstance(x, (tuple, list)):
        x = x[0]
    return (x[0] if batch_first else x[:, 0]).detach().float().contiguous()


def oc_geometry(img: Image.Image, steps: list, side: int) -> dict:
    """Where the model input comes from: the size after the resize step (run for real) and the crop / pad box
    (torchvision CenterCrop: round-half-even of (size - side) / 2; open_clip CenterCropOrPad pads
    (side - size) // 2 on the left/top first). Checked against the transform's own output."""
    resized = steps[0](img)
    w, h = resized.size
    g = {"source_mode": img.mode, "source_size": list(img.size), "resize_step": type(steps[0]).__name__,
         "resized_size": [w, h], "mode_during_resize": resized.mode}
    name = type(steps[1]).__name__ if len(steps) > 1 else ""
    if name == "CenterCrop":
        left, top = int(round((w - side) / 2.0)), int(round((h - side) / 2.0))
        g["crop_left_top"] = [left, top]
        assert steps[1](resized).tobytes() == resized.crop((left, top, left + side, top + side)).tobytes()
    elif name == "CenterCropOrPad":
        pad = [(side - w) // 2 if side > w else 0, (side - h) // 2 if side > h else 0,
               (side - w + 1) // 2 if side > w else 0, (side - h + 1) // 2 if side > h else 0]
        g["pad_left_top_right_bottom"] = pad
        g["pad_fill"] = steps[1].fill
        assert w <= side and h <= side
    else:
        assert (w, h) == (side, side), (w, h, side)
    return g


def oc_expected(name: str, model_dir: Path, images: list[dict], images_dir: Path) -> tuple[dict, dict]:
    """Loads the saved model back through open_clip (local-dir:), runs its own eval transform and the fp32 model."""
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{model_dir}", precision="fp32")
    model.eval()
    visual = model.visual
    bf = getattr(visual.transformer, "batch_first", True)
    steps = list(preprocess.transforms)
    assert type(steps[-1]).__name__ == "Normalize", steps
    to_pixels = torchvision.transforms.Compose(steps[:-1])
    captured: dict[str, torch.Tensor] = {}
    hooks = [
        visual.ln_pre.register_forward_hook(
            lambda m, i, o: captured.update({"embeddings": i[0][0].detach().clone(), "ln_pre": o[0].detach().clone()})),
        visual.ln_post.register_forward_hook(lambda m, i, o: captured.update({"ln_post": o[0, 0].detach().clone()})),
    ]
    for i, blk in enumerate(visual.transformer.resblocks):
        hooks.append(blk.register_forward_hook(
            lambda m, inp, o, i=i: captured.update({f"resblocks.{i}": to_tw(o, bf)})))
    tensors, geometry = {}, {}
    side = visual.preprocess_cfg["size"]
    side = side[0] if isinstance(side, (tuple, list)) else side
    with torch.no_grad():
        for e in images:
            s = e["stem"]
            img = Image.open(images_dir / Path(e["file"]).name)
            geometry[s] = oc_geometry(img, steps, side)
            pixels = to_pixels(img)
            inp = preprocess(img)
            assert torch.equal(steps[-1](pixels), inp)
            captured.clear()
            emb = model.encode_image(inp[None], normalize=False)[0]
            tensors[f"pixels.{s}"] = pixels
            tensors[f"input.{s}"] = inp
            for k in ["embeddings", "ln_pre"] + [f"resblocks.{i}" for i in range(len(visual.transformer.resblocks))] \
                    + ["ln_post"]:
                tensors[f"layer.{s}.{k}"] = captured[k]
            tensors[f"embedding.{s}"] = emb
    for h in hooks:
        h.remove()
    # Self-checks: the chain of layers reproduces the embedding and ln_pre/ln_post.
    for e in images:
        s = e["stem"]
        ln = torch.nn.functional.layer_norm
        t = tensors
        assert torch.allclose(ln(t[f"layer.{s}.embeddings"], (visual.ln_pre.normalized_shape[0],),
                                 visual.ln_pre.weight, visual.ln_pre.bias, visual.ln_pre.eps),
                              t[f"layer.{s}.ln_pre"], atol=1e-5)
        last = t[f"layer.{s}.resblocks.{len(visual.transformer.resblocks) - 1}"][0]
        assert torch.allclose(ln(last, (last.shape[0],), visual.ln_post.weight, visual.ln_post.bias,
                                 visual.ln_post.eps), t[f"layer.{s}.ln_post"], atol=1e-5)
        assert torch.allclose(t[f"layer.{s}.ln_post"] @ visual.proj, t[f"embedding.{s}"], atol=1e-5)
        x = t[f"layer.{s}.ln_pre"][None]
        with torch.no_grad():
            for i, blk in enumerate(visual.transformer.resblocks):
                x = blk(x if bf else x.transpose(0, 1))
                x = x if bf else x.transpose(0, 1)
                assert torch.allclose(x[0], t[f"layer.{s}.resblocks.{i}"], atol=1e-5)
    pp = dict(visual.preprocess_cfg)
    size = pp["size"]
    if isinstance(size, (tuple, list)) and size[0] == size[1]:
        pp["size"] = size[0]
    info = {"geometry": geometry, "transform": [repr(s) for s in steps], "preprocess_cfg": {k: (list(v) if isinstance(v, tuple) else v)
                                                                      for k, v in pp.items()}}
    return tensors, info


def hf_expected(model_dir: Path, images: list[dict], images_dir: Path) -> tuple[dict, dict]:
    model, loading = transformers.CLIPVisionModelWithProjection.from_pretrained(
        model_dir, attn_implementation="eager", output_loading_info=True)
    assert not loading["missing_keys"] and not loading["mismatched_keys"], loading
    model = model.float().eval()
    proc = transformers.AutoImageProcessor.from_pretrained(model_dir, backend="pil")
    default_proc = transformers.AutoImageProcessor.from_pretrained(model_dir)
    vm = model.vision_model
    captured: dict[str, torch.Tensor] = {}
    hooks = [
        vm.embeddings.register_forward_hook(lambda m, i, o: captured.update({"embeddings": o[0].detach().clone()})),
        vm.pre_layrnorm.register_forward_hook(lambda m, i, o: captured.update({"ln_pre": o[0].detach().clone()})),
        vm.post_layernorm.register_forward_hook(lambda m, i, o: captured.update({"ln_post": o[0].detach().clone()})),
    ]
    for i, layer in enumerate(vm.encoder.layers):
        hooks.append(layer.register_forward_hook(
            lambda m, inp, o, i=i: captured.update({f"resblocks.{i}": to_tw(o, True)})))
    tensors, geometry = {}, {}
    n = len(vm.encoder.layers)
    with torch.no_grad():
        for e in images:
            s = e["stem"]
            img = Image.open(images_dir / Path(e["file"]).name)
            short_edge, crop = proc.size["shortest_edge"], proc.crop_size["height"]
            w, h = img.size
            short, long = min(w, h), max(w, h)
            new = (short_edge, int(short_edge * long / short))
            rw, rh = (new[0], new[1]) if w <= h else (new[1], new[0])
            geometry[s] = {"source_mode": img.mode, "source_size": [w, h], "resized_size": [rw, rh],
                           "crop_left_top": [(rw - crop) // 2, (rh - crop) // 2],
                           "alpha_composited_on_white": "A" in img.getbands()
                           or img.info.get("transparency") is not None}
            inp = proc(images=img, return_tensors="pt")["pixel_values"][0].float()
            pixels = proc(images=img, do_normalize=False, return_tensors="pt")["pixel_values"][0].float()
            captured.clear()
            out = model(pixel_values=inp[None], output_hidden_states=True)
            hs = out.hidden_states
            assert torch.equal(hs[0][0], captured["ln_pre"])
            for i in range(n):
                assert torch.equal(hs[i + 1][0], captured[f"resblocks.{i}"])
            tensors[f"pixels.{s}"] = pixels
            tensors[f"input.{s}"] = inp
            for k in ["embeddings", "ln_pre"] + [f"resblocks.{i}" for i in range(n)] + ["ln_post"]:
                tensors[f"layer.{s}.{k}"] = captured[k]
            tensors[f"embedding.{s}"] = out.image_embeds[0].detach().clone()
            assert torch.allclose(captured["ln_post"] @ model.visual_projection.weight.T, out.image_embeds[0],
                                  atol=1e-5)
    for h in hooks:
        h.remove()
    info = {"geometry": geometry, "processor_class": type(proc).__name__, "processor_backend": getattr(proc, "backend", "?"),
            "default_processor_class": type(default_proc).__name__,
            "processor_config": json.loads((model_dir / "preprocessor_config.json").read_text())}
    return tensors, info


# --------------------------------------------------------------------------------------------- manifest


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def oc_architecture(model_cfg: dict) -> dict:
    v = model_cfg["vision_cfg"]
    width, head_width = v["width"], v.get("head_width", 64)
    grid = v["image_size"] // v["patch_size"]
    return {"image_size": v["image_size"], "patch_size": v["patch_size"], "width": width, "layers": v["layers"],
            "head_width": head_width, "heads": width // head_width,
            "mlp_width": int(width * v.get("mlp_ratio", 4.0)), "embed_dim": model_cfg["embed_dim"],
            "activation": "quick_gelu" if model_cfg.get("quick_gelu", False) else "gelu",
            "layer_norm_eps": 1e-5, "tokens": grid * grid + 1}


def safetensors_dtypes(path: Path) -> dict:
    with safetensors.safe_open(str(path), "pt") as f:
        return sorted({str(f.get_slice(k).get_dtype()) for k in f.keys()})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=FIXTURES)
    ap.add_argument("--verify", action="store_true", help="only verify the files already in --out")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    out: Path = args.out
    if args.verify:
        return verify(out)

    images = make_images(out / "images")
    manifest = {
        "generator": "scripts/make_fixtures.py",
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                     "torchvision": torchvision.__version__, "open_clip": open_clip.__version__,
                     "transformers": transformers.__version__, "pillow": PIL.__version__,
                     "numpy": np.__version__, "safetensors": safetensors.__version__,
                     "libjpeg_turbo": PIL.features.version("libjpeg_turbo"), "libwebp": PIL.features.version("webp"),
                     "zlib": PIL.features.version("zlib")},
        "layout": {
            "expected": "expected/<model>.safetensors, all F32",
            "tensors": {
                "pixels.S": "[3,H,W] after resize/crop(/pad) and ToTensor, before Normalize; values k/255",
                "input.S": "[3,H,W] normalised model input",
                "layer.S.embeddings": "[T,W] class token + patches + positional embedding, before ln_pre",
                "layer.S.ln_pre": "[T,W]", "layer.S.resblocks.<i>": "[T,W] output of block i",
                "layer.S.ln_post": "[W] class token after ln_post",
                "embedding.S": "[E] encode_image(normalize=False) / image_embeds (not L2-normalised)"},
        },
        "images": images,
        "models": {},
    }
    with tempfile.TemporaryDirectory() as td:
        for name, spec in OC_MODELS.items():
            mdir = out / "models" / name
            make_oc_model(name, spec, mdir, Path(td))
            tensors, info = oc_expected(name, mdir, images, out / "images")
            exp = out / "expected" / f"{name}.safetensors"
            exp.parent.mkdir(parents=True, exist_ok=True)
            safetensors.torch.save_file({k: v.float().contiguous() for k, v in tensors.items()}, exp)
            arch = oc_architecture(spec["model_cfg"])
            manifest["models"][name] = {
                "layout": "open_clip", "dir": f"models/{name}",
                "files": ["open_clip_config.json", "open_clip_model.safetensors"],
                "weights_dtype": safetensors_dtypes(mdir / "open_clip_model.safetensors"),
                "expected": f"expected/{name}.safetensors",
                "expected_computed_with": "open_clip.create_model_and_transforms('local-dir:<dir>', precision='fp32')"
                                          " from the saved (rounded) weights; eval transform; encode_image",
                "architecture": arch,
                "layer_names": ["embeddings", "ln_pre"] + [f"resblocks.{i}" for i in range(arch["layers"])]
                               + ["ln_post"],
                "weight_prefix": "visual.",
                "preprocess": {**info["preprocess_cfg"], "pipeline": "open_clip"},
                "transform": info["transform"],
                "pipeline_notes": OC_NOTES,
                "geometry": info["geometry"],
            }
        mdir = out / "models" / "hf-tiny"
        make_hf_model(mdir)
        tensors, info = hf_expected(mdir, images, out / "images")
        exp = out / "expected" / "hf-tiny.safetensors"
        safetensors.torch.save_file({k: v.float().contiguous() for k, v in tensors.items()}, exp)
        v = HF_VISION
        grid = v["image_size"] // v["patch_size"]
        pc = info["processor_config"]
        manifest["models"]["hf-tiny"] = {
            "layout": "transformers", "dir": "models/hf-tiny",
            "files": sorted(p.name for p in mdir.iterdir()),
            "weights_dtype": safetensors_dtypes(mdir / "model.safetensors"),
            "expected": "expected/hf-tiny.safetensors",
            "expected_computed_with": f"transformers.CLIPVisionModelWithProjection (eager attention, fp32) fed by "
                                      f"{info['processor_class']} (backend={info['processor_backend']}); "
                                      f"AutoImageProcessor's default class here is {info['default_processor_class']}",
            "architecture": {"image_size": v["image_size"], "patch_size": v["patch_size"], "width": v["hidden_size"],
                             "layers": v["num_hidden_layers"],
                             "head_width": v["hidden_size"] // v["num_attention_heads"],
                             "heads": v["num_attention_heads"], "mlp_width": v["intermediate_size"],
                             "embed_dim": 32, "activation": v["hidden_act"], "layer_norm_eps": v["layer_norm_eps"],
                             "tokens": grid * grid + 1},
            "layer_names": ["embeddings", "ln_pre"] + [f"resblocks.{i}" for i in range(v["num_hidden_layers"])]
                           + ["ln_post"],
            "layer_mapping": {"embeddings": "vision_model.embeddings output",
                              "ln_pre": "vision_model.pre_layrnorm output = hidden_states[0]",
                              "resblocks.i": "vision_model.encoder.layers[i] output = hidden_states[i+1]",
                              "ln_post": "vision_model.post_layernorm(last_hidden_state[:, 0])",
                              "embedding": "image_embeds = visual_projection(ln_post)"},
            "weight_prefix": "vision_model.",
            "preprocess": {"size": pc["crop_size"]["height"], "shortest_edge": pc["size"]["shortest_edge"],
                           "mean": pc["image_mean"], "std": pc["image_std"],
                           "interpolation": "bicubic" if pc["resample"] == 3 else pc["resample"],
                           "resize_mode": "shortest", "fill_color": 0, "pipeline": "transformers",
                           "processor_class": info["processor_class"]},
            "pipeline_notes": HF_NOTES,
            "geometry": info["geometry"],
        }
    for e in images:
        e["sha256"] = sha256(out / e["file"])
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return verify(out)


def plain_pil_pixels(img: Image.Image, g: dict, pp: dict, layout: str) -> torch.Tensor:
    """The documented pipeline written with bare Pillow calls, from the manifest geometry: proves the notes."""
    side = pp["size"]
    if layout == "transformers":
        if "A" in img.getbands() or img.info.get("transparency") is not None:
            white = Image.new("RGBA", img.size, (255, 255, 255, 255))
            img = Image.alpha_composite(white, img.convert("RGBA"))
        img = img.convert("RGB").resize(tuple(g["resized_size"]), Image.Resampling.BICUBIC)
        left, top = g["crop_left_top"]
        img = img.crop((left, top, left + side, top + side))
    else:
        img = img.resize(tuple(g["resized_size"]), Image.Resampling.BICUBIC)
        if "crop_left_top" in g:
            left, top = g["crop_left_top"]
            img = img.crop((left, top, left + side, top + side))
        elif "pad_left_top_right_bottom" in g:
            l, t, _, _ = g["pad_left_top_right_bottom"]
            f = g["pad_fill"]
            fill = f if img.mode in ("L", "P", "I;16", "I", "F") else (f,) * len(img.getbands())
            canvas = Image.new(img.mode, (side, side), fill)
            if img.mode == "P":
                canvas.putpalette(img.getpalette())
            canvas.paste(img, (l, t))
            img = canvas
        img = img.convert("RGB")
    a = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(a.astype(np.float32) / np.float32(255)).permute(2, 0, 1).contiguous()


def verify(out: Path) -> int:
    """Re-reads the committed files and checks them against open_clip / transformers again."""
    manifest = json.loads((out / "manifest.json").read_text())
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    for name, m in manifest["models"].items():
        exp = safetensors.torch.load_file(out / m["expected"])
        arch = m["architecture"]
        for e in manifest["images"]:
            s = e["stem"]
            px, inp = exp[f"pixels.{s}"], exp[f"input.{s}"]
            side = arch["image_size"]
            assert px.shape == (3, side, side) and inp.shape == (3, side, side), (name, s, px.shape)
            assert float(px.min()) >= 0 and float(px.max()) <= 1
            assert torch.equal(torch.round(px * 255) / 255, px), (name, s, "pixels are not k/255")
            mean = torch.tensor(m["preprocess"]["mean"])[:, None, None]
            std = torch.tensor(m["preprocess"]["std"])[:, None, None]
            assert torch.allclose((px - mean) / std, inp, atol=1e-6), (name, s)
            t, w = arch["tokens"], arch["width"]
            for ln in m["layer_names"]:
                shape = (w,) if ln == "ln_post" else (t, w)
                assert tuple(exp[f"layer.{s}.{ln}"].shape) == shape, (name, s, ln)
            assert tuple(exp[f"embedding.{s}"].shape) == (arch["embed_dim"],)
        if m["layout"] == "open_clip":
            model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{out / m['dir']}")
            model.eval()
            for e in manifest["images"]:
                s = e["stem"]
                img = Image.open(out / e["file"])
                inp = preprocess(img)
                assert torch.equal(inp, exp[f"input.{s}"]), (name, s)
                with torch.no_grad():
                    emb = model.encode_image(inp[None])[0]
                assert torch.allclose(emb, exp[f"embedding.{s}"], atol=1e-5, rtol=1e-5), (name, s)
        else:
            model = transformers.CLIPVisionModelWithProjection.from_pretrained(out / m["dir"]).eval()
            with torch.no_grad():
                for e in manifest["images"]:
                    s = e["stem"]
                    emb = model(pixel_values=exp[f"input.{s}"][None]).image_embeds[0]
                    assert torch.allclose(emb, exp[f"embedding.{s}"], atol=1e-5, rtol=1e-5), (name, s)
        for e in manifest["images"]:
            s = e["stem"]
            ref = plain_pil_pixels(Image.open(out / e["file"]), m["geometry"][s], m["preprocess"], m["layout"])
            assert torch.equal(ref, exp[f"pixels.{s}"]), (name, s, "plain-PIL pipeline differs")
        print(f"ok {name}: {len(manifest['images'])} images, {len(exp)} tensors")
    print(f"total fixture bytes: {total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
