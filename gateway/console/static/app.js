// The console: one Alpine.js component. Everything it shows comes from the gateway's API
// with the account's own login token (kept in this tab's sessionStorage); live changes
// come on the event stream, opened with a single-use ticket (EventSource sends no header).
"use strict";

// The same names as protocol/vectors/names.json and gateway/protocol.py
// (tests/unit/test_shared_names.py holds them equal)
const LEVELS = {very_satisfied: "非常满意", satisfied: "满意", basically_satisfied: "基本满意",
                dissatisfied: "不满意", very_dissatisfied: "非常不满意"};
const REASONS = {attitude: "服务态度差", slow: "办事效率低", materials: "材料要求繁琐", trips: "多次跑腿",
                 commitment: "未兑现承诺", none: "未选择原因"};
const PARTS = {item: "服务事项", staff: "工作人员", channel: "服务渠道", commitment: "承诺履行", attitude: "服务态度",
               materials: "申请材料", efficiency: "办事效率", trips: "跑趟次数", mechanism: "服务机制",
               integrity: "勤政廉洁"};
const ROLES = {admin: "管理员", supervisor: "主管", viewer: "查看", technician: "技术员", business: "业务系统"};
const STATES = {open: "待受理", accepted: "已受理", contacted: "已联系", rectifying: "整改中", closed: "已办结",
                invalid: "认定无效"};
const STEPS = {opened: "生成工单", accept: "受理", contact: "联系群众", rectify: "整改", close: "办结",
               invalid: "认定无效"};
const NEXT = {open: ["accept", "invalid"], accepted: ["contact", "invalid"], contacted: ["rectify", "invalid"],
              rectifying: ["close", "invalid"]};
const CARDS = {offline: "离线", stale: "无心跳", outbox_growing: "待发积压"};
const RESETS = {power_on: "上电", watchdog: "看门狗", panic: "异常", soft: "软重启", deep_sleep: "休眠唤醒",
                brownout: "欠压", intended: "指令重启", unknown: "未知"};
const ALARMS = {storage: "网关无法写入数据库", disk_low: "网关磁盘空间不足", clock_step: "网关时钟跳变"};
const PAGES = [
  {id: "hall", title: "大厅实况", needs: "devices:read"},
  {id: "reviews", title: "差评工单", needs: "read"},
  {id: "stats", title: "统计", needs: "read"},
  {id: "devices", title: "设备", needs: "devices:read"},
  {id: "forwarder", title: "上报", needs: "ops:read"},
  {id: "rejections", title: "拒收", needs: "ops:read"},
  {id: "audit", title: "审计", needs: "accounts"},
];

