"""Pretrained network architectures; for now VGG16 (see :mod:`minidl.models.vgg16`)."""

from minidl.models.vgg16 import VGG16, vgg16

__all__ = ["VGG16", "vgg16"]
