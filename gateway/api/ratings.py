"""Ratings: listing with filters, CSV export, and statistics per window and per staff."""

from __future__ import annotations

import csv
import io
import time
from typing import Annotated, Literal, get_args

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.responses import Response, StreamingResponse
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell

from ..data import audit, ratings, transaction
from ..protocol import LEVELS, PARTS, REASONS
from . import deps

router = APIRouter(prefix="/api/v1", tags=["ratings"])
readers = [deps.needs("read")]

Level = Literal["very_satisfied", "satisfied", "basically_satisfied", "dissatisfied", "very_dissatisfied"]
assert set(get_args(Level)) == set(LEVELS)
OFFSET_MAX = 10**9
RATING_ID = r"^[A-Za-z0-9_-]{1,32}:[0-9]{1,10}(:[0-9a-f]{16})?$"  # dev:seq, or dev:seq:sig of a held one


def selection(cfg=Depends(deps.cfg), window: str | None = Query(None, max_length=32),
              staff_id: str | None = Query(None, max_length=32),
              level: Level | None = Query(None, description="one of the five levels"),
              dev: str | None = Query(None, max_length=32), since: deps.Since = None, until: deps.Until = None,
              repeats: bool = Query(False, description="include repeat ratings of an already rated case"),
              held: bool = Query(False, description="include ratings held for an admin (not yet released)")):
    """The filters the ratings list, the exports and the statistics share."""
    days = deps.days(since, until)
    return ratings.Filter(window, staff_id, level, dev, deps.to_epoch(since, cfg.timezone),
                          deps.to_epoch(until, cfg.timezone, end=True), repeats, held,
                          *(days or (None, None)), whole_days=days is not None)


def _row(r: dict, tz: str) -> dict:
    r = dict(r)
    for k in ("received_at", "rated_at", "forwarded_at", "next_attempt_at"):
        r[k] = deps.iso(r[k], tz)
    r["level_name"] = LEVELS[r["level"]][0]
    return r


@router.get("/ratings", summary="Ratings, oldest first, filtered", dependencies=readers)
def list_ratings(f: ratings.Filter = Depends(selection), d=Depends(deps.db), cfg=Depends(deps.cfg),
                 limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0, le=OFFSET_MAX)):
    # the device's signature stays with the rating: it is the evidence
    return [_row(r, cfg.timezone) for r in ratings.listed(d, f, limit, offset)]


# (field, header): the exports' columns, headed in Chinese for the people who open them
COLUMNS = (("id", "评价编号"), ("rated_at", "评价时间"), ("window", "窗口"), ("staff_id", "工号"),
           ("staff_name", "工作人员"), ("case_no", "办件流水号"), ("item_code", "事项编码"), ("item_name", "事项名称"),
           ("level", "满意度代码"), ("level_name", "满意度"), ("score", "分值"), ("reasons", "差评原因"),
           ("dev", "评价器"), ("clock", "时间来源"), ("tag_source", "归属依据"), ("repeat_of", "重复评价"),
           ("forward_state", "上报状态"), ("forwarded_at", "上报时间"))
XLSX_ROWS_MAX = 1_048_575  # a sheet's rows, less the header: more is for the CSV


def _cell(v):
    """A text cell a spreadsheet would run as a formula (=, +, -, @, or a leading tab or
    carriage return: OWASP's CSV injection list) is written behind an apostrophe."""
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + v
    return v


def _export_rows(d, f: ratings.Filter, tz: str):
    for r in ratings.each(d, f):
        r = _row(r, tz)
        r["reasons"] = "、".join(REASONS[x] for x in (r["reason"] or "").split(",") if x)
        yield [r[c] for c, _ in COLUMNS]


@router.get("/ratings.csv", summary="Ratings as CSV (UTF-8 with BOM, Chinese headers, for spreadsheets)",
            response_class=StreamingResponse, dependencies=readers,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                             "description": "one row per rating, a header row first"}})
