"""The best checkpoint, early stopping, and pruning of old epoch checkpoints.

A run directory holds one checkpoint per epoch, `mask_rcnn_{name}_{epoch:04d}.h5`
(training.CheckpointSaver; `MaskRCNN.find_last()` returns the newest). Three options of
`MaskRCNN.train()` act on them, through the callbacks of this module:

- `monitor="val_loss"` (or "val_mAP" with a `MeanAveragePrecisionCallback` among the
  custom callbacks, or any other value of the epoch's logs) keeps the weights of the best
  epoch so far in `mask_rcnn_{name}_best.h5` beside the epoch files, written atomically
  like them (`BestCheckpoint`). The file records the monitored name, its value and the
  epoch, so a later `train()` stage in the same run directory keeps improving on the same
  best. `MaskRCNN.find_best()` returns it; `find_last()` still returns the newest epoch.
- `patience=N` stops training after N epochs in a row without a new best.
- `keep_last=N` deletes epoch checkpoints of the run directory beyond the N newest
  (`KeepLastCheckpoints`); it never deletes the checkpoint just written nor the best one.

Loading the best file for inference or evaluation is `model.load_weights(model.find_best())`;
to resume training, load an epoch checkpoint, whose name carries the epoch to continue from.
"""
import glob
import logging
import math
import os
import re

import h5py
import keras
import numpy as np

from mrcnn import distribute, weights_io

BEST_NAME = "best"
"""What stands in the checkpoint template for the epoch number in the best file's name."""

_LOG = logging.getLogger(__name__)
_HIGHER_IS_BETTER = re.compile(r"(mAP|AP\d*|acc|accuracy|precision|recall|f1|iou)$",
                               re.IGNORECASE)


def best_checkpoint_path(path_template):
    """`.../mask_rcnn_{name}_{epoch:04d}.h5` -> `.../mask_rcnn_{name}_best.h5`."""
    if "{epoch:04d}" not in path_template:
        raise ValueError(f"checkpoint template {path_template!r} has no {{epoch:04d}} field")
    return path_template.replace("{epoch:04d}", BEST_NAME)


def epoch_checkpoints(path_template):
    """The epoch checkpoints on disk that `path_template` names, as sorted (epoch, path)."""
    directory, pattern = os.path.split(path_template)
    prefix, suffix = pattern.split("{epoch:04d}")
    regex = re.compile(re.escape(prefix) + r"(\d{4,})" + re.escape(suffix) + "$")
    found = []
    for path in glob.glob(os.path.join(glob.escape(directory), "*")):
        match = regex.match(os.path.basename(path))
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def is_best_checkpoint(path):
    """Whether `path` names a best checkpoint (`..._best.h5`)."""
    return os.path.basename(str(path)).endswith(f"_{BEST_NAME}.h5")


def find_best(model_dir, name):
    """Path of the best checkpoint of the newest run directory of `name` that has one.

    Raises:
        FileNotFoundError: no run directory of `name` under model_dir holds a best file.
    """
    name = (name or "mask_rcnn").lower()
    runs = sorted(d for d in glob.glob(os.path.join(glob.escape(model_dir), f"{name}*"))
                  if os.path.isdir(d))
    for run in reversed(runs):
        path = os.path.join(run, f"mask_rcnn_{name}_{BEST_NAME}.h5")
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"No best checkpoint (mask_rcnn_{name}_{BEST_NAME}.h5) in any run directory of "
        f"NAME {name!r} under {model_dir}; train with monitor=... to write one")


def monitor_direction(monitor, mode="auto"):
    """"max" or "min": "auto" maximises names ending in mAP, AP (AP50, ...), acc, accuracy,
    precision, recall, f1 or iou, and minimises everything else (losses)."""
    if mode in ("min", "max"):
        return mode
    if mode != "auto":
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    return "max" if _HIGHER_IS_BETTER.search(str(monitor)) else "min"


def read_best_record(path):
    """(monitor, value, epoch) stored in a best checkpoint, or None if it has none."""
    if not os.path.isfile(path):
        return None
    with h5py.File(path, "r") as f:
        if "best_monitor" not in f.attrs:
            return None
        monitor = f.attrs["best_monitor"]
        monitor = monitor.decode() if isinstance(monitor, bytes) else str(monitor)
        return monitor, float(f.attrs["best_value"]), int(f.attrs.get("epoch", 0))


