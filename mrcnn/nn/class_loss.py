"""The classifier head's loss for imbalanced classes: per-class weights and a focal term.

Upstream's classifier loss (`losses.mrcnn_class_loss`) is the mean softmax cross-entropy
over the sampled ROIs whose predicted class belongs to their image's dataset ("active"
ROIs). Here each active ROI i with true class c_i also carries the weight w[c_i]
(config.CLASS_LOSS_WEIGHTS), and the loss is the weighted mean

    loss = sum_i active_i * w[c_i] * l_i / sum_i active_i * w[c_i],

so all-ones weights give upstream's loss exactly and scaling every weight by a constant
changes nothing (the same normalisation as a weighted cross-entropy's "mean" in other
frameworks). The per-ROI term l_i is the cross-entropy -log p_i, or with
config.CLASS_LOSS = "focal" the focal loss of Lin et al. (2017),
-(1 - p_i)^gamma * log p_i (gamma = config.FOCAL_GAMMA), where p_i is the softmax
probability of the true class; gamma = 0 is the cross-entropy. A batch without any
weighted active ROI (no ROIs at all, or only ROIs of zero-weight classes) has loss 0.
"""
import tensorflow as tf

from mrcnn.config import CLASS_LOSSES

# (1 - p)^gamma is evaluated at max(1 - p, this): at p = 1 the derivative of x^gamma at
# x = 0 is infinite for gamma < 1 and would turn the zero gradient into NaN.
_FOCAL_FLOOR = 1e-12


def roi_class_weights(target_class_ids, pred_class_logits, active_class_ids,
                      class_weights=None):
    """Each ROI's weight in the classifier loss: active_i * w[c_i].

    Args:
        target_class_ids: int [B, T] true class per ROI (padding rows are background).
        pred_class_logits: float [B, T, NC]; the argmax decides whether a ROI is active.
        active_class_ids: float or int [B, NC], 1 for classes of the image's dataset.
        class_weights: None (every class 1) or NC non-negative numbers.
    Returns:
        float32 [B, T].
    """
    logits = tf.cast(pred_class_logits, tf.float32)
    predicted = tf.argmax(logits, axis=2, output_type=tf.int32)
    weights = tf.gather(tf.cast(active_class_ids, tf.float32), predicted, batch_dims=1)
    if class_weights is not None:
        per_class = tf.constant([float(w) for w in class_weights], tf.float32)
        weights = weights * tf.gather(per_class, tf.cast(target_class_ids, tf.int32))
    return weights


def per_roi_class_loss(target_class_ids, pred_class_logits, loss="cross_entropy",
                       focal_gamma=2.0):
    """The loss term of each ROI before weighting: float32 [B, T].

    "cross_entropy": -log p_t; "focal": -(1 - p_t)^focal_gamma * log p_t, with p_t the
    softmax probability of the ROI's true class.
    """
    if loss not in CLASS_LOSSES:
        raise ValueError(f"CLASS_LOSS must be one of {CLASS_LOSSES}, got {loss!r}")
    logits = tf.cast(pred_class_logits, tf.float32)
    labels = tf.cast(target_class_ids, tf.int32)
    cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels,
                                                                   logits=logits)
    if loss == "cross_entropy":
        return cross_entropy
    miss = -tf.math.expm1(-cross_entropy)                       # 1 - p_t, accurate near 0
    modulation = tf.pow(tf.maximum(miss, _FOCAL_FLOOR), float(focal_gamma))
    return modulation * cross_entropy


def classifier_loss(target_class_ids, pred_class_logits, active_class_ids,
                    class_weights=None, loss="cross_entropy", focal_gamma=2.0):
    """The classifier head's loss: weighted mean over active ROIs (see the module).

    Args:
        target_class_ids: int [B, T].
        pred_class_logits: float [B, T, NC].
        active_class_ids: float or int [B, NC].
        class_weights: None or NC non-negative numbers (config.CLASS_LOSS_WEIGHTS).
        loss: "cross_entropy" or "focal" (config.CLASS_LOSS).
        focal_gamma: the focal loss's exponent (config.FOCAL_GAMMA).
    Returns:
        float32 scalar; with the defaults, exactly losses.mrcnn_class_loss.
    """
    per_roi = per_roi_class_loss(target_class_ids, pred_class_logits, loss, focal_gamma)
    weights = roi_class_weights(target_class_ids, pred_class_logits, active_class_ids,
                                class_weights)
    return tf.math.divide_no_nan(tf.reduce_sum(per_roi * weights), tf.reduce_sum(weights))


def classifier_loss_from_config(config, target_class_ids, pred_class_logits,
                                active_class_ids):
    """`classifier_loss` with the config's CLASS_LOSS_WEIGHTS, CLASS_LOSS and FOCAL_GAMMA."""
    return classifier_loss(target_class_ids, pred_class_logits, active_class_ids,
                           **class_loss_settings(config))


def class_loss_settings(config):
    """The keyword arguments of `classifier_loss` a config sets (defaults: upstream's)."""
    if config is None:
        return {}
    return {"class_weights": getattr(config, "CLASS_LOSS_WEIGHTS", None),
            "loss": getattr(config, "CLASS_LOSS", "cross_entropy"),
            "focal_gamma": getattr(config, "FOCAL_GAMMA", 2.0)}
