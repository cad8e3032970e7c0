"""MTC in PyTorch (CPU), the reference that ``benchmarks.train`` times Keras-JAX against.

The same architecture as ``mtc_keras.models.build_model("mtc", ..., **benchmarks.train.TWIN_OVERRIDES)``, with
the same parameter count: embedding (reshape + linear), post-norm encoders with H heads of key dim d // H
projected back to d, bottlenecks (1x1, 1x3, 1x1 convs, ReLU and dropout after each, projected
residual), fusion blocks (pool + linear + LayerNorm into the tokens; linear + linear
interpolation + BatchNorm into the second bottleneck after its first conv), pooled softmax
heads. Channels-first, as PyTorch's convolutions prefer. Hyper-parameters come in as the dict
``mtc_keras.models.default_config`` returns plus ``head_branch`` (``models.HEAD_BRANCH``), so
this module never restates them and imports no Keras.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    def __init__(self, d_model, num_heads, key_dim):
        super().__init__()
        self.h, self.k = num_heads, key_dim
        self.q = nn.Linear(d_model, num_heads * key_dim)
        self.kk = nn.Linear(d_model, num_heads * key_dim)
        self.v = nn.Linear(d_model, num_heads * key_dim)
        self.out = nn.Linear(num_heads * key_dim, d_model)

    def forward(self, x):
        b, n, _ = x.shape

        def heads(t):
            return t.view(b, n, self.h, self.k).transpose(1, 2)

        z = F.scaled_dot_product_attention(heads(self.q(x)), heads(self.kk(x)), heads(self.v(x)))
        return self.out(z.transpose(1, 2).reshape(b, n, self.h * self.k))


class Encoder(nn.Module):
    def __init__(self, d_model, num_heads, key_dim, ff_dim, dropout):
        super().__init__()
        self.attention = Attention(d_model, num_heads, key_dim)
        self.norm1 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, ff_dim), nn.ReLU(), nn.Dropout(dropout),
                                nn.Linear(ff_dim, d_model), nn.Dropout(dropout))
        self.drop = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, x):
        x = self.norm1(x + self.drop(self.attention(x)))
        return self.norm2(x + self.ff(x))


class Bottleneck(nn.Module):
    def __init__(self, in_channels, filters, kernel_size, dropout):
        super().__init__()
        f0, f1, f2 = filters
        self.conv1 = nn.Conv1d(in_channels, f0, 1)
        self.conv2 = nn.Conv1d(f0, f1, kernel_size, padding=kernel_size // 2)
        self.conv3 = nn.Conv1d(f1, f2, 1)
        self.drop = nn.Dropout(dropout)
        self.shortcut = nn.Conv1d(in_channels, f2, 1) if in_channels != f2 else None

    def forward(self, x, injected=None, return_tap=False):
        h = self.drop(F.relu(self.conv1(x)))
        if injected is not None:
            h = h + injected
        tap = self.drop(F.relu(self.conv2(h)))
        y = self.drop(F.relu(self.conv3(tap))) + (self.shortcut(x) if self.shortcut else x)
        return (y, tap) if return_tap else y


class TorchMTC(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        c = config
        self.seq_len, self.n, self.d = c["seq_len"], c["n_tokens"], c["d_model"]
        key_dim = c["key_dim"] or max(1, self.d // c["num_heads"])
        self.embed = nn.Linear(self.seq_len // self.n, self.d)

        def encoders(m):
            return nn.Sequential(*(Encoder(self.d, c["num_heads"], key_dim, c["ff_dim"],
                                           c["transformer_dropout"]) for _ in range(m)))

        self.encoders = nn.ModuleList(encoders(m) for m in c["encoder_repeats"])
        self.stages = nn.ModuleList()
        self.down, self.down_norm = nn.ModuleList(), nn.ModuleList()
        self.up, self.up_norm = nn.ModuleList(), nn.ModuleList()
        channels = 1
        for s, stage in enumerate(c["cnn_stages"]):
            blocks = nn.ModuleList()
            for filters in stage:
                blocks.append(Bottleneck(channels, filters, c["cnn_kernel_size"], c["cnn_dropout"]))
                channels = filters[2]
            self.stages.append(blocks)
            if s:
                self.down.append(nn.Linear(stage[0][1], self.d))
                self.down_norm.append(nn.LayerNorm(self.d))
                self.up.append(nn.Linear(self.d, stage[1][0]))
                self.up_norm.append(nn.BatchNorm1d(stage[1][0]))
        self.tasks = list(c["num_classes"])
        branch_width = {"transformer": self.d, "cnn": channels}
        self.head_branch = {t: c["head_branch"][t] for t in self.tasks}
        self.heads = nn.ModuleDict({t: nn.Linear(branch_width[self.head_branch[t]], k)
                                    for t, k in c["num_classes"].items()})

    def forward(self, packet):
        x = packet.float() / 255.0
        tokens = self.embed(x.view(-1, self.n, self.seq_len // self.n))
        cnn = x.unsqueeze(1)  # [b, 1, length]
        for s, (blocks, encoders) in enumerate(zip(self.stages, self.encoders)):
            if s == 0:
                tokens = encoders(tokens)
                for block in blocks:
                    cnn = block(cnn)
                continue
            cnn, tap = blocks[0](cnn, return_tap=True)
            pooled = F.adaptive_avg_pool1d(tap, self.n).transpose(1, 2)  # [b, n, c]
            tokens = encoders(tokens + self.down_norm[s - 1](self.down[s - 1](pooled)))
            up = self.up[s - 1](tokens).transpose(1, 2)  # [b, c, n]
            up = F.interpolate(up, size=self.seq_len, mode="linear", align_corners=False)
            cnn = blocks[1](cnn, injected=self.up_norm[s - 1](up))
            for block in blocks[2:]:
                cnn = block(cnn)
        features = {"transformer": tokens.mean(1), "cnn": cnn.mean(2)}
        return {t: self.heads[t](features[self.head_branch[t]]) for t in self.tasks}


def count_parameters(model: nn.Module) -> int:
    """Parameters plus BatchNorm running statistics, as Keras counts them."""
    buffers = sum(b.numel() for name, b in model.named_buffers() if "running_" in name)
    return sum(p.numel() for p in model.parameters()) + buffers


def train_step_fn(model: nn.Module, loss_weights: dict, learning_rate=1e-3, weight_decay=1e-4):
    """One AdamW step on a batch with weighted, masked (ignore -1) cross-entropy losses."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)

    def step(packet, labels):
        optimizer.zero_grad(set_to_none=True)
        logits = model(packet)
        loss = sum(loss_weights[t] * F.cross_entropy(logits[t], labels[t], ignore_index=-1)
                   for t in logits)
        loss.backward()
        optimizer.step()
        return loss.detach().item()

    return step
