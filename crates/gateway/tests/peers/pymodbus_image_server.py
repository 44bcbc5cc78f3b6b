"""pymodbus serving a register image, for the EMS server's throughput comparison.

Usage: pymodbus_image_server.py PORT IMAGE_JSON. IMAGE_JSON is what
`cargo run --release -p bmslink-gateway --example ems_load -- serve ...` writes:
{"start": 40000, "registers": [...]}. Holding registers, unit 1 (any unit answers).
"""

import json
import sys

from pymodbus.datastore import (
    ModbusDeviceContext,
    ModbusSequentialDataBlock,
    ModbusServerContext,
)
from pymodbus.server import StartTcpServer


def main():
    port = int(sys.argv[1])
    with open(sys.argv[2]) as file:
        image = json.load(file)
    # pymodbus's data blocks see the protocol address + 1 (its historical "1-based" store).
    block = ModbusSequentialDataBlock(image["start"] + 1, image["registers"])
    context = ModbusServerContext(devices=ModbusDeviceContext(hr=block), single=True)
    print(f"pymodbus server on 127.0.0.1:{port} with {len(image['registers'])} registers", flush=True)
    StartTcpServer(context=context, address=("127.0.0.1", port))


if __name__ == "__main__":
    main()
