"""``fer-edge run PATH|CAMERA``: expressions in images, folders, videos or a camera.

Writes annotated copies (``--save``) and/or one JSON line per image or frame (``--json``, schema
``fer_edge.result/2``); otherwise prints one line per image. Faces the model cannot read (the
``--min-*``/``--max-*`` thresholds, measured defaults) are answered "uncertain". Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import sys
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import cv2
import numpy as np

from fer_edge.errors import ImageReadError, InvalidInputError
from fer_edge.fileio import atomic_write
from fer_edge.recognizer import FrameResult, Recognizer
from fer_edge.recognizer.abstain import Abstention
from fer_edge.recognizer.draw import annotate
from fer_edge.recognizer.sources import IMAGE_SUFFIXES, VIDEO_SUFFIXES, is_stream_url, read_image, stream_source
from fer_edge.recognizer.tracking import POLICIES, DetectionPolicy


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model/--backend/--device/--prior-correction/--flip``, shared with ``fer-edge serve``."""
    parser.add_argument("--model", default="default", help="'default', a model id, or a package path")
    parser.add_argument("--backend", default="auto", choices=["auto", "tensorrt", "onnxruntime", "torch"])
    parser.add_argument("--device", default=None, help="e.g. cpu, cuda:0 (default: chosen with the backend)")
    parser.add_argument("--prior-correction", type=float, default=0.0, metavar="TAU",
                        help="divide the training class prior out of the probabilities to the power TAU "
                             "(0 = off; 0.75 was chosen on held-out FER+ train faces for balanced recall)")
    parser.add_argument("--flip", action="store_true",
                        help="also classify each face mirrored and average (+0.6-1.7 pt on FER+, a second inference per face)")
    parser.add_argument("--classes", type=class_list, metavar="7|NAMES",
                        help="answer only in these classes: 7 (the basic expressions, for an 8-class model) or "
                             "comma-separated names; the probabilities are renormalised over them")


def class_list(text: str) -> int | list[str]:
    """``--classes``: a count (7 or 8) or comma-separated class names."""
    return int(text) if text.isdigit() else [c.strip() for c in text.split(",")]


def add_policy_arguments(parser: argparse.ArgumentParser) -> None:
    """``--detect-policy/--detect-every/--margin``, shared with ``fer-edge serve``."""
    parser.add_argument("--detect-policy", choices=POLICIES, default="track",
                        help="video/camera: 'track' (default) detects on the whole frame every --detect-every frames "
                             "and when a face is lost, and re-detects tracked faces near their last box in between; "
                             "'full' detects on the whole of every frame")
    parser.add_argument("--detect-every", type=int, default=DetectionPolicy.detect_every, metavar="N",
                        help="video/camera, 'track': full-frame detection at least every N frames (default %(default)s)")
    parser.add_argument("--margin", type=float, default=DetectionPolicy.margin,
                        help="video/camera, 'track': the re-detection region grows the last box by this fraction "
                             "of its side on each side (default %(default)s)")


def recognizer_of(args: argparse.Namespace, abstain: Abstention | bool = True) -> Recognizer:
    """The Recognizer the model arguments ask for."""
    return Recognizer(args.model, args.backend, args.device, abstain=abstain, prior_correction=args.prior_correction,
                      flip=args.flip, classes=args.classes)


def policy_of(args: argparse.Namespace) -> DetectionPolicy:
    """The detection policy the arguments ask for (bad values fail here, before the model loads)."""
    return DetectionPolicy(args.detect_policy, args.detect_every, args.margin)


def add_abstain_arguments(parser: argparse.ArgumentParser) -> None:
    """``--no-abstain`` and the "uncertain" thresholds (defaults: :class:`Abstention`'s measured ones)."""
    parser.add_argument("--no-abstain", action="store_true", help="always answer an expression, never 'uncertain'")
    helps = {"min_face_px": "shorter face box side, pixels", "min_sharpness": "variance of the Laplacian of the aligned "
             "64 px crop", "max_yaw": "absolute yaw, degrees", "max_pitch": "absolute pitch, degrees",
             "min_score": "detector score", "min_confidence": "top probability"}
    for f in fields(Abstention):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=float, default=f.default, metavar="X",
                            help=f"'uncertain' below/above this {helps[f.name]} (default %(default)s)")


