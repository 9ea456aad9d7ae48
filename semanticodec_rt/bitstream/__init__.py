"""The ``.scrt`` bitstream: bit packing, token packets and the file container (no torch).

``bitpack`` packs ids LSB first at fixed widths, ``packet`` frames them with a kind, sequence
number, frame index and CRC32 (the unit of a UDP voice link), ``info`` is the stream metadata,
and ``container`` stores a stream in a ``.scrt`` file: format version 2 (written) is a compact
binary header plus large CRC-chained chunks of packed ids, version 1 (still read) a JSON header
plus length-prefixed packets.  Every malformed input raises :class:`BitstreamError`.
"""

from .bitpack import bits_for_vocab, pack_bits, pack_fields, packed_size, unpack_bits, unpack_fields
from .container import (
    FORMAT_VERSION, MAGIC, MAX_CHUNK_BYTES, SUPPORTED_VERSIONS, ChunkInfo, PacketInfo, ScrtReader,
    ScrtWriter, default_chunk_frames, read_scrt, write_scrt,
)
from .errors import BitstreamError, ModelMismatchError, check_model, layout_mismatch, printable
from .info import StreamInfo, default_frames_per_packet
from .packet import PACKET_OVERHEAD, Packet, PacketKind, decode_packet, encode_packet, packet_size
from .packetizer import PackedTokens, TokenPacketizer

__all__ = [
    "BitstreamError",
    "ModelMismatchError",
    "check_model",
    "layout_mismatch",
    "printable",
    "bits_for_vocab",
    "packed_size",
    "pack_bits",
    "unpack_bits",
    "pack_fields",
    "unpack_fields",
    "PacketKind",
    "Packet",
    "PACKET_OVERHEAD",
    "packet_size",
    "encode_packet",
    "decode_packet",
    "MAGIC",
    "FORMAT_VERSION",
    "SUPPORTED_VERSIONS",
    "MAX_CHUNK_BYTES",
    "StreamInfo",
    "PacketInfo",
    "ChunkInfo",
    "ScrtWriter",
    "ScrtReader",
    "write_scrt",
    "read_scrt",
    "default_frames_per_packet",
    "default_chunk_frames",
    "TokenPacketizer",
    "PackedTokens",
]
