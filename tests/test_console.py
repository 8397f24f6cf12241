"""The console in real headless Chromium (Debian's), through the real gateway and
real-firmware devices: log in, see a press arrive live, a bad review raise its alert and
work order, take the order to closed, the role limits in the pages, the export. A
screenshot of every page is kept in build/console/ (look at them)."""

import csv
import io
import json
import time
from pathlib import Path

import httpx
import openpyxl
import pytest
from playwright.sync_api import expect

from simulator.harness import Hall, wait_until
from tests.conftest import SHOTS

PASSWORD = "correct horse battery"
PEOPLE = {"zhang.wei": ("admin", []), "li.na": ("supervisor", ["W01"]), "wang.fang": ("supervisor", ["W02"]),
          "zhao.min": ("technician", [])}


@pytest.fixture(scope="module")
def hall(tmp_path_factory):
    h = Hall(tmp_path_factory.mktemp("console") / "hall", devices=2, hall="con", seed=6)
    h.start()
    for name, (role, windows) in PEOPLE.items():
        r = h.api.post("/api/v1/users", json={"name": name, "role": role, "windows": windows, "password": PASSWORD})
        assert r.status_code == 201, r.text
    try:
        yield h
    finally:
        h.stop()


def open_console(hall, browser, user):
    """A browser tab logged in as `user`; page errors are collected on page.errors."""
    page = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True).new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(f"{hall.cfg.api_url}/console/")
    page.fill("input[name=user]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("nav .who")).to_contain_text(user)
    return page


def shot(page, name):
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_a_wrong_password_is_refused_on_the_page(hall, browser):
    page = browser.new_page()
    page.goto(f"{hall.cfg.api_url}/console/")
    page.fill("input[name=user]", "zhang.wei")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    expect(page.locator(".login .error")).to_have_text("账号或密码错误")
    shot(page, "login")
    page.close()


def test_a_press_arrives_live_and_a_bad_review_is_taken_to_closed(hall, browser):
    admin = open_console(hall, browser, "zhang.wei")
    sup = open_console(hall, browser, "li.na")
    card = admin.locator("[data-window=W01]")
    expect(card).to_contain_text("张伟")
    hall.new_case("pj-0001")
    expect(card).to_contain_text("待评价")
    p = hall.press("pj-0001", "very_satisfied")
    expect(card.locator(".last")).to_contain_text("非常满意", timeout=5000)
    seen = time.time()
    assert seen - p["pressed_at"] < 5
    shot(admin, "hall")

    hall.new_case("pj-0001")
    bad = hall.press("pj-0001", "very_dissatisfied", "attitude")
    for page in (admin, sup):  # every open console, at once
        expect(page.locator(".alert")).to_contain_text("非常不满意", timeout=5000)
        expect(page.locator(".alert")).to_contain_text("服务态度差")
    order = next(o for o in hall.api.get("/api/v1/work-orders").json() if o["rating_id"] == bad["id"])
    sup.click(".alert a")
    form = sup.locator("aside.order form")
    expect(sup.locator("aside.order h3")).to_contain_text("待受理")
    for step, note, state in (("accept", "", "已受理"), ("contact", "已电话联系办事群众", "已联系"),
                              ("rectify", "", "整改中"), ("close", "加强窗口服务培训，已回访", "已办结")):
        form.locator("select[name=step]").select_option(step)
        form.locator("input[name=note]").fill(note)
        form.locator("button[type=submit]").click()
        expect(sup.locator("aside.order h3")).to_contain_text(state)
    expect(sup.locator("aside.order .steps li")).to_have_count(5)
    expect(sup.locator("aside.order .steps")).to_contain_text("li.na")
    shot(sup, "reviews")
    assert hall.api.get(f"/api/v1/work-orders/{order['id']}").json()["state"] == "closed"
    assert admin.errors == [] and sup.errors == []
    hall.new_case("pj-0001")  # a case nobody rates: W01 and its staff rated 2 of their 3
    share = hall.api.get("/api/v1/cases/rated-share", params={"by": "staff", "window": "W01"}).json()
    assert [(r["staff_name"], r["cases"], r["rated"]) for r in share["staff"]] == [("张伟", 3, 2)]
    admin.click("nav a[data-page=stats]")
    expect(admin.locator("table.by-window")).to_contain_text("W01")
    expect(admin.locator("table.by-window tr", has_text="W01")).to_contain_text("66.7%")
    expect(admin.locator("table.by-staff tr", has_text="张伟")).to_contain_text("66.7%")
    rated_items = {r["item_code"] for r in hall.api.get("/api/v1/stats", params={"by": "item"}).json()}
    items = [r for r in hall.api.get("/api/v1/cases/rated-share", params={"by": "item"}).json()["items"]
             if r["item_code"] in rated_items]
    expect(admin.locator("table.by-item tbody tr")).to_have_count(len(rated_items))  # all this month's
    for r in items:
        expect(admin.locator("table.by-item tr", has_text=r["item_code"]).locator("td").last) \
            .to_have_text(f"{r['share'] * 100:.1f}%")
    for chart in ("#trend", "#heatmap", "#reasons"):  # drawn by ECharts
        expect(admin.locator(f"{chart} canvas")).to_have_count(1)
    expect(admin.locator("table.by-staff")).to_contain_text("张伟")
    admin.wait_for_timeout(500)
    shot(admin, "stats")
    admin.locator("select[name=window]").select_option("W01")
    admin.click("text=月度报告")
    expect(admin.locator(".report h2")).to_contain_text("W01 窗口")
    expect(admin.locator(".report")).to_contain_text("整改率 100.0%")
    expect(admin.locator(".report")).to_contain_text("主动评价率 66.7%")
    expect(admin.locator(".report table tr", has_text="张伟")).to_contain_text("66.7%")
    expect(admin.locator(".report #report-trend canvas")).to_have_count(1)
    admin.wait_for_timeout(500)
    shot(admin, "report")
    for name in ("devices", "forwarder", "rejections", "audit"):
        admin.click(f"nav a[data-page={name}]")
        expect(admin.locator("main h2")).to_be_visible()
        admin.wait_for_timeout(300)
        shot(admin, name)
    expect(admin.locator("main")).to_contain_text("work_order.close")  # the audit page, last
    assert admin.errors == []


def test_role_limits_hold_in_the_pages(hall, browser):
    tech = open_console(hall, browser, "zhao.min")
    assert tech.locator("nav a").all_inner_texts() == ["大厅实况", "设备", "上报", "拒收"]
    tech.goto(f"{hall.cfg.api_url}/console/#/reviews")
    tech.wait_for_timeout(500)
    expect(tech.locator("main h2")).to_contain_text("大厅实况")  # a page it may not see is not shown
    shot(tech, "technician")
    # a supervisor of W02 sees W01's orders but is offered no step on them
    other = open_console(hall, browser, "wang.fang")
    oid = hall.api.get("/api/v1/work-orders", params={"window": "W01"}).json()[-1]["id"]
    hall.new_case("pj-0001")
    bad = hall.press("pj-0001", "dissatisfied", "slow")
    oid = wait_until(lambda: [o["id"] for o in hall.api.get("/api/v1/work-orders").json()
                              if o["rating_id"] == bad["id"]], 5)[0]
    other.goto(f"{hall.cfg.api_url}/console/#/reviews/{oid}")
    expect(other.locator("aside.order h3")).to_contain_text("待受理")
    expect(other.locator("aside.order form")).to_have_count(0)
    assert "work_orders:act" in other.evaluate("() => Alpine.$data(document.body).me.permissions")
    assert tech.errors == [] and other.errors == []


def test_a_technician_registers_moves_and_retires_a_device_on_the_page(hall, browser):
    tech = open_console(hall, browser, "zhao.min")
    tech.click("nav a[data-page=devices]")
    tech.fill(".add-device input[name=dev]", "pj-0901")
    tech.fill(".add-device input[name=window]", "W09")
    tech.click(".add-device button")
    expect(tech.locator(".credentials")).to_contain_text("pj-0901 的配置只显示这一次")
    assert "key" not in tech.locator("main").inner_text()  # the secret is saved, never shown
    with tech.expect_download() as d:
        tech.click("text=下载 config.json")
    config = json.loads(Path(d.value.path()).read_text())
    assert config["dev"] == "pj-0901" and len(config["key"]) == 64 and config["ca"]
    tech.click(".credentials button")
    row = tech.locator("tr[data-dev=pj-0901]")
    expect(row).to_contain_text("待接入")
    tech.once("dialog", lambda dialog: dialog.accept("W10"))
    row.locator("text=调整窗口").click()
    expect(row).to_contain_text("W10")
    tech.once("dialog", lambda dialog: dialog.accept())
    row.locator("text=停用").click()
    expect(row).to_contain_text("已停用")
    shot(tech, "devices-technician")
    log = [e["action"] for e in hall.api.get("/api/v1/audit", params={"actor": "zhao.min"}).json()]
    assert log[:3] == ["device.retire", "device.move", "device.add"]
    assert tech.errors == []


def test_the_csv_export_opens_with_the_right_rows(hall, browser):
    admin = open_console(hall, browser, "zhang.wei")
    admin.click("nav a[data-page=stats]")
    with admin.expect_download() as d:
        admin.click("text=导出 CSV")
    text = Path(d.value.path()).read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    want = hall.api.get("/api/v1/ratings").json()
    assert [r["评价编号"] for r in rows] == [r["id"] for r in want] and len(rows) >= 3
    assert {r["满意度"] for r in rows} >= {"非常满意", "非常不满意"}
    with admin.expect_download() as d:
        admin.click("text=导出 Excel")
    assert d.value.suggested_filename == "评价.xlsx"
    sheet = openpyxl.load_workbook(io.BytesIO(Path(d.value.path()).read_bytes())).active
    assert [c.value for c in next(sheet.iter_rows())][:2] == ["评价编号", "评价时间"]
    assert [row[0].value for row in sheet.iter_rows(min_row=2)] == [r["id"] for r in want]


def test_prometheus_reads_the_hall_with_a_technicians_token(hall):
    from prometheus_client.parser import text_string_to_metric_families

    token = hall.api.post("/api/v1/users/zhao.min/tokens", json={"label": "prometheus"}).json()["token"]
    r = httpx.get(f"{hall.cfg.api_url}/metrics", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert httpx.get(f"{hall.cfg.api_url}/metrics").status_code == 401
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for fam in text_string_to_metric_families(r.text) for s in fam.samples}
    stats = hall.api.get("/api/v1/stats").json()
    by_level = {k[1][0][1]: v for k, v in got.items() if k[0] == "pingjia_ratings_total"}
    assert sum(by_level.values()) == stats["ratings"] and by_level["very_dissatisfied"] >= 1
    assert got[("pingjia_devices", (("status", "online"),))] == 2
    assert got[("pingjia_work_orders", (("state", "closed"),))] >= 1
    assert got[("pingjia_broker_connected", ())] == 1 and ("pingjia_forward_backlog", ()) in got
    assert any(k[0] == "pingjia_ingest_messages_total" and k[1] == (("outcome", "stored"),) for k in got)


def test_bench_console_times_every_page_and_a_press_to_the_screen(tmp_path):
    """The short version of `pingjia bench console` (10 million ratings by default)."""
    import json
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "gateway", "bench", "console", "--ratings", "20000", "--repeats", "3",
                        "--presses", "2", "--home", str(tmp_path / "bench")], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.splitlines()[-1])
    assert result["ratings"] == 20000 + 2 and result["presses"] == 2
    assert set(result["page_p95_ms"]) >= {"hall", "reviews", "stats", "stats_all", "report", "devices", "forwarder",
                                          "rejections", "audit"}
    assert all(ms > 0 for ms in result["page_p95_ms"].values()) and result["press_to_screen_p99_ms"] > 0
