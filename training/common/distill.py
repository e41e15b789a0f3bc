"""Knowledge distillation: one cheap student net trained to match a costlier teacher.

After keras-io's "Knowledge Distillation" example (Hinton et al., 2015): the student's loss is
``alpha`` times cross-entropy on the true labels plus ``1 - alpha`` times the KL divergence
between the teacher's and the student's class distributions, both softened by ``temperature``
(scaled by ``temperature**2`` so its gradients keep their size). Here teacher and student output
probabilities (softmax inside the model, as served), so softening is
``softmax(log(p) / temperature)``, which equals softening the logits.

Why: an averaged seed ensemble is more accurate than one of its nets but costs one model call per
member for every request; a student that learns the ensemble's soft answers gets most of that
accuracy at the cost of one net.
"""

from __future__ import annotations

import keras
from keras import ops

_EPSILON = 1e-7


def soften(probabilities, temperature: float):
    """Class probabilities as they would be with logits divided by ``temperature``."""
    log_p = ops.log(ops.clip(probabilities, _EPSILON, 1.0))
    return ops.softmax(log_p / temperature, axis=-1)


class Distiller(keras.Model):
    """Trains ``student`` on (inputs, integer labels) batches; the ``teacher`` is frozen.

    Augment the inputs in the data pipeline, not inside the student: teacher and student must
    see the same augmented picture.
    """

    def __init__(
        self,
        student: keras.Model,
        teacher: keras.Model,
        *,
        alpha: float = 0.1,
        temperature: float = 4.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False
        self.alpha = alpha
        self.temperature = temperature
        self._hard_loss = keras.losses.SparseCategoricalCrossentropy()
        self._soft_loss = keras.losses.KLDivergence()

    def call(self, inputs, training: bool = False):
        return self.student(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        teacher_probabilities = self.teacher(x, training=False)
        hard = self._hard_loss(y, y_pred)
        soft = self._soft_loss(
            soften(teacher_probabilities, self.temperature), soften(y_pred, self.temperature)
        )
        return self.alpha * hard + (1 - self.alpha) * soft * self.temperature**2
