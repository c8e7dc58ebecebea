"""The runner named by `runner_type` in every base config: mmengine's Runner whose own checkpoint loads (`load_from`,
`--resume`) read weights-only with exactly what mmengine 0.10.7 pickles allowed, and only while they read, and whose
logger, message hub and visualizer are its own when several runs share a process."""
from mmengine.logging import MessageHub, MMLogger
from mmengine.runner import Runner
from mmengine.utils import ManagerMixin
from mmengine.visualization import Visualizer

from backbone.checkpoint import allowing, mmengine_globals

from .mmengine_private import problems_on_another_version


def mmengine_checkpoints():
    """A context in which torch.load(weights_only=True) reads mmengine's checkpoints (message hub, numpy RNG
    states): torch ≥ 2.6 refuses them otherwise, and trusting every pickle is not the fix."""
    return allowing(mmengine_globals())


def unused_name(manager: type[ManagerMixin], name: str) -> str:
    """`name`, or `name`_2, _3, ... when this process already holds an instance of `manager` by that name."""
    taken, n = name, 1
    while manager.check_instance_created(taken):
        n += 1
        taken = f'{name}_{n}'
    return taken


class SafeLoadRunner(Runner):
    """mmengine's Runner; `load_checkpoint` (which `resume` calls too) runs inside `mmengine_checkpoints()`. On
    another mmengine than the one runtime.mmengine_private was read from, it logs each internal that changed.

    Its logger, message hub and visualizer are new instances even where an earlier run of the same process took their
    name (mmdet's and mmseg's configs name every visualizer 'visualizer'; a fixed `experiment_name` names the rest):
    mmengine hands back the earlier instance, so the second run's scalars and config went to the first run's folder
    and its log to the first run's log file."""

    def build_logger(self, *args, **kwargs):
        kwargs['name'] = unused_name(MMLogger, kwargs.get('name', self._experiment_name))
        return super().build_logger(*args, **kwargs)

    def build_message_hub(self, message_hub=None):
        message_hub = dict(message_hub or {})
        message_hub['name'] = unused_name(MessageHub, message_hub.get('name', self._experiment_name))
        return super().build_message_hub(message_hub)

    def build_visualizer(self, visualizer=None):
        if visualizer is None or isinstance(visualizer, dict):
            visualizer = dict(visualizer or dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')]))
            visualizer['name'] = unused_name(Visualizer, visualizer.get('name', self._experiment_name))
        return super().build_visualizer(visualizer)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for problem in problems_on_another_version():
            self.logger.warning(problem)

    def load_checkpoint(self, filename: str, *args, **kwargs):
        with mmengine_checkpoints():
            return super().load_checkpoint(filename, *args, **kwargs)
