"""porting: move pretrained image classifiers from timm / Keras / PaddleClas to MindSpore, with proof."""

__version__ = "0.2.0"
