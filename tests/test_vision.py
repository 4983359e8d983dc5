"""Detection (YuNet on real photos) and alignment (similarity transform, FER2013 template)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from fer_edge.errors import InvalidInputError
from fer_edge.vision.align import TEMPLATES, align_face, box_crop_landmarks, similarity_transform, template
from fer_edge.vision.detector import FaceDetector, YuNetDetector, ensure_bgr

# Hand-read from skimage's astronaut (512x512): centres of the eyes and mouth corners, +-6 px.
ASTRONAUT_EYES = np.array([[204.0, 102.0], [246.0, 102.0]])
ASTRONAUT_MOUTH = np.array([[204.0, 144.0], [240.0, 143.0]])


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])  # BGR


@pytest.fixture(scope="module")
def detector() -> YuNetDetector:
    return YuNetDetector()


def test_ensure_bgr_accepts_gray_rgb_and_alpha(astronaut: np.ndarray) -> None:
    gray = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)
    assert ensure_bgr(gray).shape == (512, 512, 3)
    assert ensure_bgr(gray[:, :, None]).shape == (512, 512, 3)
    bgra = cv2.cvtColor(astronaut, cv2.COLOR_BGR2BGRA)
    assert np.array_equal(ensure_bgr(bgra), astronaut)
    assert np.array_equal(ensure_bgr(astronaut[:, :, ::-1], rgb=True), astronaut)
    rgba = cv2.cvtColor(astronaut, cv2.COLOR_BGR2RGBA)
    assert np.array_equal(ensure_bgr(rgba, rgb=True), astronaut)


@pytest.mark.parametrize("bad, words", [
    (None, "None"), ([[1, 2]], "numpy array"), (np.zeros((8, 8, 3), np.float32), "uint8"),
    (np.zeros((8, 8, 5), np.uint8), "shape"), (np.zeros((0, 0, 3), np.uint8), "empty"),
    (np.zeros((2, 2, 2, 3), np.uint8), "shape"),
])
def test_ensure_bgr_rejects_bad_frames(bad: object, words: str) -> None:
    with pytest.raises(InvalidInputError, match=words):
        ensure_bgr(bad)


def test_yunet_finds_the_astronaut_with_landmarks(detector: YuNetDetector, astronaut: np.ndarray) -> None:
    assert isinstance(detector, FaceDetector)
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.8
    assert np.abs(face.landmarks[:2] - ASTRONAUT_EYES).max() < 8
    assert np.abs(face.landmarks[3:] - ASTRONAUT_MOUTH).max() < 8
    x, y, w, h = face.box
    assert (x < face.landmarks[:, 0]).all() and (face.landmarks[:, 0] < x + w).all()
    assert (y < face.landmarks[:, 1]).all() and (face.landmarks[:, 1] < y + h).all()


def test_gigantic_frame_is_downscaled_and_mapped_back(detector: YuNetDetector, astronaut: np.ndarray) -> None:
    """An 8000x6000 frame: detection runs on a small copy, coordinates come back in frame pixels."""
    canvas = np.full((6000, 8000, 3), 90, np.uint8)
    big = cv2.resize(astronaut, (2048, 2048), interpolation=cv2.INTER_CUBIC)
    canvas[1000:3048, 3000:5048] = big
    faces = detector.detect(canvas)
    assert len(faces) == 1
    expected = ASTRONAUT_EYES * 4 + [3000, 1000]
    assert np.abs(faces[0].landmarks[:2] - expected).max() < 40  # 8 px at the original scale


def test_no_face_min_face_and_max_faces(detector: YuNetDetector, astronaut: np.ndarray) -> None:
    assert detector.detect(np.full((480, 640, 3), 128, np.uint8)) == []
    assert YuNetDetector(min_face=200).detect(astronaut) == []
    pair = np.hstack([astronaut, astronaut])
    two = YuNetDetector(detect_size=640).detect(pair)
    assert len(two) == 2
    assert len(YuNetDetector(detect_size=640, max_faces=1).detect(pair)) == 1
    assert two[0].score >= two[1].score


def test_similarity_transform_recovers_a_known_transform() -> None:
    src = TEMPLATES["fer2013"] * 100
    angle, scale, shift = np.deg2rad(20), 1.7, np.array([13.0, -4.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = similarity_transform(src, src @ rot.T + shift)
    assert np.allclose(matrix[:, :2], rot, atol=1e-9)
    assert np.allclose(matrix[:, 2], shift, atol=1e-9)


def test_similarity_transform_is_the_least_squares_fit_of_noisy_points() -> None:
    """On points no similarity maps exactly, the fit equals a plain linear least-squares solve of the four
    unknowns (a, b, tx, ty) of [[a, -b, tx], [b, a, ty]]: the closed form is the optimum, not an approximation."""
    rng = np.random.default_rng(3)
    src = TEMPLATES["fer2013"] * 120 + rng.normal(0, 4, (5, 2))
    dst = rng.normal(0, 30, (5, 2)) + src @ np.array([[0.8, -0.5], [0.5, 0.8]]).T
    rows = [[x, -y, 1, 0] for x, y in src] + [[y, x, 0, 1] for x, y in src]
    (a, b, tx, ty), *_ = np.linalg.lstsq(np.asarray(rows), np.concatenate([dst[:, 0], dst[:, 1]]), rcond=None)
    np.testing.assert_allclose(similarity_transform(src, dst), [[a, -b, tx], [b, a, ty]], atol=1e-9)


def test_align_puts_landmarks_on_the_template(detector: YuNetDetector, astronaut: np.ndarray) -> None:
    face = detector.detect(astronaut)[0]
    crop = align_face(astronaut, face.landmarks, (64, 56))
    assert crop.shape == (64, 56, 3) and crop.dtype == np.uint8
    matrix = similarity_transform(face.landmarks, template("fer2013") * [56, 64])
    mapped = face.landmarks @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(mapped - template("fer2013") * [56, 64]).max() < 3  # 5 points, 4 dof: near, not exact


def test_a_large_face_is_area_averaged_down_not_sampled() -> None:
    """Grain at 4x the crop's scale: the plain bilinear warp passes it through (it reads 4 of every 16
    pixels); the SDK's crop averages it away, as downscaling FER2013's faces did."""
    grain = np.random.default_rng(0).integers(0, 256, (192, 192), dtype=np.uint8)
    landmarks = template("fer2013") * 192
    plain = align_face(grain, landmarks, (48, 48), antialias=False)
    averaged = align_face(grain, landmarks, (48, 48))
    assert plain.std() > 60 and averaged.std() < 0.2 * plain.std()
    assert abs(float(averaged.mean()) - float(grain.mean())) < 2


def test_area_averaging_keeps_the_geometry_and_leaves_native_faces_alone() -> None:
    """On a smooth image the averaged crop is the plain warp's (rotated, scaled, part outside the
    frame); at the crop's own scale it is the plain warp, bit for bit."""
    ramp = np.add.outer(np.linspace(0, 120, 700), np.linspace(0, 135, 900)).astype(np.uint8)
    rotate = cv2.getRotationMatrix2D((450, 350), 25, 1.0)
    for scale, offset in ((5.0, (20.0, 30.0)), (3.2, (-60.0, 400.0)), (1.2, (100.0, 100.0))):
        landmarks = np.column_stack([template("fer2013") * 48 * scale + offset, np.ones(5)]) @ rotate.T
        plain = align_face(ramp, landmarks, (48, 48), antialias=False)
        averaged = align_face(ramp, landmarks, (48, 48))
        assert np.abs(averaged.astype(int) - plain).max() <= 2, scale
        if scale < 1.5:
            assert np.array_equal(averaged, plain)


