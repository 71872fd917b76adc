// The demo banking app: a stand-in for a bank's mobile app, served only in
// demo mode. Pick an account and an amount, get a QR and a numeric code, and
// watch the withdrawal move (reserved → claimed → paid → completed).
//
// It checks an amount with the switch's own limits (GET /demo/api/limits,
// the values Create checks), says them before a request, and explains each
// refusal by its reason. An account's live code is shown again after a
// reload, and cancelling asks first.
"use strict";

(function () {
  const S = window.SoftATM;
  const $ = (id) => document.getElementById(id);

  const pollEveryMs = 1000; // status refresh while the code is live
  const countdownTickMs = 1000;

  const ui = {
    error: $("error"), createView: $("create-view"), createForm: $("create-form"), account: $("account"), amount: $("amount"),
    accountInfo: $("account-info"), limits: $("limits"),
    create: $("create"), codeView: $("code-view"), codeAmount: $("code-amount"), status: $("status"), countdown: $("countdown"),
    qr: $("qr"), numericCode: $("numeric-code"), numericOnce: $("numeric-once"), phone4: $("phone4"), paidInfo: $("paid-info"),
    cancel: $("cancel"), cancelConfirm: $("cancel-confirm"), cancelYes: $("cancel-yes"), cancelNo: $("cancel-no"),
    newCode: $("new"), back: $("back"),
  };

  const final = new Set(["completed", "cancelled", "expired", "failed", "declined"]);
  const live = new Set(["requested", "reserved", "claimed", "deposit_issued", "at_counter", "crediting"]);

  let accounts = {};
  let limits = null;
  let current = null;
  let pollTimer = 0;
  let tickTimer = 0;

  const api = (method, url, json) => S.request(method, url, { json, noAuthHeaders: true });

  // The server's refusals carry a reason beside the switch's code; request
  // drops the body, so the demo reads it here.
  async function create(account, amount, path) {
    const resp = await fetch(path || "/demo/api/withdrawals", {
      method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ account, amount }), credentials: "same-origin", cache: "no-store",
    }).catch(() => { throw new S.ApiError("network", 0); });
    const data = await resp.json().catch(() => null);
    if (!resp.ok) {
      const e = (data && data.error) || {};
      const err = new S.ApiError(e.code || "internal", resp.status, e.message);
      err.reason = e.reason || "";
      throw err;
    }
    return data;
  }

  function vars() {
    return limits ? { min: S.money(limits.amount_min), max: S.money(limits.amount_max), unit: S.money(limits.amount_multiple),
      daily: S.money(limits.account_daily_max) } : {};
  }

  // explain shows a refusal by its most exact reason.
  function explain(code, reason) {
    const key = reason && S.MESSAGES[reason] ? reason : code;
    S.showError(ui.error, key, S.fill(S.message(key), vars()));
  }

  // parseAmount reads "500.000", "500000" or "500 000 ₫"; NaN otherwise.
  function parseAmount(text) {
    const digits = String(text).replace(/[.\s,₫]/g, "");
    return /^\d{1,15}$/.test(digits) ? Number(digits) : NaN;
  }

  // check is the switch's own amount rule (switch/service.go validate), in
  // the same order; "" when the amount passes.
  function check(amount) {
    if (!(amount > 0)) return "amount_missing";
    if (!limits) return "";
    if (amount < limits.amount_min) return "amount_too_small";
    if (amount > limits.amount_max) return "amount_too_large";
    if (amount % limits.amount_multiple !== 0) return "amount_not_multiple";
    return "";
  }

  function showLimits() {
    if (!limits) return;
    const v = vars();
    const vi = "Từ " + v.min + " đến " + v.max + " mỗi lần, bội số của " + v.unit +
      (limits.account_daily_max ? "; tối đa " + v.daily + " mỗi ngày." : ".");
    const en = "From " + v.min + " to " + v.max + " at a time, in multiples of " + v.unit +
      (limits.account_daily_max ? "; at most " + v.daily + " a day." : ".");
    ui.limits.replaceChildren(S.bi(vi, en));
  }

  function showAccountInfo() {
    const a = accounts[ui.account.value];
    if (!a) { ui.accountInfo.replaceChildren(); return; }
    const vi = "4 số cuối điện thoại: " + a.phone_last4 + (a.daily_limit ? " · Hạn mức ngân hàng: " + S.money(a.daily_limit) + "/ngày" : "");
    const en = "Phone's last 4 digits: " + a.phone_last4 + (a.daily_limit ? " · Bank limit: " + S.money(a.daily_limit) + "/day" : "");
    ui.accountInfo.replaceChildren(S.bi(vi, en));
  }

  async function load() {
    try {
      const [r, l] = await Promise.all([api("GET", "/demo/api/accounts"), api("GET", "/demo/api/limits")]);
      limits = l;
      accounts = {};
      ui.account.replaceChildren(...(r.accounts || []).map((a) => {
        accounts[a.number] = a;
        const o = S.el("option", a.bank + " · " + a.masked + " · " + a.holder);
        o.value = a.number;
        return o;
      }));
      showLimits();
      showAccountInfo();
      await showActive();
    } catch (err) {
      S.showError(ui.error, err.code);
    }
  }

  // showActive shows the account's live code, if it has one.
  async function showActive() {
    const number = ui.account.value;
    if (!number) return false;
    const r = await api("GET", "/demo/api/accounts/" + encodeURIComponent(number) + "/active");
    const w = (r.withdrawals || [])[0];
    if (!w || number !== ui.account.value) return false;
    show(w);
    return true;
  }

  ui.account.addEventListener("change", async () => {
    S.hideError(ui.error);
    showAccountInfo();
    try { await showActive(); } catch (err) { S.showError(ui.error, err.code); }
  });

  document.querySelectorAll("[data-amount]").forEach((b) => {
    b.addEventListener("click", () => { ui.amount.value = S.money(b.dataset.amount).replace(" ₫", ""); });
  });

  // A deposit code: the same form, the other button. The cash is brought
  // to the post office and credited when the teller confirms it; the
  // withdrawal limits do not apply (the switch checks the deposit's).
  const depositButton = document.getElementById("create-deposit");
  depositButton.addEventListener("click", async () => {
    S.hideError(ui.error);
    const amount = parseAmount(ui.amount.value);
    if (!(amount > 0)) {
      explain("amount_missing");
      ui.amount.focus();
      return;
    }
    await S.busy(depositButton, async () => {
      try {
        show(await create(ui.account.value, amount, "/demo/api/deposits"));
      } catch (err) {
        explain(err.code, err.reason);
      }
    });
  });

  ui.createForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    S.hideError(ui.error);
    const amount = parseAmount(ui.amount.value);
    const bad = check(amount);
    if (bad) {
      explain(bad);
      ui.amount.focus();
      return;
    }
    await S.busy(ui.create, async () => {
      try {
        show(await create(ui.account.value, amount));
      } catch (err) {
        explain(err.code, err.reason);
        if (err.reason === "active_code") await showActive().catch(() => {});
      }
    });
  });

  function show(w) {
    current = w;
    ui.codeAmount.textContent = S.money(w.amount);
    ui.qr.classList.remove("faded");
    // Same-origin PNG made by the switch; the payload itself never leaves
    // the image.
    if (w.qr_png) ui.qr.src = w.qr_png;
    ui.numericCode.textContent = w.numeric_code || "•••• •••• ••••";
    ui.numericOnce.hidden = !!w.numeric_code;
    const a = accounts[ui.account.value];
    ui.phone4.textContent = a ? a.phone_last4 : "";
    ui.paidInfo.hidden = true;
    ui.cancelConfirm.hidden = true;
    ui.cancel.disabled = false;
    ui.createView.hidden = true;
    ui.codeView.hidden = false;
    render(w);
    stopTimers();
    pollTimer = setInterval(poll, pollEveryMs);
    tickTimer = setInterval(tick, countdownTickMs);
    tick();
    (live.has(w.state) ? ui.cancel : ui.newCode).focus();
  }

  function render(w) {
    const st = S.STATES[w.state] || [w.state, w.state, "info"];
    ui.status.replaceChildren(S.bi(st[0], st[1]));
    ui.status.className = "badge " + st[2];
    ui.status.dataset.state = w.state;
    if (w.state === "credited") {
      ui.paidInfo.replaceChildren(S.bi("Đã nạp tiền tại " + (w.post_office || "bưu điện") + " lúc " + S.when(w.paid_at) + ".",
        "Cash deposited at " + (w.post_office || "the post office") + " at " + S.when(w.paid_at) + "."));
      ui.paidInfo.hidden = false;
    }
    if (w.state === "paid" || w.state === "completed") {
      ui.paidInfo.replaceChildren(S.bi("Đã nhận tiền tại " + (w.post_office || "bưu điện") + " lúc " + S.when(w.paid_at) + ".",
        "Cash paid at " + (w.post_office || "the post office") + " at " + S.when(w.paid_at) + "."));
      ui.paidInfo.hidden = false;
    }
    const isLive = live.has(w.state);
    ui.cancel.hidden = !isLive;
    ui.newCode.hidden = isLive;
    if (!isLive) {
      ui.cancelConfirm.hidden = true;
      ui.qr.classList.add("faded");
      ui.countdown.textContent = "";
    }
    if (final.has(w.state)) stopTimers();
  }

  async function poll() {
    if (!current) return;
    try {
      const w = await api("GET", "/demo/api/withdrawals/" + encodeURIComponent(current.id));
      current = Object.assign({}, current, w);
      render(current);
    } catch (err) {
      // A missed poll is retried on the next tick.
    }
  }

  function tick() {
    if (!current || !current.expires_at) return;
    if (!(current.state === "reserved" || current.state === "claimed")) return;
    const left = Date.parse(current.expires_at) - S.serverNow();
    if (left <= 0) { ui.countdown.textContent = "0:00"; return; }
    const s = Math.ceil(left / 1000);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    const hms = (h ? h + ":" + String(m).padStart(2, "0") : String(m)) + ":" + String(sec).padStart(2, "0");
    ui.countdown.replaceChildren(S.bi("Còn hiệu lực " + hms, "Valid for " + hms));
  }

  function stopTimers() {
    clearInterval(pollTimer);
    clearInterval(tickTimer);
    pollTimer = tickTimer = 0;
  }

  // Cancelling asks first: a code cancelled by a slip of the thumb at the
  // counter means queueing again.
  ui.cancel.addEventListener("click", () => {
    if (!current) return;
    ui.cancelConfirm.hidden = false;
    ui.cancelNo.focus();
  });
  ui.cancelNo.addEventListener("click", () => {
    ui.cancelConfirm.hidden = true;
    ui.cancel.focus();
  });
  ui.cancelYes.addEventListener("click", async () => {
    if (!current) return;
    S.hideError(ui.error);
    await S.busy([ui.cancelYes, ui.cancel], async () => {
      try {
        const w = await api("POST", "/demo/api/withdrawals/" + encodeURIComponent(current.id) + "/cancel");
        current = Object.assign({}, current, w);
        render(current);
        ui.newCode.focus();
      } catch (err) {
        S.showError(ui.error, err.code);
        poll();
      }
    });
  });

  function toCreate() {
    stopTimers();
    current = null;
    S.hideError(ui.error);
    ui.codeView.hidden = true;
    ui.createView.hidden = false;
    ui.amount.focus();
  }
  ui.newCode.addEventListener("click", toCreate);
  ui.back.addEventListener("click", toCreate);

  load();
})();
