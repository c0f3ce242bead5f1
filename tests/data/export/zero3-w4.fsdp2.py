# memfront export: PyTorch FSDP2 setup for trial 27ab9fbd5e885b71
#
# Provenance
#   results_file: results/golden.jsonl
#   study: golden
#   trial: 27ab9fbd5e885b71
#   status: ok
#   machine.host: node17
#   machine.cpu: AMD EPYC 7763 64-Core Processor
#   machine.gpu: none
#   memfront_version: 0.1.0
#   measured.peak_memory_bytes: 7540736
#   measured.peak_memory: 7.2 MiB
#   measured.step_time_median_s: 0.0441
#   measured.tokens_per_s: 11615.5
#   measured.final_loss: 4.5431
#   measured.loss_delta: 0.0123
#
# Notes
#   - backend=cpu: measured on memfront's CPU backend; on GPUs the step time and the memory beside the model state (CUDA context, allocator caching, kernel workspaces) differ
#   - model (V=256 T=64 C=64 H=4 L=4), data.* and train.steps/warmup/seed/threads/eval_sequences describe memfront's benchmark workload; PyTorch trains your model on your data, so the measured figures hold for a model of this shape
#
# Not mapped (no PyTorch equivalent: this run differs from the measured one there)
#   - precision.activations=int8: PyTorch keeps saved activations in the compute dtype; it has no setting for their storage format
#   - topk.attention=8: PyTorch has no per-query Top-K attention; it is a change to the model's attention code
#   - placement.ranks_per_node=2, placement.order=block, placement.collectives=flat: PyTorch takes rank placement from its launcher (the #SBATCH lines of the sbatch export place ranks as measured) and NCCL picks its own collective algorithms
#   - placement.link_latency_us=5.0, placement.link_bandwidth_gigabytes_per_s=10.0: memfront's emulated inter-node link; the real network takes its place
#   - quant.grad=int4 (quant.block=256, quant.error_feedback=true): PyTorch has no integer gradient compression; gradients are reduced in float32
#   - quant.weights=int8 (quant.block=256): FSDP2 all-gathers the weights in param_dtype; it has no int8 all-gather
#
# Use: after torch.distributed.init_process_group("gloo"), with the model on DEVICE,
#     model = apply_memfront_config(model, "layers")
#     optimizer = make_optimizer(model)
#     for micro_batches in data:  # GRADIENT_ACCUMULATION_STEPS micro-batches per step
#         train_step(model, optimizer, micro_batches, loss_fn)
# where "layers" names the ModuleList of transformer blocks (e.g. "transformer.h"),
# which the model's forward runs one after another (for block in self.layers:
# x = block(x)), and loss_fn(model, micro_batch) returns a micro-batch's loss.
# Launch WORLD_SIZE ranks (torchrun, or srun under the #SBATCH lines of the sbatch export).
import functools

import torch
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.utils.checkpoint import checkpoint

# backend=cpu: the trial ran on cpu (process group "gloo"); set "cuda" to run elsewhere.
DEVICE = "cpu"
WORLD_SIZE = 4
MICRO_BATCH_PER_RANK = 4  # batch.micro: sequences per micro-batch
GRADIENT_ACCUMULATION_STEPS = 2  # batch.accum: micro-batches per optimizer step
CHECKPOINT_EVERY = 2  # checkpoint.every


class CheckpointedSegments(torch.nn.ModuleList):
    """The blocks under their own names, so that the state dict keeps its keys.

    checkpoint.every=2: iterating yields one callable per segment of CHECKPOINT_EVERY
    consecutive blocks, which keeps only the segment's input; backward
    recomputes the segment's forward (as memfront keeps the input of blocks
    0, k, 2k, ...). Indexing still gives the blocks themselves.
    """

    def __iter__(self):
        blocks = list(self._modules.values())
        for first in range(0, len(blocks), CHECKPOINT_EVERY):
            yield functools.partial(_run_checkpointed, blocks[first:first + CHECKPOINT_EVERY])


def _run_segment(segment, x):
    for block in segment:
        x = block(x)
    return x


def _run_checkpointed(segment, x):
    return checkpoint(_run_segment, segment, x, use_reentrant=False)


def apply_memfront_config(model: torch.nn.Module, blocks_name: str) -> torch.nn.Module:
    """Applies trial 27ab9fbd5e885b71's configuration to `model` and returns the model to train."""
    parent_name, _, leaf = blocks_name.rpartition(".")
    parent = model.get_submodule(parent_name)
    blocks = list(getattr(parent, leaf))
    setattr(parent, leaf, CheckpointedSegments(blocks))
    # shard.strategy=zero3: sharded over all WORLD_SIZE ranks.
    mesh = init_device_mesh(DEVICE, (WORLD_SIZE,), mesh_dim_names=("shard",))
    # param_dtype: precision.compute=fp32; reduce_dtype: quant.grad=int4
    mp_policy = MixedPrecisionPolicy(param_dtype=torch.float32, reduce_dtype=torch.float32)
    # One all-gather unit per block, as memfront gathers them; the root unit holds
    # the rest (embeddings, final LayerNorm).
    for block in blocks:
        fully_shard(block, mesh=mesh, reshard_after_forward=True, mp_policy=mp_policy)
    fully_shard(model, mesh=mesh, reshard_after_forward=True, mp_policy=mp_policy)
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
        model.set_requires_gradient_sync(last)
        loss = loss_fn(model, micro_batch) / len(micro_batches)
        loss.backward()
        total += loss.item()
    optimizer.step()
    optimizer.zero_grad()
    return total
