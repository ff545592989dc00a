#!/usr/bin/env python3
"""Build a Depth Anything V2 Small-architecture ONNX model with random weights, for timing only.

No Depth Anything V2 weights can be downloaded on the development machines, but inference time
does not depend on the weight values: it depends on the architecture, the input size and the
runtime. This script re-implements the published architecture compactly in PyTorch,

  encoder  DINOv2 ViT-S/14: patch 14, width 384, 12 blocks, 6 heads, MLP 1536, LayerScale,
           learned position embedding for a 37x37 grid + class token;
  decoder  DPT head of Depth Anything V2 Small: taps after blocks 3, 6, 9, 12 (normed, class token
           dropped), 1x1 projections to 48/96/192/384 channels, resize x4/x2/x1/x0.5, 3x3 convs to
           64 features, four fusion blocks (two residual conv units each), output convs 64->32
           ->(upsample to input size)->32->1 with ReLU,

with the layer sizes of the official `depth_anything_v2_vits.pth` (24.8 M parameters, about
99 MB as fp32 ONNX), and exports it with the input/output contract of the official exports:
`pixel_values` [1, 3, S, S] -> `predicted_depth` [1, S, S] (or `image` -> `depth` with
--names official). The outputs are meaningless: use the file for timing and for the loading and
pre/post-processing tests, never for depth.

Needs torch (benchmark-only; never a dependency of the package). On the development machine:

    python3 -m venv .bench-venv
    .bench-venv/bin/pip install \
        /opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl onnx==1.23.2 onnxscript
    .bench-venv/bin/python spatial_caption_ros/spatial_caption_ros/tools/make_dav2_timing_model.py

It writes ~/.cache/spatial_caption_ros/models/depth_anything_v2_vits_timing_518.onnx.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import sys

import torch
from torch import nn
import torch.nn.functional as F

PATCH = 14
EMBED_DIM = 384          # ViT-S
DEPTH = 12
HEADS = 6
MLP_RATIO = 4
PRETRAIN_GRID = 37       # DINOv2 position embedding grid (518 / 14)
TAPS = (2, 5, 8, 11)     # Depth Anything V2 'vits' intermediate_layer_idx
FEATURES = 64            # DPT head width for vits
OUT_CHANNELS = (48, 96, 192, 384)
HEAD_HIDDEN = 32


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale (DINOv2)."""

    def __init__(self) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(EMBED_DIM, eps=1e-6)
        self.qkv = nn.Linear(EMBED_DIM, 3 * EMBED_DIM)
        self.proj = nn.Linear(EMBED_DIM, EMBED_DIM)
        self.ls1 = nn.Parameter(torch.full((EMBED_DIM,), 1e-1))
        self.norm2 = nn.LayerNorm(EMBED_DIM, eps=1e-6)
        self.fc1 = nn.Linear(EMBED_DIM, MLP_RATIO * EMBED_DIM)
        self.fc2 = nn.Linear(MLP_RATIO * EMBED_DIM, EMBED_DIM)
        self.ls2 = nn.Parameter(torch.full((EMBED_DIM,), 1e-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, HEADS, c // HEADS).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * (c // HEADS) ** -0.5) @ k.transpose(-2, -1)
        y = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, c)
        x = x + self.ls1 * self.proj(y)
        return x + self.ls2 * self.fc2(F.gelu(self.fc1(self.norm2(x))))


class DinoV2Small(nn.Module):
    """DINOv2 ViT-S/14 returning the normed patch tokens after the tapped blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, EMBED_DIM, PATCH, PATCH)
        self.cls_token = nn.Parameter(torch.randn(1, 1, EMBED_DIM) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + PRETRAIN_GRID ** 2, EMBED_DIM) * 0.02)
        self.mask_token = nn.Parameter(torch.zeros(1, EMBED_DIM))   # unused, as in DINOv2
        self.blocks = nn.ModuleList(Block() for _ in range(DEPTH))
        self.norm = nn.LayerNorm(EMBED_DIM, eps=1e-6)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b, _, h, w = x.shape
        gh, gw = h // PATCH, w // PATCH
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        pos = self.pos_embed
        if (gh, gw) != (PRETRAIN_GRID, PRETRAIN_GRID):   # DINOv2 interpolates the grid
            grid = pos[:, 1:].reshape(1, PRETRAIN_GRID, PRETRAIN_GRID, EMBED_DIM)
            grid = grid.permute(0, 3, 1, 2)
            grid = F.interpolate(grid, size=(gh, gw), mode='bicubic', align_corners=False)
            pos = torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)], 1)
        x = torch.cat([self.cls_token.expand(b, -1, -1), x], dim=1) + pos
        taps = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in TAPS:
                taps.append(self.norm(x)[:, 1:])
        return taps


class ResidualConvUnit(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(FEATURES, FEATURES, 3, padding=1)
        self.conv2 = nn.Conv2d(FEATURES, FEATURES, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(F.relu(x)))) + x


class FusionBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.res1 = ResidualConvUnit()
        self.res2 = ResidualConvUnit()
        self.out_conv = nn.Conv2d(FEATURES, FEATURES, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None,
                size: tuple[int, int] | None = None) -> torch.Tensor:
        if skip is not None:
            x = x + self.res1(skip)
        x = self.res2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=True)
        else:
            x = F.interpolate(x, size=size, mode='bilinear', align_corners=True)
        return self.out_conv(x)


class DPTHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.projects = nn.ModuleList(nn.Conv2d(EMBED_DIM, c, 1) for c in OUT_CHANNELS)
        self.resize = nn.ModuleList([
            nn.ConvTranspose2d(OUT_CHANNELS[0], OUT_CHANNELS[0], 4, stride=4),
            nn.ConvTranspose2d(OUT_CHANNELS[1], OUT_CHANNELS[1], 2, stride=2),
            nn.Identity(),
            nn.Conv2d(OUT_CHANNELS[3], OUT_CHANNELS[3], 3, stride=2, padding=1)])
        self.layer_rn = nn.ModuleList(nn.Conv2d(c, FEATURES, 3, padding=1, bias=False)
                                      for c in OUT_CHANNELS)
        self.refine = nn.ModuleList(FusionBlock() for _ in range(4))
        self.output_conv1 = nn.Conv2d(FEATURES, FEATURES // 2, 3, padding=1)
        self.output_conv2a = nn.Conv2d(FEATURES // 2, HEAD_HIDDEN, 3, padding=1)
        self.output_conv2b = nn.Conv2d(HEAD_HIDDEN, 1, 1)
        # Random weights would leave most outputs at the final ReLU's zero; a positive bias keeps
        # the (meaningless) output varied, so post-processing sees a non-constant map.
        nn.init.constant_(self.output_conv2b.bias, 1.0)

    def forward(self, taps: list[torch.Tensor], gh: int, gw: int) -> torch.Tensor:
        layers = []
        for i, tokens in enumerate(taps):
            x = tokens.permute(0, 2, 1).reshape(tokens.shape[0], EMBED_DIM, gh, gw)
            layers.append(self.layer_rn[i](self.resize[i](self.projects[i](x))))
        l1, l2, l3, l4 = layers
        p4 = self.refine[3](l4, size=tuple(l3.shape[2:]))
        p3 = self.refine[2](p4, l3, size=tuple(l2.shape[2:]))
        p2 = self.refine[1](p3, l2, size=tuple(l1.shape[2:]))
        p1 = self.refine[0](p2, l1)
        out = self.output_conv1(p1)
        out = F.interpolate(out, size=(gh * PATCH, gw * PATCH), mode='bilinear',
                            align_corners=True)
        out = self.output_conv2b(F.relu(self.output_conv2a(out)))
        return F.relu(out)


class DepthAnythingV2Small(nn.Module):
    """Image [B, 3, H, W] (sides multiple of 14) -> relative inverse depth [B, H, W]."""

    def __init__(self) -> None:
        super().__init__()
        self.pretrained = DinoV2Small()
        self.depth_head = DPTHead()

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        gh, gw = pixel_values.shape[-2] // PATCH, pixel_values.shape[-1] // PATCH
        depth = self.depth_head(self.pretrained(pixel_values), gh, gw)
        return F.relu(depth).squeeze(1)


def default_output(size: int) -> Path:
    base = os.environ.get('SPATIAL_CAPTION_CACHE') or str(
        Path(os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache') / 'spatial_caption_ros')
    return Path(base) / 'models' / f'depth_anything_v2_vits_timing_{size}.onnx'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--size', type=int, default=518,
                        help='input side in pixels, a multiple of 14 (default 518)')
    parser.add_argument('--output', type=Path, help='ONNX file to write (default: the cache)')
    parser.add_argument('--names', choices=('transformers', 'official'), default='transformers',
                        help='tensor names: pixel_values/predicted_depth (transformers export) or '
                             'image/depth (official repository export)')
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    if args.size % PATCH or args.size < PATCH:
        parser.error(f'--size must be a positive multiple of {PATCH}')
    out = args.output or default_output(args.size)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    model = DepthAnythingV2Small().eval()
    params = sum(p.numel() for p in model.parameters())
    in_name, out_name = (('pixel_values', 'predicted_depth') if args.names == 'transformers'
                         else ('image', 'depth'))
    dummy = torch.randn(1, 3, args.size, args.size)
    with torch.no_grad():
        depth = model(dummy)
    assert depth.shape == (1, args.size, args.size), depth.shape
    tmp = out.with_suffix('.tmp.onnx')
    torch.onnx.export(model, (dummy,), str(tmp), input_names=[in_name], output_names=[out_name],
                      opset_version=args.opset, dynamo=False)
    tmp.replace(out)
    print(f'wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {params / 1e6:.2f} M parameters, '
          f'{in_name} [1, 3, {args.size}, {args.size}] -> {out_name} [1, {args.size}, '
          f'{args.size}]; random weights: for timing only)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
