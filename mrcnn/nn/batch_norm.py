"""BatchNormalization with Mask R-CNN's three-valued TRAIN_BN setting.

Config.TRAIN_BN is passed to every BatchNorm of the graph as `train_bn` when the layer is
built:

- ``None``: ordinary BatchNormalization. Batch statistics when the caller trains
  (``training=True``, as in ``fit`` or a training step), moving statistics otherwise;
  gamma and beta are trainable and the moving statistics are updated while training.
- ``False``: frozen. Always moving statistics, whatever ``training`` says; gamma, beta
  and the moving statistics never change. The layer is built with ``trainable=False``
  and ignores any later ``layer.trainable = True`` (for instance from a layer-selection
  regex or from ``model.trainable = True``), so no optimiser ever sees its weights. To
  train such a layer, build the graph with ``train_bn=None`` instead.
- ``True``: always batch statistics, at inference too (as upstream). The moving
  statistics are still updated, but only in calls with ``training=True`` on a trainable
  layer, so inference never changes the layer's state.

Epsilon is Keras' default 1e-3, as upstream's weights were trained with it.

Synchronised BatchNorm: layers built inside ``with synchronized_batch_norm():`` compute
their batch statistics over the global batch of all replicas of a tf.distribute strategy
(Keras' ``synchronized=True``) instead of each replica's share, unless they are frozen
(``train_bn=False``, which never uses batch statistics) or are given ``synchronized``
explicitly. The graph builders need no argument for it. The synchronised moments are
computed in two passes (global mean, then the global mean of squared deviations from
it), not as Keras' E[x^2] - E[x]^2, which loses the variance to float32 cancellation
when the mean is large against the spread (as after a ReLU) and then clamps it to 0.
"""
import contextlib

import keras
import tensorflow as tf
from keras import ops

TRAIN_BN_MODES = (None, False, True)

# Whether BatchNorm layers built now synchronise their batch statistics by default.
_SYNCHRONIZED_BY_DEFAULT = [False]


@contextlib.contextmanager
def synchronized_batch_norm(enabled=True):
    """Build BatchNorm layers with synchronised batch statistics inside this block.

    Args:
        enabled: False makes the block a no-op, so callers can pass Config.SYNC_BN.
    """
    previous = _SYNCHRONIZED_BY_DEFAULT[0]
    _SYNCHRONIZED_BY_DEFAULT[0] = bool(enabled)
    try:
        yield
    finally:
        _SYNCHRONIZED_BY_DEFAULT[0] = previous


def synchronized_moments(inputs, axes):
    """Mean and variance of `inputs` over `axes` and over every replica of the step.

    Args:
        inputs: float [..., C] this replica's share of the batch.
        axes: the axes to reduce (all but the channel axis).
    Returns:
        (mean, variance), each float [C]: the moments of the global batch, the
        variance around the global mean (biased, as tf.nn.moments).
    """
    context = tf.distribute.get_replica_context()
    if context is None:
        raise RuntimeError("synchronised BatchNorm must run in a replica context")
    inputs = tf.convert_to_tensor(inputs)
    shape = tf.shape(inputs)
    count = tf.cast(tf.reduce_prod([shape[axis] for axis in axes]), inputs.dtype)
    local_sum = tf.reduce_sum(inputs, axis=axes)
    total, count = context.all_reduce(tf.distribute.ReduceOp.SUM, [local_sum, count])
    mean = tf.math.divide_no_nan(total, count)
    # As tf.nn.moments: the variance's gradient does not flow through the mean.
    deviations = tf.reduce_sum(tf.math.squared_difference(inputs, tf.stop_gradient(mean)),
                               axis=axes)
    variance = tf.math.divide_no_nan(
        context.all_reduce(tf.distribute.ReduceOp.SUM, deviations), count)
    return mean, variance


@keras.saving.register_keras_serializable(package="mrcnn")
class BatchNorm(keras.layers.BatchNormalization):
    """BatchNormalization whose mode is fixed by `train_bn` (None, False or True).

    Input and output: float [..., C], normalised over every axis but the last.
    Weights: gamma, beta, moving_mean, moving_variance, each [C], named as Keras 2's.
    """

    def __init__(self, train_bn=None, **kwargs):
        if train_bn not in TRAIN_BN_MODES:
            raise ValueError(f"train_bn must be None, False or True, got {train_bn!r}")
        if train_bn is False:
            kwargs["trainable"] = False
        elif _SYNCHRONIZED_BY_DEFAULT[0]:
            kwargs.setdefault("synchronized", True)
        self._train_bn = train_bn
        super().__init__(**kwargs)

    @property
    def train_bn(self):
        """The TRAIN_BN mode this layer was built with: None, False or True."""
        return self._train_bn

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        # A frozen layer stays frozen: setting trainable=True is ignored.
        if getattr(self, "_train_bn", None) is False:
            value = False
        keras.layers.BatchNormalization.trainable.fset(self, value)

    def call(self, inputs, training=None, mask=None):
        if self._train_bn is False:
            return super().call(inputs, training=False, mask=mask)
        if self._train_bn is None or (training and self.trainable):
            return super().call(inputs, training=training, mask=mask)
        return self._normalize_with_batch_statistics(inputs, mask)

    def _moments(self, inputs, mask):
        if self.synchronized and mask is None:
            return synchronized_moments(inputs, self._reduction_axes)
        return super()._moments(inputs, mask)

    def _normalize_with_batch_statistics(self, inputs, mask):
        """Normalise by the moments of `inputs` without touching the moving statistics."""
        compute_dtype = keras.backend.result_type(inputs.dtype, "float32")
        inputs = ops.cast(inputs, compute_dtype)
        mean, variance = self._moments(inputs, mask)
        gamma = ops.cast(self.gamma, inputs.dtype) if self.scale else None
        beta = ops.cast(self.beta, inputs.dtype) if self.center else None
        outputs = ops.batch_normalization(
            x=inputs, mean=mean, variance=variance, axis=self.axis,
            offset=beta, scale=gamma, epsilon=self.epsilon)
        return ops.cast(outputs, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config["train_bn"] = self._train_bn
        return config