def test_sharp_photos_of_fer_faces_get_the_answers_of_the_faces_themselves(ferplus_dir) -> None:  # type: ignore[no-untyped-def]
    """Real FER+ faces as 4x photos with camera noise: cropped by the SDK they keep the model's
    answers; the plain warp's grainy crops lose many (tools/measure_photo_crops.py: 81 vs 88 %)."""
    from fer_edge import Recognizer
    from fer_edge.vision.preprocess import preprocess

    recognizer = Recognizer()
    rng = np.random.default_rng(0)
    faces = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in sorted((ferplus_dir / "FER2013Valid").glob("*.png"))[:300]]
    photos = [np.clip(cv2.resize(f, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC) + rng.normal(0, 12, (192, 192)),
                      0, 255).astype(np.uint8) for f in faces]
    landmarks = template("fer2013") * 192

    def answers(crops: list[np.ndarray]) -> np.ndarray:
        bgr = [cv2.cvtColor(c, cv2.COLOR_GRAY2BGR) for c in crops]
        return recognizer.classify_batch(preprocess(bgr, recognizer.spec)).argmax(1)

    native = answers(faces)
    averaged = np.mean(answers([align_face(p, landmarks, (48, 48)) for p in photos]) == native)
    plain = np.mean(answers([align_face(p, landmarks, (48, 48), antialias=False) for p in photos]) == native)
    assert averaged > 0.9 and averaged > plain + 0.04, (averaged, plain)


def test_alignment_errors_are_typed() -> None:
    image = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(InvalidInputError, match="known"):
        template("nope")
    with pytest.raises(InvalidInputError, match="5 finite"):
        align_face(image, np.zeros((4, 2)), (48, 48))
    with pytest.raises(InvalidInputError, match="degenerate"):
        align_face(image, np.ones((5, 2)), (48, 48))
    with pytest.raises(InvalidInputError, match="5 finite"):
        align_face(image, np.full((5, 2), np.nan), (48, 48))


def test_box_crop_landmarks_frame_the_box() -> None:
    points = box_crop_landmarks((10, 20, 100, 100))
    assert np.allclose(points, TEMPLATES["fer2013"] * 100 + [10, 20])


def test_fer2013_template_reproduces_fer_framing(ferplus_dir, detector: YuNetDetector) -> None:  # type: ignore[no-untyped-def]
    """On real FER+ faces, aligning to the template is on average the identity: same scale, same centre.

    Single faces differ (FER2013 crops were not landmark-aligned, so tilted heads stay tilted there),
    but a template off by 3% in scale or 1.5 px in position fails; "arcface" is 5% off and fails.
    """
    wide = YuNetDetector(score_threshold=0.5, min_face=1, detect_size=1024)
    files = sorted((ferplus_dir / "FER2013Valid").glob("*.png"))[:40]
    scales, shifts = [], []
    for file in files:
        face48 = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
        big = cv2.copyMakeBorder(cv2.resize(face48, (192, 192), interpolation=cv2.INTER_CUBIC),
                                 96, 96, 96, 96, cv2.BORDER_REPLICATE)
        found = wide.detect(big)
        if not found:
            continue
        matrix = similarity_transform((found[0].landmarks - 96) / 4, template("fer2013") * 48)
        scales.append(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
        shifts.append(matrix[:, :2] @ [24, 24] + matrix[:, 2] - 24)  # where the crop centre moves
    assert len(scales) >= 30
    assert abs(np.median(scales) - 1) < 0.03, f"median scale {np.median(scales):.3f}"
    assert np.abs(np.median(shifts, axis=0)).max() < 1.5, f"median centre shift {np.median(shifts, axis=0)}"
