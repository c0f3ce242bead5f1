"""Runs memfront's DeepSpeed exports (memfront export --format deepspeed) as a
user would, under torchrun on this machine's CPUs (gloo), and reports.

    torchrun --nproc-per-node W run_deepspeed.py --steps 2 --vocab V ... a.json b.json

Every export is parsed by DeepSpeed's own config class, which rejects unknown
keys in its sections. One whose ZeRO++ quantized weights or gradients
(zero_quantized_weights, zero_quantized_gradients) DeepSpeed runs only on CUDA
is parsed only, and says so; every other one trains `--steps` optimizer steps
with deepspeed.initialize. Rank 0 prints one line per export:
    MEMFRONT_FRAMEWORKS {"export": ..., "parsed": true, "trained_steps": 2, ...}
"""
import argparse
import json
import math
import os
import sys
import traceback

import deepspeed
import torch
from deepspeed.runtime.config import DeepSpeedConfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny_gpt import model_of, next_token_loss, shape_arguments  # noqa: E402

CUDA_ONLY = ("zero_quantized_weights", "zero_quantized_gradients")


def run_export(path, args):
    with open(path, encoding="utf-8") as file:
        config = json.load(file)
    DeepSpeedConfig(config)
    result = {"export": os.path.basename(path), "parsed": True, "trained_steps": 0, "losses": []}
    cuda_only = [key for key in CUDA_ONLY if config.get("zero_optimization", {}).get(key)]
    if cuda_only and not torch.cuda.is_available():
        result["parse_only"] = ", ".join(cuda_only) + ": DeepSpeed's ZeRO++ quantized collectives run on CUDA only"
        return result
    model = model_of(args)
    engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=model.parameters(), config=config)
    generator = torch.Generator().manual_seed(torch.distributed.get_rank())
    for _ in range(args.steps):
        for _ in range(engine.gradient_accumulation_steps()):
            batch = torch.randint(0, args.vocab, (engine.train_micro_batch_size_per_gpu(), args.seq + 1),
                                  generator=generator)
            loss = next_token_loss(engine, batch)
            engine.backward(loss)
            engine.step()
        result["losses"].append(loss.item())
    result["trained_steps"] = engine.global_steps
    if not all(math.isfinite(loss) for loss in result["losses"]):
        raise RuntimeError(f"a loss is not finite: {result['losses']}")
    engine.destroy()
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2)
    shape_arguments(parser)
    parser.add_argument("exports", nargs="+")
    args = parser.parse_args()
    deepspeed.init_distributed(dist_backend="gloo")
    for path in args.exports:
        try:
            result = run_export(path, args)
        except Exception as error:  # reported, and the other exports still run
            result = {"export": os.path.basename(path), "error": f"{type(error).__name__}: {error}"}
            traceback.print_exc()
        if torch.distributed.get_rank() == 0:
            print("MEMFRONT_FRAMEWORKS " + json.dumps(result), flush=True)
        torch.distributed.barrier()


if __name__ == "__main__":
    main()
