"""Training throughput (images/s) of B0 and of a small recipe at base resolution 32: tinyscale's
trainer vs the naive PyTorch way, side by side in one run.

The naive way is what a first PyTorch script does: images kept encoded (PNG bytes, as files on
disk would be), a Dataset that decodes, converts to RGB, resizes and normalises each sample in
`__getitem__` (PIL + NumPy), a DataLoader collating NCHW float32 batches, an NCHW model.
Ours: uint8 tensors resized once per resolution, batched gather + normalise, channels-last model
(`tinyscale.train.trainer.train_recipe`), shown twice: with every layer an ordinary convolution
(`small_map_kernels=False`, the trainer before tinyscale/space/smallmap.py) and as it trains now, with
convolutions on small maps reformulated. Same network, optimizer, batch size, step count and
threads; the three are timed in turn, `--repeats` times, and the median of each is printed.

    .venv/bin/python benchmarks/bench_train.py [--steps 30] [--threads 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from tinyscale.data.datasets import load_data
from tinyscale.space.model import build_model
from tinyscale.space.recipe import Recipe
from tinyscale.train.config import TrainConfig
from tinyscale.train.trainer import train_recipe


class EncodedImages(torch.utils.data.Dataset):
    """The naive dataset: PNG bytes, decoded and transformed per sample."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, resolution: int, mean, std) -> None:
        self.blobs = []
        for img in images[:, 0].numpy():
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            self.blobs.append(buf.getvalue())
        self.labels = labels
        self.resolution = resolution
        self.mean = np.array(mean, dtype=np.float32).reshape(3, 1, 1)
        self.std = np.array(std, dtype=np.float32).reshape(3, 1, 1)

    def __len__(self) -> int:
        return len(self.blobs)

    def __getitem__(self, i: int):
        im = Image.open(io.BytesIO(self.blobs[i])).convert("RGB").resize((self.resolution,) * 2, Image.BILINEAR)
        x = np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / 255.0
        return torch.from_numpy((x - self.mean) / self.std), self.labels[i]


def naive_images_per_second(recipe: Recipe, data, steps: int, batch_size: int) -> float:
    torch.manual_seed(0)
    model = build_model(recipe, dropout=0.0, drop_path_rate=0.0)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-5)
    mean, std = data.mean_std()
    ds = EncodedImages(data.train_images, data.train_labels, recipe.resolution, mean, std)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=0)
    seen, t0 = 0, time.perf_counter()
    while seen < steps * batch_size:
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(y)
            if seen >= steps * batch_size:
                break
    return seen / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_data(args.data, train_size=args.steps * args.batch_size, val_size=256)
    if data.train_images.shape[1] != 1:
        raise SystemExit("the naive dataset here encodes grayscale images; use --data fashion-mnist")
    recipes = {
        "B0 (r=1, w=1, d=1)": Recipe(1.0, 1.0, 1.0, base_resolution=32, num_classes=data.num_classes),
        "small (r=0.75, w=0.5, d=0.5)": Recipe(0.75, 0.5, 0.5, base_resolution=32, num_classes=data.num_classes),
    }
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch_size}, {args.steps} steps, "
          f"data {args.data}, base resolution 32")
    print(f"{'recipe':<30} {'px':>3} {'naive img/s':>12} {'ours, convs':>12} {'ratio':>6} "
          f"{'ours img/s':>11} {'ratio':>6}")
    for name, recipe in recipes.items():
        cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, threads=args.threads, bn_calibration_images=0)
        runs: dict[str, list[float]] = {"naive": [], "convs": [], "ours": []}
        for _ in range(args.repeats):
            runs["naive"].append(naive_images_per_second(recipe, data, args.steps, args.batch_size))
            runs["convs"].append(train_recipe(recipe, data, cfg.with_(small_map_kernels=False), seed=0).images_per_second)
            runs["ours"].append(train_recipe(recipe, data, cfg, seed=0).images_per_second)
        naive, convs, ours = (float(np.median(runs[k])) for k in ("naive", "convs", "ours"))
        print(f"{name:<30} {recipe.resolution:>3} {naive:>12.0f} {convs:>12.0f} {convs / naive:>5.2f}x "
              f"{ours:>11.0f} {ours / naive:>5.2f}x", flush=True)


if __name__ == "__main__":
    main()
