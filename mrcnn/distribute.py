"""Training beyond one device: tf.distribute strategies, input sharding, mixed precision.

Replicas and batches:

- ``GPU_COUNT`` is the number of replicas that train together and ``IMAGES_PER_GPU``
  the images each one sees per step, so ``BATCH_SIZE = IMAGES_PER_GPU * GPU_COUNT`` is
  the global batch of one optimizer step, whatever the hardware.
- One machine, ``GPU_COUNT > 1``: MirroredStrategy over GPU_COUNT local GPUs, or over
  GPU_COUNT logical CPU devices when `split_cpu` made them (tests, CPU-only users).
  The input pipeline yields global batches of BATCH_SIZE; Keras splits each into one
  slice of IMAGES_PER_GPU images per replica.
- Several machines (``TF_CONFIG`` names more than one worker): MultiWorkerMirroredStrategy,
  with ``GPU_COUNT`` = workers x devices per worker. Each worker loads only its own share
  of the image ids (`shard_image_ids`, `worker_dataset`) and feeds its local replicas
  batches of IMAGES_PER_GPU (`generator_batch_size`, `fit_input`).

The train step (mrcnn.training.TrainingModel) makes a step on R replicas equal to one
step on one device over the same global batch: losses are weighted by what each replica
scores, gradients are summed over replicas before clipping.

Mixed precision: ``Config.MIXED_PRECISION`` = None (float32), "mixed_float16" or
"mixed_bfloat16" selects the Keras dtype policy the graph is built under
(`precision_policy`). Convolutions then run in 16 bits while weights, box arithmetic,
anchors, NMS, ROI pooling and losses stay float32; "mixed_float16" also scales the loss
(a LossScaleOptimizer, see mrcnn.training.make_optimizer).
"""
import contextlib
import json
import os
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from mrcnn.nn.batch_norm import synchronized_batch_norm
from mrcnn.precision_support import warn_if_emulated

PRECISION_POLICIES = (None, "float32", "mixed_float16", "mixed_bfloat16")

# One strategy per device set and process: MultiWorkerMirroredStrategy sets up collective
# ops once per process, and two MirroredStrategy objects over the same devices would
# reuse each other's collective instance keys.
_STRATEGIES = {}


# --- The cluster ----------------------------------------------------------------------

@dataclass(frozen=True)
class ClusterInfo:
    """This process's place in a TF_CONFIG cluster.

    Attributes:
        num_workers: processes that train (the chief, if any, and the workers).
        worker_index: this process's position among them, chief first (0 when alone).
        is_chief: whether this process writes checkpoints and logs.
    """
    num_workers: int = 1
    worker_index: int = 0
    is_chief: bool = True


def cluster_info(environ=None):
    """Parse TF_CONFIG (JSON with "cluster" and "task") into a `ClusterInfo`.

    The chief is the "chief" task, or worker 0 when the cluster has no "chief". Without
    TF_CONFIG this process is a cluster of one.
    """
    environ = os.environ if environ is None else environ
    text = environ.get("TF_CONFIG", "")
    if not text.strip():
        return ClusterInfo()
    spec = json.loads(text)
    cluster = spec.get("cluster", {})
    chiefs = list(cluster.get("chief", []))
    workers = list(cluster.get("worker", []))
    task = spec.get("task", {})
    task_type, task_index = task.get("type", "worker"), int(task.get("index", 0))
    if task_type == "chief":
        index = task_index
    elif task_type == "worker":
        index = len(chiefs) + task_index
    else:  # an evaluator or parameter server trains no batch of its own
        return ClusterInfo(num_workers=len(chiefs) + len(workers), worker_index=0,
                           is_chief=False)
    return ClusterInfo(num_workers=max(len(chiefs) + len(workers), 1), worker_index=index,
                       is_chief=index == 0)


def is_chief(environ=None):
    """Whether this process is the one that writes checkpoints (always true when alone)."""
    return cluster_info(environ).is_chief


def is_multi_worker(strategy=None):
    """Whether `strategy` (default: the current one) spans several processes."""
    strategy = strategy or tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    return strategy.extended._in_multi_worker_mode()


