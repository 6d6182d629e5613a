"""Parameter table of a network per component (README, "Model summary").

  python -m launch.summary [--model=rrl_net|scfdm|afd_net|mfd_net|efr_net|fil_net]
      [--json] [--widths=16,32,64,128,256] [--set=field=JSON ...]
  python -m launch.summary --model=rrl_net:no_ae   # an ablation (models/variants.py)

The counting is rrl_jax/summary.py.
"""
import json
from typing import Sequence

from absl import app, flags

from rrl_jax import cli
from rrl_jax import summary as summary_lib
from rrl_jax.models import MODELS, get_model, variants

FLAGS = flags.FLAGS
flags.DEFINE_string('model', 'rrl_net', f'Network: one of {sorted(MODELS)}, '
                    'or rrl_net:ABLATION (rrl_jax/models/variants.py).')
flags.DEFINE_bool('json', False, 'Print JSON instead of a table.')
flags.DEFINE_list('widths', None, 'Widths (default: the official model).')
flags.DEFINE_multi_string('set', [], 'Model field=JSON value, e.g. --set=mgla=false.')
cli.define_help_flags()


def main(argv: Sequence[str]) -> None:
  del argv
  try:
    kwargs = summary_lib.model_kwargs(FLAGS.widths, FLAGS.set)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  try:
    name, variant_kwargs = variants.resolve(FLAGS.model)
    kwargs = {**variant_kwargs, **kwargs}
    model = get_model(name, **kwargs)
    summary = summary_lib.summarize(model)
  except (TypeError, ValueError) as e:
    raise app.UsageError(f'--model={FLAGS.model} {kwargs or ""}: {e}') from None
  print(json.dumps(summary, indent=2) if FLAGS.json else summary_lib.format_table(summary))


if __name__ == '__main__':
  app.run(main)
