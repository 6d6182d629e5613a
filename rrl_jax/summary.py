"""Parameter table per component, for the training tree and the inference subtree.

The program is `python -m launch.summary` (launch/summary.py). Works for every
registered network (rrl_jax.models.MODELS); counts come from jax.eval_shape (no
compile). The inference subtree is what the match score needs (MLPP, paper
Sec. 3.5; rrl_jax.pruning).
"""
import json
from typing import Any, Dict

import jax
import jax.numpy as jnp

from rrl_jax import pruning
from rrl_jax.models import model_config

# Descriptions of RRL-Net's components; other networks' top-level modules are
# listed under their own names.
DESCRIPTIONS = {
    'encoder_a': 'ALFE encoder, branch A', 'encoder_b': 'ALFE encoder, branch B',
    'encoder': 'ALFE encoder, shared', 'decoder': 'decoder, shared',
    'decoder_a': 'decoder, branch A', 'decoder_b': 'decoder, branch B',
    'fil': 'FIL (5 stages)', 'descriptor': 'descriptor network (KGL-Net)',
    'metric': 'metric network',
    'stage_head3': 'stage head 3', 'stage_head4': 'stage head 4',
    'stage_head5': 'stage head 5 (match score)',
    'module_head3': 'module head 3', 'module_head4': 'module head 4',
    'module_head5': 'module head 5'}
_RRL_ORDER = tuple(DESCRIPTIONS)


def summarize(model) -> Dict[str, Any]:
  """{'model', 'components': [...], 'training', 'inference'} (shape-only)."""
  p = getattr(model, 'patch_size', 64)
  x = jax.ShapeDtypeStruct((1, p, p, 1), jnp.float32)
  variables = jax.eval_shape(lambda a, b: model.init(jax.random.PRNGKey(0), a, b), x, x)
  variables = {c: variables.get(c, {}) for c in ('params', 'batch_stats')}
  pruned = pruning.inference_variables(variables, model)
  keys = list(variables['params'])
  keys.sort(key=lambda k: _RRL_ORDER.index(k) if k in _RRL_ORDER else len(_RRL_ORDER))
  rows = []
  for key in keys:
    trainable = pruning.count_parameters(variables['params'][key])
    kept = pruning.count_parameters(pruned['params'].get(key, {}))
    rows.append({
        'component': key, 'description': DESCRIPTIONS.get(key, ''),
        'trainable': trainable,
        'non_trainable': pruning.count_parameters(variables['batch_stats'].get(key, {})),
        'in_inference_model': key in pruned['params'],
        'inference_trainable': kept})

  def totals(tree):
    return {'trainable': pruning.count_parameters(tree['params']),
            'non_trainable': pruning.count_parameters(tree['batch_stats'])}
  return {'model': model_config(model), 'components': rows,
          'training': totals(variables), 'inference': totals(pruned)}


def format_table(summary: Dict[str, Any]) -> str:
  width = max([14] + [len(r['component']) for r in summary['components']])
  lines = [f'model {summary["model"]["model_name"]}',
           f'{"component":<{width}} {"description":<28} {"trainable":>12} '
           f'{"BN stats":>9}  inference']
  lines.append('-' * len(lines[1]))
  for r in summary['components']:
    if not r['in_inference_model']:
      kept = 'pruned'
    elif r['inference_trainable'] == r['trainable']:
      kept = 'yes'
    else:
      kept = f'partly ({r["inference_trainable"]:,})'
    lines.append(f'{r["component"]:<{width}} {r["description"]:<28} '
                 f'{r["trainable"]:>12,} {r["non_trainable"]:>9,}  {kept}')
  lines.append('-' * len(lines[1]))
  train, infer = summary['training'], summary['inference']
  saved = 1 - infer['trainable'] / max(train['trainable'], 1)
  lines.append(f'{"training model":<{width + 29}} {train["trainable"]:>12,} '
               f'{train["non_trainable"]:>9,}')
  lines.append(f'{"inference subtree (MLPP)":<{width + 29}} {infer["trainable"]:>12,} '
               f'{infer["non_trainable"]:>9,}  ({saved:.1%} fewer parameters)')
  return '\n'.join(lines)


def model_kwargs(widths, settings) -> Dict[str, Any]:
  """--widths and --set field=JSON as model kwargs (lists become tuples).

  A malformed --set item raises ValueError naming it.
  """
  kwargs: Dict[str, Any] = {}
  if widths:
    kwargs['widths'] = tuple(int(w) for w in widths)
  for item in settings or ():
    field, sep, text = item.partition('=')
    if not sep:
      raise ValueError(f'--set={item!r}: expected field=value.')
    try:
      value = json.loads(text)
    except json.JSONDecodeError as e:
      raise ValueError(f'--set={item!r}: value is not JSON ({e}).') from None
    kwargs[field] = tuple(value) if isinstance(value, list) else value
  return kwargs

