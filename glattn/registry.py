"""Name -> constructor registries; each one is mirrored one-to-one by a Hydra config group.

`conf/fusion/*.yaml` holds exactly the names of `glattn.models.fusion.FUSIONS`, and so on
for every family (tests/test_models_registry.py checks it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator


class Registry:
    """A small ordered mapping from option name to constructor."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._entries: dict[str, Callable] = {}

    def register(self, name: str) -> Callable[[Callable], Callable]:
        def add(obj: Callable) -> Callable:
            if name in self._entries:
                raise ValueError(f"{self.family} option {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return add

    def get(self, name: str) -> Callable:
        if name not in self._entries:
            raise KeyError(
                f"unknown {self.family} option {name!r}; allowed: {', '.join(self._entries)}"
            )
        return self._entries[name]

    def name_of(self, obj: Callable) -> str | None:
        """The option name under which `obj` (a class or function) is registered."""
        for name, entry in self._entries.items():
            if entry is obj:
                return name
        return None

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.family!r}, {self.names()})"
