"""``link send`` / ``link recv``: a voice link, token packets over UDP (:mod:`semanticodec_rt.link`).

The sender replays a file in real time (or captures a device), encodes it as it goes and sends
the packets; the receiver times them through an adaptive jitter buffer, conceals losses, decodes
on a worker thread and writes a WAV (or plays a device).  Both print their counters at the end.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from .common import (
    FORMATTER, PROG, SAMPLE_RATE, CliError, add_common_options, add_decode_options, add_encode_options,
    atomic_output, input_path, load_codec, output_path, positive_int, read_source, say,
)

_DESCRIPTION = """\
A low-bandwidth voice link: the sender encodes audio into tokens and sends them as UDP
datagrams (the .scrt packets, several token positions each); the receiver decodes them.

The sender's HELLO names the model; the receiver refuses another model's tokens.  Packets
may arrive late, twice, out of order or not at all: an adaptive jitter buffer puts them in
order, and positions still missing at their deadline are concealed (--plc).  With
--key-file both ends tag every datagram with an HMAC of a pre-shared key and the receiver
drops forged, altered and replayed ones.  At the end both print their counters and the
payload (id bits only) and wire (with all headers) bitrates.
"""

_LINK_EPILOG = """\
examples:
  semanticodec-rt link recv --port 5004 --file heard.wav
  semanticodec-rt link send --to 127.0.0.1:5004 --file speech.wav
  semanticodec-rt link send --help        (options of one end)
  (python examples/voice_link.py runs both ends through a lossy relay)
"""

_SEND_EPILOG = """\
examples:
  semanticodec-rt link send --to 192.0.2.7:5004 --file speech.wav
  semanticodec-rt link send --to 127.0.0.1:5004 --input 0 --key-file link.key
"""

_RECV_EPILOG = """\
examples:
  semanticodec-rt link recv --port 5004 --file heard.wav
  semanticodec-rt link recv --port 5004 --output 0 --plc pad --key-file link.key

