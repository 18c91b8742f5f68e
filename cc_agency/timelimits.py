"""Wall-clock limits of batch runs (pure): which limit a run gets, and the reason its batch fails with.

Why: on a shared cluster a batch that hangs (a stuck download, an endless loop) holds its RAM and GPUs forever and
its slot is lost to everyone. As Slurm's TIMEOUT does, a run that exceeds its limit is stopped and its batch fails
for good: another attempt would most likely hang the same way. The RED asks for a limit
(`execution.settings.timeLimitSeconds`); the operator sets a default for REDs that do not
(`controller.scheduling.default_time_limit_seconds`) and a cap (`max_time_limit_seconds`): a larger request is cut
to the cap. No limit at all when neither the RED nor the default gives one.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class TimeLimits:
    """The operator's settings: default and cap in seconds (None: none)."""
    default_s: int = None
    max_s: int = None

    def for_experiment(self, experiment):
        """The limit in seconds of each run of the experiment's batches, or None for no limit."""
        settings = ((experiment or {}).get('execution') or {}).get('settings') or {}
        limit_s = settings.get('timeLimitSeconds') or self.default_s
        if self.max_s is not None:
            limit_s = self.max_s if limit_s is None else min(limit_s, self.max_s)
        return limit_s


def time_limit_reason(limit_s):
    """What the batch's history says (debugInfo) when a run exceeded its limit."""
    return 'time limit of {} s exceeded'.format(limit_s)
