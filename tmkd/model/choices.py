"""The student's named choices, without torch: what the configuration validates a setting against before any heavy
import (tmkd.model.method implements each one)."""

POOLINGS = ("cls", "mean")         # how tmkd.model.method.pool reduces the token states ("cls": the paper's)
SOFT_LOSS_NAMES = ("mse", "kl")    # the soft losses of tmkd.model.method.SOFT_LOSSES ("mse": the paper's)
