"""What VGG16's layers keep and respond to, shown in pixels.

* :mod:`minidl.inversion.optimize`: reconstruct an image from one layer's
  activations by optimisation (Mahendran & Vedaldi, 2015).
* :mod:`minidl.inversion.deconvnet`: project a single activation back to the
  pixels with the deconvnet (Zeiler & Fergus, 2014), guided backprop, or the
  plain gradient.

Learned one-pass inverses ("decoders") live in :mod:`minidl.models.decoder`.
"""
