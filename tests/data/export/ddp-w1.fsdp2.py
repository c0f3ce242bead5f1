# memfront export: PyTorch DistributedDataParallel setup for trial 7013618a476d0440
#
# Provenance
#   results_file: results/golden.jsonl
#   study: golden
#   trial: 7013618a476d0440
#   status: failed
#   error: c.json: /backend: backend=cuda cannot run here: no CUDA device: cudaGetDeviceCount found 0
#   machine.host: node17
#   machine.cpu: AMD EPYC 7763 64-Core Processor
#   machine.gpu: none
#   memfront_version: 0.1.0
#
# Notes
#   - status=failed: memfront did not complete this trial; its measured figures are partial or absent
#   - model (V=256 T=64 C=64 H=4 L=4), data.* and train.steps/warmup/seed/threads/eval_sequences describe memfront's benchmark workload; PyTorch trains your model on your data, so the measured figures hold for a model of this shape
#   - precision.compute=bf16: DistributedDataParallel has no precision setting; run the forward pass and loss under torch.autocast("cuda", dtype=torch.bfloat16)
#
# Not mapped (no PyTorch equivalent: this run differs from the measured one there)
#   - quant.error_feedback=true: PyTorch keeps no residual of bf16 gradient rounding
#
# Use: after torch.distributed.init_process_group(), with the model on this rank's GPU,
#     model = apply_memfront_config(model, "layers")
#     optimizer = make_optimizer(model)
# where "layers" names the ModuleList of transformer blocks (e.g. "transformer.h"),
# which the model's forward runs one after another (x = block(x)). Launch
# WORLD_SIZE ranks (torchrun, or srun under the #SBATCH lines of the sbatch export).
import torch
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel

WORLD_SIZE = 1
MICRO_BATCH_PER_RANK = 4  # batch.micro: sequences per micro-batch
GRADIENT_ACCUMULATION_STEPS = 1  # batch.accum: micro-batches per optimizer step


def apply_memfront_config(model: torch.nn.Module, blocks_name: str) -> torch.nn.Module:
    """Applies trial 7013618a476d0440's configuration to `model` and returns the model to train."""
    # blocks_name is not needed: ddp without checkpointing leaves the blocks as they are.
    # shard.strategy=ddp: every rank holds the whole model, gradients and optimizer state;
    # gradients are all-reduced.
    model = DistributedDataParallel(model)
    # quant.grad=bf16: gradients are all-reduced in bfloat16.
    model.register_comm_hook(None, default_hooks.bf16_compress_hook)
    return model


def make_optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    """AdamW as memfront trained; build it after apply_memfront_config."""
    return torch.optim.AdamW(model.parameters(), lr=0.001, betas=(0.9, 0.95), eps=1e-08, weight_decay=0.0)
