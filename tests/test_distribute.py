"""Training on several replicas: strategies, input shards, loss shares, SyncBN, and a
MirroredStrategy / MultiWorkerMirroredStrategy step equal to a step on one device.

Runs that need several devices happen in subprocesses (this file is also their script):
TensorFlow fixes its devices when it starts, and the test process keeps one CPU device.
"""
import json
import os
import pickle
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from mrcnn import distribute, training  # noqa: E402
from mrcnn.config import LOSS_NAMES  # noqa: E402
from mrcnn.nn.batch_norm import (BatchNorm, synchronized_batch_norm,  # noqa: E402
                                 synchronized_moments)

from conftest import TinyConfig, shapes_dataset  # noqa: E402

MIRRORED_TIMEOUT_S = 360
WORKER_TIMEOUT_S = 300
# Replicas sum in another order than one device. From scratch, BatchNorm divides by
# small batch variances, so the last-bit differences grow to ~1e-4 in the losses and
# ~1e-4 in the weights over three steps (relative update error ~1e-2). Averaging the
# replicas' mean losses, or clipping each replica's gradient before the sum, is off by
# ~2e-2 in the losses and ~0.13 in the updates.
LOSS_RTOL = 5e-3           # measured: 3.0e-3
WEIGHT_TOL = 1e-3          # |difference| / (1 + |weight|); measured: 7.7e-4
UPDATE_TOL = 0.08          # || update difference || / || update ||; measured: 0.045 on a
                           # 2-core AVX-512 CPU (the same on the code of an earlier release,
                           # so a property of the CPU's kernels), against ~0.13 for either
                           # wrong reduction above


# --- Cluster, shards, strategies (in process) ---------------------------------------------

def _tf_config(cluster, task_type, index):
    return {"TF_CONFIG": json.dumps({"cluster": cluster,
                                     "task": {"type": task_type, "index": index}})}


def test_cluster_info_from_tf_config():
    assert distribute.cluster_info({}) == distribute.ClusterInfo(1, 0, True)
    workers = {"worker": ["a:1", "b:2", "c:3"]}
    second = distribute.cluster_info(_tf_config(workers, "worker", 1))
    assert (second.num_workers, second.worker_index, second.is_chief) == (3, 1, False)
    assert distribute.is_chief(_tf_config(workers, "worker", 0))
    with_chief = {"chief": ["a:1"], "worker": ["b:2", "c:3"]}
    chief = distribute.cluster_info(_tf_config(with_chief, "chief", 0))
    assert (chief.num_workers, chief.worker_index, chief.is_chief) == (3, 0, True)
    worker0 = distribute.cluster_info(_tf_config(with_chief, "worker", 0))
    assert (worker0.worker_index, worker0.is_chief) == (1, False)
    assert not distribute.is_chief(_tf_config(with_chief, "evaluator", 0))


def test_shards_are_disjoint_cover_every_id_and_balanced():
    ids = np.arange(11)
    shards = [distribute.shard_image_ids(ids, w, 3) for w in range(3)]
    assert [list(s) for s in shards] == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8]]
    assert sorted(np.concatenate(shards).tolist()) == ids.tolist()
    with pytest.raises(ValueError, match="worker_index"):
        distribute.shard_image_ids(ids, 3, 3)


def test_dataset_shard_lists_its_ids_and_loads_through_the_dataset():
    dataset = shapes_dataset(5, 64, seed=3)
    shard = distribute.DatasetShard(dataset, distribute.shard_image_ids(dataset.image_ids, 1, 2))
    assert shard.image_ids.tolist() == [1, 3] and shard.num_images == 2
    assert shard.num_classes == dataset.num_classes
    np.testing.assert_array_equal(shard.load_image(3), dataset.load_image(3))
    mask, class_ids = shard.load_mask(3)
    expected_mask, expected_ids = dataset.load_mask(3)
    np.testing.assert_array_equal(mask, expected_mask)
    np.testing.assert_array_equal(class_ids, expected_ids)
    copied = pickle.loads(pickle.dumps(shard))
    assert copied.image_ids.tolist() == [1, 3] and copied.num_classes == dataset.num_classes
    # Outside a multi-worker cluster every worker loads everything.
    assert distribute.worker_dataset(dataset) is dataset


