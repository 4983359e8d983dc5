"""Evaluation behind ``fer-edge eval``: the same numbers for a checkpoint, an ONNX/INT8 package or an engine.

Every model form runs through the runtime's engines (:func:`fer_edge.engines.resolve.load_engine`:
``.pt`` on PyTorch, packages on ONNX Runtime or TensorRT) and every face through the one
preprocess function, so FP32 vs INT8 vs engine accuracy is compared on equal terms. Labels follow
each dataset's protocol (FER+: strict majority, or the FER+ authors' ``majority`` mode). ``occlusion`` repeats the run with a random
noise patch over the eyes or the mouth of each aligned crop (in the spirit of O-RAF-DB).
Probabilities are the package's calibrated ones (``softmax(logits / sidecar.temperature)``), and
their expected calibration error is reported; ``split="holdout"`` evaluates the slice of the
training split that ``fer-edge train --holdout`` kept out, where a temperature may be fitted.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fer_edge.errors import DatasetError
from fer_edge.fileio import atomic_path, write_json_atomic
from fer_edge.recognizer.recognizer import class_columns, prior_offset, softmax
from fer_edge.training.datasets import holdout_indices
from fer_edge.training.images import decode_records
from fer_edge.training.metrics import classification_report
from fer_edge.training.readers import read_dataset
from fer_edge.training.temperature import calibration_gap, fit_temperature
from fer_edge.vision.preprocess import preprocess

# occluded regions of an aligned crop, as (top, bottom, left, right) fractions (FER2013-style framing)
OCCLUSION_REGIONS = {"eyes": (0.22, 0.48, 0.12, 0.88), "mouth": (0.62, 0.88, 0.22, 0.78)}


def occlude(image: np.ndarray, region: str, rng: np.random.Generator, coverage: float = 0.6) -> np.ndarray:
    """A copy of ``image`` with a uniform-noise patch covering ``coverage`` of each side of
    ``region`` (:data:`OCCLUSION_REGIONS`), placed at a random position inside it."""
    top, bottom, left, right = OCCLUSION_REGIONS[region]
    h, w = image.shape[:2]
    rh, rw = max(1, round((bottom - top) * h)), max(1, round((right - left) * w))
    ph, pw = max(1, round(rh * coverage)), max(1, round(rw * coverage))
    y0 = round(top * h) + int(rng.integers(0, rh - ph + 1))
    x0 = round(left * w) + int(rng.integers(0, rw - pw + 1))
    out = image.copy()
    out[y0:y0 + ph, x0:x0 + pw] = rng.integers(0, 256, size=out[y0:y0 + ph, x0:x0 + pw].shape, dtype=np.uint8)
    return out


def batched_logits(engine: Any, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """``engine``'s logits for decoded ``images``, preprocessed to its input spec, in batches."""
    return np.concatenate([engine.infer(preprocess(list(images[i:i + batch_size]), engine.input_spec))
                           for i in range(0, len(images), batch_size)])


def _read(data: str | os.PathLike[str], split: str | None, num_classes: int, protocol: str, seed: int,
          holdout: float) -> tuple[Any, str]:
    """The records of ``split`` (default: test, else val); for ``"holdout"``, the whole training split
    as training reads it (labels = top vote): the slice is cut after decoding, as training cuts it."""
    if split == "holdout":
        if not 0.0 < holdout < 1.0:
            raise DatasetError(f"the holdout fraction must be in (0, 1), got {holdout}")
        return read_dataset(data, "train", num_classes, protocol="votes"), "holdout"
    for name in ([split] if split else ["test", "val"]):
        try:
            return read_dataset(data, name, num_classes, protocol=protocol), name
        except DatasetError:
            if split or name == "val":
                raise
    raise AssertionError("unreachable: the val split either reads or raises")


