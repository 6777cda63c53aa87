"""Writes blueprint.pdf: a one-page PDF 1.4 standing in for the event
blueprint the workflow attaches to its blueprint_delivery message.

    /usr/bin/python3 tests/demo/make_blueprint.py tests/demo/blueprint.pdf

The file is committed; this script says how it was made. Only the standard
Helvetica font is used, so no font is embedded and the file stays small."""
import sys

LINES = [
    (24, "Planiva - Event Blueprint"),
    (14, "Sample wedding, 14 February 2027"),
    (12, ""),
    (12, "Venue: The Garden Pavilion (180 guests)"),
    (12, "Catering: Saffron Table - vegetarian and vegan menus"),
    (12, "Photography: Lumen Studio - full day"),
    (12, "Decor: Marigold & Co."),
    (12, ""),
    (12, "Timeline: 15:00 ceremony, 17:30 reception, 22:00 close"),
    (12, "Budget: 24,500 USD of 25,000 USD"),
]


def pdf_text(s):
    return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def build():
    ops = ["BT", "72 720 Td"]
    for size, text in LINES:
        ops.append("/F1 %d Tf" % size)
        ops.append("(%s) Tj" % pdf_text(text))
        ops.append("0 -%d Td" % (size + 10))
    ops.append("ET")
    stream = "\n".join(ops).encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Title (Event Blueprint) /Producer (crier demo) >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n" % (len(objects) + 1)
    out += b"0000000000 65535 f \n"
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


if __name__ == "__main__":
    with open(sys.argv[1] if len(sys.argv) > 1 else "blueprint.pdf", "wb") as f:
        f.write(build())
