"""metrics.jsonl (rrl_jax.training.metric_writers): a torn final record."""
import json
import os

from rrl_jax.training import metric_writers


def _write_torn(workdir, tail):
  path = os.path.join(workdir, metric_writers.METRICS_FILE)
  with open(path, 'w') as f:
    f.write(json.dumps({'step': 1, 'kind': 'train', 'total': 1.5}) + '\n' + tail)
  return path


def test_torn_record_is_dropped_on_resume_with_one_warning(tmp_path, capsys):
  workdir = str(tmp_path)
  path = _write_torn(workdir, '{"step": 2, "kind": "tra')  # Killed mid-write.
  assert [r['step'] for r in metric_writers.read_metrics(workdir)] == [1]
  writer = metric_writers.MetricWriter(workdir)
  writer.write(2, {'total': 1.25})
  writer.close()
  out = capsys.readouterr().out.splitlines()
  assert out == [f'WARNING: {path} ended with a torn record (24 bytes, cut short by '
                 "a kill while it was written); dropped it: b'{\"step\": 2, \"kind\": \"tra'"]
  assert [(r['step'], r['total']) for r in metric_writers.read_metrics(workdir)] == [
      (1, 1.5), (2, 1.25)]


def test_complete_record_missing_its_newline_is_kept(tmp_path, capsys):
  workdir = str(tmp_path)
  _write_torn(workdir, json.dumps({'step': 2, 'kind': 'train', 'total': 1.0}))
  writer = metric_writers.MetricWriter(workdir)
  writer.write(3, {'total': 0.5})
  writer.close()
  assert capsys.readouterr().out == ''
  assert [r['step'] for r in metric_writers.read_metrics(workdir)] == [1, 2, 3]
