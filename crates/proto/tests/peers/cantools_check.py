#!/usr/bin/env python3
"""Independent peer for bmslink's inverter CAN frames: cantools + the Pylontech DBC.

Usage: cantools_check.py CASES.json

CASES.json (written by crates/proto/tests/cantools.rs) is a list of
  {"name": str, "id": int, "data": "hex", "expect": {signal: number | str}}
with frames produced by bmslink-proto and the engineering values they must carry.

For every frame this script, using only cantools and ../data/pylon_CAN.dbc (a copy of
shared/reference/pylon_CAN.dbc):
  1. decodes the bytes and compares every signal of the DBC message with the expected value
     (within half a scaling step; the manufacturer string as 8 little-endian ASCII bytes);
     a signal of the message without an expectation is a failure, so nothing goes unchecked;
  2. checks each decoded value against the DBC's declared [min|max] range;
  3. re-encodes the decoded values with cantools and requires the same bits as bmslink sent,
     wherever a DBC signal describes them (the DBC does not describe 0x359's "PN" bytes, nor
     the extra bytes of bmslink's 8-byte 0x359 and 6-byte 0x355 forms).

Known DBC defect: Battery_limits.Battery_discharge_current_limit is declared [-500|0], but real
packs send the discharge limit POSITIVE (inverter-can.md; the US5000 capture
14 02 C0 12 C0 12 C2 01 has +480.0 A). For that signal only, a positive value outside the
declared range is reported as a note, not a failure, and re-encoding uses strict=False
(cantools' strict mode refuses to encode values outside the declared range).

Exit status: 0 all passed, 1 a failure, 2 usage error, 3 cantools is not installed.
The last line is "cantools_check: N passed, M failed".
"""

import json
import os
import sys

SKIP_EXIT = 3

try:
    import cantools
except ImportError:
    print("SKIPPED: cantools not installed (CI installs it)")
    sys.exit(SKIP_EXIT)

HERE = os.path.dirname(os.path.abspath(__file__))
DBC = os.path.join(HERE, "..", "data", "pylon_CAN.dbc")

# (message, signal) whose DBC range is known to be wrong, and why.
KNOWN_RANGE_DEFECTS = {
    ("Battery_limits", "Battery_discharge_current_limit"):
        "DBC declares [-500|0]; real packs send the discharge limit positive",
}


def text_of(value):
    """The 8 wire bytes of a 64-bit little-endian string signal."""
    return int(value).to_bytes(8, "little")


def check_values(message, decoded, expect):
    errors = []
    for signal in message.signals:
        if signal.name not in expect:
            errors.append(f"no expectation for signal {signal.name}")
            continue
        want = expect[signal.name]
        got = decoded[signal.name]
        if isinstance(want, str):
            wire = want.encode("ascii").ljust(8, b" ")
            if text_of(got) != wire:
                errors.append(f"{signal.name}: {text_of(got)!r} != {wire!r}")
        elif abs(float(got) - float(want)) > abs(signal.scale) / 2:
            errors.append(f"{signal.name}: decoded {got}, expected {want}")
    for name in expect:
        if name not in decoded:
            errors.append(f"expectation for {name}, which {message.name} does not have")
    return errors


def check_ranges(message, decoded, notes):
    errors = []
    relaxed = False
    for signal in message.signals:
        value = decoded[signal.name]
        low, high = signal.minimum, signal.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            defect = KNOWN_RANGE_DEFECTS.get((message.name, signal.name))
            if defect and value > 0:
                notes.add(f"{message.name}.{signal.name} = {value}: {defect}")
                relaxed = True
            else:
                errors.append(f"{signal.name} = {value} outside the DBC range [{low}|{high}]")
    return errors, relaxed


def signal_mask(message):
    """The bits of the message that some signal describes (all of this DBC is little-endian)."""
    mask = bytearray(message.length)
    for signal in message.signals:
        if signal.byte_order != "little_endian":
            raise ValueError(f"{signal.name}: big-endian signals are not handled here")
        for bit in range(signal.start, signal.start + signal.length):
            mask[bit // 8] |= 1 << (bit % 8)
    return mask


def check_reencode(message, decoded, data, relaxed):
    encoded = message.encode(decoded, scaling=True, strict=not relaxed)
    mask = signal_mask(message)
    ours = bytes(b & m for b, m in zip(data, mask))
    theirs = bytes(b & m for b, m in zip(encoded, mask))
    if ours != theirs:
        return [f"re-encoded {encoded.hex()} != sent {data[: message.length].hex()} "
                f"(bits described by the DBC: {bytes(mask).hex()})"]
    return []


def check(db, case, notes):
    data = bytes.fromhex(case["data"])
    try:
        message = db.get_message_by_frame_id(case["id"])
    except KeyError:
        return [f"id 0x{case['id']:03X} is not in the DBC"]
    if len(data) < message.length:
        return [f"{len(data)} bytes, the DBC's {message.name} has {message.length}"]
    decoded = message.decode(data, decode_choices=False, scaling=True, allow_excess=True)
    errors = check_values(message, decoded, case["expect"])
    range_errors, relaxed = check_ranges(message, decoded, notes)
    return errors + range_errors + check_reencode(message, decoded, data, relaxed)


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2])
        return 2
    db = cantools.database.load_file(DBC)
    with open(argv[1], encoding="utf-8") as handle:
        cases = json.load(handle)
    passed = failed = 0
    notes = set()
    for case in cases:
        errors = check(db, case, notes)
        label = f"0x{case['id']:03X} {case['name']:<28} {case['data']}"
        if errors:
            failed += 1
            print(f"FAIL {label}")
            for error in errors:
                print(f"       {error}")
        else:
            passed += 1
            print(f"ok   {label}")
    for note in sorted(notes):
        print(f"note: {note}")
    print(f"cantools {cantools.__version__}, DBC {os.path.basename(DBC)}")
    print(f"cantools_check: {passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
