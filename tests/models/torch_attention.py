"""The zoo's vit_tiny and mixer_tiny as PyTorch modules built from torch's own layers
(nn.MultiheadAttention, nn.LayerNorm, nn.Linear, F.unfold for the patches), and the map from
each dagnet param to the torch tensor that holds it, for the parity tests."""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def patches(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, tokens, C * patch * patch), tokens row by row."""
    return F.unfold(x, kernel_size=patch, stride=patch).transpose(1, 2)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class ViTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x):
        a = self.ln1(x)
        x = x + self.attn(a, a, a, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class MixerBlock(nn.Module):
    def __init__(self, tokens: int, dim: int, token_hidden: int, channel_hidden: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.tokens, self.channels = Mlp(tokens, token_hidden), Mlp(dim, channel_hidden)

    def forward(self, x):
        x = x + self.tokens(self.ln1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channels(self.ln2(x))


class Net(nn.Module):
    """patches -> embed (+ pos) -> blocks -> layer norm -> mean over tokens -> head."""

    def __init__(self, patch: int, tokens: int, patch_size: int, dim: int, blocks, classes: int,
                 pos: bool):
        super().__init__()
        self.patch = patch
        self.embed = nn.Linear(patch_size, dim)
        self.pos = nn.Parameter(torch.zeros(tokens, dim)) if pos else None
        self.blocks = nn.ModuleList(blocks)
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)

    def forward(self, x):
        h = self.embed(patches(x, self.patch))
        if self.pos is not None:
            h = h + self.pos
        for b in self.blocks:
            h = b(h)
        return self.head(self.norm(h).mean(1))


def vit(patch=4, tokens=49, patch_size=16, dim=64, depth=2, heads=4, mlp_hidden=128,
        classes=10) -> Net:
    return Net(patch, tokens, patch_size, dim, [ViTBlock(dim, heads, mlp_hidden)
                                                for _ in range(depth)], classes, pos=True)


def mixer(patch=4, tokens=49, patch_size=16, dim=64, depth=2, token_hidden=64,
          channel_hidden=128, classes=10) -> Net:
    return Net(patch, tokens, patch_size, dim, [MixerBlock(tokens, dim, token_hidden,
                                                           channel_hidden)
                                                for _ in range(depth)], classes, pos=False)


def _linear(m: nn.Linear, name: str) -> dict:
    """dagnet's (in, out) weight is torch's (out, in) weight transposed."""
    return {f"{name}.w": (m.weight, True), f"{name}.b": (m.bias, False)}


def _ln(m: nn.LayerNorm, name: str) -> dict:
    return {f"{name}.gamma": (m.weight, False), f"{name}.beta": (m.bias, False)}


def param_map(net: Net) -> dict:
    """{dagnet param: (torch tensor or a slice of one, transposed?)}."""
    out = {**_linear(net.embed, "embed"), **_ln(net.norm, "norm"),
           "scores.w": (net.head.weight, True), "scores.b": (net.head.bias, False)}
    if net.pos is not None:
        out["pos.table"] = (net.pos, False)
    for i, b in enumerate(net.blocks, start=1):
        name = f"block{i}"
        out.update({**_ln(b.ln1, f"{name}.ln1"), **_ln(b.ln2, f"{name}.ln2")})
        if isinstance(b, ViTBlock):
            d = b.attn.embed_dim
            for k, part in enumerate("qkv"):  # in_proj stacks Wq, Wk, Wv (out, in) row-wise
                rows = slice(k * d, (k + 1) * d)
                out[f"{name}.attn.{part}.w"] = ((b.attn, "in_proj_weight", rows), True)
                out[f"{name}.attn.{part}.b"] = ((b.attn, "in_proj_bias", rows), False)
            out.update(_linear(b.attn.out_proj, f"{name}.attn.out"))
            out.update({**_linear(b.mlp.fc1, f"{name}.mlp.fc1"),
                        **_linear(b.mlp.fc2, f"{name}.mlp.fc2")})
        else:
            for mlp, what in ((b.tokens, "tokens"), (b.channels, "channels")):
                out.update({**_linear(mlp.fc1, f"{name}.{what}.fc1"),
                            **_linear(mlp.fc2, f"{name}.{what}.fc2")})
    return out


def _tensor(ref, grad: bool = False) -> torch.Tensor:
    if isinstance(ref, tuple):  # (module, attribute, rows): a slice of a stacked param
        module, attr, rows = ref
        t = getattr(module, attr)
        return (t.grad if grad else t.data)[rows]
    return ref.grad if grad else ref.data


def load_params(net: Net, params: dict) -> None:
    """Copy dagnet's params into the torch module."""
    for name, (ref, transposed) in param_map(net).items():
        a = np.asarray(params[name])
        _tensor(ref).copy_(torch.from_numpy(a.T.copy() if transposed else a.copy()))


def grads(net: Net) -> dict:
    """The torch gradients in dagnet's layout."""
    out = {}
    for name, (ref, transposed) in param_map(net).items():
        g = _tensor(ref, grad=True).detach().numpy()
        out[name] = g.T if transposed else g
    return out
