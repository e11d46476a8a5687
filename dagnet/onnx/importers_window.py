"""How ONNX's window and resampling ops become dagnet nodes: Conv (1-D and 2-D, groups,
dilations, any pads or auto_pad), ConvTranspose, MaxPool and AveragePool (1-D and 2-D,
dilations, ceil_mode, count_include_pad), Resize and the older Upsample, DepthToSpace and
SpaceToDepth (the import side of the mapping table in mapping.py, as importers.py).

ONNX pads are the begins of every axis then the ends, which is dagnet's order: a symmetric
pad is written back in its short form (an int, or (h, w)) so that round trips compare equal.
"""
from __future__ import annotations

import numpy as np

from dagnet.onnx.common import OnnxError, f32, where
from dagnet.onnx.importers import extra_outputs_unused, zeros_bias
from dagnet.ops.resample import COORDINATES


def _ints(node, a: dict, key: str, rank: int) -> tuple:
    v = tuple(int(x) for x in a.get(key, (1,) * rank))
    if len(v) != rank:
        raise OnnxError(f"{where(node)}: {key} {list(v)} has {len(v)} values for a "
                        f"{rank}-D window")
    return v


def _short(values: tuple, rank: int):
    """A builder attr from per-axis ints: an int when they agree, else the list."""
    return values[0] if len(set(values)) == 1 else list(values) if rank > 1 else values[0]


def _pad_attr(pads: list, rank: int):
    """dagnet's pad from ONNX's pads: the short form when every axis pads both sides alike."""
    if pads[:rank] == pads[rank:]:
        return _short(tuple(pads[:rank]), rank)
    return list(pads)


