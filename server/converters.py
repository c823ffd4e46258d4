"""URL converters shared by the blueprints."""

from __future__ import annotations

from werkzeug.routing import IntegerConverter, Map

# Row ids are BIGINT: a larger number in a URL names a row that cannot exist (404), not an
# overflow inside the database driver (500).
ROW_ID_MAX = 2**63 - 1


class RowIdConverter(IntegerConverter):
    """`<rowid:name>`: a positive 64-bit row id."""

    def __init__(self, url_map: Map, *_args: object, **_kwargs: object) -> None:
        super().__init__(url_map, min=1, max=ROW_ID_MAX)


CONVERTERS = {"rowid": RowIdConverter}
