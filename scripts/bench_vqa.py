"""Question answering in questions per second through planner + interpreter, and the interpreter's own overhead
against the image-API calls its programs make, on real NAIP crops with a tiny GRAFT model.

Crops: 128 x 128 px windows of the NAIP GeoTIFFs in ../shared/data/naip-nd (5 m/px, RGB of RGBN). Model:
`graft_hf.testing.tiny_graft_model` (random weights, 32 px input, patch 8). Questions: RSVQA-style presence, count,
area and comparison questions, two about image halves and two relating objects ("next to", "on the left of").

Two planners write the programs: `rule` (RuleBasedPlanner) and `canned` (an LLMPlanner whose language model is a
table of stored completions: each is the rule planner's program inside a Markdown fence with a line of prose, the
form a chat endpoint answers, parsed and checked like any completion). Two regimes run them: `cold` (a new scene per
question, so the first `find` of each concept runs the detector) and `warm` (every question of an image on one
scene, detections cached, so API calls are mask operations). Image encoding (one patch-embedding forward per crop)
is timed separately. Variants run in interleaved rounds; compare the ratios within one run.

For each variant: questions/s (planning + running the program), planning ms per question, program ms per question
split into API ms (time inside ImagePatch / distance calls) and interpreter ms (the rest: walking the tree, names,
arithmetic, limit checks), and interpreter / API, the overhead ratio.

    python scripts/bench_vqa.py             # 12 crops, 12 questions, 3 rounds
    python scripts/bench_vqa.py --quick     # 3 crops, 1 round
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from graft_hf.tasks.detection import DetectionConfig, ObjectDetector
from graft_hf.tasks.vqa import RuleBasedPlanner, VisualQuestionAnswerer
from graft_hf.tasks.vqa_llm import LLMPlanner
from graft_hf.testing import tiny_graft_model
from graft_hf.tokenizer import load_clip_tokenizer

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "naip-nd"
QUESTIONS = (
    "Is there a road?",
    "Is there a residential building?",
    "How many buildings are there?",
    "How many parking lots are there?",
    "What is the area covered by water?",
    "What is the area covered by farmland?",
    "Are there more buildings than roads?",
    "Is the number of roads equal to the number of water areas?",
    "Is there a building at the top of the image?",
    "How many trees are on the left half of the image?",
    "Is there a building next to a road?",
    "How many houses are on the left of a river?",
)


def _crops(count: int, size: int = 128) -> list[tuple[np.ndarray, float]]:
    """`(RGB uint8 (size, size, 3), metres per pixel)` windows spread over the NAIP rasters."""
    rasters = sorted(DATA.glob("*.tif"))
    if not rasters:
        raise SystemExit(f"no NAIP GeoTIFFs in {DATA} (the real data of ../shared/data/naip-nd)")
    crops = []
    for k in range(count):
        with rasterio.open(rasters[k % len(rasters)]) as src:
            step = (min(src.width, src.height) - size) // max(1, count // len(rasters) + 1)
            offset = 64 + step * (k // len(rasters))
            rgb = src.read([1, 2, 3], window=Window(offset, offset, size, size))
            crops.append((np.ascontiguousarray(rgb.transpose(1, 2, 0)), abs(src.transform.a)))
    return crops


def _canned_planner(questions: tuple[str, ...]) -> LLMPlanner:
    """An LLM planner whose 'model' answers each question with a stored completion (a fenced program)."""
    rules = RuleBasedPlanner()
    table = {q: f"Here is the program.\n```python\n{rules.plan(q)}```" for q in questions}
    return LLMPlanner(lambda messages: table[messages[-1]["content"]])


def _run(answerer: VisualQuestionAnswerer, crops, regime: str, totals: dict[str, float]) -> None:
    """Answers every question on every crop, adding seconds to `totals` (plan, program, api)."""
    for rgb, gsd in crops:
        prepared = answerer.detector.prepare(rgb)  # timed separately: the same for every variant
        scene = answerer.scene(prepared, gsd)
        for question in QUESTIONS:
            began = time.perf_counter()
            program = answerer.plan(question)
            totals["plan"] += time.perf_counter() - began
            if regime == "cold":
                scene = answerer.scene(prepared, gsd)
            answer = answerer.run(scene, question, program)
            if not answer.answerable:
                raise RuntimeError(f"{question!r} was not answered: {answer.reason}")
            totals["program"] += answer.stats.seconds
            totals["api"] += answer.stats.api_seconds
            totals["steps"] += answer.stats.steps
            totals["calls"] += answer.stats.api_calls


def _encode_seconds(detector: ObjectDetector, crops) -> float:
    began = time.perf_counter()
    for rgb, _ in crops:
        detector.prepare(rgb)
    return (time.perf_counter() - began) / len(crops)


def _report(results: dict[str, list[dict[str, float]]], questions: int, encode_s: list[float], facts: dict) -> None:
    print(
        f"\n{facts['crops']} NAIP crops of 128 px at 5 m/px x {len(QUESTIONS)} questions = {questions} per variant; "
        f"tiny GRAFT (32 px input), torch {torch.__version__}, {facts['threads']} thread(s), {platform.machine()}, "
        f"median of {facts['rounds']} round(s)"
    )
    print(
        f"image encoding (one forward per crop, not in the figures below): {1e3 * statistics.median(encode_s):.1f} ms"
    )
    header = f"{'variant':12s} {'q/s':>7s} {'plan ms':>8s} {'program ms':>11s} {'API ms':>8s} {'interp ms':>10s}"
    print(header + f" {'interp/API':>11s} {'steps/q':>8s} {'calls/q':>8s}")
    for name, rounds in results.items():
        med = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        interp = med["program"] - med["api"]
        per_q = 1e3 / questions
        print(
            f"{name:12s} {questions / (med['plan'] + med['program']):7.1f} {med['plan'] * per_q:8.3f} "
            f"{med['program'] * per_q:11.3f} {med['api'] * per_q:8.3f} {interp * per_q:10.3f} "
            f"{interp / med['api']:10.3f}x {med['steps'] / questions:8.1f} {med['calls'] / questions:8.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 crops, 1 round")
    parser.add_argument("--crops", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    crops_n, rounds = (3, 1) if args.quick else (args.crops, args.rounds)
    torch.set_num_threads(args.threads)
    crops = _crops(crops_n)
    detector = ObjectDetector(tiny_graft_model(seed=0), load_clip_tokenizer())
    config = DetectionConfig(templates=None, threshold=0.05)
    planners = {"rule": RuleBasedPlanner(), "canned": _canned_planner(QUESTIONS)}
    answerers = {name: VisualQuestionAnswerer(detector, planner, config) for name, planner in planners.items()}
    variants = [(f"{p} {r}", answerers[p], r) for r in ("cold", "warm") for p in planners]
    _run(answerers["rule"], crops[:1], "cold", defaultdict(float))  # warm-up: tokenizer, kernels
    results: dict[str, list[dict[str, float]]] = defaultdict(list)
    encode_s = []
    for round_index in range(rounds):
        order = variants[round_index % len(variants) :] + variants[: round_index % len(variants)]
        for name, answerer, regime in order:
            totals: dict[str, float] = defaultdict(float)
            _run(answerer, crops, regime, totals)
            results[name].append(dict(totals))
        encode_s.append(_encode_seconds(detector, crops))
    ordered = {name: results[name] for name, _, _ in variants}
    _report(ordered, len(crops) * len(QUESTIONS), encode_s, {"crops": len(crops), "rounds": rounds,
                                                            "threads": args.threads})  # fmt: skip


if __name__ == "__main__":
    main()
