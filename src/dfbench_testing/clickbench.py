"""A stand-in for ClickBench's public partitioned set: synthetic ``hits_<n>.parquet`` files with the
``hits`` schema (105 columns, typed as in the athena_partitioned files: strings stored as binary,
EventTime as epoch seconds, EventDate as days in a uint16) served from a loopback HTTP server that
answers HEAD with Content-Length and honours Range requests (206), as the real host does."""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

# (column, type) in ClickBench's create.sql order; "s" binary, "i16"/"i32"/"i64" ints, "ts" epoch
# seconds (int64), "date" days since 1970 (uint16).
_COLUMNS = """WatchID i64 JavaEnable i16 Title s GoodEvent i16 EventTime ts EventDate date CounterID i32 ClientIP i32
RegionID i32 UserID i64 CounterClass i16 OS i16 UserAgent i16 URL s Referer s IsRefresh i16 RefererCategoryID i16
RefererRegionID i32 URLCategoryID i16 URLRegionID i32 ResolutionWidth i16 ResolutionHeight i16 ResolutionDepth i16
FlashMajor i16 FlashMinor i16 FlashMinor2 s NetMajor i16 NetMinor i16 UserAgentMajor i16 UserAgentMinor s
CookieEnable i16 JavascriptEnable i16 IsMobile i16 MobilePhone i16 MobilePhoneModel s Params s IPNetworkID i32
TraficSourceID i16 SearchEngineID i16 SearchPhrase s AdvEngineID i16 IsArtifical i16 WindowClientWidth i16
WindowClientHeight i16 ClientTimeZone i16 ClientEventTime ts SilverlightVersion1 i16 SilverlightVersion2 i16
SilverlightVersion3 i32 SilverlightVersion4 i16 PageCharset s CodeVersion i32 IsLink i16 IsDownload i16
IsNotBounce i16 FUniqID i64 OriginalURL s HID i32 IsOldCounter i16 IsEvent i16 IsParameter i16 DontCountHits i16
WithHash i16 HitColor s LocalEventTime ts Age i16 Sex i16 Income i16 Interests i16 Robotness i16 RemoteIP i32
WindowName i32 OpenerName i32 HistoryLength i16 BrowserLanguage s BrowserCountry s SocialNetwork s SocialAction s
HTTPError i16 SendTiming i32 DNSTiming i32 ConnectTiming i32 ResponseStartTiming i32 ResponseEndTiming i32
FetchTiming i32 SocialSourceNetworkID i16 SocialSourcePage s ParamPrice i64 ParamOrderID s ParamCurrency s
ParamCurrencyID i16 OpenstatServiceName s OpenstatCampaignID s OpenstatAdID s OpenstatSourceID s UTMSource s
UTMMedium s UTMCampaign s UTMContent s UTMTerm s FromTag s HasGCLID i16 RefererHash i64 URLHash i64 CLID i32"""
HITS_COLUMNS = list(zip(_COLUMNS.split()[::2], _COLUMNS.split()[1::2], strict=True))


def write_hits_partition(path: Path, number: int, rows: int) -> None:
    """One synthetic partition: deterministic values, ``number`` making each partition differ."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"s": pa.binary(), "i16": pa.int16(), "i32": pa.int32(), "i64": pa.int64(), "ts": pa.int64(),
             "date": pa.uint16()}
    arrays = []
    for index, (name, kind) in enumerate(HITS_COLUMNS):
        if kind == "s":
            values = [f"{name}-{(i * 7 + number) % 13}".encode() for i in range(rows)]
        elif kind == "date":
            values = [15887 + (i + number) % 31 for i in range(rows)]  # July 2013, as the real data
        elif kind == "ts":
            values = [1372636800 + (i + number) * 3600 for i in range(rows)]
        else:
            values = [(i * (index + 3) + number) % 97 for i in range(rows)]
        arrays.append(pa.array(values, type=types[kind]))
    pq.write_table(pa.table(arrays, names=[n for n, _ in HITS_COLUMNS]), path)


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files with Range support; ``cut`` names files whose next GET stops half-way once."""

    # Each server gets a subclass with its own (hits_server), so no state is shared between servers.
    cut: ClassVar[set[str]] = set()
    requests: ClassVar[list[tuple[str, str, str | None]]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        name = self.path.lstrip("/")
        self.requests.append(("GET", name, self.headers.get("Range")))
        path = Path(self.directory) / name
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match:
            start = int(match[1])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if name in self.cut:
            self.cut.discard(name)
            self.wfile.write(body[: len(body) // 2])  # the connection closes short of Content-Length
            self.close_connection = True
            return
        self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.requests.append(("HEAD", self.path.lstrip("/"), None))
        super().do_HEAD()


@contextmanager
def hits_server(folder: Path) -> Iterator[tuple[str, type[_Handler]]]:
    """Serve ``folder`` on a free loopback port: yields the folder URL and the handler class (its
    ``requests`` log and ``cut`` set)."""
    handler = type("Handler", (_Handler,), {"cut": set(), "requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             lambda *a: handler(*a, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
