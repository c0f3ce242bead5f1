"""Runs memfront's PyTorch exports (memfront export --format fsdp2) as a user
would, under torchrun on this machine's CPUs, and reports what happened.

    torchrun --nproc-per-node W run_torch.py --steps 2 --vocab V ... a.py b.py

For each export: apply_memfront_config on a TinyGpt, make_optimizer, then
`--steps` optimizer steps with the export's train_step, under the profiler,
which counts the collectives of every micro-batch. Afterwards the state dict's
keys must be the unwrapped model's, and a state dict saved from the unwrapped
model must load. Rank 0 prints one line per export:
    MEMFRONT_FRAMEWORKS {"export": ..., "reductions": [[per micro-batch] per step], ...}
An export that fails prints its error in that line instead, and the rest go on.
"""
import argparse
import importlib.util
import json
import math
import os
import sys
import traceback

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny_gpt import model_of, next_token_loss, shape_arguments  # noqa: E402

MARK = "memfront_micro_batch_"


def load_export(path: str, index: int):
    spec = importlib.util.spec_from_file_location(f"memfront_export_{index}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def collectives_by_micro_batch(prof, micro_batches: int):
    """(reductions, gathers) of each micro-batch: the c10d operations that
    start after its marker and before the next one's."""
    marks, ops = [], []
    for event in prof.events():
        if event.name.startswith(MARK):
            marks.append((event.time_range.start, int(event.name[len(MARK):])))
        elif event.name.startswith("c10d::"):
            ops.append((event.time_range.start, event.name))
    marks.sort()
    reductions, gathers = [0] * micro_batches, [0] * micro_batches
    for start, name in ops:
        owner = [index for mark_start, index in marks if mark_start <= start]
        if not owner:
            continue
        if "reduce" in name:
            reductions[owner[-1]] += 1
        elif "gather" in name:
            gathers[owner[-1]] += 1
    return reductions, gathers


def run_export(module, args, index):
    model = model_of(args)
    unwrapped_state = {key: value.detach().clone() for key, value in model.state_dict().items()}
    model = module.apply_memfront_config(model, "layers")
    optimizer = module.make_optimizer(model)
    ddp = isinstance(model, torch.nn.parallel.DistributedDataParallel)
    micro_batches = module.GRADIENT_ACCUMULATION_STEPS
    counter = {"next": 0}

    def marked_loss(model, batch):
        with record_function(MARK + str(counter["next"])):
            counter["next"] += 1
        return next_token_loss(model, batch)

    result = {"export": os.path.basename(args.exports[index]), "ddp": ddp, "device": module.DEVICE,
              "reductions": [], "gathers": [], "losses": []}
    generator = torch.Generator().manual_seed(dist.get_rank())
    for _ in range(args.steps):
        batches = [torch.randint(0, args.vocab, (module.MICRO_BATCH_PER_RANK, args.seq + 1), generator=generator)
                   for _ in range(micro_batches)]
        counter["next"] = 0
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            loss = module.train_step(model, optimizer, batches, marked_loss)
        reductions, gathers = collectives_by_micro_batch(prof, micro_batches)
        result["reductions"].append(reductions)
        result["gathers"].append(gathers)
        result["losses"].append(loss)
    if not all(math.isfinite(loss) for loss in result["losses"]):
        raise RuntimeError(f"a loss is not finite: {result['losses']}")

    wrapped = model.module if ddp else model
    result["state_dict_keys_kept"] = sorted(wrapped.state_dict().keys()) == sorted(unwrapped_state.keys())
    if ddp:
        wrapped.load_state_dict(unwrapped_state, strict=True)
    else:
        set_model_state_dict(model, unwrapped_state, options=StateDictOptions(full_state_dict=True, strict=True))
    result["state_dict_loaded"] = True
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2)
    shape_arguments(parser)
    parser.add_argument("exports", nargs="+")
    args = parser.parse_args()
    dist.init_process_group("gloo")
    for index, path in enumerate(args.exports):
        try:
            result = run_export(load_export(path, index), args, index)
        except Exception as error:  # reported, and the other exports still run
            result = {"export": os.path.basename(path), "error": f"{type(error).__name__}: {error}"}
            traceback.print_exc()
        if dist.get_rank() == 0:
            print("MEMFRONT_FRAMEWORKS " + json.dumps(result), flush=True)
        dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
