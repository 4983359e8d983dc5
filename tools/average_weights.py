"""Average trained weights of one architecture (a model soup) and score the result on the held-out faces.

    python tools/average_weights.py han_pff runs/zoo_han_pff_finetune/last.pt --out runs/zoo_han_pff_soup/best.pt \
        [--data ../shared/data/ferplus --holdout 0.1 --seed 0]

Sources are checkpoints or shipped model ids. Batch-norm statistics are recomputed on the training
faces outside the held-out slice; the held-out accuracy printed is the one ``fer-edge train --holdout``
reports per epoch, so the soup is compared with the runs it came from on the same faces
(:mod:`fer_edge.training.averaging`).
"""

import argparse
import os

from fer_edge.training.averaging import average_checkpoints

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="+", help="checkpoints or shipped model ids")
    parser.add_argument("--out", required=True)
    parser.add_argument("--data", default=os.environ.get("FER_EDGE_FERPLUS", "../shared/data/ferplus"))
    parser.add_argument("--holdout", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    metrics = average_checkpoints(args.sources, args.out, args.data, args.holdout, args.seed)
    print(f"{args.out}: held-out accuracy {metrics['val_accuracy']:.4f} (macro F1 {metrics['val_macro_f1']:.4f}, "
          f"{metrics['val_images']} faces)")
