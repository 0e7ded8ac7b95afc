"""Recording the API calls dfbench makes: each call once (not each retry), with the parameters
dfbench passed, for tests to count and inspect."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from botocore.client import BaseClient

# Operations that only read; every other call changes something at AWS.
READ_PREFIXES = ("Describe", "Get", "List", "Head")


@dataclass
class Call:
    service: str
    operation: str
    params: dict[str, Any]

    @property
    def mutating(self) -> bool:
        return not self.operation.startswith(READ_PREFIXES)


@dataclass
class Recorder:
    """Records each API call once (not each retry), with the parameters dfbench passed."""

    calls: list[Call] = field(default_factory=list)

    def hook(self, client: BaseClient) -> None:
        client.meta.events.register("provide-client-params", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        service = model.service_model.service_id.hyphenize()
        self.calls.append(Call(service, model.name, json.loads(json.dumps(params, default=str))))

    def named(self, operation: str) -> list[Call]:
        return [c for c in self.calls if c.operation == operation]

    @property
    def mutating(self) -> list[Call]:
        return [c for c in self.calls if c.mutating]

    def clear(self) -> None:
        self.calls.clear()