def evaluate(model: str | os.PathLike[str], data: str | os.PathLike[str], split: str | None = None,
             occlusion: bool = False, backend: str = "auto", precision: str = "auto", seed: int = 0,
             limit: int | None = None, protocol: str = "majority",
             agree_with: str | os.PathLike[str] | None = None, holdout: float = 0.1,
             fit: bool = False, prior_correction: float = 0.0, flip: bool = False,
             classes: Sequence[str] | int | None = None) -> dict[str, Any]:
    """Metrics of ``model`` (id, checkpoint or package) on ``data``'s ``split`` (default: test, else val).

    ``protocol``: FER+ labels by our strict majority (``majority``, over the model's classes) or by
    the FER+ authors' ``majority`` mode (``authors``: 8 emotions; a 7-class model's predictions are
    scored by class name, so contempt faces count against it, as in the papers' numbers).
    ``agree_with``: another form of the model (e.g. the FP32 package of an INT8 one); the report's
    ``agreement`` is the fraction of faces on which both give the same label. ``holdout``/``seed``:
    the fraction and seed ``fer-edge train --holdout`` used, for ``split="holdout"``. ``fit``: also
    fit a temperature on these faces (``temperature_fit``; only on faces not reported elsewhere).
    ``prior_correction``, ``flip``: score as ``Recognizer(prior_correction=..., flip=...)`` answers
    (logit adjustment; the mean of each face's and its mirror image's probabilities); ``classes``
    as ``Recognizer(classes=...)`` answers (e.g. ``7``: an 8-class model scored on the 7 basic
    expressions, contempt faces left out as for a 7-class model).
    """
    from fer_edge.engines.resolve import load_engine

    engine, choice = load_engine(model, backend=backend, precision=precision)
    columns = class_columns(engine.classes, classes)
    model_classes = tuple(engine.classes[i] for i in columns)
    records, split = _read(data, split, len(model_classes), protocol, seed, holdout)
    if limit is not None:
        records = records.subset(np.arange(min(limit, len(records))))
    spec = engine.input_spec
    records, images = decode_records(records, gray=spec.color == "gray", size=spec.size)
    if split == "holdout":
        held_out = holdout_indices(len(records), seed, holdout)[0]
        records, images = records.subset(held_out), images[held_out]
    if (records.labels < 0).all():
        raise DatasetError(f"{records.source} has no expression labels (a {records.format} dataset)")
    label_classes = tuple(records.classes)
    to_label_index = np.asarray([label_classes.index(c) for c in model_classes])  # model class -> label class
    temperature = engine.package.sidecar.temperature

    def scored_logits(scorer: Any, faces: np.ndarray) -> np.ndarray:
        return batched_logits(scorer, faces)[:, columns]

    def probabilities(scorer: Any, faces: np.ndarray, logits: np.ndarray | None = None) -> np.ndarray:
        side = scorer.package.sidecar
        offset = prior_offset(side, prior_correction)
        offset = None if offset is None else offset[columns]
        probs = softmax(scored_logits(scorer, faces) if logits is None else logits, side.temperature, offset)
        if flip:  # axis 2 is the width of (N, H, W) and (N, H, W, C) faces alike
            probs = 0.5 * (probs + softmax(scored_logits(scorer, np.ascontiguousarray(faces[:, :, ::-1])),
                                           side.temperature, offset))
        return probs

    def predictions(faces: np.ndarray) -> np.ndarray:
        return to_label_index[probabilities(engine, faces).argmax(axis=1)]

    logits = scored_logits(engine, images)
    scored = probabilities(engine, images, logits)
    predicted = to_label_index[scored.argmax(axis=1)]
    report = classification_report(records.labels, predicted, label_classes)
    confidence = scored.max(axis=1)
    report["temperature"] = temperature
    report["prior_correction"] = prior_correction
    report["flip"] = flip
    report["classes_scored"] = None if len(columns) == len(engine.classes) else list(model_classes)
    report["ece"] = calibration_gap(confidence, predicted == records.labels)
    if temperature != 1.0:
        report["ece_uncalibrated"] = calibration_gap(softmax(logits).max(axis=1), predicted == records.labels)
    if fit:
        if label_classes != model_classes:
            raise DatasetError(f"a temperature is fitted on labels over the model's own classes {model_classes}, "
                               f"not {label_classes} (use the majority protocol or the holdout split)")
        fitted = fit_temperature(logits, records.labels)
        report["temperature_fit"] = {
            "temperature": fitted, "split": split, "num_images": len(records),
            "ece_before": calibration_gap(softmax(logits).max(axis=1), predicted == records.labels),
            "ece_after": calibration_gap(softmax(logits, fitted).max(axis=1), predicted == records.labels)}
    if agree_with is not None:
        reference, _ = load_engine(agree_with)
        if tuple(reference.classes) != tuple(engine.classes):
            raise DatasetError(f"{agree_with} predicts {reference.classes}, not this model's {engine.classes}")
        same = to_label_index[probabilities(reference, images).argmax(axis=1)] == predicted
        report["agreement"] = {"with": os.fspath(agree_with), "fraction": float(same.mean())}
    report.update(model=os.fspath(model), package=str(engine.package.sidecar_path), backend=choice.backend, precision=engine.package.sidecar.precision,
                  data=str(records.source), split=split, protocol=records.format,
                  images_used=len(records), images_dropped=dict(records.dropped))
    if occlusion:
        report["occlusion"] = {}
        for region in OCCLUSION_REGIONS:
            rng = np.random.default_rng([seed, len(region)])
            occluded = np.stack([occlude(img, region, rng) for img in images])
            acc = float((predictions(occluded) == records.labels).mean())
            report["occlusion"][region] = {"accuracy": acc, "drop": report["accuracy"] - acc}
    return report


