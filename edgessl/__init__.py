"""edgessl: self-supervised pretraining, benchmarking and edge deployment of lightweight vision encoders.

Importing the package imports nothing heavy: the ONNX-only evaluation path must run
where torch is not installed, as it would on a phone.
"""

__version__ = "0.1.0"
