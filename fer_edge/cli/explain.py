"""``fer-edge explain IMAGE|FOLDER --save OUT``: Grad-CAM heatmaps of each face, and the model's top 3.

Faces are detected and aligned exactly as the Recognizer does (YuNet, the model's template and
size), then the PyTorch model explains its answer. Per image it writes, atomically, in OUT:
``<name>_face<i>_crop.png`` (the aligned crop), ``<name>_face<i>_cam.png`` (the heatmap over it),
``<name>_grid.png`` (every face: crop, heatmap, top-3) and ``<name>.json`` (boxes, top-3, files).
Needs torch (``pip install 'fer_edge[train]'``); imported only when this command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fer_edge.errors import ImageReadError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="an image or a folder of images")
    parser.add_argument("--model", default="simam_resnet",
                        help="zoo id (its shipped weights; default %(default)s, the default package's model) "
                             "or a fer_edge checkpoint .pt")
    parser.add_argument("--layer", default=None, help="target layer, a dotted module name (default: the registry's)")
    parser.add_argument("--method", default="gradcam", choices=["gradcam", "gradcam++"])
    parser.add_argument("--save", type=Path, required=True, help="output folder")
    parser.add_argument("--min-face", type=int, default=20, help="ignore faces smaller than this (pixels)")
    parser.add_argument("--max-faces", type=int, default=16)


def _images(source: Path) -> list[Path]:
    from fer_edge.recognizer.sources import IMAGE_SUFFIXES

    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ImageReadError(f"{source} contains no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return files
    if not source.exists():
        raise ImageReadError(f"{source} does not exist (give an image or a folder of images)")
    return [source]


def run(args: argparse.Namespace) -> int:
    from fer_edge.explain import explain, load_model
    from fer_edge.explain.api import default_layer
    from fer_edge.explain.render import grid, overlay, tile, write_png
    from fer_edge.fileio import write_json_atomic
    from fer_edge.recognizer.sources import read_image
    from fer_edge.vision.align import crop_face
    from fer_edge.vision.detector import YuNetDetector

    files = _images(args.source)
    model, spec = load_model(args.model)
    layer = args.layer or default_layer(model)
    detector = YuNetDetector(min_face=args.min_face, max_faces=args.max_faces)
    for file in files:
        image = read_image(file)
        faces = [f for f in detector.detect(image) if min(f.box[2], f.box[3]) >= args.min_face][: args.max_faces]
        if not faces:
            print(f"{file}: no face")
            continue
        crops = [crop_face(image, f.box, f.landmarks, spec.size, spec.alignment) for f in faces]
        items = explain(model, crops, layer=layer, method=args.method, spec=spec)
        record: dict[str, Any] = {"source": str(file), "model": str(args.model), "layer": layer,
                                  "method": args.method, "faces": []}
        for i, (face, crop, item) in enumerate(zip(faces, crops, items)):
            names = {"crop": f"{file.stem}_face{i}_crop.png", "cam": f"{file.stem}_face{i}_cam.png"}
            write_png(args.save / names["crop"], crop)
            write_png(args.save / names["cam"], overlay(crop, item.heatmap))
            record["faces"].append({"box": [round(float(v), 1) for v in face.box], "target": item.target,
                                    "top3": [[name, round(p, 4)] for name, p in item.top], "files": names})
        write_png(args.save / f"{file.stem}_grid.png", grid([tile(c, it) for c, it in zip(crops, items)]))
        write_json_atomic(args.save / f"{file.stem}.json", record)
        print(f"{file}: " + ", ".join(f"{it.top[0][0]} ({it.top[0][1]:.2f})" for it in items))
    print(f"wrote {args.save}/")
    return 0