def save_confusion_png(report: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Row-normalised confusion matrix with counts, as a PNG (matplotlib, Agg), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(report["confusion_matrix"], dtype=np.float64)
    rows = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    classes = report["classes"]
    fig, ax = plt.subplots(figsize=(1 + 0.8 * len(classes), 0.8 * len(classes)))
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"accuracy {report['accuracy']:.3f} (n={report['num_images']})")
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=7,
                    color="white" if rows[i, j] > 0.5 else "black")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)


def format_report(report: dict[str, Any]) -> str:
    """The human-readable summary ``fer-edge eval`` prints."""
    dropped = report["images_dropped"]
    lines = [
        f"{report['model']} on {report['data']} ({report['split']}; {report['backend']}, {report['precision']})",
        f"images used {report['images_used']}, dropped {sum(dropped.values())} {dropped or ''}",
        (f"accuracy {report['accuracy']:.4f}  macro P {report['macro_precision']:.4f}  "
         f"R {report['macro_recall']:.4f}  F1 {report['macro_f1']:.4f}"),
        "per-class accuracy:",
    ]
    lines += [f"  {name:<9} {acc:.4f} (n={report['support'][name]})"
              for name, acc in report["per_class_accuracy"].items()]
    width = max(len(c) for c in report["classes"])
    lines.append("confusion matrix (rows true, columns predicted):")
    lines.append(" " * (width + 2) + " ".join(f"{c[:5]:>5}" for c in report["classes"]))
    lines += [f"  {c:<{width}}" + " ".join(f"{v:>5}" for v in row)
              for c, row in zip(report["classes"], report["confusion_matrix"])]
    lines.append(f"expected calibration error {report['ece']:.4f} (softmax temperature {report['temperature']:.3f})")
    if report.get("flip"):
        lines.append("scored as the mean of each face's and its mirror image's probabilities")
    if report.get("prior_correction"):
        lines.append(f"scored with the training class prior divided out to the power {report['prior_correction']:g}")
    if "temperature_fit" in report:
        fit = report["temperature_fit"]
        lines.append(f"fitted temperature {fit['temperature']:.3f} on {fit['num_images']} {fit['split']} faces: "
                     f"ECE {fit['ece_before']:.4f} -> {fit['ece_after']:.4f}")
    if "agreement" in report:
        lines.append(f"same label as {report['agreement']['with']}: {report['agreement']['fraction']:.4f}")
    for region, res in report.get("occlusion", {}).items():
        lines.append(f"occluded {region}: accuracy {res['accuracy']:.4f} (drop {res['drop'] * 100:.1f} points)")
    return "\n".join(lines)


RECORDED_KEYS = ("classes_scored", "accuracy", "macro_precision", "macro_recall", "macro_f1", "per_class_accuracy", "num_images",
                 "occlusion", "agreement", "ece", "ece_uncalibrated", "temperature", "temperature_fit")


def record_in_sidecar(report: dict[str, Any]) -> Path:
    """Store the report's headline numbers in the evaluated package's sidecar, under
    ``metrics["<protocol>/<split>"]``, so a shipped package carries the accuracy measured on it. An
    8-class model scored on 7 classes (``classes_scored``) records under the 7-class protocol's own
    key (``ferplus``: comparable with 7-class models), or ``<protocol>_7class`` where the labels keep
    8 emotions (the authors' protocol).

    The entry is updated, not replaced: numbers this run did not measure (occlusion, agreement)
    stay from the run that did. A rebuilt package starts with a fresh sidecar, so none go stale.
    A fitted temperature becomes the package's own."""
    from fer_edge.errors import PackageError
    from fer_edge.package import load_package, write_package

    if report.get("prior_correction") or report.get("flip"):
        raise DatasetError("--record stores the package's own numbers; these were measured with "
                           "--prior-correction or --flip")
    if not Path(report["package"]).is_file():
        raise PackageError("--record stores metrics in a package's sidecar; a bare .pt checkpoint has none "
                           "(package it first)")
    package = load_package(report["package"])
    subset = report.get("classes_scored")  # a label set wider than the scored classes gets its own entry
    protocol = report["protocol"] + (f"_{len(subset)}class" if subset and len(subset) != len(report["classes"]) else "")
    entry = package.sidecar.metrics.setdefault(f"{protocol}/{report['split']}", {})
    entry.update({k: report[k] for k in RECORDED_KEYS if k in report})  # keeps e.g. occlusion from an earlier run
    if "temperature_fit" in report:
        package.sidecar.temperature = report["temperature_fit"]["temperature"]
    return write_package(package.model_path, package.sidecar).sidecar_path


def write_outputs(report: dict[str, Any], out: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``metrics.json`` and ``confusion.png`` in ``out``."""
    folder = Path(out)
    write_json_atomic(folder / "metrics.json", report)
    return folder / "metrics.json", save_confusion_png(report, folder / "confusion.png")
