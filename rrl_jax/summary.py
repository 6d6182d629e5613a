r"""Parameter table per component, for the training tree and the MLPP subtree.

  python -m rrl_jax.summary [--json] [--widths=16,32,64,128,256]
"""
import json
from typing import Any, Dict, Sequence

from absl import app, flags
import jax
import jax.numpy as jnp

from rrl_jax import cli
from rrl_jax import pruning
from rrl_jax.models import RRLNet, model_config

COMPONENTS = (
    ('encoder_a', 'ALFE encoder, branch A'), ('encoder_b', 'ALFE encoder, branch B'),
    ('decoder_a', 'decoder, branch A'), ('decoder_b', 'decoder, branch B'),
    ('fil', 'FIL (5 stages)'), ('metric', 'metric network'),
    ('stage_head3', 'stage head 3'), ('stage_head4', 'stage head 4'),
    ('stage_head5', 'stage head 5 (match score)'),
    ('module_head3', 'module head 3'), ('module_head4', 'module head 4'),
    ('module_head5', 'module head 5'))


def summarize(model: RRLNet) -> Dict[str, Any]:
  """{'components': [...], 'training': totals, 'inference': totals} (shape-only, no compile)."""
  x = jax.ShapeDtypeStruct((1, model.patch_size, model.patch_size, 1), jnp.float32)
  variables = jax.eval_shape(lambda a, b: model.init(jax.random.PRNGKey(0), a, b), x, x)
  pruned = pruning.inference_variables(variables, model)
  rows = []
  for key, label in COMPONENTS:
    if key not in variables['params']:
      continue
    rows.append({
        'component': key, 'description': label,
        'trainable': pruning.count_parameters(variables['params'][key]),
        'non_trainable': pruning.count_parameters(variables['batch_stats'].get(key, {})),
        'in_inference_model': key in pruned['params']})

  def totals(tree):
    return {'trainable': pruning.count_parameters(tree['params']),
            'non_trainable': pruning.count_parameters(tree['batch_stats'])}
  return {'model': model_config(model), 'components': rows,
          'training': totals(variables), 'inference': totals(pruned)}


def format_table(summary: Dict[str, Any]) -> str:
  lines = [f'{"component":<14} {"description":<28} {"trainable":>12} '
           f'{"BN stats":>9}  inference']
  lines.append('-' * len(lines[0]))
  for r in summary['components']:
    lines.append(f'{r["component"]:<14} {r["description"]:<28} '
                 f'{r["trainable"]:>12,} {r["non_trainable"]:>9,}  '
                 f'{"yes" if r["in_inference_model"] else "pruned"}')
  lines.append('-' * len(lines[0]))
  train, infer = summary['training'], summary['inference']
  saved = 1 - infer['trainable'] / train['trainable']
  lines.append(f'{"training model":<43} {train["trainable"]:>12,} '
               f'{train["non_trainable"]:>9,}')
  lines.append(f'{"inference subtree (MLPP)":<43} {infer["trainable"]:>12,} '
               f'{infer["non_trainable"]:>9,}  ({saved:.1%} fewer parameters)')
  return '\n'.join(lines)


FLAGS = flags.FLAGS


def main(argv: Sequence[str]) -> None:
  del argv
  kwargs = {'widths': tuple(int(w) for w in FLAGS.widths)} if FLAGS.widths else {}
  summary = summarize(RRLNet(**kwargs))
  print(json.dumps(summary, indent=2) if FLAGS.json else format_table(summary))


if __name__ == '__main__':
  flags.DEFINE_bool('json', False, 'Print JSON instead of a table.')
  flags.DEFINE_list('widths', None, 'Encoder widths (default: the paper, 16..256).')
  cli.define_help_flags()
  app.run(main)