def abstain_of(args: argparse.Namespace) -> Abstention | bool:
    """What the abstention arguments ask for; ``True`` (the Recognizer's measured defaults) when none is changed."""
    if args.no_abstain:
        return False
    chosen = Abstention(**{f.name: getattr(args, f.name) for f in fields(Abstention)})
    return True if chosen == Abstention() else chosen


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="image, folder of images, video file, stream URL, or camera index (e.g. 0)")
    add_model_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON line per image/frame to stdout")
    parser.add_argument("--save", type=Path, help="annotated output: a folder for images, a video file for video")
    parser.add_argument("--max-frames", type=int, default=None, help="stop a video/camera after N frames")
    add_policy_arguments(parser)
    add_abstain_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _summary(name: str, result: FrameResult) -> str:
    faces = ", ".join(f"{f.output_label} ({f.probabilities[f.label]:.2f})" for f in result.faces) or "no face"
    return f"{name}: {faces}"


def _progress(total: int | None, quiet: bool, unit: str) -> contextlib.AbstractContextManager[object]:
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, file=sys.stderr, disable=quiet or not sys.stderr.isatty(), leave=False)


def _save_image(path: Path, image: np.ndarray) -> None:
    ok, data = cv2.imencode(path.suffix or ".jpg", image)
    if not ok:
        raise ImageReadError(f"cannot encode {path.name}; use a .jpg or .png name")
    with atomic_write(path) as handle:
        handle.write(data.tobytes())


def _run_images(rec: Recognizer, files: list[Path], args: argparse.Namespace, folder: bool) -> int:
    failures = 0
    with _progress(len(files), args.quiet, "img") as bar:
        for file in files:
            try:
                image = read_image(file)
                result = FrameResult(rec(image), source=str(file))
            except (ImageReadError, InvalidInputError) as exc:
                if not folder:
                    raise
                print(f"fer-edge run: skipped {file}: {exc}", file=sys.stderr)
                failures += 1
                continue
            finally:
                bar.update(1)  # type: ignore[attr-defined]
            print(result.to_json() if args.json else _summary(str(file), result), flush=True)
            if args.save:
                out = args.save / file.name if folder or args.save.is_dir() or not args.save.suffix else args.save
                _save_image(out, annotate(image, result.faces))
    return 1 if failures else 0


@contextlib.contextmanager
def _video_writer(path: Path, fps: float, size: tuple[int, int]) -> Iterator[cv2.VideoWriter]:
    """A VideoWriter on a temporary name beside ``path``, renamed over it only when writing succeeds."""
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise ImageReadError(f"cannot write video {path}; use an .mp4 or .avi name")
    try:
        yield writer
        writer.release()
        os.replace(tmp, path)
    finally:
        writer.release()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _run_stream(rec: Recognizer, source: int | str | Path, args: argparse.Namespace) -> int:
    total, fps = None, 25.0
    if isinstance(source, Path):
        capture = cv2.VideoCapture(str(source))
        total, fps = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None, capture.get(cv2.CAP_PROP_FPS) or 25.0
        capture.release()
    if args.max_frames:
        total = min(total or args.max_frames, args.max_frames)
    # a file's frames are all there: infer each while the next is detected (a camera's result would wait a frame)
    stream = rec.stream(source, policy=policy_of(args), pipeline=isinstance(source, Path))
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(_progress(total, args.quiet, "frame"))
        writer = None
        for result in itertools.islice(stream, args.max_frames):
            if args.json:
                print(result.to_json(), flush=True)
            if args.save:
                if writer is None:
                    height, width = stream.frame.shape[:2]
                    writer = stack.enter_context(_video_writer(args.save, fps, (width, height)))
                writer.write(annotate(stream.frame, result.faces))
            bar.update(1)  # type: ignore[attr-defined]
    if not args.json:
        for track in stream.summary():
            print(f"track {track['track_id']}: {track['label']} over {track['frames']} frames "
                  f"({track['first_seen']:.1f}-{track['last_seen']:.1f} s)")
    return 0


def run(args: argparse.Namespace) -> int:
    policy_of(args)  # bad options fail before the model loads
    abstain = abstain_of(args)
    source = Path(args.source)
    if is_stream_url(args.source) or (args.source.isdigit() and not source.exists()):
        return _run_stream(recognizer_of(args, abstain), stream_source(args.source), args)
    if not source.exists():
        raise ImageReadError(f"{source} does not exist (give an image, a folder, a video or a camera index)")
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ImageReadError(f"{source} contains no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
        return _run_images(recognizer_of(args, abstain), files, args, folder=True)
    if source.suffix.lower() in VIDEO_SUFFIXES:
        return _run_stream(recognizer_of(args, abstain), source, args)
    if source.suffix.lower() in IMAGE_SUFFIXES:
        return _run_images(recognizer_of(args, abstain), [source], args, folder=False)
    raise InvalidInputError(f"{source.name}: unknown file type; images: {sorted(IMAGE_SUFFIXES)}, "
                       f"videos: {sorted(VIDEO_SUFFIXES)}")
