"""Dataset readers: the label files people actually have -> :class:`Records` in the SDK's class order.

Each reader states its source's label order and maps it onto ``EXPRESSIONS_7/8`` explicitly, so a
model never learns "sad" under the index another dataset uses for "surprise". Readers only parse
labels and locate images; decoding (and its cache) lives in :mod:`fer_edge.training.images`.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from fer_edge.constants import classes_for
from fer_edge.errors import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")

# Source label order -> SDK class name (None: not an expression; such rows are dropped).
FERPLUS_COLUMNS = ("neutral", "happy", "surprise", "sad", "anger", "disgust", "fear", "contempt", None, None)
RAFDB_LABELS = {1: "surprise", 2: "fear", 3: "disgust", 4: "happy", 5: "sad", 6: "anger", 7: "neutral"}
FER2013_LABELS = {0: "anger", 1: "disgust", 2: "fear", 3: "happy", 4: "sad", 5: "surprise", 6: "neutral"}
AFFECTNET_LABELS = {0: "neutral", 1: "happy", 2: "sad", 3: "surprise", 4: "fear", 5: "disgust", 6: "anger",
                    7: "contempt"}  # 8 none, 9 uncertain, 10 no-face: not expressions
FOLDER_SYNONYMS = {"happiness": "happy", "sadness": "sad", "angry": "anger", "surprised": "surprise",
                   "fearful": "fear", "disgusted": "disgust", "neutrality": "neutral"}
FERPLUS_SPLITS = {"train": "FER2013Train", "val": "FER2013Valid", "test": "FER2013Test"}
FER2013_USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}


@dataclass
class Records:
    """Labelled images of one split, before decoding.

    ``items`` are image paths, or already-decoded uint8 images for sources that store pixels
    inline (FER2013 csv). ``labels`` index ``classes`` (-1 where the source has no expression,
    e.g. CelebA); ``soft`` holds per-image vote distributions when the source has them (FER+);
    ``boxes`` optional (x, y, w, h) face boxes to crop; ``dropped`` counts rows the protocol
    excluded, by reason.
    """

    source: Path
    format: str
    classes: tuple[str, ...]
    items: list[Path] | list[np.ndarray]
    labels: np.ndarray
    soft: np.ndarray | None = None
    attributes: np.ndarray | None = None
    attribute_names: tuple[str, ...] = ()
    boxes: np.ndarray | None = None
    dropped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)

    def subset(self, index: np.ndarray) -> Records:
        """The records at ``index`` (int indices or a boolean mask), other fields unchanged."""
        idx = np.flatnonzero(index) if index.dtype == bool else np.asarray(index, dtype=np.int64)
        pick = (lambda a: None if a is None else a[idx])
        return replace(self, items=[self.items[i] for i in idx], labels=self.labels[idx], soft=pick(self.soft),
                       attributes=pick(self.attributes), boxes=pick(self.boxes), dropped=dict(self.dropped))


def _index(classes: tuple[str, ...], mapping: dict[int, str]) -> dict[int, int]:
    """Source label -> SDK index, for the labels the model's class set contains."""
    return {src: classes.index(name) for src, name in mapping.items() if name in classes}


def _build(source: Path, fmt: str, classes: tuple[str, ...], items: list, labels: list[int],
           dropped: Counter, **extra: object) -> Records:
    if not items:
        raise DatasetError(f"{source}: no usable labelled image in this {fmt} dataset "
                           f"(dropped: {dict(dropped) or 'none'})")
    return Records(source, fmt, classes, items, np.asarray(labels, dtype=np.int64), dropped=dict(dropped),
                   **extra)  # type: ignore[arg-type]