The WAV gets the sender's exact length from its END packet; if END never comes, the
receiver stops after --timeout seconds without packets and writes the whole 160 ms units
it has.  Make a key with:  head -c 32 /dev/urandom | base64 > link.key
"""


def add_parser(sub) -> None:
    """``link`` with its two subcommands, added to the subparsers ``sub``."""
    link = sub.add_parser("link", help="voice link over UDP: link send | link recv", description=_DESCRIPTION,
                          epilog=_LINK_EPILOG, formatter_class=FORMATTER)
    link.set_defaults(func=_no_subcommand)
    ends = link.add_subparsers(dest="link_command", metavar="{send,recv}")

    p = ends.add_parser("send", help="encode audio and send the tokens", description=_DESCRIPTION,
                        epilog=_SEND_EPILOG, formatter_class=FORMATTER)
    p.set_defaults(func=cmd_send)
    p.add_argument("--to", required=True, metavar="HOST:PORT", help="the receiver's address")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--file", metavar="IN", help="audio file, replayed in real time")
    src.add_argument("--input", metavar="DEV", help="input device (number or name; sounddevice)")
    p.add_argument("--frames-per-packet", type=positive_int, metavar="N",
                   help="token positions per datagram (default: one 160 ms unit, 8 at token rate 100); "
                        "more = less overhead, more delay")
    p.add_argument("--duration", type=float, metavar="S",
                   help="with --input: stop after S seconds of audio (default: at Ctrl-C); END is sent either way")
    p.add_argument("--hello-every", type=float, default=2.0, metavar="S",
                   help="repeat the HELLO every S seconds of audio, for receivers that join late "
                        "(default 2; 0 = only at the start)")
    _add_link_options(p)
    add_encode_options(p)

    p = ends.add_parser("recv", help="receive tokens and decode them", description=_DESCRIPTION,
                        epilog=_RECV_EPILOG, formatter_class=FORMATTER)
    p.set_defaults(func=cmd_recv)
    p.add_argument("--port", required=True, type=int, metavar="PORT", help="UDP port to listen on (0: any free)")
    p.add_argument("--bind", default="127.0.0.1", metavar="ADDR",
                   help="address to listen on (default 127.0.0.1: this machine only); another address "
                        "needs --key-file, or --insecure")
    p.add_argument("--insecure", action="store_true",
                   help="allow listening beyond this machine without a key (anyone who can reach the "
                        "port can then start, stop or garble the stream)")
    dst = p.add_mutually_exclusive_group(required=True)
    dst.add_argument("--file", metavar="OUT.wav", help="write the decoded audio here")
    dst.add_argument("--output", metavar="DEV", help="play on an output device (number or name)")
    p.add_argument("--plc", choices=("repeat", "pad"), default="repeat",
                   help="concealment of missing positions: repeat the last ids (default: closer to the "
                        "lossless decode in examples/voice_link.py) or mark them 'no token' for the decoder")
    p.add_argument("--timeout", type=float, default=3.0, metavar="S",
                   help="end the stream after S seconds without packets (default 3)")
    p.add_argument("--wait", type=float, metavar="S", help="give up if nothing arrives in S seconds (default: wait)")
    p.add_argument("--min-delay", type=float, default=40.0, metavar="MS",
                   help="least jitter-buffer delay (default 40 ms)")
    p.add_argument("--max-delay", type=float, default=1000.0, metavar="MS",
                   help="most jitter-buffer delay; later packets are dropped (default 1000 ms)")
    _add_link_options(p)
    add_decode_options(p)


def _first_seconds(blocks, seconds: float):
    """The 16 kHz ``(pcm, t)`` blocks that make up the first ``seconds`` of audio (the last one cut);
    closing the capture generator then stops the device stream."""
    left = round(seconds * SAMPLE_RATE)
    try:
        for pcm, t in blocks:
            yield pcm[:left], t
            left -= len(pcm)
            if left <= 0:
                return
    finally:
        blocks.close()


def _device_rate(args: argparse.Namespace, direction: str, device: str | None) -> int:
    """``--device-rate``, else the device's own rate (the codec's 16 kHz is resampled to it)."""
    from ..live import devices

    if args.device_rate:
        return args.device_rate
    try:
        return devices.device_rate(direction, device)
    except ValueError as e:  # no device matching the name
        raise CliError(f"--{direction}: {e}", 2) from None


def _add_link_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device-rate", type=positive_int, metavar="HZ",
                   help="with --input/--output: the rate to open the device at (default: the device's own, "
                        "e.g. 48000 on JACK); the codec's 16 kHz is resampled to and from it")
    p.add_argument("--key-file", metavar="F", help="pre-shared key: HMAC-SHA256 tag on every datagram")
    p.add_argument("--stats-json", metavar="FILE", help="also write the counters as JSON here")
    p.add_argument("--threads", type=positive_int, default=1, metavar="N",
                   help="torch CPU threads (default 1: small per-unit batches gain nothing from more, "
                        "and threads spinning against other jobs can make a unit 50x slower)")
    add_common_options(p)


def _no_subcommand(args: argparse.Namespace) -> int:
    raise CliError("link needs a subcommand: 'link send' or 'link recv' (see 'semanticodec-rt link --help')")


# -- commands --------------------------------------------------------------------------------------
def cmd_send(args: argparse.Namespace) -> int:
    from ..link import Packetizer, Sender, file_blocks, link_info

    if args.duration is not None:
        if args.file:
            raise CliError("--duration is for --input (a file is sent whole)")
        if args.duration <= 0:
            raise CliError(f"--duration must be > 0 seconds, got {args.duration:g}")
    family, address = _resolve(args.to)
    if args.hello_every < 0:
        raise CliError(f"--hello-every must be >= 0 seconds, got {args.hello_every:g}")
    key = _key(args)
    # a file is checked whole first (bad input fails before the model loads), then read in blocks
    wave = read_source(input_path(args.file), args.mono) if args.file else None
    codec = _rt_codec(args)
    info = _checked_info(link_info(codec, args.frames_per_packet or codec.windowing.unit_frames), key)
    packetizer = Packetizer(info, key=key, hello_every=args.hello_every)
    block = codec.windowing.unit_samples  # one unit of audio per encoder call
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sender = Sender(codec, sock, address, packetizer)
        if wave is not None:
            blocks = file_blocks(wave, block, SAMPLE_RATE)
        else:
            from ..live.rate_bridge import resampled_capture
            from ..live.streams import capture_blocks

            rate = _device_rate(args, "input", args.input)
            blocks = resampled_capture(capture_blocks(args.input, round(block * rate / SAMPLE_RATE), rate,
                                                      sender.stats), rate)
            if args.duration is not None:
                blocks = _first_seconds(blocks, args.duration)
        say(args, f"sending {info.config} tokens to {args.to}: {info.frames_per_packet} positions per "
                  f"datagram, session {packetizer.session:08x}{', authenticated' if key else ''}")
        stats = sender.run(blocks).to_dict()
    _report(args, "send", stats)
    return 0


def cmd_recv(args: argparse.Namespace) -> int:
    from ..link import CodecDecoder, ReceiverCore, WavSink, link_info, receive_stream

    key = _key(args)
    # no input file here: /dev/null stands in for _output_path's "same as the input" check
    dst = output_path(args.file, args.force, Path(os.devnull), wav=True) if args.file else None
    if not 0 <= args.min_delay <= args.max_delay:
        raise CliError(f"need 0 <= --min-delay <= --max-delay, got {args.min_delay:g} and {args.max_delay:g}")
    if args.timeout <= 0:
        raise CliError(f"--timeout must be > 0 seconds, got {args.timeout:g}")
    codec = _rt_codec(args)
    cfg = codec.cfg
    decoder = CodecDecoder(codec, steps=args.steps, cfg_scale=args.cfg_scale, seed=args.seed)
    core = ReceiverCore(link_info(codec), codec.windowing.unit_frames, key=key, plc=args.plc,
                        min_delay=args.min_delay / 1e3, max_delay=args.max_delay / 1e3)
    # the decoder may run ahead of the final length by the --timeout wait plus one unit
    holdback = int((args.timeout + 1.0) * SAMPLE_RATE) + decoder.unit_samples
    family, bind = _resolve(f"{args.bind}:{args.port}")
    if not _loopback(bind[0]) and key is None:
        if not args.insecure:
            raise CliError(f"--bind {args.bind} listens beyond this machine without a key: anyone who can "
                           "reach the port could take over the stream; give --key-file (or --insecure)")
        print(f"{PROG}: warning: listening on {args.bind} without a key (--insecure): any host that can "
              "reach this port can start, stop or garble the stream", file=sys.stderr)
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(bind)
        except OSError as e:
            raise CliError(f"cannot listen on {args.bind}:{args.port}: {e.strerror or e}", 1) from None
        say(args, f"listening on {args.bind}:{sock.getsockname()[1]} for {cfg.name} tokens "
                  f"(sha {codec.model_sha}){', authenticated' if key else ''}")
        if dst is None:
            from ..live.rate_bridge import ResampledPlayback
            from ..live.streams import PlaybackSink

            rate = _device_rate(args, "output", args.output)
            sink = PlaybackSink(args.output, rate)
            if rate != SAMPLE_RATE:
                sink = ResampledPlayback(sink, rate)
            _check_received(args, receive_stream(sock, core, decoder, sink, timeout=args.timeout, wait=args.wait))
        else:
            with atomic_output(dst) as tmp:  # removed again if nothing came
                sink = WavSink(tmp, SAMPLE_RATE, holdback, use_float=args.float)
                _check_received(args, receive_stream(sock, core, decoder, sink, timeout=args.timeout,
                                                     wait=args.wait))
    return 0


# -- pieces ----------------------------------------------------------------------------------------
def _check_received(args: argparse.Namespace, stats: dict) -> None:
    """Print the counters; fail if no packet of the stream came (another model: say so)."""
    from ..bitstream import ModelMismatchError

    _report(args, "recv", stats)
    if not stats["packets_received"]:
        if stats["model_mismatch_error"]:
            raise ModelMismatchError(stats["model_mismatch_error"])
        raise CliError("no stream received (nothing from a sender with this model and key)")


def _rt_codec(args: argparse.Namespace):
    codec = load_codec(args)  # with --threads
    if not codec.windowing.realtime:
        raise CliError(f"{codec.cfg.name} is not a real-time preset: a voice link needs an rt model "
                       f"(this one works in {codec.windowing.name} windows)")
    return codec


def _checked_info(info, key):
    """``info`` if a datagram of ``frames_per_packet`` positions fits one Ethernet frame."""
    from ..bitstream import PACKET_OVERHEAD, packet_size
    from ..link.datagram import LINK_HEADER, MAX_DATAGRAM, TAG_BYTES

    n = info.frames_per_packet
    framing = LINK_HEADER.size + (TAG_BYTES if key else 0)
    size = framing + packet_size(n, info.semantic_bits, info.acoustic_bits)
    if size > MAX_DATAGRAM:
        most = (MAX_DATAGRAM - framing - PACKET_OVERHEAD) * 8 // info.frame_bits
        raise CliError(f"--frames-per-packet {n} makes {size}-byte datagrams; at most {most} positions "
                       f"fit in {MAX_DATAGRAM} bytes")
    return info


def _key(args: argparse.Namespace) -> bytes | None:
    from ..link import load_key

    if args.key_file is None:
        return None
    return load_key(input_path(args.key_file))


def _loopback(host: str) -> bool:
    """Whether ``host`` (a resolved address) is this machine only (127.0.0.0/8, ::1)."""
    import ipaddress

    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _resolve(text: str) -> tuple[int, tuple]:
    """``HOST:PORT`` (``[v6]:PORT`` too) -> ``(address family, socket address)``."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise CliError(f"{text!r}: expected HOST:PORT, e.g. 127.0.0.1:5004")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        family, _, _, _, addr = socket.getaddrinfo(host, int(port), type=socket.SOCK_DGRAM)[0]
    except socket.gaierror as e:
        raise CliError(f"{text}: cannot resolve {host}: {e.strerror}") from None
    return family, addr


def _report(args: argparse.Namespace, role: str, stats: dict) -> None:
    from ..link.stats import summary_lines, write_stats_json

    stats = {"role": role, **stats}
    if args.stats_json:
        write_stats_json(args.stats_json, stats)
    if not args.quiet:
        print("\n".join(summary_lines(stats)), file=sys.stdout)
