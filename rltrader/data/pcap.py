"""Classic libpcap captures of ITCH 5.0 over UDP, unwrapped into BinaryFILE bytes.

Each frame must be Ethernet (optionally one 802.1Q tag) / IPv4 / UDP, and each UDP payload
either a MoldUDP64 packet (20-byte header ``session[10], seq_num u64, msg_count u16``, then
``msg_count`` blocks of ``u16 length + message``; heartbeats and end-of-session packets
carry none) or bare ``u16 length + message`` records (the shared sample capture). The
result feeds the same parser as a file: :func:`rltrader.data.itch.read_messages` reads a
``.pcap`` path directly. The capture is read whole: meant for small captures. pcapng is not
supported.
"""

from __future__ import annotations

import os
import struct

from rltrader.core.constants import PathLike
from rltrader.data._io import FormatError


class PcapFormatError(FormatError):
    """A capture that is not classic libpcap Ethernet / IPv4 / UDP around ITCH records."""


PCAP_MAGIC = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",
               b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">"}


def _records_span(payload: bytes, start: int, count: int | None) -> bool:
    """Whether ``payload[start:]`` is exactly ``count`` (any, if None) length-prefixed
    records."""
    pos, seen = start, 0
    while pos + 2 <= len(payload) and (count is None or seen < count):
        pos += 2 + int.from_bytes(payload[pos:pos + 2], "big")
        seen += 1
    return pos == len(payload) and (count is None or seen == count)


def _udp_records(payload: bytes, offset: int, path: str) -> bytes:
    """BinaryFILE records of one UDP payload: a MoldUDP64 packet or bare records."""
    if len(payload) >= 20 and payload[:10].isascii() and payload[:10].strip().isalnum():
        count = int.from_bytes(payload[18:20], "big")
        if count in (0, 0xFFFF) and len(payload) == 20:
            return b""  # heartbeat / end of session
        if _records_span(payload, 20, count):
            return payload[20:]
    if _records_span(payload, 0, None):
        return payload
    raise PcapFormatError(path, offset, "pcap packet: UDP payload is neither MoldUDP64 nor "
                          "length-prefixed ITCH records")


def pcap_to_binaryfile(path: PathLike) -> bytes:
    """The ITCH records of a classic libpcap capture, concatenated as a BinaryFILE.

    Each frame must be Ethernet (optionally one 802.1Q tag) / IPv4 / UDP; each UDP payload
    a MoldUDP64 packet or bare ``u16 length + message`` records. Reads the capture whole.
    """
    name = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    endian = PCAP_MAGIC.get(data[:4])
    if endian is None or len(data) < 24:
        raise PcapFormatError(name, 0, "not a classic libpcap file")
    if struct.unpack(endian + "I", data[20:24])[0] != 1:
        raise PcapFormatError(name, 20, "pcap link type is not Ethernet")
    out = []
    pos = 24
    while pos < len(data):
        if pos + 16 > len(data):
            raise PcapFormatError(name, pos, "truncated pcap packet header")
        incl = struct.unpack(endian + "I", data[pos + 8:pos + 12])[0]
        frame = data[pos + 16:pos + 16 + incl]
        if len(frame) < incl:
            raise PcapFormatError(name, pos, "truncated pcap packet")
        out.append(_udp_records(_udp_payload(frame, name, pos), pos, name))
        pos += 16 + incl
    return b"".join(out)


def _udp_payload(frame: bytes, path: str, offset: int) -> bytes:
    eth = 14
    ethertype = int.from_bytes(frame[12:14], "big")
    if ethertype == 0x8100:
        ethertype = int.from_bytes(frame[16:18], "big")
        eth = 18
    if ethertype != 0x0800 or len(frame) < eth + 20:
        raise PcapFormatError(path, offset, "pcap frame is not IPv4")
    ihl = (frame[eth] & 0x0F) * 4
    if frame[eth + 9] != 17:
        raise PcapFormatError(path, offset, "pcap frame is not UDP")
    udp = eth + ihl
    length = int.from_bytes(frame[udp + 4:udp + 6], "big")
    return frame[udp + 8:udp + length]
