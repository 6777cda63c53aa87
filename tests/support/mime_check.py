#!/usr/bin/python3
"""Checks that an email message is well-formed the way crier promises.

Library (stable interface, used by integration tests):

    import sys; sys.path.insert(0, "<source>/tests/support")
    from mime_check import parse_message, MimeCheckError

    info = parse_message(path_or_bytes)

parse_message(path_or_bytes) -> dict
    Takes a file path (str or os.PathLike) or the raw message bytes. Raises
    MimeCheckError (a ValueError) naming every rule the message breaks.
    Otherwise returns:
        {
          "subject":     str,   # decoded (RFC 2047)
          "from":        str,   # the From header, decoded
          "to":          str,   # the To header, decoded
          "to_name":     str,   # To display name, decoded ("" when none)
          "to_addr":     str,   # To address
          "message_id":  str,
          "date":        str,
          "headers":     {name: decoded value} (last one wins),
          "text":        str,   # the text/plain part, decoded, "\n" line ends
          "html":        str,   # the text/html part, decoded, "\n" line ends
          "attachments": [(filename, content_type, size_in_bytes), ...],
        }

Rules checked: Date, From, To, Message-ID and Subject present; MIME-Version
1.0; structure multipart/alternative (text/plain, then text/html), optionally
as the first part of a multipart/mixed whose other parts are attachments;
every line at most 998 bytes; every line ends in CRLF; the whole message is
7-bit (so headers are ASCII only).

CLI: /usr/bin/python3 tests/support/mime_check.py FILE...
    prints one JSON object per file ({"file":..., "ok": true, ...} or
    {"file":..., "ok": false, "errors": [...]}); exits 0 when every file
    passes, 1 otherwise, 2 on usage errors.
"""

import email
import email.header
import email.policy
import json
import os
import sys

__all__ = ["parse_message", "MimeCheckError"]

REQUIRED_HEADERS = ("Date", "From", "To", "Message-ID", "Subject")
MAX_LINE = 998


class MimeCheckError(ValueError):
    """The message breaks one or more rules; .errors lists them."""

    def __init__(self, errors):
        super().__init__("; ".join(errors))
        self.errors = list(errors)


def _read(path_or_bytes):
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return bytes(path_or_bytes)
    with open(os.fspath(path_or_bytes), "rb") as f:
        return f.read()


def _check_wire(raw, errors):
    """Line length, CRLF endings and 7-bit, on the raw bytes."""
    if not raw:
        errors.append("empty message")
        return
    if not raw.endswith(b"\r\n"):
        errors.append("message does not end with CRLF")
    if raw.count(b"\n") != raw.count(b"\r\n"):
        errors.append("a line ends with a bare LF")
    if raw.count(b"\r") != raw.count(b"\r\n"):
        errors.append("a bare CR outside a CRLF")
    for n, line in enumerate(raw.split(b"\r\n"), 1):
        if len(line) > MAX_LINE:
            errors.append("line %d is %d bytes (max %d)" % (n, len(line), MAX_LINE))
            break
    for i, b in enumerate(raw):
        if b >= 0x80:
            errors.append("byte %d is not 7-bit (0x%02x)" % (i, b))
            break


def _check_headers(msg, head, errors):
    for name in REQUIRED_HEADERS:
        if msg.get(name) is None:
            errors.append("missing %s header" % name)
    if head.strip() == b"":
        errors.append("no header block")
    # A header line that is neither a field nor a fold would be body text
    # injected into the header block.
    for n, line in enumerate(head.split(b"\r\n"), 1):
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            if n == 1:
                errors.append("header block starts with a continuation line")
            continue
        if b":" not in line:
            errors.append("header line %d is not a field: %r" % (n, line[:60]))
    if str(msg.get("MIME-Version", "")).strip() != "1.0":
        errors.append("MIME-Version is not 1.0")


