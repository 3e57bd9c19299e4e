"""Neural-network modules: ``Module``, ``Parameter`` and the layers built on them."""

from minidl.nn.layers import (
    AvgPool2d,
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    InstanceNorm2d,
    LeakyReLU,
    MaxPool2d,
    ReflectionPad2d,
    ReLU,
    Sequential,
    Upsample,
)
from minidl.nn.module import Module, Parameter

__all__ = [
    "AvgPool2d", "BatchNorm2d", "Conv2d", "ConvTranspose2d", "InstanceNorm2d", "LeakyReLU",
    "MaxPool2d", "Module", "Parameter", "ReLU", "ReflectionPad2d", "Sequential", "Upsample",
]
