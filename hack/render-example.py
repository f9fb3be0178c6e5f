#!/usr/bin/env python3
"""Prints an example folder's YAML with ${...} filled in from the local fleet.

Placeholders: FLEET_PRIVATE_KEY_B64, and VM<i>_NAME, VM<i>_ADDRESS, VM<i>_PORT,
VM<i>_HOST_KEY for each VM of .dev/fleet.json. An unknown placeholder is an error.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def values() -> dict[str, str]:
    fleet = json.loads((ROOT / ".dev/fleet.json").read_text())
    out: dict[str, str] = {"GIT_BASE_URL": f"git://127.0.0.1:{os.environ.get('GIT_PORT', '9418')}"}
    if fleet:
        key = (ROOT / fleet[0]["privateKeyFile"]).read_bytes()
        out["FLEET_PRIVATE_KEY_B64"] = base64.b64encode(key).decode()
    for i, vm in enumerate(fleet, start=1):
        out[f"VM{i}_NAME"] = vm["name"]
        out[f"VM{i}_ADDRESS"] = vm["address"]
        out[f"VM{i}_PORT"] = str(vm["port"])
        out[f"VM{i}_HOST_KEY"] = vm["hostPublicKey"]
    return out


def render(text: str, vals: dict[str, str], origin: str) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in vals:
            raise SystemExit(f"{origin}: ${{{name}}} is unknown (is the fleet large enough? "
                             f"FLEET=N make up)")
        return vals[name]

    return re.sub(r"\$\{([A-Z0-9_]+)\}", sub, text)


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: render-example.py FOLDER")
    folder = Path(sys.argv[1])
    vals = values()
    docs = []
    for f in sorted(folder.glob("*.yaml")):
        docs.append(render(f.read_text(), vals, str(f)).strip())
    print("\n---\n".join(docs))


if __name__ == "__main__":
    main()
