# memfront export: PyTorch DistributedDataParallel setup for trial 50621c284c0705b1
#
# Provenance
#   results_file: results/golden.jsonl
#   study: golden
#   trial: 50621c284c0705b1
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
#   - precision.compute=bf16: DistributedDataParallel has no precision setting; train_step runs the forward pass and loss under torch.autocast(DEVICE, dtype=torch.bfloat16)
#
# Not mapped (no PyTorch equivalent: this run differs from the measured one there)
#   - quant.error_feedback=true: PyTorch keeps no residual of bf16 gradient rounding
#
# Use: after torch.distributed.init_process_group("nccl"), with the model on DEVICE,
#     model = apply_memfront_config(model, "layers")
#     optimizer = make_optimizer(model)
#     for micro_batches in data:  # GRADIENT_ACCUMULATION_STEPS micro-batches per step
#         train_step(model, optimizer, micro_batches, loss_fn)
# where "layers" names the ModuleList of transformer blocks (e.g. "transformer.h"),
# which the model's forward runs one after another (for block in self.layers:
# x = block(x)), and loss_fn(model, micro_batch) returns a micro-batch's loss.
# Launch WORLD_SIZE ranks (torchrun, or srun under the #SBATCH lines of the sbatch export).
import contextlib

import torch
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel

# backend=cuda: the trial ran on cuda (process group "nccl"); set "cpu" to run elsewhere.
DEVICE = "cuda"
WORLD_SIZE = 1
MICRO_BATCH_PER_RANK = 4  # batch.micro: sequences per micro-batch
GRADIENT_ACCUMULATION_STEPS = 1  # batch.accum: micro-batches per optimizer step


def apply_memfront_config(model: torch.nn.Module, blocks_name: str) -> torch.nn.Module:
    """Applies trial 50621c284c0705b1's configuration to `model` and returns the model to train."""
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


def train_step(model, optimizer, micro_batches, loss_fn) -> float:
    """One optimizer step over the micro-batches (GRADIENT_ACCUMULATION_STEPS of them),
    reducing the gradients once, after the last one, as memfront's step does.
    Returns the step's loss, the mean over its micro-batches."""
    total = 0.0
    for index, micro_batch in enumerate(micro_batches):
        last = index == len(micro_batches) - 1
        with contextlib.nullcontext() if last else model.no_sync():
            # precision.compute=bf16: DistributedDataParallel has no precision setting of its own.
            with torch.autocast(DEVICE, dtype=torch.bfloat16):
                loss = loss_fn(model, micro_batch) / len(micro_batches)
            loss.backward()
        total += loss.item()
    optimizer.step()
    optimizer.zero_grad()
    return total