def read_ferplus(split_dir: Path, num_classes: int = 8, protocol: str = "majority") -> Records:
    """FER+ ``label.csv`` (no header): file, box, then 10 vote counts in :data:`FERPLUS_COLUMNS` order.

    ``protocol="majority"`` is the evaluation protocol: label = top vote; dropped when the top vote
    is unknown/NF, lacks a strict majority (top > half of all 10 votes) or is contempt for a
    7-class model. ``protocol="votes"`` is for training on the vote distribution: every image
    whose top vote is an expression in the class set, soft label = its normalised votes.

    ``protocol="authors"`` is the FER+ authors' ``majority`` mode (microsoft/FERPlus), the number
    papers report: single votes are dropped, the label is the option with > 50 % of the remaining
    votes, images whose label is unknown/NF (or without such a majority) are dropped. It always
    labels over the 8 emotions (format ``ferplus_authors``), so a 7-class model is wrong on every
    contempt face.
    """
    if protocol not in ("majority", "votes", "authors"):
        raise DatasetError(f"FER+ protocol must be 'majority', 'votes' or 'authors', got {protocol!r}")
    if protocol == "authors":
        num_classes = 8
    classes = classes_for(num_classes)
    label_file = split_dir / "label.csv"
    column_to_class = np.zeros((10, num_classes), dtype=np.float32)
    for col, name in enumerate(FERPLUS_COLUMNS):
        if name in classes:
            column_to_class[col, classes.index(name)] = 1.0
    items, labels, softs, dropped = [], [], [], Counter[str]()
    with open(label_file, newline="") as handle:
        for row_no, row in enumerate(csv.reader(handle)):
            try:
                votes = np.asarray([int(v) for v in row[2:12]], dtype=np.float32)
                if len(votes) != 10:
                    raise ValueError
            except (ValueError, IndexError):
                if row_no == 0:
                    continue  # a header line
                raise DatasetError(f"{label_file}:{row_no + 1}: expected file, box and 10 vote counts, got {row}")
            if protocol == "authors":
                votes = np.where(votes > 1, votes, 0)  # the authors' outlier removal: single votes
            top = int(votes.argmax())
            class_votes = votes @ column_to_class
            if protocol == "authors" and votes[top] * 2 <= votes.sum():
                dropped["no_majority"] += 1
            elif FERPLUS_COLUMNS[top] is None:
                dropped["unknown_or_not_face"] += 1
            elif FERPLUS_COLUMNS[top] not in classes:
                dropped["contempt"] += 1
            elif protocol == "majority" and votes[top] * 2 <= votes.sum():
                dropped["no_strict_majority"] += 1
            else:
                items.append(split_dir / row[0])
                labels.append(classes.index(FERPLUS_COLUMNS[top]))  # type: ignore[arg-type]
                softs.append(class_votes / class_votes.sum())
    soft = np.stack(softs).astype(np.float32) if softs else None
    fmt = "ferplus_authors" if protocol == "authors" else "ferplus"
    return _build(split_dir, fmt, classes, items, labels, dropped, soft=soft)


def read_rafdb(root: Path, split: str = "train", num_classes: int = 7) -> Records:
    """RAF-DB basic: ``list_patition_label.txt`` (``train_00001.jpg 5``, labels 1-7 in
    :data:`RAFDB_LABELS` order) and ``aligned/`` (``train_00001_aligned.jpg``)."""
    label_file = _first_existing(root, ["list_patition_label.txt", "EmoLabel/list_patition_label.txt"])
    aligned = _first_existing(root, ["aligned", "Image/aligned"])
    mapping = _index(classes_for(num_classes), RAFDB_LABELS)
    prefix = "train_" if split == "train" else "test_"
    items, labels, dropped = [], [], Counter[str]()
    for line_no, line in enumerate(label_file.read_text().splitlines()):
        parts = line.split()
        if not parts or not parts[0].startswith(prefix):
            continue
        if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) not in mapping:
            raise DatasetError(f"{label_file}:{line_no + 1}: expected 'NAME LABEL' with LABEL in 1..7, got {line!r}")
        stem, ext = os.path.splitext(parts[0])
        path = aligned / f"{stem}_aligned{ext}"
        items.append(path if path.exists() or not (aligned / parts[0]).exists() else aligned / parts[0])
        labels.append(mapping[int(parts[1])])
    return _build(root, "rafdb", classes_for(num_classes), items, labels, dropped)


