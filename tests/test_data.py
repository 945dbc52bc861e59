import json
import struct

import pytest
import torch

from obfaudit.data import (
    COLOUR_NAMES,
    PALETTE_TENSOR,
    balanced_labels,
    load_colored_mnist,
    load_dataset,
    load_full_mnist,
    load_image_folder,
    load_mnist,
    make_noisy,
    make_path,
    resnet_preprocess,
)
from obfaudit.errors import DataError


def test_embedded_mnist_split_is_stratified_and_in_range():
    train, test = load_mnist("train", seed=0), load_mnist("test", seed=0)
    assert train.x.shape == (4000, 1, 28, 28) and test.x.shape == (1000, 1, 28, 28)
    assert train.x.dtype == torch.float32
    assert 0.0 <= float(train.x.min()) and float(train.x.max()) <= 1.0
    assert torch.bincount(train.labels["digit"]).tolist() == [400] * 10
    assert torch.bincount(test.labels["digit"]).tolist() == [100] * 10


def test_embedded_split_is_deterministic_and_seed_dependent():
    a, b, c = (load_mnist("test", seed=s) for s in (0, 0, 1))
    assert torch.equal(a.x, b.x)
    assert not torch.equal(a.x, c.x)
    # train and test never share an image index: together they are the whole 5k file
    tr = load_mnist("train", seed=0)
    assert len(tr) + len(a) == 5000


@pytest.mark.parametrize("n,k", [(4000, 7), (1000, 7), (13, 7), (10, 3), (5, 7)])
def test_balanced_labels_within_one(n, k):
    y = balanced_labels(n, k, torch.Generator().manual_seed(0))
    counts = torch.bincount(y, minlength=k)
    assert int(counts.max() - counts.min()) <= 1 and int(counts.sum()) == n


def test_colored_mnist_is_grey_times_palette():
    ds = load_colored_mnist("test", seed=3)
    grey = load_mnist("test", seed=3).x
    assert ds.x.shape == (1000, 3, 28, 28)
    counts = torch.bincount(ds.labels["colour"], minlength=7)
    assert int(counts.max() - counts.min()) <= 1
    expected = grey * PALETTE_TENSOR[ds.labels["colour"]].view(-1, 3, 1, 1)
    assert torch.equal(ds.x, expected)
    assert torch.equal(ds.labels["digit"], load_mnist("test", seed=3).labels["digit"])
    assert ds.classes["colour"] == COLOUR_NAMES


def test_colored_mnist_seeds():
    a, b = load_colored_mnist("train", seed=0), load_colored_mnist("train", seed=0)
    c = load_colored_mnist("train", seed=1)
    assert torch.equal(a.x, b.x) and torch.equal(a.labels["colour"], b.labels["colour"])
    assert not torch.equal(a.labels["colour"], c.labels["colour"])


@pytest.mark.parametrize("make", [make_noisy, make_path])
def test_proxies(make):
    ds = make(700, seed=5)
    assert ds.x.shape == (700, 3, 28, 28) and ds.split == "proxy"
    assert 0.0 <= float(ds.x.min()) and float(ds.x.max()) <= 1.0
    assert torch.bincount(ds.labels["colour"]).tolist() == [100] * 7
    assert set(ds.labels) == {"colour"}  # the adversary's data carries no digit labels
    assert torch.equal(ds.x, make(700, seed=5).x)
    assert not torch.equal(ds.x, make(700, seed=6).x)
    # each image is exactly one palette colour times a grey pattern
    grey = ds.x.amax(dim=1, keepdim=True)
    colour = PALETTE_TENSOR[ds.labels["colour"]].view(-1, 3, 1, 1)
    assert torch.allclose(ds.x, grey * colour)


def test_noisy_is_brighter_in_the_centre():
    x = make_noisy(2000, seed=0).x.amax(dim=1).mean(dim=0)
    assert float(x[11:17, 11:17].mean()) > 2 * float(x[:4, :4].mean())


