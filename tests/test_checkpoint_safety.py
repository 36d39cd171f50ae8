"""Checkpoints survive a hard kill during their save, and find_last() sees only whole files.

CheckpointSaver writes each checkpoint under a temporary name beside its destination and
renames it into place once complete (mrcnn.weights_io.save_weights). Here a subprocess
(this file is also its script) writes checkpoints one epoch after another, each save
slowed down, and is killed with SIGKILL in the middle of a save; every checkpoint that
find_last() can see must then load and hold the weights of its epoch, and the next
subprocess resumes after find_last()'s epoch, as a resumed training would.
"""
import glob
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import keras  # noqa: E402

import mrcnn.model as modellib  # noqa: E402
from mrcnn import training, weights_io  # noqa: E402

from conftest import TinyConfig  # noqa: E402

RUN = "tiny20260101T0000"          # a run directory of TinyConfig (NAME "tiny")
TEMPLATE = "mask_rcnn_tiny_{epoch:04d}.h5"
SLOW_DATASET_S = 0.02              # the writer sleeps this long after each array it writes
KILLS = 3
CHILD_TIMEOUT_S = 120


def small_model():
    """Eight dense layers: 16 arrays per checkpoint, so a slowed save takes >= 0.3 s."""
    inputs = keras.Input((32,))
    x = inputs
    for index in range(8):
        x = keras.layers.Dense(32, name=f"dense_{index}")(x)
    return keras.Model(inputs, x)


def set_weights_to(model, value):
    model.set_weights([np.full(w.shape, value, np.float32) for w in model.get_weights()])


def _write_forever(run_dir, first_epoch):
    """The subprocess: save epochs first_epoch, first_epoch + 1, ... with every weight
    equal to its epoch number, printing "saving N" just before each save."""
    import h5py

    create = h5py.Group.create_dataset

    def slow_create(self, *args, **kwargs):
        result = create(self, *args, **kwargs)
        time.sleep(SLOW_DATASET_S)
        return result

    h5py.Group.create_dataset = slow_create
    model = small_model()
    saver = training.CheckpointSaver(os.path.join(run_dir, TEMPLATE), guard=None)
    saver.set_model(model)
    epoch = first_epoch
    while True:
        set_weights_to(model, float(epoch))
        print(f"saving {epoch}", flush=True)
        saver.on_epoch_end(epoch - 1)                # Keras' epochs are 0-based
        epoch += 1


def _visible_checkpoints(run_dir):
    """What find_last() looks at: the run directory's mask_rcnn*.h5 files."""
    return sorted(glob.glob(os.path.join(run_dir, "mask_rcnn*.h5")))


def _epoch_of(path):
    return int(os.path.basename(path)[-7:-3])


def _assert_whole(path, model):
    """The file loads into `model` and every weight equals the file's epoch."""
    epoch = _epoch_of(path)
    report = weights_io.load_weights(model, path)
    assert not report["missing"], (path, report)
    for weight in model.get_weights():
        np.testing.assert_array_equal(weight, float(epoch), err_msg=path)




def _kill_during_a_save(run_dir, first_epoch, saves, delay_s):
    """Start a writer at `first_epoch`, SIGKILL it `delay_s` into its `saves`-th save.

    Returns the epoch whose save was interrupted."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(HERE), env.get("PYTHONPATH", "")])
    child = subprocess.Popen([sys.executable, os.path.abspath(__file__), run_dir,
                              str(first_epoch)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        for _ in range(saves):
            line = child.stdout.readline()
            assert line.startswith("saving"), line
        try:
            child.wait(timeout=delay_s)
        except subprocess.TimeoutExpired:
            pass
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=CHILD_TIMEOUT_S)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL, "the writer ended before it was killed"
    return int(line.split()[1])


@pytest.mark.slow
def test_sigkill_during_saves_leaves_only_loadable_checkpoints(tmp_path):
    rng = np.random.default_rng(0)
    model_dir = str(tmp_path)
    run_dir = os.path.join(model_dir, RUN)
    os.makedirs(run_dir)
    finder = modellib.MaskRCNN("inference", TinyConfig(), model_dir)
    reader = small_model()
    for kill in range(1, KILLS + 1):
        first = _epoch_of(finder.find_last()) + 1 if _visible_checkpoints(run_dir) else 1
        # A save takes >= 16 x SLOW_DATASET_S = 0.32 s: the kill lands inside it.
        interrupted = _kill_during_a_save(run_dir, first, saves=1 + int(rng.integers(0, 3)),
                                          delay_s=float(rng.uniform(0.05, 0.25)))
        files = sorted(os.listdir(run_dir))
        # The interrupted epoch left only a temporary file; one per kill so far.
        assert TEMPLATE.format(epoch=interrupted) not in files
        assert len([name for name in files if name.endswith(".tmp")]) == kill, files
        # Every checkpoint find_last() can see is whole: epochs 1 .. interrupted - 1.
        visible = _visible_checkpoints(run_dir)
        assert [_epoch_of(path) for path in visible] == list(range(1, interrupted))
        for path in visible:
            _assert_whole(path, reader)
        if visible:
            assert finder.find_last() == visible[-1]


def test_find_last_ignores_a_newer_temporary_file_of_the_saver(tmp_path, monkeypatch):
    model_dir = str(tmp_path)
    run_dir = os.path.join(model_dir, RUN)
    model = small_model()
    saver = training.CheckpointSaver(os.path.join(run_dir, TEMPLATE), guard=None)
    saver.set_model(model)
    set_weights_to(model, 1.0)
    saver.on_epoch_end(0)
    good = os.path.join(run_dir, TEMPLATE.format(epoch=1))
    # Epoch 2's save stops after writing its temporary file and before renaming it: the
    # state a kill at that moment leaves.
    renames = []
    monkeypatch.setattr(weights_io.os, "replace", lambda src, dst: renames.append((src, dst)))
    set_weights_to(model, 2.0)
    saver.on_epoch_end(1)
    monkeypatch.undo()
    (temporary, destination), = renames
    assert os.path.dirname(temporary) == run_dir and os.path.exists(temporary)
    assert destination == os.path.join(run_dir, TEMPLATE.format(epoch=2))
    os.utime(temporary, (os.path.getmtime(good) + 60,) * 2)      # newer than epoch 1
    finder = modellib.MaskRCNN("inference", TinyConfig(), model_dir)
    assert finder.find_last() == good
    _assert_whole(good, small_model())


if __name__ == "__main__":
    _write_forever(sys.argv[1], int(sys.argv[2]))
