"""``graft eval-seg --model DIR --data SATLAS_ROOT -o OUTDIR``: zero-shot land-cover segmentation (GRAFT Table 3).

Reads SatlasPretrain in its own layout (``metadata/test_highres.json`` or ``test_lowres.json``,
``static/<col>_<row>/land_cover.png``, ``naip/`` or ``sentinel2/`` image folders), evaluates the land-cover classes
present in the test labels, and scores every image on its label's own grid: NAIP labels are 1/16 of the image, so
the per-pixel scores are averaged over each label cell first. ``--baseline clipseg`` scores a CLIPSeg directory
(e.g. a local copy of CIDAS/clipseg-rd64-refined) through the same protocol. Writes results.json (per-class
accuracy and IoU, mIoU, pixel accuracy, labelled cells per class) and results.md to OUTDIR.
"""

from __future__ import annotations

import argparse

from graft_hf_cli._errors import speaks_flags
from graft_hf_cli._fields import add_fields, fields_from_args

__all__ = ["add_parser", "run"]

_CONFIG = ("graft_hf.evaluation.segmentation_job", "SegEvalConfig")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "eval-seg",
        help="zero-shot land-cover segmentation on SatlasPretrain (NAIP or Sentinel-2), GRAFT or CLIPSeg",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_fields(
        parser,
        *_CONFIG,
        flags={"output_dir": ("-o", "--output")},
        helps={"progress": "no progress bars"},
        required=("model", "data", "output_dir"),
        metavars={"output_dir": "OUTPUT"},
    )
    parser.set_defaults(handler=run)
    return parser


@speaks_flags
def run(args: argparse.Namespace) -> int:
    from graft_hf.evaluation.segmentation_job import SegEvalConfig, run_segmentation_eval

    report, paths = run_segmentation_eval(SegEvalConfig(**fields_from_args(args, *_CONFIG)))
    metrics, data = report.metrics, report.dataset
    print(
        f"{report.model_name} on SatlasPretrain {data.variant.name} ({data.split}, {len(data)} images, "
        f"{len(data.class_names)} classes): mean per-class accuracy {100 * metrics.mean_accuracy:.2f}%, "
        f"mIoU {100 * metrics.miou:.2f}%, pixel accuracy {100 * metrics.pixel_accuracy:.2f}%"
    )
    print(f"report written to {paths['json'].parent}")
    return 0
