"""PaddleClas Xception41 / Xception65 / Xception71 (ppcls/arch/backbone/model_zoo/xception.py).

Not timm's aligned Xception of the same names (PORTING_NOTES.md section 4, row 9). Read from the Paddle code:
- stem: ConvBNLayer 3->32 (3x3, stride 2) and 32->64 (3x3), both padding (k-1)//2 = 1, BN with act='relu';
- separable conv = pointwise 1x1 conv -> BN -> depthwise 3x3 conv (padding 1) -> BN, no activation inside,
  no conv bias; every BN is Paddle's `nn.BatchNorm` (eps 1e-5);
- entry / exit blocks: shortcut = bare 1x1 conv with the block's stride (no BN) on the block input (before
  any ReLU); main path = [ReLU] -> sep -> ReLU -> sep -> MaxPool2D(3, stride, padding=1); out = short + pool.
  The pool is there even when the stride is 1 (Xception71's entry blocks 1 and 3): a 3x3 max filter;
- entry flow: 3 blocks (64->128 s2, 128->256 s2, 256->728 s2), or 5 for Xception71 (64->128 s2,
  128->256 s1, 256->256 s2, 256->728 s1, 728->728 s2); the first block has no leading ReLU;
- middle flow: 8 (Xception41) or 16 blocks of (ReLU -> sep) x 3 plus the identity;
- exit flow: block 728 -> (728, 1024) stride 2, then sep 1024->1536, ReLU, sep 1536->2048, ReLU, global
  average pool, Linear (no dropout).
Eval preprocessing as PaddleClas's Xception configs: resize the short side to 320 (cv2 bilinear) -> centre crop
299, ImageNet mean/std.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from porting.errors import PortingError
from porting.archs.registry import register_arch

# (in, out, stride, ReLU first) of the entry-flow blocks, by entry_flow_block_num
ENTRY_BLOCKS = {
    3: [(64, 128, 2, False), (128, 256, 2, True), (256, 728, 2, True)],
    5: [(64, 128, 2, False), (128, 256, 1, True), (256, 256, 2, True), (256, 728, 1, True),
        (728, 728, 2, True)],
}
MIDDLE_BLOCKS = (8, 16)


@register_arch("xception_ppcls", model="porting.archs.xception_ppcls.model:XceptionPP", recipe="xception")
@dataclass(frozen=True)
class XceptionPPConfig:
    entry_blocks: int = 3  # 3 (Xception41/65) or 5 (Xception71)
    middle_blocks: int = 8  # 8 (Xception41) or 16 (Xception65/71)
    bn_eps: float = 1e-5

    def __post_init__(self):
        if self.entry_blocks not in ENTRY_BLOCKS or self.middle_blocks not in MIDDLE_BLOCKS:
            raise PortingError(f"xception_ppcls: entry_blocks must be 3 or 5 and middle_blocks 8 or 16, "
                               f"got {self.entry_blocks} / {self.middle_blocks}")

    def to_dict(self) -> dict:
        return asdict(self)
