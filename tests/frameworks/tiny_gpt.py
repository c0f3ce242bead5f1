"""A GPT-style decoder of a memfront record's shape, as a PyTorch user's model.

The frameworks tests (tests/test_frameworks.cpp) train the exports on it: the
blocks are the ModuleList `layers`, run one after another in forward, which is
what the PyTorch export's apply_memfront_config(model, "layers") expects.
"""
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(width)
        self.fc = nn.Linear(width, 4 * width)
        self.proj = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.shape[1]
        causal = torch.triu(torch.ones(seq, seq, dtype=torch.bool, device=x.device), diagonal=1)
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=causal, need_weights=False)[0]
        return x + self.proj(nn.functional.gelu(self.fc(self.ln2(x))))


class TinyGpt(nn.Module):
    def __init__(self, vocab: int, seq: int, width: int, heads: int, layers: int):
        super().__init__()
        self.tokens = nn.Embedding(vocab, width)
        self.positions = nn.Embedding(seq, width)
        nn.init.normal_(self.tokens.weight, std=0.02)
        nn.init.normal_(self.positions.weight, std=0.02)
        self.layers = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.tokens(tokens) + self.positions(positions)
        for block in self.layers:
            x = block(x)
        return self.ln(x) @ self.tokens.weight.t()  # tied LM head


def next_token_loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy of predicting each next token of `batch`."""
    logits = model(batch[:, :-1])
    return nn.functional.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())


def shape_arguments(parser) -> None:
    parser.add_argument("--vocab", type=int, required=True)
    parser.add_argument("--seq", type=int, required=True)
    parser.add_argument("--width", type=int, required=True)
    parser.add_argument("--heads", type=int, required=True)
    parser.add_argument("--layers", type=int, required=True)


def model_of(args) -> TinyGpt:
    torch.manual_seed(1234)  # the same initial weights on every rank
    return TinyGpt(args.vocab, args.seq, args.width, args.heads, args.layers)