def _same_pads(in_size, kernel, stride, dil, upper: bool) -> list:
    """auto_pad SAME_UPPER/SAME_LOWER: the total that makes ceil(L / s) windows, the odd cell at
    the end (UPPER) or the beginning (LOWER)."""
    total = [max((-(-h // s) - 1) * s + (k - 1) * d + 1 - h, 0)
             for h, k, s, d in zip(in_size, kernel, stride, dil)]
    small, big = [t // 2 for t in total], [t - t // 2 for t in total]
    return small + big if upper else big + small


def window_attrs(r, node, a: dict, x: str, kernel: tuple, ceil_mode: bool = False) -> dict:
    """The builder keywords of a window op's stride, pad, dilation and floor (a stride ONNX
    floors that does not tile the input, unless ceil_mode keeps the partial window)."""
    rank = len(kernel)
    in_size = tuple(r.g.shape_of(x))[-rank:]
    stride, dil = _ints(node, a, "strides", rank), _ints(node, a, "dilations", rank)
    auto = a.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = _same_pads(in_size, kernel, stride, dil, auto == "SAME_UPPER")
    elif auto == "VALID":
        pads = [0] * (2 * rank)
    else:
        pads = [int(p) for p in a.get("pads", (0,) * (2 * rank))]
    out = {"stride": _short(stride, rank), "pad": _pad_attr(pads, rank)}
    if dil != (1,) * rank:
        out["dilation"] = _short(dil, rank)
    rooms = [h + pads[i] + pads[rank + i] - (k - 1) * d - 1
             for i, (h, k, d) in enumerate(zip(in_size, kernel, dil))]
    if not ceil_mode and any(room % s for room, s in zip(rooms, stride)):
        out["floor"] = True
    return out


def conv(r, node, a: dict) -> None:
    x = r.tensor(node)
    w = r.const(node, 1, "weight")
    if w.ndim not in (3, 4):
        raise OnnxError(f"{where(node)}: weight shape {w.shape}: dagnet imports 1-D and 2-D "
                        f"convolutions (a 3-D or 4-D weight)")
    kernel = tuple(w.shape[2:])
    kw = window_attrs(r, node, a, x, kernel)
    if int(a.get("group", 1)) != 1:
        kw["groups"] = int(a["group"])
    f = w.shape[0]
    b = (r.param(node.input[2], r.const(node, 2, "bias"), "bias")
         if len(node.input) > 2 and node.input[2] else zeros_bias(r, node, f))
    build = r.g.conv2d if len(kernel) == 2 else r.g.conv1d
    r.bind(node, build(x, filters=f, size=_short(kernel, len(kernel)), name=r.out_name(node),
                       w=r.param(node.input[1], w, "weight"), b=b, **kw))


def conv_transpose(r, node, a: dict) -> None:
    x = r.tensor(node)
    w = r.const(node, 1, "weight")
    if w.ndim != 4:
        raise OnnxError(f"{where(node)}: weight shape {w.shape}: dagnet imports 2-D "
                        f"ConvTranspose only (a 4-D weight)")
    kernel, group = tuple(w.shape[2:]), int(a.get("group", 1))
    stride, dil = _ints(node, a, "strides", 2), _ints(node, a, "dilations", 2)
    extra = tuple(int(v) for v in a.get("output_padding", (0, 0)))
    in_size = tuple(r.g.shape_of(x))[1:]
    auto = a.get("auto_pad", "NOTSET")
    natural = [s * (h - 1) + e + (k - 1) * d + 1
               for h, k, s, d, e in zip(in_size, kernel, stride, dil, extra)]
    if "output_shape" in a or auto in ("SAME_UPPER", "SAME_LOWER"):
        want = [int(v) for v in a["output_shape"]][-2:] if "output_shape" in a else \
            [h * s for h, s in zip(in_size, stride)]
        total = [n - o for n, o in zip(natural, want)]
        if min(total) < 0:
            raise OnnxError(f"{where(node)}: output shape {want} is larger than the "
                            f"transposed convolution makes ({natural}); give output_padding")
        half, rest = [t // 2 for t in total], [t - t // 2 for t in total]
        pads = half + rest if auto == "SAME_UPPER" else rest + half
    else:
        pads = [0] * 4 if auto == "VALID" else [int(p) for p in a.get("pads", (0,) * 4)]
    kw = {"stride": _short(stride, 2), "pad": _pad_attr(pads, 2)}
    if dil != (1, 1):
        kw["dilation"] = _short(dil, 2)
    if any(extra):
        kw["output_padding"] = _short(extra, 2)
    if group != 1:
        kw["groups"] = group
    f = w.shape[1] * group
    b = (r.param(node.input[2], r.const(node, 2, "bias"), "bias")
         if len(node.input) > 2 and node.input[2] else zeros_bias(r, node, f))
    r.bind(node, r.g.conv_transpose(x, filters=f, size=_short(kernel, 2), name=r.out_name(node),
                                    w=r.param(node.input[1], w, "weight"), b=b, **kw))


def pool(op2d: str, op1d: str):
    def imp(r, node, a: dict) -> None:
        x = r.tensor(node)
        extra_outputs_unused(r, node)
        kernel = tuple(int(k) for k in a.get("kernel_shape", ()))
        if len(kernel) not in (1, 2):
            raise OnnxError(f"{where(node)}: kernel_shape {list(kernel)}: dagnet imports 1-D "
                            f"and 2-D windows")
        ceil_mode = bool(a.get("ceil_mode", 0))
        kw = window_attrs(r, node, a, x, kernel, ceil_mode)
        if ceil_mode:
            kw["ceil_mode"] = True
        padded = ceil_mode or kw["pad"] not in (0, [0, 0], [0, 0, 0, 0])
        if op2d == "avg_pool2d" and padded and not a.get("count_include_pad", 0):
            kw["count_include_pad"] = False  # ONNX's default; dagnet's is PyTorch's
        build = getattr(r.g, op2d if len(kernel) == 2 else op1d)
        r.bind(node, build(x, size=_short(kernel, len(kernel)), name=r.out_name(node), **kw))
    return imp


def _per_axis(node, values, what: str, channels: int):
    """(H, W) entries of ONNX's full-rank scales or sizes, the N and C ones checked (sizes
    leave the batch free)."""
    values = np.asarray(values).reshape(-1).tolist()
    if len(values) != 4:
        raise OnnxError(f"{where(node)}: {what} {values}: dagnet resizes (N, C, H, W) values "
                        f"along H and W")
    keep = (1, 1) if what == "scales" else (values[0], channels)
    if tuple(values[:2]) != keep:
        raise OnnxError(f"{where(node)}: {what} {values} resize the batch or the channels; "
                        f"dagnet resizes H and W only")
    return values[2:]


def _resize_node(r, node, mode, coordinates, nearest_mode, scales=None, sizes=None) -> None:
    x = r.tensor(node)
    if len(r.shape(node.input[0])) != 3:
        raise OnnxError(f"{where(node)}: input of shape (N, {r.shape(node.input[0])}): dagnet "
                        f"resizes (N, C, H, W) values")
    how = ({"scale": _short(tuple(f32(s) for s in scales), 2)} if sizes is None
           else {"size": [int(v) for v in sizes]})
    r.bind(node, r.g.resize(x, mode=mode, coordinates=coordinates, nearest_mode=nearest_mode,
                            name=r.out_name(node), **how))


def _legacy_nearest(node, scales) -> str:
    """Upsample and Resize-10 round an upsampled coordinate down and a downsampled one up."""
    if all(s >= 1 for s in scales):
        return "floor"
    if all(s <= 1 for s in scales):
        return "ceil"
    raise OnnxError(f"{where(node)}: scales {list(scales)} grow one axis and shrink the other; "
                    f"dagnet imports this opset's nearest resize only in one direction")


def upsample(r, node, a: dict) -> None:
    """Upsample (opset 7-9) and Resize-10: asymmetric coordinates, mode nearest or linear."""
    raw = a["scales"] if "scales" in a else r.const(node, 1, "scales")
    scales = _per_axis(node, raw, "scales", 1)
    mode = a.get("mode", "nearest")
    if mode not in ("nearest", "linear", "bilinear"):
        raise OnnxError(f"{where(node)}: mode {mode!r}: dagnet resizes with nearest or linear")
    nearest = _legacy_nearest(node, scales) if mode == "nearest" else "round_prefer_floor"
    _resize_node(r, node, "nearest" if mode == "nearest" else "bilinear", "asymmetric", nearest,
                 scales=scales)


def resize(r, node, a: dict) -> None:
    """Resize (opset 10 as Upsample; 11 and later with roi, scales, sizes and the modes)."""
    if r.opset < 11:
        upsample(r, node, a)
        return
    mode = a.get("mode", "nearest")
    coordinates = a.get("coordinate_transformation_mode", "half_pixel")
    if mode not in ("nearest", "linear") or coordinates not in COORDINATES:
        raise OnnxError(f"{where(node)}: mode {mode!r} with coordinate_transformation_mode "
                        f"{coordinates!r}: dagnet resizes nearest or linear with "
                        f"{', '.join(COORDINATES)}")
    if a.get("keep_aspect_ratio_policy", "stretch") != "stretch":
        raise OnnxError(f"{where(node)}: keep_aspect_ratio_policy "
                        f"{a['keep_aspect_ratio_policy']!r}: dagnet resizes to the sizes given "
                        f"(stretch)")
    axes = [int(v) % 4 for v in a.get("axes", (0, 1, 2, 3))]
    channels = r.shape(node.input[0])[0]
    has = [i < len(node.input) and bool(node.input[i]) for i in range(4)]
    if has[3]:
        given = dict(zip(axes, r.const(node, 3, "sizes").reshape(-1).tolist()))
        if set(given) - {2, 3} == set() and len(given) == 2:
            sizes = [given[2], given[3]]
        else:
            sizes = _per_axis(node, [given.get(i, 1) for i in range(4)], "sizes", channels)
        scales = None
    elif has[2]:
        given = dict(zip(axes, r.const(node, 2, "scales").reshape(-1).tolist()))
        scales = _per_axis(node, [given.get(i, 1.0) for i in range(4)], "scales", 1)
        sizes = None
    else:
        raise OnnxError(f"{where(node)}: neither scales nor sizes is given")
    if a.get("antialias", 0) and mode == "linear" and (
            any(s < 1 for s in scales) if scales else
            any(o < i for o, i in zip(sizes, r.shape(node.input[0])[1:]))):
        raise OnnxError(f"{where(node)}: antialias=1 when shrinking: dagnet's bilinear does not "
                        f"filter before it samples; export without antialias")
    _resize_node(r, node, "nearest" if mode == "nearest" else "bilinear", coordinates,
                 a.get("nearest_mode", "round_prefer_floor"), scales=scales, sizes=sizes)


def blocks(op: str):
    """DepthToSpace (blocksize, mode) and SpaceToDepth (blocksize; DCR)."""
    def imp(r, node, a: dict) -> None:
        x = r.tensor(node)
        r.bind(node, getattr(r.g, op)(x, block=int(a["blocksize"]), mode=a.get("mode", "DCR"),
                                      name=r.out_name(node)))
    return imp
