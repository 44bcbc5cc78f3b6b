#!/usr/bin/env bash
# Writes the seed corpora of the fuzz targets from the captured frames in
# crates/proto/tests/data/nw-frames.txt:
#
#   corpus/frame/<ID>          the bytes of each vector (R01, A03, C01, ...), as is;
#   corpus/deframer/<ID>-cN    the same bytes behind a control byte N (the deframer target's
#                              first byte chooses the chunk sizes: N & 3 = 0 -> 1..8 bytes,
#                              1 -> 1..64, 2 -> 1..700, 3 -> the whole stream at once);
#   corpus/deframer/stream-cN  every vector back to back with noise between them (stray 4E and
#                              4E 57 bytes, a truncated frame, a bad LENGTH), behind each control byte.
#
# Usage: fuzz/seed-corpus.sh (from anywhere). Existing files of the same name are overwritten;
# other corpus entries (what the fuzzer found) are kept.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
vectors="$here/../crates/proto/tests/data/nw-frames.txt"
mkdir -p "$here/corpus/frame" "$here/corpus/deframer"

python3 - "$vectors" "$here/corpus" <<'EOF'
import pathlib, re, sys

vectors_file, corpus = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
text = vectors_file.read_text()
vectors = []
for block in text.split("\n=== ")[1:]:
    lines = block.split("\n")
    ident = re.match(r"([A-Za-z0-9]+)", lines[0]).group(1)
    hex_bytes, in_hex = [], False
    for line in lines[1:]:
        line = line.rstrip()
        if line == "hex:":
            in_hex = True
        elif in_hex:
            if not line or line.endswith(":"):
                break
            hex_bytes += line.split()
    if hex_bytes:
        vectors.append((ident, bytes(int(b, 16) for b in hex_bytes)))

controls = [0x00, 0x05, 0x42, 0x83, 0xFF]
for ident, data in vectors:
    (corpus / "frame" / ident).write_bytes(data)
    for c in controls:
        (corpus / "deframer" / f"{ident}-c{c:02X}").write_bytes(bytes([c]) + data)

noise = [
    bytes([0x00, 0x4E, 0x13]),                   # a lone 4E
    bytes([0x4E, 0x57, 0xFF, 0xFF, 0x01]),       # a candidate with a LENGTH over the limit
    bytes([0x4E, 0x57, 0x00, 0x13, 0x00, 0x00]), # a truncated candidate
    bytes([0x68, 0x00, 0x00, 0x4E]),
    b"",
]
stream = bytearray()
for i, (ident, data) in enumerate(vectors):
    stream += noise[i % len(noise)]
    stream += data
stream += vectors[0][1][:7]  # a partial frame at the end stays buffered
for c in controls:
    (corpus / "deframer" / f"stream-c{c:02X}").write_bytes(bytes([c]) + bytes(stream))

# SLCAN adapter output for the `can` target: the real US5000 0x351 from inverter-can.md, a
# Pylon 0x359 and 0x35C, an SMA 0x305, acks, an extended frame, a BEL, version and status lines.
(corpus / "can").mkdir(parents=True, exist_ok=True)
slcan_lines = [
    b"t35181402C012C012C201\r",
    b"t3598020000000000504E00\r",
    b"t35C2C000\r",
    b"t3558320064002C19\r",
    b"t3058F401F6FF0E01E803\r",
    b"t30580000000000000000\r",
    b"z\r",
    b"T1234567880102030405060708\r",
    b"\x07",
    b"V1013\r",
    b"F00\r",
]
session = b"".join(slcan_lines)
for c in controls:
    (corpus / "can" / f"session-c{c:02X}").write_bytes(bytes([c]) + session)
for i, line in enumerate(slcan_lines):
    (corpus / "can" / f"line-{i:02}").write_bytes(bytes([0x07]) + line)

print(f"{len(vectors)} vectors -> {corpus}/frame ({len(vectors)} files), "
      f"{corpus}/deframer ({len(vectors) * len(controls) + len(controls)} files, "
      f"stream of {len(stream)} bytes)")
EOF
