"""The CrossGuard entry point: declares glassbox's policy pack (see glassbox_crossguard.py for the policies).

Pulumi's Python policy runtime runs this file; constructing the :class:`PolicyPack` starts the analyzer's gRPC
server and blocks, so nothing else (tests included) imports this module.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The pack lives inside the glassbox repository: use its glassbox when the virtualenv does not install it.
for entry in (HERE, HERE.parents[1]):
    if str(entry) not in sys.path:
        sys.path.insert(0 if entry == HERE else len(sys.path), str(entry))

from glassbox_crossguard import DESCRIPTION, PACK_NAME, policies  # noqa: E402
from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402 - after the path set-up above

PolicyPack(
    name=PACK_NAME,
    policies=policies(),
    enforcement_level=EnforcementLevel.MANDATORY,
    description=DESCRIPTION,
    display_name="glassbox",
    provider="aws",
    tags=["glassbox", "rego"],
)
