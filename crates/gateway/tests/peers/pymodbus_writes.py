"""Independent Modbus client: pymodbus writes to the bmslink EMS server, allowed and not.

Usage: pymodbus_writes.py WRITABLE_PORT READ_ONLY_PORT ADDRESSES_JSON. The first server has
writes enabled for 127.0.0.1 only; the second has writes disabled ("-": no such server, that
case is left out). ADDRESSES_JSON names the
registers ({"ovp": 1002, "switch": 1029}). Prints one JSON object per case: the exception code
of the write (null when it succeeded) and the register's value read before and after.
Exits 3 with "SKIPPED: ..." when pymodbus cannot be imported.
"""

import json
import sys

try:
    from pymodbus.client import ModbusTcpClient
except ImportError as error:  # pragma: no cover - the Rust test reports the skip
    print(f"SKIPPED: pymodbus is not installed ({error}); CI installs it")
    sys.exit(3)


def client(port, source="127.0.0.1"):
    c = ModbusTcpClient("127.0.0.1", port=port, source_address=(source, 0), timeout=5, retries=0)
    if not c.connect():
        raise SystemExit(f"cannot connect to 127.0.0.1:{port} from {source}")
    return c


def read(c, address):
    reply = c.read_holding_registers(address, count=1, device_id=1)
    if reply.isError():
        raise SystemExit(f"read of {address} failed: {reply}")
    return reply.registers[0]


def case(name, writer, reader, address, value):
    before = read(reader, address)
    reply = writer.write_register(address, value, device_id=1)
    exception = reply.exception_code if reply.isError() else None
    after = read(reader, address)
    print(json.dumps({"case": name, "exception": exception, "before": before, "after": after}))


def main():
    writable = int(sys.argv[1])
    read_only = None if sys.argv[2] == "-" else int(sys.argv[2])
    addresses = json.loads(sys.argv[3])
    local = client(writable)
    outsider = client(writable, source="127.0.0.2")
    clients = [local, outsider]
    case("allowed", local, local, addresses["ovp"], 3600)
    case("not_in_write_allow", outsider, local, addresses["ovp"], 3500)
    if read_only is not None:
        disabled = client(read_only)
        clients.append(disabled)
        case("writes_disabled", disabled, disabled, addresses["ovp"], 3500)
    case("out_of_range", local, local, addresses["ovp"], 4501)
    case("locked_privileged", local, local, addresses["switch"], 0)
    for c in clients:
        c.close()


if __name__ == "__main__":
    main()
