#!/usr/bin/python3
"""Writes tests/fixtures/zoo/<name>.txt: the eval-mode logits of every fer.h zoo
architecture, computed by PyTorch as an independent implementation.

    /usr/bin/python3 tools/gen_zoo_fixtures.py [OUTDIR]    (default tests/fixtures/zoo)

Each architecture is rewritten here as ordinary torch.nn modules from the
descriptions in fer.h section 3.6; nothing is read from fer.h. Weights are not
stored: every parameter is a pure function of (tensor number, element index),
so tests/test_zoo.c fills fer.h's arena with the same floats. Only the test in
C runs in CI; this script is run by hand when an architecture changes.

Parameter formula (shared with tests/test_zoo.c):
  Tensors are numbered t = 0, 1, 2, ... in fer.h node order: a conv or dense
  layer owns its weight, then its bias if it has one; a batch norm owns gamma,
  beta, running mean, running var; a PReLU owns its slopes; a dense layer that
  shares another's parameters (CBAM's MLP on the max-pooled vector) owns none.
  u(t, i) = (splitmix64((t << 32) | i) >> 40) / 2^24 * 2 - 1, in [-1, 1).
  Values are computed in double and rounded once to float32:
    conv/dense weight  u * sqrt(6 / fan_in)      bias          0.1 * u
    BN gamma           1 + 0.2 * u               beta, mean    0.1 * u
    BN running var     1 + 0.5 * u               PReLU slope   0.25 + 0.1 * u
  The input (batch 2 of 1x48x48) is u(0xFFFFFFFF, i) over the whole tensor.
The forward pass then runs in float64 on those float32 values, so the fixture
is the exact function of the float32 parameters to ~1e-15.

Layout matches fer.h: NCHW, conv weights [cout][cin/groups][kh][kw], dense
weights [out][in], flatten in NCHW order, BN eps 1e-5.
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH, C, H, W, CLASSES = 2, 1, 48, 48, 7
INPUT_TENSOR = 0xFFFFFFFF

MODELS = ["baseline_cnn", "mini_xception", "resnet_lite", "mobilenetv2_lite", "vgg16_bn",
          "vgg19_bn", "resnet18", "dcm_net", "vgg16_dsc_cbam"]


# ---------------------------------------------------------------------------
# Deterministic parameters

def splitmix64(z):
    """splitmix64 over a uint64 numpy array (wrapping arithmetic)."""
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniform(t, n):
    """u(t, i) for i in [0, n) as float64 (exact: 24-bit values)."""
    i = np.arange(n, dtype=np.uint64)
    z = splitmix64((np.uint64(t) << np.uint64(32)) | i)
    return (z >> np.uint64(40)).astype(np.float64) / 16777216.0 * 2.0 - 1.0


def f32(x):
    """Round float64 values to float32 once, then widen back for the float64 model."""
    return torch.from_numpy(np.asarray(x, dtype=np.float64).astype(np.float32).astype(np.float64))


def fer_tensors(leaf):
    """The (tensor, kind) list a leaf module owns, in fer.h's order within a node."""
    if isinstance(leaf, nn.Conv2d):
        fan_in = leaf.in_channels // leaf.groups * leaf.kernel_size[0] * leaf.kernel_size[1]
        out = [(leaf.weight, ("weight", fan_in))]
        return out + ([(leaf.bias, ("bias",))] if leaf.bias is not None else [])
    if isinstance(leaf, nn.Linear):
        out = [(leaf.weight, ("weight", leaf.in_features))]
        return out + ([(leaf.bias, ("bias",))] if leaf.bias is not None else [])
    if isinstance(leaf, nn.BatchNorm2d):
        return [(leaf.weight, ("gamma",)), (leaf.bias, ("beta",)),
                (leaf.running_mean, ("mean",)), (leaf.running_var, ("var",))]
    if isinstance(leaf, nn.PReLU):
        return [(leaf.weight, ("slope",))]
    raise TypeError("no fer.h parameters for %r" % (leaf,))


def leaves(module):
    """Leaf modules in fer.h node order: composites list their parts in fer_order()."""
    if hasattr(module, "fer_order"):
        out = []
        for part in module.fer_order():
            out += leaves(part)
        return out
    return [module]


def fill_parameters(model):
    """Writes the formula's values into every tensor; returns the tensor count."""
    t = 0
    with torch.no_grad():
        for leaf in leaves(model):
            for tensor, kind in fer_tensors(leaf):
                u = uniform(t, tensor.numel())
                if kind[0] == "weight":
                    v = u * math.sqrt(6.0 / kind[1])
                elif kind[0] in ("bias", "beta", "mean"):
                    v = 0.1 * u
                elif kind[0] == "gamma":
                    v = 1.0 + 0.2 * u
                elif kind[0] == "var":
                    v = 1.0 + 0.5 * u
                else:
                    v = 0.25 + 0.1 * u
                tensor.copy_(f32(v).reshape(tensor.shape))
                t += 1
    return t


