"""Independent SunSpec client: pysunspec2 scans the bmslink EMS server and reads every model.

Usage: sunspec_scan.py PORT [UNIT]. Prints one JSON object: the models found (id, length,
errors) and the values the Rust test checks, as pysunspec2 decodes them (scale factors
applied). Exits 3 with "SKIPPED: ..." when pysunspec2 cannot be imported.
"""

import json
import sys

try:
    import sunspec2.modbus.client as client
except ImportError as error:  # pragma: no cover - the Rust test reports the skip
    print(f"SKIPPED: pysunspec2 is not installed ({error}); CI installs it")
    sys.exit(3)


def points(model, names):
    return {name: model.points[name].cvalue for name in names}


def main():
    port = int(sys.argv[1])
    unit = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    device = client.SunSpecModbusClientDeviceTCP(slave_id=unit, ipaddr="127.0.0.1", ipport=port, timeout=5)
    device.scan(connect=True, full_model_read=True)
    for model in device.model_list:
        model.read()
    battery = device.models[802][0]
    strings = device.models.get(804, [])
    modules = device.models.get(805, [])
    result = {
        "models": [
            {"id": m.model_id, "len": m.len, "error": m.error_info} for m in device.model_list
        ],
        "common": points(device.common[0], ["Mn", "Md", "Vr", "SN"]),
        "battery": points(battery, ["SoC", "V", "A", "AChaMax", "ADisChaMax", "CellVMax", "CellVMin", "Typ", "State", "SetOp", "Evt1"]),
        "bank": points(device.models[803][0], ["NStr", "NStrCon"]),
        "strings": [points(s, ["Idx", "SoC", "V", "CellVMax"]) for s in strings],
        "cells": [
            [cell.points["CellV"].cvalue for cell in m.groups["lithium-ion-module-cell"]] for m in modules
        ],
    }
    device.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
