"""``fer-edge train``: train a zoo model on a dataset folder; the same command runs under torchrun."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model id (see `fer-edge models`)")
    parser.add_argument("--variant", default="edge", choices=["edge", "paper"])
    parser.add_argument("--data", required=True, help="dataset root, split folder or csv")
    parser.add_argument("--val-data", help="validation data (default: the validation split beside --data)")
    parser.add_argument("--teacher", action="append", default=[], metavar="MODEL",
                        help="distil from this trained model (package, checkpoint or id; repeat for an ensemble)")
    parser.add_argument("--teacher-weight", type=float, default=0.5,
                        help="share of the teachers' probabilities in the targets (the rest: the data's labels)")
    parser.add_argument("--teacher-once", action="store_true",
                        help="score each training face once (clean and mirrored) before training, not every "
                             "augmented batch: several times cheaper with an ensemble of teachers")
    parser.add_argument("--init", metavar="MODEL",
                        help="fine-tune: start from these trained weights (a shipped model id or a checkpoint)")
    parser.add_argument("--holdout", type=float, default=0.0,
                        help="choose checkpoints on this fraction held out of the training split (e.g. 0.1), "
                             "keeping the validation split for final numbers only")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, help="peak learning rate (default: the recipe's)")
    parser.add_argument("--in-size", type=int, help="square input size (default: the variant's)")
    parser.add_argument("--num-classes", type=int, default=7, choices=[7, 8])
    parser.add_argument("--recipe", default="paper", choices=["paper", "fast"],
                        help="paper: the model's published recipe; fast: AdamW + one-cycle for CPU training")
    parser.add_argument("--soft-labels", action="store_true", help="train on FER+ vote distributions")
    parser.add_argument("--balanced", action="store_true", help="class-balanced sampling")
    parser.add_argument("--mixup", type=float, default=0.0, metavar="ALPHA",
                        help="blend each batch with itself shuffled, weight ~ Beta(ALPHA, ALPHA) (e.g. 0.2; 0 = off)")
    parser.add_argument("--out", default="runs/train", help="run folder (best.pt, last.pt, log.jsonl)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt if it exists")
    parser.add_argument("--stop-after", type=int, help="train at most N epochs in this session (resume later)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch intra-op threads")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--amp", default="auto", choices=["auto", "bf16", "off"],
                        help="bf16 autocast (auto: on GPUs that support it)")
    parser.add_argument("--limit", type=int, help="use only the first N training images")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from fer_edge.training.train import TrainConfig, train

    cfg = TrainConfig(model=args.model, data=args.data, variant=args.variant, val_data=args.val_data,
                      epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, in_size=args.in_size,
                      num_classes=args.num_classes, recipe=args.recipe, soft_labels=args.soft_labels,
                      balanced=args.balanced, out=args.out, resume=args.resume, seed=args.seed,
                      threads=args.threads, workers=args.workers, amp=args.amp, limit=args.limit,
                      stop_after=args.stop_after, progress=not args.no_progress,
                      holdout=args.holdout, teacher=args.teacher, teacher_weight=args.teacher_weight,
                      teacher_once=args.teacher_once, init=args.init, mixup=args.mixup)
    train(cfg)
    print(f"checkpoints in {args.out}: best.pt (best validation accuracy), last.pt (resume with --resume)")
    print(f"next: fer-edge eval --model {args.out}/best.pt --data {args.val_data or args.data}")
    return 0
