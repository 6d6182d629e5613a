"""User errors have one root (rrl_jax.errors.UserError), so the programs catch one type."""
import importlib
import inspect
import pkgutil

import rrl_jax
from rrl_jax.errors import UserError


def exception_classes():
  """{module.Class: class} of every exception class defined in the package."""
  found = {}
  for info in pkgutil.walk_packages(rrl_jax.__path__, 'rrl_jax.'):
    module = importlib.import_module(info.name)
    for name, obj in vars(module).items():
      if (inspect.isclass(obj) and issubclass(obj, Exception)
          and obj.__module__ == module.__name__):
        found[f'{module.__name__}.{name}'] = obj
  return found


# Exceptions that report an outcome, not an error: the programs handle each on its own.
NOT_ERRORS = {
    'rrl_jax.training.preemption.Preempted': 'a stop on SIGTERM/SIGINT after a saved '
                                            'checkpoint (launch.main exits 75)',
}


def test_every_error_of_the_package_is_a_user_error():
  classes = exception_classes()
  # The ones the programs used to catch one by one are among them.
  for name in ('rrl_jax.data.errors.DataError', 'rrl_jax.checkpoint_format.CheckpointError',
               'rrl_jax.keras_import.ConversionError',
               'rrl_jax.training.vgg19.VGG19WeightsError',
               'rrl_jax.evaluation.export.ExportError'):
    assert name in classes
  assert set(NOT_ERRORS) <= set(classes)
  outside = sorted(name for name, cls in classes.items()
                   if not issubclass(cls, UserError) and name not in NOT_ERRORS)
  assert not outside, f'not derived from UserError: {outside}'
