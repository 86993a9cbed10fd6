"""``spamq train``: fine-tune the spam classifier and write a verified model directory.

Nothing heavy is imported here: torch, transformers and the pipeline are loaded by
:func:`run` (and :func:`train`) only, so ``spamq --help`` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from spamq.training.config import TrainConfig
from spamq.training.io import add_io_arguments, data_ref, prepare_args, publish_from_args


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {n}")
    return n


def _share(value: str) -> float:
    x = float(value)
    if not 0.0 <= x < 1.0:
        raise argparse.ArgumentTypeError(f"a share in [0, 1), not {value}")
    return x


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``spamq train`` flags. Defaults of None mean "from Settings / per-mode default"."""
    parser.add_argument("--data", type=data_ref, default=None,
                        help="SMS Spam Collection TSV (default: Settings().data_path)")
    parser.add_argument("--out", type=Path, default=None,
                        help="model directory to write (default: Settings().model_dir)")
    parser.add_argument("--from-scratch", action="store_true",
                        help="tiny randomly initialised DistilBERT (dim 64, 2 layers), for tests")
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs; the best one on validation is kept (default 3)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default 16 (pretrained) / 32 (from scratch)")
    parser.add_argument("--lr", type=float, default=None,
                        help="AdamW peak learning rate; default 8e-5 (pretrained) / 2e-3 (scratch)")
    parser.add_argument("--seed", type=int, default=13, help="split, augmentation and init seed")
    parser.add_argument("--runs", type=_positive, default=1,
                        help="fine-tunes from the same start (data order and dropout seeds "
                             "seed, seed+1, ...); with 2 or more, their weight averages (model "
                             "soups) compete too; the best on validation is kept (default 1)")
    parser.add_argument("--max-train-length", type=int, default=128,
                        help="truncation while training (evaluation uses Settings().max_length)")
    parser.add_argument("--augment-factor", type=int, default=4,
                        help="augmented copies per training spam message (0..8); default 4, "
                             "chosen in issue 13 round 5 over 2 on UCI validation F1 (README)")
    parser.add_argument("--class-weights", action="store_true",
                        help="also weight the loss by inverse class frequency")
    parser.add_argument("--limit", type=int, default=None,
                        help="use only N distinct messages (stratified sample), for tests")
    parser.add_argument("--supplement-per-category", type=int, default=100,
                        help="modern A2P ham / smishing rows generated per category "
                             "(spamq/training/supplement.py; 0 for none)")
    parser.add_argument("--supplement-split", choices=("template", "row"), default="template",
                        help="how the supplement is split into training and validation: by "
                             "template (default: validation holds phrasings never trained "
                             "on) or by row")
    parser.add_argument("--supplement-weight", type=float, default=None,
                        help="loss weight of each generated and hand-written modern training "
                             "row, a UCI row weighing 1 (default: TrainConfig's)")
    parser.add_argument("--written", action=argparse.BooleanOptionalAction, default=True,
                        help="add the hand-written modern rows: data/modern/train.tsv to "
                             "training, data/modern/validation.tsv to validation (default on)")
    parser.add_argument("--top-layers", type=_positive, default=4,
                        help="transformer layers fine-tuned (the top ones; the rest are frozen "
                             "and their output cached once); default 4, chosen on the separately "
                             "written data/modern/dev.tsv over 2 and 6 (validation could not "
                             "tell them apart; data/modern/DATA_CARD.md)")
    parser.add_argument("--full-finetune", action="store_true",
                        help="fine-tune every layer (slow on CPU) instead of the default: "
                             "frozen lower layers cached once, last layer and head trained")
    parser.add_argument("--feedback", default=None, metavar="tenants=ID,ID | PATH",
                        help="also learn from this feedback, and only this: the keys named "
                             "(tenants=<key id>,... under the store's feedback root) or a path "
                             "of partitions (local directory, hdfs://, or a store path: a "
                             "feedback root or one tenant=<key id> directory). Default: none")
    parser.add_argument("--feedback-holdout", type=_share, default=0.2,
                        help="the newest share of the feedback (by received_at) evaluated, never "
                             "trained on (default 0.2)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    add_io_arguments(parser)  # --publish, --alias


def train(config: TrainConfig | None = None, /, **kwargs: Any) -> dict[str, Any]:
    """In-process entry point; see :func:`spamq.training.pipeline.train`."""
    from spamq.training import pipeline

    return pipeline.train(config, **kwargs)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The training ``spamq train``'s flags ask for."""
    return TrainConfig(
        data_path=args.data, out_dir=args.out, from_scratch=args.from_scratch,
        full_finetune=args.full_finetune, top_layers=args.top_layers, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, class_weights=args.class_weights,
        seed=args.seed, runs=args.runs, limit=args.limit,
        max_train_length=args.max_train_length, augment_factor=args.augment_factor,
        supplement_per_category=args.supplement_per_category,
        supplement_split=args.supplement_split, written=args.written, threads=args.threads,
        progress=not args.no_progress,
        **({} if args.supplement_weight is None
           else {"supplement_weight": args.supplement_weight}))


def _modern_line(metrics: dict) -> str:
    m, c = metrics.get("modern"), metrics.get("calibration")
    if not m or not c:
        return ""
    worst = max((v["value"] for v in m["categories"].values() if v["metric"] == "fpr"),
                default=0.0)
    return (f"modern set: ham FPR {m['ham_fpr']:.3f} (worst category {worst:.3f}), smishing "
            f"recall {m['spam_recall']:.3f}; temperature {c['temperature']:.3f}, validation "
            f"ECE {c['validation_ece']['uncalibrated']:.4f} -> "
            f"{c['validation_ece']['temperature']:.4f}\n")


def _sources_table(metrics: dict) -> str:
    from spamq.training.evaluation import sources_table

    return sources_table(metrics["sources"]) + "\n" if metrics.get("sources") else ""


def run(args: argparse.Namespace) -> int:
    from spamq.training import pipeline

    prepare_args(args)  # hdfs:// data staged locally; flag checks
    fb_source, fb_split = None, None
    if args.feedback:
        from spamq.settings import get_settings
        from spamq.training.feedback import load_split

        try:
            fb_source, fb_split = load_split(args.feedback, get_settings(),
                                             holdout=args.feedback_holdout)
        except ValueError as exc:
            raise SystemExit(f"--feedback: {exc}") from exc
        st = fb_split.stats
        print(f"feedback {fb_source.spec} (keys {', '.join(fb_source.tenants)}): "
              f"{st['rows_read']} read, {st['excluded']} excluded, training "
              f"{st['train']['total']}, held out {st['holdout']['total']} (from "
              f"{fb_split.cutoff.isoformat() if fb_split.cutoff else '-'}), "
              f"{st['near_duplicates_dropped_from_training']} near-duplicates kept out")
    metrics = pipeline.train(config_from_args(args), feedback=fb_split,
                             feedback_source=fb_source)
    b = metrics["baseline"]
    ci, b_ci = metrics["spam_f1_ci95"], b["spam_f1_ci95"]
    print(
        f"test spam F1 {metrics['spam_f1']:.4f} (95% bootstrap {ci[0]:.3f}-{ci[1]:.3f}; "
        f"P {metrics['spam_precision']:.4f}, R {metrics['spam_recall']:.4f}, "
        f"MCC {metrics['mcc']:.4f}, threshold {metrics['threshold']:.4f}); "
        f"baseline F1 {b['spam_f1']:.4f} ({b_ci[0]:.3f}-{b_ci[1]:.3f})\n"
        f"{_modern_line(metrics)}"
        f"{_sources_table(metrics)}"
        f"training {metrics['training_time_s']:.1f} s (total {metrics['total_time_s']:.1f} s); "
        f"model {metrics['out_dir']} version {metrics['version']}"
    )
    publish_from_args(args, metrics)
    return 0
