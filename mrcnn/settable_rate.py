"""A learning rate that callbacks may set although a schedule owns it.

Keras' optimizers refuse `optimizer.learning_rate = value` when they were built with a
`LearningRateSchedule`, and this package's optimizer always is (mrcnn.schedule: warm-up,
then constant or cosine). Callbacks such as keras.callbacks.ReduceLROnPlateau read the
rate and set a lower one. `ScalableScheduleRate` makes that work: the rate in use is
schedule(step) * factor, with factor a variable that starts at 1 (the schedule's rate bit
for bit), and setting the rate to v at step s sets factor = v / schedule(s). The rest of
the schedule keeps its shape, scaled: ReduceLROnPlateau's reduction by 10 during a cosine
stage continues the cosine at a tenth of its height. The factor belongs to one optimizer,
so each `train()` stage (a fresh optimizer) starts again at the stage's own rate.
"""
import keras
from keras.optimizers.schedules import LearningRateSchedule


class ScalableScheduleRate:
    """Mixin for a keras optimizer whose scheduled learning rate can be set (see module).

    Put it before the optimizer class: `class MySGD(ScalableScheduleRate, keras.optimizers.SGD)`.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._rate_factor = None
        if isinstance(self._learning_rate, LearningRateSchedule):
            # Not tracked as an optimizer variable: checkpoints and optimizer state stay
            # as they were.
            self._rate_factor = keras.Variable(1.0, name="learning_rate_factor",
                                               dtype="float32", trainable=False,
                                               aggregation="only_first_replica")

    @property
    def learning_rate_factor(self):
        """The factor applied to the schedule (1.0 until the rate is set), or None."""
        return None if self._rate_factor is None else float(self._rate_factor.numpy())

    def _scheduled(self):
        return isinstance(self._learning_rate, LearningRateSchedule) and \
            self._rate_factor is not None

    def _get_current_learning_rate(self):
        rate = super()._get_current_learning_rate()
        if self._scheduled():
            rate = rate * self._rate_factor
        return rate

    @property
    def learning_rate(self):
        return self._get_current_learning_rate()

    @learning_rate.setter
    def learning_rate(self, value):
        if (not self._scheduled() or isinstance(value, LearningRateSchedule)
                or callable(value)):
            keras.optimizers.Optimizer.learning_rate.fset(self, value)
            return
        scheduled = float(keras.ops.convert_to_numpy(self._learning_rate(self._iterations)))
        if not scheduled > 0:
            raise ValueError(
                f"cannot set the learning rate to {value}: the schedule's rate at step "
                f"{int(keras.ops.convert_to_numpy(self._iterations))} is {scheduled}, so no "
                f"factor of it gives {value}")
        self._rate_factor.assign(float(value) / scheduled)