class BestCheckpoint(keras.callbacks.Callback):
    """Keep the best epoch's weights by `monitor`; optionally stop after `patience` epochs
    without improvement.

    Place it after the callbacks that put the monitored value into the epoch's logs
    (`MeanAveragePrecisionCallback` for "val_mAP"); `MaskRCNN.train(monitor=...)` does.
    An epoch whose logs lack the value (an mAP computed every N epochs) counts neither
    as an improvement nor against the patience; a non-finite value is no improvement.

    Args:
        path: the best file, e.g. best_checkpoint_path(model.checkpoint_path).
        monitor: a key of the epoch's logs ("val_loss", "val_mrcnn_mask_loss", "val_mAP").
        mode: "auto" (see monitor_direction), "min" or "max".
        patience: None (never stop), or stop after this many epochs without a new best.
        min_delta: an improvement must beat the best by more than this.
        guard: training.NonFiniteGuard; no best is written once it tripped.
        attributes: extra root attributes for the file (e.g. {"config": config JSON}).
        verbose: print each new best.
    Attributes:
        best, best_epoch: the best value and its 1-based epoch (None before any).
        stopped_epoch: the 1-based epoch after which it stopped training, or None.
        saved: paths written, one per new best.
    """

    def __init__(self, path, monitor="val_loss", mode="auto", patience=None, min_delta=0.0,
                 guard=None, attributes=None, verbose=1):
        super().__init__()
        if patience is not None and (int(patience) != patience or patience < 1):
            raise ValueError(f"patience must be None or an integer >= 1, got {patience!r}")
        self.path = path
        self.monitor = str(monitor)
        self.mode = monitor_direction(monitor, mode)
        self.patience = None if patience is None else int(patience)
        self.min_delta = abs(float(min_delta))
        self.guard = guard
        self.attributes = dict(attributes or {})
        self.verbose = verbose
        self.best = None
        self.best_epoch = None
        self.stopped_epoch = None
        self.wait = 0
        self.saved = []
        self._warned = False

    def improves(self, value):
        """Whether `value` is a new best."""
        if value is None or not math.isfinite(value):
            return False
        if self.best is None:
            return True
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = None
        record = read_best_record(self.path)
        if record is not None and record[0] == self.monitor and self.best is None:
            self.best, self.best_epoch = record[1], record[2]

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            self._warn_missing(logs)
            return
        value = float(np.asarray(value).reshape(-1)[0])
        if self.guard is not None:
            self.guard.check()
            if self.guard.tripped:
                return
        if self.improves(value) and self._save(epoch + 1, value):
            self.wait = 0
            return
        self.wait += 1
        if self.patience is not None and self.wait >= self.patience:
            self.stopped_epoch = epoch + 1
            self.model.stop_training = True
            if self.verbose:
                print(f"\nEpoch {epoch + 1}: no better {self.monitor} than {self.best:.5g} "
                      f"(epoch {self.best_epoch}) for {self.wait} epochs; stopping")

    def _save(self, epoch, value):
        """Record a new best and write it (the chief only); False if the weights are not
        finite, so the epoch is no best."""
        if not weights_io.all_finite(self.model):
            print(f"Not saving the best checkpoint of epoch {epoch}: the weights are not "
                  f"finite")
            return False
        self.best, self.best_epoch = value, epoch
        if not distribute.is_chief():
            return True
        attributes = dict(self.attributes)
        attributes.update({"epoch": epoch, "best_monitor": self.monitor,
                           "best_value": value})
        weights_io.save_weights(self.model, self.path, attributes=attributes)
        self.saved.append(self.path)
        if self.verbose:
            print(f"\nEpoch {epoch}: best {self.monitor} = {value:.5g}, saved {self.path}")
        return True

    def _warn_missing(self, logs):
        if self._warned:
            return
        self._warned = True
        hint = (" (val_mAP needs a MeanAveragePrecisionCallback among the custom callbacks)"
                if "mAP" in self.monitor else "")
        _LOG.warning("BestCheckpoint: %r is not in the epoch's logs%s; logs have %s",
                     self.monitor, hint, sorted(logs or {}))


class KeepLastCheckpoints(keras.callbacks.Callback):
    """After each epoch, delete the run's epoch checkpoints beyond the `keep_last` newest.

    "Newest" is by epoch number; the checkpoint the saver wrote last is kept in any case
    (a run resumed from an early epoch may sit beside higher-numbered files of an older
    attempt), and the best file (`..._best.h5`) is not an epoch checkpoint, so it is never
    deleted. Runs after training.CheckpointSaver; only the chief deletes.

    Args:
        path_template: the saver's template, `.../mask_rcnn_{name}_{epoch:04d}.h5`.
        keep_last: epoch checkpoints to keep (>= 1).
        saver: training.CheckpointSaver of the run (its `saved` list), or None.
    Attributes:
        deleted: paths deleted so far.
    """

    def __init__(self, path_template, keep_last, saver=None):
        super().__init__()
        if isinstance(keep_last, bool) or int(keep_last) != keep_last or keep_last < 1:
            raise ValueError(f"keep_last must be an integer >= 1, got {keep_last!r}")
        best_checkpoint_path(path_template)             # checks the template
        self.path_template = path_template
        self.keep_last = int(keep_last)
        self.saver = saver
        self.deleted = []

    def stale(self):
        """Epoch checkpoints that may go: all but the keep_last newest and the last saved."""
        found = epoch_checkpoints(self.path_template)
        keep = {os.path.abspath(path) for _, path in found[-self.keep_last:]}
        if self.saver is not None and self.saver.saved:
            keep.add(os.path.abspath(self.saver.saved[-1]))
        return [path for _, path in found if os.path.abspath(path) not in keep]

    def on_epoch_end(self, epoch, logs=None):
        if not distribute.is_chief():
            return
        for path in self.stale():
            try:
                os.remove(path)
                self.deleted.append(path)
            except FileNotFoundError:
                pass
