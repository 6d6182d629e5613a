"""The benchmarks, one program: train step, inference, MLPP, pipeline (RRL-Net by default).

  python -m launch.bench                                   # everything, defaults
  python -m launch.bench --model=fil_net --parts=train,infer   # any network/variant
  python -m launch.bench --parts=train,infer --repeats=5 --out=bench.json
  python -m launch.bench --parts=infer --infer_batch_sizes=256,512 --dtypes=bfloat16

Parts (--parts, comma separated):
  peak      large matmul (--peak_n) in float32 and bfloat16: the device's
            measured FLOP/s ceiling that every other row is compared against.
  train     the step training runs: rrl_jax.training.step.make_train_step with
            configs/default.py:<--model> (on-device augmentation on; state
            donated; forward in train mode, the model's official objective
            (RRL-Net: 6 BCE + 2 reconstruction losses), gradients, its
            optimizer, BatchNorm statistics) at --train_batch_sizes;
            --recon_loss=mse (default, the reference workload) or perceptual.
  trainpure the same step with augmentation off.
  infer     MLPP inference: the pruned subtree, score_only=True (the deployed
            match logit) at --infer_batch_sizes.
  full      the full model in inference mode returning all outputs (so jit
            cannot drop the unused heads): the "before MLPP" comparison.
  pipeline  pairs/s of rrl_jax.data.pipeline.BatchIterator (launch.bench_pipeline).
  folded    BatchNorm-folded scorer vs the unfolded one, timed alternately in
            the same run at --infer_batch_sizes (deploy.py).
  match     end to end: `launch.match` on --match_pairs pairs (process start
            included), from a checkpoint and from an export (deploy.py).

Every compute row is measured for each --dtypes entry and each --devices entry
('one' = the first device, 'all' = a data-parallel mesh over jax.devices();
'all' is skipped when there is a single device). Each row: compile time
(lower + compile), --warmup untimed calls, then --repeats timed calls each
ending in block_until_ready; median, min, max and the relative spread
(max - min) / median. FLOPs per pair come from XLA's cost analysis of the
compiled executable; achieved FLOP/s is reported as a percentage of the
measured matmul peak of the same dtype. Memory: the executable's
memory_analysis (arguments + outputs + temporaries), the device's
peak_bytes_in_use where the backend reports it (GPU/TPU), and the process RSS
high-water mark (CPU; process-wide, so monotone over the run).

Results print as a table and, with --out, go to a JSON file together with the
machine description (jax/jaxlib versions, devices, CPU model, load average).

A/B of the train step under config overrides (launch/bench/ab.py), instead of the parts:
  python -m launch.bench --ab='bf16=dtype="bfloat16"' --ab_rounds=15

Modules: harness.py (options, flags, the run and its table), compute.py and
deploy.py (the rows), workloads.py (meshes, inputs, models), timing.py (the
timing, cost and memory helpers shared with launch/accelerator_check.py), ab.py.
The pipeline row times launch/bench_pipeline.py.
"""
from absl import app

from launch.bench import harness

if __name__ == '__main__':
  harness.define_flags()
  app.run(harness.main)