def local_replicas(strategy=None):
    """Replicas of `strategy` that run in this process."""
    strategy = strategy or tf.distribute.get_strategy()
    if is_multi_worker(strategy):
        return len(strategy.extended.worker_devices)
    return strategy.num_replicas_in_sync


# --- Devices and strategies ---------------------------------------------------------

def split_cpu(count):
    """Present the CPU as `count` logical devices /cpu:0 .. /cpu:{count-1}.

    Lets MirroredStrategy run `count` replicas on one CPU (tests, machines without
    GPUs). Call it at program start: TensorFlow fixes its devices when it first runs
    an op. Calling it again with the same count is harmless.

    Returns:
        the logical CPU device names.
    Raises:
        RuntimeError: TensorFlow already initialised its devices with another split.
    """
    count = int(count)
    if count < 1:
        raise ValueError(f"split_cpu needs a count >= 1, got {count}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if not (current and len(current) == count):
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
        except RuntimeError as error:
            raise RuntimeError(
                f"split_cpu({count}) must run before TensorFlow initialises its devices "
                f"(before the first model or op); call it at program start") from error
    return [device.name for device in tf.config.list_logical_devices("CPU")][:count]


def replica_devices(count):
    """Names of `count` local devices to mirror over: GPUs first, else logical CPUs.

    Raises:
        ValueError: fewer than `count` GPUs and fewer than `count` logical CPUs.
    """
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) >= count:
        return [device.name for device in gpus[:count]]
    cpus = tf.config.list_logical_devices("CPU")
    if len(cpus) >= count and not gpus:
        return [device.name for device in cpus[:count]]
    raise ValueError(
        f"GPU_COUNT is {count} but this machine shows {len(gpus)} GPU(s) and "
        f"{len(cpus)} CPU device(s); set GPU_COUNT to the number of GPUs, or call "
        f"mrcnn.distribute.split_cpu({count}) at program start to train on CPU replicas")


def mirrored_strategy(devices):
    """The MirroredStrategy over `devices` (device names), made once per process."""
    key = ("mirrored",) + tuple(devices)
    if key not in _STRATEGIES:
        _STRATEGIES[key] = tf.distribute.MirroredStrategy(list(devices))
    return _STRATEGIES[key]


def _multi_worker_strategy():
    key = ("multi_worker",)
    if key not in _STRATEGIES:
        _STRATEGIES[key] = tf.distribute.MultiWorkerMirroredStrategy()
    return _STRATEGIES[key]


def strategy_for(config, environ=None):
    """The tf.distribute strategy that trains `config`.

    - TF_CONFIG with several workers: MultiWorkerMirroredStrategy (one per process);
      config.GPU_COUNT must equal its replicas in total.
    - GPU_COUNT > 1: MirroredStrategy over GPU_COUNT GPUs or logical CPUs (`split_cpu`).
    - otherwise the default strategy (one device).

    Raises:
        ValueError: GPU_COUNT does not match the devices or the cluster.
    """
    count = int(config.GPU_COUNT)
    if cluster_info(environ).num_workers > 1:
        strategy = _multi_worker_strategy()
        if strategy.num_replicas_in_sync != count:
            raise ValueError(
                f"GPU_COUNT is {count} but the TF_CONFIG cluster trains "
                f"{strategy.num_replicas_in_sync} replicas "
                f"({local_replicas(strategy)} in this worker); set GPU_COUNT to the "
                f"replicas of all workers together, so BATCH_SIZE stays the global batch")
        return strategy
    if count > 1:
        return mirrored_strategy(replica_devices(count))
    return tf.distribute.get_strategy()


# --- Input ------------------------------------------------------------------------------

def shard_image_ids(image_ids, worker_index, num_workers):
    """Worker `worker_index`'s share of `image_ids`: every num_workers-th id from its index.

    The shares are disjoint, cover every id, and differ in size by at most one.
    """
    if not 0 <= worker_index < num_workers:
        raise ValueError(f"worker_index must be in [0, {num_workers}), got {worker_index}")
    return np.asarray(image_ids)[worker_index::num_workers]


