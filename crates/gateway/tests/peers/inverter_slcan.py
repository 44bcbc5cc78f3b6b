#!/usr/bin/env python3
"""Independent peer for bmslink's PCS link: an inverter behind an SLCAN adapter.

Usage: inverter_slcan.py CHANNEL SECONDS [KEEPALIVE_SECONDS]

Opens CHANNEL (a pty) with python-can's slcan interface at 500 kbit/s, as a host of an
adapter does, prints {"ready": true}, then for SECONDS:
  - receives every frame, decodes it with cantools and ../../../proto/tests/data/pylon_CAN.dbc,
    and prints one JSON line per frame:
      {"t": seconds since ready, "id": int, "message": DBC name or null, "signals": {...}}
    (the manufacturer string as its 8 ASCII bytes; a frame the DBC does not know, or cannot
    decode, has "message": null and "data" in hex);
  - sends the Pylon keep-alive 0x305 (8 x 00) every 500 ms (only for the first
    KEEPALIVE_SECONDS when given: an inverter that stops talking).
Then prints {"done": true, "keep_alives_sent": n}.

Exit status: 0 done, 2 usage error, 3 python-can, pyserial or cantools is not installed.
"""

import json
import os
import sys
import time

SKIP_EXIT = 3

try:
    import can
    import cantools
    import serial  # noqa: F401  python-can's slcan interface needs it but does not install it
except ImportError as error:
    print(f"SKIPPED: {error} (CI installs python-can, pyserial and cantools)")
    sys.exit(SKIP_EXIT)

HERE = os.path.dirname(os.path.abspath(__file__))
DBC = os.path.join(HERE, "..", "..", "..", "proto", "tests", "data", "pylon_CAN.dbc")
KEEP_ALIVE_PERIOD = 0.5


def emit(record):
    print(json.dumps(record), flush=True)


def signal_value(name, value):
    if name == "Manufaturer_string":
        return int(value).to_bytes(8, "little").decode("ascii", "replace")
    return float(value)


def decode(db, msg, t):
    record = {"t": round(t, 4), "id": msg.arbitration_id, "message": None}
    try:
        message = db.get_message_by_frame_id(msg.arbitration_id)
        decoded = message.decode(bytes(msg.data), decode_choices=False, scaling=True)
        record["message"] = message.name
        record["signals"] = {k: signal_value(k, v) for k, v in decoded.items()}
    except (KeyError, ValueError, cantools.database.errors.DecodeError):
        record["data"] = bytes(msg.data).hex().upper()
    return record


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    channel, seconds = sys.argv[1], float(sys.argv[2])
    keep_alive_for = float(sys.argv[3]) if len(sys.argv) == 4 else seconds
    db = cantools.database.load_file(DBC)
    bus = can.Bus(interface="slcan", channel=channel, bitrate=500000, sleep_after_open=0)
    keep_alive = can.Message(arbitration_id=0x305, data=bytes(8), is_extended_id=False)
    emit({"ready": True})
    start = time.monotonic()
    next_keep_alive = start
    sent = 0
    try:
        while (now := time.monotonic()) - start < seconds:
            if now >= next_keep_alive and now - start < keep_alive_for:
                bus.send(keep_alive)
                sent += 1
                next_keep_alive += KEEP_ALIVE_PERIOD
            msg = bus.recv(timeout=0.02)
            if msg is not None and not msg.is_extended_id:
                emit(decode(db, msg, time.monotonic() - start))
    finally:
        bus.shutdown()
    emit({"done": True, "keep_alives_sent": sent})
    return 0


if __name__ == "__main__":
    sys.exit(main())