def test_strategy_for_one_replica_and_a_clear_error_for_missing_devices():
    assert distribute.strategy_for(TinyConfig()) is tf.distribute.get_strategy()

    class Three(TinyConfig):
        GPU_COUNT = 3

    with pytest.raises(ValueError, match=r"GPU_COUNT is 3 .*split_cpu\(3\)"):
        distribute.strategy_for(Three())
    assert distribute.generator_batch_size(TinyConfig()) == TinyConfig().BATCH_SIZE


# --- Loss shares (in process) -------------------------------------------------------------

def _random_batch(rng, batch, anchors=12, rois=5, classes=3, mask=4):
    """Graph inputs and outputs of a batch, with differing positive counts per image."""
    match = rng.choice([-1, 0, 1], size=(batch, anchors, 1), p=[0.4, 0.3, 0.3])
    target_class_ids = rng.integers(0, classes, size=(batch, rois))
    active = np.ones((batch, classes), np.float32)
    active[0, 2] = 0.0   # image 0 comes from a source without class 2
    meta = np.concatenate([np.zeros((batch, 12), np.float32), active], axis=1)
    inputs = {
        "input_rpn_match": match.astype(np.int32),
        "input_rpn_bbox": rng.normal(size=(batch, 3, 4)).astype(np.float32),
        "input_image_meta": meta,
    }
    outputs = {
        "rpn_class_logits": rng.normal(size=(batch, anchors, 2)).astype(np.float32),
        "rpn_bbox": rng.normal(size=(batch, anchors, 4)).astype(np.float32),
        "target_class_ids": target_class_ids.astype(np.int32),
        "mrcnn_class_logits": rng.normal(size=(batch, rois, classes)).astype(np.float32),
        "target_bbox": rng.normal(size=(batch, rois, 4)).astype(np.float32),
        "mrcnn_bbox": rng.normal(size=(batch, rois, classes, 4)).astype(np.float32),
        "target_mask": rng.integers(0, 2, size=(batch, rois, mask, mask)).astype(np.float32),
        "mask_class_ids": target_class_ids.astype(np.int32),
        "mrcnn_mask": rng.uniform(0.01, 0.99, size=(batch, rois, mask, mask, classes))
        .astype(np.float32),
    }
    return inputs, outputs


def _rows(tensors, start, stop):
    return {name: value[start:stop] for name, value in tensors.items()}


def test_count_weighted_replica_losses_equal_the_loss_of_the_whole_batch():
    rng = np.random.default_rng(0)
    inputs, outputs = _random_batch(rng, batch=4)
    whole = {k: float(v) for k, v in training.compute_losses(inputs, outputs).items()}
    parts = [(training.compute_losses(_rows(inputs, a, b), _rows(outputs, a, b)),
              training.loss_counts(_rows(inputs, a, b), _rows(outputs, a, b)))
             for a, b in ((0, 1), (1, 4))]
    for name in LOSS_NAMES:
        counts = np.array([float(c[name]) for _, c in parts])
        values = np.array([float(l[name]) for l, _ in parts])
        assert counts.min() > 0, name
        np.testing.assert_allclose(np.sum(values * counts) / counts.sum(), whole[name],
                                   rtol=1e-5, err_msg=name)
    # The plain mean of the replicas' losses is not the batch loss here.
    name = "mrcnn_bbox_loss"
    plain = np.mean([float(l[name]) for l, _ in parts])
    assert abs(plain - whole[name]) > 1e-3


def test_one_replica_share_is_the_loss_itself():
    losses = {"a": tf.constant(2.5), "b": tf.constant(0.0)}
    shares = training.replica_loss_shares(losses, None)
    assert {k: float(v) for k, v in shares.items()} == {"a": 2.5, "b": 0.0}


