"""Network architectures: VGG16 (:mod:`minidl.models.vgg16`) and the decoders that
invert it (:mod:`minidl.models.decoder`)."""

from minidl.models.decoder import Decoder, load_decoder, shipped_decoder_path
from minidl.models.vgg16 import VGG16, vgg16

__all__ = ["VGG16", "Decoder", "load_decoder", "shipped_decoder_path", "vgg16"]
