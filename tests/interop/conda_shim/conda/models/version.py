"""Conda version ordering, delegated to py-rattler."""

from functools import total_ordering

import rattler


@total_ordering
class VersionOrder:
    def __init__(self, vstr):
        self.vstr = str(vstr)
        self._v = rattler.Version(self.vstr)

    def __eq__(self, other):
        return self._v == _coerce(other)._v

    def __lt__(self, other):
        return self._v < _coerce(other)._v

    def __hash__(self):
        return hash(self._v)

    def __str__(self):
        return self.vstr

    def __repr__(self):
        return f"VersionOrder({self.vstr!r})"


def _coerce(other):
    return other if isinstance(other, VersionOrder) else VersionOrder(other)