# --- SyncBN switch (in process) ----------------------------------------------------------

def test_synchronized_moments_match_float64_moments_of_activations_with_a_large_mean():
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(6, 5, 5, 3)) * [1.0, 0.1, 2.0] + [3000.0, -50.0, 0.5])
    mean, variance = tf.function(
        lambda t: synchronized_moments(t, [0, 1, 2]))(tf.constant(x, tf.float32))
    np.testing.assert_allclose(mean.numpy(), x.mean((0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(variance.numpy(), x.var((0, 1, 2)), rtol=2e-3)


def test_synchronized_batch_norm_applies_inside_the_block_to_trained_bn_only():
    with synchronized_batch_norm(True):
        trained, frozen, forced = BatchNorm(None), BatchNorm(False), BatchNorm(True)
        explicit = BatchNorm(None, synchronized=False)
    outside = BatchNorm(None)
    with synchronized_batch_norm(False):
        disabled = BatchNorm(None)
    assert trained.synchronized and forced.synchronized
    assert not frozen.synchronized and not explicit.synchronized
    assert not outside.synchronized and not disabled.synchronized
    assert BatchNorm.from_config(trained.get_config()).synchronized


# --- Subprocess scenarios ------------------------------------------------------------------

def _run_helper(args, timeout, env=None):
    result = subprocess.run([sys.executable, os.path.abspath(__file__)] + args,
                            capture_output=True, text=True, timeout=timeout,
                            env=env or _child_env())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result


def _child_env(**extra):
    env = dict(os.environ)
    env.pop("TF_CONFIG", None)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    out = tmp_path_factory.mktemp("mirrored") / "result.json"
    _run_helper(["mirrored", str(out)], MIRRORED_TIMEOUT_S)
    return json.loads(out.read_text())


@pytest.mark.slow
def test_mirrored_step_equals_one_device_step_on_the_same_global_batch(mirrored):
    run = mirrored["equivalence"]
    assert run["replicas"] == 2 and run["batch"] == 4
    # Clipping was active: several gradients of the global batch were longer than the clip.
    assert run["clipped_tensors"] > 0                # 50 measured
    replicas, single = np.array(run["mirrored_steps"]), np.array(run["single_steps"])
    assert replicas.shape == single.shape == (3, len(LOSS_NAMES) + 2)
    assert np.all(np.isfinite(replicas))
    np.testing.assert_allclose(replicas, single, rtol=LOSS_RTOL, atol=1e-5)
    # Every trainable weight moved, and every weight (BN statistics included) moved the
    # same on replicas as on one device.
    assert run["weights_moved"] > 0.9 * run["weights_total"]     # 134 of 134 measured
    assert run["max_weight_difference"] < WEIGHT_TOL, run["max_weight_difference"]
    assert run["update_error"] < UPDATE_TOL, run["update_error"]


@pytest.mark.slow
def test_sync_bn_normalises_each_replica_with_the_global_batch_statistics(mirrored):
    run = mirrored["sync_bn"]
    assert run["replicas"] == 2
    assert run["sync_error"] < 1e-3                  # global statistics on every replica: 2.9e-5
    assert run["moving_variance_error"] < 1e-4       # 6.4e-8 measured
    assert run["unsync_error"] > 0.1                 # each replica's own statistics: 2.24
    # Keras' E[x^2] - E[x]^2 loses the variance of activations with a large mean (6.7e-3
    # measured, 230 times ours).
    assert run["keras_sync_error"] > 10 * run["sync_error"]


@pytest.mark.slow
def test_default_settings_train_on_two_replicas_with_falling_losses(mirrored):
    steps = np.array(mirrored["default"]["steps"])
    assert np.all(np.isfinite(steps))
    assert np.all(steps[:, -1] == 1.0)               # every gradient finite and applied
    first, last = steps[:3, 0].mean(), steps[-3:, 0].mean()
    assert last < 0.8 * first, (first, last)         # measured: 5.94 -> 3.29 (0.55)


def _free_ports(count):
    """Ports free now. They are closed again before the workers bind them, so another
    process can take one in between: `multi_worker` retries with new ports then."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


# What a worker logs when its gRPC server cannot bind its port ("Failed to add port to
# server", then this; test_a_worker_on_a_taken_port_reports_the_bind_failure).
BIND_FAILURE = "Could not start gRPC server"
PORT_ATTEMPTS = 3


def _start_workers(out, addresses):
    """One process per address, as the workers of one cluster, logging to out/worker<i>.log."""
    processes, logs = [], []
    for index in range(len(addresses)):
        config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
        logs.append(out / f"worker{index}.log")
        with open(logs[-1], "w") as log:
            processes.append(subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "worker", str(out)],
                stdout=log, stderr=subprocess.STDOUT,
                env=_child_env(TF_CONFIG=json.dumps(config))))
    return processes, logs


def _wait_for_workers(processes, logs, timeout=WORKER_TIMEOUT_S):
    """Wait for all workers; True if one could not bind its port (the others are killed)."""
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            codes = [p.poll() for p in processes]
            failed = [log for code, log in zip(codes, logs) if code not in (None, 0)]
            if any(BIND_FAILURE in log.read_text() for log in failed):
                return True
            if failed or all(code is not None for code in codes):
                return False
            time.sleep(0.5)
        return False
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()


@pytest.fixture(scope="module")
def multi_worker(tmp_path_factory):
    """Two workers trained together; their results' folder. The ports are free when they
    are chosen, but another process may take one before a worker binds it: then the
    workers are started again on new ports, each attempt in a folder of its own."""
    for attempt in range(PORT_ATTEMPTS):
        out = tmp_path_factory.mktemp(f"workers{attempt}")
        addresses = [f"127.0.0.1:{port}" for port in _free_ports(2)]
        processes, logs = _start_workers(out, addresses)
        if not _wait_for_workers(processes, logs):
            break
    text = "\n".join(log.read_text()[-4000:] for log in logs)
    assert [p.returncode for p in processes] == [0, 0], text
    return out


def _fake_start(tmp_path, scripts):
    """Processes running the given Python one-liners, as stand-ins for workers."""
    processes, logs = [], []
    for index, script in enumerate(scripts):
        logs.append(tmp_path / f"fake{index}.log")
        with open(logs[-1], "w") as log:
            processes.append(subprocess.Popen([sys.executable, "-c", script], stdout=log,
                                              stderr=subprocess.STDOUT))
    return processes, logs


def test_worker_wait_tells_a_taken_port_from_other_failures(tmp_path):
    clash = f"import sys; print('E0000 grpc_server_lib.cc:618] UNKNOWN: {BIND_FAILURE}'); sys.exit(1)"
    waiting = "import time; time.sleep(120)"
    processes, logs = _fake_start(tmp_path, [waiting, clash])
    start = time.time()
    assert _wait_for_workers(processes, logs, timeout=100) is True
    assert time.time() - start < 60                      # the waiting worker was not awaited
    assert processes[0].returncode != 0                  # ... but killed
    processes, logs = _fake_start(tmp_path, ["raise ValueError('a bug')", waiting])
    assert _wait_for_workers(processes, logs, timeout=100) is False
    processes, logs = _fake_start(tmp_path, ["pass", "pass"])
    assert _wait_for_workers(processes, logs, timeout=100) is False
    assert [p.returncode for p in processes] == [0, 0]


def test_a_worker_on_a_taken_port_reports_the_bind_failure(tmp_path):
    taken = socket.socket()
    taken.bind(("0.0.0.0", 0))
    taken.listen()
    try:
        addresses = [f"127.0.0.1:{taken.getsockname()[1]}", f"127.0.0.1:{_free_ports(1)[0]}"]
        config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": 0}}
        log = tmp_path / "worker0.log"
        with open(log, "w") as f:
            worker = subprocess.Popen([sys.executable, os.path.abspath(__file__), "worker",
                                       str(tmp_path)], stdout=f, stderr=subprocess.STDOUT,
                                      env=_child_env(TF_CONFIG=json.dumps(config)))
        assert _wait_for_workers([worker], [log], timeout=240) is True, log.read_text()[-3000:]
    finally:
        taken.close()
    assert worker.returncode != 0


@pytest.mark.slow
def test_two_workers_train_to_identical_weights_and_only_the_chief_saves(multi_worker):
    results = [json.loads((multi_worker / f"worker{i}.json").read_text()) for i in range(2)]
    weights = [np.load(multi_worker / f"weights{i}.npz") for i in range(2)]
    assert [r["replicas"] for r in results] == [2, 2]
    assert [r["local_replicas"] for r in results] == [1, 1]
    # Each worker loaded only its own half of the image ids.
    assert results[0]["image_ids"] == [0, 2, 4, 6] and results[1]["image_ids"] == [1, 3, 5, 7]
    for result in results:
        steps = np.array(result["steps"])
        assert steps.shape[0] == 3 and np.all(np.isfinite(steps))
        assert np.all(steps[:, -1] == 1.0)
    # Both report the losses of the global batch.
    np.testing.assert_allclose(results[0]["steps"], results[1]["steps"], rtol=1e-6)
    assert results[0]["weights_moved"] > 0
    assert sorted(weights[0].files) == sorted(weights[1].files)
    for key in weights[0].files:
        np.testing.assert_array_equal(weights[0][key], weights[1][key])
    assert results[0]["checkpoints"] == ["mask_rcnn_tiny_0001.h5"]
    assert results[1]["checkpoints"] == []


# --- The subprocess side --------------------------------------------------------------------

class EquivalenceConfig(TinyConfig):
    """Settings under which replicas and one device, whose float32 sums differ in the
    last bits, cannot drift apart through a discrete choice or an ill-conditioned model:

    - every anchor becomes a proposal (no NMS: IoU never exceeds 1.0) and the sampler
      takes every proposal, so the set of ROIs does not depend on score ties nor on the
      sampler's random order (which differs per device); the losses do not depend on
      the order of the ROIs;
    - BatchNorm trains with synchronised statistics: every replica normalises with the
      statistics of the global batch, as one device does. (Frozen BN at its initial
      values leaves the backbone unnormalised from scratch: its activations explode and
      a change in the last bit of a weight changes the losses in the fourth digit.)
    Gradient clipping is tight, so most gradients are clipped.
    """
    SYNC_BN = True
    RPN_ANCHOR_RATIOS = [1]
    RPN_NMS_THRESHOLD = 1.0
    POST_NMS_ROIS_TRAINING = 341        # every anchor of a 64 x 64 image, one ratio
    TRAIN_ROIS_PER_IMAGE = 348          # >= POST_NMS_ROIS_TRAINING + MAX_GT_INSTANCES
    ROI_POSITIVE_RATIO = 1.0
    MASK_POOL_SIZE = 7
    MASK_SHAPE = [14, 14]
    MINI_MASK_SHAPE = (14, 14)
    GRADIENT_CLIP_NORM = 0.5


class StepRecorder(keras.callbacks.Callback):
    """Collects the model's `last_step_values` after every step."""

    def __init__(self):
        super().__init__()
        self.steps = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(np.asarray(self.model.last_step_values.numpy()).tolist())


def _build(config, strategy):
    from mrcnn.nn.graph import build_training_graph
    with distribute.build_scope(config, strategy):
        inputs, outputs = build_training_graph(config)
        return training.TrainingModel(inputs=inputs, outputs=outputs, config=config)


def _fit(model, config, generator, steps, strategy=None, callbacks=()):
    recorder = StepRecorder()
    model.fit(distribute.fit_input(generator, strategy), epochs=1, steps_per_epoch=steps,
              verbose=0, shuffle=False, callbacks=[recorder] + list(callbacks))
    return recorder.steps


def _equivalence():
    from mrcnn.data import DataGenerator

    class Replicas(EquivalenceConfig):
        GPU_COUNT, IMAGES_PER_GPU = 2, 2

    class OneDevice(EquivalenceConfig):
        GPU_COUNT, IMAGES_PER_GPU = 1, 4

    dataset = shapes_dataset(12, 64, seed=4)
    strategy = distribute.strategy_for(Replicas())
    mirrored = _build(Replicas(), strategy)
    single = _build(OneDevice(), distribute.strategy_for(OneDevice()))
    single.set_weights(mirrored.get_weights())
    initial = [np.array(w) for w in single.get_weights()]
    steps = {}
    for name, model, config in (("mirrored", mirrored, Replicas()),
                                ("single", single, OneDevice())):
        training.compile_model(model, config, config.LEARNING_RATE, total_steps=3)
        generator = DataGenerator(dataset, config, shuffle=True, seed=0, steps_per_epoch=3)
        steps[name] = _fit(model, config, generator, 3)
    after_m = [np.array(w) for w in mirrored.get_weights()]
    after_s = [np.array(w) for w in single.get_weights()]
    clipped = _clipped_tensors(single, OneDevice(), dataset)   # updates BN statistics
    trainable = [v.trainable for v in single.weights]
    moved = sum(not np.array_equal(a, b) for a, b, t in zip(initial, after_s, trainable) if t)
    total = sum(trainable)
    return {"replicas": strategy.num_replicas_in_sync, "batch": Replicas().BATCH_SIZE,
            "mirrored_steps": steps["mirrored"], "single_steps": steps["single"],
            "clipped_tensors": clipped, "weights_moved": moved, "weights_total": total,
            "max_weight_difference": max(float(np.max(np.abs(a - b) / (1.0 + np.abs(b))))
                                         for a, b in zip(after_m, after_s)),
            "update_error": _update_error(
                [(w0, a, b) for w0, a, b, t in zip(initial, after_m, after_s, trainable) if t])}


def _update_error(triples):
    """|| updates on replicas - updates on one device || / || updates on one device ||,
    over all trainable tensors together, from (initial, replicas, one device) triples."""
    difference = sum(float(np.sum(np.square(a - b))) for _, a, b in triples)
    reference = sum(float(np.sum(np.square(b - w))) for w, _, b in triples)
    return float(np.sqrt(difference / reference))


def _clipped_tensors(model, config, dataset):
    """How many gradients of a global batch exceed GRADIENT_CLIP_NORM (on one device)."""
    from mrcnn.data import DataGenerator
    inputs = training._unpack(DataGenerator(dataset, config, shuffle=True, seed=0)[0])
    with tf.GradientTape() as tape:
        outputs = model(inputs, training=True)
        losses = training.compute_losses(inputs, outputs)
        total = tf.add_n(list(losses.values()))
    gradients = tape.gradient(total, model.trainable_variables)
    return int(sum(float(tf.norm(g)) > config.GRADIENT_CLIP_NORM
                   for g in gradients if g is not None))


def _sync_bn():
    """BatchNorm over a batch split on two replicas: ours synchronised or not, and
    Keras' own synchronised BatchNormalization, on activations with a large mean."""
    strategy = distribute.mirrored_strategy(distribute.replica_devices(2))
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(8, 3)) + 1000.0).astype(np.float32)
    x[4:] = x[4:] * 3.0 - 1995.0                    # the replicas' halves differ
    x64 = x.astype(np.float64)
    expected = (x64 - x64.mean(0)) / np.sqrt(x64.var(0) + 1e-3)
    dataset = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices(x).batch(8))
    batch = next(iter(dataset))
    layers = {}
    with strategy.scope():
        with synchronized_batch_norm(True):
            layers["sync"] = BatchNorm(None, momentum=0.0)
        layers["unsync"] = BatchNorm(None, momentum=0.0)
        layers["keras_sync"] = keras.layers.BatchNormalization(momentum=0.0, synchronized=True)
    result = {"replicas": strategy.num_replicas_in_sync}
    for name, layer in layers.items():
        layer.build((None, 3))
        output = strategy.run(tf.function(lambda b, layer=layer: layer(b, training=True)),
                              args=(batch,))
        output = np.concatenate([np.asarray(v)
                                 for v in strategy.experimental_local_results(output)])
        result[f"{name}_error"] = float(np.max(np.abs(output - expected)))
    moving = layers["sync"].moving_variance.numpy()
    result["moving_variance_error"] = float(np.max(np.abs(moving / x64.var(0) - 1.0)))
    return result


