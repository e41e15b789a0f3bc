"""``multipart/form-data`` bodies (RFC 7578) -> their parts, in memory.

The request body is already in memory and bounded (``max_body_bytes``), so the parts are slices
of it, found with ``bytes.find``: Starlette's form parser feeds python-multipart's byte-by-byte
state machine and spools every file into a temporary file object, which costs more than decoding
a small picture. Header parameters (``name``, ``filename``, ``filename*``) are read by
python-multipart's ``parse_options_header``, as Starlette reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

from python_multipart.multipart import parse_options_header

from app.errors import InvalidInputError, PayloadTooLargeError

MAX_PART_HEADER_BYTES = 16 * 1024  # one part's header block, like an HTTP header cap
# A part has one to three headers (Content-Disposition, Content-Type) of at most three
# parameters (name, filename, filename*); each header and parameter is parsed in Python: 100
# fields of 1,500 parameters (1.5 MB) took 177 ms, of 2,700 empty headers (1.4 MB) 44 ms.
MAX_PART_HEADERS = 16
MAX_PARAMETERS = 16  # of one header value (Content-Disposition, Content-Type)
CRLF = b"\r\n"


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None  # None: a text field, not a file
    content_type: str
    data: bytes


def parse_form(body: bytes, content_type: str, max_files: int, max_fields: int) -> list[Part]:
    """The parts of ``body``, in order. 400 when malformed; 413 past ``max_files`` files."""
    _, params = _options(content_type.encode("latin-1"), "the content type")
    boundary = params.get(b"boundary")
    if not boundary:
        raise _malformed("the content type has no boundary")
    delimiter = b"--" + boundary
    position = body.find(delimiter)  # anything before it is a preamble, ignored
    if position < 0:
        raise _malformed("no boundary in the body")
    parts: list[Part] = []
    files = fields = 0
    position += len(delimiter)
    while not body.startswith(b"--", position):  # "--" after a delimiter closes the body
        line_end = body.find(CRLF, position)
        if line_end < 0 or body[position:line_end].strip(b" \t"):
            raise _malformed("a boundary line is not followed by a line break")
        headers_start = line_end + 2
        if body.startswith(CRLF, headers_start):
            headers_end = headers_start  # a part with no headers
        else:
            headers_end = body.find(CRLF + CRLF, headers_start)
            if headers_end < 0:
                raise _malformed("a part's headers do not end")
        if headers_end - headers_start > MAX_PART_HEADER_BYTES:
            raise _malformed(f"a part's headers exceed {MAX_PART_HEADER_BYTES} bytes")
        data_start = headers_end + (2 if headers_end == headers_start else 4)
        data_end = body.find(CRLF + delimiter, data_start)
        if data_end < 0:
            raise _malformed("the body ends inside a part (no closing boundary)")
        part = _part(body[headers_start:headers_end], body[data_start:data_end])
        if part.filename is None:
            fields += 1
            if fields > max_fields:
                raise _malformed(f"more than {max_fields} fields")
        else:
            files += 1
            if files > max_files:
                raise PayloadTooLargeError(
                    f"more than {max_files} files in one request", field="files"
                )
        parts.append(part)
        position = data_end + 2 + len(delimiter)
    return parts


def _part(header_block: bytes, data: bytes) -> Part:
    headers: dict[bytes, bytes] = {}
    if header_block.count(CRLF) >= MAX_PART_HEADERS:
        raise _malformed(f"a part has more than {MAX_PART_HEADERS} headers")
    for line in header_block.split(CRLF) if header_block else ():
        name, colon, value = line.partition(b":")
        if not colon:
            raise _malformed("a part header has no ':'")
        headers[name.strip().lower()] = value.strip()
    disposition = headers.get(b"content-disposition")
    if disposition is None:
        raise _malformed("a part has no Content-Disposition header")
    _, options = _options(disposition, "a part's Content-Disposition")
    if b"name" not in options:
        raise _malformed('the Content-Disposition header field "name" must be provided')
    filename = options.get(b"filename")
    return Part(
        name=_text(options[b"name"]),
        filename=None if filename is None else _text(filename),
        content_type=_text(headers.get(b"content-type", b"")),
        data=data,
    )


def _options(value: bytes, what: str) -> tuple[bytes, dict[bytes, bytes]]:
    """A header value's parameters, parsed once their number is known to be small."""
    if value.count(b";") > MAX_PARAMETERS:
        raise _malformed(f"{what} has more than {MAX_PARAMETERS} parameters")
    return parse_options_header(value)


def _text(value: bytes | str) -> str:
    """A header parameter as text: UTF-8 as browsers send it, any other byte kept (latin-1)."""
    if isinstance(value, str):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _malformed(why: str) -> InvalidInputError:
    return InvalidInputError(f"malformed multipart body: {why}", field="body")