# ---------------------------------------------------------------------------
# Building blocks, written from fer.h's block descriptions (section 2.5)

def conv(cin, cout, k, stride=1, pad=None, groups=1, bias=False):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2 if pad is None else pad,
                     groups=groups, bias=bias)


def bn(c):
    return nn.BatchNorm2d(c, eps=1e-5)


class ConvBNAct(nn.Module):
    """conv k x k "same" (no bias unless asked) -> BN -> activation ("relu", "relu6", None)."""

    def __init__(self, cin, cout, k, stride=1, act="relu", bias=False):
        super().__init__()
        self.conv, self.bn, self.act = conv(cin, cout, k, stride, bias=bias), bn(cout), act

    def fer_order(self):
        return [self.conv, self.bn]

    def forward(self, x):
        x = self.bn(self.conv(x))
        if self.act == "relu":
            return F.relu(x)
        if self.act == "relu6":
            return F.relu6(x)
        return x


class SepConv(nn.Module):
    """depthwise k x k -> pointwise 1x1, no biases (Keras SeparableConv2D)."""

    def __init__(self, cin, cout, k=3, stride=1):
        super().__init__()
        self.dw = conv(cin, cin, k, stride, groups=cin)
        self.pw = conv(cin, cout, 1, pad=0)

    def fer_order(self):
        return [self.dw, self.pw]

    def forward(self, x):
        return self.pw(self.dw(x))


