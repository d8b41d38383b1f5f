"""Reading a file's text: encoding detection (UTF-8, UTF-8 with BOM, UTF-16 with or
without BOM), refusing binary files, and iterating lines with their numbers. Errors
name the file and line. What the lines mean is the format parsers' job."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from chatbot.errors import InputError

SNIFF_BYTES = 64 * 1024


@dataclass
class Line:
    number: int  # 1-based
    text: str  # without the line ending
    nbytes: int  # bytes this line took in the file, ending included (for progress)


def detect_encoding(head: bytes, path: str) -> str:
    """The codec name for a file starting with `head`; InputError for binary files."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith(codecs.BOM_UTF16_LE) or head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16"
    if b"\x00" in head:
        sample = head[: len(head) - len(head) % 2]
        even_nuls = sample[0::2].count(0)
        odd_nuls = sample[1::2].count(0)
        half = max(1, len(sample) // 2)
        # Mostly-ASCII UTF-16 text has a NUL in every other byte and almost none in the others.
        guess = None
        if odd_nuls > 0.3 * half and even_nuls < 0.1 * half:
            guess = "utf-16-le"
        elif even_nuls > 0.3 * half and odd_nuls < 0.1 * half:
            guess = "utf-16-be"
        if guess is not None:
            text = sample.decode(guess, errors="replace")
            controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\n\r\f")
            if controls <= 0.02 * max(1, len(text)):
                return guess
        raise InputError(
            "is a binary file, not text (it contains NUL bytes); expected JSON Lines, JSON or CSV",
            path=path,
        )
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13, 27))
    if head and controls > 0.1 * len(head):
        raise InputError(
            "is a binary file, not text (control bytes); expected JSON Lines, JSON or CSV",
            path=path,
        )
    return "utf-8"


def _decode_error(exc: UnicodeDecodeError, encoding: str, path: str, line: int) -> InputError:
    bad = exc.object[exc.start : exc.start + 1]
    hint = (
        " (is it Latin-1 or Windows-1252? convert it first, e.g. iconv -f cp1252 -t utf-8)"
        if encoding.startswith("utf-8")
        else ""
    )
    return InputError(
        f"cannot decode byte 0x{bad.hex()} at byte {exc.start + 1} of the line as {encoding.upper().replace('-SIG', '')}{hint}",
        path=path,
        line=line,
    )


def iter_lines(path: Path | str) -> Iterator[Line]:
    """The file's lines, decoded; InputError naming the line on undecodable bytes,
    and for empty or binary files."""
    path = Path(path)
    name = str(path)
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        raise InputError("file not found", path=name) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a file", path=name) from None
    except OSError as exc:
        raise InputError(f"cannot be read: {exc.strerror}", path=name) from None
    with fh:
        head = fh.read(SNIFF_BYTES)
        if not head.strip(b" \t\r\n\x00\xef\xbb\xbf\xff\xfe"):
            raise InputError("is empty: no records to import", path=name)
        encoding = detect_encoding(head, name)
        fh.seek(0)
        if encoding.startswith("utf-8"):
            yield from _utf8_lines(fh, encoding, name)
        else:
            yield from _utf16_lines(fh, encoding, name)


def _utf8_lines(fh: BinaryIO, encoding: str, name: str) -> Iterator[Line]:
    number = 0
    for raw in fh:
        number += 1
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
            nbytes = len(raw) + 3
        else:
            nbytes = len(raw)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _decode_error(exc, "utf-8", name, number) from None
        if "\x00" in text:
            raise InputError("contains a NUL byte: binary data, not text", path=name, line=number)
        yield Line(number, text.rstrip("\r\n"), nbytes)


def _utf16_lines(fh: BinaryIO, encoding: str, name: str) -> Iterator[Line]:
    # Decode incrementally; on an error, find the line by counting decoded newlines.
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    number = 0
    pending = ""
    while True:
        chunk = fh.read(1 << 16)
        try:
            pending += decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            raise InputError(
                f"cannot decode as {encoding.upper()} (byte 0x{exc.object[exc.start : exc.start + 1].hex()}); "
                "the file is damaged or not UTF-16",
                path=name,
                # pending holds no newline; count those in the bytes before the bad one.
                line=number + exc.object[: exc.start].count(b"\n") + 1,
            ) from None
        parts = pending.split("\n")
        if chunk:
            pending = parts.pop()
        elif parts and parts[-1] == "":
            parts.pop()
        for part in parts:
            number += 1
            yield Line(number, part.rstrip("\r"), 2 * (len(part) + 1))
        if not chunk:
            return
