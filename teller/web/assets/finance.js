// The finance page: business days, per-bank and per-post-office totals, CSV
// export, closing a day, importing a bank's settlement file and resolving
// what does not match, and the outbox exceptions list.
//
// Nothing here fixes anything by itself: every resolution is a person's
// decision with a written reason, and closing a day asks twice.
"use strict";

(function () {
  const S = window.SoftATM;
  const $ = (id) => document.getElementById(id);

  const ui = {
    error: $("error"), notice: $("notice"), who: $("who"), whoName: $("who-name"), logout: $("logout"),
    loginView: $("login-view"), loginForm: $("login-form"), username: $("username"), password: $("password"), login: $("login"),
    workView: $("work-view"), day: $("day"), dayStatus: $("day-status"), dayClosedInfo: $("day-closed-info"), csv: $("csv"),
    closeDay: $("close-day"), closeConfirm: $("close-confirm"), closeConfirmDay: $("close-confirm-day"),
    closeDayConfirm: $("close-day-confirm"), closeDayCancel: $("close-day-cancel"),
    closeCutoff: $("close-cutoff"), closeOpenBox: $("close-open-box"), closeOpen: $("close-open"), closeReason: $("close-reason"),
    dayCloseReason: $("day-close-reason"), reconProblems: $("recon-problems"),
    banks: document.querySelector("#banks tbody"), postOffices: document.querySelector("#post-offices tbody"),
    reconForm: $("recon-form"), reconBank: $("recon-bank"), bankList: $("bank-list"), reconFile: $("recon-file"),
    reconUpload: $("recon-upload"), reconShow: $("recon-show"), reconResult: $("recon-result"),
    reconItems: document.querySelector("#recon-items tbody"), exceptions: document.querySelector("#exceptions tbody"),
    banksFoot: document.querySelector("#banks tfoot"), postOfficesFoot: document.querySelector("#post-offices tfoot"),
    payForm: $("pay-form"), payBank: $("pay-bank"), payAmount: $("pay-amount"), payRef: $("pay-ref"), paySave: $("pay-save"),
    tillForm: $("till-form"), tillPO: $("till-po"), poList: $("po-list"), tillAmount: $("till-amount"), tillRef: $("till-ref"),
    tillReplenish: $("till-replenish"), tillCollect: $("till-collect"), tillCount: $("till-count"),
    reconLegend: $("recon-legend"), forecastMethod: $("forecast-method"), forecastCsv: $("forecast-csv"), forecastHead: $("forecast-head"), forecast: document.querySelector("#forecast tbody"),
  };

  // Status of a reconciliation item → colour class.
  const statusClass = {
    matched: "ok", missing_at_bank: "bad", missing_at_switch: "bad",
    amount_differs: "warn", field_mismatch: "warn", duplicate: "warn", date_differs: "warn", awaiting_bank_file: "info",
  };

  // words: the vocabulary from /v1/finance/words — every exception kind,
  // recon category, state and bank response code in Vietnamese and
  // English with what to do next. A code it lacks is shown as it is.
  let words = { exceptions: {}, recon: {}, states: {}, response_codes: {} };

  async function loadWords() {
    try {
      words = await S.request("GET", "/v1/finance/words");
    } catch (err) {
      fail(err);
    }
  }

  // say returns the words of code in dict: label ("vi · en") and next step.
  function say(dict, code) {
    const w = (words && words[dict] && words[dict][code]) || null;
    if (!w) return { label: code || "—", next: "" };
    return { label: w.vi + " · " + w.en, next: w.next_vi + " · " + w.next_en };
  }

  // withNext is a cell's content: the words, then what to do next.
  function withNext(td, w, extra) {
    td.append(S.el("div", w.label, "words"));
    if (extra) td.append(S.el("div", extra, "sub detail"));
    if (w.next) td.append(S.el("div", "→ " + w.next, "next"));
    return td;
  }

  function drawLegend() {
    const order = ["matched", "missing_at_bank", "missing_at_switch", "amount_differs", "field_mismatch", "duplicate",
      "awaiting_bank_file", "date_differs"];
    ui.reconLegend.replaceChildren(...order.filter((c) => words.recon && words.recon[c]).map((c) => {
      const item = S.el("span", null, "legend-item");
      item.dataset.status = c;
      item.append(S.el("span", say("recon", c).label, "badge " + (statusClass[c] || "info")));
      return item;
    }));
  }

  let days = [];
  let closeKey = "";
  let uploadKey = "";

  function fail(err) {
    if (err && err.code === "unauthorized") showLogin();
    S.showError(ui.error, err && err.code ? err.code : "internal");
  }

  function notice(text) {
    ui.notice.textContent = text;
    ui.notice.hidden = !text;
  }

  function clear() {
    S.hideError(ui.error);
    notice("");
  }

  function dateOnly(v) { return typeof v === "string" ? v.slice(0, 10) : ""; }

  function emptyRow(tbody, cols, text) {
    const tr = S.el("tr", null, "empty");
    const td = S.el("td", text || "Không có dữ liệu · Nothing here");
    td.colSpan = cols;
    tr.append(td);
    tbody.replaceChildren(tr);
  }

  // ---- login -------------------------------------------------------------

  function showLogin() {
    ui.who.hidden = true;
    ui.workView.hidden = true;
    ui.loginView.hidden = false;
    ui.password.value = "";
  }

  async function showWork(s) {
    ui.loginView.hidden = true;
    ui.workView.hidden = false;
    ui.who.hidden = false;
    ui.whoName.textContent = s.username + " · " + s.role;
    await loadWords();
    drawLegend();
    await loadDays(true);
    loadForecast();
    loadExceptions();
  }

  function allowed(s) { return s.role === "finance" || s.role === "admin"; }

  ui.loginForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clear();
    await S.busy(ui.login, async () => {
      try {
        const s = await S.login(ui.username.value.trim(), ui.password.value);
        if (!allowed(s)) {
          await S.logout();
          S.showError(ui.error, "forbidden", ["Trang này dành cho bộ phận tài chính.", "This page is for finance staff."]);
          return;
        }
        await showWork(s);
      } catch (err) {
        if (err.code === "unauthorized") {
          S.showError(ui.error, err.code, ["Sai tên đăng nhập hoặc mật khẩu.", "Wrong username or password."]);
        } else fail(err);
      }
    });
  });

  ui.logout.addEventListener("click", async () => {
    await S.logout();
    clear();
    showLogin();
  });

  // ---- days and settlement ----------------------------------------------

  async function loadDays(setToday) {
    try {
      const r = await S.request("GET", "/v1/finance/days");
      days = r.days || [];
      if (setToday || !ui.day.value) setDay(r.today);
      await loadSettlement();
    } catch (err) {
      fail(err);
    }
  }

  function dayInfo(date) {
    return days.find((d) => dateOnly(d?.date) === date);
  }

  // settlementLoads: as reconLoads, for the day's settlement (a slow answer
  // for the day picked before must not replace the day picked now).
  let settlementLoads = 0;

  async function loadSettlement() {
    const date = ui.day.value;
    if (!date) return;
    const load = ++settlementLoads;
    ui.csv.href = "/v1/finance/days/" + encodeURIComponent(date) + "/settlement?format=csv";
    ui.csv.setAttribute("download", "settlement-" + date + ".csv");
    ui.closeConfirm.hidden = true;
    let rep;
    try {
      rep = await S.request("GET", "/v1/finance/days/" + encodeURIComponent(date) + "/settlement");
    } catch (err) {
      if (load === settlementLoads) fail(err);
      return;
    }
    if (load !== settlementLoads) return;
    const info = dayInfo(date);
    const closed = Boolean(rep?.closed || (info && info?.closed));
    ui.dayStatus.textContent = say("states", closed ? "closed" : "open").label;
    ui.dayStatus.title = say("states", closed ? "closed" : "open").next;
    ui.dayStatus.className = "badge " + (closed ? "muted" : "ok");
    ui.dayStatus.dataset.closed = closed ? "true" : "false";
    ui.dayClosedInfo.textContent = closed && info ? S.when(info?.closed_at) + " · " + (info?.closed_by || "") : "";
    // A day closed with items still open shows why, and what was open.
    const reason = closed && info ? (info?.close_reason || "") : "";
    const openThen = (info?.open_at_close || []).join("; ");
    ui.dayCloseReason.replaceChildren(...(reason ? [S.bi("Lý do khóa sổ: " + reason + " (còn mở: " + openThen + ")",
      "Closed because: " + reason + " (open then: " + openThen + ")")] : []));
    // A closed day cannot be closed again: the button goes away.
    ui.closeDay.hidden = closed;

    const banks = rep?.banks || [];
    if (!banks.length) emptyRow(ui.banks, 7);
    else ui.banks.replaceChildren(...banks.map((b) => bankRow(b, b?.bank)));
    ui.banksFoot.replaceChildren(...(rep?.bank_totals || []).map((b) => bankRow(b, "Tổng · Total")));

    const pos = rep?.post_offices || [];
    if (!pos.length) emptyRow(ui.postOffices, 9);
    else ui.postOffices.replaceChildren(...pos.map((p) => poRow(p, p?.post_office)));
    ui.postOfficesFoot.replaceChildren(...(rep?.post_office_totals || []).map((p) => poRow(p, "Tổng · Total")));
    const poCodes = pos.map((p) => p?.post_office).filter(Boolean);
    ui.poList.replaceChildren(...poCodes.map((c) => { const o = S.el("option"); o.value = c; return o; }));
    if (!ui.tillPO.value && poCodes.length) ui.tillPO.value = poCodes[0];

    const codes = banks.map((b) => b?.bank).filter(Boolean);
    ui.bankList.replaceChildren(...codes.map((c) => { const o = S.el("option"); o.value = c; return o; }));
    if (!ui.reconBank.value && codes.length) ui.reconBank.value = codes[0];
    if (!ui.payBank.value && codes.length) ui.payBank.value = codes[0];
    if (ui.reconBank.value) loadRecon(true);
    else emptyRow(ui.reconItems, 6);
  }

  // A bank's line (or the totals line, label given): what it owes for the
  // day, what it paid, and what it still owes.
  function bankRow(b, label) {
    const tr = S.el("tr");
    if (b?.bank) tr.dataset.bank = b.bank;
    const out = b?.outstanding || 0;
    tr.dataset.net = String(b?.net || 0);
    tr.dataset.outstanding = String(out);
    tr.append(S.el("td", label), S.el("td", b?.count || 0, "num"),
      S.el("td", S.money(b?.gross || 0), "num"), S.el("td", S.money(b?.fees || 0), "num"),
      S.el("td", S.money(b?.net || 0), "num"), S.el("td", S.money(b?.settled || 0), "num"),
      S.el("td", S.money(out), "num outstanding " + (out === 0 ? "st-ok-text" : "st-warn-text")));
    return tr;
  }

  // A post office's till for the day (or the totals line): the figures add
  // up to the closing balance, and the teller's count sits beside it.
  function poRow(p, label) {
    const tr = S.el("tr");
    if (p?.post_office) tr.dataset.postOffice = p.post_office;
    const os = p?.over_short || 0;
    tr.dataset.overShort = String(os);
    tr.dataset.closing = String(p?.till_closing || 0);
    tr.dataset.replenished = String(p?.replenished || 0);
    tr.dataset.collected = String(p?.collected || 0);
    // The words and the amount apart: the language switch shows one half
    // of "Thiếu · Short", and the amount belongs to both.
    const osCell = S.el("td", "", "num over-short" + (os < 0 ? " st-bad-text" : os > 0 ? " st-warn-text" : ""));
    if (os !== 0) osCell.append(os < 0 ? S.bi("Thiếu", "Short") : S.bi("Thừa", "Over"), " ");
    osCell.append(S.money(Math.abs(os)));
    const counted = p?.counted;
    const countedText = counted === null || counted === undefined ? "Chưa đếm · Not counted" : S.money(counted);
    tr.append(S.el("td", label), S.el("td", p?.count || 0, "num"),
      S.el("td", S.money(p?.till_opening || 0), "num"),
      S.el("td", S.money(p?.replenished || 0), "num"),
      S.el("td", S.money(p?.collected || 0), "num"),
      S.el("td", S.money(p?.cash_out || 0), "num"),
      osCell,
      S.el("td", S.money(p?.till_closing || 0), "num"),
      S.el("td", countedText, "num counted"));
    return tr;
  }

  ui.day.addEventListener("change", () => { clear(); loadSettlement(); });

  // The day is typed as dd/mm/yyyy (#day-shown) and kept as an ISO date
  // (#day). setDay is the one way to change it from the page's code.
  const dayShown = $("day-shown");
  function setDay(iso) {
    ui.day.value = iso;
    dayShown.value = S.day(iso) === "—" ? "" : S.day(iso);
  }
  dayShown.addEventListener("change", () => {
    const m = /^\s*(\d{1,2})\/(\d{1,2})\/(\d{4})\s*$/.exec(dayShown.value);
    const iso = m ? m[3] + "-" + m[2].padStart(2, "0") + "-" + m[1].padStart(2, "0") : "";
    if (!iso || isNaN(new Date(iso + "T00:00:00Z"))) {
      dayShown.setCustomValidity("dd/mm/yyyy");
      dayShown.setAttribute("aria-invalid", "true");
      return;
    }
    dayShown.setCustomValidity("");
    dayShown.removeAttribute("aria-invalid");
    setDay(iso);
    ui.day.dispatchEvent(new Event("change"));
  });

  // ---- tills and bank payments -------------------------------------------

  // One idempotency key per action and what was typed: a retry of the same
  // action sends the same key (the server answers it once); changing a
  // field starts a new action.
  let tillKeys = {};
  let payKey = "";
  [ui.tillPO, ui.tillAmount, ui.tillRef].forEach((i) => i.addEventListener("input", () => { tillKeys = {}; }));
  [ui.payBank, ui.payAmount, ui.payRef].forEach((i) => i.addEventListener("input", () => { payKey = ""; }));

  function wholeAmount(input, allowZero) {
    const v = input.value.trim();
    if (!/^[0-9]+$/.test(v)) return null;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || (!allowZero && n <= 0)) return null;
    return n;
  }

  async function tillAction(action, button) {
    clear();
    const po = ui.tillPO.value.trim().toUpperCase();
    const amount = wholeAmount(ui.tillAmount, action === "count");
    const ref = ui.tillRef.value.trim();
    if (!po || amount === null) {
      S.showError(ui.error, "invalid_request", ["Chọn bưu điện và nhập số tiền (đồng).", "Choose a post office and type the amount in dong."]);
      return;
    }
    if (action !== "count" && !ref) {
      S.showError(ui.error, "invalid_request", ["Nhập số phiếu giao nhận tiền.", "Type the delivery note's reference."]);
      return;
    }
    if (!tillKeys[action]) tillKeys[action] = S.newKey();
    const body = action === "count" ? { counted: amount } : { amount, reference: ref };
    let done = null;
    await S.busy([ui.tillReplenish, ui.tillCollect, ui.tillCount], async () => {
      try {
        done = await S.request("POST", "/v1/finance/tills/" + encodeURIComponent(po) + "/" + action, { json: body, key: tillKeys[action] });
      } catch (err) {
        fail(err);
      }
    });
    if (!done) return;
    tillKeys = {};
    if (action === "count") {
      const d = done?.difference || 0;
      notice("Đã ghi kiểm đếm " + po + ": " + S.money(amount) +
        (d < 0 ? " — thiếu " + S.money(-d) : d > 0 ? " — thừa " + S.money(d) : " — khớp") +
        " · Count recorded" + (d < 0 ? ", short " + S.money(-d) : d > 0 ? ", over " + S.money(d) : ", matches") + ".");
    } else {
      notice((action === "replenish" ? "Đã nhập quỹ · Replenished " : "Đã thu hồi · Collected ") + po + ": " + S.money(amount) + ".");
    }
    await loadDays(false);
    await loadForecast();
  }
  ui.tillReplenish.addEventListener("click", () => tillAction("replenish", ui.tillReplenish));
  ui.tillCollect.addEventListener("click", () => tillAction("collect", ui.tillCollect));
  ui.tillCount.addEventListener("click", () => tillAction("count", ui.tillCount));
  ui.tillForm.addEventListener("submit", (ev) => ev.preventDefault());

  ui.payForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clear();
    const bank = ui.payBank.value.trim().toUpperCase();
    const amount = wholeAmount(ui.payAmount, false);
    const ref = ui.payRef.value.trim();
    if (!bank || amount === null || !ref) {
      S.showError(ui.error, "invalid_request", ["Nhập ngân hàng, số tiền và mã chuyển khoản.", "Type the bank, the amount and the payment reference."]);
      return;
    }
    if (!payKey) payKey = S.newKey();
    let done = null;
    await S.busy(ui.paySave, async () => {
      try {
        done = await S.request("POST", "/v1/finance/days/" + encodeURIComponent(ui.day.value) + "/banks/" + encodeURIComponent(bank) + "/settle",
          { json: { amount, reference: ref }, key: payKey });
      } catch (err) {
        fail(err);
      }
    });
    if (!done) return;
    payKey = "";
    const out = done?.bank?.outstanding || 0;
    notice("Đã ghi nhận " + bank + " trả " + S.money(amount) + "; còn nợ " + S.money(out) +
      " · Recorded " + bank + " paid " + S.money(amount) + "; outstanding " + S.money(out) + ".");
    await loadDays(false);
  });

  // Closing asks twice, in the page (not a browser dialog, which a kiosk
  // browser may suppress). One key per opened confirmation.
  // It first shows what closing would meet: when the last bank's cut-off
  // passes, and what is still open (which needs a reason to close anyway).
  ui.closeDay.addEventListener("click", async () => {
    clear();
    closeKey = S.newKey();
    const date = ui.day.value;
    let c;
    try {
      c = await S.request("GET", "/v1/finance/days/" + encodeURIComponent(date) + "/close");
    } catch (err) {
      fail(err);
      return;
    }
    ui.closeConfirmDay.textContent = date;
    const cuts = Object.entries(c?.cutoffs || {}).map(([b, t]) => b + " " + t).join(", ");
    const from = S.when(c?.closable_at);
    ui.closeCutoff.replaceChildren(S.bi("Giờ chốt: " + (cuts || "23:59:59") + ". Khóa sổ được từ " + from + ".",
      "Cut-off: " + (cuts || "23:59:59") + ". The day can close from " + from + "."));
    const open = c?.open || [];
    ui.closeOpen.replaceChildren(...open.map((o) => S.el("li", o)));
    ui.closeOpenBox.hidden = !open.length;
    ui.closeReason.value = "";
    ui.closeConfirm.hidden = false;
    (open.length ? ui.closeReason : ui.closeDayConfirm).focus();
  });
  ui.closeDayCancel.addEventListener("click", () => { ui.closeConfirm.hidden = true; });
  ui.closeDayConfirm.addEventListener("click", async () => {
    clear();
    const date = ui.day.value;
    let closed = false;
    await S.busy([ui.closeDayConfirm, ui.closeDayCancel, ui.closeDay], async () => {
      try {
        await S.request("POST", "/v1/finance/days/" + encodeURIComponent(date) + "/close",
          { key: closeKey, json: { reason: ui.closeReason.value.trim() } });
        closed = true;
      } catch (err) {
        fail(err);
        // Too early, or open items without a reason: the server says
        // which, in words; another try is another request.
        if (err?.serverMessage) ui.closeCutoff.textContent = err.serverMessage;
        closeKey = S.newKey();
      }
    });
    // Reload after busy() has put the buttons back, so that the reloaded
    // state (a closed day has no Close button) is what stays.
    if (closed) {
      ui.closeConfirm.hidden = true;
      notice("Đã khóa sổ ngày " + date + " · Day " + date + " closed.");
      await loadDays(false);
    }
  });

  // ---- reconciliation ----------------------------------------------------

  ui.reconFile.addEventListener("change", () => {
    uploadKey = "";
    const f = ui.reconFile.files && ui.reconFile.files[0];
    const name = $("recon-file-name");
    name.textContent = f ? f.name : "";
    if (!f) name.append("Chưa chọn tệp ", S.el("span", "· No file chosen", "en"));
  });
  ui.reconBank.addEventListener("change", () => { uploadKey = ""; });

  ui.reconForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clear();
    const bank = ui.reconBank.value.trim().toUpperCase();
    const file = ui.reconFile.files && ui.reconFile.files[0];
    if (!bank || !file) {
      S.showError(ui.error, "invalid_request", ["Chọn ngân hàng và tệp quyết toán.", "Choose a bank and a settlement file."]);
      return;
    }
    // One key per upload: choosing the same file again is a new upload,
    // which the server answers for itself (already imported, and when).
    uploadKey = S.newKey();
    // A new upload clears the last one's result and problems.
    ui.reconResult.textContent = "";
    ui.reconResult.hidden = true;
    ui.reconProblems.replaceChildren();
    ui.reconProblems.hidden = true;
    const form = new FormData();
    form.append("file", file, file.name);
    await S.busy([ui.reconUpload, ui.reconShow], async () => {
      try {
        const r = await S.request("POST", "/v1/finance/recon/" + encodeURIComponent(bank) + "/" + encodeURIComponent(ui.day.value), { form, key: uploadKey });
        const lines = r?.lines || 0;
        const fresh = r?.new_lines || 0;
        ui.reconResult.textContent = "Đã nhập tệp của " + (r?.bank || bank) + " ngày " + dateOnly(r?.date) + ": " + lines + " dòng, " +
          fresh + " dòng mới · Imported " + (r?.bank || bank) + "'s file of " + dateOnly(r?.date) + ": " + lines + " lines, " + fresh + " new.";
        ui.reconResult.hidden = false;
        await loadRecon(false);
      } catch (err) {
        fail(err);
        showUploadProblem(err);
      }
    });
  });

  // showUploadProblem shows what the server said of a refused file: every
  // bad line with its number, or which bank or day the file is of, or
  // when it was imported before.
  function showUploadProblem(err) {
    const msg = err?.serverMessage || "";
    if (!msg || !String(err?.code || "").startsWith("settlement_file_")) return;
    const [head, ...lines] = msg.split("\n");
    ui.reconResult.textContent = head;
    ui.reconResult.hidden = false;
    ui.reconProblems.replaceChildren(...lines.map((l) => S.el("li", l)));
    ui.reconProblems.hidden = !lines.length;
  }

  ui.reconShow.addEventListener("click", () => { clear(); loadRecon(false); });

  // reconLoads numbers the loads of the recon table: only the latest may
  // draw it, so a slow earlier answer (the page's first load, say) cannot
  // overwrite the lines a later one drew after an upload.
  let reconLoads = 0;

  async function loadRecon(quiet) {
    const bank = ui.reconBank.value.trim().toUpperCase();
    if (!bank) return;
    const load = ++reconLoads;
    let r;
    try {
      r = await S.request("GET", "/v1/finance/recon/" + encodeURIComponent(bank) + "/" + encodeURIComponent(ui.day.value));
    } catch (err) {
      if (!quiet && load === reconLoads) fail(err);
      return;
    }
    if (load !== reconLoads) return;
    const items = r.items || [];
    if (!items.length) {
      emptyRow(ui.reconItems, 6, "Chưa nhập tệp cho ngày này · No file imported for this day");
      return;
    }
    ui.reconItems.replaceChildren(...items.map(reconRow));
  }

  function reconRow(it) {
    const status = it?.status || "";
    const resolved = Boolean(it?.resolved);
    const cls = statusClass[status] || "info";
    const tr = S.el("tr", null, "st-" + cls + (resolved ? " resolved" : ""));
    tr.dataset.status = status;
    tr.dataset.id = it?.id;
    const w = say("recon", status);
    const badge = S.el("span", w.label, "badge " + cls);
    const tdStatus = S.el("td");
    tdStatus.append(badge);
    const bankAmount = it?.bank_amount;
    const switchAmount = it?.switch_amount;
    tr.append(tdStatus, S.el("td", it?.rrn || "—", "mono nowrap"),
      S.el("td", bankAmount ? S.money(bankAmount) : "—", "num"),
      S.el("td", switchAmount ? S.money(switchAmount) : "—", "num"),
      withNext(S.el("td"), { label: "", next: resolved ? "" : w.next }, it?.detail || ""));
    const tdRes = S.el("td");
    if (resolved) {
      tdRes.textContent = "✔ " + (it?.reason || "") + (it?.resolved_by ? " (" + it?.resolved_by + ")" : "");
      tdRes.className = "resolution";
    } else if (status !== "matched") {
      tdRes.append(resolver(tr.dataset.id, "/v1/finance/recon/items/", () => loadRecon(false)));
    }
    tr.append(tdRes);
    return tr;
  }

  // resolver is a Resolve button that opens a reason box in the row; the
  // reason is required, and one key covers the retries of one resolution.
  function resolver(id, base, reload) {
    const box = S.el("div", null, "resolve");
    const open = S.el("button", "Xử lý · Resolve", "secondary small resolve-open");
    open.type = "button";
    box.append(open);
    open.addEventListener("click", () => {
      const key = S.newKey();
      const reason = S.el("input", null, "resolve-reason");
      reason.type = "text";
      reason.placeholder = "Lý do · Reason";
      reason.maxLength = 500;
      const save = S.el("button", "Lưu · Save", "small resolve-save");
      save.type = "button";
      const cancel = S.el("button", "Hủy · Cancel", "secondary small");
      cancel.type = "button";
      box.replaceChildren(reason, save, cancel);
      reason.focus();
      cancel.addEventListener("click", () => box.replaceChildren(open));
      save.addEventListener("click", async () => {
        clear();
        const text = reason.value.trim();
        if (!text) {
          S.showError(ui.error, "invalid_request", ["Hãy ghi lý do.", "Please write a reason."]);
          reason.focus();
          return;
        }
        await S.busy([save, cancel], async () => {
          try {
            await S.request("POST", base + encodeURIComponent(id) + "/resolve", { json: { reason: text }, key });
            notice("Đã ghi nhận · Resolved.");
            await reload();
          } catch (err) {
            fail(err);
          }
        });
      });
    });
    return box;
  }

  // ---- cash forecast -----------------------------------------------------

  const weekdayVi = ["CN", "T2", "T3", "T4", "T5", "T6", "T7"];
  const weekdayEn = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

  // dayLabel: "T2 · Mon 02/06" for a civil date "2025-06-02...".
  function dayLabel(date) {
    const d = dateOnly(date);
    const wd = new Date(d + "T00:00:00Z").getUTCDay();
    // The date in both halves: the language switch shows one of them.
    const dm = d.slice(8, 10) + "/" + d.slice(5, 7);
    return weekdayVi[wd] + " " + dm + " · " + weekdayEn[wd] + " " + dm;
  }

  let forecastLoads = 0; // as reconLoads

  async function loadForecast() {
    const load = ++forecastLoads;
    let r;
    try {
      r = await S.request("GET", "/v1/finance/forecast");
    } catch (err) {
      if (load === forecastLoads) fail(err);
      return;
    }
    if (load !== forecastLoads) return;
    ui.forecastMethod.textContent = "Cách tính · Method: " + (r?.method || "");
    ui.forecastCsv.href = "/v1/finance/forecast?format=csv";
    const pos = r?.post_offices || [];
    const first = pos.find((p) => (p?.days || []).length);
    // A header cell: Vietnamese, then English below it (as the static tables).
    const th = (vi, en, cls) => {
      const c = S.el("th", vi, cls);
      c.append(S.el("span", " · " + en, "en"));
      return c;
    };
    const head = [th("Bưu điện", "Post office"), th("Quỹ hiện có", "In till now", "num"),
      th("Hết tiền ngày", "Runs short"), th("Đề nghị nhập quỹ", "Suggested", "num")];
    (first?.days || []).forEach((d) => {
      const day = dateOnly(d?.date);
      const wd = new Date(day + "T00:00:00Z").getUTCDay();
      head.push(th(weekdayVi[wd] + " " + day.slice(8, 10) + "/" + day.slice(5, 7), weekdayEn[wd], "num"));
    });
    head.push(th("Ngày lương/hưu", "Pension/salary days"));
    ui.forecastHead.replaceChildren(...head);
    if (!pos.length) {
      emptyRow(ui.forecast, head.length);
      return;
    }
    ui.forecast.replaceChildren(...pos.map((p) => {
      const tr = S.el("tr");
      tr.dataset.postOffice = p?.post_office;
      const short = p?.runs_short ? dateOnly(p.runs_short) : "";
      tr.dataset.runsShort = short;
      tr.dataset.suggested = String(p?.suggested || 0);
      tr.append(S.el("td", p?.post_office), S.el("td", S.money(p?.balance || 0), "num"),
        S.el("td", short ? dayLabel(short) : "Đủ 7 ngày · Lasts the week", short ? "st-bad-text runs-short" : "st-ok-text runs-short"),
        S.el("td", (p?.suggested || 0) > 0 ? S.money(p.suggested) : "—", "num suggested"));
      (p?.days || []).forEach((d) => {
        const td = S.el("td", (d?.peak ? "★ " : "") + S.money(d?.expected || 0),
          "num forecast-day" + (d?.peak ? " peak" : "") + ((d?.till || 0) < 0 ? " st-bad-text" : ""));
        td.title = "Quỹ cuối ngày dự kiến · Till at day end: " + S.money(d?.till || 0);
        tr.append(td);
      });
      tr.append(S.el("td", (p?.peaks || []).map((x) => x?.day_of_month + " (×" + x?.factor + ")").join(", ") || "—"));
      return tr;
    }));
  }

  // ---- exceptions --------------------------------------------------------

  let exceptionLoads = 0; // as reconLoads

  async function loadExceptions() {
    const load = ++exceptionLoads;
    let r;
    try {
      r = await S.request("GET", "/v1/finance/exceptions");
    } catch (err) {
      if (load === exceptionLoads) fail(err);
      return;
    }
    if (load !== exceptionLoads) return;
    const list = r.exceptions || [];
    if (!list.length) {
      emptyRow(ui.exceptions, 8, "Không có lỗi nào · No exceptions");
      return;
    }
    ui.exceptions.replaceChildren(...list.map((x) => {
      const tr = S.el("tr", null, x.resolved ? "resolved" : "st-bad");
      tr.dataset.id = x.id;
      tr.dataset.kind = x.kind;
      // What the bank said: its response code in words, or that it never
      // answered; the technical error stays below, small.
      const answer = x.response_code ? say("response_codes", x.response_code)
        : x.kind === "reply_mismatch" ? { label: "", next: "" } : say("response_codes", "no_answer");
      tr.append(S.el("td", S.when(x.created_at)),
        withNext(S.el("td", null, "kind"), x.resolved ? { label: say("exceptions", x.kind).label, next: "" } : say("exceptions", x.kind)),
        S.el("td", x.bank),
        S.el("td", S.money(x.amount || 0), "num"), S.el("td", x.rrn || "—", "mono nowrap"),
        S.el("td", x.attempts, "num"),
        withNext(S.el("td", null, "err"), { label: answer.label, next: x.resolved ? "" : answer.next }, x.last_error || ""));
      const td = S.el("td");
      if (x.resolved) td.textContent = "✔ " + (x.resolved_note || "");
      else td.append(resolver(x.id, "/v1/finance/exceptions/", loadExceptions));
      tr.append(td);
      return tr;
    }));
  }

  // ---- start -------------------------------------------------------------

  (async () => {
    try {
      const s = await S.me();
      if (allowed(s)) return showWork(s);
    } catch (err) {
      if (err.code !== "unauthorized") fail(err);
    }
    showLogin();
  })();
})();