class BasicBlock(nn.Module):
    """ResNet BasicBlock; projection shortcut (1x1 conv + BN) when the shape changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.a = ConvBNAct(cin, cout, 3, stride, "relu")
        self.b = ConvBNAct(cout, cout, 3, 1, None)
        self.proj = stride != 1 or cin != cout
        if self.proj:
            self.sc_conv, self.sc_bn = conv(cin, cout, 1, stride, pad=0), bn(cout)

    def fer_order(self):
        return [self.a, self.b] + ([self.sc_conv, self.sc_bn] if self.proj else [])

    def forward(self, x):
        sc = self.sc_bn(self.sc_conv(x)) if self.proj else x
        return F.relu(self.b(self.a(x)) + sc)


class LightResidual(nn.Module):
    """BasicBlock at stride 1, max pool 2x2, dropout (identity in eval)."""

    def __init__(self, cin, cout, p):
        super().__init__()
        self.block, self.drop = BasicBlock(cin, cout, 1), nn.Dropout(p)

    def fer_order(self):
        return [self.block]

    def forward(self, x):
        return self.drop(F.max_pool2d(self.block(x), 2, 2))


class XceptionModule(nn.Module):
    """Arriaga et al. 2017: sepconv-BN-ReLU-sepconv-BN-maxpool(3, 2, pad 1) plus a
    1x1 stride-2 conv + BN residual."""

    def __init__(self, cin, cout):
        super().__init__()
        self.res_conv, self.res_bn = conv(cin, cout, 1, 2, pad=0), bn(cout)
        self.sep1, self.bn1 = SepConv(cin, cout), bn(cout)
        self.sep2, self.bn2 = SepConv(cout, cout), bn(cout)

    def fer_order(self):
        return [self.res_conv, self.res_bn, self.sep1, self.bn1, self.sep2, self.bn2]

    def forward(self, x):
        y = F.relu(self.bn1(self.sep1(x)))
        y = F.max_pool2d(self.bn2(self.sep2(y)), 3, 2, 1)
        return y + self.res_bn(self.res_conv(x))


class InvertedResidual(nn.Module):
    """MobileNetV2: 1x1 expand (skipped at t = 1) -BN-ReLU6, 3x3 depthwise -BN-ReLU6,
    1x1 project -BN; identity shortcut at stride 1 when cin == cout."""

    def __init__(self, cin, cout, t, stride):
        super().__init__()
        hid = cin * t
        self.expand = ConvBNAct(cin, hid, 1, 1, "relu6") if t != 1 else None
        self.dw_conv, self.dw_bn = conv(hid, hid, 3, stride, pad=1, groups=hid), bn(hid)
        self.proj_conv, self.proj_bn = conv(hid, cout, 1, pad=0), bn(cout)
        self.residual = stride == 1 and cin == cout

    def fer_order(self):
        return ([self.expand] if self.expand is not None else []) + \
            [self.dw_conv, self.dw_bn, self.proj_conv, self.proj_bn]

    def forward(self, x):
        y = self.expand(x) if self.expand is not None else x
        y = F.relu6(self.dw_bn(self.dw_conv(y)))
        y = self.proj_bn(self.proj_conv(y))
        return x + y if self.residual else y


class CBAM(nn.Module):
    """Woo et al. 2018. Channel: sigmoid(MLP(avgpool) + MLP(maxpool)), one MLP
    (Linear-ReLU-Linear, with biases) shared by both vectors. Spatial: sigmoid of a
    7x7 conv (no bias) over [mean over channels, max over channels]."""

    def __init__(self, c, reduction=16):
        super().__init__()
        hid = c // reduction if reduction > 0 and c // reduction > 0 else 1
        self.fc1, self.fc2 = nn.Linear(c, hid), nn.Linear(hid, c)
        self.spatial = conv(2, 1, 7, pad=3)

    def fer_order(self):
        return [self.fc1, self.fc2, self.spatial]

    def forward(self, x):
        def mlp(v):
            return self.fc2(F.relu(self.fc1(v)))
        s = torch.sigmoid(mlp(x.mean(dim=(2, 3))) + mlp(x.amax(dim=(2, 3))))
        y = x * s[:, :, None, None]
        pooled = torch.cat([y.mean(dim=1, keepdim=True), y.amax(dim=1, keepdim=True)], dim=1)
        return y * torch.sigmoid(self.spatial(pooled))


class DSCCBAM(nn.Module):
    """vgg16_dsc_cbam block: sepconv3-BN-PReLU-CBAM(16) + shortcut (1x1 conv + BN
    when the width changes), no activation after the sum."""

    def __init__(self, cin, cout):
        super().__init__()
        self.sep, self.bn, self.prelu = SepConv(cin, cout), bn(cout), nn.PReLU(cout)
        self.cbam = CBAM(cout, 16)
        self.proj = cin != cout
        if self.proj:
            self.sc_conv, self.sc_bn = conv(cin, cout, 1, pad=0), bn(cout)

    def fer_order(self):
        return [self.sep, self.bn, self.prelu, self.cbam] + \
            ([self.sc_conv, self.sc_bn] if self.proj else [])

    def forward(self, x):
        y = self.cbam(self.prelu(self.bn(self.sep(x))))
        return y + (self.sc_bn(self.sc_conv(x)) if self.proj else x)


class Seq(nn.Module):
    """A chain whose fer order is its execution order; parameter-free steps (Fn)
    are left out of fer_order."""

    def __init__(self, *steps):
        super().__init__()
        self.steps = nn.ModuleList(steps)

    def fer_order(self):
        return [s for s in self.steps if not isinstance(s, Fn)]

    def forward(self, x):
        for s in self.steps:
            x = s(x)
        return x


class Fn(nn.Module):
    """A parameter-free step (pool, flatten, activation, dropout)."""

    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return self.f(x)


RELU = Fn(F.relu)
FLATTEN = Fn(lambda x: torch.flatten(x, 1))
GAP = Fn(lambda x: x.mean(dim=(2, 3)))
DROP = Fn(lambda x: x)                                   # dropout: identity in eval


def maxpool(k, s, p=0):
    return Fn(lambda x: F.max_pool2d(x, k, s, p))


def cbr_bias(cin, cout):
    """conv3x3 with bias -> BN -> ReLU (baseline_cnn and the VGGs)."""
    return ConvBNAct(cin, cout, 3, 1, "relu", bias=True)


# ---------------------------------------------------------------------------
# The zoo (fer.h section 3.6), for 1 x 48 x 48 input and k classes

def baseline_cnn(k):
    return Seq(cbr_bias(1, 32), cbr_bias(32, 64), maxpool(2, 2),
               cbr_bias(64, 128), cbr_bias(128, 128), maxpool(2, 2),
               cbr_bias(128, 256), cbr_bias(256, 256), maxpool(2, 2),
               FLATTEN, nn.Linear(256 * 6 * 6, 256), RELU, DROP, nn.Linear(256, k))


def mini_xception(k):
    return Seq(ConvBNAct(1, 8, 3), ConvBNAct(8, 8, 3),
               XceptionModule(8, 16), XceptionModule(16, 32), XceptionModule(32, 64),
               XceptionModule(64, 128), conv(128, k, 3, bias=True), GAP)


def resnet_lite(k):
    return Seq(ConvBNAct(1, 32, 3), LightResidual(32, 64, 0.25), LightResidual(64, 128, 0.25),
               FLATTEN, nn.Linear(128 * 12 * 12, k))


def mobilenetv2_lite(k):
    cfg = [(1, 16, 1, 1), (6, 24, 1, 2), (6, 32, 2, 2), (6, 64, 1, 2), (6, 96, 1, 1)]
    steps, cin = [ConvBNAct(1, 16, 3, 1, "relu6")], 16
    for t, c, n, s in cfg:
        for j in range(n):
            steps.append(InvertedResidual(cin, c, t, s if j == 0 else 1))
            cin = c
    steps += [ConvBNAct(cin, 128, 1, 1, "relu6"), GAP, DROP, nn.Linear(128, k)]
    return Seq(*steps)


def vgg(k, cfg):
    steps, cin = [], 1
    for c in cfg:
        if c == 0:
            steps.append(maxpool(2, 2))
        else:
            steps.append(cbr_bias(cin, c))
            cin = c
    hw = 48
    for c in cfg:
        hw = hw // 2 if c == 0 else hw
    steps += [FLATTEN, nn.Linear(cin * hw * hw, 512), RELU, DROP,
              nn.Linear(512, 512), RELU, DROP, nn.Linear(512, k)]
    return Seq(*steps)


def vgg16_bn(k):
    return vgg(k, [64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0])


def vgg19_bn(k):
    return vgg(k, [64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0,
                   512, 512, 512, 512, 0])


def resnet18(k):
    steps, cin = [ConvBNAct(1, 64, 3)], 64
    for s, width in enumerate([64, 128, 256, 512]):
        steps += [BasicBlock(cin, width, 2 if s else 1), BasicBlock(width, width, 1)]
        cin = width
    return Seq(*steps, GAP, nn.Linear(512, k))


class DCMGroup(nn.Module):
    """dcm_net conv group: `depth` conv3x3-BN(-ReLU, not after the last) plus a
    shortcut (1x1 conv + BN when the width changes), ReLU after the sum."""

    def __init__(self, cin, cout, depth):
        super().__init__()
        self.convs = nn.ModuleList([ConvBNAct(cin if i == 0 else cout, cout, 3, 1,
                                              "relu" if i + 1 < depth else None)
                                    for i in range(depth)])
        self.proj = cin != cout
        if self.proj:
            self.sc_conv, self.sc_bn = conv(cin, cout, 1, pad=0), bn(cout)

    def fer_order(self):
        return list(self.convs) + ([self.sc_conv, self.sc_bn] if self.proj else [])

    def forward(self, x):
        y = x
        for c in self.convs:
            y = c(y)
        return F.relu(y + (self.sc_bn(self.sc_conv(x)) if self.proj else x))


def dcm_net(k):
    steps, cin = [], 1
    for g, (width, depth) in enumerate(zip([64, 128, 256, 512, 512], [2, 2, 3, 3, 3])):
        steps.append(DCMGroup(cin, width, depth))
        if g < 4:
            steps.append(maxpool(2, 2))
        cin = width
    steps += [ConvBNAct(512, 512, 3), ConvBNAct(512, 256, 3), GAP,
              nn.Linear(256, 512), RELU, DROP, nn.Linear(512, 256), RELU, DROP, nn.Linear(256, k)]
    return Seq(*steps)


def vgg16_dsc_cbam(k):
    steps, cin = [], 1
    for width, depth in zip([64, 128, 256, 512, 512], [2, 2, 3, 3, 3]):
        for _ in range(depth):
            steps.append(DSCCBAM(cin, width))
            cin = width
        steps.append(maxpool(2, 2))
    steps += [GAP, nn.Linear(512, 512), nn.PReLU(512), DROP, nn.Linear(512, k)]
    return Seq(*steps)


# ---------------------------------------------------------------------------

def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join("tests", "fixtures", "zoo")
    os.makedirs(out_dir, exist_ok=True)
    torch.set_default_dtype(torch.float64)
    x = f32(uniform(INPUT_TENSOR, BATCH * C * H * W)).reshape(BATCH, C, H, W)
    for name in MODELS:
        model = globals()[name](CLASSES).double().eval()
        n_tensors = fill_parameters(model)
        n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        with torch.no_grad():
            logits = model(x)
        assert logits.shape == (BATCH, CLASSES), logits.shape
        path = os.path.join(out_dir, name + ".txt")
        with open(path, "w") as f:
            f.write("# fer.h zoo fixture: eval-mode logits from tools/gen_zoo_fixtures.py\n")
            f.write("# (PyTorch %s, float64 on float32 parameters). Do not edit.\n" % torch.__version__)
            f.write("name %s\ninput %d %d %d\nclasses %d\nbatch %d\n" % (name, C, H, W, CLASSES, BATCH))
            f.write("params %d\ntensors %d\nlogits\n" % (n_params, n_tensors))
            for row in logits.tolist():
                f.write(" ".join("%.9g" % v for v in row) + "\n")
        print("%-18s %10d params %4d tensors  max|logit| %.3g"
              % (name, n_params, n_tensors, logits.abs().max().item()))


if __name__ == "__main__":
    main()
