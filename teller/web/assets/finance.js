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
    banks: document.querySelector("#banks tbody"), postOffices: document.querySelector("#post-offices tbody"),
    reconForm: $("recon-form"), reconBank: $("recon-bank"), bankList: $("bank-list"), reconFile: $("recon-file"),
    reconUpload: $("recon-upload"), reconShow: $("recon-show"), reconResult: $("recon-result"),
    reconItems: document.querySelector("#recon-items tbody"), exceptions: document.querySelector("#exceptions tbody"),
  };

  // Status of a reconciliation item → colour class.
  const statusClass = {
    matched: "ok", missing_at_bank: "bad", missing_at_switch: "bad",
    amount_mismatch: "warn", field_mismatch: "warn", duplicate: "warn",
  };

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
    await loadDays(true);
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
      if (setToday || !ui.day.value) ui.day.value = r.today;
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
    ui.dayStatus.textContent = closed ? "Đã khóa sổ · Closed" : "Đang mở · Open";
    ui.dayStatus.className = "badge " + (closed ? "muted" : "ok");
    ui.dayStatus.dataset.closed = closed ? "true" : "false";
    ui.dayClosedInfo.textContent = closed && info ? S.when(info?.closed_at) + " · " + (info?.closed_by || "") : "";
    // A closed day cannot be closed again: the button goes away.
    ui.closeDay.hidden = closed;

    const banks = rep?.banks || [];
    if (!banks.length) emptyRow(ui.banks, 6);
    else ui.banks.replaceChildren(...banks.map((b) => {
      const tr = S.el("tr");
      tr.dataset.bank = b?.bank;
      tr.append(S.el("td", b?.bank), S.el("td", b?.count || 0, "num"),
        S.el("td", S.money(b?.gross || 0), "num"), S.el("td", S.money(b?.fees || 0), "num"),
        S.el("td", S.money(b?.net || 0), "num"), S.el("td", S.money(b?.settled || 0), "num"));
      return tr;
    }));

    const pos = rep?.post_offices || [];
    if (!pos.length) emptyRow(ui.postOffices, 5);
    else ui.postOffices.replaceChildren(...pos.map((p) => {
      const tr = S.el("tr");
      tr.dataset.postOffice = p?.post_office;
      tr.append(S.el("td", p?.post_office), S.el("td", p?.count || 0, "num"),
        S.el("td", S.money(p?.cash_out || 0), "num"),
        S.el("td", S.money(p?.till_opening || 0), "num"),
        S.el("td", S.money(p?.till_closing || 0), "num"));
      return tr;
    }));

    const codes = banks.map((b) => b?.bank).filter(Boolean);
    ui.bankList.replaceChildren(...codes.map((c) => { const o = S.el("option"); o.value = c; return o; }));
    if (!ui.reconBank.value && codes.length) ui.reconBank.value = codes[0];
    if (ui.reconBank.value) loadRecon(true);
    else emptyRow(ui.reconItems, 6);
  }

  ui.day.addEventListener("change", () => { clear(); loadSettlement(); });

  // Closing asks twice, in the page (not a browser dialog, which a kiosk
  // browser may suppress). One key per opened confirmation.
  ui.closeDay.addEventListener("click", () => {
    clear();
    closeKey = S.newKey();
    ui.closeConfirmDay.textContent = ui.day.value;
    ui.closeConfirm.hidden = false;
    ui.closeDayConfirm.focus();
  });
  ui.closeDayCancel.addEventListener("click", () => { ui.closeConfirm.hidden = true; });
  ui.closeDayConfirm.addEventListener("click", async () => {
    const date = ui.day.value;
    let closed = false;
    await S.busy([ui.closeDayConfirm, ui.closeDayCancel, ui.closeDay], async () => {
      try {
        await S.request("POST", "/v1/finance/days/" + encodeURIComponent(date) + "/close", { key: closeKey });
        closed = true;
      } catch (err) {
        fail(err);
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

  ui.reconFile.addEventListener("change", () => { uploadKey = ""; });
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
    if (!uploadKey) uploadKey = S.newKey();
    const form = new FormData();
    form.append("file", file, file.name);
    await S.busy([ui.reconUpload, ui.reconShow], async () => {
      try {
        const r = await S.request("POST", "/v1/finance/recon/" + encodeURIComponent(bank) + "/" + encodeURIComponent(ui.day.value), { form, key: uploadKey });
        const lines = r?.lines || 0;
        const fresh = r?.new_lines || 0;
        ui.reconResult.textContent = r?.repeated
          ? "Tệp này đã được nhập trước đó · This file was imported before (" + lines + " lines)."
          : "Đã nhập " + lines + " dòng, " + fresh + " dòng mới · Imported " + lines + " lines, " + fresh + " new.";
        ui.reconResult.hidden = false;
        await loadRecon(false);
      } catch (err) {
        fail(err);
      }
    });
  });

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
    const badge = S.el("span", status, "badge " + cls);
    const tdStatus = S.el("td");
    tdStatus.append(badge);
    const bankAmount = it?.bank_amount;
    const switchAmount = it?.switch_amount;
    tr.append(tdStatus, S.el("td", it?.rrn || "—", "mono nowrap"),
      S.el("td", bankAmount ? S.money(bankAmount) : "—", "num"),
      S.el("td", switchAmount ? S.money(switchAmount) : "—", "num"),
      S.el("td", it?.detail || ""));
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
      tr.append(S.el("td", S.when(x.created_at)), S.el("td", x.kind), S.el("td", x.bank),
        S.el("td", S.money(x.amount || 0), "num"), S.el("td", x.rrn || "—", "mono nowrap"),
        S.el("td", x.attempts, "num"), S.el("td", (x.response_code ? "[" + x.response_code + "] " : "") + (x.last_error || ""), "err"));
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