document.addEventListener("alpine:init", () => {
  Alpine.data("consoleApp", () => ({
    me: null, token: sessionStorage.getItem("pingjia.token"), form: {user: "", password: ""}, error: "",
    page: "hall", hall: null, orders: [], order: null, summary: null, orderState: "", states: Object.keys(STATES),
    stepForm: {step: "", kind: "mistaken", note: ""}, stats: null, byWindow: [], byPart: [], forwarder: null,
    byStaff: [], byItem: [], share: null, windowNames: [], report: null,
    range: {since: "", until: "", window: "", bucket: "day"}, devices: [], dead: [], credentials: null,
    builds: [], rollouts: [], rolloutForm: {hash: ""},
    deviceForm: {dev: "", window: ""},
    rejections: null, audit: [], alerts: [], alarms: [], flashes: {}, lastPress: {}, sound: localStorage.getItem("pingjia.sound") !== "off",
    stream: null, lastEventId: null, refreshTimer: null,

    async start() {
      this.$watch("sound", (on) => localStorage.setItem("pingjia.sound", on ? "on" : "off"));
      window.addEventListener("hashchange", () => this.route());
      if (this.token) {
        try { this.me = await this.api("GET", "/api/v1/me"); } catch (e) { this.token = null; }
      }
      if (this.me) this.enter();
    },

    async login() {
      this.error = "";
      const r = await fetch("/api/v1/login", {method: "POST", headers: {"Content-Type": "application/json"},
                                              body: JSON.stringify(this.form)});
      const body = await r.json();
      if (!r.ok) { this.error = r.status === 429 ? "尝试次数过多，请稍后再试" : "账号或密码错误"; return; }
      this.token = body.token;
      sessionStorage.setItem("pingjia.token", this.token);
      this.form.password = "";
      this.me = await this.api("GET", "/api/v1/me");
      this.enter();
    },

    async logout() {
      try { await this.api("POST", "/api/v1/logout"); } catch (e) { /* revoked already */ }
      sessionStorage.removeItem("pingjia.token");
      if (this.stream) this.stream.close();
      this.me = null; this.token = null;
    },

    enter() {
      const allowed = this.pages();
      if (!allowed.some((p) => location.hash.startsWith("#/" + p.id))) location.hash = "#/" + allowed[0].id;
      this.route();
      if (this.can("read")) this.listen();
    },

    // the gateway's own alarms (alarms.py): as they stand, then as the stream changes them
    async loadAlarms() {
      if (!this.can("ops:read")) return;
      try {
        const {alarms} = await this.api("GET", "/api/v1/gateway");
        this.alarms = Object.entries(alarms || {}).map(([name, a]) => ({name, detail: a.detail}));
      } catch (e) { /* shown again at the next change */ }
    },
    alarmed(e) {
      this.alarms = this.alarms.filter((a) => a.name !== e.name);
      if (e.state === "raised") this.alarms.push({name: e.name, detail: e.detail});
    },
    alarmName(name) { return ALARMS[name] || name; },

    pages() { return PAGES.filter((p) => this.can(p.needs)); },
    can(permission) { return !!this.me && this.me.permissions.includes(permission); },
    // the server decides; the page only leaves out what it would refuse
    actsOn(o) { return this.can("work_orders:act") && (this.me.role === "admin" || this.me.windows.includes(o.window)); },

    async api(method, path, body) {
      const r = await fetch(path, {method, headers: {"Authorization": "Bearer " + this.token,
                                                     ...(body ? {"Content-Type": "application/json"} : {})},
                                   body: body ? JSON.stringify(body) : undefined});
      if (r.status === 401) { this.me = null; throw new Error("登录已失效"); }
      const data = r.headers.get("content-type")?.includes("json") ? await r.json() : await r.text();
      if (!r.ok) throw new Error(typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail));
      return data;
    },

    async route() {
      const [, page, arg] = (location.hash || "#/hall").split("/");
      if (page === "report" && this.can("read")) {
        this.page = page;
        const [, , w, month] = location.hash.split("/");
        try { await this.loadReport(decodeURIComponent(w), month); } catch (e) { this.error = e.message; }
        return;
      }
      if (!this.pages().some((p) => p.id === page)) return;
      this.page = page;
      this.error = "";
      try {
        await this.load(page);
        if (page === "reviews" && arg) await this.openOrder(Number(arg));
      } catch (e) { this.error = e.message; }
    },

    async load(page) {
      if (page === "hall") this.hall = await this.api("GET", "/api/v1/hall/now");
      if (page === "reviews") await this.loadOrders();
      if (page === "stats") await this.loadStats();
      if (page === "devices") {
        [this.devices, this.builds, this.rollouts] = await Promise.all([this.api("GET", "/api/v1/devices"),
          this.api("GET", "/api/v1/firmware"), this.api("GET", "/api/v1/rollouts")]);
        if (!this.rolloutForm.hash && this.builds.length) this.rolloutForm.hash = this.builds[0].hash;
      }
      if (page === "forwarder") {
        this.forwarder = await this.api("GET", "/api/v1/forwarder");
        this.dead = await this.api("GET", "/api/v1/forwarder/dead");
      }
      if (page === "rejections") this.rejections = await this.api("GET", "/api/v1/rejections?limit=100");
      if (page === "audit") this.audit = await this.api("GET", "/api/v1/audit");
    },

    async loadOrders() {
      const q = this.orderState ? "&state=" + this.orderState : "";
      this.orders = await this.api("GET", "/api/v1/work-orders?limit=200&newest_first=true" + q);
      this.summary = await this.api("GET", "/api/v1/work-orders/summary");
    },

    async openOrder(id) {
      this.order = await this.api("GET", "/api/v1/work-orders/" + id);
      this.stepForm = {step: this.nextSteps(this.order)[0] || "", kind: "mistaken", note: ""};
    },

    nextSteps(o) { return NEXT[o.state] || []; },

    async takeStep() {
      const body = {step: this.stepForm.step};
      if (this.stepForm.note) body.note = this.stepForm.note;
      if (body.step === "invalid") body.kind = this.stepForm.kind;
      try {
        await this.api("POST", `/api/v1/work-orders/${this.order.id}/steps`, body);
        await this.openOrder(this.order.id);
        await this.loadOrders();
      } catch (e) { this.error = e.message; }
    },

    query() {
      const q = new URLSearchParams();
      if (this.range.since) q.set("since", this.range.since);
      if (this.range.until) q.set("until", this.range.until);
      if (this.range.window) q.set("window", this.range.window);
      const s = q.toString();
      return s ? "?" + s : "";
    },

    async loadStats() {
      if (!this.range.until) {  // as the page opens: the last 30 days
        this.range.until = this.today();
        const d = new Date(this.range.until + "T00:00:00Z");
        d.setUTCDate(d.getUTCDate() - 30);
        this.range.since = d.toISOString().slice(0, 10);
      }
      const q = this.query(), and = q ? "&" + q.slice(1) : "";
      const months = new URLSearchParams();
      if (this.range.since) months.set("since", this.range.since.slice(0, 7));
      if (this.range.until) months.set("until", this.range.until.slice(0, 7));
      if (this.range.window) months.set("window", this.range.window);
      const [stats, byWindow, byStaff, byItem, trend, heat, reasons, share, staffShare, itemShare, parts] = await Promise.all([
        this.api("GET", "/api/v1/stats" + q), this.api("GET", "/api/v1/stats?by=window" + and),
        this.api("GET", "/api/v1/stats?by=staff" + and), this.api("GET", "/api/v1/stats?by=item&" + this.wholeMonths()),
        this.api("GET", `/api/v1/stats/trend?bucket=${this.range.bucket}` + and),
        this.api("GET", "/api/v1/stats/heatmap?" + months), this.api("GET", "/api/v1/stats/reasons" + q),
        this.api("GET", "/api/v1/cases/rated-share" + q), this.api("GET", "/api/v1/cases/rated-share?by=staff" + and),
        this.api("GET", "/api/v1/cases/rated-share?by=item&" + this.wholeMonths()),
        this.api("GET", "/api/v1/stats/parts" + q),
      ]);
      // 主动评价率 beside each row of the ratings' figures
      const withShare = (list, shares, key) => list.map((r) => {
        const s = shares.find((x) => x[key] === r[key]);
        return {...r, share: s ? s.share : null};
      });
      Object.assign(this, {stats, share, byPart: parts, byWindow: withShare(byWindow, share.windows, "window"),
                           byStaff: withShare(byStaff, staffShare.staff, "staff_id"),
                           byItem: withShare(byItem, itemShare.items, "item_code")});
      if (!this.windowNames.length) this.windowNames = byWindow.map((r) => r.window).filter((w) => w);
      await this.$nextTick();
      chart("trend", trendChart(trend));
      chart("heatmap", heatChart(heat));
      chart("reasons", {title: {text: "差评原因", textStyle: {fontSize: 14}}, tooltip: {},
                        xAxis: {type: "value"}, yAxis: {type: "category", data: reasons.map((r) => r.name)},
                        series: [{type: "bar", data: reasons.map((r) => r.n)}]});
    },

    // -- devices and forwarding: the technicians' and admins' actions ---------------------
    async addDevice() {
      try {
        this.credentials = await this.api("POST", "/api/v1/devices", this.deviceForm);
        this.deviceForm = {dev: "", window: ""};
        this.devices = await this.api("GET", "/api/v1/devices");
      } catch (e) { this.error = e.message; }
    },

    saveConfig() {
      // what goes onto the device's flash, shown this once: saved, never displayed
      const a = document.createElement("a");
      a.href = URL.createObjectURL(new Blob([JSON.stringify(this.credentials)], {type: "application/json"}));
      a.download = this.credentials.dev + "-config.json";
      a.click();
    },

    async moveDevice(d) {
      const window = prompt(`${d.dev} 调整到哪个窗口？`, d.window);
      if (!window || window === d.window) return;
      await this.deviceAction(d, "window", {window});
    },

    async rotateDevice(d) {
      if (!confirm(`更换 ${d.dev} 的密钥和密码？设备需重新配置后才能连接。`)) return;
      await this.deviceAction(d, "rotate", {grace_hours: 168}, true);
    },

    async retireDevice(d) {
      if (!confirm(`停用 ${d.dev}？它将立即无法连接。`)) return;
      await this.deviceAction(d, "retire");
    },

    async deviceAction(d, what, body, shows) {
      try {
        const out = await this.api("POST", `/api/v1/devices/${encodeURIComponent(d.dev)}/${what}`, body);
        if (shows) this.credentials = out;
        this.devices = await this.api("GET", "/api/v1/devices");
      } catch (e) { this.error = e.message; }
    },

    async requeue() {
      try {
        await this.api("POST", "/api/v1/forwarder/requeue", {});
        await this.load("forwarder");
      } catch (e) { this.error = e.message; }
    },

    async startRollout() {
      if (!confirm("先升级 1 台，健康后 25%，再全部；任何设备回滚即自动暂停。开始？")) return;
      try {
        await this.api("POST", "/api/v1/rollouts", {hash: this.rolloutForm.hash});
        await this.load("devices");
      } catch (e) { this.error = e.message; }
    },

    async rolloutAction(r, what) {
      try {
        await this.api("POST", `/api/v1/rollouts/${r.id}/${what}`);
        await this.load("devices");
      } catch (e) { this.error = e.message; }
    },

    rolloutState: (s) => ({running: "进行中", halted: "已暂停", done: "已完成", cancelled: "已取消", waiting: "等待",
                           sent: "已下发", staged: "已下载", healthy: "已升级", rolled_back: "已回滚",
                           failed: "失败"})[s] || s,

    deviceState: (s) => ({provisioned: "待接入", active: "使用中", retired: "已停用"})[s] || s,

    wholeMonths() {
      // items are kept per month: their table covers the whole months of the range
      const q = new URLSearchParams();
      if (this.range.since) q.set("since", this.range.since.slice(0, 8) + "01");
      if (this.range.until) {
        const [y, m] = this.range.until.split("-").map(Number);
        q.set("until", new Date(Date.UTC(y, m, 0)).toISOString().slice(0, 10));
      }
      if (this.range.window) q.set("window", this.range.window);
      return q.toString();
    },

    async loadReport(window, month) {
      const [y, m] = month.split("-").map(Number);
      const last = new Date(Date.UTC(y, m, 0)).getUTCDate();
      const since = `${month}-01`, until = `${month}-${String(last).padStart(2, "0")}`;
      const q = `window=${encodeURIComponent(window)}&since=${since}&until=${until}`;
      const [stats, staff, trend, reasons, share, orders, list] = await Promise.all([
        this.api("GET", "/api/v1/stats?" + q), this.api("GET", "/api/v1/stats?by=staff&" + q),
        this.api("GET", "/api/v1/stats/trend?bucket=day&" + q), this.api("GET", "/api/v1/stats/reasons?" + q),
        this.api("GET", "/api/v1/cases/rated-share?by=staff&" + q),
        this.api("GET", `/api/v1/work-orders/summary?${q}`),
        this.api("GET", `/api/v1/work-orders?limit=1000&${q}`),
      ]);
      this.report = {window, month, stats, reasons, list, orders, share,
                     staff: staff.map((r) => ({...r, share: (share.staff.find((x) => x.staff_id === r.staff_id) || {}).share}))};
      await this.$nextTick();
      chart("report-trend", trendChart(trend));
    },

    // today in the hall's zone (the "sv-SE" form is YYYY-MM-DD)
    today() { return new Date().toLocaleDateString("sv-SE", {timeZone: this.me.timezone}); },

    async download(path, name) {
      const r = await fetch(path, {headers: {"Authorization": "Bearer " + this.token}});
      const a = document.createElement("a");
      a.href = URL.createObjectURL(await r.blob());
      a.download = name;
      a.click();
    },

    // -- live: the event stream ---------------------------------------------------------
    async listen() {
      try {
        const {ticket} = await this.api("POST", "/api/v1/events/ticket");
        const es = new EventSource("/api/v1/events?ticket=" + encodeURIComponent(ticket));
        this.stream = es;
        const on = (kind, f) => es.addEventListener(kind, (m) => { this.lastEventId = m.lastEventId; f(JSON.parse(m.data)); });
        on("rating", (e) => this.rated(e));
        on("device", () => this.refreshSoon());
        on("window", () => this.refreshSoon());
        on("bad_review", (e) => this.alerted(e));
        on("work_order", () => { if (this.page === "reviews") this.loadOrders(); });
        on("deadline", () => { if (this.page === "reviews") this.loadOrders(); });
        on("rollout", () => { if (this.page === "devices") this.load("devices"); });
        on("alarm", (e) => this.alarmed(e));
        es.onopen = () => this.loadAlarms();  // what changed while the stream was away
        // a ticket is good once: on an error, a new ticket and a new stream (the server
        // keeps the last events, so none is missed across the gap)
        es.onerror = () => { es.close(); if (this.me) setTimeout(() => this.listen(), 2000); };
      } catch (e) { if (this.me) setTimeout(() => this.listen(), 5000); }
    },

    rated(e) {
      const at = new Date(e.rated_at * 1000).toLocaleTimeString("zh-CN", {timeZone: this.me.timezone, hour12: false});
      this.lastPress[e.window] = `${at} ${LEVELS[e.level]}`;
      this.flashes[e.window] = true;
      setTimeout(() => { this.flashes[e.window] = false; }, 1500);
      this.refreshSoon();
    },

    alerted(e) {
      this.alerts.unshift(e);
      if (this.sound) beep();
      if (this.page === "reviews") this.loadOrders();
      this.refreshSoon();
    },

    refreshSoon() {
      // many events in a burst (a heartbeat from every device): one reload
      if (this.refreshTimer || this.page !== "hall") return;
      this.refreshTimer = setTimeout(async () => {
        this.refreshTimer = null;
        try { this.hall = await this.api("GET", "/api/v1/hall/now"); } catch (err) { this.error = err.message; }
      }, 150);
    },

    levelName: (l) => LEVELS[l] || l, partName: (p) => PARTS[p] || p, reasonName: (r) => REASONS[r] || r, roleName: (r) => ROLES[r] || r,
    stateName: (s) => STATES[s] || s, stepName: (s) => STEPS[s] || s, cardName: (c) => CARDS[c] || c,
    resetName: (r) => RESETS[r] || r || "—",
    pct: (x) => (x === null || x === undefined) ? "—" : (x * 100).toFixed(1) + "%",
    // the API's times are the hall's, with their offset: shown as they are written
    short: (iso, seconds) => iso ? iso.replace("T", " ").slice(0, seconds ? 19 : 16) : "—",
  }));
});

