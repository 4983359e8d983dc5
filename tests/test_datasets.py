"""Dataset readers on tiny fixtures in each real format: label order, protocol drops, corrupt files."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_edge.constants import EXPRESSIONS_7, EXPRESSIONS_8
from fer_edge.errors import DatasetError
from fer_edge.package import InputSpec
from fer_edge.training.augment import Augment
from fer_edge.training.datasets import EpochSampler, FaceDataset
from fer_edge.training.images import decode_records
from fer_edge.training.readers import read_dataset
from fer_edge.vision.preprocess import preprocess


def _png(path: Path, value: int, size: int = 48) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((size, size), value, dtype=np.uint8))


def _ferplus(root: Path) -> Path:
    split = root / "FER2013Valid"
    rows = [  # votes: neutral happiness surprise sadness anger disgust fear contempt unknown NF
        ("a.png", "0,0,8,1,0,0,1,0,0,0"),  # surprise, strict majority
        ("b.png", "5,5,0,0,0,0,0,0,0,0"),  # tie: no strict majority
        ("c.png", "0,0,0,0,0,0,0,0,6,4"),  # unknown
        ("d.png", "1,0,0,0,0,0,0,9,0,0"),  # contempt
        ("e.png", "0,0,0,7,0,0,0,0,3,0"),  # sadness
        ("f.png", "0,0,0,0,0,0,6,0,4,0"),  # fear
    ]
    split.mkdir(parents=True)
    (split / "label.csv").write_text("".join(f'{n},"(0, 0, 48, 48)",{v}\n' for n, v in rows))
    for i, (name, _) in enumerate(rows):
        _png(split / name, 20 * i)
    return root


def test_ferplus_majority_protocol_and_label_order(tmp_path: Path) -> None:
    r8 = read_dataset(_ferplus(tmp_path), "val", 8)
    assert [p.name for p in r8.items] == ["a.png", "d.png", "e.png", "f.png"]
    assert [EXPRESSIONS_8[i] for i in r8.labels] == ["surprise", "contempt", "sad", "fear"]
    assert r8.dropped == {"no_strict_majority": 1, "unknown_or_not_face": 1}
    r7 = read_dataset(tmp_path, "val", 7)
    assert [EXPRESSIONS_7[i] for i in r7.labels] == ["surprise", "sad", "fear"]
    assert r7.dropped["contempt"] == 1
    assert r7.soft is not None
    np.testing.assert_allclose(r7.soft[0], [0, 0, 0.1, 0.8, 0.1, 0, 0])  # neutral happy sad surprise fear ...


def test_ferplus_votes_protocol_keeps_ties_with_soft_labels(tmp_path: Path) -> None:
    records = read_dataset(_ferplus(tmp_path) / "FER2013Valid", "train", 7, protocol="votes")
    assert [p.name for p in records.items] == ["a.png", "b.png", "e.png", "f.png"]
    np.testing.assert_allclose(records.soft[1], [0.5, 0.5, 0, 0, 0, 0, 0])  # type: ignore[index]


def test_ferplus_authors_protocol_drops_single_votes_and_keeps_8_emotions(tmp_path: Path) -> None:
    """microsoft/FERPlus `majority` mode: votes of 1 dropped, then > 50 % of the rest, 8 emotions."""
    split = _ferplus(tmp_path) / "FER2013Valid"
    with open(split / "label.csv", "a") as handle:  # 4 of 10 is no strict majority; 4 of 4 after outlier removal
        handle.write('g.png,"(0, 0, 48, 48)",4,1,1,1,1,1,1,0,0,0\n')
    _png(split / "g.png", 130)
    records = read_dataset(split, "val", 7, protocol="authors")
    assert records.format == "ferplus_authors" and records.classes == EXPRESSIONS_8
    assert [p.name for p in records.items] == ["a.png", "d.png", "e.png", "f.png", "g.png"]
    assert [EXPRESSIONS_8[i] for i in records.labels] == ["surprise", "contempt", "sad", "fear", "neutral"]
    assert records.dropped == {"no_majority": 1, "unknown_or_not_face": 1}
    assert len(read_dataset(split, "val", 7)) == 3  # ours: strict majority of all 10 votes, 7 classes


def test_corrupt_image_skipped_with_warning_and_all_corrupt_is_an_error(tmp_path: Path) -> None:
    root = _ferplus(tmp_path)
    (root / "FER2013Valid" / "e.png").write_bytes(b"\x89PNG not really")
    records = read_dataset(root, "val", 7)
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        kept, images = decode_records(records, gray=True, cache_dir=tmp_path / "cache")
    assert [p.name for p in kept.items] == ["a.png", "f.png"] and images.shape == (2, 48, 48)
    assert kept.dropped["unreadable"] == 1
    with pytest.warns(UserWarning):  # served from the cache, same answer
        again, images2 = decode_records(records, gray=True, cache_dir=tmp_path / "cache")
    assert np.array_equal(images, images2) and list(again.labels) == list(kept.labels)
    assert list((tmp_path / "cache").glob("*.npz"))
    for name in ("a.png", "f.png"):
        (root / "FER2013Valid" / name).write_bytes(b"")
    with pytest.raises(DatasetError, match="FER2013Valid"):
        decode_records(records, gray=True, cache_dir=tmp_path / "cache")


def test_rafdb_basic(tmp_path: Path) -> None:
    (tmp_path / "list_patition_label.txt").write_text("train_00001.jpg 1\ntrain_00002.jpg 7\ntest_0001.jpg 4\n")
    for name in ("train_00001_aligned.jpg", "train_00002_aligned.jpg", "test_0001_aligned.jpg"):
        _png(tmp_path / "aligned" / name, 100, 100)
    train = read_dataset(tmp_path, "train", 7)
    assert [EXPRESSIONS_7[i] for i in train.labels] == ["surprise", "neutral"]
    assert train.items[0].name == "train_00001_aligned.jpg"
    test = read_dataset(tmp_path, "test", 7)
    assert [EXPRESSIONS_7[i] for i in test.labels] == ["happy"]


def test_fer2013_csv_with_corrupt_row(tmp_path: Path) -> None:
    pixels = " ".join(["7"] * 48 * 48)
    csv = tmp_path / "fer2013.csv"
    csv.write_text(f"emotion,pixels,Usage\n0,{pixels},Training\n6,{pixels},Training\n3,1 2 3,Training\n"
                   f"4,{pixels},PrivateTest\n")
    train = read_dataset(csv, "train", 7)
    assert [EXPRESSIONS_7[i] for i in train.labels] == ["anger", "neutral"]
    assert train.dropped == {"corrupt": 1}
    assert [EXPRESSIONS_7[i] for i in read_dataset(csv, "test", 7).labels] == ["sad"]


def test_affectnet_csv_drops_non_expressions_and_crops_the_box(tmp_path: Path) -> None:
    img = np.zeros((60, 80, 3), dtype=np.uint8)
    img[10:40, 20:50] = 255
    (tmp_path / "imgs").mkdir()
    cv2.imwrite(str(tmp_path / "imgs" / "x.png"), img)
    csv = tmp_path / "training.csv"
    csv.write_text("subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression\n"
                   "imgs/x.png,20,10,30,30,,7\nimgs/x.png,20,10,30,30,,5\nimgs/x.png,0,0,0,0,,9\n")
    r7 = read_dataset(csv, "train", 7)
    assert [EXPRESSIONS_7[i] for i in r7.labels] == ["disgust"] and r7.dropped == {"not_in_class_set": 2}
    assert [EXPRESSIONS_8[i] for i in read_dataset(csv, "train", 8).labels] == ["contempt", "disgust"]
    _, images = decode_records(r7, gray=True, use_cache=False)
    assert images.shape == (1, 30, 30) and images.min() == 255


def test_class_folders_synonyms_and_unknown_folder(tmp_path: Path) -> None:
    _png(tmp_path / "happiness" / "1.png", 1)
    _png(tmp_path / "Angry" / "2.png", 2)
    records = read_dataset(tmp_path, "train", 7)
    assert sorted(EXPRESSIONS_7[i] for i in records.labels) == ["anger", "happy"]
    _png(tmp_path / "bored" / "3.png", 3)
    with pytest.raises(DatasetError, match="bored"):
        read_dataset(tmp_path, "train", 7)


def test_celeba_attributes(tmp_path: Path) -> None:
    (tmp_path / "list_attr_celeba.txt").write_text("2\nSmiling Young\n000001.jpg 1 -1\n000002.jpg -1 1\n")
    (tmp_path / "img_align_celeba").mkdir()
    records = read_dataset(tmp_path, "train")
    assert records.attribute_names == ("Smiling", "Young")
    np.testing.assert_array_equal(records.attributes, [[1, 0], [0, 1]])
    assert (records.labels == -1).all()


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        read_dataset(tmp_path / "nope")


def test_dataset_without_augmentation_is_exactly_preprocess(tmp_path: Path) -> None:
    records = read_dataset(_ferplus(tmp_path), "val", 7)
    records, images = decode_records(records, gray=True, use_cache=False)
    spec = InputSpec(size=(32, 32))
    x, target = FaceDataset(records, images, spec)[1]
    np.testing.assert_array_equal(x.numpy(), preprocess(images[1], spec)[0])
    assert EXPRESSIONS_7[int(target)] == "sad"
    _, soft_t = FaceDataset(records, images, spec, soft_labels=True)[0]
    assert soft_t.shape == (7,)


def test_augmentation_is_a_function_of_seed_epoch_and_index(tmp_path: Path) -> None:
    records = read_dataset(_ferplus(tmp_path), "val", 7)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (len(records), 48, 48), dtype=np.uint8)
    ds = FaceDataset(records, images, InputSpec(size=(48, 48)), Augment(erase=1.0), seed=3)
    first = ds[0][0]
    assert np.array_equal(first, ds[0][0])
    ds.set_epoch(1)
    assert not np.array_equal(first, ds[0][0])
    identity = Augment(flip=0, crop_scale=(1, 1), crop_ratio=(1, 1), rotate=0, brightness=0, contrast=0)
    assert np.array_equal(identity.image(images[0], rng), images[0])


def test_balanced_sampler_evens_classes_and_ranks_partition() -> None:
    labels = np.array([0] * 900 + [1] * 90 + [2] * 10)
    counts = np.bincount(labels[list(EpochSampler(labels, 3, balanced=True, seed=0))], minlength=3)
    assert counts.min() > 250 and counts.max() < 420
    ranks = [list(EpochSampler(labels, 3, balanced=False, seed=0, rank=r, world=2)) for r in (0, 1)]
    assert sorted(ranks[0] + ranks[1]) == list(range(1000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(EpochSampler(labels[:7], 3, balanced=False, seed=0, world=2)) == 4
