"""Image-embedding throughput: GraftModel vs transformers CLIP (eager, SDPA) vs open_clip, same random weights.

Every implementation gets the same ViT-B/16 (or B/32) weights, is checked to produce the same embeddings, then
timed in interleaved rounds (the machines are shared and noisy; ratios within one process are what count).

    python scripts/bench_encoder.py                 # ViT-B/16, batch 32, 224 px, fp32 on the CPU
    python scripts/bench_encoder.py --quick         # fewer rounds, batch 8
    python scripts/bench_encoder.py --device cuda --dtype bfloat16   # on a GPU
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch

from graft_hf import GraftConfig, GraftModel


def build_models(patch: int, device: str, dtype: torch.dtype) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    import open_clip
    from transformers import CLIPVisionModelWithProjection

    torch.manual_seed(0)
    config = GraftConfig.vit_b16() if patch == 16 else GraftConfig.vit_b32()
    graft = GraftModel._from_config(config, attn_implementation="sdpa")
    state = graft.state_dict()
    vision_state = {k: v for k, v in state.items() if k.startswith(("vision_model.", "visual_projection."))}

    hf = {}
    for attn in ("eager", "sdpa"):
        model = CLIPVisionModelWithProjection._from_config(config.vision_config, attn_implementation=attn)
        result = model.load_state_dict(vision_state, strict=False)
        assert not result.unexpected_keys and all("position_ids" in k for k in result.missing_keys), result
        hf[attn] = model

    oc = open_clip.create_model(f"ViT-B-{patch}-quickgelu", pretrained=None).visual
    oc.load_state_dict(_open_clip_state(vision_state, config.vision_config.num_hidden_layers))

    models: dict[str, torch.nn.Module] = {
        "graft": graft,
        "hf_eager": hf["eager"],
        "hf_sdpa": hf["sdpa"],
        "open_clip": oc,
    }
    for model in models.values():
        model.to(device=device, dtype=dtype).eval()
    return {
        "graft": lambda x: models["graft"].get_image_features(x),
        "hf_eager": lambda x: models["hf_eager"](pixel_values=x).image_embeds,
        "hf_sdpa": lambda x: models["hf_sdpa"](pixel_values=x).image_embeds,
        "open_clip": lambda x: models["open_clip"](x),
    }


def _open_clip_state(hf: dict[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor]:
    """transformers CLIP vision weights in open_clip's VisionTransformer layout."""
    p = "vision_model."
    out = {
        "conv1.weight": hf[p + "embeddings.patch_embedding.weight"],
        "class_embedding": hf[p + "embeddings.class_embedding"],
        "positional_embedding": hf[p + "embeddings.position_embedding.weight"],
        "ln_pre.weight": hf[p + "pre_layrnorm.weight"],
        "ln_pre.bias": hf[p + "pre_layrnorm.bias"],
        "ln_post.weight": hf[p + "post_layernorm.weight"],
        "ln_post.bias": hf[p + "post_layernorm.bias"],
        "proj": hf["visual_projection.weight"].t().contiguous(),
    }
    for i in range(layers):
        src, dst = f"{p}encoder.layers.{i}.", f"transformer.resblocks.{i}."
        attn = src + "self_attn."
        out[dst + "attn.in_proj_weight"] = torch.cat([hf[attn + f"{n}_proj.weight"] for n in "qkv"])
        out[dst + "attn.in_proj_bias"] = torch.cat([hf[attn + f"{n}_proj.bias"] for n in "qkv"])
        out[dst + "attn.out_proj.weight"] = hf[attn + "out_proj.weight"]
        out[dst + "attn.out_proj.bias"] = hf[attn + "out_proj.bias"]
        for ours, theirs in (("layer_norm1", "ln_1"), ("layer_norm2", "ln_2")):
            out[dst + f"{theirs}.weight"] = hf[src + f"{ours}.weight"]
            out[dst + f"{theirs}.bias"] = hf[src + f"{ours}.bias"]
        for ours, theirs in (("fc1", "c_fc"), ("fc2", "c_proj")):
            out[dst + f"mlp.{theirs}.weight"] = hf[src + f"mlp.{ours}.weight"]
            out[dst + f"mlp.{theirs}.bias"] = hf[src + f"mlp.{ours}.bias"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patch", type=int, choices=(16, 32), default=16)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--quick", action="store_true", help="batch 8, 2 rounds")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.rounds = 8, 2
    dtype = getattr(torch, args.dtype)
    fns = build_models(args.patch, args.device, dtype)
    x = torch.randn(args.batch, 3, 224, 224, generator=torch.Generator().manual_seed(1)).to(args.device, dtype)

    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    with torch.inference_mode():
        reference = fns["graft"](x[:4]).float()
        for name, fn in fns.items():  # parity: same weights really give the same embeddings
            diff = (fn(x[:4]).float() - reference).abs().max().item()
            tol = 1e-3 if dtype == torch.float32 else 5e-2 * reference.abs().max().item()
            assert diff <= tol, f"{name} differs from GraftModel by {diff}"
        for fn in fns.values():  # warm-up
            fn(x)
        sync()
        times: dict[str, list[float]] = {name: [] for name in fns}
        names = list(fns)
        for round_index in range(args.rounds):
            # Interleaved, and the order rotates every round, so drift and position effects hit all alike.
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                fn = fns[name]
                sync()
                start = time.perf_counter()
                fn(x)
                sync()
                times[name].append(time.perf_counter() - start)

    print(
        f"ViT-B/{args.patch} image embeddings, batch {args.batch} at 224 px, {args.dtype} on {args.device} "
        f"({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__})"
    )
    throughput = {name: args.batch / statistics.median(ts) for name, ts in times.items()}
    for name, ips in throughput.items():
        print(f"  {name:10s} {ips:8.2f} images/s  (median of {args.rounds})")
    fastest_other = max((v, k) for k, v in throughput.items() if k != "graft")
    for name, ips in throughput.items():
        if name != "graft":
            print(f"  graft / {name:10s} = {throughput['graft'] / ips:.3f}")
    print(f"  ratio vs fastest other ({fastest_other[1]}): {throughput['graft'] / fastest_other[0]:.3f} (goal >= 1.0)")


if __name__ == "__main__":
    main()
