"""launch.bench_pipeline: the at-scale run's peak RSS is the child's own."""
import sys

import numpy as np

from launch import bench_pipeline


def test_peak_rss_is_the_childs_not_the_parents(tmp_path):
  parent = np.ones(2**26)  # 512 MB touched here, then freed: the parent's peak
  del parent
  _, idle, _ = bench_pipeline.run_child([sys.executable, '-c', 'import time; time.sleep(0.3)'],
                                        str(tmp_path / 'idle.log'))
  assert 0 < idle < 100, idle  # wait4's ru_maxrss would report >= 512 MB
  _, grown, _ = bench_pipeline.run_child(
      [sys.executable, '-c', 'import numpy, time; a = numpy.ones(2**25); time.sleep(0.3)'],
      str(tmp_path / 'grown.log'))
  assert 256 < grown < idle + 256 + 100, (idle, grown)  # its 256 MB array is seen
