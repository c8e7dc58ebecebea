"""The runner named by `runner_type` in every base config: mmengine's Runner whose own checkpoint loads (`load_from`,
`--resume`) read weights-only with exactly what mmengine 0.10.7 pickles allowed, and only while they read."""
from mmengine.runner import Runner

from backbone.checkpoint import allowing, mmengine_globals

from .mmengine_private import problems_on_another_version


def mmengine_checkpoints():
    """A context in which torch.load(weights_only=True) reads mmengine's checkpoints (message hub, numpy RNG
    states): torch ≥ 2.6 refuses them otherwise, and trusting every pickle is not the fix."""
    return allowing(mmengine_globals())


class SafeLoadRunner(Runner):
    """mmengine's Runner; `load_checkpoint` (which `resume` calls too) runs inside `mmengine_checkpoints()`. On
    another mmengine than the one runtime.mmengine_private was read from, it logs each internal that changed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for problem in problems_on_another_version():
            self.logger.warning(problem)

    def load_checkpoint(self, filename: str, *args, **kwargs):
        with mmengine_checkpoints():
            return super().load_checkpoint(filename, *args, **kwargs)
