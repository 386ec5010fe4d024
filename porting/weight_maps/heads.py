"""The rows of a user's own head (porting.heads.Head), for any family and any source library.

A family's weight map covers its backbone and its standard classifier; `with_head` replaces the classifier's rows
and layers with the head's, named by the source's Convention from each layer's own name (the one function every
family and library shares: a head does not depend on the backbone before it):

    dense       {name}{sep}{dense weight} -> {cell}.{i}.weight   (the convention's dense layout: Keras and Paddle
                {name}{sep}{bias}         -> {cell}.{i}.bias      store [in, out], transposed to MindSpore's [out, in])
    batchnorm   {name}{sep}{BN names}     -> {cell}.{i}.gamma / beta / moving_mean / moving_variance

Every head layer is a compared layer of kind 'head', in order. Keras's Flatten reads the feature map channels-last;
the MindSpore cell flattens in that order too (layers.FlattenNHWC), so the first Dense's kernel is copied as it is.
The convention is passed in (the source library's record holds it), and every row's transform has its inverse, so
`export --to` reads the same rows backwards.
"""
from __future__ import annotations

import dataclasses

from porting.heads import Head
from porting.weight_maps.conventions import Convention
from porting.weight_maps.table import WeightMap

HEAD_KIND = "head"  # the kind of a head layer's rows in parity's report


def with_head(wm: WeightMap, head: Head, convention: Convention, cell: str = "fc") -> WeightMap:
    """`wm` with the rows and layers of its classifier `cell` replaced by `head`'s (a new map; `wm` is unchanged).
    A head without a dense layer (a feature extractor) has no classifier rows at all."""
    inside = f"{cell}."
    out = dataclasses.replace(wm, name=f"{wm.name} + head", rows=[r for r in wm.rows if not r.target.startswith(inside)],
                              ignore=list(wm.ignore), convention=convention,
                              layers=[layer for layer in wm.layers
                                      if layer.target != cell and not layer.target.startswith(inside)])
    c = convention
    for i, layer in enumerate(head.layers):
        target = f"{cell}.{i}"
        if layer.kind == "dense":
            out.add(f"{layer.name}{c.sep}{c.dense_weight or c.weight}", f"{target}.weight", c.dense_layout)
            if layer.bias:
                out.add(f"{layer.name}{c.sep}{c.bias}", f"{target}.bias")
        elif layer.kind == "batchnorm":
            for source, ours in c.bn.items():
                out.add(f"{layer.name}{c.sep}{source}", f"{target}.{ours}")
        out.layer(layer.name, target, HEAD_KIND)
    return out