def test_path_strokes_start_at_the_centre_and_are_sparse():
    x = make_path(500, seed=0).x.amax(dim=1)
    assert float(x[:, 12:16, 12:16].amax(dim=(1, 2)).min()) > 0.5  # every walk starts there
    lit = (x > 0.3).float().mean(dim=(1, 2))
    assert 0.03 < float(lit.mean()) < 0.4  # a stroke, not a blob or an empty image


def test_full_mnist_from_idx_files(mnist_root):
    train = load_full_mnist("train", root=mnist_root)
    test = load_full_mnist("test", root=mnist_root)
    assert train.x.shape == (30, 1, 28, 28) and test.x.shape == (20, 1, 28, 28)
    assert train.labels["digit"].tolist() == [i % 10 for i in range(30)]
    colored = load_colored_mnist("train", data_root=mnist_root)
    assert colored.x.shape == (30, 3, 28, 28)


def test_full_mnist_gz_files_are_extracted(mnist_root):
    import gzip

    raw = mnist_root / "MNIST" / "raw"
    for f in list(raw.iterdir()):
        (raw / (f.name + ".gz")).write_bytes(gzip.compress(f.read_bytes()))
        f.unlink()
    assert len(load_full_mnist("test", root=mnist_root)) == 20


def test_full_mnist_missing_says_where(tmp_path):
    with pytest.raises(DataError, match=r"MNIST/raw"):
        load_mnist("train", data_root=tmp_path)


def test_full_mnist_corrupt_file(mnist_root):
    f = mnist_root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(DataError, match="truncated"):
        load_full_mnist("train", root=mnist_root)


def test_full_mnist_bad_magic(mnist_root):
    f = mnist_root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    f.write_bytes(struct.pack(">I", 12345) + b"\0" * 30)
    with pytest.raises(DataError):
        load_full_mnist("test", root=mnist_root)


def test_image_folder(image_folder):
    ds = load_image_folder(image_folder, "train")
    assert ds.x.shape == (20, 3, 224, 224)
    assert 0.0 <= float(ds.x.min()) and float(ds.x.max()) <= 1.0
    assert torch.bincount(ds.labels["class"]).tolist() == [2] * 10
    z = resnet_preprocess(ds.x)
    assert float(z.min()) < -1.0  # ImageNet mean/std normalisation was applied
    small = load_dataset("imagefolder", split="test", data_root=image_folder, n=5)
    assert len(small) == 5


def test_image_folder_missing(tmp_path):
    with pytest.raises(DataError, match="val"):
        (tmp_path / "train").mkdir()
        load_image_folder(tmp_path, "test")


