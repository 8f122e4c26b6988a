"""Keras-compatible training library: losses (IR recipes), metrics, optimizers,
learning-rate schedules and callbacks. No TensorFlow import (Keras objects given to the
get_* functions are converted by class name and config)."""
from .callbacks import (
    CallbackList, Callback, CSVLogger, EarlyStopping, History, LambdaCallback, LearningRateScheduler,
    ModelCheckpoint, Progbar, ProgbarLogger, ReduceLROnPlateau, TerminateOnNaN,
)
from .losses import Loss, get_loss
from .metrics import AUC, Mean, Metric, Precision, Recall, get_metric
from .optimizers import SGD, Adadelta, Adagrad, Adam, AdamW, Adamax, Nadam, Optimizer, RMSprop, get_optimizer
from .schedules import (
    CosineDecay, ExponentialDecay, LearningRateSchedule, PiecewiseConstantDecay, get_schedule,
)

__all__ = [
    "AUC", "Adadelta", "Adagrad", "Adam", "AdamW", "Adamax", "CSVLogger", "Callback", "CallbackList", "CosineDecay",
    "EarlyStopping", "ExponentialDecay", "History", "LambdaCallback", "LearningRateSchedule",
    "LearningRateScheduler", "Loss", "Mean", "Metric", "ModelCheckpoint", "Nadam", "Optimizer",
    "PiecewiseConstantDecay", "Precision", "Progbar", "ProgbarLogger", "RMSprop", "Recall", "ReduceLROnPlateau",
    "SGD", "TerminateOnNaN", "get_loss", "get_metric", "get_optimizer", "get_schedule",
]