def _text_of(part):
    try:
        return part.get_content().replace("\r\n", "\n")
    except (LookupError, UnicodeError) as e:  # unknown charset, bad bytes
        raise MimeCheckError(["undecodable %s part: %s" % (part.get_content_type(), e)])


def _check_alternative(alt, out, errors):
    if alt.get_content_type() != "multipart/alternative":
        errors.append("expected multipart/alternative, got %s" % alt.get_content_type())
        return
    parts = list(alt.iter_parts())
    types = [p.get_content_type() for p in parts]
    if types != ["text/plain", "text/html"]:
        errors.append("alternative parts are %s, expected text/plain then text/html" % types)
        return
    for p in parts:
        if (p.get_content_charset() or "").lower() != "utf-8":
            errors.append("%s part charset is not UTF-8" % p.get_content_type())
    out["text"] = _text_of(parts[0])
    out["html"] = _text_of(parts[1])


def _display_name(msg, parsed):
    """The To display name decoded per RFC 2047 §6.2.

    Python's address parser keeps the whitespace between adjacent
    encoded-words of a phrase, which the RFC says to drop, so a long name
    split over several words would come back with stray spaces. When the
    name is made of encoded-words, decode the raw phrase directly instead."""
    raw = next((v for k, v in msg.raw_items() if k.lower() == "to"), "")
    raw = raw.replace("\r\n", "").replace("\n", "")
    phrase = raw.split("<", 1)[0].strip()
    if "=?" not in phrase:
        return parsed
    return str(email.header.make_header(email.header.decode_header(phrase)))


def parse_message(path_or_bytes):
    """Parses and checks one message; see the module docstring."""
    raw = _read(path_or_bytes)
    errors = []
    _check_wire(raw, errors)
    head = raw.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    _check_headers(msg, head, errors)

    out = {
        "subject": str(msg.get("Subject", "")),
        "from": str(msg.get("From", "")),
        "to": str(msg.get("To", "")),
        "to_name": "",
        "to_addr": "",
        "message_id": str(msg.get("Message-ID", "")),
        "date": str(msg.get("Date", "")),
        "headers": {k: str(v) for k, v in msg.items()},
        "text": None,
        "html": None,
        "attachments": [],
    }
    try:
        to = msg.get("To")
        if to is not None and to.addresses:
            out["to_name"] = _display_name(msg, to.addresses[0].display_name or "")
            out["to_addr"] = to.addresses[0].addr_spec
    except (AttributeError, IndexError, ValueError) as e:
        errors.append("To header does not parse: %s" % e)
    if msg.defects:
        errors.append("parser defects: %s" % [type(d).__name__ for d in msg.defects])

    top = msg.get_content_type()
    if top == "multipart/mixed":
        parts = list(msg.iter_parts())
        if not parts:
            errors.append("multipart/mixed without parts")
        else:
            _check_alternative(parts[0], out, errors)
            for p in parts[1:]:
                if p.get_content_disposition() != "attachment":
                    errors.append("mixed part %s is not an attachment" % p.get_content_type())
                payload = p.get_payload(decode=True) or b""
                out["attachments"].append((p.get_filename(), p.get_content_type(), len(payload)))
    elif top == "multipart/alternative":
        _check_alternative(msg, out, errors)
    else:
        errors.append("top-level type is %s" % top)
    for part in msg.walk():
        if part.defects:
            errors.append(
                "%s part defects: %s"
                % (part.get_content_type(), [type(d).__name__ for d in part.defects])
            )

    if errors:
        raise MimeCheckError(errors)
    return out


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print("usage: mime_check.py FILE...", file=sys.stderr)
        return 2
    status = 0
    for path in argv[1:]:
        try:
            info = parse_message(path)
            info = dict(info, attachments=[list(a) for a in info["attachments"]])
            print(json.dumps(dict(file=path, ok=True, **info), ensure_ascii=False))
        except (MimeCheckError, OSError) as e:
            errors = e.errors if isinstance(e, MimeCheckError) else [str(e)]
            print(json.dumps({"file": path, "ok": False, "errors": errors}))
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
