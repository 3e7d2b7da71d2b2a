"""Rank training sets: one model per set, same budget, PSNR gain over bicubic on each
evaluation set.

Each training set gets its own run folder (``OUT/<set name>``); a finished run there is
reused, an interrupted one resumed. The model's final weights are scored (no validation set
chooses among checkpoints, so no evaluation image leaks into training). The matrix has one
row per evaluation set and one column per training set.
"""
import copy
import os
import sys

import numpy as np

from visionfw.train import TrainError


def _label(path, taken):
    label = "embedded" if path == "embedded" else os.path.basename(os.path.normpath(path))
    if label == "HR":
        label = os.path.basename(os.path.dirname(os.path.normpath(path)))
    base, n = label, 2
    while label in taken:
        label, n = f"{base}-{n}", n + 1
    taken.add(label)
    return label


def rank_datasets(base, datasets, eval_datasets, json_path=None, threads=None, argv=None,
                  log=None, progress=True):
    """Train on each of ``datasets`` and score on each of ``eval_datasets``.

    Args:
        base: a :class:`~visionfw.train.config.TrainConfig` with the shared settings;
            ``base.out`` is the parent folder of the runs.
        datasets: training image folders (``'embedded'``: scikit-image's photographs).
        eval_datasets: evaluation folders (benchmark folders with ``HR/`` are accepted).

    Returns the report dict (also written to ``json_path`` when given).
    """
    from visionfw.train.distribute import start
    from visionfw.train.config import RUN_DEFINING, prepare_run_folder, read_settings, write_json
    from visionfw.train.run import (build_trainer, image_folder, preflight, resolve_recipe,
                                    resolve_model_and_scale)
    from visionfw.train.validate import ValidationSet, validation_images

    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    base = copy.deepcopy(base)
    base.check()
    model = resolve_model_and_scale(base)
    preflight(base)
    resolve_recipe(base, model)
    taken = set()
    train_labels = [_label(d, taken) for d in datasets]
    taken = set()
    eval_labels = [_label(d, taken) for d in eval_datasets]
    for folder in eval_datasets:
        if not os.path.isdir(folder):
            raise TrainError(f"--eval-dataset {folder}: no such folder")
    runs = []
    for label, folder in zip(train_labels, datasets):
        if folder != "embedded" and not os.path.isdir(folder):
            raise TrainError(f"--dataset {folder}: no such folder")
        out = os.path.join(base.out, label)
        finished = os.path.isfile(os.path.join(out, "last.weights.h5"))
        resume = os.path.isfile(os.path.join(out, "checkpoints", "checkpoint"))
        saved = read_settings(out) if (finished or resume) else None
        if saved is not None:
            wanted = dict(base.to_dict(), train_dirs=[] if folder == "embedded" else [folder])
            differ = [k for k in RUN_DEFINING if saved["settings"].get(k) != wanted.get(k)]
            if differ:
                raise TrainError(f"{out} holds a run with other settings ({', '.join(differ)}); "
                                 "remove it or choose another --out")
        if not finished:
            prepare_run_folder(out, resume)
        runs.append((label, folder, out, finished, resume))
    if json_path:
        folder = os.path.dirname(os.path.abspath(json_path))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise TrainError(f"--json {json_path}: folder {folder} is not writable")

    strategy = start(base.strategy, base.cpu_devices, threads)
    eval_sets = []
    for label, folder in zip(eval_labels, eval_datasets):
        images = validation_images([image_folder(folder)])     # as test.py reads them
        eval_sets.append(ValidationSet(images, base.scale, base.degradation, base.val_seed))

    psnr = np.zeros((len(eval_sets), len(runs)))
    for j, (label, folder, out, finished, resume) in enumerate(runs):
        config = copy.deepcopy(base)
        config.out = out
        config.train_dirs = [] if folder == "embedded" else [folder]
        trainer = build_trainer(config, model, log=log, progress=progress, validation=False,
                                strategy=strategy)
        if finished:
            from visionfw.checkpoint import load_weights

            load_weights(trainer.recipe.main_network(), os.path.join(out, "last.weights.h5"))
            log(f"{label}: reusing the finished run in {out}")
        else:
            write_json(os.path.join(out, "settings.json"),
                       {"argv": list(argv or sys.argv), "settings": config.to_dict()})
            log(f"{label}: training {config.steps} steps in {out}")
            result = trainer.fit(resume=resume)
            if result["stopped"]:
                raise TrainError(f"{label}: training stopped at step {result['step']} "
                                 f"({result['stopped']}); run again to resume")
            if trainer.ema_vars:
                trainer.swap_ema()
        for i, val in enumerate(eval_sets):
            psnr[i, j] = val.evaluate(trainer.predict_arrays,
                                       crop=trainer.recipe.score_crop)["psnr"]
    bicubic = np.array([v.bicubic_psnr for v in eval_sets])
    gain = psnr - bicubic[:, None]
    report = {
        "protocol": {"metric": "mean PSNR gain over bicubic (dB), test.py's protocol: Y "
                               "channel (grayscale images on their gray values), "
                               f"{base.scale}-pixel border", "scale": base.scale,
                     "model": model[1] or base.model, "hparams": model[2],
                     "steps": base.steps, "batch_size": base.batch_size,
                     "patch_size": base.patch_size, "lr": base.lr, "schedule": base.schedule,
                     "seed": base.seed, "degradation": base.degradation},
        "train_datasets": train_labels,
        "eval_datasets": eval_labels,
        "gain": gain.round(4).tolist(),
        "psnr": psnr.round(4).tolist(),
        "bicubic_psnr": bicubic.round(4).tolist(),
    }
    print(format_matrix(report))
    if json_path:
        write_json(json_path, report)
    return report


def format_matrix(report):
    """The gain matrix as a text table (rows: evaluation sets, columns: training sets)."""
    p = report["protocol"]
    cols = report["train_datasets"]
    width = max(9, *(len(c) + 1 for c in cols))
    first = max(14, *(len(r) + 1 for r in report["eval_datasets"]))
    lines = [f"PSNR gain over bicubic (dB): {p['model']} x{p['scale']}, {p['steps']} steps each, "
             f"batch {p['batch_size']}, patch {p['patch_size']}, seed {p['seed']}",
             "eval \\ train".ljust(first) + "".join(c.rjust(width) for c in cols)
             + "bicubic".rjust(width)]
    for name, row, bic in zip(report["eval_datasets"], report["gain"], report["bicubic_psnr"]):
        lines.append(name.ljust(first) + "".join(f"{g:+.3f}".rjust(width) for g in row)
                     + f"{bic:.3f}".rjust(width))
    return "\n".join(lines)