def _default_training():
    from mrcnn.data import DataGenerator

    class Replicas(TinyConfig):
        GPU_COUNT, IMAGES_PER_GPU = 2, 2

    config = Replicas()
    strategy = distribute.strategy_for(config)
    model = _build(config, strategy)
    training.compile_model(model, config, config.LEARNING_RATE, total_steps=12)
    generator = DataGenerator(shapes_dataset(12, 64, seed=0), config, shuffle=True, seed=0,
                              steps_per_epoch=12)
    return {"steps": _fit(model, config, generator, 12)}


def _mirrored_main(out_path):
    distribute.split_cpu(2)
    keras.utils.set_random_seed(0)
    result = {}
    for name, scenario in (("sync_bn", _sync_bn), ("equivalence", _equivalence),
                           ("default", _default_training)):
        start = time.time()
        result[name] = scenario()
        print(f"{name}: {time.time() - start:.1f} s", file=sys.stderr)
    with open(out_path, "w") as f:
        json.dump(result, f)


def _worker_main(out_dir):
    from mrcnn.data import DataGenerator

    class Workers(TinyConfig):
        # Trained BN with synchronised statistics: every weight, moving statistics
        # included, is the same on both workers.
        GPU_COUNT, IMAGES_PER_GPU = 2, 2
        SYNC_BN = True

    config = Workers()
    strategy = distribute.strategy_for(config)
    info = distribute.cluster_info()
    keras.utils.set_random_seed(0)
    model = _build(config, strategy)
    initial = [np.array(w) for w in model.get_weights()]
    training.compile_model(model, config, config.LEARNING_RATE, total_steps=3)
    dataset = distribute.worker_dataset(shapes_dataset(8, 64, seed=0), strategy)
    generator = DataGenerator(dataset, config, shuffle=True, seed=0,
                              batch_size=distribute.generator_batch_size(config, strategy),
                              steps_per_epoch=3)
    checkpoints = os.path.join(out_dir, f"checkpoints{info.worker_index}")
    os.makedirs(checkpoints)
    saver = training.CheckpointSaver(os.path.join(checkpoints, "mask_rcnn_tiny_{epoch:04d}.h5"),
                                     guard=None)
    steps = _fit(model, config, generator, 3, strategy, callbacks=[saver])
    after = model.get_weights()
    np.savez(os.path.join(out_dir, f"weights{info.worker_index}.npz"),
             **{f"w{i}": np.asarray(w) for i, w in enumerate(after)})
    result = {"replicas": strategy.num_replicas_in_sync,
              "local_replicas": distribute.local_replicas(strategy),
              "image_ids": [int(i) for i in dataset.image_ids], "steps": steps,
              "weights_moved": sum(not np.array_equal(a, b) for a, b in zip(initial, after)),
              "checkpoints": sorted(os.listdir(checkpoints))}
    with open(os.path.join(out_dir, f"worker{info.worker_index}.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    mode, target = sys.argv[1], sys.argv[2]
    if mode == "mirrored":
        _mirrored_main(target)
    elif mode == "worker":
        _worker_main(target)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
