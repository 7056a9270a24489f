"""The mock's HTTP/1.1 plumbing: requests read with kernel receive times, responses written whole or
as chunked streams with an optional per-event Content-Encoding."""

from __future__ import annotations

import socket
import ssl
import time
import zlib

import brotli
import gevent.ssl
import orjson

from llm_locust.wire import rxclock

_STATUS = {
    200: "OK",
    302: "Found",
    400: "Bad Request",
    404: "Not Found",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


def send(
    sock: socket.socket, status: int, payload: bytes, media: str, *, close: bool = False, extra: str = ""
) -> bool:
    """Write one whole response (``extra``: more header lines, each ending in CRLF); return False when
    the connection must close."""
    head = (
        f"HTTP/1.1 {status} {_STATUS.get(status, 'Error')}\r\nContent-Type: {media}\r\n"
        f"Content-Length: {len(payload)}\r\n{extra}"
        f"{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n"
    )
    sock.sendall(head.encode("latin-1") + payload)
    return not close


def send_json(sock: socket.socket, status: int, obj: object, *, close: bool = False, extra: str = "") -> bool:
    return send(sock, status, orjson.dumps(obj), "application/json", close=close, extra=extra)


def stream_head(media: str, coding: str | None) -> bytes:
    """The status line and headers of a chunked streamed answer."""
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nCache-Control: no-cache\r\n" % media.encode()
        + (b"Content-Encoding: %s\r\n" % coding.encode() if coding else b"")
        + b"Transfer-Encoding: chunked\r\n\r\n"
    )


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (never call it with b"": that is the end of the body)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


#: the last chunk: the body ends cleanly here
END = b"0\r\n\r\n"


class Encoder:
    """A stream's Content-Encoding, flushed after every write so that each event goes out at once
    (as a server that compresses event streams must)."""

    def __init__(self, coding: str | None) -> None:
        self.coding = coding
        if coding == "br":
            self._br = brotli.Compressor()
        elif coding is not None:
            self._z = zlib.compressobj(wbits=31 if coding == "gzip" else 15)

    def encode(self, data: bytes) -> bytes:
        if self.coding is None:
            return data
        if self.coding == "br":
            return self._br.process(data) + self._br.flush()  # type: ignore[no-any-return]
        return self._z.compress(data) + self._z.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        if self.coding is None:
            return b""
        if self.coding == "br":
            return self._br.finish()  # type: ignore[no-any-return]
        return self._z.flush()


class Connection:
    """A connection's bytes, read with the kernel's receive time, so that a request's schedule starts
    when it reached the socket even when this process was busy and read it late."""

    __slots__ = ("arrived_s", "buf", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.arrived_s = time.perf_counter()  # of the first bytes of the request being read

    def _fill(self) -> bool:
        ancdata: list[tuple[int, int, bytes]] = []
        if isinstance(self.sock, ssl.SSLSocket | gevent.ssl.SSLSocket):  # TLS: no recvmsg, no rx times
            data = self.sock.recv(65536)
        else:
            data, ancdata, _flags, _addr = self.sock.recvmsg(65536, rxclock.CMSG_SPACE)
        if not data:
            return False
        if not self.buf:
            self.arrived_s = rxclock.corrected(time.perf_counter(), rxclock.receive_ns(ancdata))
        self.buf += data
        return True

    def readline(self, limit: int) -> bytes:
        """One line with its LF (at most ``limit`` bytes); what is left at the end of the stream."""
        buf = self.buf
        while True:
            i = buf.find(b"\n", 0, limit)
            n = i + 1 if i >= 0 else limit if len(buf) >= limit else 0
            if n or not self._fill():
                n = n or len(buf)
                line = bytes(buf[:n])
                del buf[:n]
                return line

    def read(self, n: int) -> bytes:
        while len(self.buf) < n and self._fill():
            pass
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out
