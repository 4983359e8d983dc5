"""Turn a training checkpoint into a shipped torch package: ``python tools/ship_weights.py SRC.pt DST.pt``.

Thin wrapper over :func:`fer_edge.training.checkpoint.release_checkpoint` for
``tools/make_zoo_models.sh``.
"""

import sys

from fer_edge.training.checkpoint import release_checkpoint

if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    package = release_checkpoint(sys.argv[1], sys.argv[2])
    print(f"wrote {package.model_path} ({package.model_path.stat().st_size / 1e6:.1f} MB) + {package.sidecar_path.name}")
