"""semanticodec_rt: a streaming, real-time implementation of the SemantiCodec audio codec."""

__version__ = "0.1.0"
