"""A small RSVQA split in the dataset's exact layout, with real NAIP crops as the images.

RSVQA-HR ships `USGS_split_{split}_{questions,answers,images}.json`; each list covers every id of the dataset, with
`{"id": N, "active": false}` placeholders for entries of other splits. The fixture writes a `test` split and a `val`
split sharing one id space, so inactive entries and other splits' questions are exercised.
"""

from __future__ import annotations

import json
from pathlib import Path

# (question id, image id, type, question, answer, split)
ROWS = [
    (0, 0, "presence", "Is there a road?", "yes", "val"),
    (1, 1, "presence", "Is there a building?", "no", "test"),
    (2, 1, "count", "How many buildings are there?", "0", "test"),
    (3, 1, "area", "What is the area covered by water?", "0m2", "test"),
    (4, 1, "comp", "Are there more roads than buildings?", "no", "test"),
    (5, 2, "presence", "Is there a residential building?", "yes", "test"),
    (6, 2, "count", "How many residential buildings are there?", "3", "test"),
    (7, 2, "area", "What is the area covered by residential buildings?", "1530m2", "test"),
    (8, 2, "comp", "Is the number of roads equal to the number of water areas?", "yes", "test"),
    (9, 2, "presence", "What is the color of the roofs?", "red", "test"),
    (10, 3, "count", "How many parkings are there?", "12", "test"),
]


def write_rsvqa(root: Path, inactive_question: int | None = None) -> Path:
    """Writes the split files under `root` (images are not written: see `write_naip_images`)."""
    root.mkdir(parents=True, exist_ok=True)
    images, questions, answers = [], [], []
    image_ids = sorted({row[1] for row in ROWS})
    for split in ("test", "val"):
        split_rows = [row for row in ROWS if row[5] == split]
        active_images = {row[1] for row in split_rows}
        images = [
            {"id": i, "active": True, "original_name": f"tile_{i}.tif", "people_id": 0,
             "questions_ids": [row[0] for row in split_rows if row[1] == i]}
            if i in active_images else {"id": i, "active": False}
            for i in image_ids
        ]  # fmt: skip
        questions, answers = [], []
        for qid, img, qtype, text, answer, row_split in ROWS:
            active = row_split == split and qid != inactive_question
            if not active:
                questions.append({"id": qid, "active": False})
                answers.append({"id": qid, "active": False})
                continue
            questions.append({"id": qid, "date_added": 1.5e9, "img_id": img, "people_id": 0, "type": qtype,
                              "question": text, "answers_ids": [qid], "active": True})  # fmt: skip
            answers.append({"id": qid, "date_added": 1.5e9, "question_id": qid, "people_id": 0, "answer": answer,
                            "active": True})  # fmt: skip
        for kind, entries in (("images", images), ("questions", questions), ("answers", answers)):
            (root / f"USGS_split_{split}_{kind}.json").write_text(json.dumps({kind: entries}))
    return root


def write_naip_images(folder: Path, source: Path, image_ids: list[int], size: int = 48) -> Path:
    """`{id}.tif` crops of a real NAIP GeoTIFF (4 bands, its CRS and transform), one per image id."""
    import rasterio
    from rasterio.windows import Window

    folder.mkdir(parents=True, exist_ok=True)
    with rasterio.open(source) as src:
        for k, image_id in enumerate(image_ids):
            window = Window(200 + 60 * k, 300, size, size)
            profile = {**src.profile, "width": size, "height": size, "transform": src.window_transform(window)}
            with rasterio.open(folder / f"{image_id}.tif", "w", **profile) as dst:
                dst.write(src.read(window=window))
    return folder