def test_cli_stats_json(cli):
    r = cli("data", "stats", "colored-mnist", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    colours = out["counts"]["colour"]
    assert len(colours) == 7 and max(colours.values()) - min(colours.values()) <= 1
    assert out["images"] == 4000


def test_cli_show_writes_png(cli, tmp_path):
    r = cli("data", "show", "noisy", "--n", "14", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "noisy-train.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_missing_data_root_is_one_line(cli, tmp_path):
    r = cli("data", "stats", "mnist", "--data-root", tmp_path / "nowhere")
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "MNIST/raw" in r.stderr


def test_cli_bad_arguments_refused(cli):
    for args in (("data", "stats", "cifar"), ("data", "show", "path", "--n", "0")):
        r = cli(*args)
        assert r.returncode == 2 and "Traceback" not in r.stderr


def test_cli_full_mnist(cli, mnist_root):
    r = cli("data", "stats", "colored-mnist", "--data-root", mnist_root, "--split", "test", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["images"] == 20


def test_shapes_are_generated_at_any_size_deterministically():
    from obfaudit.data import load_dataset

    a = load_dataset("shapes", split="train", n=50, size=48, seed=3)
    b = load_dataset("shapes", split="train", n=50, size=48, seed=3)
    assert a.x.shape == (50, 3, 48, 48) and torch.equal(a.x, b.x)
    assert set(a.labels) == {"shape", "hue", "background", "random"}
    test = load_dataset("shapes", split="test", n=50, size=48, seed=3)
    assert not torch.equal(a.x, test.x)  # the splits come from their own streams
    big = load_dataset("shapes", split="test", size=128)
    assert big.x.shape == (500, 3, 128, 128) and min(big.counts()["background"].values()) > 200
    # the background is what it says: dark images are darker
    dark = big.labels["background"] == 0
    assert big.x[dark].mean() < 0.3 < 0.6 < big.x[~dark].mean()


def test_the_random_attribute_is_never_compromised_and_the_background_always_is(tmp_path, cli):
    """Through the identity, a probe reads a plain background; nothing reads the random label."""
    import json

    common = ["--transform", "identity", "--data", "shapes", "--size", "32", "--attack", "linprobe",
              "--n-train", "400", "--n-test", "200", "--no-controls", "--json"]  # fmt: skip
    r = cli("audit", *common, "--attribute", "background", "--out", tmp_path / "bg")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["verdict"] == "compromised"
    r = cli("audit", *common, "--attribute", "random", "--out", tmp_path / "rnd")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["verdict"] != "compromised"


def test_photo_crops_are_natural_images_with_balanced_attributes_and_held_out_test_pixels():
    from obfaudit.data import load_dataset
    from obfaudit.data.photos import PHOTOS, TEST_SHARE, photograph

    a = load_dataset("photos", split="train", n=80, size=32, seed=1)
    b = load_dataset("photos", split="train", n=80, size=32, seed=1)
    assert a.x.shape == (80, 3, 32, 32) and torch.equal(a.x, b.x) and 0 <= a.x.min() and a.x.max() <= 1
    assert set(a.labels) == {"scene", "brightness", "warmth", "random"}
    assert a.classes["scene"][:2] == ("astronaut", "chelsea") and len(a.classes["scene"]) == len(PHOTOS)
    for attribute in ("brightness", "warmth"):  # a median split of the crops: balanced by construction
        assert a.labels[attribute].bincount().tolist() == [40, 40]
    light = a.labels["brightness"] == 1
    assert a.x[light].mean() > a.x[~light].mean() + 0.1
    warm = a.labels["warmth"] == 1
    assert (a.x[warm, 0] - a.x[warm, 2]).mean() > (a.x[~warm, 0] - a.x[~warm, 2]).mean()
    assert photograph(PHOTOS[0]).shape == (3, 512, 512) and 0 < TEST_SHARE < 0.5


def test_photo_test_crops_come_from_the_part_of_each_photograph_training_never_sees():
    from obfaudit.data.photos import PHOTOS, TEST_SHARE, _box, _photograph_for

    g = torch.Generator().manual_seed(0)
    for name in PHOTOS:
        _, h, w = _photograph_for(name, 64).shape
        edge = int(w * (1 - TEST_SHARE))
        for _ in range(50):
            top, left, side = _box(h, w, "train", g)
            assert 0 <= left and left + side <= edge and top + side <= h
            top, left, side = _box(h, w, "test", g)
            assert edge <= left and left + side <= w and top + side <= h


def test_an_audit_of_photo_crops_reads_their_warmth_and_never_their_random_label(tmp_path, cli):
    import json

    common = ["--transform", "identity", "--data", "photos", "--size", "32", "--attack", "linprobe",
              "--n-train", "400", "--n-test", "200", "--no-controls", "--json"]  # fmt: skip
    r = cli("audit", *common, "--attribute", "warmth", "--out", tmp_path / "warm")
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout)
    assert report["verdict"] == "compromised" and report["baselines"]["classes"] == ["cool", "warm"]
    r = cli("audit", *common, "--attribute", "random", "--out", tmp_path / "rnd")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["verdict"] != "compromised"
