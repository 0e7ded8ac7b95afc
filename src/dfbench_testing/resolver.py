"""An instance's resolver for the names of Route 53 private zones, backed by the emulator: what
``getent ahostsv4 NAME`` prints on an instance whose VPC the zone is associated with. moto keeps
the records but nothing resolves them; the instance scripts ask through getent.

``getent ahostsv4 NAME`` answers from the A record NAME of a private zone whose VPCs include
``DFBENCH_VPC_ID`` (every private zone when it is unset), as glibc prints it (one line per socket
type, the name on the first); no such record: exit status 2, as getent's "key not found".
Anything else is refused with status 1.

``bin_dir(folder)`` writes a ``getent`` program into ``folder`` that runs this module with the
current Python, for a test to put first on PATH.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import boto3


def _addresses(name: str) -> list[str]:
    route53 = boto3.session.Session().client("route53", region_name="us-east-1")
    wanted = name.rstrip(".") + "."
    vpc = os.environ.get("DFBENCH_VPC_ID")
    found: list[str] = []
    for zone in route53.list_hosted_zones()["HostedZones"]:
        if not zone.get("Config", {}).get("PrivateZone") or not wanted.endswith("." + zone["Name"]):
            continue
        if vpc and vpc not in {v["VPCId"] for v in route53.get_hosted_zone(Id=zone["Id"]).get("VPCs", [])}:
            continue
        for record in route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]:
            if record["Name"] == wanted and record["Type"] == "A":
                found += [r["Value"] for r in record.get("ResourceRecords", [])]
    return sorted(set(found))


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "ahostsv4":
        print(f"stand-in getent: unsupported: getent {' '.join(argv)}", file=sys.stderr)
        return 1
    addresses = _addresses(argv[1])
    for address in addresses:
        print(f"{address:<15} STREAM {argv[1]}\n{address:<15} DGRAM  \n{address:<15} RAW    ")
    return 0 if addresses else 2


def bin_dir(folder: Path) -> Path:
    """``folder`` with a ``getent`` program in it running this module; returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    from dfbench_testing.tools import python_script_program  # here: the program itself runs without the harness

    python_script_program(folder / "getent", __file__)
    return folder


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