class DatasetShard:
    """A prepared Dataset seen through a subset of its image ids.

    `image_ids` (and `num_images`) list the shard only; everything else (load_image,
    load_mask, image_info, class_names, ...) is the full dataset's, so image ids keep
    their meaning and a DataGenerator over the shard loads exactly those images.
    """

    def __init__(self, dataset, image_ids):
        self._dataset = dataset
        self.image_ids = np.asarray(image_ids)

    @property
    def num_images(self):
        return len(self.image_ids)

    def __getattr__(self, name):
        # Only called for names the shard lacks; copy and pickle probe before _dataset.
        if name.startswith("__") or name == "_dataset":
            raise AttributeError(name)
        return getattr(self._dataset, name)


def worker_dataset(dataset, strategy=None, environ=None):
    """The part of `dataset` this worker loads: its shard under several workers, else all."""
    if not is_multi_worker(strategy):
        return dataset
    info = cluster_info(environ)
    return DatasetShard(dataset, shard_image_ids(dataset.image_ids, info.worker_index,
                                                 info.num_workers))


def generator_batch_size(config, strategy=None):
    """Images per batch of this process's input pipeline.

    One process: the global BATCH_SIZE, which Keras splits over the local replicas.
    Several workers: IMAGES_PER_GPU, one batch per local replica (see `fit_input`).
    """
    if is_multi_worker(strategy):
        return int(config.IMAGES_PER_GPU)
    return int(config.BATCH_SIZE)


def _tensor_specs(batch):
    return tf.nest.map_structure(
        lambda array: tf.TensorSpec(np.shape(array), tf.as_dtype(np.asarray(array).dtype)),
        batch)


def endless_batches(generator):
    """Yield generator[0], generator[1], ... epoch after epoch (calling on_epoch_end)."""
    while True:
        for index in range(len(generator)):
            yield generator[index]
        generator.on_epoch_end()


def fit_input(generator, strategy=None):
    """What to pass to `fit` for `generator` (a keras PyDataset such as DataGenerator).

    One process: the generator itself. Several workers: a distributed dataset in which
    each local replica takes its own batches of this worker's generator, never re-sharded
    by tf.distribute (the generator already holds only this worker's images). It is
    endless: give `fit` steps_per_epoch (and validation_steps).
    """
    strategy = strategy or tf.distribute.get_strategy()
    if not is_multi_worker(strategy):
        return generator
    signature = _tensor_specs(generator[0])

    def dataset_fn(input_context):
        del input_context  # the generator is this worker's already
        dataset = tf.data.Dataset.from_generator(
            lambda: endless_batches(generator), output_signature=signature)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.OFF)
        return dataset.with_options(options).prefetch(1)

    return strategy.distribute_datasets_from_function(dataset_fn)


# --- Precision and building -------------------------------------------------------------

def precision_name(config):
    """The Keras dtype policy name of config.MIXED_PRECISION ("float32" for None)."""
    policy = getattr(config, "MIXED_PRECISION", None)
    if policy not in PRECISION_POLICIES:
        raise ValueError(f"MIXED_PRECISION must be one of {PRECISION_POLICIES}, "
                         f"got {policy!r}")
    return policy or "float32"


@contextlib.contextmanager
def precision_policy(config):
    """Build layers under config.MIXED_PRECISION's dtype policy; restore the previous one."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision_name(config))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


@contextlib.contextmanager
def build_scope(config, strategy=None, mode="training"):
    """Everything a graph must be built under: strategy scope, precision, SyncBN.

    Synchronised BatchNorm (config.SYNC_BN) applies to the training graph only. A 16-bit
    policy that only an emulating CPU would run warns once (mrcnn.precision_support).
    """
    warn_if_emulated(precision_name(config))
    strategy = strategy or tf.distribute.get_strategy()
    sync = bool(getattr(config, "SYNC_BN", False)) and mode == "training"
    with contextlib.ExitStack() as stack:
        stack.enter_context(strategy.scope())
        stack.enter_context(precision_policy(config))
        stack.enter_context(synchronized_batch_norm(sync))
        yield strategy