def ratings_csv(f: ratings.Filter = Depends(selection), d=Depends(deps.db), cfg=Depends(deps.cfg)):
    found = list(_export_rows(d, f, cfg.timezone))

    def lines():
        buf = io.StringIO()
        w = csv.writer(buf)
        buf.write("\ufeff")
        w.writerow([h for _, h in COLUMNS])
        for row in found:
            w.writerow([_cell(v) for v in row])
            if buf.tell() > 64_000:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue()

    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="ratings.csv"'})


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@router.get("/ratings.xlsx", summary="Ratings as an Excel workbook (Chinese headers)", dependencies=readers,
            response_class=Response, responses={
                200: {"content": {XLSX: {"schema": {"type": "string", "format": "binary"}}},
                      "description": "one sheet, one row per rating"}, **deps.errors(413)})
def ratings_xlsx(f: ratings.Filter = Depends(selection), d=Depends(deps.db), cfg=Depends(deps.cfg)):
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("评价")
    ws.append([h for _, h in COLUMNS])
    for n, row in enumerate(_export_rows(d, f, cfg.timezone)):
        if n >= XLSX_ROWS_MAX:
            raise HTTPException(413, f"more than {XLSX_ROWS_MAX} ratings: narrow the dates, or take the CSV")
        cells = []
        for v in row:
            c = WriteOnlyCell(ws, value=v)
            if isinstance(v, str):
                c.data_type = "s"  # text stays text: openpyxl would take "=..." for a formula
            cells.append(c)
        ws.append(cells)
    buf = io.BytesIO()
    wb.save(buf)
    return Response(buf.getvalue(), media_type=XLSX,
                    headers={"Content-Disposition": 'attachment; filename="ratings.xlsx"'})


@router.get("/stats", summary="Counts, mean score (10/8/6/3/0), satisfaction rate and bad reviews, "
                              "overall or per window, staff member or item", dependencies=readers)
def stats(f: ratings.Filter = Depends(selection), d=Depends(deps.db),
          by: Literal["window", "staff", "item"] | None = Query(None, description="window, staff or item")):
    return ratings.stats(d, f, by)


@router.get("/stats/parts", summary="Each itemised part of the version-2 ratings (the service item, the staff "
            "member, the channel, the aspects): count, mean score, satisfaction rate, bad reviews",
            dependencies=readers)
def parts(f: ratings.Filter = Depends(selection), d=Depends(deps.db)):
    got = {r["part"]: r for r in ratings.parts(d, f)}
    return [{**got[p], "name": PARTS[p]} for p in PARTS if p in got]


@router.get("/stats/heatmap", summary="Ratings and bad reviews by weekday (0 = Monday) and hour, over whole months",
            dependencies=readers)
def heatmap(d=Depends(deps.db), window: str | None = Query(None, max_length=32),
            since: str | None = Query(None, pattern=r"^\d{4}-\d{2}$", description="from this month (YYYY-MM)"),
            until: str | None = Query(None, pattern=r"^\d{4}-\d{2}$", description="to this month, inclusive")):
    return ratings.heatmap(d, window, since, until)


@router.get("/stats/reasons", summary="How often each reason was given in a bad review", dependencies=readers)
def reasons(f: ratings.Filter = Depends(selection), d=Depends(deps.db)):
    return [{**r, "name": REASONS.get(r["reason"], r["reason"])} for r in ratings.reasons(d, f)]


@router.get("/stats/trend", summary="The same figures per day, week or month", dependencies=readers)
def trend(f: ratings.Filter = Depends(selection), d=Depends(deps.db), cfg=Depends(deps.cfg),
          bucket: Literal["day", "week", "month"] = "day"):
    return ratings.trend(d, f, bucket, cfg.utc_offset_s)


@router.post("/ratings/{rid}/release", summary="Release a held rating: an admin found it genuine; it is "
             "counted and forwarded from now on; a bad review opens its work order",
             responses=deps.errors(404, 409))
def release(rid: Annotated[str, Path(pattern=RATING_ID, description="a rating ID, e.g. pj-0001:42")],
            d=Depends(deps.db), g=Depends(deps.gateway), cfg=Depends(deps.cfg), who=deps.needs("ratings:release")):
    now = time.time()
    with transaction(d):
        order = ratings.release(d, rid, now, cfg.utc_offset_s)
        audit.record(d, who.name, "rating.release", rid, now)
    if g is not None:
        g.forwarder.wake.set()
        if order:
            g.work_orders.opened(order)
    return {"id": rid, "forward_state": "pending", "work_order": order and order["id"]}