function chart(id, option) {
  const el = document.getElementById(id);
  if (el) (echarts.getInstanceByDom(el) || echarts.init(el)).setOption(option, true);
}

function trendChart(trend) {
  return {
    tooltip: {trigger: "axis"}, legend: {data: ["评价数", "满意率"]},
    xAxis: {type: "category", data: trend.map((t) => t.bucket)},
    yAxis: [{type: "value", name: "评价数"}, {type: "value", name: "满意率", min: 0, max: 1}],
    series: [{name: "评价数", type: "bar", data: trend.map((t) => t.ratings)},
             {name: "满意率", type: "line", yAxisIndex: 1, data: trend.map((t) => t.satisfaction_rate)}],
  };
}

function heatChart(cells) {
  const days = ["周一", "周二", "周三", "周四", "周五", "周六", "周日"];
  const hours = Array.from({length: 24}, (_, h) => String(h));
  return {
    title: {text: "时段热力（评价数）", textStyle: {fontSize: 14}}, tooltip: {},
    xAxis: {type: "category", data: hours}, yAxis: {type: "category", data: days},
    visualMap: {min: 0, max: Math.max(1, ...cells.map((c) => c.ratings)), orient: "horizontal", left: "center",
                bottom: 0, calculable: true},
    series: [{type: "heatmap", data: cells.map((c) => [c.hour, c.weekday, c.ratings])}],
  };
}

function beep() {
  // two short tones, made by the browser: no sound file to ship
  try {
    const ctx = new AudioContext();
    [0, 0.25].forEach((t) => {
      const o = ctx.createOscillator(), g = ctx.createGain();
      o.frequency.value = 880; g.gain.value = 0.1;
      o.connect(g); g.connect(ctx.destination);
      o.start(ctx.currentTime + t); o.stop(ctx.currentTime + t + 0.15);
    });
  } catch (e) { /* no audio here */ }
}