def read_fer2013_csv(csv_path: Path, split: str = "train", num_classes: int = 7) -> Records:
    """FER2013 ``emotion,pixels,Usage`` csv (labels 0-6 in :data:`FER2013_LABELS` order, 48x48 pixels
    inline). Rows whose pixels are not 48*48 integers are skipped and counted as corrupt."""
    mapping = _index(classes_for(num_classes), FER2013_LABELS)
    usage = FER2013_USAGE.get(split, split)
    items, labels, dropped = [], [], Counter[str]()
    with open(csv_path, newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("Usage", usage) != usage:
                continue
            try:
                pixels = np.asarray(row["pixels"].split(), dtype=np.uint8)
                label = mapping[int(row["emotion"])]
            except (ValueError, KeyError, AttributeError, OverflowError):
                dropped["corrupt"] += 1
                continue
            if pixels.size != 48 * 48:
                dropped["corrupt"] += 1
                continue
            items.append(pixels.reshape(48, 48))
            labels.append(label)
    return _build(csv_path, "fer2013", classes_for(num_classes), items, labels, dropped)


def read_affectnet_csv(csv_path: Path, image_root: Path | None = None, num_classes: int = 8) -> Records:
    """AffectNet csv (``subDirectory_filePath, face_x, face_y, face_width, face_height, ...,
    expression``; expression 0-7 in :data:`AFFECTNET_LABELS` order, 8-10 not expressions).
    Images are found under ``image_root`` (default: the csv's folder) and cropped to the face box."""
    mapping = _index(classes_for(num_classes), AFFECTNET_LABELS)
    image_root = image_root or csv_path.parent
    items, labels, boxes, dropped = [], [], [], Counter[str]()
    with open(csv_path, newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                expression = int(row["expression"])
                box = [int(float(row.get(k) or 0)) for k in ("face_x", "face_y", "face_width", "face_height")]
            except (ValueError, KeyError) as exc:
                raise DatasetError(f"{csv_path}: malformed AffectNet row {row}: {exc}") from exc
            if expression not in mapping:
                dropped["not_in_class_set"] += 1
                continue
            items.append(image_root / row["subDirectory_filePath"])
            labels.append(mapping[expression])
            boxes.append(box)
    return _build(csv_path, "affectnet", classes_for(num_classes), items, labels, dropped,
                  boxes=np.asarray(boxes, dtype=np.int64).reshape(-1, 4))


def read_class_folders(root: Path, num_classes: int = 7) -> Records:
    """``root/<class>/*.png``: folder names are SDK class names or common synonyms (``happiness``,
    ``angry``, ...); a folder naming no known class is an error rather than silently ignored."""
    classes = classes_for(num_classes)
    items, labels, dropped = [], [], Counter[str]()
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        name = FOLDER_SYNONYMS.get(folder.name.lower(), folder.name.lower())
        if name == "contempt" and "contempt" not in classes:
            dropped["contempt"] += sum(1 for _ in folder.iterdir())
            continue
        if name not in classes:
            raise DatasetError(f"{folder}: folder name is not an expression class (expected one of {classes})")
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                items.append(path)
                labels.append(classes.index(name))
    return _build(root, "folders", classes, items, labels, dropped)


def read_celeba(root: Path, split: str = "train") -> Records:
    """CelebA ``list_attr_celeba.txt`` (count line, 40 attribute names, then ``000001.jpg -1 1 ...``)
    and ``img_align_celeba/``; ``list_eval_partition.txt`` (0 train, 1 val, 2 test) when present.
    Attributes become {0, 1}; there is no expression label (labels are -1)."""
    attr_file = _first_existing(root, ["list_attr_celeba.txt", "Anno/list_attr_celeba.txt"])
    image_dir = _first_existing(root, ["img_align_celeba", "Img/img_align_celeba"])
    lines = attr_file.read_text().splitlines()
    if len(lines) < 3:
        raise DatasetError(f"{attr_file}: expected a count line, an attribute-name line and rows")
    names = tuple(lines[1].split())
    partition: dict[str, int] = {}
    part_file = root / "list_eval_partition.txt"
    if part_file.is_file():
        partition = {p[0]: int(p[1]) for p in (ln.split() for ln in part_file.read_text().splitlines()) if len(p) == 2}
    want = {"train": 0, "val": 1, "test": 2}.get(split, 0)
    items, attrs = [], []
    for line_no, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1:
            raise DatasetError(f"{attr_file}:{line_no}: expected a file name and {len(names)} values, got {line!r}")
        if partition and partition.get(parts[0], 0) != want:
            continue
        items.append(image_dir / parts[0])
        attrs.append([v == "1" for v in parts[1:]])
    attributes = np.asarray(attrs, dtype=np.float32).reshape(-1, len(names))
    return _build(root, "celeba", classes_for(7), items, [-1] * len(items), Counter(), attributes=attributes,
                  attribute_names=names)


def _first_existing(root: Path, candidates: list[str]) -> Path:
    for name in candidates:
        if (root / name).exists():
            return root / name
    raise DatasetError(f"{root}: none of {candidates} exists")


def read_dataset(path: str | os.PathLike[str], split: str = "train", num_classes: int = 7,
                 protocol: str | None = None) -> Records:
    """Detect the layout at ``path`` and read ``split`` (``train``/``val``/``test``).

    ``path`` may be a FER+ root (``FER2013Train/`` ...), one FER+ split folder, a RAF-DB root, a
    FER2013 or AffectNet csv, a CelebA root or a class-per-folder root. FER+ uses the evaluation
    protocol (strict majority) unless ``protocol="votes"``.
    """
    root = Path(path)
    if not root.exists():
        raise DatasetError(f"dataset path {root} does not exist")
    if root.is_file() and root.suffix.lower() == ".csv":
        with open(root, newline="") as handle:
            header = [h.strip() for h in next(csv.reader(handle), [])]
        if "pixels" in header and "emotion" in header:
            return read_fer2013_csv(root, split, num_classes)
        if "subDirectory_filePath" in header and "expression" in header:
            return read_affectnet_csv(root, num_classes=num_classes)
        raise DatasetError(f"{root}: csv header {header} is neither FER2013 (emotion,pixels,Usage) nor AffectNet")
    if root.is_file():
        raise DatasetError(f"{root} is a file but not a csv; pass a dataset folder or csv")
    ferplus_protocol = protocol or "majority"
    if (root / FERPLUS_SPLITS.get(split, split) / "label.csv").is_file():
        return read_ferplus(root / FERPLUS_SPLITS.get(split, split), num_classes, ferplus_protocol)
    if (root / "label.csv").is_file():
        return read_ferplus(root, num_classes, ferplus_protocol)
    if any((root / p).is_file() for p in ("list_patition_label.txt", "EmoLabel/list_patition_label.txt")):
        return read_rafdb(root, split, num_classes)
    if any((root / p).is_file() for p in ("list_attr_celeba.txt", "Anno/list_attr_celeba.txt")):
        return read_celeba(root, split)
    if (root / split).is_dir():
        return read_dataset(root / split, split, num_classes, protocol)
    if any(p.is_dir() for p in root.iterdir()):
        return read_class_folders(root, num_classes)
    raise DatasetError(f"{root}: not a known dataset layout (FER+, RAF-DB, FER2013/AffectNet csv, CelebA, "
                       "or one folder per class)")
