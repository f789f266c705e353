"""Training data: synthetic images, an ImageFolder, or scikit-learn's handwritten digits; the sampler
that shards and shuffles them by seed, and the wrapper that seeds each image's augmentation."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from archspec.train.options import UsageError
from archspec.train.process import Context, sample_seed

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DIGITS = "digits"
SYNTHETIC = "synthetic"


class Synthetic(Dataset[tuple[torch.Tensor, int]]):
    """Random images with random labels, the same on every process (image i is seeded by i)."""

    def __init__(self, size: int, channels: int, hw: tuple[int, int], classes: int, seed: int) -> None:
        self.size, self.channels, self.hw, self.classes, self.seed = size, channels, hw, classes, seed

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        image = torch.randn(self.channels, *self.hw, generator=g)
        return image, int(torch.randint(self.classes, (1,), generator=g))


class Digits(Dataset[tuple[torch.Tensor, int]]):
    """scikit-learn's 1,797 8×8 handwritten digits (bundled with it: no download), 10 classes.

    Every fifth image (index 0, 5, 10, …) is the validation part, the rest the training part. An
    image is scaled from 0…16 to 0…255, made ``channels`` deep (grey, or grey repeated as RGB),
    resized to ``hw`` with PIL's bilinear filter and normalised as ImageNet's images are (RGB) or to
    mean 0.5, std 0.5 per channel otherwise.
    """

    classes = [str(i) for i in range(10)]
    class_to_idx = {c: i for i, c in enumerate(classes)}

    def __init__(self, part: str, channels: int, hw: tuple[int, int]) -> None:
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise UsageError("--data digits needs scikit-learn (pip install 'archspec[train]')") from None
        digits = load_digits()
        keep = [i for i in range(len(digits.target)) if (i % 5 == 0) == (part == "val")]
        self.images = [digits.images[i] for i in keep]
        self.targets = [int(digits.target[i]) for i in keep]
        self.channels, self.hw = channels, hw
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.5,) * channels, (0.5,) * channels)
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        import numpy as np
        from PIL import Image

        grey = Image.fromarray((self.images[i] * 255 / 16).round().astype(np.uint8))
        image = grey.convert("RGB") if self.channels == 3 else grey
        image = image.resize((self.hw[1], self.hw[0]), Image.Resampling.BILINEAR)
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255)
        pixels = pixels.permute(2, 0, 1) if pixels.dim() == 3 else pixels[None].expand(self.channels, -1, -1)
        return (pixels - self.mean) / self.std, self.targets[i]


class Seeded(Dataset[Any]):
    """Takes (epoch, index) from the sampler and draws the image's random augmentation from a
    generator seeded by (seed, epoch, index); the process's own random state is left as it was."""

    def __init__(self, data: Dataset[Any], seed: int) -> None:
        self.data, self.seed = data, seed

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        python = random.getstate()
        with torch.random.fork_rng(devices=[]):
            s = sample_seed(self.seed, epoch, index)
            torch.manual_seed(s)
            random.seed(s)
            try:
                return self.data[index]
            finally:
                random.setstate(python)


def image_folder(root: Path, hw: tuple[int, int], train: bool, augment: str) -> Any:
    from torchvision import datasets, transforms

    if not root.is_dir():
        raise UsageError(f"{root}: no such folder (expected an ImageFolder root: one sub-folder of images per class)")
    if train and augment == "imagenet":
        steps: list[Any] = [transforms.RandomResizedCrop(hw), transforms.RandomHorizontalFlip()]
    elif augment == "imagenet":  # the usual evaluation crop: the central 87.5 %
        steps = [transforms.Resize(tuple(round(s / 0.875) for s in hw)), transforms.CenterCrop(hw)]
    else:
        steps = [transforms.Resize(hw)]
    transform = transforms.Compose([*steps, transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    try:
        return datasets.ImageFolder(str(root), transform=transform)
    except (FileNotFoundError, RuntimeError) as e:
        raise UsageError(f"{root}: {e}") from None


def dataset(data: str, size: int, seed: int, augment: str, channels: int, hw: tuple[int, int], classes: int) -> Any:
    """The training set ``--data`` names; ``classes`` is the network's (synthetic labels are drawn below it)."""
    if data == SYNTHETIC:
        return Synthetic(size, channels, hw, classes, seed)
    if data == DIGITS:
        return Digits("train", channels, hw)
    return image_folder(Path(data), hw, True, augment)


def classes_of(data: Any) -> int | None:
    """How many classes a data set has (None: synthetic, whose labels follow the network)."""
    names = getattr(data, "classes", None)
    return len(names) if isinstance(names, list) else None


class Shard(Sampler[tuple[int, int]]):
    """This process's share of a seeded shuffle of the data, from a given batch on (to resume mid-epoch).

    Every process draws the same permutation for an epoch and takes every world-th image of it, so
    the shares are disjoint and of equal size (the remainder is dropped). Yields (epoch, index).
    """

    def __init__(self, size: int, rank: int, world: int, seed: int, batch_size: int) -> None:
        self.size, self.rank, self.world, self.seed, self.batch_size = size, rank, world, seed, batch_size
        self.per_process = size // world
        self.epoch = self.start = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start = epoch, start_batch * self.batch_size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        mine = order[self.rank :: self.world][: self.per_process]
        return iter([(self.epoch, i) for i in mine[self.start :]])

    def __len__(self) -> int:
        return self.per_process - self.start


def val_loader(
    val: str, train_name: str, options: Any, ctx: Context, shape: tuple[int, int, int], train_data: Any
) -> DataLoader[Any]:
    """Every validation image once, over all processes (``digits``: the held-out fifth)."""
    channels, hw = shape[0], (shape[1], shape[2])
    data = Digits("val", channels, hw) if val == DIGITS else image_folder(Path(val), hw, False, options.augment)
    train_classes = getattr(train_data, "class_to_idx", None)
    if train_classes is not None and data.class_to_idx != train_classes:
        raise UsageError(f"{val} and {train_name} have different classes: {sorted(data.class_to_idx)} vs {sorted(train_classes)}")
    mine = list(range(ctx.rank, len(data), ctx.world))
    return DataLoader(
        torch.utils.data.Subset(data, mine),
        batch_size=options.batch_size,
        num_workers=options.workers,
        pin_memory=ctx.device.type == "cuda",
        generator=torch.Generator(),
    )
